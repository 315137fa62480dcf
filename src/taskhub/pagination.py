"""Keyset pagination: an opaque cursor and the `{items, next_cursor}` page shape."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field

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


def decode_cursor(cursor: str | None, *, size: int, kinds: tuple[type, ...]) -> list[Any] | None:
    """Unpack a cursor made by `encode_cursor`; a forged or stale one is a 400."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        # Strict: characters outside the alphabet are an error, not silently skipped.
        standard = padded.translate(_FROM_URLSAFE).encode("ascii")
        values = orjson.loads(binascii.a2b_base64(standard, strict_mode=True))
    except (binascii.Error, ValueError, UnicodeEncodeError, orjson.JSONDecodeError):
        raise BadRequest("The cursor is not valid; start again without one") from None
    if not isinstance(values, list) or len(values) != size:
        raise BadRequest("The cursor is not valid; start again without one")
    for value, kind in zip(values, kinds, strict=True):
        if value is not None and not isinstance(value, kind):
            raise BadRequest("The cursor is not valid; start again without one")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**31:
            raise BadRequest("The cursor is not valid; start again without one")
    return values
