"""Projects and their members. Services flush; the request edge commits.

Every membership change is a member.* event, and every task it unassigns a task.updated
event, written in the change's transaction (`projects.events`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from taskhub.auth.principal import Principal
from taskhub.errors import Conflict, NotFound, Unprocessable
from taskhub.messaging.outbox import new_event_id
from taskhub.models import Project, ProjectMember, Role, Task, TaskActivity, User
from taskhub.projects import events
from taskhub.projects.permissions import Permission, ProjectAccess

AnyRow = Row[*tuple[Any, ...]]


async def create_project(
    session: AsyncSession, *, user: Principal, title: str, description: str | None
) -> ProjectAccess:
    """Create a project whose single owner is its creator (member.added)."""
    project = Project(title=title, description=description)
    session.add(project)
    await session.flush()
    session.add(ProjectMember(project_id=project.id, user_id=user.id, role=Role.OWNER))
    await session.flush()
    await session.refresh(project)
    await events.member_added(session, project_id=project.id, user_id=user.id, role=Role.OWNER)
    return ProjectAccess(
        user=user, role=Role.OWNER, project_id=project.id, project=project, owner_id=user.id
    )


async def list_projects(
    session: AsyncSession, *, user: Principal, limit: int, after_id: int | None
) -> Sequence[AnyRow]:
    """The caller's projects (every project for a site admin), by id, in one query."""
    mine, owner = aliased(ProjectMember), aliased(ProjectMember)
    stmt = select(
        Project.id,
        Project.title,
        Project.description,
        owner.user_id.label("owner_id"),
        mine.role.label("my_role"),
        Project.created_at,
        Project.updated_at,
    )
    on_mine = and_(mine.project_id == Project.id, mine.user_id == user.id)
    stmt = stmt.outerjoin(mine, on_mine) if user.is_superuser else stmt.join(mine, on_mine)
    stmt = stmt.outerjoin(owner, and_(owner.project_id == Project.id, owner.role == Role.OWNER))
    if after_id is not None:
        stmt = stmt.where(Project.id > after_id)
    stmt = stmt.order_by(Project.id).limit(limit)
    return (await session.execute(stmt)).all()


async def update_project(
    session: AsyncSession, *, access: ProjectAccess, changes: dict[str, Any]
) -> ProjectAccess:
    """Apply validated changes to the project's own fields."""
    project = access.project
    changed = False
    for field, value in changes.items():
        if getattr(project, field) != value:
            setattr(project, field, value)
            changed = True
    if changed:
        await session.flush()
        await session.refresh(project)
    return access


async def delete_project(session: AsyncSession, *, access: ProjectAccess) -> None:
    """Delete the project; its members, tasks and their activity go with it (FK cascades),
    each announced: task.deleted per task, member.removed per member."""
    project_id = access.project_id
    task_ids = sorted(
        (await session.scalars(select(Task.id).where(Task.project_id == project_id))).all()
    )
    members = (
        await session.execute(
            select(ProjectMember.user_id, ProjectMember.role)
            .where(ProjectMember.project_id == project_id)
            .order_by(ProjectMember.user_id)
        )
    ).all()
    await session.execute(delete(Project).where(Project.id == project_id))
    await events.tasks_deleted(session, project_id=project_id, task_ids=task_ids)
    await events.members_removed(
        session, project_id=project_id, members=[(user_id, Role(role)) for user_id, role in members]
    )


def _members_query() -> Any:
    return select(
        ProjectMember.user_id,
        User.email,
        User.full_name,
        ProjectMember.role,
        ProjectMember.created_at,
    ).join(User, User.id == ProjectMember.user_id)


async def list_members(
    session: AsyncSession, *, project_id: int, limit: int, after_user_id: int | None
) -> Sequence[AnyRow]:
    """The project's members with their names, by user id, in one query."""
    stmt = _members_query().where(ProjectMember.project_id == project_id)
    if after_user_id is not None:
        stmt = stmt.where(ProjectMember.user_id > after_user_id)
    stmt = stmt.order_by(ProjectMember.user_id).limit(limit)
    return (await session.execute(stmt)).all()


