"""Orders as the API writes them, from database values: the read path off the session.

`GET /orders/{id}` is one statement (`read_order`); the create fast path writes its answer
with `order_document` too. Neither goes through pydantic; tests hold both equal to `OrderOut`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from taskhub.auth.tokens import valid_caller
from taskhub.db import table_of
from taskhub.driver import DriverStatement
from taskhub.errors import NotFound, Unauthorized
from taskhub.models import Order, OrderItem, User
from taskhub.security import TokenClaims

_orders, _order_items, _users = table_of(Order), table_of(OrderItem), table_of(User)

_ORDER_TIMES = (
    "created_at",
    "updated_at",
    "reserved_at",
    "confirmed_at",
    "paid_at",
    "cancelled_at",
)
# The caller's account, an order it may see (its own, or any for a site admin) and the order's
# lines, in one round trip (one row per line). No row: the token is no longer valid (the
# account is gone or inactive, the token ended: `valid_caller`); a row without an order: not
# found.
_caller = valid_caller(_users.c.id, _users.c.is_superuser).subquery("caller")
ORDER_WITH_LINES = DriverStatement(
    select(
        *(_orders.c[name] for name in ("id", "user_id", "status", "status_reason", "total_cents")),
        *(_orders.c[name] for name in _ORDER_TIMES),
        _order_items.c.product_id,
        _order_items.c.quantity,
        _order_items.c.unit_price_cents,
    )
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


def order_document(
    order: Mapping[str, Any], lines: Sequence[tuple[int, int, int]]
) -> dict[str, Any]:
    """An order as the API writes it (`OrderOut`'s fields, in its order) from database values.

    `lines` are (product_id, quantity, unit_price_cents), ordered by product. For the read
    paths that skip pydantic (`responses.json_response`); tests hold it equal to `OrderOut`.
    """
    document = {
        "id": order["id"],
        "user_id": order["user_id"],
        "status": order["status"],
        "status_reason": order.get("status_reason"),
        "total_cents": order["total_cents"],
        "items": [
            {"product_id": pid, "quantity": qty, "unit_price_cents": price}
            for pid, qty, price in lines
        ],
    }
    for name in _ORDER_TIMES:
        document[name] = order.get(name)
    return document


async def read_order(engine: AsyncEngine, *, order_id: int, token: TokenClaims) -> dict[str, Any]:
    """`get_order` as an API document, in one statement off the session (the read path).

    `token` has a valid signature; the statement checks that it is still valid itself (401).
    """
    rows = await ORDER_WITH_LINES.fetch(engine, order_id=order_id, **token.caller_params)
    if not rows:
        raise Unauthorized()
    if rows[0]["id"] is None:
        raise NotFound("Order not found")
    lines = [
        (row["product_id"], row["quantity"], row["unit_price_cents"])
        for row in rows
        if row["product_id"] is not None
    ]
    return order_document(rows[0], lines)
