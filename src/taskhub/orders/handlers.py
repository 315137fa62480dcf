"""Event handlers of the orders domain: reserve, release, expire.

Each runs inside apply_event's transaction, after the event id was recorded, and guards
every status change, so a redelivered or reordered event changes nothing twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.catalog import inventory
from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver_reads import DriverQuery
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.envelope import Envelope
from taskhub.models import Order, OrderItem, OrderStatus
from taskhub.orders.events import ORDER_CANCELLED, ORDER_CREATED, OrderEventPayload
from taskhub.orders.service import expire_reservations

logger = logging.getLogger("taskhub.orders")


_orders, _order_items = table_of(Order), table_of(OrderItem)
# Once per order, in the workers: compiled once, sent straight to the driver (driver_reads).
CLAIM_PENDING = DriverQuery(
    update(_orders)
    .where(_orders.c.id == bindparam("order_id"), _orders.c.status == OrderStatus.PENDING.value)
    .values(
        status=OrderStatus.RESERVED.value,
        reserved_at=bindparam("reserved"),
        updated_at=bindparam("now"),
    )
    .returning(_orders.c.id)
)
ORDER_LINES = DriverQuery(
    select(_order_items.c.product_id, _order_items.c.quantity).where(
        _order_items.c.order_id == bindparam("order_id")
    )
)
# PostgreSQL: the claim and the order's lines in one statement (no lines unless claimed).
CLAIM_WITH_LINES = DriverQuery(
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
MARK_FAILED = DriverQuery(
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
    if session.bind is not None and session.bind.dialect.name == "postgresql":
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
    registry.on(ORDER_CANCELLED, name="orders.release")(release_stock)

    async def expire(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        async with sessionmaker() as session, session.begin():
            return await expire_reservations(session, cutoff=utcnow() - reservation_ttl)

    registry.every("orders.expire")(expire)
