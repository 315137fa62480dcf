"""GET /tasks: filters, sorts and keyset pagination in one SQL statement per page.

Every sort reads one index in order (taskhub.models.task `sort_keys`; README "Indexes"):
`id`, due date, priority and creation time, forwards or backwards, each alone (a site
admin's list), led by project_id and led by assignee_id. A page starts strictly after the
cursor's (key, id), as a range of that index, and stops after `limit + 1` rows: no row
before the page is read, and nothing is sorted but the page.

- Due-date sorts put tasks without a due date last in both directions: ascending reads
  NULL as the latest instant, descending as the earliest (`due_key`).
- `priority` sorts by urgency (none < low < medium < high < urgent), then id, through one
  integer key (`priority_key`).
- The first page starts after a bound below every key, so it is the same statement as the
  pages after it.

The statement's shape follows who asks and what they filter on (`_Shape`):

- PLAIN: one range of one index, other filters checked on the rows read (a site admin's
  list; a member's list filtered by project or assignee, checked against their projects).
- MERGE: a member's list across their projects: each project's page is its own range of
  the project-led index (LATERAL on PostgreSQL; a correlated IN on SQLite, which has no
  LATERAL), and the at most `projects × (limit + 1)` rows are merged. Work grows with the
  member's projects, not with the table.
- SEARCH (`q`, outside MERGE; `search.walk_or_index`): on PostgreSQL, words the table's
  statistics call rare are found by the full-text index, their matches filtered and
  sorted; other words by a walk of the sort's index range, checking each row, which hands
  over to the full-text index if it reads `search.WALK` rows without filling the page. On
  SQLite, the matches, sorted. In MERGE the words are checked on each project's rows: a
  member's search reads at most what the member can see.

Each statement is a `pages.PageStatement`: one definition, answered the same on both
databases (MERGE differs in form, not in rows).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import Enum, StrEnum
from functools import cache
from typing import Any

from fastapi import Response
from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    bindparam,
    false,
    select,
    true,
)

from taskhub.auth.tokens import valid_caller
from taskhub.db import table_of
from taskhub.driver import Executor, Row
from taskhub.errors import BadRequest, Unauthorized
from taskhub.models import ProjectMember, Task, TaskPriority, TaskStatus, User
from taskhub.models._keys import (
    EARLIEST,
    LATEST,
    BoundTime,
    comparable_time,
    integer_bound,
    keyset_after,
)
from taskhub.models.task import PRIORITY_RANK, PRIORITY_SPAN, created_key, due_key, priority_key
from taskhub.pages import Caller, PageStatement, SortKey, model_columns
from taskhub.pagination import ABOVE_EVERY_ID, ID_FIELD, CursorField, decode_cursor
from taskhub.projects.schemas import TaskOut
from taskhub.search import matches, search_words, walk_or_index
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


_INVALID_CURSOR = "The cursor is not valid for this sort; start again without one"
# A filter name of its own: a `q` without a word, which matches nothing.
_NOTHING = "nothing"


def sort_order(sort: TaskSort, columns: Any) -> list[SortKey]:
    """The ORDER BY of a sort over the task row `columns` (the table, or a subquery)."""
    descending = sort.descending
    if sort.field == "id":
        return [SortKey(columns.id, descending=descending)]
    if sort.field == "priority":
        return [SortKey(priority_key(columns), descending=descending)]
    key = (
        due_key(columns, descending=descending)
        if sort.field == "due_date"
        else created_key(columns)
    )
    return [SortKey(key, descending=descending), SortKey(columns.id, descending=descending)]


def _after(sort: TaskSort, columns: Any) -> ColumnElement[bool]:
    """Rows strictly after the bound (:after_key, or :after_time and :after_id)."""
    order = sort_order(sort, columns)
    if len(order) == 1:  # id, or the priority key: one integer
        bound = integer_bound("after_key")
        key = order[0].expression
        after: ColumnElement[bool] = key < bound if sort.descending else key > bound
        return after
    return keyset_after(
        order[0].expression,
        columns.id,
        after_key=comparable_time(bindparam("after_time", type_=BoundTime())),
        after_id=integer_bound("after_id"),
        descending=sort.descending,
    )


def _time_param(name: str) -> ColumnElement[Any]:
    return comparable_time(bindparam(name, type_=BoundTime()))


def _filter(name: str, sort: TaskSort, columns: Any) -> ColumnElement[bool]:
    """The predicate of one filter, its value bound as :<name>.

    A filter on the sorted field is written on the sort key, as a range of its index.
    """
    if name == _NOTHING:
        return false()
    if name == "q":
        # Only a merge reaches here with q (a search is `_searched`'s walk): each row a
        # project's index scan reads is checked.
        return matches(columns.id.table, indexed=False)
    if name in ("due_before", "due_after"):
        if sort.field != "due_date":
            due, bound = comparable_time(columns.due_date), _time_param(name)
            return due < bound if name == "due_before" else due > bound
        if _starts_the_page(name, sort):
            # The page's start bound holds the date (`_PageRequest`); tasks without one
            # are the key's NULL bound, past any date in the reading direction.
            dated: ColumnElement[bool] = columns.due_date.is_not(None)
            return dated
        key = due_key(columns, descending=sort.descending)
        return key > _time_param(name) if sort.descending else key < _time_param(name)
    if name == "priority" and sort.field == "priority":
        # The rank's block of keys: it starts the page (`_PageRequest`) and ends it here.
        key = priority_key(columns)
        if sort.descending:
            return key >= integer_bound("priority_low")
        return key < integer_bound("priority_high")
    column = columns[name]
    equal: ColumnElement[bool] = column == bindparam(name, type_=column.type)
    return equal


def _starts_the_page(name: str, sort: TaskSort) -> bool:
    """Whether a filter bounds the sort key where a page starts (then the page's start bound
    holds it, and an index range has one bound per side)."""
    if sort.field == "priority":
        return name == "priority"
    if sort.field == "due_date":
        return name == ("due_before" if sort.descending else "due_after")
    return False


def _visible(columns: Any) -> ColumnElement[bool]:
    """The task is in one of the :user_id account's projects."""
    visible: ColumnElement[bool] = columns.project_id.in_(
        select(_members.c.project_id).where(
            _members.c.user_id == bindparam("user_id", type_=Integer())
        )
    )
    return visible


