"""GET /tasks: filters, sorts and keyset pagination in one SQL statement per page.

The cursor holds the sort's name, the last row's sort key and its id (the tie-breaker), so a
page continues exactly after the previous one whatever the sort:

- `due_date` sorts put tasks without a due date last in both directions; the predicate treats
  the NULL block as its own segment, so no task is skipped or repeated across the boundary.
- `priority` sorts by urgency (none < low < medium < high < urgent) through a CASE expression.
- On SQLite, timestamps are compared through `julianday()`, because the text that
  CURRENT_TIMESTAMP writes and the text a bound parameter carries differ in format.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskhub.db import UTCDateTime
from taskhub.errors import BadRequest
from taskhub.models import ProjectMember, Task, TaskPriority, TaskStatus, User
from taskhub.models.task import PRIORITY_RANK
from taskhub.pagination import decode_cursor, split_page


class TaskSort(StrEnum):
    """The orders GET /tasks accepts; a leading '-' means descending."""

    ID = "id"
    ID_DESC = "-id"
    DUE_DATE = "due_date"
    DUE_DATE_DESC = "-due_date"
    PRIORITY = "priority"
    PRIORITY_DESC = "-priority"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"

    @property
    def field(self) -> str:
        """The sorted column's name."""
        return self.value.lstrip("-")

    @property
    def descending(self) -> bool:
        """Whether the order is descending."""
        return self.value.startswith("-")


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """The optional filters of GET /tasks."""

    project_id: int | None = None
    status: TaskStatus | None = None
    assignee_id: int | None = None
    priority: TaskPriority | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    q: str | None = None


TASK_COLUMNS = (
    Task.id,
    Task.project_id,
    Task.title,
    Task.description,
    Task.status,
    Task.priority,
    Task.assignee_id,
    Task.created_by_id,
    Task.due_date,
    Task.created_at,
    Task.updated_at,
)
TASK_FIELDS = tuple(column.key for column in TASK_COLUMNS)
PRIORITY_KEY = case({p.value: rank for p, rank in PRIORITY_RANK.items()}, value=Task.priority)
_INVALID_CURSOR = "The cursor is not valid for this sort; start again without one"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Keys:
    """Sort-key expressions for one dialect."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def timestamp(self, expr: Any) -> ColumnElement[Any]:
        """A timestamp column or value, comparable with the same dialect's columns."""
        return func.julianday(expr) if self.sqlite else expr

    def timestamp_value(self, value: datetime) -> ColumnElement[Any]:
        """A bound timestamp, comparable with `timestamp(column)`."""
        return self.timestamp(literal(value, UTCDateTime()))

    def column(self, sort: TaskSort) -> ColumnElement[Any] | None:
        """The key expression of a sort; None for the id itself."""
        if sort.field == "priority":
            return PRIORITY_KEY
        if sort.field == "due_date":
            return self.timestamp(Task.due_date)
        if sort.field == "created_at":
            return self.timestamp(Task.created_at)
        return None


def _cursor_value(sort: TaskSort, row: Any) -> Any:
    if sort.field == "priority":
        return PRIORITY_RANK[TaskPriority(row.priority)]
    if sort.field in ("due_date", "created_at"):
        value: datetime | None = getattr(row, sort.field)
        return value.isoformat() if value is not None else None
    return row.id


def _decode(sort: TaskSort, cursor: str | None) -> tuple[Any, int] | None:
    kind: type = int if sort.field in ("id", "priority") else str
    values = decode_cursor(cursor, size=3, kinds=(str, kind, int))
    if values is None:
        return None
    name, value, last_id = values
    if name != sort.value or last_id is None:
        raise BadRequest(_INVALID_CURSOR)
    if kind is str and value is not None:
        try:
            value = datetime.fromisoformat(value)
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (ValueError, OverflowError):
            raise BadRequest(_INVALID_CURSOR) from None
    elif value is None and sort.field != "due_date":
        raise BadRequest(_INVALID_CURSOR)
    return value, int(last_id)


def _after(keys: _Keys, sort: TaskSort, value: Any, last_id: int) -> ColumnElement[bool]:
    """Rows strictly after (value, last_id) in the sort's order."""
    after_id = Task.id < last_id if sort.descending else Task.id > last_id
    key = keys.column(sort)
    if key is None:
        return after_id
    if sort.field == "due_date" and value is None:
        # Inside the trailing block of tasks without a due date.
        return and_(Task.due_date.is_(None), after_id)
    bound = keys.timestamp_value(value) if isinstance(value, datetime) else literal(value)
    beyond = key < bound if sort.descending else key > bound
    predicate = or_(beyond, and_(key == bound, after_id))
    if sort.field == "due_date":
        predicate = or_(predicate, Task.due_date.is_(None))
    return predicate


def _filters(keys: _Keys, filters: TaskFilters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if filters.project_id is not None:
        where.append(Task.project_id == filters.project_id)
    if filters.status is not None:
        where.append(Task.status == filters.status)
    if filters.assignee_id is not None:
        where.append(Task.assignee_id == filters.assignee_id)
    if filters.priority is not None:
        where.append(Task.priority == filters.priority)
    due = keys.timestamp(Task.due_date)
    if filters.due_before is not None:
        where.append(due < keys.timestamp_value(filters.due_before))
    if filters.due_after is not None:
        where.append(due > keys.timestamp_value(filters.due_after))
    if filters.q:
        pattern = f"%{_escape_like(filters.q)}%"
        where.append(
            or_(
                Task.title.ilike(pattern, escape="\\"),
                Task.description.ilike(pattern, escape="\\"),
            )
        )
    return where


async def list_tasks(
    session: AsyncSession,
    *,
    user: User,
    filters: TaskFilters,
    sort: TaskSort,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the tasks the caller may see, and the cursor of the next page."""
    keys = _Keys(session.get_bind().dialect.name)
    stmt = select(*TASK_COLUMNS).where(*_filters(keys, filters))
    if not user.is_superuser:
        stmt = stmt.where(
            Task.project_id.in_(
                select(ProjectMember.project_id).where(ProjectMember.user_id == user.id)
            )
        )
    position = _decode(sort, cursor)
    if position is not None:
        stmt = stmt.where(_after(keys, sort, *position))
    key = keys.column(sort)
    order: list[Any] = []
    if key is not None:
        order.append(key.desc().nulls_last() if sort.descending else key.asc().nulls_last())
    order.append(Task.id.desc() if sort.descending else Task.id.asc())
    # A Core execution on the session's connection: the ORM result layer adds nothing here.
    connection = await session.connection()
    rows = (await connection.execute(stmt.order_by(*order).limit(limit + 1))).all()
    page, next_cursor = split_page(
        rows, limit, lambda last: [sort.value, _cursor_value(sort, last), last.id]
    )
    # zip over the fixed column names is the cheapest way from a Row to a dict.
    return [dict(zip(TASK_FIELDS, row, strict=True)) for row in page], next_cursor
