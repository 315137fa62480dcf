"""Refresh the pipeline gauges (outbox backlog, stream lag and pending, dead letters)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.messaging.deadletters import count_outbox_dead, count_stream_dead
from taskhub.messaging.outbox import backlog
from taskhub.messaging.streams import StreamKeys, as_str
from taskhub.observability import DEAD_LETTERS, OUTBOX_BACKLOG, STREAM_LAG, STREAM_PENDING

logger = logging.getLogger("taskhub.events.metrics")

Refresh = Callable[[], Awaitable[None]]


def pipeline_metrics_refresher(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis | None,
    partitions: list[StreamKeys],
) -> Refresh:
    """An async callable that updates the gauges; errors are logged, never raised."""

    async def refresh() -> None:
        try:
            async with asyncio.timeout(2), sessionmaker() as session:
                OUTBOX_BACKLOG.set(await backlog(session))
                if redis is None:
                    DEAD_LETTERS.labels("outbox").set(await count_outbox_dead(session))
        except Exception as exc:  # the database down must not break /metrics
            logger.warning("metrics: database unavailable (%r)", exc)
        if redis is None:
            return
        try:
            async with asyncio.timeout(2):
                for keys in partitions:
                    await _refresh_stream(redis, keys)
        except Exception as exc:  # Redis down must not break /metrics
            logger.warning("metrics: Redis unavailable (%r)", exc)

    return refresh


async def _refresh_stream(redis: Redis, keys: StreamKeys) -> None:
    if await redis.exists(keys.stream):
        for group in await redis.xinfo_groups(keys.stream):
            name = as_str(group["name"])
            STREAM_PENDING.labels(keys.stream, name).set(int(group.get("pending") or 0))
            lag = group.get("lag")
            if lag is not None:
                STREAM_LAG.labels(keys.stream, name).set(int(lag))
    DEAD_LETTERS.labels(keys.dead).set(await count_stream_dead(redis, keys))
