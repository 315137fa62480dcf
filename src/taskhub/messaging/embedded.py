"""The embedded shape's event loop: the API process dispatches its own outbox.

Reads unpublished outbox rows in id order, applies each through `apply_event` (the same
idempotent path the Redis consumer uses), then marks it published. A crash between the two
steps redelivers the event, which the processed-event record turns into a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.db import utcnow
from taskhub.messaging.dispatch import MalformedEvent, Registry, apply_event
from taskhub.messaging.outbox import to_envelope
from taskhub.messaging.signal import WakeSignal
from taskhub.models import OutboxEvent
from taskhub.observability import DEAD_LETTERED, OUTBOX_PUBLISHED

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
    ) -> None:
        self._sessionmaker = sessionmaker
        self._registry = registry
        self._signal = signal
        self._poll = poll_seconds
        self._jobs_every = jobs_every_seconds
        self._max_attempts = max_attempts
        self._batch = batch_size
        self._next_jobs = 0.0
        self._stopping = False

    def stop(self) -> None:
        """Finish the event in hand, then return from `run` (no transaction is cut off)."""
        self._stopping = True
        self._signal.wake()

    async def run(self) -> None:
        """Loop until `stop()` (or cancellation)."""
        while not self._stopping:
            try:
                handled = await self.drain_once()
                if self._stopping:
                    return
                await self.run_jobs_if_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be briefly down; keep the loop alive
                logger.exception("embedded dispatch failed; retrying")
                handled = 0
            if handled == 0 and not self._stopping:
                await self._signal.wait(self._poll)

    async def drain_once(self) -> int:
        """Apply one batch of unpublished events; returns how many were settled."""
        async with self._sessionmaker() as session:
            rows = (
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(self._batch)
                )
            ).all()
        settled = 0
        for row in rows:
            if self._stopping:
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
                logger.warning("event %s failed: %r", row.event_id, exc)
                dead = row.attempts + 1 >= self._max_attempts
                await self._mark(row.id, dead=dead, error=repr(exc), failed=True)
                settled += int(dead)
                continue
            await self._mark(row.id)
            settled += 1
        return settled

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
            except Exception:
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
