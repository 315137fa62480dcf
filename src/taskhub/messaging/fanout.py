"""Fan-out: every published event, to whoever listens in this process (the live streams).

Transport only: it knows envelopes, not what they are about.

- **Full stack.** One reader per partition (`streams.all_partitions`) reads the partition's
  stream with plain XREAD, outside the consumer group: every API process sees every entry,
  whichever worker relayed it and whichever applies it, and acknowledges nothing. A reader
  reads only while someone listens: `attach()` fixes its position at the stream's newest id
  (so nothing published after the call is missed), and a reader whose listeners are gone
  drops its position and stops reading, so that an API process nobody watches spends
  nothing on the events. While Redis is down a reader keeps its position and resumes from
  it; a stream that was recreated meanwhile (Redis restarted empty) is read from its start.
- **Embedded.** The dispatcher reports each outbox row when it first picks it up
  (`event_of_row`), in outbox order; `attach()` has nothing to do.

Either way the listener gets `PublishedEvent`s, whose `data` is the envelope JSON exactly as
the stream carries it (`envelope.envelope_json`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from taskhub.messaging.backoff import Backoff
from taskhub.messaging.envelope import envelope_json
from taskhub.messaging.streams import (
    ENVELOPE_FIELD,
    Fields,
    StreamKeys,
    as_str,
    id_key,
    read_entries,
)
from taskhub.models import OutboxEvent

logger = logging.getLogger("taskhub.events.fanout")

START = "0-0"


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """One event as the live streams send it."""

    id: str
    type: str
    payload: dict[str, Any]
    data: bytes  # the envelope JSON
    # Its Server-Sent Events message, made once for every stream that sends it.
    message: bytes = field(init=False)

    def __post_init__(self) -> None:
        message = b"id: %s\nevent: %s\ndata: %s\n\n" % (
            self.id.encode(),
            self.type.encode(),
            self.data,
        )
        object.__setattr__(self, "message", message)


Deliver = Callable[[PublishedEvent], None]


def event_of(
    *,
    event_id: str,
    type: str,  # noqa: A002 (the envelope's field name)
    occurred_at: datetime,
    version: int,
    payload: dict[str, Any] | str,
    request_id: str | None,
) -> PublishedEvent:
    """The event of an outbox row's columns, with the envelope the relay would publish."""
    data = envelope_json(
        event_id=event_id,
        type=type,
        occurred_at=occurred_at,
        version=version,
        payload=payload,
        request_id=request_id,
    )
    body = orjson.loads(payload) if isinstance(payload, str) else payload
    return PublishedEvent(id=event_id, type=type, payload=body, data=data)


def event_of_row(row: OutboxEvent) -> PublishedEvent:
    """The event of an outbox row (the embedded dispatcher's report)."""
    return event_of(
        event_id=row.event_id,
        type=row.type,
        occurred_at=row.occurred_at,
        version=row.version,
        payload=row.payload,
        request_id=row.request_id,
    )


def event_of_entry(fields: Fields | None) -> PublishedEvent | None:
    """The event a stream entry carries; None for one that is not an envelope (the
    consumers dead-letter those; a listener has nothing to show for them)."""
    raw = (fields or {}).get(ENVELOPE_FIELD)
    if raw is None:
        return None
    try:
        envelope = orjson.loads(raw)
        event_id, event_type, payload = envelope["id"], envelope["type"], envelope["payload"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(event_id, str) or not isinstance(event_type, str):
        return None
    if not isinstance(payload, dict):
        return None
    return PublishedEvent(id=event_id, type=event_type, payload=payload, data=bytes(raw))


async def newest_id(redis: Redis, keys: StreamKeys) -> str:
    """The id of the newest entry ever added to the partition's stream ("0-0": none)."""
    try:
        info = await redis.xinfo_stream(keys.stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return START
        raise
    return as_str(info.get("last-generated-id") or START)


class _PartitionReader:
    """XREAD of one partition's stream from a position, while someone listens."""

    def __init__(
        self,
        *,
        redis: Redis,
        keys: StreamKeys,
        deliver: Deliver,
        wanted: Callable[[], bool],
        block_ms: int,
        count: int,
    ) -> None:
        self.keys = keys
        self.position: str | None = None
        self._redis = redis
        self._deliver = deliver
        self._wanted = wanted
        self._block_ms = block_ms
        self._count = count
        # Fixing and dropping the position are serialized, so that a listener that arrives
        # while the reader goes idle always finds a position at or before its arrival.
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    async def attach(self) -> None:
        """Make sure the reader reads from no later than now."""
        async with self._lock:
            if self.position is None:
                self.position = await newest_id(self._redis, self.keys)
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        backoff = Backoff(base=0.05, cap=2.0)
        failed = False
        while not stopping.is_set():
            if not self._wanted() or self.position is None:
                await self._idle(stopping)
                continue
            try:
                if failed:
                    await self._check_recreated()
                reply = await self._redis.xread(
                    {self.keys.stream: self.position}, count=self._count, block=self._block_ms
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: keep the position, try again
                failed = True
                delay = backoff.next()
                logger.warning(
                    "fan-out %s: read failed (%r); retry in %.2fs", self.keys, exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                continue
            failed = False
            backoff.reset()
            for entry_id, fields in read_entries(reply):
                self.position = entry_id
                event = event_of_entry(fields)
                if event is not None:
                    self._deliver(event)

    async def _idle(self, stopping: asyncio.Event) -> None:
        async with self._lock:
            if not self._wanted():
                self.position = None
        if self.position is not None:
            return
        self._wake.clear()
        waits = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stopping.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _check_recreated(self) -> None:
        """After an outage: a stream whose newest id is older than the position was created
        again (Redis restarted empty); its entries are all new, so read it from its start."""
        if self.position is None:
            return
        newest = await newest_id(self._redis, self.keys)
        if id_key(newest) < id_key(self.position):
            logger.warning("fan-out %s: the stream was recreated; reading it again", self.keys)
            self.position = START


class StreamFanout:
    """Every partition's stream, read without a consumer group while someone listens."""

    def __init__(
        self,
        *,
        redis: Redis,
        partitions: list[StreamKeys],
        deliver: Deliver,
        wanted: Callable[[], bool],
        block_ms: int = 1000,
        count: int = 500,
    ) -> None:
        self._readers = [
            _PartitionReader(
                redis=redis,
                keys=keys,
                deliver=deliver,
                wanted=wanted,
                block_ms=block_ms,
                count=count,
            )
            for keys in partitions
        ]
        self._stopping = asyncio.Event()

    async def attach(self) -> None:
        """Every reader reads from no later than now (raises while Redis is unreachable)."""
        await asyncio.gather(*(reader.attach() for reader in self._readers))

    async def run(self) -> None:
        """Read until `stop()`."""
        await asyncio.gather(*(reader.run(self._stopping) for reader in self._readers))

    def stop(self) -> None:
        """Return from `run` once the reads in flight end (at most one block time)."""
        self._stopping.set()
