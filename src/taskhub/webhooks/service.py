"""Webhook endpoints and their deliveries: register, read, change, rotate, test, redeliver.

Two families share one table: order endpoints (`own`: the owner's orders; `all`: every
order, for site admins) under /api/v2/webhooks, and project endpoints (a project's task and
member events) under /api/v1/projects/{id}/webhooks, whose access the projects' role matrix
decides before these functions run. Services flush; the request edge commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.auth.principal import Principal
from taskhub.db import utcnow
from taskhub.errors import Conflict, Forbidden, NotFound, Unprocessable
from taskhub.messaging.envelope import envelope_json
from taskhub.models import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookScope
from taskhub.observability import request_id_var
from taskhub.orders.events import ORDER_EVENTS
from taskhub.projects.events import PROJECT_EVENTS
from taskhub.webhooks.addresses import RefusedUrl, check_url
from taskhub.webhooks.signing import new_secret

WEBHOOK_TEST = "webhook.test"
# How long a rotated secret keeps signing beside the new one.
PREVIOUS_SECRET_GRACE = timedelta(hours=24)
DISABLED_BY_USER = "disabled through the API"
ENDPOINT_DISABLED = "the endpoint was disabled before this delivery was attempted"


@dataclass(frozen=True, slots=True)
class Family:
    """What a family of endpoints may subscribe to, and its default."""

    types: frozenset[str]
    prefixes: frozenset[str]
    default: tuple[str, ...]

    def check(self, filters: Sequence[str] | None) -> list[str]:
        """The filters, deduplicated in order (the default when omitted); 422 naming each
        one this family never sees."""
        if filters is None:
            return list(self.default)
        wrong = [
            {"loc": ["body", "events", i], "msg": f"no {f} events reach this endpoint"}
            for i, f in enumerate(filters)
            if f not in self.types and f not in self.prefixes
        ]
        if wrong:
            known = ", ".join(sorted(self.prefixes | self.types))
            raise Unprocessable(
                f"Unknown event types or prefixes; these exist: {known}", errors=wrong
            )
        return list(dict.fromkeys(filters))


ORDERS = Family(frozenset(ORDER_EVENTS), frozenset({"order.*"}), ("order.*",))
PROJECTS = Family(
    frozenset(PROJECT_EVENTS), frozenset({"task.*", "member.*"}), ("task.*", "member.*")
)


def subscribed(filters: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint with these filters receives events of this type."""
    prefix = event_type.split(".", 1)[0] + ".*"
    return event_type in filters or prefix in filters


async def checked_url(url: str, *, allow_private: bool) -> str:
    """The URL, if webhooks may go there (taskhub.webhooks.addresses); 422 otherwise."""
    try:
        await check_url(url, allow_private=allow_private)
    except RefusedUrl as refused:
        raise Unprocessable(
            f"This URL cannot receive webhooks: {refused}",
            errors=[{"loc": ["body", "url"], "msg": str(refused), "type": "url_refused"}],
        ) from None
    return url


async def create_endpoint(
    session: AsyncSession,
    *,
    url: str,
    events: Sequence[str] | None,
    description: str | None,
    allow_private: bool,
    owner: Principal | None = None,
    scope: str = WebhookScope.OWN.value,
    project_id: int | None = None,
) -> WebhookEndpoint:
    """Register an endpoint: an order endpoint of `owner` (scope `own`, or `all` for a site
    admin: 403 otherwise) or, with `project_id`, a project endpoint."""
    if project_id is not None:
        family, scope_value = PROJECTS, WebhookScope.PROJECT
    else:
        if owner is None:
            raise ValueError("an order endpoint needs its owner")
        family, scope_value = ORDERS, WebhookScope(scope)
        _require_scope(owner, scope_value)
    filters = family.check(events)
    endpoint = WebhookEndpoint(
        scope=scope_value,
        owner_id=owner.id if project_id is None and owner is not None else None,
        project_id=project_id,
        url=await checked_url(url, allow_private=allow_private),
        description=description,
        events=filters,
        secret=new_secret(),
        active=True,
        consecutive_failures=0,
    )
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint)
    return endpoint


def _require_scope(owner: Principal, scope: WebhookScope) -> None:
    if scope is WebhookScope.ALL and not owner.is_superuser:
        raise Forbidden('Only site admins may receive every order\'s events ("scope": "all")')


async def list_endpoints(
    session: AsyncSession,
    *,
    limit: int,
    after_id: int | None,
    user: Principal | None = None,
    project_id: int | None = None,
) -> Sequence[WebhookEndpoint]:
    """A page of endpoints by id: a project's, or a user's order endpoints (a site admin's
    list has every order endpoint)."""
    stmt = select(WebhookEndpoint)
    if project_id is not None:
        stmt = stmt.where(WebhookEndpoint.project_id == project_id)
    elif user is not None:
        stmt = stmt.where(WebhookEndpoint.scope != WebhookScope.PROJECT)
        if not user.is_superuser:
            stmt = stmt.where(WebhookEndpoint.owner_id == user.id)
    else:
        raise ValueError("list whose endpoints?")
    if after_id is not None:
        stmt = stmt.where(WebhookEndpoint.id > after_id)
    return (await session.scalars(stmt.order_by(WebhookEndpoint.id).limit(limit))).all()


async def order_endpoint(
    session: AsyncSession, *, webhook_id: int, user: Principal, for_update: bool = False
) -> WebhookEndpoint:
    """An order endpoint of the caller (any, for a site admin); 404 otherwise."""
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.id == webhook_id, WebhookEndpoint.scope != WebhookScope.PROJECT
    )
    if not user.is_superuser:
        stmt = stmt.where(WebhookEndpoint.owner_id == user.id)
    return await _one(session, stmt, for_update=for_update)


