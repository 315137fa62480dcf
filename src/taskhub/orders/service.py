"""Orders: creation, reads, and the guarded transitions of design §3.

Every transition is one conditional UPDATE (`... WHERE status IN (...)`); when it matches
nothing the order is either invisible to the caller (404) or in another state (409, with the
current status). Stock is touched only through taskhub.catalog.inventory.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from taskhub.auth.principal import Principal
from taskhub.auth.tokens import valid_caller_sql
from taskhub.catalog import inventory
from taskhub.db import UTCDateTime, on_postgresql, table_of, utcnow
from taskhub.driver import DriverStatement, connection
from taskhub.errors import Conflict, InvalidTransition, NotFound, Unauthorized, Unprocessable
from taskhub.messaging.outbox import emit
from taskhub.models import Order, OrderItem, OrderStatus, User
from taskhub.models.order import OPEN_STATUSES
from taskhub.observability import request_id_var
from taskhub.orders.documents import order_document
from taskhub.orders.events import ORDER_CANCELLED, ORDER_CREATED
from taskhub.orders.schemas import MAX_QUANTITY, OrderLineIn
from taskhub.security import TokenClaims

MAX_TOTAL_CENTS = 2**31 - 1
_orders, _order_items = table_of(Order), table_of(OrderItem)
# The hottest write path: plain INSERTs compiled once, sent straight to the driver once the
# transaction is open (taskhub.driver).
INSERT_ORDER = DriverStatement(
    insert(_orders)
    .values(
        user_id=bindparam("user_id"),
        status=OrderStatus.PENDING.value,
        total_cents=bindparam("total_cents"),
    )
    .returning(_orders.c.id, _orders.c.created_at, _orders.c.updated_at)
)
INSERT_ITEM = DriverStatement(
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


class _Lines:
    """An order's lines merged per product (quantities added), checked against the caps."""

    def __init__(self, lines: Sequence[OrderLineIn]) -> None:
        self.merged: dict[int, int] = {}
        self.first_index: dict[int, int] = {}
        for index, line in enumerate(lines):
            self.merged[line.product_id] = self.merged.get(line.product_id, 0) + line.quantity
            self.first_index.setdefault(line.product_id, index)
        too_many = [pid for pid, qty in self.merged.items() if qty > MAX_QUANTITY]
        if too_many:
            raise Unprocessable(
                f"At most {MAX_QUANTITY} units per product (after merging lines)",
                errors=[self._error(pid, "quantity", "too many units") for pid in too_many],
            )

    def total(self, prices: dict[int, int]) -> int:
        """The order total at these prices; 422 if a product is unknown or it is too large."""
        unknown = [pid for pid in self.merged if pid not in prices]
        if unknown:
            raise Unprocessable(
                "Unknown product(s): " + ", ".join(str(pid) for pid in unknown),
                errors=[
                    self._error(pid, "product_id", f"unknown product {pid}") for pid in unknown
                ],
            )
        total = sum(prices[pid] * qty for pid, qty in self.merged.items())
        if total > MAX_TOTAL_CENTS:
            raise Unprocessable(f"The order total may not exceed {MAX_TOTAL_CENTS} cents")
        return total

    def pending_order(
        self, *, user_id: int, created: Mapping[str, Any], prices: dict[int, int], total: int
    ) -> OrderWithItems:
        """The order just inserted (`created`: its id and timestamps) with its lines."""
        order = Order(
            id=created["id"],
            user_id=user_id,
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
            for pid, qty in sorted(self.merged.items())
        ]
        return OrderWithItems(order=order, items=items)

    def pending_document(
        self, *, user_id: int, created: Mapping[str, Any], prices: dict[int, int]
    ) -> dict[str, Any]:
        """`pending_order` as the API document (`order_document`), without ORM objects."""
        pending = {
            **created,
            "user_id": user_id,
            "status": OrderStatus.PENDING.value,
            "total_cents": self.total(prices),
        }
        lines = [(pid, qty, prices[pid]) for pid, qty in sorted(self.merged.items())]
        return order_document(pending, lines)

    def _error(self, pid: int, field: str, msg: str) -> dict[str, object]:
        return {"loc": ["body", "items", self.first_index[pid], field], "msg": msg}


