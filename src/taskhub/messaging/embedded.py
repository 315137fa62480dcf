"""The embedded shape's event loop: the API process dispatches its own outbox.

Reads unpublished outbox rows in id order, applies each through `apply_event` (the same
idempotent path the Redis consumer uses), then marks it published. A crash between the two
steps redelivers the event, which the processed-event record turns into a no-op.

Failures follow the stream consumer's rule (`messaging.faults`): a transient one (the
database unavailable or locked, a conflict) never counts; the row is tried again after a
capped exponential backoff with jitter, and while the database is unavailable the loop
waits for the gate to reopen. A deterministic failure counts in the row's `attempts`; at
`max_attempts` the row is dead (`dead_at`). A row waiting for its retry does not hold the
rows after it back.

An `observer` (the live streams' fan-out) is told of each row when the loop first reads it,
in outbox order, before the handlers of its batch run: as the full stack's fan-out sees an
event once it is on the stream, whatever its handlers do with it. A row read again (after a
stop or the database's outage cut its batch short) is told again; a row waiting for a retry
is not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.db import utcnow
from taskhub.errors import is_transient
from taskhub.messaging.backoff import retry_delay
from taskhub.messaging.dispatch import MalformedEvent, Registry, apply_event
from taskhub.messaging.faults import DatabaseGate, Fault
from taskhub.messaging.outbox import to_envelope
from taskhub.messaging.signal import WakeSignal
from taskhub.models import OutboxEvent
from taskhub.observability import DEAD_LETTERED, EVENT_RETRIES, EVENTS_WAITING, OUTBOX_PUBLISHED

logger = logging.getLogger("taskhub.events.embedded")


class EmbeddedDispatcher:
    """Dispatch the outbox in-process, and run the registry's periodic jobs."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        registry: Registry,
        signal: WakeSignal,
        poll_seconds: float,
        jobs_every_seconds: float,
        max_attempts: int,
        batch_size: int = 100,
        retry_base_seconds: float = 0.05,
        retry_cap_seconds: float = 300.0,
        gate: DatabaseGate | None = None,
        observer: Callable[[OutboxEvent], None] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._registry = registry
        self._signal = signal
        self._poll = poll_seconds
        self._jobs_every = jobs_every_seconds
        self._max_attempts = max_attempts
        self._batch = batch_size
        self._retry_base = retry_base_seconds
        self._retry_cap = retry_cap_seconds
        self._gate = gate or DatabaseGate(sessionmaker.kw["bind"])
        self._observer = observer
        # Row id → (failed attempts of any kind, when it may be tried again).
        self._waiting: dict[int, tuple[int, float]] = {}
        self._next_jobs = 0.0
        self._stopping = False

    def stop(self) -> None:
        """Finish the event in hand, then return from `run` (no transaction is cut off)."""
        self._stopping = True
        self._signal.wake()

    async def run(self) -> None:
        """Loop until `stop()` (or cancellation)."""
        try:
            while not self._stopping:
                if not self._gate.is_open:
                    await self._wait_for_gate()
                    continue
                try:
                    handled = await self.drain_once()
                    if self._stopping:
                        return
                    await self.run_jobs_if_due()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database may be briefly down; keep going
                    if await self._gate.classify(exc) is Fault.DETERMINISTIC:
                        logger.exception("embedded dispatch failed; retrying")
                    handled = 0
                if handled == 0 and not self._stopping:
                    await self._signal.wait(self._idle_wait())
        finally:
            await self._gate.aclose()

    async def drain_once(self) -> int:
        """Apply one batch of unpublished events; returns how many were settled."""
        now = time.monotonic()
        not_due = [row_id for row_id, (_, due) in self._waiting.items() if due > now]
        stmt = (
            select(OutboxEvent)
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(self._batch)
        )
        if not_due:
            stmt = stmt.where(OutboxEvent.id.not_in(not_due))
        async with self._sessionmaker() as session:
            rows = (await session.scalars(stmt)).all()
        for row in rows:
            if row.id not in self._waiting:
                self._observe(row)
        settled = 0
        for row in rows:
            if self._stopping or not self._gate.is_open:
                break
            try:
                await apply_event(self._sessionmaker, self._registry, to_envelope(row))
            except MalformedEvent as exc:
                await self._mark(row.id, dead=True, error=str(exc))
                settled += 1
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                settled += await self._failed(row, exc)
                continue
            await self._mark(row.id)
            self._forget(row.id)
            settled += 1
        return settled

    async def _failed(self, row: OutboxEvent, exc: Exception) -> int:
        """Count a deterministic failure (dead at the limit), or only wait for a transient
        one; returns 1 when the row is settled (dead)."""
        attempts = self._waiting.get(row.id, (0, 0.0))[0] + 1
        fault = await self._gate.classify(exc)
        if fault is Fault.DETERMINISTIC:
            logger.warning("event %s failed: %r", row.event_id, exc)
            dead = row.attempts + 1 >= self._max_attempts
            await self._mark(row.id, dead=dead, error=repr(exc), failed=True)
            if dead:
                self._forget(row.id)
                return 1
        elif fault is Fault.CONFLICT:
            logger.warning("event %s failed (transient, not counted): %r", row.event_id, exc)
        else:
            logger.info("event %s failed (database unavailable): %r", row.event_id, exc)
        EVENT_RETRIES.labels(fault.value).inc()
        delay = retry_delay(attempts, base=self._retry_base, cap=self._retry_cap)
        self._waiting[row.id] = (attempts, time.monotonic() + delay)
        EVENTS_WAITING.labels("outbox").set(len(self._waiting))
        return 0

    def _observe(self, row: OutboxEvent) -> None:
        """Tell the observer of a row seen for the first time; its failure is not the
        event's."""
        if self._observer is None:
            return
        try:
            self._observer(row)
        except Exception:
            logger.exception("the outbox observer failed on event %s", row.event_id)

    def _forget(self, row_id: int) -> None:
        if self._waiting.pop(row_id, None) is not None:
            EVENTS_WAITING.labels("outbox").set(len(self._waiting))

    def _idle_wait(self) -> float:
        """The poll, or less when a waiting row is due sooner."""
        if not self._waiting:
            return self._poll
        soonest = min(due for _, due in self._waiting.values())
        return max(0.001, min(self._poll, soonest - time.monotonic()))

    async def _wait_for_gate(self) -> None:
        opened = asyncio.ensure_future(self._gate.wait_open())
        try:
            while not opened.done() and not self._stopping:
                await asyncio.wait({opened}, timeout=self._poll)
        finally:
            opened.cancel()

    async def run_jobs_if_due(self) -> None:
        """Run the periodic jobs at most every `jobs_every_seconds`."""
        now = time.monotonic()
        if now < self._next_jobs:
            return
        self._next_jobs = now + self._jobs_every
        for name, job in self._registry.jobs:
            try:
                done = await job(self._sessionmaker)
                if done:
                    logger.info("job %s handled %d item(s)", name, done)
                    self._signal.wake()
            except Exception as exc:
                if is_transient(exc):  # the database is down or busy: the next run retries
                    logger.warning("job %s failed (%r); next run retries", name, exc)
                else:
                    logger.exception("job %s failed", name)

    async def _mark(
        self, row_id: int, *, dead: bool = False, error: str | None = None, failed: bool = False
    ) -> None:
        values: dict[str, object] = {}
        if failed:
            values["attempts"] = OutboxEvent.attempts + 1
            values["last_error"] = (error or "")[:2000]
        if dead:
            values["dead_at"] = utcnow()
            values["last_error"] = (error or "")[:2000]
            DEAD_LETTERED.inc()
        if dead or not failed:
            values["published_at"] = utcnow()
            OUTBOX_PUBLISHED.inc()
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(OutboxEvent).where(OutboxEvent.id == row_id).values(**values)
            )
