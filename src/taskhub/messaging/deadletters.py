"""Dead letters: write, list, replay and drop, for both shapes.

Full stack: the dead-letter stream holds each dead entry's original fields plus `dlq.*`
fields (error, deterministic failures, source id, consumer, time); it is never trimmed.
Replay re-adds the original fields to the main stream (a fresh entry, with no failures
counted), then deletes the dead entry, in one MULTI (both keys share a hash slot).
Embedded: dead letters are outbox rows with `dead_at` set; replay makes them unpublished.

Each partition has its own dead-letter stream; the tools name a dead letter
`<partition>/<entry id>` (`p3/1733000000000-0`) and look at every partition that has one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.db import utcnow
from taskhub.messaging.streams import (
    ENVELOPE_FIELD,
    MAX_PARTITIONS,
    Fields,
    StreamKeys,
    entries_of,
    id_key,
    lengths_of,
)
from taskhub.models import OutboxEvent
from taskhub.observability import DEAD_LETTERED
from taskhub.redis_client import RedisClient

logger = logging.getLogger("taskhub.events.deadletters")

# Fields added to a dead-lettered entry next to its original fields.
DLQ_ERROR = b"dlq.error"
DLQ_DELIVERIES = b"dlq.deliveries"  # the deterministic failures that led to it
DLQ_SOURCE_ID = b"dlq.source_id"
DLQ_CONSUMER = b"dlq.consumer"
DLQ_DEAD_AT = b"dlq.dead_at"
DLQ_FIELDS = (DLQ_ERROR, DLQ_DELIVERIES, DLQ_SOURCE_ID, DLQ_CONSUMER, DLQ_DEAD_AT)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead event, whichever shape it comes from."""

    id: str
    event: str
    error: str
    deliveries: int
    dead_at: str


async def dead_letter(
    redis: RedisClient,
    keys: StreamKeys,
    entry_id: str,
    fields: Fields,
    *,
    error: str,
    failures: int,
    consumer: str,
) -> None:
    """Copy a stream entry to the dead-letter stream with the error, acknowledge it and
    forget its failure count, in one MULTI (the keys share a hash slot)."""
    dead: dict[Any, Any] = {k: v for k, v in fields.items() if k not in DLQ_FIELDS}
    dead.update(
        {
            DLQ_ERROR: error[:2000],
            DLQ_DELIVERIES: str(failures),
            DLQ_SOURCE_ID: entry_id,
            DLQ_CONSUMER: consumer,
            DLQ_DEAD_AT: utcnow().isoformat(),
        }
    )
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(keys.dead, dead)  # uncapped: it stays until replayed or dropped
        pipe.xack(keys.stream, keys.group, entry_id)
        pipe.hdel(keys.failures, entry_id)
        await pipe.execute()
    DEAD_LETTERED.inc()
    logger.warning("dead-lettered entry %s: %s", entry_id, error[:200])


def _text(fields: Fields, key: bytes, default: str = "") -> str:
    value = fields.get(key)
    return value.decode(errors="replace") if value is not None else default


async def list_stream_dead(redis: RedisClient, keys: StreamKeys, *, limit: int) -> list[DeadLetter]:
    """The oldest `limit` entries of the dead-letter stream."""
    entries = entries_of(await redis.xrange(keys.dead, "-", "+", count=limit))
    return [
        DeadLetter(
            id=entry_id,
            event=_text(fields, ENVELOPE_FIELD, "<no envelope>")[:300],
            error=_text(fields, DLQ_ERROR),
            deliveries=int(_text(fields, DLQ_DELIVERIES, "0") or 0),
            dead_at=_text(fields, DLQ_DEAD_AT),
        )
        for entry_id, fields in entries
        if fields is not None
    ]


async def partitions_with_dead(redis: RedisClient, prefix: str) -> list[StreamKeys]:
    """The partitions (of all there may be) whose dead-letter stream holds entries."""
    every = [StreamKeys(prefix, f"p{index}") for index in range(MAX_PARTITIONS)]
    lengths = await lengths_of(redis, [keys.dead for keys in every])
    return [keys for keys, length in zip(every, lengths, strict=True) if int(length)]


async def list_all_dead(redis: RedisClient, prefix: str, *, limit: int) -> list[DeadLetter]:
    """The oldest `limit` dead letters over every partition, named `<partition>/<id>`."""
    letters = []
    for keys in await partitions_with_dead(redis, prefix):
        for letter in await list_stream_dead(redis, keys, limit=limit):
            letters.append(replace(letter, id=f"{keys.partition}/{letter.id}"))
    letters.sort(key=lambda letter: id_key(letter.id.partition("/")[2]))
    return letters[:limit]


