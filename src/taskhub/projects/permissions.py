"""Who may do what in a project: the role matrix of design §4, written once.

Every route under /projects and /tasks goes through `project_for` or `task_for`. They load the
resource together with the caller's membership in one query, answer 404 when the caller is not
a member (so that existence does not leak), 403 when the rank is too low, and return the
resource with the caller's access. Site admins pass every check, member or not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from taskhub.auth.dependencies import CurrentUser
from taskhub.auth.principal import Principal
from taskhub.dependencies import IdPath, SessionDep
from taskhub.errors import Forbidden, NotFound
from taskhub.models import Project, ProjectMember, Role, Task
from taskhub.models.project import ROLE_RANK


class Permission(StrEnum):
    """The actions of the role matrix."""

    READ = "read"  # the project, its tasks, its members
    EDIT_TASKS = "edit_tasks"  # create tasks, edit any task, self-assign
    MANAGE_TASKS = "manage_tasks"  # assign tasks to others, delete tasks
    MANAGE_PROJECT = "manage_project"  # edit the project, manage members below own rank
    OWN = "own"  # delete the project, transfer ownership


MINIMUM_ROLE: Mapping[Permission, Role] = {
    Permission.READ: Role.VIEWER,
    Permission.EDIT_TASKS: Role.MEMBER,
    Permission.MANAGE_TASKS: Role.ADMIN,
    Permission.MANAGE_PROJECT: Role.ADMIN,
    Permission.OWN: Role.OWNER,
}
SITE_ADMIN_RANK = ROLE_RANK[Role.OWNER]
NOT_FOUND = {"project": "Project not found", "task": "Task not found"}


@dataclass(slots=True)
class Access:
    """The caller's standing in one project: their role, None for a site admin non-member."""

    user: Principal
    role: Role | None
    project_id: int

    @property
    def rank(self) -> int:
        """The caller's effective rank; a site admin counts as an owner."""
        if self.user.is_superuser:
            return SITE_ADMIN_RANK
        return ROLE_RANK[self.role] if self.role is not None else 0

    def allows(self, permission: Permission) -> bool:
        """Whether the caller's rank reaches the permission's minimum role."""
        return self.rank >= ROLE_RANK[MINIMUM_ROLE[permission]]

    def require(self, permission: Permission) -> None:
        """403 unless the caller's rank reaches the permission's minimum role."""
        if not self.allows(permission):
            needed = MINIMUM_ROLE[permission].value
            raise Forbidden(f"This needs the {needed} role or higher in the project")

    def require_outranks(self, role: Role, *, what: str) -> None:
        """403 unless `role` is strictly below the caller's own rank."""
        if ROLE_RANK[role] >= self.rank:
            raise Forbidden(f"You can only {what} roles below your own")


@dataclass(slots=True)
class ProjectAccess(Access):
    """A project, its owner, and the caller's standing in it."""

    project: Project
    owner_id: int | None


@dataclass(slots=True)
class TaskAccess(Access):
    """A task and the caller's standing in its project."""

    task: Task


def task_change_permission(task_access: TaskAccess, changes: Mapping[str, Any]) -> Permission:
    """The permission a set of actually changed task fields needs.

    - Anyone who can read the project may change the status of a task assigned to them.
    - A member may self-assign: take an unassigned task, or drop their own assignment.
      Assigning someone else, or taking a task from someone else, needs admin.
    - Every other change needs member.
    """
    task, me = task_access.task, task_access.user.id
    needed = Permission.READ
    for field, value in changes.items():
        if field == "status" and task.assignee_id == me:
            wanted = Permission.READ
        elif field == "assignee_id" and {task.assignee_id, value} - {None, me}:
            wanted = Permission.MANAGE_TASKS
        else:
            wanted = Permission.EDIT_TASKS
        if ROLE_RANK[MINIMUM_ROLE[wanted]] > ROLE_RANK[MINIMUM_ROLE[needed]]:
            needed = wanted
    return needed


def assignment_permission(*, actor_id: int, assignee_id: int | None) -> Permission:
    """On creation: assigning oneself is a member's right, assigning others an admin's."""
    if assignee_id is None or assignee_id == actor_id:
        return Permission.EDIT_TASKS
    return Permission.MANAGE_TASKS


async def load_project_access(
    session: AsyncSession, *, user: Principal, project_id: int, for_update: bool = False
) -> ProjectAccess:
    """The project, the caller's role and the owner, in one query; 404 unless visible."""
    mine, owner = aliased(ProjectMember), aliased(ProjectMember)
    stmt = (
        select(Project, mine.role, owner.user_id)
        .outerjoin(mine, and_(mine.project_id == Project.id, mine.user_id == user.id))
        .outerjoin(owner, and_(owner.project_id == Project.id, owner.role == Role.OWNER))
        .where(Project.id == project_id)
    )
    if for_update:
        # Membership changes of one project are serialized on its row. The lock is taken
        # first, so that the roles read next are the committed ones, not those of a snapshot
        # taken before the wait. FOR NO KEY UPDATE: it excludes itself (and the project's
        # deletion), but not the key-share locks that writers referencing the project take
        # for their foreign keys; one of them may hold a membership this change waits for
        # (tasks.ensure_assignable), so a full FOR UPDATE would deadlock with it.
        # (SQLite needs none: BEGIN IMMEDIATE serializes writers.)
        await session.execute(
            select(Project.id).where(Project.id == project_id).with_for_update(key_share=True)
        )
    row = (await session.execute(stmt)).one_or_none()
    if row is None or (row[1] is None and not user.is_superuser):
        raise NotFound(NOT_FOUND["project"])
    project, role, owner_id = row
    return ProjectAccess(
        user=user,
        role=Role(role) if role else None,
        project_id=project.id,
        project=project,
        owner_id=owner_id,
    )


async def load_task_access(
    session: AsyncSession, *, user: Principal, task_id: int, for_update: bool = False
) -> TaskAccess:
    """The task and the caller's role in its project, in one query; 404 unless visible."""
    mine = aliased(ProjectMember)
    stmt = (
        select(Task, mine.role)
        .outerjoin(mine, and_(mine.project_id == Task.project_id, mine.user_id == user.id))
        .where(Task.id == task_id)
    )
    if for_update:
        stmt = stmt.with_for_update(of=Task)
    row = (await session.execute(stmt)).one_or_none()
    if row is None or (row[1] is None and not user.is_superuser):
        raise NotFound(NOT_FOUND["task"])
    task, role = row
    return TaskAccess(
        user=user, role=Role(role) if role else None, project_id=task.project_id, task=task
    )


def project_for(
    permission: Permission, *, for_update: bool = False
) -> Callable[..., Awaitable[ProjectAccess]]:
    """A dependency: the path's project, if the caller has `permission` on it."""

    async def dependency(
        project_id: IdPath, user: CurrentUser, session: SessionDep
    ) -> ProjectAccess:
        access = await load_project_access(
            session, user=user, project_id=project_id, for_update=for_update
        )
        access.require(permission)
        return access

    return dependency


def task_for(
    permission: Permission, *, for_update: bool = False
) -> Callable[..., Awaitable[TaskAccess]]:
    """A dependency: the path's task, if the caller has `permission` on its project."""

    async def dependency(task_id: IdPath, user: CurrentUser, session: SessionDep) -> TaskAccess:
        task_access = await load_task_access(
            session, user=user, task_id=task_id, for_update=for_update
        )
        task_access.require(permission)
        return task_access

    return dependency
