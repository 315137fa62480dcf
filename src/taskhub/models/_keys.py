"""Sort keys as the databases compare them.

The list indexes are built on these expressions and the list queries order and page by the
same ones, so an index and the query it serves are one definition. Each compiles per
database:

- `comparable_time`: a timestamp itself on PostgreSQL; its `julianday()` on SQLite, whose
  stored texts (CURRENT_TIMESTAMP's, SQLAlchemy's) differ in format from a bound value's.
- `time_or_latest` / `time_or_earliest`: a nullable timestamp with NULL read as the latest
  or the earliest instant there is (PostgreSQL's `infinity` / `-infinity`, which asyncpg
  reads and writes as `datetime.max` / `datetime.min`; on SQLite the `julianday()` of those
  two values, as far as julianday() reaches: it has no value for the last millisecond of
  year 9999, so there `LATEST` is bound as the millisecond before, `BoundTime`). A list that
  puts NULLs last in both directions orders by the first ascending
  and by the second descending, and each is one index with no NULL in it.
- `integer_bound`: an integer parameter compared with a key: a BIGINT on PostgreSQL (which
  would otherwise take it as the INTEGER column's type, too small for a bound above every
  id); on SQLite the bare parameter, as a CAST would keep the index from serving the range.
- `keyset_after`: the rows after (:key, :id) in (key, id) order. PostgreSQL compares the
  row values, which an index on (key, id) serves as one range. SQLite uses row values only
  on plain columns, so there the key's own range comes first and the tie-break is a filter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, BindParameter, ColumnElement, and_, bindparam, or_, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import Boolean

from taskhub.db import UTCDateTime

# The bounds NULL stands for, as Python values: what asyncpg maps to PostgreSQL's
# infinities, and (naive) what SQLAlchemy writes on SQLite.
LATEST = datetime.max.replace(tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)
_SQLITE_TEXT = {True: "9999-12-31 23:59:59.999", False: "0001-01-01 00:00:00.000000"}
_SQLITE_LATEST = LATEST.replace(microsecond=999000)


class BoundTime(UTCDateTime):
    """A timestamp bound to be compared with the sort keys (`comparable_time` of it)."""

    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and dialect.name == "sqlite":
            value = min(value.astimezone(UTC), _SQLITE_LATEST)
        return super().process_bind_param(value, dialect)


class _ComparableTime(ColumnElement[Any]):
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


class _TimeOr(ColumnElement[Any]):
    inherit_cache = True

    def __init__(self, timestamp: ColumnElement[Any], *, latest: bool) -> None:
        self.timestamp = timestamp
        self.latest = latest
        self.type = timestamp.type


@compiles(_TimeOr)
def _time_or_default(element: _TimeOr, compiler: Any, **kw: Any) -> str:
    bound = "infinity" if element.latest else "-infinity"
    return f"COALESCE({compiler.process(element.timestamp, **kw)}, '{bound}'::timestamptz)"


@compiles(_TimeOr, "sqlite")
def _time_or_sqlite(element: _TimeOr, compiler: Any, **kw: Any) -> str:
    timestamp = compiler.process(element.timestamp, **kw)
    return f"coalesce(julianday({timestamp}), julianday('{_SQLITE_TEXT[element.latest]}'))"


def time_or_latest(timestamp: ColumnElement[Any]) -> ColumnElement[Any]:
    """A nullable timestamp, comparable, with NULL as the latest instant (`LATEST`)."""
    return _TimeOr(timestamp, latest=True)


def time_or_earliest(timestamp: ColumnElement[Any]) -> ColumnElement[Any]:
    """A nullable timestamp, comparable, with NULL as the earliest instant (`EARLIEST`)."""
    return _TimeOr(timestamp, latest=False)


class _KeysetAfter(ColumnElement[bool]):
    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition as it is, never compared with true

    def __init__(
        self,
        key: ColumnElement[Any],
        row_id: ColumnElement[Any],
        after_key: ColumnElement[Any],
        after_id: ColumnElement[Any],
        descending: bool,
    ) -> None:
        self.sort_key, self.row_id = key, row_id
        self.after_key, self.after_id = after_key, after_id
        self.descending = descending


@compiles(_KeysetAfter)
def _keyset_default(element: _KeysetAfter, compiler: Any, **kw: Any) -> str:
    row, bound = (
        tuple_(element.sort_key, element.row_id),
        tuple_(element.after_key, element.after_id),
    )
    return str(compiler.process(row < bound if element.descending else row > bound, **kw))


@compiles(_KeysetAfter, "sqlite")
def _keyset_sqlite(element: _KeysetAfter, compiler: Any, **kw: Any) -> str:
    key, after_key = element.sort_key, element.after_key
    if element.descending:
        clause = and_(key <= after_key, or_(key < after_key, element.row_id < element.after_id))
    else:
        clause = and_(key >= after_key, or_(key > after_key, element.row_id > element.after_id))
    return str(compiler.process(clause, **kw))


def keyset_after(
    key: ColumnElement[Any],
    row_id: ColumnElement[Any],
    *,
    after_key: ColumnElement[Any],
    after_id: ColumnElement[Any],
    descending: bool,
) -> ColumnElement[bool]:
    """Rows strictly after (after_key, after_id) in (key, row_id) order."""
    return _KeysetAfter(key, row_id, after_key, after_id, descending)


class _IntegerBound(ColumnElement[int]):
    inherit_cache = True
    type = BigInteger()

    def __init__(self, name: str) -> None:
        self.parameter: BindParameter[int] = bindparam(name, type_=BigInteger())


@compiles(_IntegerBound)
def _integer_bound_default(element: _IntegerBound, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.parameter, **kw)} AS BIGINT)"


@compiles(_IntegerBound, "sqlite")
def _integer_bound_sqlite(element: _IntegerBound, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.parameter, **kw))


def integer_bound(name: str) -> ColumnElement[int]:
    """The integer bound as :`name`, to compare with an integer key."""
    return _IntegerBound(name)
