"""Orders, their lines, and the stock reservations they hold."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base, UTCDateTime, table_of
from taskhub.models._columns import (
    SQLITE_AUTOINCREMENT,
    created_at_column,
    enum_check,
    updated_at_column,
)


class OrderStatus(StrEnum):
    """The order state machine of design §3."""

    PENDING = "PENDING"
    RESERVED = "RESERVED"
    CONFIRMED = "CONFIRMED"
    PAID = "PAID"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


OPEN_STATUSES = (OrderStatus.PENDING, OrderStatus.RESERVED, OrderStatus.CONFIRMED)


class ReservationState(StrEnum):
    """A reservation is held, then released (cancel, expiry) or consumed (pay)."""

    HELD = "held"
    RELEASED = "released"
    CONSUMED = "consumed"


class Order(Base):
    """A customer's order; `total_cents` is snapshotted at creation."""

    __tablename__ = "orders"
    __table_args__ = (
        enum_check("status", OrderStatus, "status"),
        CheckConstraint("total_cents >= 0", name="total_non_negative"),
        Index("ix_orders_user_id_id", "user_id", "id"),
        Index("ix_orders_status_reserved_at", "status", "reserved_at"),
        # GET /orders with a status filter: a user's own (also their open-order count);
        # a site admin's below (`_status_indexes`).
        Index("ix_orders_user_id_status_id", "user_id", "status", "id"),
        SQLITE_AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    status: Mapped[OrderStatus] = mapped_column(String(16), nullable=False)
    status_reason: Mapped[str | None] = mapped_column(String(200))
    total_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
    reserved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


def _status_indexes() -> None:
    """GET /orders?status= for a site admin: the orders in one state, newest first.

    PostgreSQL: one partial index on id per state. Not one (status, id) index: a user's
    open-order count (status IN the open states) never reads these, while with planner
    statistics that lag a burst of open orders (workers down) it would count every open
    order through (status, id), on each order placed. SQLite: (status, id), since its
    planner, without statistics, would rather sort a state's orders than read a partial
    index. Each is declared for its database only (`Index.ddl_if`).
    """
    columns = table_of(Order).c
    Index("ix_orders_status_id", columns.status, columns.id).ddl_if(dialect="sqlite")
    for status in OrderStatus:
        Index(
            f"ix_orders_{status.value.lower()}_id",
            columns.id,
            postgresql_where=text(f"status = '{status.value}'"),
        ).ddl_if(dialect="postgresql")


_status_indexes()


class OrderItem(Base):
    """One line of an order, one per product, with the unit price at creation."""

    __tablename__ = "order_items"
    __table_args__ = (
        UniqueConstraint("order_id", "product_id", name="uq_order_items_order_product"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_order_items_product_id", "product_id"),
        SQLITE_AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), nullable=False
    )
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_price_cents: Mapped[int] = mapped_column(Integer, nullable=False)


class Reservation(Base):
    """Stock held for an order line; only `held` rows are released or consumed, once."""

    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("order_id", "product_id", name="uq_reservations_order_product"),
        enum_check("state", ReservationState, "state"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index(
            "ix_reservations_held_product",
            "product_id",
            sqlite_where=text("state = 'held'"),
            postgresql_where=text("state = 'held'"),
        ),
        SQLITE_AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), nullable=False
    )
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[ReservationState] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
