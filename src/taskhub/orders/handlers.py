"""Event handlers of the orders domain: reserve, release, expire.

Each runs inside apply_event's transaction, after the event id was recorded, and guards
every status change, so a redelivered or reordered event changes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.catalog import inventory
from taskhub.db import UTCDateTime, on_postgresql, table_of, utcnow
from taskhub.driver import DriverStatement
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.envelope import Envelope
from taskhub.models import MovementReason, Order, OrderItem, OrderStatus, ReservationState
from taskhub.orders.events import ORDER_CANCELLED, ORDER_CREATED, OrderEventPayload
from taskhub.orders.service import expire_reservations

logger = logging.getLogger("taskhub.orders")


_orders, _order_items = table_of(Order), table_of(OrderItem)
# Once per order, in the workers: compiled once, sent straight to the driver (taskhub.driver).
CLAIM_PENDING = DriverStatement(
    update(_orders)
    .where(_orders.c.id == bindparam("order_id"), _orders.c.status == OrderStatus.PENDING.value)
    .values(
        status=OrderStatus.RESERVED.value,
        reserved_at=bindparam("reserved"),
        updated_at=bindparam("now"),
    )
    .returning(_orders.c.id)
)
ORDER_LINES = DriverStatement(
    select(_order_items.c.product_id, _order_items.c.quantity).where(
        _order_items.c.order_id == bindparam("order_id")
    )
)
# PostgreSQL: the claim and the order's lines in one statement (no lines unless claimed).
CLAIM_WITH_LINES = DriverStatement(
    text(
        """
WITH claimed AS (
    UPDATE orders SET status = CAST(:reserved_status AS VARCHAR),
        reserved_at = CAST(:reserved AS TIMESTAMPTZ), updated_at = CAST(:now AS TIMESTAMPTZ)
    WHERE orders.id = CAST(:order_id AS INTEGER)
        AND orders.status = CAST(:pending_status AS VARCHAR)
    RETURNING orders.id
)
SELECT order_items.product_id, order_items.quantity
FROM order_items JOIN claimed ON order_items.order_id = claimed.id
"""
    ).bindparams(bindparam("reserved", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))
)
MARK_FAILED = DriverStatement(
    update(_orders)
    .where(_orders.c.id == bindparam("order_id"))
    .values(
        status=OrderStatus.FAILED.value,
        status_reason=bindparam("reason"),
        reserved_at=None,
        updated_at=bindparam("now"),
    )
)


async def reserve_stock(session: AsyncSession, envelope: Envelope) -> None:
    """order.created: hold stock for every line (RESERVED), or for none (FAILED)."""
    order_id = OrderEventPayload.model_validate(envelope.payload).order_id
    now = utcnow()
    # Taking PENDING → RESERVED first locks the order row: a racing cancel waits for us.
    if on_postgresql(session):
        # Every order has lines: none back means it was not claimed.
        lines = await CLAIM_WITH_LINES.run(
            session,
            order_id=order_id,
            reserved=now,
            now=now,
            reserved_status=OrderStatus.RESERVED.value,
            pending_status=OrderStatus.PENDING.value,
        )
    else:
        claimed = await CLAIM_PENDING.run(session, order_id=order_id, reserved=now, now=now)
        lines = await ORDER_LINES.run(session, order_id=order_id) if claimed else []
    if not lines:
        return  # cancelled before we got to it, or already handled
    short = await inventory.reserve(
        session,
        order_id=order_id,
        lines=[(int(row["product_id"]), int(row["quantity"])) for row in lines],
    )
    if short is not None:
        await MARK_FAILED.run(
            session, order_id=order_id, reason=f"insufficient stock for product {short}", now=now
        )


# The batch form of reserve_stock (PostgreSQL, the stream consumer): a batch of orders in a
# fixed number of statements. Locks are taken in the same global order as everywhere else,
# orders by ascending id and then products by ascending id, and with the strength an UPDATE
# takes (FOR NO KEY UPDATE): FOR UPDATE would also block the foreign-key checks of orders
# being created, which lock products in their lines' order, and deadlock with them.
LOCK_PENDING = DriverStatement(
    text(
        "SELECT orders.id FROM orders WHERE orders.id = ANY(CAST(:ids AS INTEGER[])) "
        "AND orders.status = CAST(:pending AS VARCHAR) ORDER BY orders.id FOR NO KEY UPDATE"
    )
)
LINES_OF = DriverStatement(
    text(
        "SELECT order_items.order_id, order_items.product_id, order_items.quantity "
        "FROM order_items WHERE order_items.order_id = ANY(CAST(:ids AS INTEGER[]))"
    )
)
LOCK_PRODUCTS = DriverStatement(
    text(
        "SELECT products.id, products.stock FROM products "
        "WHERE products.id = ANY(CAST(:ids AS INTEGER[])) AND products.deleted_at IS NULL "
        "ORDER BY products.id FOR NO KEY UPDATE"
    )
)
SETTLE_ORDERS = DriverStatement(
    text(
        """
