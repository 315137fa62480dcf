"""The Redis Streams consumer-group worker: at-least-once delivery to `apply_event`.

- An entry is acknowledged (XACK) only after `apply_event` returned, i.e. after the handler's
  transaction committed; a redelivery is a no-op thanks to the processed-event records.
- Before reading, the partition is bound to this database and its group exists
  (`binding.StreamBinder`); on start, and after Redis came back, the consumer first re-reads
  its own pending entries.
- Entries another consumer left pending longer than `claim_idle_ms` are taken over with
  XAUTOCLAIM. A live consumer never lets that happen to its own entries: every third of
  `claim_idle_ms` it resets the idle time of each entry it is handling or holding for a
  retry with `XCLAIM … JUSTID` (which counts no delivery).
- A failed attempt is classified (`faults`). A transient failure (the database unavailable,
  a deadlock or a concurrent change) never counts: the entry is held for another attempt
  after a capped exponential backoff with jitter (up to `retry_cap_seconds`), without
  taking a concurrency slot, so other entries go on. While the database is unavailable the
  gate holds back new reads and retries alike; a probe reopens it.
- A deterministic failure counts, in the partition's failures hash (so the count survives
  a worker's death). After `max_deliveries` of them, or at once for a malformed entry, the
  entry is dead-lettered: XADD to the dead stream, XACK and HDEL in one MULTI (one slot).
- At most `concurrency` entries (or batches) are handled at once, counted in `Slots` that
  the consumers of one worker share, one consumer per partition; `stop()` stops reading,
  and `run` returns once the entries in flight are settled (held entries stay pending for
  whoever comes next).
- Each attempt runs in a CONSUMER span (`process <type>`) continuing the trace the entry
  carries (taskhub.tracing), when the process records spans.
- With `batches` (PostgreSQL), new entries of one read whose event type has a batch handler
  are applied together in one transaction (`apply_batch`) and acknowledged with one XACK;
  one batch at a time, so what arrives meanwhile makes the next one larger. A failed batch
  applied nothing and counts for none of its entries: after a transient failure they are
  all held for a retry; after any other, each is applied on its own at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span, SpanKind
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import StreamIdT
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub import tracing
from taskhub.errors import is_transient
from taskhub.messaging.backoff import Backoff, retry_delay
from taskhub.messaging.binding import DeploymentMismatch, StreamBinder
from taskhub.messaging.deadletters import dead_letter
from taskhub.messaging.dispatch import MalformedEvent, Registry, apply_batch, apply_event
from taskhub.messaging.envelope import Envelope
from taskhub.messaging.faults import DatabaseGate, Fault
from taskhub.messaging.streams import (
    ENVELOPE_FIELD,
    Entry,
    Fields,
    StreamKeys,
    acknowledge,
    as_str,
    entries_of,
    read_entries,
)
from taskhub.observability import EVENT_RETRIES, EVENTS_WAITING, request_id_var
from taskhub.redis_client import RedisClient

logger = logging.getLogger("taskhub.events.consumer")

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
_KEEP_CHUNK = 500


class Slots:
    """How many entries (or batches) may be handled at once, shared by the consumers of one
    process so that partitions do not multiply its database connections."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._freed = asyncio.Event()

    async def free(self) -> int:
        """Wait for a free slot; how many are free."""
        while self.used >= self.size:
            self._freed.clear()
            await self._freed.wait()
        return self.size - self.used

    def take(self) -> None:
        """Occupy one slot."""
        self.used += 1

    def give(self) -> None:
        """Free one slot."""
        self.used -= 1
        self._freed.set()


@dataclass(slots=True)
class _Held:
    """An entry held by this consumer until its next attempt."""

    fields: Fields
    failures: int  # deterministic failures so far (the failures hash)
    attempts: int  # failed attempts of any kind: drives the backoff
    due: float  # time.monotonic() of the next attempt


