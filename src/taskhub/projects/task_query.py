"""GET /tasks: filters, sorts and keyset pagination in one SQL statement per page.

The cursor holds the sort's name, the last row's sort key and its id (the tie-breaker), so a
page continues exactly after the previous one whatever the sort:

- `due_date` sorts put tasks without a due date last in both directions; the predicate treats
  the NULL block as its own segment, so no task is skipped or repeated across the boundary.
- `priority` sorts by urgency (none < low < medium < high < urgent) through a CASE expression.
- On SQLite, timestamps are compared through `julianday()` (`comparable_time`), because the
  text that CURRENT_TIMESTAMP writes and the text a bound parameter carries differ in format.

Each statement is a `pages.PageStatement`: one definition, answered the same on both
databases.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import Enum, StrEnum
from functools import lru_cache
from typing import Any

from fastapi import Response
from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from sqlalchemy import ColumnElement, Integer, String, and_, bindparam, case, or_, select
from sqlalchemy.ext.compiler import compiles

from taskhub.auth.tokens import valid_caller
from taskhub.db import UTCDateTime, escape_like, table_of
from taskhub.driver import Executor, Row
from taskhub.errors import BadRequest, Unauthorized
from taskhub.models import ProjectMember, Task, TaskPriority, TaskStatus, User
from taskhub.models.task import PRIORITY_RANK
from taskhub.pages import Caller, PageStatement, SortKey, model_columns
from taskhub.pagination import ID_FIELD, CursorField, decode_cursor
from taskhub.projects.schemas import TaskOut
from taskhub.security import TokenClaims

_tasks, _members, _users = table_of(Task), table_of(ProjectMember), table_of(User)


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


PRIORITY_KEY = case({p.value: rank for p, rank in PRIORITY_RANK.items()}, value=_tasks.c.priority)
_INVALID_CURSOR = "The cursor is not valid for this sort; start again without one"


class _ComparableTime(ColumnElement[Any]):
    """A timestamp as it compares and sorts correctly: itself on PostgreSQL, its
    `julianday()` on SQLite (whose stored and bound timestamp texts differ in format)."""

    inherit_cache = True

    def __init__(self, timestamp: ColumnElement[Any]) -> None:
        self.timestamp = timestamp
        self.type = timestamp.type


@compiles(_ComparableTime)
def _comparable_default(element: _ComparableTime, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.timestamp, **kw))


@compiles(_ComparableTime, "sqlite")
def _comparable_sqlite(element: _ComparableTime, compiler: Any, **kw: Any) -> str:
    return f"julianday({compiler.process(element.timestamp, **kw)})"


def comparable_time(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """`expression` (a timestamp column or parameter) in a form that compares correctly."""
    return _ComparableTime(expression)


def _time_param(name: str) -> ColumnElement[Any]:
    return comparable_time(bindparam(name, type_=UTCDateTime()))


def _sort_column(sort: TaskSort) -> ColumnElement[Any] | None:
    """The key expression of a sort; None for the id itself."""
    if sort.field == "priority":
        return PRIORITY_KEY
    if sort.field in ("due_date", "created_at"):
        return comparable_time(_tasks.c[sort.field])
    return None


def _cursor_value(sort: TaskSort, row: Row) -> Any:
    if sort.field == "priority":
        return PRIORITY_RANK[TaskPriority(row["priority"])]
    if sort.field in ("due_date", "created_at"):
        value: datetime | None = row[sort.field]
        return value.isoformat() if value is not None else None
    return row["id"]


# What the middle value of a cursor ([sort, value, id]) may be, per sorted field: the id
# again, a priority's rank, or a timestamp (null only in the block without due dates).
_VALUE_FIELDS = {
    "id": ID_FIELD,
    "priority": CursorField(int, minimum=0, maximum=max(PRIORITY_RANK.values())),
    "due_date": CursorField(str, max_length=40, nullable=True),
    "created_at": CursorField(str, max_length=40),
}


def _decode(sort: TaskSort, cursor: str | None) -> tuple[Any, int] | None:
    name = CursorField(str, choices=frozenset({sort.value}))
    values = decode_cursor(cursor, size=3, kinds=(name, _VALUE_FIELDS[sort.field], ID_FIELD))
    if values is None:
        return None
    _, value, last_id = values
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (ValueError, OverflowError):
            raise BadRequest(_INVALID_CURSOR) from None
    return value, int(last_id)


class _Position(Enum):
    """Where a page starts: at the top, after a row, or inside the block without due dates."""

    FIRST = "first"
    AFTER = "after"
    AFTER_IN_NULLS = "after-in-nulls"


def _after(sort: TaskSort, position: _Position) -> ColumnElement[bool]:
    """Rows strictly after (:after_value, :after_id) in the sort's order."""
    last_id = bindparam("after_id", type_=Integer())
    after_id = _tasks.c.id < last_id if sort.descending else _tasks.c.id > last_id
    key = _sort_column(sort)
    if key is None:
        return after_id
    if position is _Position.AFTER_IN_NULLS:
        # Inside the trailing block of tasks without a due date.
        return and_(_tasks.c.due_date.is_(None), after_id)
    bound = (
        bindparam("after_value", type_=Integer())
        if sort.field == "priority"
        else _time_param("after_value")
    )
    beyond = key < bound if sort.descending else key > bound
    predicate = or_(beyond, and_(key == bound, after_id))
    if sort.field == "due_date":
        predicate = or_(predicate, _tasks.c.due_date.is_(None))
    return predicate


