"""Column helpers shared by the models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import UTCDateTime

# The last entry of a table's __table_args__: on SQLite, ids come from `sqlite_sequence`,
# which only grows, instead of "highest id in use + 1", which hands a deleted row's id to the
# next row (a deleted user's token would name the next account). PostgreSQL ignores it; its
# sequences never reuse a value. Migration 3f7d9b2a6c15 rebuilt the existing tables.
SQLITE_AUTOINCREMENT: dict[str, Any] = {"sqlite_autoincrement": True}


def created_at_column() -> Mapped[datetime]:
    """A server-side creation timestamp."""
    return mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)


def updated_at_column() -> Mapped[datetime]:
    """A server-side timestamp refreshed on every ORM update."""
    return mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )


def enum_check(column: str, values: Iterable[StrEnum], name: str) -> CheckConstraint:
    """A CHECK constraint that keeps a VARCHAR column inside an enum's values."""
    listed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)
