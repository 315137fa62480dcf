"""Users, shared by v1 and v2, and the access tokens logged out before they expire."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, false, true
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base, UTCDateTime
from taskhub.models._columns import SQLITE_AUTOINCREMENT, created_at_column, updated_at_column


class User(Base):
    """An account; `is_superuser` is a site admin.

    `token_epoch` is carried by every token issued to the account (its `ep` claim); moving it
    on (a password change, deactivation, logout-all) ends every token issued before.
    """

    __tablename__ = "users"
    __table_args__ = SQLITE_AUTOINCREMENT

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    hashed_password: Mapped[str] = mapped_column(String(128), nullable=False)
    full_name: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true(), nullable=False)
    is_superuser: Mapped[bool] = mapped_column(Boolean, server_default=false(), nullable=False)
    token_epoch: Mapped[int] = mapped_column(Integer, server_default="0", nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class RevokedToken(Base):
    """A token ended by `POST /auth/logout` before its expiry, kept until it would expire."""

    __tablename__ = "revoked_tokens"
    __table_args__ = (Index("ix_revoked_tokens_expires_at", "expires_at"),)

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
