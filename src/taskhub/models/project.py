"""Projects and their members."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base
from taskhub.models._columns import (
    SQLITE_AUTOINCREMENT,
    created_at_column,
    enum_check,
    updated_at_column,
)


class Role(StrEnum):
    """Project roles, highest first."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        """Higher is more powerful."""
        return ROLE_RANK[self]


ROLE_RANK = {Role.VIEWER: 1, Role.MEMBER: 2, Role.ADMIN: 3, Role.OWNER: 4}


class Project(Base):
    """A project; its single owner is the member whose role is `owner`."""

    __tablename__ = "projects"
    __table_args__ = SQLITE_AUTOINCREMENT

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class ProjectMember(Base):
    """Membership of a user in a project, with a role."""

    __tablename__ = "project_members"
    __table_args__ = (
        enum_check("role", Role, "role"),
        # Exactly one owner per project: at most one by this index, at least one by the service.
        Index(
            "uq_project_members_one_owner",
            "project_id",
            unique=True,
            sqlite_where=text("role = 'owner'"),
            postgresql_where=text("role = 'owner'"),
        ),
        Index("ix_project_members_user_id", "user_id", "project_id"),
    )

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