def _filter(name: str) -> ColumnElement[bool]:
    """The predicate of one filter, its value bound as :<name>."""
    if name == "due_before":
        return comparable_time(_tasks.c.due_date) < _time_param(name)
    if name == "due_after":
        return comparable_time(_tasks.c.due_date) > _time_param(name)
    if name == "q":
        pattern = bindparam(name, type_=String())
        return or_(
            _tasks.c.title.ilike(pattern, escape="\\"),
            _tasks.c.description.ilike(pattern, escape="\\"),
        )
    column = _tasks.c[name]
    return column == bindparam(name, type_=column.type)


@lru_cache(maxsize=512)
def _page_statement(
    *, members_only: bool, filters: tuple[str, ...], sort: TaskSort, position: _Position
) -> PageStatement:
    """The statement for one combination of filters, sort and position, compiled once.

    Every value is a bound parameter, so the few hundred possible shapes are each built
    once per process; a request only binds its values. A member's statement also reads the
    :user_id account (the route has read only the token).
    """
    stmt = select(*model_columns(TaskOut, _tasks)).where(*(_filter(name) for name in filters))
    if members_only:
        stmt = stmt.where(
            _tasks.c.project_id.in_(
                select(_members.c.project_id).where(
                    _members.c.user_id == bindparam("user_id", type_=Integer())
                )
            )
        )
    if position is not _Position.FIRST:
        stmt = stmt.where(_after(sort, position))
    key = _sort_column(sort)
    sort_keys = [SortKey(_tasks.c.id, descending=sort.descending)]
    if key is not None:
        sort_keys.insert(0, SortKey(key, descending=sort.descending, nulls_last=True))
    return PageStatement(
        stmt,
        sort_keys,
        model=TaskOut,
        cursor_keys=sorted({"id", sort.field}),
        caller=CALLER if members_only else None,
    )


# The account behind the token, read beside a member's page: no row when the token is no
# longer valid (auth.tokens.valid_caller).
CALLER = valid_caller(_users.c.is_active, _users.c.is_superuser)


async def list_tasks(
    db: Executor,
    *,
    token: TokenClaims,
    filters: TaskFilters,
    sort: TaskSort,
    limit: int,
    cursor: str | None,
) -> Response:
    """One page of the tasks the user a token names may see, with the next page's cursor.

    The tasks of the user's projects, read with the token's validity in one statement: no
    longer valid, 401 (at once after deactivation or logout, as everywhere). A site admin
    sees every task, which takes a statement of its own.
    """
    member = TaskPage(filters=filters, sort=sort, cursor=cursor, members_only=True)
    page, caller = await member.fetch(db, limit=limit, token=token)
    if page is not None:
        return page
    if caller is None or not caller.active:
        raise Unauthorized()
    everyone = TaskPage(filters=filters, sort=sort, cursor=cursor, members_only=False)
    page, _ = await everyone.fetch(db, limit=limit)
    assert page is not None  # noqa: S101 (no caller check: there is always a page)
    return page


class TaskPage:
    """One requested page of tasks: its statement, the values it binds, where it starts.

    A member's page (`members_only`) is the tasks of the :user_id account's projects, read
    with the account; otherwise every task (a site admin's page).
    """

    def __init__(
        self, *, filters: TaskFilters, sort: TaskSort, cursor: str | None, members_only: bool
    ) -> None:
        self.request = _PageRequest(filters, sort, cursor)
        self.statement = _page_statement(
            members_only=members_only,
            filters=self.request.filters,
            sort=sort,
            position=self.request.position,
        )

        self.cursor_of = self.request.cursor_of

    def params(self, token: TokenClaims | None = None) -> dict[str, Any]:
        """The values the statement binds (a member's page also binds the token's claims)."""
        params = dict(self.request.params)
        if token is not None:
            params.update(token.caller_params)
        return params

    async def fetch(
        self, db: Executor, *, limit: int, token: TokenClaims | None = None
    ) -> tuple[Response | None, Caller | None]:
        """The page, and the account if a member's page read it (`PageStatement.fetch`)."""
        return await self.statement.fetch(
            db, limit=limit, cursor_of=self.cursor_of, **self.params(token)
        )


class _PageRequest:
    """One requested page: the filters in use, their values, where the page starts."""

    def __init__(self, filters: TaskFilters, sort: TaskSort, cursor: str | None) -> None:
        self.sort = sort
        self.params: dict[str, Any] = {}
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

    def cursor_of(self, last: Row) -> list[Any]:
        """The next page's cursor, from the page's last row."""
        return [self.sort.value, _cursor_value(self.sort, last), last["id"]]


_FILTER_NAMES = tuple(field.name for field in fields(TaskFilters))
