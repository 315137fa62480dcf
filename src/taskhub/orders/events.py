"""Events of the orders domain and their payload schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ORDER_CREATED = "order.created"
ORDER_CANCELLED = "order.cancelled"


class OrderEventPayload(BaseModel):
    """The payload of order.created and order.cancelled."""

    model_config = ConfigDict(extra="forbid")

    order_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