async def get_member(session: AsyncSession, *, project_id: int, user_id: int) -> AnyRow:
    """One member with their name, or 404."""
    stmt = _members_query().where(
        ProjectMember.project_id == project_id, ProjectMember.user_id == user_id
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound("Member not found")
    return row


async def set_member_role(
    session: AsyncSession, *, access: ProjectAccess, user_id: int, role: Role
) -> bool:
    """Add a member or change their role; True when the member was added.

    Granting `owner` is an ownership transfer (see `transfer_ownership`). Otherwise the caller
    needs admin, the member's current role and the new role must both be below the caller's,
    and the owner cannot be demoted (409): ownership only moves by transfer.
    """
    if role is Role.OWNER:
        await transfer_ownership(session, access=access, user_id=user_id, loc=["path", "user_id"])
        return False
    access.require(Permission.MANAGE_PROJECT)
    member = await session.get(ProjectMember, (access.project_id, user_id))
    if member is not None and member.role == Role.OWNER:
        raise Conflict("The owner cannot be demoted; transfer ownership to someone else first")
    if member is not None:
        access.require_outranks(Role(member.role), what="change members with")
    access.require_outranks(role, what="grant")
    if member is None:
        if await session.get(User, user_id) is None:
            raise NotFound("User not found")
        session.add(ProjectMember(project_id=access.project_id, user_id=user_id, role=role))
        await _flush_members(session)
        await events.member_added(session, project_id=access.project_id, user_id=user_id, role=role)
        return True
    if member.role == role:
        return False
    previous = Role(member.role)
    member.role = role
    await _flush_members(session)
    await events.member_role_changed(
        session, project_id=access.project_id, user_id=user_id, role=role, previous_role=previous
    )
    return False


async def transfer_ownership(
    session: AsyncSession, *, access: ProjectAccess, user_id: int, loc: list[str]
) -> None:
    """Make an existing member the owner; the previous owner stays on as an admin (a
    member.role_changed event for each)."""
    access.require(Permission.OWN)
    target = await session.get(ProjectMember, (access.project_id, user_id))
    if target is None:
        raise Unprocessable(
            "The new owner must already be a member of the project",
            errors=[{"loc": loc, "msg": "is not a member of the project", "type": "not_member"}],
        )
    if target.role == Role.OWNER:
        return
    project_id = access.project_id
    if access.owner_id is not None:
        previous = await session.get(ProjectMember, (project_id, access.owner_id))
        if previous is not None:
            previous.role = Role.ADMIN
            # The partial unique index allows one owner at a time: demote before promoting.
            await _flush_members(session)
            await events.member_role_changed(
                session,
                project_id=project_id,
                user_id=access.owner_id,
                role=Role.ADMIN,
                previous_role=Role.OWNER,
            )
        if access.owner_id == access.user.id:
            access.role = Role.ADMIN
    target_role = Role(target.role)
    target.role = Role.OWNER
    await _flush_members(session)
    await events.member_role_changed(
        session, project_id=project_id, user_id=user_id, role=Role.OWNER, previous_role=target_role
    )
    access.owner_id = user_id
    if user_id == access.user.id:
        access.role = Role.OWNER


async def remove_member(session: AsyncSession, *, access: ProjectAccess, user_id: int) -> None:
    """Remove a member below the caller's rank, or leave (anyone but the owner).

    Their tasks in the project are unassigned, since an assignee must be a member. The
    membership is deleted first: that waits for any assignment to them in progress (it holds
    the membership row: `tasks.ensure_assignable`), and the unassignment, a statement of its
    own after it, then sees what that assignment committed.
    """
    leaving = user_id == access.user.id
    if not leaving:
        access.require(Permission.MANAGE_PROJECT)
    member = await session.get(ProjectMember, (access.project_id, user_id))
    if member is None:
        raise NotFound("Member not found")
    if member.role == Role.OWNER:
        raise Conflict("The owner cannot leave or be removed; transfer ownership first")
    if not leaving:
        access.require_outranks(Role(member.role), what="remove members with")
    role = Role(member.role)
    await session.delete(member)
    await session.flush()
    await events.members_removed(session, project_id=access.project_id, members=[(user_id, role)])
    await _unassign_tasks(
        session, project_id=access.project_id, user_id=user_id, actor_id=access.user.id
    )


async def leave_every_project(session: AsyncSession, *, user_id: int, actor_id: int) -> None:
    """Before an account is deleted: it leaves each project it is a member of (never as the
    owner: the deletion refuses that), as a removal would (member.removed, its tasks
    unassigned)."""
    memberships = (
        await session.execute(
            delete(ProjectMember)
            .where(ProjectMember.user_id == user_id)
            .returning(ProjectMember.project_id, ProjectMember.role)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for project_id, role in sorted(memberships):
        await events.members_removed(
            session, project_id=project_id, members=[(user_id, Role(role))]
        )
        await _unassign_tasks(session, project_id=project_id, user_id=user_id, actor_id=actor_id)


async def _unassign_tasks(
    session: AsyncSession, *, project_id: int, user_id: int, actor_id: int
) -> None:
    result = await session.execute(
        update(Task)
        .where(Task.project_id == project_id, Task.assignee_id == user_id)
        .values(assignee_id=None)
        .returning(Task.id)
        .execution_options(synchronize_session=False)
    )
    task_ids = sorted(result.scalars())
    if task_ids:
        event_ids = {task_id: new_event_id() for task_id in task_ids}
        await session.execute(
            insert(TaskActivity),
            [
                {
                    "task_id": task_id,
                    "actor_id": actor_id,
                    "field": "assignee_id",
                    "old_value": str(user_id),
                    "new_value": None,
                    "event_id": event_ids[task_id],
                }
                for task_id in task_ids
            ],
        )
        await events.tasks_updated(
            session,
            project_id=project_id,
            changes=[
                (task_id, event_ids[task_id], {"assignee_id": (user_id, None)})
                for task_id in task_ids
            ],
        )


async def _flush_members(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        # A concurrent change won the race (a second owner, or a deleted user).
        raise Conflict("The membership changed concurrently; retry") from None
