"""What an event stream sends, for the OpenAPI document: one SSE message per event, whose
`data` is the event's envelope (design §2) with its payload (the event contract).

Payload keys are stable, and new optional keys may be added later: so every key but the
subject's id is optional here, and unknown keys are allowed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from taskhub.models import OrderStatus, Role
from taskhub.projects.schemas import TaskOut
from taskhub.query import SCHEMAS_KEY

EVENT_STREAM = "text/event-stream"


class OrderEventPayload(BaseModel):
    """The payload of an `order.*` event: `order.created` `{order_id, user_id, status,
    total_cents}`; `order.reserved`, `order.confirmed`, `order.paid` `{order_id, user_id,
    status}`; `order.failed` and `order.cancelled` add `reason`."""

    model_config = ConfigDict(extra="allow")

    order_id: int
    user_id: int | None = Field(default=None, description="The order's owner")
    status: OrderStatus | None = Field(default=None, description="The order's new status")
    total_cents: int | None = Field(default=None, description="`order.created`: the total")
    reason: str | None = Field(
        default=None,
        description="`order.cancelled`: `user`, `admin` or `expired`; `order.failed`: why",
    )


class ProjectEventPayload(BaseModel):
    """The payload of a `task.*` or `member.*` event: `task.created` `{task_id, project_id,
    task}`; `task.updated` `{task_id, project_id, changes}`; `task.deleted` `{task_id,
    project_id}`; `member.added` and `member.removed` `{project_id, user_id, role}`;
    `member.role_changed` adds `previous_role`."""

    model_config = ConfigDict(extra="allow")

    project_id: int
    task_id: int | None = None
    task: TaskOut | None = Field(default=None, description="`task.created`: the new task")
    changes: dict[str, list[Any]] | None = Field(
        default=None,
        description="`task.updated`: each changed field → `[old, new]`, as the API writes them",
    )
    user_id: int | None = Field(default=None, description="`member.*`: the member")
    role: Role | None = Field(
        default=None, description="`member.*`: the role (`member.removed`: the one it had)"
    )
    previous_role: Role | None = Field(default=None, description="`member.role_changed`")


class _Envelope(BaseModel):
    id: UUID = Field(description="The event's id, also the message's `id`")
    type: str = Field(description="The event's type, also the message's `event`")
    occurred_at: datetime
    version: int = Field(ge=1)
    request_id: str | None = Field(description="The id of the request that caused it")


class OrderEvent(_Envelope):
    """An order event, as a message's `data`."""

    type: str = Field(pattern=r"^order\.[a-z_]+$", description="`order.created`, …")
    payload: OrderEventPayload


class ProjectEvent(_Envelope):
    """A task or member event, as a message's `data`."""

    type: str = Field(pattern=r"^(task|member)\.[a-z_]+$", description="`task.created`, …")
    payload: ProjectEventPayload


def stream_answer(
    envelope: type[BaseModel], *, types: str, description: str
) -> tuple[dict[int | str, dict[str, Any]], dict[str, Any]]:
    """`responses=` and `openapi_extra=` of a stream route: its 200 is `text/event-stream`,
    each message's `data` an `envelope` (a named schema, with those it uses)."""
    schema = envelope.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    named = {**schema.pop("$defs", {}), envelope.__name__: schema}
    # OpenAPI 3.1 has no `itemSchema` (3.2 does): here `schema` describes each message, as
    # tools read an event stream's schema before 3.2 (schemathesis validates each one).
    content = {EVENT_STREAM: {"schema": stream_message(envelope, types)}}
    return {200: {"description": description, "content": content}}, {SCHEMAS_KEY: named}


def stream_message(envelope: type[BaseModel], types: str) -> dict[str, Any]:
    """The schema of one SSE message of a stream whose `data` is `envelope`'s JSON."""
    return {
        "type": "object",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "The event's id: send it back as `Last-Event-ID` to resume",
            },
            "event": {"type": "string", "description": f"The event's type: {types}"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": f"#/components/schemas/{envelope.__name__}"},
            },
        },
    }
