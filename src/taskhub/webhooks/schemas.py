"""Request and response shapes of webhook endpoints and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from taskhub.fields import OMITTED, Omittable, StorableText, StrictModel, text
from taskhub.models import DeliveryState, WebhookScope
from taskhub.webhooks.addresses import MAX_URL_LENGTH

MAX_EVENT_FILTERS = 20

Url = Annotated[
    str,
    Field(
        min_length=8,
        max_length=MAX_URL_LENGTH,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\u0000]+$",
        description="An `http` or `https` URL whose host resolves to public addresses only",
    ),
    StorableText,
]
EventFilter = Annotated[
    str,
    Field(
        max_length=64,
        pattern=r"^[a-z][a-z0-9_]*\.([a-z][a-z0-9_]*|\*)$",
        description="An event type (`order.paid`) or a prefix (`order.*`)",
    ),
]
EventFilters = Annotated[
    list[EventFilter],
    Field(
        min_length=1,
        max_length=MAX_EVENT_FILTERS,
        description="Event types or prefixes to receive; omitted: every event the endpoint may see",
    ),
]
Description = Annotated[str, text(max_length=500), StorableText]
OrderScope = Annotated[
    Literal["own", "all"],
    Field(description="`own`: your orders' events; `all` (site admins): every order's"),
]


class WebhookCreateIn(StrictModel):
    """A new endpoint for order events."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"url": "https://receiver.example.invalid/taskhub", "events": ["order.*"]},
            ]
        }
    )

    url: Url
    events: EventFilters | None = None
    description: Description | None = None
    scope: OrderScope = "own"


class ProjectWebhookCreateIn(StrictModel):
    """A new endpoint for a project's task and member events."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"url": "https://receiver.example.invalid/taskhub", "events": ["task.*"]},
            ]
        }
    )

    url: Url
    events: EventFilters | None = None
    description: Description | None = None


class ProjectWebhookUpdateIn(StrictModel):
    """A partial update: `url`, `events` and `active` may be omitted, not null; a null
    `description` clears it. `active: true` enables a disabled endpoint again."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"active": True}]})

    url: Omittable[Url] = OMITTED
    events: Omittable[EventFilters] = OMITTED
    description: Description | None = None
    # Not `Omittable[bool]`: a plain bool, so that a refused value is reported at `active`
    # itself; omitted, it is simply not among the fields sent (model_dump(exclude_unset)).
    active: Annotated[bool, OMITTED]


class WebhookUpdateIn(ProjectWebhookUpdateIn):
    """A partial update of an order endpoint (`scope` too, `all` for site admins only)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"events": ["order.paid"]}]})

    scope: Omittable[OrderScope] = OMITTED


class WebhookOut(BaseModel):
    """An endpoint (its secret is only shown when it is created or rotated)."""

    id: int
    url: str
    description: str | None
    events: list[str]
    scope: WebhookScope = Field(
        description="`own` or `all` (order endpoints), `project` (a project's endpoints)"
    )
    owner_id: int | None = Field(description="The user whose endpoint it is (order endpoints)")
    project_id: int | None = Field(description="The project whose endpoint it is")
    active: bool
    disabled_reason: str | None = Field(
        description="Why the endpoint was disabled (null while active)"
    )
    created_at: datetime
    updated_at: datetime


class WebhookSecretOut(WebhookOut):
    """An endpoint with its signing secret, shown only by create and rotate-secret."""

    secret: str = Field(
        description="`whsec_` + base64 of 32 random bytes; the decoded bytes are the "
        "HMAC-SHA256 key (Standard Webhooks)"
    )


class DeliveryOut(BaseModel):
    """One event sent (or to be sent) to one endpoint."""

    id: int
    event_id: str = Field(description="The event's id, sent as `webhook-id`")
    event_type: str
    attempt: int = Field(description="Attempts made so far")
    status_code: int | None = Field(description="The last attempt's HTTP status, if any")
    latency_ms: int | None = Field(description="How long the last attempt took")
    error: str | None = Field(description="Why the last attempt failed")
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next")
    state: DeliveryState
    created_at: datetime
    updated_at: datetime
