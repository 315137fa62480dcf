"""Deliveries are rows every process shares: concurrent claims take disjoint rows (FOR UPDATE
SKIP LOCKED on PostgreSQL), a claimed row is leased, and a lease that runs out (a process that
died) lets another process claim it again; a late outcome changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import select

from taskhub.config import Settings
from taskhub.db import utcnow
from taskhub.models import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookScope
from taskhub.webhooks.delivery import Attempt, DeliveryLoop
from tests.conftest import client_for
from tests.factories import make_user

# The rows are due a day from now: the app's own delivery loop never takes them; the loops
# of these tests see them due through their clocks.
DUE_IN = timedelta(days=1)


def later(seconds: float = 1) -> Callable[[], datetime]:
    """A clock `DUE_IN` (and `seconds`) ahead of the real one."""
    return lambda: utcnow() + DUE_IN + timedelta(seconds=seconds)


async def seed(app: FastAPI, *, deliveries: int) -> int:
    """An endpoint with `deliveries` deliveries due in `DUE_IN`; the endpoint's id."""
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
                next_attempt_at=utcnow() + DUE_IN,
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
    app = await app_factory(settings_factory())
    await seed(app, deliveries=60)
    loops = [loop_for(app, clock=later()) for _ in range(4)]
    claims = await asyncio.gather(*(loop.claim(25) for loop in loops))
    ids = [c.delivery_id for claim in claims for c in claim]
    assert len(ids) == 60
    assert len(set(ids)) == 60  # no row went to two claims
    # Leased: nothing is due any more, until the leases (1 s timeout + 5 s) run out.
    assert await loops[0].claim(100) == []
    again = await loop_for(app, clock=later(1 + 7)).claim(100)
    assert sorted(c.delivery_id for c in again) == sorted(ids)


async def test_a_late_outcome_changes_nothing(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    app = await app_factory(settings_factory())
    await seed(app, deliveries=1)
    slow = loop_for(app, clock=later())
    (first,) = await slow.claim(1)
    # Its lease runs out; another process claims the delivery and records a success.
    fast = loop_for(app, clock=later(1 + 7))
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
