"""Orders as the API writes them, from database values: the one shaper of an order's JSON.

Every order answer (create, read, list, confirm, pay, cancel) is an `order_document`, built
from rows without pydantic; `OrderOut` is the schema that documents it, and a test holds the
two equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Integer, and_, bindparam, or_, select

from taskhub.auth.tokens import valid_caller
from taskhub.db import table_of
from taskhub.driver import DriverStatement, Executor, Row, in_constants, in_list
from taskhub.errors import NotFound, Unauthorized
from taskhub.models import Order, OrderItem, OrderStatus, User
from taskhub.models._keys import integer_bound
from taskhub.pagination import ABOVE_EVERY_ID
from taskhub.security import TokenClaims

_orders, _order_items, _users = table_of(Order), table_of(OrderItem), table_of(User)

ORDER_FIELDS = ("id", "user_id", "status", "status_reason", "total_cents")
ORDER_TIMES = ("created_at", "updated_at", "reserved_at", "confirmed_at", "paid_at", "cancelled_at")
_ORDER_COLUMNS = [_orders.c[name] for name in (*ORDER_FIELDS, *ORDER_TIMES)]
_LINE_COLUMNS = [
    _order_items.c.product_id,
    _order_items.c.quantity,
    _order_items.c.unit_price_cents,
]
# The caller's account, an order it may see (its own, or any for a site admin) and the order's
# lines, in one round trip (one row per line). No row: the token is no longer valid (the
# account is gone or inactive, the token ended: `valid_caller`); a row without an order: not
# found.
_caller = valid_caller(_users.c.id, _users.c.is_superuser).subquery("caller")
ORDER_WITH_LINES = DriverStatement(
    select(*_ORDER_COLUMNS, *_LINE_COLUMNS)
    .select_from(
        _caller.outerjoin(
            _orders,
            and_(
                _orders.c.id == bindparam("order_id"),
                or_(_orders.c.user_id == _caller.c.id, _caller.c.is_superuser),
            ),
        ).outerjoin(_order_items, _order_items.c.order_id == _orders.c.id)
    )
    .order_by(_order_items.c.product_id)
)
# An order and its lines by id alone: for a transition that has just matched the order as
# visible to its caller.
ORDER_BY_ID = DriverStatement(
    select(*_ORDER_COLUMNS, *_LINE_COLUMNS)
    .select_from(_orders.join(_order_items, _order_items.c.order_id == _orders.c.id))
    .where(_orders.c.id == bindparam("order_id"))
    .order_by(_order_items.c.product_id)
)
LINES_OF = DriverStatement(
    select(_order_items.c.order_id, *_LINE_COLUMNS)
    .where(in_list(_order_items.c.order_id, "order_ids"))
    .order_by(_order_items.c.order_id, _order_items.c.product_id)
)


def _orders_page(*, everyone: bool, status: OrderStatus | None) -> DriverStatement:
    # The page is a range of an index, read backwards from :before_id: (user_id, id) or the
    # primary key; with a status (user_id, status, id), or the status's own partial index
    # (`models.order`), which only a statement naming the status itself can use.
    stmt = select(*_ORDER_COLUMNS).where(_orders.c.id < integer_bound("before_id"))
    if not everyone:
        stmt = stmt.where(_orders.c.user_id == bindparam("user_id", type_=Integer()))
    if status is not None:
        stmt = stmt.where(in_constants(_orders.c.status, [status.value]))
    return DriverStatement(
        stmt.order_by(_orders.c.id.desc()).limit(bindparam("limit", type_=Integer()))
    )


# Newest first, by id; one statement per user scope and status, each compiled once. The
# first page starts before an id above every id.
ORDERS_PAGE = {
    (everyone, status): _orders_page(everyone=everyone, status=status)
    for everyone in (False, True)
    for status in (None, *OrderStatus)
}

Line = tuple[int, int, int]  # (product_id, quantity, unit_price_cents), ordered by product


def order_document(order: Mapping[str, Any], lines: Sequence[Line]) -> dict[str, Any]:
    """An order as the API writes it (`OrderOut`'s fields, in its order) from database values."""
    document = {name: order.get(name) for name in ORDER_FIELDS}
    document["items"] = [
        {"product_id": pid, "quantity": qty, "unit_price_cents": price} for pid, qty, price in lines
    ]
    for name in ORDER_TIMES:
        document[name] = order.get(name)
    return document


async def read_order(db: Executor, *, order_id: int, token: TokenClaims) -> dict[str, Any]:
    """The order the token's user may see (theirs, or any for a site admin), as a document.

    One statement; it checks that the token is still valid itself (401 otherwise), so a
    caller known only by a verified token needs no lookup of its own.
    """
    rows = await db.run(ORDER_WITH_LINES, order_id=order_id, **token.caller_params)
    if not rows:
        raise Unauthorized()
    if rows[0]["id"] is None:
        raise NotFound("Order not found")
    return order_document(rows[0], _lines(rows))


async def order_by_id(db: Executor, *, order_id: int) -> dict[str, Any]:
    """An order the caller was already shown to see, as an API document."""
    rows = await db.run(ORDER_BY_ID, order_id=order_id)
    if not rows:
        raise NotFound("Order not found")
    return order_document(rows[0], _lines(rows))


async def list_orders(
    db: Executor,
    *,
    user_id: int,
    everyone: bool,
    limit: int,
    before_id: int | None,
    status: str | None,
) -> list[dict[str, Any]]:
    """Up to `limit` orders, newest first: the user's, or everyone's; as API documents."""
    first = before_id is None
    params: dict[str, Any] = {"limit": limit, "before_id": ABOVE_EVERY_ID if first else before_id}
    if not everyone:
        params["user_id"] = user_id
    page = ORDERS_PAGE[(everyone, OrderStatus(status) if status is not None else None)]
    orders = await db.run(page, **params)
    if not orders:
        return []
    lines: dict[int, list[Line]] = {int(order["id"]): [] for order in orders}
    for row in await db.run(LINES_OF, order_ids=list(lines)):
        lines[int(row["order_id"])].append(
            (int(row["product_id"]), int(row["quantity"]), int(row["unit_price_cents"]))
        )
    return [order_document(order, lines[int(order["id"])]) for order in orders]


def _lines(rows: Sequence[Row]) -> list[Line]:
    return [
        (int(row["product_id"]), int(row["quantity"]), int(row["unit_price_cents"]))
        for row in rows
        if row["product_id"] is not None
    ]
