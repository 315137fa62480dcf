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

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import Enum, StrEnum
from functools import lru_cache
from typing import Any, cast

from fastapi import Response
from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from sqlalchemy import ColumnElement, Integer, String, and_, bindparam, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from taskhub.auth.principal import Principal
from taskhub.db import UTCDateTime, escape_like
from taskhub.driver import DriverStatement, Row
from taskhub.errors import BadRequest, Unauthorized
from taskhub.models import ProjectMember, Task, TaskPriority, TaskStatus, User
from taskhub.models.task import PRIORITY_RANK
from taskhub.pagination import (
    SortKey,
    decode_cursor,
    json_page,
    order_clauses,
    page_of,
)


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

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The enum's schema, with its members' names for generated clients (`-id` is
        `ID_DESC`, not `VALUE_1`)."""
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema["x-enum-varnames"] = [member.name for member in cls]
        return schema

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

    @classmethod
    def of(cls, source: object) -> TaskFilters:
        """The filters carried by the like-named attributes of `source` (a query model)."""
        return cls(**{field.name: getattr(source, field.name) for field in fields(cls)})


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
PRIORITY_KEY = case({p.value: rank for p, rank in PRIORITY_RANK.items()}, value=Task.priority)
_INVALID_CURSOR = "The cursor is not valid for this sort; start again without one"


class _Keys:
    """Sort-key expressions for one dialect."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def timestamp(self, expr: Any) -> ColumnElement[Any]:
        """A timestamp column or value, comparable with the same dialect's columns."""
        return func.julianday(expr) if self.sqlite else expr

    def timestamp_param(self, name: str) -> ColumnElement[Any]:
        """A bound timestamp, comparable with `timestamp(column)`."""
        return self.timestamp(bindparam(name, type_=UTCDateTime()))

    def column(self, sort: TaskSort) -> ColumnElement[Any] | None:
        """The key expression of a sort; None for the id itself."""
        if sort.field == "priority":
            return PRIORITY_KEY
        if sort.field == "due_date":
            return self.timestamp(Task.due_date)
        if sort.field == "created_at":
            return self.timestamp(Task.created_at)
        return None


def _cursor_value(sort: TaskSort, row: Row) -> Any:
    if sort.field == "priority":
        return PRIORITY_RANK[TaskPriority(row["priority"])]
    if sort.field in ("due_date", "created_at"):
        value: datetime | None = row[sort.field]
        return value.isoformat() if value is not None else None
    return row["id"]


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


class _Position(Enum):
    """Where a page starts: at the top, after a row, or inside the block without due dates."""

    FIRST = "first"
    AFTER = "after"
    AFTER_IN_NULLS = "after-in-nulls"


def _after(keys: _Keys, sort: TaskSort, position: _Position) -> ColumnElement[bool]:
    """Rows strictly after (:after_value, :after_id) in the sort's order."""
    last_id = bindparam("after_id", type_=Integer())
    after_id = Task.id < last_id if sort.descending else Task.id > last_id
    key = keys.column(sort)
    if key is None:
        return after_id
    if position is _Position.AFTER_IN_NULLS:
        # Inside the trailing block of tasks without a due date.
        return and_(Task.due_date.is_(None), after_id)
    bound = (
        bindparam("after_value", type_=Integer())
        if sort.field == "priority"
        else keys.timestamp_param("after_value")
    )
    beyond = key < bound if sort.descending else key > bound
    predicate = or_(beyond, and_(key == bound, after_id))
    if sort.field == "due_date":
        predicate = or_(predicate, Task.due_date.is_(None))
    return predicate


def _filter(keys: _Keys, name: str) -> ColumnElement[bool]:
    """The predicate of one filter, its value bound as :<name>."""
    if name == "due_before":
        return keys.timestamp(Task.due_date) < keys.timestamp_param(name)
    if name == "due_after":
        return keys.timestamp(Task.due_date) > keys.timestamp_param(name)
    if name == "q":
        pattern = bindparam(name, type_=String())
        return or_(
            Task.title.ilike(pattern, escape="\\"),
            Task.description.ilike(pattern, escape="\\"),
        )
    column = getattr(Task, name)
    return cast(ColumnElement[bool], column == bindparam(name, type_=column.type))


