"""Events of the orders domain and their payloads (the event contract, EVENTS.md).

Every payload names the order and its owner (`user_id`, who may see the event) and the
status the order reached. Events written before `user_id` existed lack it: consumers look
the order up instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from taskhub.db import table_of
from taskhub.driver import DriverStatement, Executor, in_list
from taskhub.models import Order, OrderStatus

ORDER_CREATED = "order.created"
ORDER_RESERVED = "order.reserved"
ORDER_FAILED = "order.failed"
ORDER_CONFIRMED = "order.confirmed"
ORDER_PAID = "order.paid"
ORDER_CANCELLED = "order.cancelled"
ORDER_EVENTS = (
    ORDER_CREATED,
    ORDER_RESERVED,
    ORDER_FAILED,
    ORDER_CONFIRMED,
    ORDER_PAID,
    ORDER_CANCELLED,
)
CancelReason = Literal["user", "admin", "expired"]
_Id = Annotated[int, Field(ge=1, le=2**31 - 1)]


class OrderEventPayload(BaseModel):
    """What the orders handlers read of an order event's payload.

    Keys they do not read are ignored: payloads may gain optional keys (the contract's
    rule), and a handler must not refuse an event for that.
    """

    model_config = ConfigDict(extra="ignore")

    order_id: _Id
    user_id: _Id | None = None
    reason: CancelReason | None = None


def order_payload(
    *, order_id: int, user_id: int, status: OrderStatus, **extra: Any
) -> dict[str, Any]:
    """The payload of an order event: the order, its owner, the status it reached, and what
    the event's type adds (`total_cents`, `reason`)."""
    return {"order_id": order_id, "user_id": user_id, "status": status.value, **extra}


def id_in(payload: Mapping[str, Any], key: str) -> int | None:
    """An integer id of an event's payload (a JSON `true` is not one)."""
    value = payload.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_orders = table_of(Order)
ORDER_OWNERS = DriverStatement(
    select(_orders.c.id, _orders.c.user_id).where(in_list(_orders.c.id, "order_ids"))
)


async def order_owners(db: Executor, order_ids: Sequence[int]) -> dict[int, int]:
    """The owner of each of these orders (an order never changes hands), for events written
    before their payloads named it."""
    if not order_ids:
        return {}
    rows = await db.run(ORDER_OWNERS, order_ids=list(dict.fromkeys(order_ids)))
    return {int(row["id"]): int(row["user_id"]) for row in rows}
