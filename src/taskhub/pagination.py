"""Keyset pagination: an opaque cursor and the `{items, next_cursor}` page shape."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Text,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncEngine

from taskhub.dependencies import MAX_ID
from taskhub.errors import BadRequest
from taskhub.responses import json_response

MAX_LIMIT = 200
_LIMIT = {"ge": 1, "le": MAX_LIMIT, "description": "Page size (max 200)"}
_CURSOR = {"max_length": 512, "description": "Opaque cursor from `next_cursor`"}
LimitQuery = Annotated[int, Query(**_LIMIT)]
CursorQuery = Annotated[str | None, Query(**_CURSOR)]


class PageQuery(BaseModel):
    """`limit` and `cursor`: the base of a list's query-string model (taskhub.query)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    limit: Annotated[int, Field(**_LIMIT)] = 50
    cursor: Annotated[str | None, Field(**_CURSOR)] = None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None


def page_response(items: Sequence[Mapping[str, Any]], next_cursor: str | None) -> Response:
    """A `Page` serialized straight from database rows (hot list endpoints).

    The rows are already typed by the database, so validating them again through pydantic
    only costs time; the route still declares `response_model=Page[...]` for the schema.
    """
    return json_response({"items": [dict(row) for row in items], "next_cursor": next_cursor})


R = TypeVar("R")


def split_page(
    rows: Sequence[R], limit: int, key: Callable[[R], list[Any]]
) -> tuple[Sequence[R], str | None]:
    """The page (queries fetch `limit + 1` rows) and the cursor after it, if more follow."""
    if len(rows) > limit:
        return rows[:limit], encode_cursor(key(rows[limit - 1]))
    return rows, None


def encode_cursor(values: list[Any]) -> str:
    """Pack the sort key of the last row into an opaque string."""
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


_FROM_URLSAFE = str.maketrans("-_", "+/")
INVALID_CURSOR = "The cursor is not valid; start again without one"


@dataclass(frozen=True, slots=True)
class CursorField:
    """What one position of a cursor may hold: an int in a range, or a short string.

    JSON `true` is not an int, and null only passes where `nullable` says so: whatever
    a cursor holds reaches SQL as a bound value of the sort's type, so anything else is a
    400 here rather than a database error later.
    """

    kind: type[int] | type[str]
    minimum: int = 1
    maximum: int = MAX_ID
    max_length: int = 64
    nullable: bool = False
    choices: frozenset[str] | None = None

    def accepts(self, value: object) -> bool:
        """Whether `value` (decoded JSON) is one this position may hold."""
        if value is None:
            return self.nullable
        if self.kind is int:
            return (
                type(value) is int and self.minimum <= value <= self.maximum  # no bool, no float
            )
        if not isinstance(value, str) or len(value) > self.max_length:
            return False
        return self.choices is None or value in self.choices


# A row id, the key of most lists.
ID_FIELD = CursorField(int)
_SHORTHAND = {int: ID_FIELD, str: CursorField(str)}


def decode_cursor(
    cursor: str | None, *, size: int, kinds: Sequence[type | CursorField]
) -> list[Any] | None:
    """Unpack a cursor made by `encode_cursor`: exactly `size` values, each one that its
    field of `kinds` accepts (`int`: a row id; `str`: a short string); otherwise a 400."""
    if cursor is None:
        return None
    fields = [kind if isinstance(kind, CursorField) else _SHORTHAND[kind] for kind in kinds]
    if len(fields) != size:
        raise ValueError(f"a cursor of {size} values needs {size} fields, not {len(fields)}")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        # Strict: characters outside the alphabet are an error, not silently skipped.
        standard = padded.translate(_FROM_URLSAFE).encode("ascii")
        values = orjson.loads(binascii.a2b_base64(standard, strict_mode=True))
    except (binascii.Error, ValueError, UnicodeEncodeError, orjson.JSONDecodeError):
        raise BadRequest(INVALID_CURSOR) from None
    if not isinstance(values, list) or len(values) != size:
        raise BadRequest(INVALID_CURSOR)
    if not all(field.accepts(value) for field, value in zip(fields, values, strict=True)):
        raise BadRequest(INVALID_CURSOR)
    return values


def database_writes_pages(engine: AsyncEngine) -> bool:
    """Whether list endpoints have the database write their pages (`json_page`): PostgreSQL."""
    return engine.dialect.name == "postgresql"


