"""A claim takes at most its batch. The claims are `UPDATE … WHERE id IN (SELECT … LIMIT n
FOR UPDATE SKIP LOCKED)`; PostgreSQL planned that subquery as the inner side of a semi join
on small tables and ran it again for every outer row, so LIMIT n bounded nothing: every
eligible row was claimed (driver.claimed_once). The webhook claim has its own test
(tests/webhooks/test_claims.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import func, select

from taskhub.config import Settings
from taskhub.db import utcnow
from taskhub.driver import in_session
from taskhub.messaging.relay import CLAIM_BATCH
from taskhub.models import Order, OrderStatus, OutboxEvent
from taskhub.orders.service import expire_reservations
from tests.conftest import client_for
from tests.factories import make_user


async def test_the_relay_claims_one_batch_of_the_outbox(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    app = await app_factory(settings_factory())
    async with app.state.sessionmaker() as session, session.begin():
        session.add_all(
            OutboxEvent(
                event_id=str(uuid.uuid4()),
                type="order.paid",
                version=1,
                payload={"order_id": i},
                occurred_at=utcnow(),
            )
            for i in range(6)
        )
    async with app.state.sessionmaker() as session, session.begin():
        claimed = await in_session(session).run(CLAIM_BATCH, batch=2, now=utcnow())
        assert len(claimed) == 2
        unpublished = await session.scalar(
            select(func.count()).where(OutboxEvent.published_at.is_(None))
        )
        assert unpublished == 4


async def test_expiry_cancels_one_batch_at_a_time(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    app = await app_factory(settings_factory())
    async with client_for(app) as client:
        user = await make_user(app, client, login=False)
    long_ago = utcnow() - timedelta(hours=1)
    async with app.state.sessionmaker() as session, session.begin():
        session.add_all(
            Order(
                user_id=user.id, status=OrderStatus.RESERVED, total_cents=100, reserved_at=long_ago
            )
            for _ in range(6)
        )
    cutoff = utcnow() - timedelta(minutes=15)
    sizes = []
    for _ in range(4):
        async with app.state.sessionmaker() as session, session.begin():
            sizes.append(await expire_reservations(in_session(session), cutoff=cutoff, batch=2))
    assert sizes == [2, 2, 2, 0]
