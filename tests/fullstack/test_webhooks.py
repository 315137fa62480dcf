"""Webhook deliveries in the full stack: real `taskhub worker` processes share the delivery
rows, and deliveries survive workers killed with SIGKILL; a real receiver process verifies
every signature (standardwebhooks), fails for a while, and deduplicates by webhook-id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from taskhub.models import DeliveryState, OutboxEvent, WebhookDelivery
from tests.fullstack.conftest import WorkerProcess
from tests.fullstack.stack import Stack
from tests.polling import eventually
from tests.webhooks.conftest import Receiver, receivers  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.pg, pytest.mark.redis]

WORKER_ENV = {
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_RETRY_SCHEDULE": "0.2,0.2,0.2,0.2,0.2,0.2",
    # A lease is twice the timeout: a killed worker's deliveries are taken over after 4 s.
    "WEBHOOK_TIMEOUT_SECONDS": "2",
}


async def test_deliveries_survive_workers_killed_mid_delivery(
    stack_factory: Callable[..., Any],
    workers: Callable[..., WorkerProcess],
    receivers: Callable[[], Awaitable[Receiver]],  # noqa: F811
) -> None:
    stack: Stack = await stack_factory(webhook_allow_private=True)
    receiver = await receivers()
    r = await stack.client.post(
        "/api/v2/webhooks", json={"url": receiver.url()}, headers=stack.customer.headers
    )
    assert r.status_code == 201, r.text
    endpoint = r.json()
    # Slow answers, the first 30 of them failures: attempts are in flight when a worker dies.
    await receiver.control(secret=endpoint["secret"], fail_remaining=30, delay=1.0)
    product = await stack.product(stock=100)
    first = workers(stack.settings, **WORKER_ENV)
    orders = await stack.orders([[(product, 1)] for _ in range(20)], parallel=10)

    def requests(at_least: int) -> Callable[[dict[str, Any]], bool]:
        return lambda report: sum(report["requests"].values()) >= at_least

    await receiver.wait_for(requests(8), timeout=60, what="the first worker's attempts")
    first.kill9()  # the only worker, with attempts in flight
    second = workers(stack.settings, **WORKER_ENV)
    await receiver.wait_for(requests(30), timeout=60, what="the second worker's attempts")
    second.kill9()
    # No worker is left: the deliveries wait in the database. Two new workers share them,
    # and their first five answers are failures too.
    await receiver.control(delay=0.2, fail_remaining=5)
    finishers = [workers(stack.settings, **WORKER_ENV) for _ in range(2)]
    report = await receiver.wait_for(
        lambda r: len(r["accepted"]) == 40, timeout=90, what="every order event, once each"
    )
    await stack.wait_drained(30, finishers)

    async def all_recorded() -> bool:
        # The receiver may have accepted an attempt whose worker died before recording it:
        # that delivery is made again once its lease runs out.
        async with stack.engine.connect() as conn:
            pending = await conn.scalar(
                select(func.count()).where(WebhookDelivery.state == DeliveryState.PENDING)
            )
        return pending == 0

    await eventually(all_recorded, timeout=60, what="every delivery to be recorded")
    async with stack.engine.connect() as conn:
        events = {
            str(event_id)
            for event_id in await conn.scalars(
                select(OutboxEvent.event_id).where(
                    OutboxEvent.type.in_(["order.created", "order.reserved"])
                )
            )
        }
        rows = (
            await conn.execute(
                select(WebhookDelivery.event_id, WebhookDelivery.state, WebhookDelivery.attempt)
            )
        ).all()
    assert report["rejected"] == []
    assert {a["webhook_id"] for a in report["accepted"]} == events
    assert len(events) == 2 * len(orders)
    assert {a["event"]["payload"]["order_id"] for a in report["accepted"]} == set(orders)
    # One delivery row per event (the fan-out queued nothing twice), each succeeded.
    assert sorted(event_id for event_id, _, _ in rows) == sorted(events)
    assert {state for _, state, _ in rows} == {DeliveryState.SUCCEEDED.value}
    # The killed workers' failures may all have been in flight (never recorded); the
    # finishers' five were recorded, and retried. Attempts in flight when a worker died were
    # made again (at least once): more requests than recorded attempts.
    recorded = sum(attempt for _, _, attempt in rows)
    assert recorded >= 40 + 5
    assert sum(report["requests"].values()) >= 30 + 5 + 40
    assert sum(report["requests"].values()) > recorded
