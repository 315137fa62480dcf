"""Routes of the live streams (Server-Sent Events): a user's orders, a project's tasks."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Header, Query, Request, Response

from taskhub.dependencies import IdPath, SessionDep
from taskhub.errors import NotFound, ServiceUnavailable, Unauthorized, problem_responses
from taskhub.live import service
from taskhub.live.access import WatcherDep, orders_topic, project_topic
from taskhub.live.schemas import OrderEvent, ProjectEvent, stream_answer
from taskhub.projects.permissions import load_project_access
from taskhub.routing import V1, V2, PrefixRouter

# Before the orders router, whose `/{order_id}` would take `events` for an id.
orders_events_router = PrefixRouter(prefix=f"{V2}/orders/events", tags=["orders"])
project_events_router = PrefixRouter(prefix=f"{V1}/projects", tags=["projects"])

LastEventIdHeader = Annotated[
    UUID | None,
    Header(
        alias="Last-Event-ID",
        description="Resume after this event (the `id` of the last message received; "
        "EventSource sends it when it reconnects): the events missed since are sent first, "
        "from the last hour, in order and once each. An id no longer known: the whole hour",
    ),
]
LastEventIdQuery = Annotated[
    UUID | None,
    Query(description="`Last-Event-ID`, for clients that cannot send the header"),
]
STREAM_ERRORS = problem_responses(Unauthorized, ServiceUnavailable)
ORDER_STREAM, ORDER_STREAM_SCHEMAS = stream_answer(
    OrderEvent,
    types="`order.created`, `order.reserved`, `order.failed`, `order.confirmed`, "
    "`order.paid`, `order.cancelled`",
    description="The event stream, open until the client leaves (or its token ends). Each "
    "message is one event: `id`, `event` (its type) and `data` (its envelope); a comment "
    "line keeps an idle stream open",
)
PROJECT_STREAM, PROJECT_STREAM_SCHEMAS = stream_answer(
    ProjectEvent,
    types="`task.created`, `task.updated`, `task.deleted`, `member.added`, "
    "`member.removed`, `member.role_changed`",
    description="The event stream, open until the client leaves, its token ends or it is "
    "no longer a member. Each message is one event: `id`, `event` (its type) and `data` "
    "(its envelope); a comment line keeps an idle stream open",
)


@orders_events_router.get(
    "",
    response_class=Response,
    responses={**ORDER_STREAM, **STREAM_ERRORS},
    openapi_extra=ORDER_STREAM_SCHEMAS,
)
async def order_events(
    request: Request,
    watcher: WatcherDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> Response:
    """Live events of your orders (a site admin's: every order), as Server-Sent Events.

    Authenticate with `Authorization: Bearer`, or (EventSource) `?ticket=` from
    `POST /api/v1/auth/stream-ticket`. The stream ends within a second when the token ends
    (logout, deactivation, a password change)."""
    return await service.open_stream(
        request,
        watcher=watcher,
        topic=orders_topic(watcher),
        last_event_id=last_event_id_header or last_event_id,
    )


@project_events_router.get(
    "/{project_id}/events",
    response_class=Response,
    responses={**PROJECT_STREAM, **problem_responses(Unauthorized, NotFound, ServiceUnavailable)},
    openapi_extra=PROJECT_STREAM_SCHEMAS,
)
async def project_events(
    project_id: IdPath,
    request: Request,
    watcher: WatcherDep,
    session: SessionDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> Response:
    """Live task and member events of a project, as Server-Sent Events (members only).

    Authenticate as for the orders stream. The stream ends within a second when the caller
    is removed from the project, or the token ends."""
    await load_project_access(session, user=watcher.caller, project_id=project_id)
    return await service.open_stream(
        request,
        watcher=watcher,
        topic=project_topic(watcher, project_id=project_id),
        last_event_id=last_event_id_header or last_event_id,
    )