# Filters that pick the index a page reads: its leading column. The rest are checked on
# the rows read, or are ranges of the sort key itself.
_LEADING = ("project_id", "assignee_id")


class _Shape(Enum):
    PLAIN = "plain"
    MERGE = "merge"
    SEARCH = "search"


def _shape(*, members_only: bool, filters: tuple[str, ...]) -> _Shape:
    if members_only and not any(name in filters for name in _LEADING):
        return _Shape.MERGE
    if "q" in filters:
        return _Shape.SEARCH
    return _Shape.PLAIN


_FIELDS = list(TaskOut.model_fields)


@cache  # a finite set: filters × sorts × scopes × dialects
def _page_statement(
    *, members_only: bool, filters: tuple[str, ...], sort: TaskSort, dialect: str
) -> PageStatement:
    """The statement for one combination of filters and sort, compiled once.

    Every value is a bound parameter, so each shape in use is built once per process; a
    request only binds its values. A member's statement also reads the :user_id account (the
    route has read only the token).
    """
    shape = _shape(members_only=members_only, filters=filters)
    if shape is _Shape.MERGE:
        stmt, order = _merged(filters, sort, dialect)
    elif shape is _Shape.SEARCH:
        stmt, order = _searched(filters, sort, members_only=members_only, dialect=dialect)
    else:
        stmt, order = _plain(filters, sort, members_only=members_only)
    return PageStatement(
        stmt,
        order,
        model=TaskOut,
        cursor_keys=sorted({"id", sort.field}),
        caller=CALLER if members_only else None,
    )


def _plain(
    filters: tuple[str, ...], sort: TaskSort, *, members_only: bool
) -> tuple[Select[Any], list[SortKey]]:
    columns = _tasks.c
    stmt = select(*model_columns(TaskOut, _tasks)).where(
        *(_filter(name, sort, columns) for name in filters), _after(sort, columns)
    )
    if members_only:
        stmt = stmt.where(_visible(columns))
    return stmt, sort_order(sort, columns)


def _merged(
    filters: tuple[str, ...], sort: TaskSort, dialect: str
) -> tuple[Select[Any], list[SortKey]]:
    """A member's page: each of their projects' pages, merged."""
    member = _members.alias("member")
    mine = member.c.user_id == bindparam("user_id", type_=Integer())
    limit = bindparam("limit", type_=Integer())
    if dialect == "postgresql":
        columns = _tasks.c
        per_project = (
            select(*(columns[name] for name in _FIELDS))
            .where(
                columns.project_id == member.c.project_id,
                *(_filter(name, sort, columns) for name in filters),
                _after(sort, columns),
            )
            .order_by(*(key.on(key.expression) for key in sort_order(sort, columns)))
            .limit(limit)
            .lateral("page")
        )
        stmt = (
            select(*model_columns(TaskOut, per_project))
            .select_from(member.join(per_project, true()))
            .where(mine)
        )
        return stmt, sort_order(sort, per_project.c)
    # SQLite: no LATERAL; each project's page is a correlated IN on the task's id.
    task = _tasks.alias("task")
    columns = task.c
    per_project_ids = (
        select(columns.id)
        .where(
            columns.project_id == member.c.project_id,
            *(_filter(name, sort, columns) for name in filters),
            _after(sort, columns),
        )
        .order_by(*(key.on(key.expression) for key in sort_order(sort, columns)))
        .limit(limit)
        .correlate(member)
    )
    stmt = (
        select(*model_columns(TaskOut, _tasks))
        .select_from(member.join(_tasks, _tasks.c.id.in_(per_project_ids)))
        .where(mine)
    )
    return stmt, sort_order(sort, _tasks.c)


