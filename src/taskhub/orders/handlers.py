"""Event handlers of the orders domain: reserve, release, expire.

The reservation's outcome is an event of its own (order.reserved or order.failed), written
in the handler's transaction.

Each runs inside the dispatcher's transaction, after the event ids were recorded, and guards
every status change, so a redelivered or reordered event changes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Integer, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.catalog import inventory
from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver import DriverStatement, in_list, in_session
from taskhub.messaging import outbox
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.envelope import Envelope
from taskhub.models import Order, OrderItem, OrderStatus
from taskhub.orders.events import (
    ORDER_CANCELLED,
    ORDER_CREATED,
    ORDER_EVENTS,
    ORDER_FAILED,
    ORDER_RESERVED,
    OrderEventPayload,
    order_payload,
)
from taskhub.orders.service import expire_reservations

logger = logging.getLogger("taskhub.orders")

_orders, _items = table_of(Order), table_of(OrderItem)
# The orders still to reserve, locked in ascending id order (the global lock order: orders,
# then products), with their lines. FOR NO KEY UPDATE: the strength of the UPDATE to come.
LOCK_PENDING_WITH_LINES = DriverStatement(
    select(_orders.c.id, _orders.c.user_id, _items.c.product_id, _items.c.quantity)
    .join(_items, _items.c.order_id == _orders.c.id)
    .where(
        in_list(_orders.c.id, "order_ids"),
        _orders.c.status == OrderStatus.PENDING.value,
    )
    .order_by(_orders.c.id, _items.c.product_id)
    .with_for_update(key_share=True, of=_orders)
)
SETTLE = DriverStatement(
    update(_orders)
    .where(
        _orders.c.id == bindparam("order_id", type_=Integer()),
        _orders.c.status == OrderStatus.PENDING.value,
    )
    .values(
        status=bindparam("outcome"),
        status_reason=bindparam("reason"),
        reserved_at=bindparam("reserved", type_=UTCDateTime()),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
)
ORDER_STATUS = DriverStatement(
    select(_orders.c.status).where(_orders.c.id == bindparam("order_id", type_=Integer()))
)


async def reserve_stock(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """order.created, for one order or a batch: each gets all its lines held (RESERVED), or
    none of them (FAILED, naming the first product that fell short); each outcome is an
    order.reserved or order.failed event.

    Orders are decided in ascending id order (catalog.inventory.reserve), so a batch gives
    every order the outcome it would get on its own in that order.
    """
    db = in_session(session)
    order_ids = sorted({OrderEventPayload.model_validate(e.payload).order_id for e in envelopes})
    lines: dict[int, list[tuple[int, int]]] = {}
    owners: dict[int, int] = {}
    for row in await db.run(LOCK_PENDING_WITH_LINES, order_ids=order_ids):
        lines.setdefault(int(row["id"]), []).append((int(row["product_id"]), int(row["quantity"])))
        owners[int(row["id"])] = int(row["user_id"])
    if not lines:
        return  # cancelled before we got to them, or already handled
    outcomes = await inventory.reserve(db, orders=lines)
    now = utcnow()
    settled = []
    events = []
    for order_id, short in sorted(outcomes.items()):
        owner = owners[order_id]
        if short is None:
            status, reason, reserved_at = OrderStatus.RESERVED, None, now
            events.append(
                (ORDER_RESERVED, order_payload(order_id=order_id, user_id=owner, status=status))
            )
        else:
            status, reserved_at = OrderStatus.FAILED, None
            reason = (
                f"product {short.product_id} is no longer available"
                if short.gone
                else f"insufficient stock for product {short.product_id}"
            )
            events.append(
                (
                    ORDER_FAILED,
                    order_payload(order_id=order_id, user_id=owner, status=status, reason=reason),
                )
            )
        settled.append(
            {
                "order_id": order_id,
                "outcome": status.value,
                "reason": reason,
                "reserved": reserved_at,
                "now": now,
            }
        )
    # The orders are locked (LOCK_PENDING_WITH_LINES): every SETTLE matches its order.
    await db.run_many(SETTLE, settled)
    await outbox.emit_many(db, events)


async def release_stock(session: AsyncSession, envelope: Envelope) -> None:
    """order.cancelled: give back the order's held stock (only `held` rows, once)."""
    order_id = OrderEventPayload.model_validate(envelope.payload).order_id
    db = in_session(session)
    found = await db.run(ORDER_STATUS, order_id=order_id)
    status = found[0]["status"] if found else None
    if status != OrderStatus.CANCELLED.value:
        logger.warning("order.cancelled for order %s in status %s: ignored", order_id, status)
        return
    await inventory.release(db, order_ids=[order_id])


async def _reserve_one(session: AsyncSession, envelope: Envelope) -> None:
    """order.created, delivered alone: a batch of one."""
    await reserve_stock(session, [envelope])


def register(registry: Registry, *, reservation_ttl: timedelta) -> None:
    """Attach the orders handlers and the expiry job to `registry`; every order event type
    is known to it (the webhook fan-out handles those no handler here reacts to)."""
    registry.declare(*ORDER_EVENTS)
    registry.on(ORDER_CREATED, name="orders.reserve")(_reserve_one)
    registry.on_batch(ORDER_CREATED, name="orders.reserve")(reserve_stock)
    registry.on(ORDER_CANCELLED, name="orders.release")(release_stock)

    async def expire(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        async with sessionmaker() as session, session.begin():
            return await expire_reservations(in_session(session), cutoff=utcnow() - reservation_ttl)

    registry.every("orders.expire")(expire)
