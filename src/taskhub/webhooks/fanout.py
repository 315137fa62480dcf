"""From events to deliveries: the pipeline handler that runs for every event type.

For each event it finds the active endpoints that may see it and subscribe to its type, and
inserts one pending delivery per endpoint, in the handler's own transaction (so the event's
processed-event record and its deliveries commit together: a redelivered event queues
nothing twice).

Who may see an event (EVENTS.md): an order event reaches the `own` endpoints of the order's
owner (while the owner is active) and the `all` endpoints of active site admins; a task or
member event reaches the endpoints of its project.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Integer, and_, bindparam, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver import DriverStatement, in_list, in_session
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.envelope import Envelope
from taskhub.models import (
    DeliveryState,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookScope,
)
from taskhub.orders.events import id_in, order_owners
from taskhub.webhooks.service import subscribed

FANOUT = "webhooks.fanout"
# Set in the handler's session when it queued deliveries (the delivery loop wakes on it).
QUEUED = "webhook_deliveries_queued"

_endpoints, _users = table_of(WebhookEndpoint), table_of(User)
_deliveries = table_of(WebhookDelivery)
CANDIDATES = DriverStatement(
    select(
        _endpoints.c.id,
        _endpoints.c.scope,
        _endpoints.c.owner_id,
        _endpoints.c.project_id,
        _endpoints.c.events,
    )
    .select_from(_endpoints.outerjoin(_users, _users.c.id == _endpoints.c.owner_id))
    .where(
        _endpoints.c.active,
        or_(
            and_(
                _endpoints.c.scope == WebhookScope.PROJECT.value,
                in_list(_endpoints.c.project_id, "project_ids"),
            ),
            and_(
                _endpoints.c.scope == WebhookScope.OWN.value,
                in_list(_endpoints.c.owner_id, "user_ids"),
                _users.c.is_active,
            ),
            and_(
                _endpoints.c.scope == WebhookScope.ALL.value,
                bindparam("any_orders", type_=Integer()) == 1,
                _users.c.is_active,
                _users.c.is_superuser,
            ),
        ),
    )
    .order_by(_endpoints.c.id)
)
QUEUE = DriverStatement(
    insert(_deliveries).values(
        endpoint_id=bindparam("endpoint_id"),
        event_id=bindparam("event_id"),
        event_type=bindparam("event_type"),
        body=bindparam("body"),
        state=DeliveryState.PENDING.value,
        attempt=0,
        next_attempt_at=bindparam("now", type_=UTCDateTime()),
    )
)


async def fan_out(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """Queue a delivery of each event to each endpoint that may see it and subscribes."""
    db = in_session(session)
    owners: dict[int, int] = {}  # event index → the user an order event belongs to
    projects: dict[int, int] = {}  # event index → the project of a task or member event
    unknown_owner: dict[int, int] = {}  # event index → order id, owner not in the payload
    for index, envelope in enumerate(envelopes):
        payload = envelope.payload
        if envelope.type.startswith("order."):
            order_id, user_id = id_in(payload, "order_id"), id_in(payload, "user_id")
            if user_id is not None:
                owners[index] = user_id
            elif order_id is not None:
                unknown_owner[index] = order_id
        elif envelope.type.startswith(("task.", "member.")):
            project_id = id_in(payload, "project_id")
            if project_id is not None:
                projects[index] = project_id
    # Events written before order events named their owner: look the orders up.
    owner_of = await order_owners(db, sorted(set(unknown_owner.values())))
    for index, order_id in unknown_owner.items():
        if order_id in owner_of:
            owners[index] = owner_of[order_id]
    if not owners and not projects:
        return
    candidates = await db.run(
        CANDIDATES,
        project_ids=sorted(set(projects.values())),
        user_ids=sorted(set(owners.values())),
        any_orders=int(bool(owners)),
    )
    if not candidates:
        return
    now = utcnow()
    filters = [_filters(endpoint["events"]) for endpoint in candidates]
    rows = []
    for index, envelope in enumerate(envelopes):
        if index not in owners and index not in projects:
            continue
        body: str | None = None
        for endpoint, subscriptions in zip(candidates, filters, strict=True):
            if not _sees(endpoint, owner=owners.get(index), project=projects.get(index)):
                continue
            if not subscribed(subscriptions, envelope.type):
                continue
            body = body or envelope.to_json().decode()
            rows.append(
                {
                    "endpoint_id": int(endpoint["id"]),
                    "event_id": str(envelope.id),
                    "event_type": envelope.type,
                    "body": body,
                    "now": now,
                }
            )
    if rows:
        await db.run_many(QUEUE, rows)
        session.info[QUEUED] = True


def _sees(endpoint: Any, *, owner: int | None, project: int | None) -> bool:
    scope = endpoint["scope"]
    if scope == WebhookScope.PROJECT.value:
        return project is not None and int(endpoint["project_id"]) == project
    if owner is None:
        return False
    return scope == WebhookScope.ALL.value or int(endpoint["owner_id"]) == owner


def _filters(value: Any) -> list[str]:
    # A JSON column comes back as text from the driver, as a list through SQLAlchemy.
    parsed = orjson.loads(value) if isinstance(value, str | bytes) else value
    return [str(f) for f in parsed] if isinstance(parsed, list) else []


async def _fan_out_one(session: AsyncSession, envelope: Envelope) -> None:
    await fan_out(session, [envelope])


def register(registry: Registry) -> None:
    """Attach the fan-out to every event type the registry knows."""
    registry.on_every(name=FANOUT)(_fan_out_one)
    registry.on_every_batch(name=FANOUT)(fan_out)
