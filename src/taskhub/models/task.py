"""Tasks and their activity log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base, UTCDateTime
from taskhub.models._columns import (
    SQLITE_AUTOINCREMENT,
    created_at_column,
    enum_check,
    updated_at_column,
)


class TaskStatus(StrEnum):
    """Where a task stands."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class TaskPriority(StrEnum):
    """How urgent a task is, lowest first."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


PRIORITY_RANK = {p: i for i, p in enumerate(TaskPriority)}


class Task(Base):
    """A unit of work inside a project."""

    __tablename__ = "tasks"
    __table_args__ = (
        enum_check("status", TaskStatus, "status"),
        enum_check("priority", TaskPriority, "priority"),
        Index("ix_tasks_project_id_id", "project_id", "id"),
        Index("ix_tasks_assignee_id_id", "assignee_id", "id"),
        SQLITE_AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[TaskStatus] = mapped_column(String(16), nullable=False, default=TaskStatus.TODO)
    priority: Mapped[TaskPriority] = mapped_column(
        String(16), nullable=False, default=TaskPriority.NONE
    )
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    due_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class TaskActivity(Base):
    """One changed field of a task: who, what, from, to, when, and the id of the event that
    announced the change (null for entries older than the events)."""

    __tablename__ = "task_activity"
    __table_args__ = (Index("ix_task_activity_task_id_id", "task_id", "id"), SQLITE_AUTOINCREMENT)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    field: Mapped[str] = mapped_column(String(32), nullable=False)
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = created_at_column()
