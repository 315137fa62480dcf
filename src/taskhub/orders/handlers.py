"""Event handlers of the orders domain: reserve, release, expire.

Each runs inside apply_event's transaction, after the event id was recorded, and guards
every status change, so a redelivered or reordered event changes nothing twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.catalog import inventory
from taskhub.db import utcnow
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.envelope import Envelope
from taskhub.models import Order, OrderItem, OrderStatus
from taskhub.orders.events import ORDER_CANCELLED, ORDER_CREATED, OrderEventPayload
from taskhub.orders.service import expire_reservations

logger = logging.getLogger("taskhub.orders")


async def reserve_stock(session: AsyncSession, envelope: Envelope) -> None:
    """order.created: hold stock for every line (RESERVED), or for none (FAILED)."""
    order_id = OrderEventPayload.model_validate(envelope.payload).order_id
    # Taking PENDING → RESERVED first locks the order row: a racing cancel waits for us.
    claimed = await session.scalar(
        update(Order)
        .where(Order.id == order_id, Order.status == OrderStatus.PENDING)
        .values(status=OrderStatus.RESERVED, reserved_at=utcnow(), updated_at=func.now())
        .returning(Order.id)
        .execution_options(synchronize_session=False)
    )
    if claimed is None:
        return  # cancelled before we got to it, or already handled
    lines = (
        await session.execute(
            select(OrderItem.product_id, OrderItem.quantity).where(OrderItem.order_id == order_id)
        )
    ).all()
    short = await inventory.reserve(
        session, order_id=order_id, lines=[(int(p), int(q)) for p, q in lines]
    )
    if short is not None:
        await session.execute(
            update(Order)
            .where(Order.id == order_id)
            .values(
                status=OrderStatus.FAILED,
                status_reason=f"insufficient stock for product {short}",
                reserved_at=None,
                updated_at=func.now(),
            )
            .execution_options(synchronize_session=False)
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
