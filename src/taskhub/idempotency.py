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
from sqlalchemy import BigInteger, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver import DriverStatement, Executor
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

_keys = table_of(IdempotencyKey)
_this_key = and_(
    _keys.c.user_id == bindparam("key_user"),
    _keys.c.scope == bindparam("key_scope"),
    _keys.c.key == bindparam("key_name"),
)
TRY_LOCK = DriverStatement(
    select(func.pg_try_advisory_xact_lock(bindparam("lock_id", type_=BigInteger())).label("got"))
)
FIND = DriverStatement(
    select(
        _keys.c.request_hash,
        _keys.c.response_status,
        _keys.c.response_body,
        _keys.c.response_location,
        _keys.c.expires_at,
    ).where(_this_key)
)
FORGET = DriverStatement(delete(_keys).where(_this_key))
RECORD = DriverStatement(
    insert(_keys).values(
        user_id=bindparam("key_user"),
        scope=bindparam("key_scope"),
        key=bindparam("key_name"),
        request_hash=bindparam("request_hash"),
        expires_at=bindparam("expires_at", type_=UTCDateTime()),
    )
)
STORE = DriverStatement(
    update(_keys)
    .where(_this_key)
    .values(
        response_status=bindparam("status"),
        response_body=bindparam("body"),
        response_location=bindparam("location"),
    )
)
_IN_FLIGHT = "A request with this Idempotency-Key is still in progress; retry shortly"


@dataclass
class Claim:
    """A claimed key: `replay` is set when an earlier response must be returned instead."""

    key: dict[str, object] | None
    replay: Response | None = None

    async def store(
        self, db: Executor, *, status: int, body: bytes, location: str | None = None
    ) -> None:
        """Remember the response, in the same transaction as the effect."""
        if self.key is not None:
            await db.run(STORE, **self.key, status=status, body=body, location=location)


async def claim(
    db: Executor, *, user_id: int, scope: str, key: str | None, fingerprint: bytes
) -> Claim:
    """Claim `key` for this request, or return what a previous use of it calls for."""
    if key is None:
        return Claim(key=None)
    this = {"key_user": user_id, "key_scope": scope, "key_name": key}
    request_hash = hashlib.sha256(fingerprint).hexdigest()
    if db.dialect == "postgresql":
        lock_id = int.from_bytes(
            hashlib.sha256(f"{user_id}\x00{scope}\x00{key}".encode()).digest()[:8],
            "big",
            signed=True,
        )
        if not (await db.run(TRY_LOCK, lock_id=lock_id))[0]["got"]:
            raise Conflict(_IN_FLIGHT, headers={"Retry-After": "1"})
    found = await db.run(FIND, **this)
    now = utcnow()
    if found and found[0]["expires_at"] <= now:
        await db.run(FORGET, **this)
        found = []
    if found:
        existing = found[0]
        if existing["request_hash"] != request_hash:
            raise Unprocessable(
                "This Idempotency-Key was used with a different request body",
                errors=[{"loc": ["header", "Idempotency-Key"], "msg": "reused with another body"}],
            )
        if existing["response_status"] is None:
            raise Conflict(_IN_FLIGHT, headers={"Retry-After": "1"})
        headers = {"Idempotent-Replayed": "true"}
        if existing["response_location"]:
            headers["Location"] = existing["response_location"]
        return Claim(
            key=None,
            replay=Response(
                bytes(existing["response_body"] or b""),
                status_code=existing["response_status"],
                media_type="application/json",
                headers=headers,
            ),
        )
    await db.run(RECORD, **this, request_hash=request_hash, expires_at=now + KEY_TTL)
    return Claim(key=this)


async def purge_expired(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Delete expired keys; a periodic job."""
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(IdempotencyKey)
            .where(IdempotencyKey.expires_at <= utcnow())
            .returning(IdempotencyKey.key)
        )
        return len(result.all())