@lru_cache(maxsize=512)
def _page_query(
    dialect: str,
    *,
    members_only: bool,
    filters: tuple[str, ...],
    sort: TaskSort,
    position: _Position,
    as_json: bool,
    checks_caller: bool = False,
) -> DriverStatement:
    """The statement for one combination of filters, sort and position, compiled once.

    Every value is a bound parameter, so the few hundred possible shapes are each built
    once per process; a request only binds its values (see taskhub.driver). `as_json`
    (PostgreSQL): the page comes back as one `pagination.json_page` row; `checks_caller`
    adds the :user_id account's `caller_active` and `caller_superuser` to it.
    """
    keys = _Keys(dialect)
    stmt = select(*TASK_COLUMNS).where(*(_filter(keys, name) for name in filters))
    if members_only:
        stmt = stmt.where(
            Task.project_id.in_(
                select(ProjectMember.project_id).where(
                    ProjectMember.user_id == bindparam("user_id", type_=Integer())
                )
            )
        )
    if position is not _Position.FIRST:
        stmt = stmt.where(_after(keys, sort, position))
    key = keys.column(sort)
    sort_keys = [SortKey(Task.id, descending=sort.descending)]
    if key is not None:
        sort_keys.insert(0, SortKey(key, descending=sort.descending, nulls_last=True))
    if as_json:
        cursor_keys = sorted({"id", sort.field})
        page = json_page(stmt, sort_keys, keys=cursor_keys, table=Task.__tablename__)
        if checks_caller:
            caller = User.id == bindparam("user_id", type_=Integer())
            page = page.add_columns(
                select(User.is_active).where(caller).scalar_subquery().label("caller_active"),
                select(User.is_superuser).where(caller).scalar_subquery().label("caller_superuser"),
            )
        return DriverStatement(page)
    return DriverStatement(
        stmt.order_by(*order_clauses(sort_keys)).limit(bindparam("limit", type_=Integer()))
    )


async def list_tasks(
    engine: AsyncEngine,
    *,
    user: Principal,
    filters: TaskFilters,
    sort: TaskSort,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> Response:
    """One page of the tasks the caller may see, with the cursor of the next page.

    `as_json` (PostgreSQL): the database writes the page (`pagination.json_page`).
    """
    member = None if user.is_superuser else user.id
    page = _Page(filters, sort, limit, cursor)
    rows = await page.fetch(engine, member=member, as_json=as_json)
    return page.response(rows, as_json=as_json)


async def list_tasks_for_token(
    engine: AsyncEngine,
    *,
    user_id: int,
    filters: TaskFilters,
    sort: TaskSort,
    limit: int,
    cursor: str | None,
) -> Response:
    """PostgreSQL: `list_tasks` for the user a token names, without reading the account first.

    The member's page statement reads the account too: gone or inactive, 401 (at once after
    deactivation, as everywhere). A site admin sees every task: for one, a second statement.
    """
    page = _Page(filters, sort, limit, cursor)
    rows = await page.fetch(engine, member=user_id, as_json=True, checks_caller=True)
    if not rows[0]["caller_active"]:
        raise Unauthorized()
    if rows[0]["caller_superuser"]:
        rows = await page.fetch(engine, member=None, as_json=True)
    return page.response(rows, as_json=True)


class _Page:
    """One requested page: the statement's parameters, the filters in use, where it starts."""

    def __init__(
        self, filters: TaskFilters, sort: TaskSort, limit: int, cursor: str | None
    ) -> None:
        self.sort, self.limit = sort, limit
        self.params: dict[str, Any] = {"limit": limit + 1, "page_size": limit}
        for field in fields(filters):
            value = getattr(filters, field.name)
            if value is not None and value != "":
                self.params[field.name] = value.value if isinstance(value, Enum) else value
        if "q" in self.params:
            self.params["q"] = f"%{escape_like(self.params['q'])}%"
        self.filters = tuple(name for name in _FILTER_NAMES if name in self.params)
        self.position = _Position.FIRST
        decoded = _decode(sort, cursor)
        if decoded is not None:
            value, self.params["after_id"] = decoded
            if value is None:
                self.position = _Position.AFTER_IN_NULLS
            else:
                self.position, self.params["after_value"] = _Position.AFTER, value

    async def fetch(
        self, engine: AsyncEngine, *, member: int | None, as_json: bool, checks_caller: bool = False
    ) -> Sequence[Row]:
        """The page's rows: among `member`'s projects, or all tasks (None, a site admin)."""
        query = _page_query(
            engine.dialect.name,
            members_only=member is not None,
            filters=self.filters,
            sort=self.sort,
            position=self.position,
            as_json=as_json,
            checks_caller=checks_caller,
        )
        params = self.params if member is None else {**self.params, "user_id": member}
        return await query.fetch(engine, **params)

    def response(self, rows: Sequence[Row], *, as_json: bool) -> Response:
        """The page's response, from what `fetch` returned."""
        return page_of(
            rows,
            self.limit,
            lambda last: [self.sort.value, _cursor_value(self.sort, last), last["id"]],
            as_json=as_json,
        )


_FILTER_NAMES = tuple(field.name for field in fields(TaskFilters))