UPDATE orders SET status = s.status, status_reason = s.reason,
    reserved_at = CASE WHEN s.status = CAST(:reserved AS VARCHAR)
        THEN CAST(:now AS TIMESTAMPTZ) END,
    updated_at = CAST(:now AS TIMESTAMPTZ)
FROM unnest(CAST(:ids AS INTEGER[]), CAST(:statuses AS VARCHAR[]), CAST(:reasons AS TEXT[]))
    AS s(id, status, reason)
WHERE orders.id = s.id
"""
    ).bindparams(bindparam("now", type_=UTCDateTime()))
)
TAKE_MANY = DriverStatement(
    text(
        """
UPDATE products SET stock = products.stock - t.quantity
FROM unnest(CAST(:product_ids AS INTEGER[]), CAST(:quantities AS INTEGER[]))
    AS t(id, quantity)
WHERE products.id = t.id
"""
    )
)
HOLD_MANY = DriverStatement(
    text(
        """
WITH held AS (
    INSERT INTO reservations (order_id, product_id, quantity, state)
    SELECT l.order_id, l.product_id, l.quantity, CAST(:held AS VARCHAR)
    FROM unnest(CAST(:order_ids AS INTEGER[]), CAST(:product_ids AS INTEGER[]),
        CAST(:quantities AS INTEGER[])) AS l(order_id, product_id, quantity)
    RETURNING order_id, product_id, quantity
)
INSERT INTO stock_movements (product_id, delta, reason, order_id, actor_id)
SELECT held.product_id, -held.quantity, CAST(:reason AS VARCHAR), held.order_id, NULL
FROM held
"""
    )
)


async def reserve_stock_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """order.created for many orders at once: each gets all its lines held, or FAILED.

    The outcome of every order is the one `reserve_stock` gives it, applying the orders in
    ascending id order: an order is reserved if every one of its lines fits in the stock
    the orders before it left, else it fails on its first short product (ascending ids).
    """
    order_ids = sorted({OrderEventPayload.model_validate(e.payload).order_id for e in envelopes})
    claimed = [
        int(row["id"])
        for row in await LOCK_PENDING.run(session, ids=order_ids, pending=OrderStatus.PENDING.value)
    ]
    if not claimed:
        return
    lines: dict[int, list[tuple[int, int]]] = {oid: [] for oid in claimed}
    for row in await LINES_OF.run(session, ids=claimed):
        lines[int(row["order_id"])].append((int(row["product_id"]), int(row["quantity"])))
    wanted = sorted({pid for order_lines in lines.values() for pid, _ in order_lines})
    stock = {
        int(row["id"]): int(row["stock"]) for row in await LOCK_PRODUCTS.run(session, ids=wanted)
    }
    statuses: list[str] = []
    reasons: list[str | None] = []
    taken: dict[int, int] = {}
    held: list[tuple[int, int, int]] = []
    for oid in claimed:
        order_lines = sorted(lines[oid])
        short = next((pid for pid, qty in order_lines if stock.get(pid, -1) < qty), None)
        if short is not None:
            statuses.append(OrderStatus.FAILED.value)
            reasons.append(f"insufficient stock for product {short}")
            continue
        for pid, qty in order_lines:
            stock[pid] -= qty
            taken[pid] = taken.get(pid, 0) + qty
            held.append((oid, pid, qty))
        statuses.append(OrderStatus.RESERVED.value)
        reasons.append(None)
    now = utcnow()
    await SETTLE_ORDERS.run(
        session,
        ids=claimed,
        statuses=statuses,
        reasons=reasons,
        reserved=OrderStatus.RESERVED.value,
        now=now,
    )
    if not held:
        return
    await TAKE_MANY.run(session, product_ids=list(taken), quantities=list(taken.values()))
    await HOLD_MANY.run(
        session,
        order_ids=[oid for oid, _, _ in held],
        product_ids=[pid for _, pid, _ in held],
        quantities=[qty for _, _, qty in held],
        held=ReservationState.HELD.value,
        reason=MovementReason.RESERVE.value,
    )


async def release_stock(session: AsyncSession, envelope: Envelope) -> None:
    """order.cancelled: give back the order's held stock (only `held` rows, once)."""
    order_id = OrderEventPayload.model_validate(envelope.payload).order_id
    status = await session.scalar(select(Order.status).where(Order.id == order_id))
    if status != OrderStatus.CANCELLED:
        logger.warning("order.cancelled for order %s in status %s: ignored", order_id, status)
        return
    await inventory.release(session, order_id=order_id)


def register(registry: Registry, *, reservation_ttl: timedelta) -> None:
    """Attach the orders handlers and the expiry job to `registry`."""
    registry.on(ORDER_CREATED, name="orders.reserve")(reserve_stock)
    registry.on_batch(ORDER_CREATED, name="orders.reserve")(reserve_stock_batch)
    registry.on(ORDER_CANCELLED, name="orders.release")(release_stock)

    async def expire(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        async with sessionmaker() as session, session.begin():
            return await expire_reservations(session, cutoff=utcnow() - reservation_ttl)

    registry.every("orders.expire")(expire)
