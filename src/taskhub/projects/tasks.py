"""Tasks: create, change, delete, and their activity log. Services flush; the edge commits.

Every change appends one `task_activity` row per changed field in the same transaction as the
change itself, so the log can never disagree with the task; and it is one event (task.created,
task.updated, task.deleted) in that transaction too, whose id the activity rows carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.errors import Conflict, Unprocessable
from taskhub.messaging.outbox import new_event_id
from taskhub.models import ProjectMember, Task, TaskActivity, TaskPriority, TaskStatus
from taskhub.projects import events
from taskhub.projects.permissions import (
    Access,
    TaskAccess,
    assignment_permission,
    task_change_permission,
)

CREATED = "created"
EDITABLE_FIELDS = ("title", "description", "assignee_id", "status", "priority", "due_date")


def activity_value(value: object) -> str | None:
    """How a field's value is written in the activity log."""
    if value is None:
        return None
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


async def ensure_assignable(
    session: AsyncSession, *, project_id: int, assignee_id: int | None, loc: list[str]
) -> None:
    """422, naming the field, unless the assignee is a member of the project.

    The membership row is key-share locked (PostgreSQL; SQLite serializes writers) until the
    transaction ends, so the member cannot be removed between this check and the assignment
    it allows: a removal deletes the membership first and waits, then unassigns what the
    assignment committed (`service.remove_member`); or it came first, and this finds no row.
    """
    if assignee_id is None:
        return
    is_member = await session.scalar(
        select(ProjectMember.user_id)
        .where(ProjectMember.project_id == project_id, ProjectMember.user_id == assignee_id)
        .with_for_update(read=True, key_share=True)
    )
    if is_member is None:
        raise Unprocessable(
            "The assignee must be a member of the task's project",
            errors=[{"loc": loc, "msg": "is not a member of the project", "type": "not_member"}],
        )


async def create_task(
    session: AsyncSession,
    *,
    access: Access,
    title: str,
    description: str | None,
    assignee_id: int | None,
    status: TaskStatus,
    priority: TaskPriority,
    due_date: datetime | None,
) -> Task:
    """Create a task (member+; assigning someone else needs admin+), log its creation and
    emit task.created."""
    access.require(assignment_permission(actor_id=access.user.id, assignee_id=assignee_id))
    await ensure_assignable(
        session, project_id=access.project_id, assignee_id=assignee_id, loc=["body", "assignee_id"]
    )
    task = Task(
        project_id=access.project_id,
        title=title,
        description=description,
        assignee_id=assignee_id,
        status=status,
        priority=priority,
        due_date=due_date,
        created_by_id=access.user.id,
    )
    session.add(task)
    await _flush(session)
    event_id = new_event_id()
    session.add(
        TaskActivity(
            task_id=task.id,
            actor_id=access.user.id,
            field=CREATED,
            new_value=title,
            event_id=event_id,
        )
    )
    await _flush(session)
    await session.refresh(task)
    await events.task_created(session, task=task, event_id=event_id)
    return task


async def update_task(
    session: AsyncSession,
    *,
    task_access: TaskAccess,
    changes: Mapping[str, Any],
    loc: list[str] | None = None,
) -> Task:
    """Apply the fields that actually change, after checking the permission they need;
    one task.updated event names them all.

    `loc` is where an invalid assignee came from (the body by default).
    """
    task = task_access.task
    changed = {
        field: value
        for field, value in changes.items()
        if field in EDITABLE_FIELDS and getattr(task, field) != value
    }
    task_access.require(task_change_permission(task_access, changed))
    if not changed:
        return task
    if changed.get("assignee_id") is not None:
        await ensure_assignable(
            session,
            project_id=task.project_id,
            assignee_id=changed["assignee_id"],
            loc=loc or ["body", "assignee_id"],
        )
    actor_id = task_access.user.id
    event_id = new_event_id()
    before = events.task_document(task, changed)
    for field, value in changed.items():
        session.add(
            TaskActivity(
                task_id=task.id,
                actor_id=actor_id,
                field=field,
                old_value=activity_value(getattr(task, field)),
                new_value=activity_value(value),
                event_id=event_id,
            )
        )
        setattr(task, field, value)
    await _flush(session)
    await session.refresh(task)
    after = events.task_document(task, changed)
    await events.tasks_updated(
        session,
        project_id=task.project_id,
        changes=[(task.id, event_id, {field: (before[field], after[field]) for field in changed})],
    )
    return task


async def delete_task(session: AsyncSession, *, task_access: TaskAccess) -> None:
    """Delete the task and (by FK cascade) its activity log; emits task.deleted."""
    task_id, project_id = task_access.task.id, task_access.task.project_id
    await session.execute(delete(Task).where(Task.id == task_id))
    await events.tasks_deleted(session, project_id=project_id, task_ids=[task_id])


async def list_activity(
    session: AsyncSession, *, task_id: int, limit: int, after_id: int | None
) -> Sequence[TaskActivity]:
    """A page of the task's activity, oldest first."""
    stmt = select(TaskActivity).where(TaskActivity.task_id == task_id)
    if after_id is not None:
        stmt = stmt.where(TaskActivity.id > after_id)
    stmt = stmt.order_by(TaskActivity.id).limit(limit)
    return (await session.scalars(stmt)).all()


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        # The project, or the assignee's account, was deleted by a concurrent request.
        raise Conflict("The project or the assignee changed concurrently; retry") from None
