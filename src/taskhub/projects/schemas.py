"""Request and response shapes for projects, members and tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from taskhub.auth.schemas import StrictModel
from taskhub.dependencies import MAX_ID
from taskhub.models import Role, TaskPriority, TaskStatus


def storable_text(value: str) -> str:
    """Refuse what no database can store: NUL characters and lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    return value


def utc_timestamp(value: datetime) -> datetime:
    """A naive timestamp is taken as UTC; every timestamp is stored and compared in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of the supported range") from None


EntityId = Annotated[int, Field(ge=1, le=MAX_ID)]
Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(storable_text)]
Description = Annotated[str, Field(max_length=20_000), AfterValidator(storable_text)]
Timestamp = Annotated[datetime, AfterValidator(utc_timestamp)]
SearchText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(storable_text)]


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may be omitted but not null")
    return value


# --- projects -------------------------------------------------------------------------------


class ProjectCreateIn(StrictModel):
    """A new project; the caller becomes its owner."""

    title: Title
    description: Description | None = None


class ProjectPutIn(ProjectCreateIn):
    """A full replacement of a project's editable fields (omitted means empty)."""


class ProjectUpdateIn(StrictModel):
    """A partial update of a project."""

    title: Title | None = None
    description: Description | None = None

    _title_not_null = field_validator("title")(_not_null)


class ProjectOut(BaseModel):
    """A project as the caller sees it; `my_role` is null for a site admin non-member."""

    id: int
    title: str
    description: str | None
    owner_id: int | None
    my_role: Role | None
    created_at: datetime
    updated_at: datetime


# --- members --------------------------------------------------------------------------------


class MemberRoleIn(StrictModel):
    """The role to give a (new or existing) member; `owner` transfers ownership."""

    role: Role


class TransferOwnershipIn(StrictModel):
    """Who becomes the owner; they must already be a member."""

    user_id: EntityId


class MemberOut(BaseModel):
    """A member of a project."""

    user_id: int
    email: str
    full_name: str | None
    role: Role
    created_at: datetime


# --- tasks ----------------------------------------------------------------------------------


class TaskCreateIn(StrictModel):
    """A new task in a project the caller may edit."""

    title: Title
    description: Description | None = None
    project_id: EntityId
    assignee_id: EntityId | None = None
    status: TaskStatus = TaskStatus.TODO
    priority: TaskPriority = TaskPriority.NONE
    due_date: Timestamp | None = None


class TaskUpdateIn(StrictModel):
    """A partial update; a task cannot move to another project."""

    title: Title | None = None
    description: Description | None = None
    assignee_id: EntityId | None = None
    status: TaskStatus | None = None
    priority: TaskPriority | None = None
    due_date: Timestamp | None = None

    _required_not_null = field_validator("title", "status", "priority")(_not_null)


class TaskPutIn(StrictModel):
    """A full replacement: omitted fields take their creation defaults.

    `project_id` may be repeated (so that a fetched task can be sent back) but must not change.
    """

    title: Title
    description: Description | None = None
    project_id: EntityId | None = None
    assignee_id: EntityId | None = None
    status: TaskStatus = TaskStatus.TODO
    priority: TaskPriority = TaskPriority.NONE
    due_date: Timestamp | None = None


class TaskOut(BaseModel):
    """A task."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    title: str
    description: str | None
    status: TaskStatus
    priority: TaskPriority
    assignee_id: int | None
    created_by_id: int | None
    due_date: datetime | None
    created_at: datetime
    updated_at: datetime


class ActivityOut(BaseModel):
    """One entry of a task's activity log."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    actor_id: int | None
    field: str
    old_value: str | None
    new_value: str | None
    created_at: datetime
