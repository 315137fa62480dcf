"""Webhook endpoints and their deliveries (design §8)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base, UTCDateTime
from taskhub.models._columns import (
    SQLITE_AUTOINCREMENT,
    created_at_column,
    enum_check,
    updated_at_column,
)
from taskhub.models.outbox import BigId


class WebhookScope(StrEnum):
    """Whose events an endpoint receives."""

    OWN = "own"  # the orders of its owner
    ALL = "all"  # every order (its owner must be a site admin)
    PROJECT = "project"  # the task and member events of one project


class DeliveryState(StrEnum):
    """Where a delivery stands."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookEndpoint(Base):
    """A URL that receives signed POSTs of the events its scope and `events` select.

    An order endpoint (`own`, `all`) belongs to its `owner_id`; a project endpoint to its
    `project_id`. `consecutive_failures` counts deliveries that ended `failed` since the last
    success; at the limit the endpoint is disabled (`active` false, `disabled_reason`).
    """

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        enum_check("scope", WebhookScope, "scope"),
        CheckConstraint(
            "(scope = 'project' AND project_id IS NOT NULL AND owner_id IS NULL) OR "
            "(scope <> 'project' AND project_id IS NULL AND owner_id IS NOT NULL)",
            name="owner_or_project",
        ),
        Index("ix_webhook_endpoints_owner_id_id", "owner_id", "id"),
        Index("ix_webhook_endpoints_project_id_id", "project_id", "id"),
        SQLITE_AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[WebhookScope] = mapped_column(String(16), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    # Event types and prefixes (`order.*`) the endpoint subscribes to.
    events: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    secret: Mapped[str] = mapped_column(String(64), nullable=False)
    # After a rotation the previous secret also signs, until it expires, so that receivers
    # can switch without missing a delivery.
    previous_secret: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    active: Mapped[bool] = mapped_column(Boolean, server_default=true(), nullable=False)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0", nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class WebhookDelivery(Base):
    """One event to one endpoint: its body, its attempts so far and its state.

    A pending delivery is due at `next_attempt_at`; while an attempt is in flight that is the
    end of the attempt's lease, after which another worker may try again. Settled
    deliveries (`succeeded`, `failed`) have none.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        enum_check("state", DeliveryState, "state"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        SQLITE_AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[str] = mapped_column(String(36), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    # The envelope JSON, exactly as it is POSTed (and signed) on every attempt.
    body: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[DeliveryState] = mapped_column(
        String(16), nullable=False, default=DeliveryState.PENDING
    )
    attempt: Mapped[int] = mapped_column(Integer, server_default="0", nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