async def create_order(
    session: AsyncSession, *, user: Principal, lines: Sequence[OrderLineIn], max_open_orders: int
) -> OrderWithItems:
    """Create a PENDING order with prices snapshotted, and its order.created event.

    In the session's transaction (an Idempotency-Key claim shares it, and SQLite has no
    writes in CTEs); on PostgreSQL without a key, `place_order` does the same in one statement.
    """
    checked = _Lines(lines)
    merged = checked.merged
    if max_open_orders:
        await _check_open_order_quota(session, user_id=user.id, limit=max_open_orders)
    prices = await inventory.prices_of(session, product_ids=list(merged))
    total = checked.total(prices)
    created = (await INSERT_ORDER.run(session, user_id=user.id, total_cents=total))[0]
    view = checked.pending_order(user_id=user.id, created=created, prices=prices, total=total)
    await INSERT_ITEM.run_many(
        session,
        [
            {
                "order_id": i.order_id,
                "product_id": i.product_id,
                "quantity": i.quantity,
                "unit_price_cents": i.unit_price_cents,
            }
            for i in view.items
        ],
    )
    await emit(session, type=ORDER_CREATED, payload={"order_id": view.order.id})
    return view


# PostgreSQL: the whole creation in one statement, so one round trip and no BEGIN/COMMIT.
# Prices, the order, its lines and the order.created event come from one snapshot and are
# written together or not at all; the order row is only inserted if the token is still valid
# (the route reads only the token: `valid_caller`, key-share locked so that the account cannot
# be deleted under the statement), every product is orderable, the total fits,
# and (with a quota) the user has room for another open order. Every priced line comes back,
# with the new order's columns (NULL when nothing was written), so that a refusal can be
# explained.
PLACE_ORDER = DriverStatement(
    text(
        f"""
WITH account AS (
    {valid_caller_sql(User.id, lock=True)}
), line AS (
    SELECT * FROM unnest(CAST(:product_ids AS INTEGER[]), CAST(:quantities AS INTEGER[]))
        AS l(product_id, quantity)
), priced AS (
    SELECT line.product_id, line.quantity, products.price_cents
    FROM line JOIN products ON products.id = line.product_id AND products.deleted_at IS NULL
), open_orders AS (
    SELECT CASE WHEN CAST(:quota AS INTEGER) > 0 THEN (
        SELECT count(*) FROM orders
        WHERE orders.user_id = CAST(:user_id AS INTEGER)
            AND orders.status = ANY(CAST(:open AS VARCHAR[]))
    ) ELSE 0 END AS n
), new_order AS (
    INSERT INTO orders (user_id, status, total_cents)
    SELECT CAST(:user_id AS INTEGER), 'PENDING',
        sum(CAST(priced.quantity AS BIGINT) * priced.price_cents)
    FROM priced
    HAVING count(*) = CAST(:lines AS INTEGER)
        AND EXISTS (SELECT 1 FROM account)
        AND sum(CAST(priced.quantity AS BIGINT) * priced.price_cents) <= CAST(:max_total AS BIGINT)
        AND (CAST(:quota AS INTEGER) = 0 OR (SELECT n FROM open_orders) < CAST(:quota AS INTEGER))
    RETURNING id, created_at, updated_at
), items AS (
    INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
    SELECT new_order.id, priced.product_id, priced.quantity, priced.price_cents
    FROM new_order, priced
), event AS (
    INSERT INTO outbox (event_id, type, version, payload, request_id, occurred_at, attempts)
    SELECT CAST(:event_id AS VARCHAR), CAST(:event_type AS VARCHAR), 1,
        json_build_object('order_id', new_order.id), CAST(:request_id AS VARCHAR),
        CAST(:occurred_at AS TIMESTAMPTZ), 0
    FROM new_order
)
SELECT priced.product_id, priced.price_cents, new_order.id, new_order.created_at,
    new_order.updated_at, (SELECT n FROM open_orders) AS open_orders,
    EXISTS (SELECT 1 FROM account) AS active
FROM (SELECT 1) AS one
LEFT JOIN priced ON true
LEFT JOIN new_order ON true
"""  # noqa: S608 (the account CTE is the compiled valid_caller statement, no input)
    ).bindparams(bindparam("occurred_at", type_=UTCDateTime()))
)
_OPEN_STATUS_VALUES = [status.value for status in OPEN_STATUSES]
# Serializes one user's creations while a quota is counted (READ COMMITTED: the count in the
# next statement then sees every order committed before the lock was granted).
LOCK_USER = DriverStatement(
    select(User.id).where(User.id == bindparam("user_id")).with_for_update()
)


