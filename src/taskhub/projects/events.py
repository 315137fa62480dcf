"""Events of tasks and memberships (the event contract, EVENTS.md), written through the
outbox in the transaction of the change they announce.

Every payload names its `project_id`: members of that project may see the event. A task
event's id is also recorded on the task_activity rows of the same change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.messaging import outbox
from taskhub.models import Role, Task
from taskhub.projects.schemas import TaskOut

TASK_CREATED = "task.created"
TASK_UPDATED = "task.updated"
TASK_DELETED = "task.deleted"
MEMBER_ADDED = "member.added"
MEMBER_REMOVED = "member.removed"
MEMBER_ROLE_CHANGED = "member.role_changed"
PROJECT_EVENTS = (
    TASK_CREATED,
    TASK_UPDATED,
    TASK_DELETED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    MEMBER_ROLE_CHANGED,
)


def task_document(task: Task, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The task (or some of its fields) as the API writes it (`TaskOut`, JSON values)."""
    include = set(fields) if fields is not None else None
    return TaskOut.model_validate(task).model_dump(mode="json", include=include)


async def task_created(session: AsyncSession, *, task: Task, event_id: str) -> None:
    """task.created, with the task's document."""
    await outbox.emit(
        session,
        type=TASK_CREATED,
        payload={"task_id": task.id, "project_id": task.project_id, "task": task_document(task)},
        event_id=event_id,
    )


async def tasks_updated(
    session: AsyncSession,
    *,
    project_id: int,
    changes: Sequence[tuple[int, str, Mapping[str, tuple[Any, Any]]]],
) -> None:
    """task.updated for each (task id, event id, {field: (old, new)}) given, values as the
    API writes them."""
    await outbox.emit_many(
        session,
        [
            (
                TASK_UPDATED,
                {
                    "task_id": task_id,
                    "project_id": project_id,
                    "changes": {field: [old, new] for field, (old, new) in fields.items()},
                },
            )
            for task_id, _, fields in changes
        ],
        event_ids=[event_id for _, event_id, _ in changes],
    )


async def tasks_deleted(session: AsyncSession, *, project_id: int, task_ids: Sequence[int]) -> None:
    """task.deleted for each of the project's tasks given."""
    await outbox.emit_many(
        session,
        [(TASK_DELETED, {"task_id": task_id, "project_id": project_id}) for task_id in task_ids],
    )


async def member_added(session: AsyncSession, *, project_id: int, user_id: int, role: Role) -> None:
    """member.added, with the role given."""
    await outbox.emit(
        session,
        type=MEMBER_ADDED,
        payload={"project_id": project_id, "user_id": user_id, "role": Role(role).value},
    )


async def members_removed(
    session: AsyncSession, *, project_id: int, members: Sequence[tuple[int, Role]]
) -> None:
    """member.removed for each (user id, the role it had) given."""
    await outbox.emit_many(
        session,
        [
            (
                MEMBER_REMOVED,
                {"project_id": project_id, "user_id": user_id, "role": Role(role).value},
            )
            for user_id, role in members
        ],
    )


async def member_role_changed(
    session: AsyncSession, *, project_id: int, user_id: int, role: Role, previous_role: Role
) -> None:
    """member.role_changed, with the new and the previous role."""
    await outbox.emit(
        session,
        type=MEMBER_ROLE_CHANGED,
        payload={
            "project_id": project_id,
            "user_id": user_id,
            "role": Role(role).value,
            "previous_role": Role(previous_role).value,
        },
    )
