"""The transactional outbox and the handlers' record of processed events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base, UTCDateTime
from taskhub.models._columns import SQLITE_AUTOINCREMENT, created_at_column

# SQLite only auto-increments INTEGER PRIMARY KEY, so the big integer is PostgreSQL-only.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class OutboxEvent(Base):
    """An event written in the same transaction as the change it announces."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "id",
            sqlite_where=text("published_at IS NULL"),
            postgresql_where=text("published_at IS NULL"),
        ),
        SQLITE_AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(64))
    # The W3C trace context of the writing request, as JSON text (taskhub.tracing).
    trace_context: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Embedded dispatch only: failed attempts, and when the event was given up on.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ProcessedEvent(Base):
    """An event a handler has applied; recorded in the handler's own transaction."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    handler: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime] = created_at_column()
