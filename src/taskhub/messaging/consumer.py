"""The Redis Streams consumer-group worker: at-least-once delivery to `apply_event`.

- An entry is acknowledged (XACK) only after `apply_event` returned, i.e. after the handler's
  transaction committed; a redelivery is a no-op thanks to the processed-event records.
- On start (and after Redis came back) the consumer first re-reads its own pending entries.
- Entries another consumer left pending longer than `claim_idle_ms` (the worst-case handler
  time) are taken over with XAUTOCLAIM.
- A malformed entry goes to the dead-letter stream at once; an entry that failed
  `max_deliveries` deliveries (the count kept by Redis, read with XPENDING) goes there too.
  Dead-lettering is XADD to the dead stream + XACK in one MULTI (one hash slot).
- Any other failure is transient: the entry stays pending and is redelivered (XCLAIM to
  ourselves, which counts a delivery) after an exponential backoff.
- At most `concurrency` entries are handled at once; `stop()` stops reading, and `run`
  returns once the entries in flight are settled.
- With `batches` (PostgreSQL), new entries of one read whose event type has a batch handler
  are applied together in one transaction (`apply_batch`) and acknowledged with one XACK; one
  batch at a time, so what arrives meanwhile makes the next one larger. A failed batch
  applied nothing: its entries are then settled one by one, the batch counting as their
  first delivery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.db import utcnow
from taskhub.messaging.backoff import Backoff, retry_delay
from taskhub.messaging.dispatch import MalformedEvent, Registry, apply_batch, apply_event
from taskhub.messaging.envelope import Envelope
from taskhub.messaging.streams import (
    ENVELOPE_FIELD,
    Entry,
    Fields,
    StreamKeys,
    as_str,
    ensure_group,
    entries_of,
    read_entries,
)
from taskhub.observability import DEAD_LETTERED, request_id_var

logger = logging.getLogger("taskhub.events.consumer")

# Fields added to a dead-lettered entry next to its original fields.
DLQ_ERROR = b"dlq.error"
DLQ_DELIVERIES = b"dlq.deliveries"
DLQ_SOURCE_ID = b"dlq.source_id"
DLQ_CONSUMER = b"dlq.consumer"
DLQ_DEAD_AT = b"dlq.dead_at"
DLQ_FIELDS = (DLQ_ERROR, DLQ_DELIVERIES, DLQ_SOURCE_ID, DLQ_CONSUMER, DLQ_DEAD_AT)
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class StreamConsumer:
    """One consumer of the group; see the module docstring."""

    def __init__(
        self,
        *,
        redis: Redis,
        keys: StreamKeys,
        sessionmaker: async_sessionmaker[AsyncSession],
        registry: Registry,
        name: str,
        concurrency: int,
        claim_idle_ms: int,
        max_deliveries: int,
        maxlen: int,
        block_ms: int = 1000,
        retry_base_seconds: float = 0.1,
        batches: bool = False,
        batch_size: int = 100,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._sessionmaker = sessionmaker
        self._registry = registry
        self.name = name
        self._concurrency = concurrency
        self._claim_idle_ms = claim_idle_ms
        self._max_deliveries = max_deliveries
        self._maxlen = maxlen
        self._block_ms = block_ms
        self._retry_base = retry_base_seconds
        # A retry must come before another consumer may claim the entry as abandoned.
        self._retry_cap = min(5.0, claim_idle_ms / 2000)
        self._claim_every = min(5.0, max(0.1, claim_idle_ms / 4000))
        self._next_claim = 0.0
        self._claim_cursor = "0-0"
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._batches = batches
        self._batch_size = batch_size
        self._batch: asyncio.Task[None] | None = None
        self._slot_free = asyncio.Event()
        self._stop = asyncio.Event()
        self._rescan = True

    def stop(self) -> None:
        """Stop reading; `run` returns after the entries in flight are settled."""
        self._stop.set()

    @property
    def in_flight(self) -> int:
        """Entries being handled right now."""
        return len(self._in_flight)

    async def run(self) -> None:
        """Consume until `stop()`; reconnects with backoff while Redis is down."""
        backoff = Backoff(base=0.1, cap=2.0)
        while not self._stop.is_set():
            try:
                if self._rescan:
                    await ensure_group(self._redis, self._keys)
                    self._rescan = False
                    await self._read_own_pending()
                await self._claim_abandoned_if_due()
                await self._read_new()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._rescan = True
                delay = backoff.next()
                if isinstance(exc, _REDIS_DOWN):
                    logger.warning("consumer: Redis unavailable (%r); retry in %.2fs", exc, delay)
                else:
                    logger.exception("consumer: read failed; retry in %.2fs", delay)
                await self._sleep(delay)
        await self._drain()

    async def _drain(self) -> None:
        """Wait for the handlers in flight to finish and acknowledge."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        await self._forget_self_if_idle()

    async def _forget_self_if_idle(self) -> None:
        """Remove this consumer's name from the group when it holds no pending entries."""
        try:
            summary = await self._redis.xpending_range(
                self._keys.stream, self._keys.group, "-", "+", 1, consumername=self.name
            )
            if not summary:
                await self._redis.xgroup_delconsumer(self._keys.stream, self._keys.group, self.name)
        except RedisError:
            pass  # best effort: an empty consumer is harmless

    # Reading -----------------------------------------------------------------------------

    async def _free_slots(self) -> int:
        while len(self._in_flight) >= self._concurrency:
            self._slot_free.clear()
            await self._slot_free.wait()
        return self._concurrency - len(self._in_flight)

    async def _read_new(self) -> None:
        if self._batch is not None and not self._batch.done():
            # One batch at a time: what arrives meanwhile makes the next one larger.
            await asyncio.wait({self._batch})
        count = await self._free_slots()
        if self._stop.is_set():
            return
        if self._batches:
            # A backlog is reserved in few transactions: read up to a batch's worth; the
            # entries without a batch handler still wait for a free slot each.
            count = max(count, self._batch_size)
        block = self._block_ms
        if self._next_claim:
            block = max(1, min(block, int((self._next_claim - time.monotonic()) * 1000)))
        reply = await self._redis.xreadgroup(
            self._keys.group, self.name, {self._keys.stream: ">"}, count=count, block=block
        )
        entries = read_entries(reply)
        batch = self._batchable(entries) if self._batches and len(entries) > 1 else []
        if len(batch) > 1:
            self._spawn_batch(batch)
        batched = {entry_id for entry_id, _, _ in batch} if len(batch) > 1 else set()
        for entry_id, fields in entries:
            if entry_id not in batched:
                await self._free_slots()
                self._spawn(entry_id, fields, deliveries=1)

    async def _read_own_pending(self) -> None:
        """Re-read the entries this consumer was given but never acknowledged."""
        cursor = "0"
        while not self._stop.is_set():
            count = await self._free_slots()
            reply = await self._redis.xreadgroup(
                self._keys.group, self.name, {self._keys.stream: cursor}, count=count
            )
            entries = read_entries(reply)
            if not entries:
                return
            cursor = entries[-1][0]
            await self._spawn_counted(entries)

    async def _claim_abandoned_if_due(self) -> None:
        """XAUTOCLAIM entries idle longer than the worst-case handler time."""
        now = time.monotonic()
        if now < self._next_claim:
            return
        self._next_claim = now + self._claim_every
        while not self._stop.is_set():
            count = await self._free_slots()
            reply: Any = await self._redis.xautoclaim(
                self._keys.stream,
                self._keys.group,
                self.name,
                min_idle_time=self._claim_idle_ms,
                start_id=self._claim_cursor,
                count=count,
            )
            self._claim_cursor = as_str(reply[0])
            entries = entries_of(reply[1])
            if entries:
                logger.info("consumer: claimed %d abandoned entries", len(entries))
                await self._spawn_counted(entries)
            if self._claim_cursor in ("0-0", "0"):
                return

    async def _spawn_counted(self, entries: Sequence[Entry]) -> None:
        """Spawn redelivered entries with their delivery counts from XPENDING."""
        counts = await self._delivery_counts([entry_id for entry_id, _ in entries])
        for entry_id, fields in entries:
            if entry_id not in self._in_flight:
                self._spawn(entry_id, fields, deliveries=counts.get(entry_id, 1))

    async def _delivery_counts(self, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        rows: Any = await self._redis.xpending_range(
            self._keys.stream,
            self._keys.group,
            min=min(ids, key=_id_key),
            max=max(ids, key=_id_key),
            count=len(ids) + 100,
            consumername=self.name,
        )
        return {as_str(row["message_id"]): int(row["times_delivered"]) for row in rows}

    def _spawn(self, entry_id: str, fields: Fields | None, *, deliveries: int) -> None:
        task = asyncio.create_task(self._handle(entry_id, fields, deliveries))
        self._in_flight[entry_id] = task
        task.add_done_callback(lambda _t: self._done(entry_id))

    def _spawn_batch(self, entries: Sequence[tuple[str, Fields, Envelope]]) -> None:
        ids = [entry_id for entry_id, _, _ in entries]
        task = asyncio.create_task(self._guarded(self._settle_batch(entries), ids[0]))
        self._batch = task
        for entry_id in ids:
            self._in_flight[entry_id] = task
        task.add_done_callback(lambda _t: self._done(*ids))

    def _done(self, *entry_ids: str) -> None:
        for entry_id in entry_ids:
            self._in_flight.pop(entry_id, None)
        self._slot_free.set()

    # Handling ----------------------------------------------------------------------------

    async def _handle(self, entry_id: str, fields: Fields | None, deliveries: int) -> None:
        await self._guarded(self._settle(entry_id, fields, deliveries), entry_id)

    async def _guarded(self, settling: Coroutine[Any, Any, None], entry_id: str) -> None:
        try:
            await settling
        except _REDIS_DOWN as exc:
            # The entry stays pending; it is re-read when Redis answers again.
            self._rescan = True
            logger.warning("consumer: Redis unavailable settling %s (%r)", entry_id, exc)
        except RedisError:
            self._rescan = True
            logger.exception("consumer: Redis error settling %s", entry_id)

    def _batchable(self, entries: Sequence[Entry]) -> list[tuple[str, Fields, Envelope]]:
        """The entries whose event type has a batch handler, with their envelopes."""
        out = []
        for entry_id, fields in entries:
            if not fields or ENVELOPE_FIELD not in fields:
                continue
            try:
                envelope = Envelope.from_json(fields[ENVELOPE_FIELD])
            except (ValueError, ValidationError):
                continue  # settled on its own (dead-lettered)
            if self._registry.batchable(envelope.type):
                out.append((entry_id, fields, envelope))
        return out

    async def _settle_batch(self, entries: Sequence[tuple[str, Fields, Envelope]]) -> None:
        """Apply first deliveries of batchable types together, then XACK them at once.

        If a batch fails, nothing of it was applied: each entry goes on to the usual retries
        and dead-lettering on its own (the batch was its first delivery).
        """
        by_type: dict[str, list[tuple[str, Fields, Envelope]]] = {}
        for entry in entries:
            by_type.setdefault(entry[2].type, []).append(entry)
        for group in by_type.values():
            try:
                await apply_batch(
                    self._sessionmaker, self._registry, [envelope for _, _, envelope in group]
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("batch of %d failed (%r); settling one by one", len(group), exc)
                await asyncio.gather(
                    *(
                        self._settle(entry_id, fields, 1, failed=exc)
                        for entry_id, fields, _ in group
                    )
                )
                continue
            await self._redis.xack(
                self._keys.stream, self._keys.group, *(entry_id for entry_id, _, _ in group)
            )

    async def _envelope(
        self, entry_id: str, fields: Fields | None, deliveries: int
    ) -> Envelope | None:
        """The entry's envelope; None when the entry was settled here (ack, dead letter)."""
        if not fields:
            # Trimmed or deleted from the stream while pending: nothing left to deliver.
            await self._ack(entry_id)
            return None
        if deliveries > self._max_deliveries:
            await self._dead_letter(
                entry_id, fields, f"gave up after {deliveries - 1} deliveries", deliveries - 1
            )
            return None
        try:
            return Envelope.from_json(fields[ENVELOPE_FIELD])
        except (KeyError, ValueError, ValidationError) as exc:
            await self._dead_letter(entry_id, fields, f"malformed envelope: {exc!r}", deliveries)
            return None

    async def _settle(
        self,
        entry_id: str,
        fields: Fields | None,
        deliveries: int,
        *,
        failed: Exception | None = None,
    ) -> None:
        """Apply one entry, retrying with backoff, then acknowledge or dead-letter it.

        `failed` is the error of an attempt already made on this delivery (in a batch).
        """
        envelope = await self._envelope(entry_id, fields, deliveries)
        if envelope is None or not fields:
            return
        log_extra = {
            "event_id": str(envelope.id),
            "event_type": envelope.type,
            "request_id": envelope.request_id or "-",
        }
        token = request_id_var.set(envelope.request_id)
        try:
            while True:
                if failed is None:
                    try:
                        await apply_event(self._sessionmaker, self._registry, envelope)
                    except MalformedEvent as exc:
                        await self._dead_letter(entry_id, fields, str(exc), deliveries)
                        return
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        failed = exc
                    else:
                        await self._ack(entry_id)
                        return
                if deliveries >= self._max_deliveries:
                    await self._dead_letter(entry_id, fields, repr(failed), deliveries)
                    return
                logger.warning(
                    "handler failed (delivery %d of %d): %r",
                    deliveries,
                    self._max_deliveries,
                    failed,
                    extra=log_extra,
                )
                redelivered = await self._redeliver_later(entry_id, deliveries)
                if redelivered is None:
                    return
                deliveries, failed = redelivered, None
        finally:
            request_id_var.reset(token)

    async def _redeliver_later(self, entry_id: str, deliveries: int) -> int | None:
        """Back off, then claim the entry again (a counted delivery); None to let it be."""
        delay = retry_delay(deliveries, base=self._retry_base, cap=self._retry_cap)
        if await self._sleep(delay):
            return None  # stopping: the entry stays pending for the next consumer
        claimed = await self._redis.xclaim(
            self._keys.stream,
            self._keys.group,
            self.name,
            min_idle_time=int(delay * 900),
            message_ids=[entry_id],  # not JUSTID: that would not count the delivery
        )
        if not claimed:
            return None  # acknowledged or claimed by someone else meanwhile
        counts = await self._delivery_counts([entry_id])
        return counts.get(entry_id, deliveries + 1)

    async def _ack(self, entry_id: str) -> None:
        await self._redis.xack(self._keys.stream, self._keys.group, entry_id)

    async def _dead_letter(
        self, entry_id: str, fields: Fields, error: str, deliveries: int
    ) -> None:
        """Copy the entry to the dead-letter stream with the error, then acknowledge it."""
        dead: dict[Any, Any] = {k: v for k, v in fields.items() if k not in DLQ_FIELDS}
        dead.update(
            {
                DLQ_ERROR: error[:2000],
                DLQ_DELIVERIES: str(deliveries),
                DLQ_SOURCE_ID: entry_id,
                DLQ_CONSUMER: self.name,
                DLQ_DEAD_AT: utcnow().isoformat(),
            }
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._keys.dead, dead, maxlen=self._maxlen, approximate=True)
            pipe.xack(self._keys.stream, self._keys.group, entry_id)
            await pipe.execute()
        DEAD_LETTERED.inc()
        logger.warning("dead-lettered entry %s: %s", entry_id, error[:200])

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early on stop; True when stopping."""
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            pass
        return self._stop.is_set()


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