class StreamConsumer:
    """One consumer of the group; see the module docstring."""

    def __init__(
        self,
        *,
        redis: RedisClient,
        keys: StreamKeys,
        sessionmaker: async_sessionmaker[AsyncSession],
        registry: Registry,
        name: str,
        concurrency: int,
        claim_idle_ms: int,
        max_deliveries: int,
        block_ms: int = 1000,
        retry_base_seconds: float = 0.1,
        retry_cap_seconds: float = 300.0,
        batches: bool = False,
        batch_size: int = 100,
        binder: StreamBinder | None = None,
        gate: DatabaseGate | None = None,
        slots: Slots | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._sessionmaker = sessionmaker
        self._registry = registry
        self.name = name
        self._slots = slots or Slots(concurrency)
        self._claim_idle_ms = claim_idle_ms
        self._max_deliveries = max_deliveries
        self._block_ms = block_ms
        self._retry_base = retry_base_seconds
        self._retry_cap = retry_cap_seconds
        self._binder = binder or StreamBinder(redis=redis, keys=keys, sessionmaker=sessionmaker)
        self._gate = gate or DatabaseGate(sessionmaker.kw["bind"])
        self._claim_every = min(5.0, max(0.1, claim_idle_ms / 4000))
        self._keep_every = max(0.05, claim_idle_ms / 3000)
        self._next_claim = 0.0
        self._claim_cursor = "0-0"
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, _Held] = {}
        self._batches = batches
        self._batch_size = batch_size
        self._batch: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._rescan = True

    def stop(self) -> None:
        """Stop reading; `run` returns after the entries in flight are settled."""
        self._stop.set()

    @property
    def in_flight(self) -> int:
        """Entries being handled right now."""
        return len(self._in_flight)

    @property
    def held(self) -> int:
        """Entries held for a later attempt."""
        return len(self._held)

    async def run(self) -> None:
        """Consume until `stop()`; reconnects with backoff while Redis is down.

        Raises DeploymentMismatch: the stream belongs to another database.
        """
        backoff = Backoff(base=0.1, cap=2.0)
        keeper = asyncio.create_task(self._keep_alive(), name="consumer-keep-alive")
        try:
            while not self._stop.is_set():
                try:
                    if self._rescan:
                        await self._binder.bind()
                        self._rescan = False
                        await self._keep_mine()
                        await self._read_own_pending()
                    await self._claim_abandoned_if_due()
                    await self._retry_due()
                    if self._gate.is_open:
                        await self._read_new()
                    else:
                        await self._wait_for_gate(self._seconds_to_next_timer())
                    backoff.reset()
                except (asyncio.CancelledError, DeploymentMismatch):
                    raise
                except Exception as exc:
                    self._rescan = True
                    delay = backoff.next()
                    if isinstance(exc, _REDIS_DOWN) or is_transient(exc):
                        logger.warning(
                            "consumer: Redis or the database unavailable (%r); retry in %.2fs",
                            exc,
                            delay,
                        )
                    else:
                        logger.exception("consumer: read failed; retry in %.2fs", delay)
                    await self._sleep(delay)
            await self._drain()
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

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
        return await self._slots.free()

    def _seconds_to_next_timer(self) -> float:
        """Until the next claim, or the next held entry due, whichever is first."""
        now = time.monotonic()
        wake = self._next_claim or now + self._block_ms / 1000
        if self._held and self._gate.is_open:
            wake = min(wake, min(held.due for held in self._held.values()))
        return max(0.001, min(self._block_ms / 1000, wake - now))

    async def _read_new(self) -> None:
        if self._batch is not None and not self._batch.done():
            # One batch at a time: what arrives meanwhile makes the next one larger.
            await asyncio.wait({self._batch})
        count = await self._free_slots()
        if self._stop.is_set() or not self._gate.is_open:
            return
        if self._batches:
            # A backlog is reserved in few transactions: read up to a batch's worth; the
            # entries without a batch handler still wait for a free slot each.
            count = max(count, self._batch_size)
        block = max(1, int(self._seconds_to_next_timer() * 1000))
        reply = await self._redis.xreadgroup(
            self._keys.group, self.name, {self._keys.stream: ">"}, count=count, block=block
        )
        entries = read_entries(reply)
        # Every first delivery of a batchable type goes through the batch path, a batch of
        # one included: one batch at a time means one reservation transaction at a time per
        # consumer, so this worker's own transactions never queue on the same hot rows.
        batch = self._batchable(entries) if self._batches else []
        if batch:
            self._spawn_batch(batch)
        batched = {entry_id for entry_id, _, _ in batch}
        for entry_id, fields in entries:
            if entry_id not in batched:
                await self._free_slots()
                self._spawn(entry_id, fields, failures=0)

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
            await self._admit(entries)

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
                await self._admit(entries)
            if self._claim_cursor in ("0-0", "0"):
                return

    async def _admit(self, entries: Sequence[Entry]) -> None:
        """Take on redelivered entries, with their failure counts; while the database is
        unavailable they are held until it answers."""
        fresh = [(i, f) for i, f in entries if i not in self._in_flight and i not in self._held]
        counts = await self._failure_counts([entry_id for entry_id, _ in fresh])
        for entry_id, fields in fresh:
            failures = counts.get(entry_id, 0)
            if fields and not self._gate.is_open:
                self._hold(entry_id, fields, failures=failures, attempts=0)
                continue
            await self._free_slots()
            self._spawn(entry_id, fields, failures=failures)

    async def _failure_counts(self, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        values = await self._redis.hmget(self._keys.failures, ids)
        return {entry_id: int(v) for entry_id, v in zip(ids, values, strict=True) if v}

    # Holding entries for a later attempt -------------------------------------------------

    def _hold(self, entry_id: str, fields: Fields, *, failures: int, attempts: int) -> None:
        delay = retry_delay(attempts, base=self._retry_base, cap=self._retry_cap)
        self._held[entry_id] = _Held(fields, failures, attempts, time.monotonic() + delay)
        EVENTS_WAITING.labels(self._keys.stream).set(len(self._held))

    async def _retry_due(self) -> None:
        """Start the held entries whose time has come (none while the gate is closed)."""
        now = time.monotonic()
        due = sorted(
            (held.due, entry_id) for entry_id, held in self._held.items() if held.due <= now
        )
        for _, entry_id in due:
            if not self._gate.is_open or self._stop.is_set():
                return
            if entry_id in self._in_flight:
                continue
            await self._free_slots()
            held = self._held.pop(entry_id, None)
            if held is None:
                continue  # acknowledged elsewhere meanwhile (see _keep_mine)
            EVENTS_WAITING.labels(self._keys.stream).set(len(self._held))
            self._spawn(entry_id, held.fields, failures=held.failures, attempts=held.attempts)

    async def _keep_alive(self) -> None:
        """Every third of the claim idle time, reset the idle time of this consumer's
        entries so that nobody takes them over as abandoned."""
        while True:
            await asyncio.sleep(self._keep_every)
            try:
                await self._keep_mine()
            except RedisError as exc:
                logger.debug("consumer: could not reset idle times (%r)", exc)

    async def _keep_mine(self) -> None:
        """XCLAIM … JUSTID the entries in flight and held; forget held entries that are no
        longer pending (acknowledged by another consumer, or lost with Redis)."""
        ids: list[StreamIdT] = [*self._in_flight, *self._held]
        for start in range(0, len(ids), _KEEP_CHUNK):
            chunk = ids[start : start + _KEEP_CHUNK]
            kept = await self._redis.xclaim(
                self._keys.stream,
                self._keys.group,
                self.name,
                min_idle_time=0,
                message_ids=chunk,
                justid=True,
            )
            pending = {as_str(entry_id) for entry_id in kept}
            for entry_id in map(as_str, chunk):
                if entry_id not in pending and self._held.pop(entry_id, None) is not None:
                    EVENTS_WAITING.labels(self._keys.stream).set(len(self._held))

    async def _wait_for_gate(self, seconds: float) -> None:
        """Sleep until the gate opens, `stop()`, or `seconds` passed."""
        waiters = {
            asyncio.ensure_future(self._gate.wait_open()),
            asyncio.ensure_future(self._stop.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    # Tasks -------------------------------------------------------------------------------

    def _spawn(
        self, entry_id: str, fields: Fields | None, *, failures: int, attempts: int = 0
    ) -> None:
        task = asyncio.create_task(
            self._guarded(self._settle(entry_id, fields, failures, attempts), entry_id)
        )
        self._slots.take()
        self._in_flight[entry_id] = task
        task.add_done_callback(lambda done: self._done(done, entry_id))

    def _spawn_batch(self, entries: Sequence[tuple[str, Fields, Envelope]]) -> None:
        ids = [entry_id for entry_id, _, _ in entries]
        task = asyncio.create_task(self._guarded(self._settle_batch(entries), ids[0]))
        self._slots.take()
        self._batch = task
        for entry_id in ids:
            self._in_flight[entry_id] = task
        task.add_done_callback(lambda done: self._done(done, *ids))

    def _done(self, task: asyncio.Task[None], *entry_ids: str) -> None:
        for entry_id in entry_ids:
            if self._in_flight.get(entry_id) is task:
                del self._in_flight[entry_id]
        self._slots.give()

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

    # Handling ----------------------------------------------------------------------------

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

        A failed batch applied nothing and counts for none of its entries (see the module
        docstring).
        """
        by_type: dict[str, list[tuple[str, Fields, Envelope]]] = {}
        for entry in entries:
            by_type.setdefault(entry[2].type, []).append(entry)
        for group in by_type.values():
            spans = self._spans(group)
            try:
                # A batch of one runs inside its span, so that what its handler writes (the
                # events it emits) continues the trace; a larger batch has no single parent.
                with tracing.activated(spans[0] if len(spans) == 1 else None):
                    await apply_batch(
                        self._sessionmaker, self._registry, [envelope for _, _, envelope in group]
                    )
            except asyncio.CancelledError as exc:
                self._end_spans(spans, exc)
                raise
            except Exception as exc:
                self._end_spans(spans, exc)
                fault = await self._gate.classify(exc)
                if fault is Fault.DETERMINISTIC:
                    logger.warning("batch of %d failed (%r); applying one by one", len(group), exc)
                    await asyncio.gather(
                        *(self._settle(entry_id, fields, 0, 0) for entry_id, fields, _ in group)
                    )
                else:
                    EVENT_RETRIES.labels(fault.value).inc(len(group))
                    logger.info("batch of %d failed (%s: %r); held", len(group), fault, exc)
                    for entry_id, fields, _ in group:
                        self._hold(entry_id, fields, failures=0, attempts=1)
                continue
            self._end_spans(spans)
            await self._redis.xack(
                self._keys.stream, self._keys.group, *(entry_id for entry_id, _, _ in group)
            )

    def _spans(self, entries: Sequence[tuple[str, Fields, Envelope]]) -> list[Span]:
        """One CONSUMER span per entry, each continuing the entry's own trace."""
        if not tracing.enabled():
            return []
        return [self._span(entry_id, fields, envelope) for entry_id, fields, envelope in entries]

    def _span(self, entry_id: str, fields: Fields, envelope: Envelope) -> Span:
        return tracing.start_span(
            f"process {envelope.type}",
            parent=tracing.carrier_of_entry(fields),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "redis",
                "messaging.operation.type": "process",
                "messaging.destination.name": self._keys.stream,
                "messaging.consumer.group.name": self._keys.group,
                "messaging.message.id": str(envelope.id),
                "taskhub.stream_entry_id": entry_id,
                "taskhub.request_id": envelope.request_id or "",
            },
        )

    @staticmethod
    def _end_spans(spans: list[Span], error: BaseException | None = None) -> None:
        for span in spans:
            tracing.end_span(span, error)

    async def _envelope(
        self, entry_id: str, fields: Fields | None, failures: int
    ) -> Envelope | None:
        """The entry's envelope; None when the entry was settled here (ack, dead letter)."""
        if not fields:
            # Deleted from the stream while pending: nothing left to deliver.
            await self._ack(entry_id, failures)
            return None
        try:
            return Envelope.from_json(fields[ENVELOPE_FIELD])
        except (KeyError, ValueError, ValidationError) as exc:
            await self._dead_letter(entry_id, fields, f"malformed envelope: {exc!r}", failures)
            return None

    async def _settle(
        self, entry_id: str, fields: Fields | None, failures: int, attempts: int
    ) -> None:
        """Apply one entry, then acknowledge it, hold it for a retry, or dead-letter it."""
        envelope = await self._envelope(entry_id, fields, failures)
        if envelope is None or not fields:
            return
        token = request_id_var.set(envelope.request_id)
        span = self._span(entry_id, fields, envelope) if tracing.enabled() else None
        error: BaseException | None = None
        try:
            try:
                with tracing.activated(span):
                    await apply_event(self._sessionmaker, self._registry, envelope)
            except MalformedEvent as exc:
                error = exc
                await self._dead_letter(entry_id, fields, str(exc), failures)
                return
            except asyncio.CancelledError as exc:
                error = exc
                raise
            except Exception as exc:
                error = exc
                await self._failed(entry_id, fields, envelope, exc, failures, attempts)
                return
            await self._ack(entry_id, failures)
        finally:
            if span is not None:
                tracing.end_span(span, error)
            request_id_var.reset(token)

    async def _failed(
        self,
        entry_id: str,
        fields: Fields,
        envelope: Envelope,
        exc: Exception,
        failures: int,
        attempts: int,
    ) -> None:
        """Count a deterministic failure (dead-letter at the limit); hold the entry for
        another attempt otherwise."""
        fault = await self._gate.classify(exc)
        log_extra = {
            "event_id": str(envelope.id),
            "event_type": envelope.type,
            "request_id": envelope.request_id or "-",
        }
        if fault is Fault.DETERMINISTIC:
            failures = int(await self._redis.hincrby(self._keys.failures, entry_id, 1))
            if failures >= self._max_deliveries:
                await self._dead_letter(entry_id, fields, repr(exc), failures)
                return
            logger.warning(
                "handler failed (%d of %d): %r",
                failures,
                self._max_deliveries,
                exc,
                extra=log_extra,
            )
        elif fault is Fault.CONFLICT:
            logger.warning("handler failed (transient, not counted): %r", exc, extra=log_extra)
        else:
            logger.info("handler failed (database unavailable): %r", exc, extra=log_extra)
        EVENT_RETRIES.labels(fault.value).inc()
        self._hold(entry_id, fields, failures=failures, attempts=attempts + 1)

    async def _ack(self, entry_id: str, failures: int) -> None:
        await acknowledge(self._redis, self._keys, entry_id, failures=failures)

    async def _dead_letter(self, entry_id: str, fields: Fields, error: str, failures: int) -> None:
        await dead_letter(
            self._redis,
            self._keys,
            entry_id,
            fields,
            error=error,
            failures=failures,
            consumer=self.name,
        )

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early on stop; True when stopping."""
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            pass
        return self._stop.is_set()
