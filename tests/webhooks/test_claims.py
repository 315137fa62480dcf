"""Deliveries are rows every process shares: concurrent claims take disjoint rows (FOR UPDATE
SKIP LOCKED on PostgreSQL), a claimed row is leased, and a lease that runs out (a process that
died) lets another process claim it again; a late outcome changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import select

from taskhub.config import Settings
from taskhub.db import utcnow
from taskhub.models import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookScope
from taskhub.webhooks.delivery import Attempt, DeliveryLoop
from tests.conftest import client_for
from tests.factories import make_user


async def seed(app: FastAPI, *, deliveries: int) -> int:
    """An endpoint with `deliveries` due deliveries; the endpoint's id."""
    async with client_for(app) as client:
        user = await make_user(app, client, login=False)
    async with app.state.sessionmaker() as session, session.begin():
        endpoint = WebhookEndpoint(
            scope=WebhookScope.OWN,
            owner_id=user.id,
            url="http://127.0.0.1:9/hook",
            events=["order.*"],
            secret="whsec_" + "A" * 43 + "=",
            active=True,
            consecutive_failures=0,
        )
        session.add(endpoint)
        await session.flush()
        session.add_all(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event_id=f"00000000-0000-4000-8000-{i:012d}",
                event_type="order.paid",
                body="{}",
                state=DeliveryState.PENDING,
                attempt=0,
                next_attempt_at=utcnow() - timedelta(seconds=1),
            )
            for i in range(deliveries)
        )
        return endpoint.id


def loop_for(app: FastAPI, **kwargs: object) -> DeliveryLoop:
    return DeliveryLoop(
        sessionmaker=app.state.sessionmaker,
        schedule=[60],
        timeout=1,
        concurrency=1,
        allow_private=True,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_concurrent_claims_take_disjoint_rows_and_leases_run_out(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    # The app's own delivery loop must not take them: it only claims what is due, and the
    # rows are made due for the loops of this test alone by their clocks (see below).
    app = await app_factory(settings_factory())
    app_loop_never_sees = timedelta(days=1)
    await seed(app, deliveries=60)
    async with app.state.sessionmaker() as session, session.begin():
        for delivery in await session.scalars(select(WebhookDelivery)):
            delivery.next_attempt_at = utcnow() + app_loop_never_sees
    later = lambda: utcnow() + app_loop_never_sees + timedelta(seconds=1)  # noqa: E731
    loops = [loop_for(app, clock=later) for _ in range(4)]
    claims = await asyncio.gather(*(loop.claim(25) for loop in loops))
    ids = [c.delivery_id for claim in claims for c in claim]
    assert len(ids) == 60
    assert len(set(ids)) == 60  # no row went to two claims
    # Leased: nothing is due any more, until the leases (1 s timeout + 5 s) run out.
    assert await loops[0].claim(100) == []
    after_lease = lambda: later() + timedelta(seconds=7)  # noqa: E731
    again = await loop_for(app, clock=after_lease).claim(100)
    assert sorted(c.delivery_id for c in again) == sorted(ids)


async def test_a_late_outcome_changes_nothing(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    app = await app_factory(settings_factory())
    await seed(app, deliveries=1)
    async with app.state.sessionmaker() as session, session.begin():
        delivery = await session.scalar(select(WebhookDelivery))
        assert delivery is not None
        delivery.next_attempt_at = utcnow() + timedelta(days=1)
    later = lambda: utcnow() + timedelta(days=1, seconds=1)  # noqa: E731
    slow = loop_for(app, clock=later)
    (first,) = await slow.claim(1)
    # Its lease runs out; another process claims the delivery and records a success.
    much_later = lambda: later() + timedelta(seconds=7)  # noqa: E731
    fast = loop_for(app, clock=much_later)
    (second,) = await fast.claim(1)
    assert second.delivery_id == first.delivery_id
    await fast.record(second, Attempt(ok=True, status_code=204, latency_ms=5, error=None))
    # The first process's outcome arrives late: it is ignored.
    await slow.record(first, Attempt(ok=False, status_code=500, latency_ms=9, error="HTTP 500"))
    async with app.state.sessionmaker() as session:
        row = await session.scalar(select(WebhookDelivery))
        endpoint = await session.scalar(select(WebhookEndpoint))
    assert row is not None and endpoint is not None
    assert (row.state, row.attempt, row.status_code, row.error) == ("succeeded", 1, 204, None)
    assert endpoint.consecutive_failures == 0
