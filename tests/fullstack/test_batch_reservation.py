"""The batch form of the reservation handler gives every order the outcome the one-by-one
handler gives it, applying the orders in ascending id order (orders.handlers)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from taskhub.db import utcnow
from taskhub.events import build_registry
from taskhub.messaging.dispatch import apply_batch, apply_event
from taskhub.messaging.envelope import Envelope
from taskhub.orders.events import ORDER_CREATED
from tests.fullstack.stack import Stack, stock_of
from tests.invariants import assert_stock_invariant

pytestmark = [pytest.mark.pg, pytest.mark.redis]


def created(order_id: int) -> Envelope:
    return Envelope(
        id=uuid.uuid4(),
        type=ORDER_CREATED,
        occurred_at=utcnow(),
        version=1,
        payload={"order_id": order_id},
    )


async def states(stack: Stack, ids: list[int]) -> dict[int, tuple[str, str | None]]:
    async with stack.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, status, status_reason FROM orders WHERE id = ANY(:ids)"),
            {"ids": ids},
        )
        return {row.id: (row.status, row.status_reason) for row in rows}


async def test_a_batch_reserves_in_id_order_all_lines_or_none(
    stack_factory: Callable[..., Any],
) -> None:
    stack: Stack = await stack_factory()
    a, b, gone = [await stack.product(stock=s) for s in (5, 3, 10)]
    first = await stack.order([(a, 2), (b, 1)])  # fits: a 3, b 2 left
    second = await stack.order([(a, 4)])  # short on a (3 left)
    third = await stack.order([(b, 2), (a, 3)])  # fits exactly: a 0, b 0
    fourth = await stack.order([(b, 1)])  # short on b
    cancelled = await stack.order([(a, 1)])
    r = await stack.client.post(
        f"/api/v2/orders/{cancelled}/cancel", headers=stack.customer.headers
    )
    assert r.status_code == 200
    archived = await stack.order([(gone, 1)])
    r = await stack.client.delete(f"/api/v2/products/{gone}", headers=stack.admin.headers)
    assert r.status_code == 409  # an open order uses it: archive it behind the API's back
    async with stack.engine.begin() as conn:
        await conn.execute(
            text("UPDATE products SET deleted_at = now() WHERE id = :id"), {"id": gone}
        )

    registry = build_registry(stack.settings)
    assert registry.batchable(ORDER_CREATED)
    events = [created(i) for i in (fourth, first, cancelled, third, archived, second)]
    await apply_batch(stack.app.state.sessionmaker, registry, events)

    assert await states(stack, [first, second, third, fourth, cancelled, archived]) == {
        first: ("RESERVED", None),
        second: ("FAILED", f"insufficient stock for product {a}"),
        third: ("RESERVED", None),
        fourth: ("FAILED", f"insufficient stock for product {b}"),
        cancelled: ("CANCELLED", "cancelled by the customer"),
        archived: ("FAILED", f"product {gone} is no longer available"),
    }
    assert (await stock_of(stack.engine, a), await stock_of(stack.engine, b)) == (0, 0)
    async with stack.engine.connect() as conn:
        held = await conn.execute(
            text(
                "SELECT order_id, product_id, quantity FROM reservations "
                "WHERE state = 'held' ORDER BY order_id, product_id"
            )
        )
        assert [tuple(row) for row in held] == sorted(
            [(first, a, 2), (first, b, 1), (third, a, 3), (third, b, 2)]
        )
        reserved_at = await conn.scalar(
            text("SELECT count(*) FROM orders WHERE reserved_at IS NOT NULL AND id = ANY(:ids)"),
            {"ids": [first, third]},
        )
        assert reserved_at == 2
    await assert_stock_invariant(stack.engine)

    # Redelivered, alone or in a batch, the events change nothing.
    await apply_batch(stack.app.state.sessionmaker, registry, events)
    for event in events:
        await apply_event(stack.app.state.sessionmaker, registry, event)
    assert (await stock_of(stack.engine, a), await stock_of(stack.engine, b)) == (0, 0)
    await assert_stock_invariant(stack.engine)


async def test_a_failing_batch_changes_nothing(stack_factory: Callable[..., Any]) -> None:
    stack: Stack = await stack_factory()
    product = await stack.product(stock=5)
    order = await stack.order([(product, 1)])
    registry = build_registry(stack.settings)
    bad = Envelope(id=uuid.uuid4(), type=ORDER_CREATED, occurred_at=utcnow(), version=1, payload={})
    with pytest.raises(Exception):  # noqa: B017, PT011 - the payload fails validation
        await apply_batch(stack.app.state.sessionmaker, registry, [created(order), bad])
    assert (await states(stack, [order]))[order] == ("PENDING", None)
    async with stack.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM processed_events")) == 0
