"""Tasks and their activity log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, Index, Integer, String, Text, case, literal_column
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base, UTCDateTime, table_of
from taskhub.models._columns import (
    SQLITE_AUTOINCREMENT,
    created_at_column,
    enum_check,
    updated_at_column,
)
from taskhub.models._keys import comparable_time, time_or_earliest, time_or_latest


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
# The priority sort key is rank * PRIORITY_SPAN + id: one integer per task, so the order
# (priority, id) is one totally ordered key and a cursor one bound.
PRIORITY_SPAN = 2**32


class Task(Base):
    """A unit of work inside a project."""

    __tablename__ = "tasks"
    __table_args__ = (
        enum_check("status", TaskStatus, "status"),
        enum_check("priority", TaskPriority, "priority"),
        Index("ix_tasks_project_id_id", "project_id", "id"),
        Index("ix_tasks_assignee_id_id", "assignee_id", "id"),
        # The sort indexes (`sort_indexes`) are added below, once the columns exist.
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


def priority_key(columns: Any) -> ColumnElement[Any]:
    """The priority sort key of the task row `columns`: urgency rank, then id, in one integer.

    Written with its constants inline (no bound parameters), so that a query's expression
    is the index's expression on both databases.
    """
    rank = case(
        {literal_column(f"'{p.value}'"): literal_column(str(r)) for p, r in PRIORITY_RANK.items()},
        value=columns.priority,
    )
    key: ColumnElement[Any] = rank * literal_column(str(PRIORITY_SPAN)) + columns.id
    return key


def due_key(columns: Any, *, descending: bool) -> ColumnElement[Any]:
    """The due-date sort key: tasks without a due date come last in both directions."""
    return time_or_earliest(columns.due_date) if descending else time_or_latest(columns.due_date)


def created_key(columns: Any) -> ColumnElement[Any]:
    """The creation-time sort key."""
    return comparable_time(columns.created_at)


def sort_keys(columns: Any) -> dict[str, tuple[ColumnElement[Any], ...]]:
    """Each sort's index columns after the id-only one: key, then id as the tie-break."""
    return {
        "due_asc": (due_key(columns, descending=False), columns.id),
        "due_desc": (due_key(columns, descending=True), columns.id),
        "priority": (priority_key(columns),),
        "created_at": (created_key(columns), columns.id),
    }


def _sort_indexes() -> None:
    """One index per sort key (GET /tasks' eight sorts, both directions read from each), for
    a site admin's page; the same led by project_id (a member's per-project pages, the
    project filter) and by assignee_id (the assignee filter)."""
    columns = table_of(Task).c
    for prefix in ("", "project_id", "assignee_id"):
        lead = [columns[prefix]] if prefix else []
        for name, keys in sort_keys(columns).items():
            Index("_".join(filter(None, ("ix_tasks", prefix, name))), *lead, *keys)


_sort_indexes()


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
