"""Request and response shapes of the catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from taskhub.fields import StorableText, StrictModel, text

MAX_PRICE_CENTS = 100_000_000
MAX_STOCK = 1_000_000_000

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
Name = Annotated[str, text(min_length=1, max_length=200), StorableText]
Description = Annotated[str, text(max_length=10_000), StorableText]
Price = Annotated[int, Field(ge=0, le=MAX_PRICE_CENTS, description="Integer cents")]


class ProductCreateIn(StrictModel):
    """A new product and its initial stock."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"sku": "SKU-1001", "name": "T-Shirt", "price_cents": 1999, "stock": 10}]
        }
    )

    sku: Sku
    name: Name
    description: Description | None = None
    price_cents: Price
    stock: Annotated[int, Field(ge=0, le=MAX_STOCK)] = 0


class ProductUpdateIn(StrictModel):
    """Changes to a product; stock changes go through PATCH /products/{id}/stock. A null
    field other than `description` is left as it is."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"price_cents": 1499}]})

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    price_cents: Price | None = None


class ProductOut(BaseModel):
    """A product as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    name: str
    description: str | None
    price_cents: int
    stock: int
    created_at: datetime
    updated_at: datetime
