"""List pages as one statement each, written once, answered the same on both databases.

A `PageStatement` is a list query (a SELECT of a response model's fields, with its filters)
plus its keyset order. It fetches `limit + 1` rows in that order and answers the
`{"items": [...], "next_cursor": ...}` page:

- on PostgreSQL the database writes the page's JSON itself (`json_page`): each item is
  concatenated text built from the response model's fields (`row_json`), so the server only
  frames it; no row decoding, dicts or dumping;
- on SQLite the rows are serialized by orjson.

The two are byte for byte the same (the tests compare them). The response model is the one
field list: the statement selects its fields by name, and `row_json` writes them by type, so
a field added to the model is in both pages without another edit.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Union, get_args, get_origin

import orjson
from fastapi import Response
from pydantic import BaseModel
from sqlalchemy import (
    Boolean,
    ColumnElement,
    FromClause,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from taskhub.driver import DriverStatement, Executor, Row
from taskhub.pagination import encode_cursor, page_response, split_page


@dataclass(frozen=True, slots=True)
class SortKey:
    """One key of a list's order: an expression (never NULL: an index serves the order in
    both directions) and its direction."""

    expression: Any
    descending: bool = False

    def on(self, expression: Any) -> Any:
        """`expression` ordered like this key (the key's own, or a column carrying it)."""
        return expression.desc() if self.descending else expression.asc()


def order_clauses(sort_keys: Sequence[SortKey]) -> list[Any]:
    """The ORDER BY clauses of `sort_keys`."""
    return [key.on(key.expression) for key in sort_keys]


def model_columns(model: type[BaseModel], table: FromClause) -> list[ColumnElement[Any]]:
    """The columns of `table` (or a subquery) that carry `model`'s fields, labelled by field
    name, in order."""
    return [table.c[name].label(name) for name in model.model_fields]


def row_json(model: type[BaseModel], columns: Any) -> Any:
    """PostgreSQL: one row as the JSON text pydantic writes for `model` (compact, fields in
    order, timestamps in UTC with microseconds and a `Z`, none when zero).

    Written field by field from the model's annotations; a field of a kind it does not know
    is refused here, at import, rather than written wrongly.
    """
    parts: list[Any] = []
    for index, (name, field) in enumerate(model.model_fields.items()):
        key = ("{" if index == 0 else ",") + orjson.dumps(name).decode() + ":"
        kind, nullable = _kind(field.annotation)
        value = _json_value(kind, columns[name])
        if nullable:
            value = func.coalesce(value, _text("null"))
        parts.extend([_text(key), value])
    parts.append(_text("}"))
    document = parts[0]
    for part in parts[1:]:
        document = document + part
    return document


def _kind(annotation: Any) -> tuple[type, bool]:
    """The one type a field holds, and whether it may be null."""
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(get_args(annotation))
        if len(members) != 1:
            raise TypeError(f"row_json: unsupported union {annotation!r}")
        annotation = members[0]
    if not isinstance(annotation, type):
        raise TypeError(f"row_json: unsupported field type {annotation!r}")
    return annotation, nullable


def _json_value(kind: type, column: ColumnElement[Any]) -> ColumnElement[str]:
    if issubclass(kind, bool):
        return case((cast(column, Boolean()), _text("true")), else_=_text("false"))
    if issubclass(kind, int):
        return cast(column, Text())
    if issubclass(kind, str | Enum):
        return cast(func.to_json(column), Text())
    if issubclass(kind, datetime):
        formatted = func.to_char(
            func.timezone(_text("UTC"), column), _text('YYYY-MM-DD"T"HH24:MI:SS.US')
        )
        trimmed = func.replace(formatted, _text(".000000"), _text(""))
        return _text('"') + trimmed + _text('Z"')
    raise TypeError(f"row_json: unsupported field type {kind!r}")


def _text(text: str) -> ColumnElement[str]:
    """A string constant written into the SQL (not a parameter sent with every call)."""
    if "'" in text:
        raise ValueError(f"not a plain SQL string constant: {text!r}")
    return literal_column(f"'{text}'", type_=Text())


@dataclass(frozen=True, slots=True)
class Caller:
    """The account behind a token, as a page statement read it beside the page."""

    active: bool
    superuser: bool


CallerCheck = Callable[[], Select[Any]]


class PageStatement:
    """A list query and its order, compiled once per database; `fetch` answers a page.

    `stmt` selects the model's fields (`model_columns`) with the list's filters and keyset
    position as bound parameters; `cursor_keys` are the columns the next cursor is made of.
    With `caller`, a SELECT of `is_active` and `is_superuser` for :user_id, the page
    statement also reads the caller's account, so a route that only read the token needs
    no lookup of its own.
    """

    def __init__(
        self,
        stmt: Select[Any],
        sort_keys: Sequence[SortKey],
        *,
        model: type[BaseModel],
        cursor_keys: Sequence[str],
        caller: Select[Any] | None = None,
    ) -> None:
        self.model = model
        self.cursor_keys = list(cursor_keys)
        self._caller = caller
        self.rows = DriverStatement(
            stmt.order_by(*order_clauses(sort_keys)).limit(bindparam("limit", type_=Integer()))
        )
        self.caller = DriverStatement(caller) if caller is not None else None
        page = json_page(stmt, sort_keys, model=model, keys=self.cursor_keys)
        if caller is not None:
            account = caller.subquery("caller")
            page = page.add_columns(
                select(account.c.is_active).scalar_subquery().label("caller_active"),
                select(account.c.is_superuser).scalar_subquery().label("caller_superuser"),
            )
        self.json = DriverStatement(page)

    async def fetch(
        self,
        db: Executor,
        *,
        limit: int,
        cursor_of: Callable[[Row], list[Any]],
        **params: Any,
    ) -> tuple[Response | None, Caller | None]:
        """The page's response; `cursor_of` makes the next cursor from the last row.

        With a caller check the page is a member's: it comes back only for an active account
        that is not a site admin, and otherwise None with what was found of the account
        (None: gone). PostgreSQL reads the account in the page's statement; SQLite reads it
        first.
        """
        if db.dialect == "postgresql":
            return await self.page_from_json(db, limit=limit, cursor_of=cursor_of, **params)
        return await self.page_from_rows(db, limit=limit, cursor_of=cursor_of, **params)

    async def page_from_json(
        self, db: Executor, *, limit: int, cursor_of: Callable[[Row], list[Any]], **params: Any
    ) -> tuple[Response | None, Caller | None]:
        """`fetch` with the page written by the database (PostgreSQL)."""
        page = (await db.run(self.json, limit=limit + 1, page_size=limit, **params))[0]
        caller = None
        if self._caller is not None:
            if page["caller_active"] is not None:
                caller = Caller(bool(page["caller_active"]), bool(page["caller_superuser"]))
            if caller is None or not caller.active or caller.superuser:
                return None, caller
        more = page["matched"] > limit
        cursor = encode_cursor(cursor_of(page)) if more else None
        return json_page_response(page, cursor), caller

    async def page_from_rows(
        self, db: Executor, *, limit: int, cursor_of: Callable[[Row], list[Any]], **params: Any
    ) -> tuple[Response | None, Caller | None]:
        """`fetch` with the page written by the server from the rows (any database)."""
        caller = None
        if self.caller is not None:
            found = await db.run(self.caller, **params)
            if found:
                caller = Caller(bool(found[0]["is_active"]), bool(found[0]["is_superuser"]))
            if caller is None or not caller.active or caller.superuser:
                return None, caller
        rows = await db.run(self.rows, limit=limit + 1, **params)
        items, next_cursor = split_page(rows, limit, cursor_of)
        return page_response(items, next_cursor), caller


def json_page(
    stmt: Select[Any],
    sort_keys: Sequence[SortKey],
    *,
    model: type[BaseModel],
    keys: Sequence[str],
) -> Select[Any]:
    """PostgreSQL: a page of `stmt`, in `sort_keys` order, as the JSON the API writes.

    One row comes back: `items`, the JSON array of the first :page_size of the :limit rows;
    `matched`, how many of the :limit rows exist (more than :page_size: another page
    follows); and the `keys` columns of the page's last row, for its cursor. The :limit rows
    are chosen exactly as the row query chooses them (`ORDER BY … LIMIT`: an index or a
    top-N sort), and only they are written as JSON and ranked.
    """
    labels = [f"sort_{i}_" for i in range(len(sort_keys))]
    page_rows = (
        stmt.add_columns(
            *(key.expression.label(label) for key, label in zip(sort_keys, labels, strict=True))
        )
        .order_by(*order_clauses(sort_keys))
        .limit(bindparam("limit", type_=Integer()))
        .subquery()
    )
    rank = func.row_number().over(
        order_by=[key.on(page_rows.c[label]) for key, label in zip(sort_keys, labels, strict=True)]
    )
    document = row_json(model, page_rows.c)
    ranked = select(
        document.label("doc_"), *(page_rows.c[key] for key in keys), rank.label("rank_")
    ).subquery()
    in_page = ranked.c.rank_ <= bindparam("page_size", type_=Integer())
    items = func.string_agg(ranked.c.doc_, aggregate_order_by(_text(","), ranked.c.rank_))
    last = and_(ranked.c.rank_ == bindparam("page_size", type_=Integer()))
    page: Select[Any] = select(  # type: ignore[assignment]
        (_text("[") + func.coalesce(items.filter(in_page), _text("")) + _text("]")).label("items"),
        func.count().label("matched"),
        *(func.max(ranked.c[key]).filter(last).label(key) for key in keys),
    )
    return page


def json_page_response(page: Mapping[str, Any], next_cursor: str | None) -> Response:
    """The `Page` response around a `json_page` row's items."""
    body = b"".join(
        (b'{"items":', page["items"].encode(), b',"next_cursor":', orjson.dumps(next_cursor), b"}")
    )
    return Response(body, media_type="application/json")