async def replay_all_dead(redis: RedisClient, prefix: str, *, dead_id: str | None) -> int:
    """Replay one dead letter (`<partition>/<id>`, or a bare id looked up in every
    partition), or every one when `dead_id` is None, each into its own partition."""
    return await _each_dead(redis, prefix, dead_id, replay_stream_dead)


async def drop_all_dead(redis: RedisClient, prefix: str, *, dead_id: str | None) -> int:
    """Drop one dead letter (named as for `replay_all_dead`), or every one."""
    return await _each_dead(redis, prefix, dead_id, drop_stream_dead)


async def _each_dead(redis: RedisClient, prefix: str, dead_id: str | None, action: Any) -> int:
    partition, _, entry_id = (dead_id or "").rpartition("/")
    if partition:
        return int(await action(redis, StreamKeys(prefix, partition), entry_id=entry_id))
    done = 0
    for keys in await partitions_with_dead(redis, prefix):
        done += await action(redis, keys, entry_id=entry_id or None)
        if dead_id is not None and done:
            break
    return done


async def count_stream_dead(redis: RedisClient, keys: StreamKeys) -> int:
    """How many entries the dead-letter stream holds."""
    return int(await redis.xlen(keys.dead))


async def replay_stream_dead(redis: RedisClient, keys: StreamKeys, *, entry_id: str | None) -> int:
    """Move one dead entry (or all, when `entry_id` is None) back to the main stream."""
    moved = 0
    while True:
        if entry_id is not None:
            entries = entries_of(await redis.xrange(keys.dead, entry_id, entry_id, count=1))
        else:
            entries = entries_of(await redis.xrange(keys.dead, "-", "+", count=100))
        if not entries:
            return moved
        async with redis.pipeline(transaction=True) as pipe:
            for dead_id, fields in entries:
                original: dict[Any, Any] = {
                    k: v for k, v in (fields or {}).items() if k not in DLQ_FIELDS
                }
                if original:
                    pipe.xadd(keys.stream, original)  # trimmed only once acknowledged
                pipe.xdel(keys.dead, dead_id)
            await pipe.execute()
        moved += len(entries)
        if entry_id is not None:
            return moved


async def drop_stream_dead(redis: RedisClient, keys: StreamKeys, *, entry_id: str | None) -> int:
    """Delete one dead entry, or every one."""
    if entry_id is not None:
        return int(await redis.xdel(keys.dead, entry_id))
    count = await count_stream_dead(redis, keys)
    await redis.delete(keys.dead)
    return count


async def list_outbox_dead(
    sessionmaker: async_sessionmaker[AsyncSession], *, limit: int
) -> list[DeadLetter]:
    """The oldest `limit` dead outbox rows (embedded shape)."""
    async with sessionmaker() as session:
        rows = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.dead_at.is_not(None))
                .order_by(OutboxEvent.id)
                .limit(limit)
            )
        ).all()
    return [
        DeadLetter(
            id=str(row.id),
            event=f"{row.type} {row.event_id} {row.payload}"[:300],
            error=row.last_error or "",
            deliveries=row.attempts,
            dead_at=_iso(row.dead_at),
        )
        for row in rows
    ]


async def count_outbox_dead(session: AsyncSession) -> int:
    """How many outbox rows were given up on."""
    stmt = select(func.count()).where(OutboxEvent.dead_at.is_not(None))
    return int(await session.scalar(stmt) or 0)


async def replay_outbox_dead(
    sessionmaker: async_sessionmaker[AsyncSession], *, row_id: int | None
) -> int:
    """Make dead outbox rows unpublished again, so that the dispatcher retries them."""
    stmt = update(OutboxEvent).where(OutboxEvent.dead_at.is_not(None))
    if row_id is not None:
        stmt = stmt.where(OutboxEvent.id == row_id)
    stmt = stmt.values(dead_at=None, published_at=None, attempts=0, last_error=None)
    async with sessionmaker() as session, session.begin():
        result = await session.execute(stmt.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


async def drop_outbox_dead(
    sessionmaker: async_sessionmaker[AsyncSession], *, row_id: int | None
) -> int:
    """Delete dead outbox rows."""
    stmt = delete(OutboxEvent).where(OutboxEvent.dead_at.is_not(None))
    if row_id is not None:
        stmt = stmt.where(OutboxEvent.id == row_id)
    async with sessionmaker() as session, session.begin():
        result = await session.execute(stmt.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""
