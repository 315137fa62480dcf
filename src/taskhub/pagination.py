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
# Above every id (ids are positive 32-bit integers): where a descending walk by id starts.
ABOVE_EVERY_ID = MAX_ID + 1
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