async def project_endpoint(
    session: AsyncSession, *, webhook_id: int, project_id: int, for_update: bool = False
) -> WebhookEndpoint:
    """An endpoint of the project; 404 otherwise."""
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.id == webhook_id, WebhookEndpoint.project_id == project_id
    )
    return await _one(session, stmt, for_update=for_update)


async def _one(session: AsyncSession, stmt: Any, *, for_update: bool) -> WebhookEndpoint:
    if for_update:
        stmt = stmt.with_for_update()
    endpoint: WebhookEndpoint | None = await session.scalar(stmt)
    if endpoint is None:
        raise NotFound("Webhook endpoint not found")
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    *,
    endpoint: WebhookEndpoint,
    changes: Mapping[str, Any],
    user: Principal,
    allow_private: bool,
) -> WebhookEndpoint:
    """Apply a partial update. A new URL is checked like a new endpoint's; `active: true`
    enables a disabled endpoint (its failure count starts again), `active: false` disables
    it, failing its pending deliveries."""
    family = PROJECTS if endpoint.scope == WebhookScope.PROJECT else ORDERS
    if "url" in changes and changes["url"] != endpoint.url:
        endpoint.url = await checked_url(changes["url"], allow_private=allow_private)
    if "events" in changes:
        endpoint.events = family.check(changes["events"])
    if "description" in changes:
        endpoint.description = changes["description"]
    if "scope" in changes and changes["scope"] != endpoint.scope:
        scope = WebhookScope(changes["scope"])
        _require_scope(user, scope)
        endpoint.scope = scope
    if "active" in changes and changes["active"] != endpoint.active:
        if changes["active"]:
            endpoint.active = True
            endpoint.disabled_reason = None
            endpoint.consecutive_failures = 0
        else:
            await session.flush()
            await disable_endpoint(session, endpoint_id=endpoint.id, reason=DISABLED_BY_USER)
    await session.flush()
    await session.refresh(endpoint)
    return endpoint


async def disable_endpoint(session: AsyncSession, *, endpoint_id: int, reason: str) -> bool:
    """Disable an active endpoint and fail its pending deliveries; False if it was not
    active. (Used by the delivery loop too, at the failure limit.)"""
    disabled = await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.active)
        .values(active=False, disabled_reason=reason, updated_at=utcnow())
        .returning(WebhookEndpoint.id)
        .execution_options(synchronize_session=False)
    )
    if disabled.scalar_one_or_none() is None:
        return False
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.state == DeliveryState.PENDING,
        )
        .values(
            state=DeliveryState.FAILED,
            error=ENDPOINT_DISABLED,
            next_attempt_at=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return True


async def delete_endpoint(session: AsyncSession, *, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and (by FK cascade) its deliveries."""
    await session.delete(endpoint)
    await session.flush()


async def rotate_secret(session: AsyncSession, *, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new secret; the previous one keeps signing beside it for 24 hours."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utcnow() + PREVIOUS_SECRET_GRACE
    endpoint.secret = new_secret()
    await session.flush()
    await session.refresh(endpoint)
    return endpoint


def _require_active(endpoint: WebhookEndpoint) -> None:
    if not endpoint.active:
        raise Conflict("The endpoint is disabled; enable it first (PATCH with active: true)")


async def send_test(session: AsyncSession, *, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a `webhook.test` event to this endpoint only (not through the outbox: no other
    endpoint or stream sees it); 409 while the endpoint is disabled."""
    _require_active(endpoint)
    event_id = str(uuid.uuid4())
    body = envelope_json(
        event_id=event_id,
        type=WEBHOOK_TEST,
        occurred_at=utcnow(),
        version=1,
        payload={"webhook_id": endpoint.id},
        request_id=request_id_var.get(),
    ).decode()
    return await _queue(
        session, endpoint_id=endpoint.id, event_id=event_id, event_type=WEBHOOK_TEST, body=body
    )


async def list_deliveries(
    session: AsyncSession, *, endpoint_id: int, limit: int, before_id: int | None
) -> Sequence[WebhookDelivery]:
    """A page of the endpoint's deliveries, newest first."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    stmt = stmt.order_by(WebhookDelivery.id.desc()).limit(limit)
    return (await session.scalars(stmt)).all()


async def redeliver(
    session: AsyncSession, *, endpoint: WebhookEndpoint, delivery_id: int
) -> WebhookDelivery:
    """Queue the same event (same body and `webhook-id`) to the endpoint again, as a new
    delivery; 404 for another endpoint's delivery, 409 while the endpoint is disabled."""
    original = await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint.id
        )
    )
    if original is None:
        raise NotFound("Delivery not found")
    _require_active(endpoint)
    return await _queue(
        session,
        endpoint_id=endpoint.id,
        event_id=original.event_id,
        event_type=original.event_type,
        body=original.body,
    )


async def _queue(
    session: AsyncSession, *, endpoint_id: int, event_id: str, event_type: str, body: str
) -> WebhookDelivery:
    delivery = WebhookDelivery(
        endpoint_id=endpoint_id,
        event_id=event_id,
        event_type=event_type,
        body=body,
        state=DeliveryState.PENDING,
        attempt=0,
        next_attempt_at=utcnow(),
    )
    session.add(delivery)
    await session.flush()
    await session.refresh(delivery)
    return delivery
