"""The event envelope every event travels in, in the outbox and on the stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Envelope(BaseModel):
    """`id`, dotted `type`, `occurred_at`, `version`, `payload`, and the originating request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: UUID
    type: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=64)
    occurred_at: AwareDatetime
    version: int = Field(ge=1, le=1000)
    payload: dict[str, Any]
    request_id: str | None = Field(default=None, max_length=64)

    def to_json(self) -> bytes:
        """The wire form."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        """Parse and validate the wire form; raises pydantic.ValidationError when malformed."""
        return cls.model_validate_json(raw)


def envelope_of(
    *,
    event_id: str,
    type: str,  # noqa: A002 (the envelope's field name)
    occurred_at: datetime,
    version: int,
    payload: dict[str, Any],
    request_id: str | None,
) -> Envelope:
    """Build an envelope from an outbox row's columns."""
    return Envelope(
        id=UUID(event_id),
        type=type,
        occurred_at=occurred_at,
        version=version,
        payload=payload,
        request_id=request_id,
    )


def envelope_json(
    *,
    event_id: str,
    type: str,  # noqa: A002 (the envelope's field name)
    occurred_at: datetime,
    version: int,
    payload: dict[str, Any] | str,
    request_id: str | None,
) -> bytes:
    """`envelope_of(...).to_json()` without building the model: the relay's hot path.

    For columns the outbox already holds validated; `payload` may be the JSON text the
    driver returns for a json column.
    """
    return orjson.dumps(
        {
            "id": event_id,
            "type": type,
            "occurred_at": occurred_at,
            "version": version,
            "payload": orjson.loads(payload) if isinstance(payload, str) else payload,
            "request_id": request_id,
        },
        option=orjson.OPT_UTC_Z,
    )
