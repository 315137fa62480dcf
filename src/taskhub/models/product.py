"""The catalog: products, their stock, and the append-only stock ledger."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base, UTCDateTime
from taskhub.models._columns import (
    SQLITE_AUTOINCREMENT,
    created_at_column,
    enum_check,
    updated_at_column,
)


class MovementReason(StrEnum):
    """Why a product's stock changed."""

    INITIAL = "initial"
    ADJUST = "adjust"
    RESERVE = "reserve"
    RELEASE = "release"


class Product(Base):
    """A product; `stock` is the quantity still available to reserve."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_non_negative"),
        CheckConstraint("price_cents >= 0", name="price_non_negative"),
        SQLITE_AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    price_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    # Starts at 0; only taskhub.catalog.inventory changes it, with a ledger row each time.
    stock: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Deleted products are archived, so that past orders keep their lines.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class StockMovement(Base):
    """One change of a product's stock; `stock == sum(delta)` for every product."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        enum_check("reason", MovementReason, "reason"),
        Index("ix_stock_movements_product_id_id", "product_id", "id"),
        SQLITE_AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), nullable=False)
    delta: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[MovementReason] = mapped_column(String(16), nullable=False)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()
