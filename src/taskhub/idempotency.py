"""`Idempotency-Key` support (IETF httpapi draft) for unsafe POSTs.

The key is scoped per user and per endpoint, and is claimed inside the request's own
transaction, so the stored response commits (or vanishes) together with the effect:
- same key, same body: the first response is replayed;
- same key, different body: 422;
- same key while the first request is in flight: 409 (PostgreSQL: a transaction-scoped
  advisory lock that the first request holds until it commits; SQLite serializes writers,
  so there the second request waits and gets the replay);
- keys expire after 24 hours.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Header
from fastapi.responses import Response
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.db import on_postgresql, utcnow
from taskhub.errors import Conflict, Unprocessable
from taskhub.models import IdempotencyKey

KEY_TTL = timedelta(hours=24)
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Replays the first response for a retried request (kept 24 h)",
    ),
]


@dataclass
class Claim:
    """A claimed key: `replay` is set when an earlier response must be returned instead."""

    record: IdempotencyKey | None
    replay: Response | None = None

    def store(self, *, status: int, body: bytes, location: str | None = None) -> None:
        """Remember the response, in the same transaction as the effect."""
        if self.record is not None:
            self.record.response_status = status
            self.record.response_body = body
            self.record.response_location = location


async def claim(
    session: AsyncSession,
    *,
    user_id: int,
    scope: str,
    key: str | None,
    fingerprint: bytes,
) -> Claim:
    """Claim `key` for this request, or return what a previous use of it calls for."""
    if key is None:
        return Claim(record=None)
    request_hash = hashlib.sha256(fingerprint).hexdigest()
    if on_postgresql(session):
        lock_id = int.from_bytes(
            hashlib.sha256(f"{user_id}\x00{scope}\x00{key}".encode()).digest()[:8],
            "big",
            signed=True,
        )
        got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": lock_id})
        if not got:
            raise Conflict(
                "A request with this Idempotency-Key is still in progress; retry shortly",
                headers={"Retry-After": "1"},
            )
    existing = await session.get(IdempotencyKey, (user_id, scope, key))
    now = utcnow()
    if existing is not None and existing.expires_at <= now:
        await session.delete(existing)
        await session.flush()
        existing = None
    if existing is not None:
        if existing.request_hash != request_hash:
            raise Unprocessable(
                "This Idempotency-Key was used with a different request body",
                errors=[{"loc": ["header", "Idempotency-Key"], "msg": "reused with another body"}],
            )
        if existing.response_status is None:
            raise Conflict(
                "A request with this Idempotency-Key is still in progress; retry shortly",
                headers={"Retry-After": "1"},
            )
        headers = {"Idempotent-Replayed": "true"}
        if existing.response_location:
            headers["Location"] = existing.response_location
        return Claim(
            record=None,
            replay=Response(
                existing.response_body or b"",
                status_code=existing.response_status,
                media_type="application/json",
                headers=headers,
            ),
        )
    record = IdempotencyKey(
        user_id=user_id, scope=scope, key=key, request_hash=request_hash, expires_at=now + KEY_TTL
    )
    session.add(record)
    await session.flush()
    return Claim(record=record)


async def purge_expired(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Delete expired keys; a periodic job."""
    async with sessionmaker() as session, session.begin():
        count = await session.scalar(
            select(func.count()).where(IdempotencyKey.expires_at <= utcnow())
        )
        if count:
            await session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow())
            )
    return int(count or 0)
