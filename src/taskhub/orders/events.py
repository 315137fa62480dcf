"""Events of the orders domain and their payload schemas."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

ORDER_CREATED = "order.created"
ORDER_CANCELLED = "order.cancelled"
CancelReason = Literal["user", "admin", "expired"]


class OrderEventPayload(BaseModel):
    """The payload of order.created and order.cancelled (which adds why)."""

    model_config = ConfigDict(extra="forbid")

    order_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    reason: CancelReason | None = None
