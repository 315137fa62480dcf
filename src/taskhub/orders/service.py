"""Orders: creation, reads, and the guarded transitions of design §3.

Every transition is one conditional UPDATE (`... WHERE status IN (...)`); when it matches
nothing the order is either invisible to the caller (404) or in another state (409, with the
current status). Stock is touched only through taskhub.catalog.inventory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.catalog import inventory
from taskhub.db import table_of, utcnow
from taskhub.driver_reads import DriverQuery
from taskhub.errors import Conflict, InvalidTransition, NotFound, Unprocessable
from taskhub.messaging.outbox import emit
from taskhub.models import Order, OrderItem, OrderStatus, User
from taskhub.models.order import OPEN_STATUSES
from taskhub.orders.events import ORDER_CANCELLED, ORDER_CREATED
from taskhub.orders.schemas import MAX_QUANTITY, OrderLineIn

MAX_TOTAL_CENTS = 2**31 - 1
_orders, _order_items = table_of(Order), table_of(OrderItem)
# The hottest write path: plain INSERTs compiled once, sent straight to the driver once the
# transaction is open (driver_reads).
INSERT_ORDER = DriverQuery(
    insert(_orders)
    .values(
        user_id=bindparam("user_id"),
        status=OrderStatus.PENDING.value,
        total_cents=bindparam("total_cents"),
    )
    .returning(_orders.c.id, _orders.c.created_at, _orders.c.updated_at)
)
INSERT_ITEM = DriverQuery(
    insert(_order_items).values(
        order_id=bindparam("order_id"),
        product_id=bindparam("product_id"),
        quantity=bindparam("quantity"),
        unit_price_cents=bindparam("unit_price_cents"),
    )
)


@dataclass(frozen=True, slots=True)
class OrderWithItems:
    """An order row and its lines."""

    order: Order
    items: Sequence[OrderItem]


async def create_order(
    session: AsyncSession, *, user: User, lines: Sequence[OrderLineIn], max_open_orders: int
) -> OrderWithItems:
    """Create a PENDING order with prices snapshotted, and its order.created event."""
    merged: dict[int, int] = {}
    first_index: dict[int, int] = {}
    for index, line in enumerate(lines):
        merged[line.product_id] = merged.get(line.product_id, 0) + line.quantity
        first_index.setdefault(line.product_id, index)
    too_many = [pid for pid, qty in merged.items() if qty > MAX_QUANTITY]
    if too_many:
        raise Unprocessable(
            f"At most {MAX_QUANTITY} units per product (after merging lines)",
            errors=[
                {"loc": ["body", "items", first_index[pid], "quantity"], "msg": "too many units"}
                for pid in too_many
            ],
        )
    if max_open_orders:
        await _check_open_order_quota(session, user_id=user.id, limit=max_open_orders)
    prices = await inventory.prices_of(session, product_ids=list(merged))
    unknown = [pid for pid in merged if pid not in prices]
    if unknown:
        raise Unprocessable(
            "Unknown product(s): " + ", ".join(str(pid) for pid in unknown),
            errors=[
                {
                    "loc": ["body", "items", first_index[pid], "product_id"],
                    "msg": f"unknown product {pid}",
                }
                for pid in unknown
            ],
        )
    total = sum(prices[pid] * qty for pid, qty in merged.items())
    if total > MAX_TOTAL_CENTS:
        raise Unprocessable(f"The order total may not exceed {MAX_TOTAL_CENTS} cents")
    created = (await INSERT_ORDER.run(session, user_id=user.id, total_cents=total))[0]
    order = Order(
        id=created["id"],
        user_id=user.id,
        status=OrderStatus.PENDING,
        status_reason=None,
        total_cents=total,
        created_at=created["created_at"],
        updated_at=created["updated_at"],
        reserved_at=None,
        confirmed_at=None,
        paid_at=None,
        cancelled_at=None,
    )
    items = [
        OrderItem(order_id=order.id, product_id=pid, quantity=qty, unit_price_cents=prices[pid])
        for pid, qty in sorted(merged.items())
    ]
    await INSERT_ITEM.run_many(
        session,
        [
            {
                "order_id": i.order_id,
                "product_id": i.product_id,
                "quantity": i.quantity,
                "unit_price_cents": i.unit_price_cents,
            }
            for i in items
        ],
    )
    await emit(session, type=ORDER_CREATED, payload={"order_id": order.id})
    return OrderWithItems(order=order, items=items)


async def get_order(session: AsyncSession, *, order_id: int, user: User) -> OrderWithItems:
    """An order the caller may see (theirs, or any for a site admin), or 404."""
    order = await session.scalar(
        select(Order)
        .where(Order.id == order_id, _visible_to(user))
        .execution_options(populate_existing=True)
    )
    if order is None:
        raise NotFound("Order not found")
    items = (
        await session.scalars(
            select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.product_id)
        )
    ).all()
    return OrderWithItems(order=order, items=items)


async def list_orders(
    session: AsyncSession,
    *,
    user: User,
    limit: int,
    before_id: int | None,
    status: OrderStatus | None,
) -> list[OrderWithItems]:
    """Newest first: the caller's orders, or everyone's for a site admin."""
    stmt = select(Order).where(_visible_to(user)).order_by(Order.id.desc()).limit(limit + 1)
    if before_id is not None:
        stmt = stmt.where(Order.id < before_id)
    if status is not None:
        stmt = stmt.where(Order.status == status)
    orders = list((await session.scalars(stmt)).all())
    by_order: dict[int, list[OrderItem]] = {o.id: [] for o in orders}
    if orders:
        rows = await session.scalars(
            select(OrderItem)
            .where(OrderItem.order_id.in_(list(by_order)))
            .order_by(OrderItem.order_id, OrderItem.product_id)
        )
        for item in rows:
            by_order[item.order_id].append(item)
    return [OrderWithItems(order=o, items=by_order[o.id]) for o in orders]


async def confirm_order(session: AsyncSession, *, order_id: int, user: User) -> OrderWithItems:
    """RESERVED → CONFIRMED."""
    await _transition(
        session,
        order_id=order_id,
        user=user,
        allowed=(OrderStatus.RESERVED,),
        values={"status": OrderStatus.CONFIRMED, "confirmed_at": utcnow()},
        verb="confirm",
    )
    return await get_order(session, order_id=order_id, user=user)


async def pay_order(session: AsyncSession, *, order_id: int, user: User) -> OrderWithItems:
    """RESERVED | CONFIRMED → PAID; the held stock is consumed."""
    await _transition(
        session,
        order_id=order_id,
        user=user,
        allowed=(OrderStatus.RESERVED, OrderStatus.CONFIRMED),
        values={"status": OrderStatus.PAID, "paid_at": utcnow()},
        verb="pay",
    )
    await inventory.consume(session, order_id=order_id)
    return await get_order(session, order_id=order_id, user=user)


async def cancel_order(session: AsyncSession, *, order_id: int, user: User) -> OrderWithItems:
    """PENDING | RESERVED | CONFIRMED → CANCELLED; the release handler gives stock back."""
    reason = "cancelled by the customer" if not user.is_superuser else "cancelled by an admin"
    await _transition(
        session,
        order_id=order_id,
        user=user,
        allowed=OPEN_STATUSES,
        values={"status": OrderStatus.CANCELLED, "status_reason": reason, "cancelled_at": utcnow()},
        verb="cancel",
    )
    await emit(session, type=ORDER_CANCELLED, payload={"order_id": order_id})
    return await get_order(session, order_id=order_id, user=user)


async def expire_reservations(session: AsyncSession, *, cutoff: datetime, batch: int = 500) -> int:
    """Cancel RESERVED orders reserved before `cutoff` (reason "expired"); returns how many."""
    candidates = select(Order.id).where(
        Order.status == OrderStatus.RESERVED, Order.reserved_at < cutoff
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list((await session.scalars(candidates.order_by(Order.id).limit(batch))).all())
    if not ids:
        return 0
    expired = (
        await session.scalars(
            update(Order)
            .where(Order.id.in_(ids), Order.status == OrderStatus.RESERVED)
            .values(
                status=OrderStatus.CANCELLED,
                status_reason="expired",
                cancelled_at=utcnow(),
                updated_at=func.now(),
            )
            .returning(Order.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for order_id in expired:
        await emit(session, type=ORDER_CANCELLED, payload={"order_id": order_id})
    return len(expired)


async def _transition(
    session: AsyncSession,
    *,
    order_id: int,
    user: User,
    allowed: Sequence[OrderStatus],
    values: dict[str, object],
    verb: str,
) -> None:
    result = await session.execute(
        update(Order)
        .where(Order.id == order_id, _visible_to(user), Order.status.in_(allowed))
        .values(updated_at=func.now(), **values)
        .returning(Order.id)
        .execution_options(synchronize_session=False)
    )
    if result.scalar_one_or_none() is not None:
        return
    current = await session.scalar(
        select(Order.status).where(Order.id == order_id, _visible_to(user))
    )
    if current is None:
        raise NotFound("Order not found")
    raise InvalidTransition(
        f"Cannot {verb} an order that is {current}", current_status=str(current)
    )


async def _check_open_order_quota(session: AsyncSession, *, user_id: int, limit: int) -> None:
    # Lock the user's row so that concurrent creations by one user count one at a time.
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    open_orders = await session.scalar(
        select(func.count())
        .select_from(Order)
        .where(Order.user_id == user_id, Order.status.in_(OPEN_STATUSES))
    )
    if (open_orders or 0) >= limit:
        raise Conflict(
            f"You have {open_orders} open orders, the most allowed; pay or cancel some first",
            limit=limit,
        )


def _visible_to(user: User) -> ColumnElement[bool]:
    if user.is_superuser:
        return Order.id.is_not(None)
    return Order.user_id == user.id