def _narrows_the_range(name: str, sort: TaskSort) -> bool:
    """Whether a filter is part of the range a page reads (the index's leading column, or a
    range of the sort key), rather than checked on each row read."""
    if name in _LEADING:
        return True
    if sort.field == "priority":
        return name == "priority"
    return sort.field == "due_date" and name in ("due_before", "due_after")


def _searched(
    filters: tuple[str, ...], sort: TaskSort, *, members_only: bool, dialect: str
) -> tuple[Select[Any], list[SortKey]]:
    """A page with `q` (`search.walk_or_index`): the full-text index's matches, or a walk in
    the sort's order."""
    columns = _tasks.c
    order = sort_order(sort, columns)
    # What the walk's index range is made of, and what is checked on each row it reads.
    ranged = [_after(sort, columns)]
    checked: list[ColumnElement[bool]] = []
    for name in filters:
        if name != "q":
            part = ranged if _narrows_the_range(name, sort) else checked
            part.append(_filter(name, sort, columns))
    if members_only:
        ranged.append(_visible(columns))
    page = walk_or_index(
        _tasks, _FIELDS, order=order, ranged=ranged, checked=checked, dialect=dialect
    )
    return select(*model_columns(TaskOut, page)), sort_order(sort, page.c)


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
    """One requested page of tasks: its statement's shape, the values it binds.

    A member's page (`members_only`) is the tasks of the token's account's projects, read
    with the token's validity; otherwise every task (a site admin's page).
    """

    def __init__(
        self, *, filters: TaskFilters, sort: TaskSort, cursor: str | None, members_only: bool
    ) -> None:
        self.request = _PageRequest(filters, sort, cursor)
        self.members_only = members_only
        self.cursor_of = self.request.cursor_of

    def statement(self, dialect: str) -> PageStatement:
        """The page statement for a database."""
        return _page_statement(
            members_only=self.members_only,
            filters=self.request.filters,
            sort=self.request.sort,
            dialect=dialect,
        )

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
        return await self.statement(db.dialect).fetch(
            db, limit=limit, cursor_of=self.cursor_of, **self.params(token)
        )


class _PageRequest:
    """One requested page: the filters in use, their values, where the page starts."""

    def __init__(self, filters: TaskFilters, sort: TaskSort, cursor: str | None) -> None:
        self.sort = sort
        self.params: dict[str, Any] = {}
        names: list[str] = []
        values: dict[str, Any] = {}
        for field in fields(filters):
            name, value = field.name, getattr(filters, field.name)
            if value is None or value == "":
                continue
            if isinstance(value, Enum):
                value = value.value
            if name == "q":
                value = search_words(value)
                if not value:
                    names.append(_NOTHING)
                    continue
            names.append(name)
            values[name] = value
        self.filters = tuple(names)
        start = _start(sort, _decode(sort, cursor))
        for name, value in values.items():
            if sort.field == "priority" and name == "priority":
                rank = PRIORITY_RANK[TaskPriority(value)]
                low, high = rank * PRIORITY_SPAN, (rank + 1) * PRIORITY_SPAN
                if sort.descending:
                    start, self.params["priority_low"] = min(start, (high, 0)), low
                else:
                    start, self.params["priority_high"] = max(start, (low - 1, 0)), high
            elif _starts_the_page(name, sort):
                # (date, id) past every task due exactly then, in the reading direction.
                edge = (value, 0) if sort.descending else (value, ABOVE_EVERY_ID)
                start = min(start, edge) if sort.descending else max(start, edge)
            else:
                self.params[name] = value
        if sort.field in ("id", "priority"):
            self.params["after_key"] = start[0]
        else:
            self.params["after_time"], self.params["after_id"] = start

    def cursor_of(self, last: Row) -> list[Any]:
        """The next page's cursor, from the page's last row."""
        return [self.sort.value, _cursor_value(self.sort, last), last["id"]]


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
    """The cursor's (value, last id), checked against the sort; None for the first page."""
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


def _start(sort: TaskSort, after: tuple[Any, int] | None) -> tuple[Any, int]:
    """Where a page starts, as (key, id): after the cursor's row, or before every row. The
    integer keys (id, priority) are whole in the first item."""
    descending = sort.descending
    if sort.field == "id":
        return (after[1] if after else ABOVE_EVERY_ID if descending else 0, 0)
    if sort.field == "priority":
        if after is None:
            return (len(PRIORITY_RANK) * PRIORITY_SPAN if descending else -1, 0)
        rank, last_id = after
        return (rank * PRIORITY_SPAN + last_id, 0)
    if after is None:
        return (LATEST, ABOVE_EVERY_ID) if descending else (EARLIEST, 0)
    value, last_id = after
    if value is None:  # inside the due dates' NULL block, whose key is the NULL bound
        value = EARLIEST if descending else LATEST
    return (value, last_id)
