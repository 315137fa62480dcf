"""Request and response shapes for projects, members and tasks."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from taskhub.dependencies import MAX_ID
from taskhub.fields import LAX, OMITTED, Omittable, StorableText, StrictModel, text
from taskhub.models import Role, TaskPriority, TaskStatus

_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def date_time_text(value: Any) -> Any:
    """Only an ISO 8601 date-time is a timestamp: pydantic would also read a number (or a
    numeric string, as query strings carry) as seconds since 1970."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        raise ValueError("must be an ISO 8601 date-time, such as 2030-01-31T09:00:00Z")
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
Title = Annotated[str, text(min_length=1, max_length=200), StorableText]
Description = Annotated[str, text(max_length=20_000), StorableText]
Timestamp = Annotated[datetime, LAX, BeforeValidator(date_time_text), AfterValidator(utc_timestamp)]
SearchText = Annotated[str, text(min_length=1, max_length=200), StorableText]
# Enums arrive as their JSON string value.
RoleIn = Annotated[Role, LAX]
TaskStatusIn = Annotated[TaskStatus, LAX]
TaskPriorityIn = Annotated[TaskPriority, LAX]


# --- projects -------------------------------------------------------------------------------


class ProjectCreateIn(StrictModel):
    """A new project; the caller becomes its owner."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"title": "Launch", "description": "First project"}]}
    )

    title: Title
    description: Description | None = None


class ProjectPutIn(ProjectCreateIn):
    """A full replacement of a project's editable fields (omitted means empty)."""


class ProjectUpdateIn(StrictModel):
    """A partial update of a project: `title` may be omitted, not null; a null
    `description` clears it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "Launch v2"}]})

    title: Omittable[Title] = OMITTED
    description: Description | None = None


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

    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "member"}]})

    role: RoleIn


class TransferOwnershipIn(StrictModel):
    """Who becomes the owner; they must already be a member."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": 2}]})

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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"title": "Write the docs", "project_id": 1, "assignee_id": 2, "priority": "high"}
            ]
        }
    )

    title: Title
    description: Description | None = None
    project_id: EntityId
    assignee_id: EntityId | None = None
    status: TaskStatusIn = TaskStatus.TODO
    priority: TaskPriorityIn = TaskPriority.NONE
    due_date: Timestamp | None = None


class TaskUpdateIn(StrictModel):
    """A partial update; a task cannot move to another project. `title`, `status` and
    `priority` may be omitted, not null; a null `description`, `assignee_id` or `due_date`
    clears it."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "in_progress"}, {"assignee_id": None}]}
    )

    title: Omittable[Title] = OMITTED
    description: Description | None = None
    assignee_id: EntityId | None = None
    status: Omittable[TaskStatusIn] = OMITTED
    priority: Omittable[TaskPriorityIn] = OMITTED
    due_date: Timestamp | None = None


class TaskPutIn(StrictModel):
    """A full replacement: omitted fields take their creation defaults.

    `project_id` may be repeated (so that a fetched task can be sent back) but must not change.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"title": "Write the docs", "status": "done", "priority": "high"}]
        }
    )

    title: Title
    description: Description | None = None
    project_id: EntityId | None = None
    assignee_id: EntityId | None = None
    status: TaskStatusIn = TaskStatus.TODO
    priority: TaskPriorityIn = TaskPriority.NONE
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
    event_id: str | None = Field(
        description="The id of the event (task.created or task.updated) that announced this "
        "change; null for entries older than the events"
    )
    created_at: datetime