@dataclass(frozen=True, slots=True)
class SortKey:
    """One key of a list's order: an expression, its direction, and where NULLs go."""

    expression: Any
    descending: bool = False
    nulls_last: bool = False

    def on(self, expression: Any) -> Any:
        """`expression` ordered like this key (the key's own, or a column carrying it)."""
        ordered = expression.desc() if self.descending else expression.asc()
        return ordered.nulls_last() if self.nulls_last else ordered


def order_clauses(sort_keys: Sequence[SortKey]) -> list[Any]:
    """The ORDER BY clauses of `sort_keys`."""
    return [key.on(key.expression) for key in sort_keys]


def json_page(
    stmt: Select[*tuple[Any, ...]],
    sort_keys: Sequence[SortKey],
    *,
    keys: Sequence[str],
    table: str,
) -> Select[*tuple[Any, ...]]:
    """PostgreSQL: a page of `stmt`, in `sort_keys` order, as JSON the database keeps per row.

    Each row of the table named `table` keeps its list item as JSON text in a `doc` column,
    byte for byte what `page_response` writes for it (a trigger writes it: migration
    8a4c2f6e1b93; the ORM does not map it). One row comes back: `items`, the JSON array of
    the first :page_size of :limit rows; `matched`, how many of the :limit rows exist (more
    than :page_size: another page follows); and the `keys` columns of the page's last row,
    for its cursor. The server then only frames the text (`json_page_response`): no row
    decoding, no dicts, no dumping, and the database only joins stored text
    (bench/NOTES.md, changes 21, 30, 33 and 35).

    The :limit rows are chosen exactly as the row query chooses them (`ORDER BY … LIMIT`, so
    an index or a top-N sort), and only they are ranked: a window over the whole filtered
    set would sort all of it, documents included, for every page.
    """
    labels = [f"sort_{i}_" for i in range(len(sort_keys))]
    document = literal_column(f"{table}.doc", type_=Text())
    page_rows = (
        stmt.add_columns(
            document.label("doc_"),
            *(key.expression.label(label) for key, label in zip(sort_keys, labels, strict=True)),
        )
        .order_by(*order_clauses(sort_keys))
        .limit(bindparam("limit"))
        .subquery()
    )
    rank = func.row_number().over(
        order_by=[key.on(page_rows.c[label]) for key, label in zip(sort_keys, labels, strict=True)]
    )
    ranked = select(page_rows, rank.label("rank_")).subquery()
    in_page = ranked.c.rank_ <= bindparam("page_size", type_=Integer())
    items = func.string_agg(ranked.c.doc_, aggregate_order_by(_constant(","), ranked.c.rank_))
    last = ranked.c.rank_ == bindparam("page_size", type_=Integer())
    page: Select[*tuple[Any, ...]] = select(
        (
            _constant("[") + func.coalesce(items.filter(in_page), _constant("")) + _constant("]")
        ).label("items"),
        func.count().label("matched"),
        *(func.max(ranked.c[key]).filter(last).label(key) for key in keys),
    )
    return page


def _constant(text: str) -> ColumnElement[str]:
    """A string constant written into the SQL (not a parameter sent with every call)."""
    if "'" in text:
        raise ValueError(f"not a plain SQL string constant: {text!r}")
    return literal_column(f"'{text}'", type_=Text())


def json_page_response(page: Mapping[str, Any], next_cursor: str | None) -> Response:
    """The `Page` response around a `json_page` row's items."""
    body = b"".join(
        (b'{"items":', page["items"].encode(), b',"next_cursor":', orjson.dumps(next_cursor), b"}")
    )
    return Response(body, media_type="application/json")


def page_of(
    rows: Sequence[Mapping[str, Any]],
    limit: int,
    key: Callable[[Mapping[str, Any]], list[Any]],
    *,
    as_json: bool,
) -> Response:
    """The response of a list query: its one `json_page` row (`as_json`), or its `limit + 1`
    rows. `key` gives the sort key of the page's last row, for the next cursor."""
    if as_json:
        page = rows[0]
        more = page["matched"] > limit
        return json_page_response(page, encode_cursor(key(page)) if more else None)
    items, next_cursor = split_page(rows, limit, key)
    return page_response(items, next_cursor)