async def place_order(
    engine: AsyncEngine, *, token: TokenClaims, lines: Sequence[OrderLineIn], max_open_orders: int
) -> dict[str, Any]:
    """`create_order` on PostgreSQL, as one statement (two in a transaction with a quota).

    `token` has a valid signature; the statement itself checks that it is still valid (401
    otherwise), so the request reads the database once. Returns the new order as an API
    document (`order_document`).
    """
    user_id = token.user_id
    checked = _Lines(lines)
    pids = sorted(checked.merged)
    params = {
        "product_ids": pids,
        "quantities": [checked.merged[pid] for pid in pids],
        "lines": len(pids),
        **token.caller_params,
        "max_total": MAX_TOTAL_CENTS,
        "quota": max_open_orders,
        "open": _OPEN_STATUS_VALUES,
        "event_id": str(uuid.uuid4()),
        "event_type": ORDER_CREATED,
        "request_id": request_id_var.get(),
        "occurred_at": utcnow(),
    }
    if max_open_orders:
        async with connection(engine, transaction=True) as lent:
            await lent.run(LOCK_USER, user_id=user_id)
            rows = await lent.run(PLACE_ORDER, **params)
    else:
        rows = await PLACE_ORDER.fetch(engine, **params)
    created = rows[0]
    if created["id"] is None:
        if not created["active"]:
            raise Unauthorized()
        if max_open_orders and created["open_orders"] >= max_open_orders:
            raise _quota_exceeded(created["open_orders"], max_open_orders)
        checked.total({r["product_id"]: r["price_cents"] for r in rows if r["product_id"]})
        raise RuntimeError(
            "place_order wrote nothing, for no reason it can tell"
        )  # pragma: no cover
    prices = {r["product_id"]: r["price_cents"] for r in rows}
    return checked.pending_document(user_id=user_id, created=created, prices=prices)


async def get_order(session: AsyncSession, *, order_id: int, user: Principal) -> OrderWithItems:
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
    user: Principal,
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


async def confirm_order(session: AsyncSession, *, order_id: int, user: Principal) -> OrderWithItems:
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


async def pay_order(session: AsyncSession, *, order_id: int, user: Principal) -> OrderWithItems:
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


async def cancel_order(session: AsyncSession, *, order_id: int, user: Principal) -> OrderWithItems:
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
    if on_postgresql(session):
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
    user: Principal,
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
    if on_postgresql(session):
        await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    open_orders = await session.scalar(
        select(func.count())
        .select_from(Order)
        .where(Order.user_id == user_id, Order.status.in_(OPEN_STATUSES))
    )
    if (open_orders or 0) >= limit:
        raise _quota_exceeded(open_orders or 0, limit)


def _quota_exceeded(open_orders: int, limit: int) -> Conflict:
    return Conflict(
        f"You have {open_orders} open orders, the most allowed; pay or cancel some first",
        limit=limit,
    )


def _visible_to(user: Principal) -> ColumnElement[bool]:
    if user.is_superuser:
        return Order.id.is_not(None)
    return Order.user_id == user.id
