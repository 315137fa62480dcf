"""Users, shared by v1 and v2."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, false, true
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base
from taskhub.models._columns import SQLITE_AUTOINCREMENT, created_at_column, updated_at_column


class User(Base):
    """An account; `is_superuser` is a site admin."""

    __tablename__ = "users"
    __table_args__ = SQLITE_AUTOINCREMENT

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    hashed_password: Mapped[str] = mapped_column(String(128), nullable=False)
    full_name: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true(), nullable=False)
    is_superuser: Mapped[bool] = mapped_column(Boolean, server_default=false(), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
