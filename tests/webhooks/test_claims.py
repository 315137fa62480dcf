"""Deliveries are rows every process shares: concurrent claims take disjoint rows (FOR UPDATE
SKIP LOCKED on PostgreSQL), a claimed row is leased, and a lease that runs out (a process that
died) lets another process claim it again; a late outcome changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import select

from taskhub.config import Settings
from taskhub.db import utcnow
from taskhub.models import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookScope
from taskhub.webhooks.delivery import Claimed, DeliveryLoop
from taskhub.webhooks.sender import Attempt
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


async def test_a_claim_takes_no_more_than_its_batch(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    # On PostgreSQL the claim's locking subquery, planned as the inner side of a semi join,
    # ran again for every outer row and leased every due delivery (driver.claimed_once).
    app = await app_factory(settings_factory())
    await seed(app, deliveries=6)
    loop = loop_for(app, clock=later())
    assert len(await loop.claim(1)) == 1
    assert len(await loop.claim(2)) == 2
    assert len(await loop.claim(10)) == 3


async def test_outcomes_finishing_together_are_recorded_together(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    app = await app_factory(settings_factory())
    endpoint_id = await seed(app, deliveries=4)
    loop = loop_for(app, clock=later())
    claimed = await loop.claim(4)
    assert len(claimed) == 4
    async with app.state.sessionmaker() as session, session.begin():
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        endpoint.consecutive_failures = 3
    ok = Attempt(ok=True, status_code=204, latency_ms=5, error=None)
    no = Attempt(ok=False, status_code=503, latency_ms=7, error="HTTP 503")
    # The last one's lease runs out: another process claims it and records it first.
    late = claimed[3]
    other = loop_for(app, clock=later(1 + 7))
    (retaken,) = await other.claim(1)
    assert retaken.delivery_id == claimed[0].delivery_id  # the oldest lease comes first
    (retaken,) = [c for c in await other.claim(3) if c.delivery_id == late.delivery_id]
    await other.record(retaken, ok)
    # One transaction for the four: two successes, a first failure (retried: schedule [60])
    # and the late outcome (changes nothing).
    await loop.record_all([(claimed[0], ok), (claimed[1], no), (claimed[2], ok), (late, no)])
    async with app.state.sessionmaker() as session:
        rows = {row.id: row for row in await session.scalars(select(WebhookDelivery))}
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
    assert endpoint is not None
    first, second, third, fourth = (rows[c.delivery_id] for c in claimed)
    assert (first.state, first.attempt, first.status_code) == ("succeeded", 1, 204)
    assert (third.state, third.attempt, third.status_code) == ("succeeded", 1, 204)
    assert (second.state, second.attempt, second.error) == ("pending", 1, "HTTP 503")
    assert second.next_attempt_at is not None
    assert (fourth.state, fourth.attempt, fourth.status_code) == ("succeeded", 1, 204)
    # The successes reset the endpoint's run of failures; a retry does not count as one.
    assert endpoint.consecutive_failures == 0


async def test_concurrent_outcomes_share_transactions_and_all_land(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    app = await app_factory(settings_factory())
    await seed(app, deliveries=40)
    loop = loop_for(app, clock=later())
    claimed = await loop.claim(40)
    written: list[int] = []
    record_all = loop.record_all

    async def counting(outcomes: Sequence[tuple[Claimed, Attempt]]) -> None:
        written.append(len(outcomes))
        await record_all(outcomes)

    loop.record_all = counting  # type: ignore[method-assign]
    ok = Attempt(ok=True, status_code=200, latency_ms=1, error=None)
    await asyncio.gather(*(loop._record_soon(c, ok) for c in claimed))
    async with app.state.sessionmaker() as session:
        states = list(await session.scalars(select(WebhookDelivery.state)))
    assert states == ["succeeded"] * 40
    assert sum(written) == 40
    # The first outcome starts a transaction; the 39 that arrive meanwhile share the next.
    assert len(written) < 40
