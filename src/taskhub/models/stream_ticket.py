"""Single-use tickets that open an event stream from a browser's EventSource."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base, UTCDateTime


class StreamTicket(Base):
    """A ticket (`POST /auth/stream-ticket`), stored as its SHA-256 until used or expired.

    It carries the claims of the token that asked for it (user, epoch, id, expiry), so that
    the stream it opens is bound to that token's validity exactly as the token itself is
    (taskhub.auth.tokens). Kept in the database so that any server process can redeem it.
    """

    __tablename__ = "stream_tickets"
    __table_args__ = (Index("ix_stream_tickets_expires_at", "expires_at"),)

    ticket_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    token_epoch: Mapped[int] = mapped_column(Integer, nullable=False)
    token_jti: Mapped[str] = mapped_column(String(64), nullable=False)
    token_expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
