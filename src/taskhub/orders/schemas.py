"""Request and response shapes of orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from taskhub.dependencies import MAX_ID
from taskhub.fields import StrictModel
from taskhub.models import OrderStatus

MAX_LINES = 100
MAX_QUANTITY = 10_000


class OrderLineIn(StrictModel):
    """One product and how many of it."""

    product_id: Annotated[int, Field(ge=1, le=MAX_ID)]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


class OrderCreateIn(StrictModel):
    """A new order: 1 to 100 lines; lines for the same product are merged."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [{"product_id": 1, "quantity": 2}]}]}
    )

    items: Annotated[list[OrderLineIn], Field(min_length=1, max_length=MAX_LINES)]


class OrderItemOut(BaseModel):
    """One line, with the unit price snapshotted at creation."""

    product_id: int
    quantity: int
    unit_price_cents: int


class OrderOut(BaseModel):
    """An order with its lines and state."""

    id: int
    user_id: int
    status: OrderStatus
    status_reason: str | None
    total_cents: int
    items: list[OrderItemOut]
    created_at: datetime
    updated_at: datetime
    reserved_at: datetime | None
    confirmed_at: datetime | None
    paid_at: datetime | None
    cancelled_at: datetime | None
