"""How long the outbox keeps its rows: a periodic job purges published events past a window.

Published rows are kept for a while because they are still read: an event stream resuming
after `Last-Event-ID` replays them (LIVE_REPLAY_WINDOW), and a worker that finds the consumer
group lost (Redis restarted empty) publishes again those of STREAM_REPUBLISH_WINDOW not yet
applied. So the window is the longer of the two that apply to the shape. Rows not yet
published, and dead letters (embedded: rows with `dead_at`, which `taskhub dlq` manages),
are never purged.

The job walks the table by id from its start, a window of rows at a time, and stops at the
first window that ends in a row younger than the cutoff: ids grow with time, so it reads
only what it deletes, plus one window (and the few rows it must keep, if any are old).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.db import utcnow
from taskhub.models import OutboxEvent


class OutboxPurge:
    """The periodic job (`Registry.every`): delete published rows older than `keep`."""

    def __init__(self, *, keep: timedelta, batch: int = 1000, max_batches: int = 50) -> None:
        self.keep = keep
        self._batch = batch
        # Bounds one run's work; the next run goes on where a long backlog of old rows ends.
        self._max_batches = max_batches

    async def __call__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        """Purge; returns how many rows went."""
        cutoff = utcnow() - self.keep
        after, purged = 0, 0
        for _ in range(self._max_batches):
            async with sessionmaker() as session, session.begin():
                window = (
                    await session.execute(
                        select(
                            OutboxEvent.id,
                            OutboxEvent.occurred_at,
                            OutboxEvent.published_at.is_not(None) & OutboxEvent.dead_at.is_(None),
                        )
                        .where(OutboxEvent.id > after)
                        .order_by(OutboxEvent.id)
                        .limit(self._batch)
                    )
                ).all()
                old = [row_id for row_id, at, settled in window if settled and at < cutoff]
                if old:
                    await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(old)))
                    purged += len(old)
            if len(window) < self._batch or window[-1][1] >= cutoff:
                break
            after = window[-1][0]
        return purged
