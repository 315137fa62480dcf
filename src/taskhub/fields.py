"""What every request schema shares: strict typing, storable text, omit-but-not-null fields.

JSON bodies are strictly typed (design §5): `StrictModel` validates in pydantic's strict mode,
so `true`, `"7"`, `2.0` or `1e3` is not an integer and `1` is not a boolean. The few types
whose JSON form is a string (timestamps, enums) say `LAX`, which relaxes only them.
Query strings and paths are parsed by their own models, which stay lax: there every value
arrives as text.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

# A JSON string that pydantic converts (an ISO 8601 timestamp, an enum's value).
LAX = Field(strict=False)
# The text rule every stored string follows, so the document says it too (ECMA and Rust
# regex both read \u0000).
NO_NUL_PATTERN = r"^[^\u0000]*$"


class StrictModel(BaseModel):
    """A request body: unknown fields are rejected (mass assignment fails loudly), and every
    number and boolean is strictly typed."""

    model_config = ConfigDict(extra="forbid", strict=True)


def storable_text(value: str) -> str:
    """Refuse what no database can store: NUL characters and lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    return value


def text(*, min_length: int | None = None, max_length: int, **extra: Any) -> Any:
    """`Annotated` metadata of stored text: the length, no NUL (documented as a pattern)."""
    return Field(min_length=min_length, max_length=max_length, pattern=NO_NUL_PATTERN, **extra)


StorableText = AfterValidator(storable_text)


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may be omitted but not null")
    return value


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# An optional field that may be omitted but not sent as null: `Omittable[T]` is `T | None`
# in Python (None meaning "not sent"), and plain `T`, not required, in the document.
NotNull = AfterValidator(_not_null)
OMITTED = Field(default=None, json_schema_extra=_no_default)
T = TypeVar("T")
Omittable = Annotated[T | SkipJsonSchema[None], NotNull]
