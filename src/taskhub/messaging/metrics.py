"""Refresh the pipeline gauges: outbox backlog, per stream its length, each group's lag and
pending entries, the trim point, and dead letters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.messaging.deadletters import count_outbox_dead, count_stream_dead
from taskhub.messaging.outbox import backlog
from taskhub.messaging.streams import StreamKeys, id_time, stream_state
from taskhub.observability import (
    DEAD_LETTERS,
    OUTBOX_BACKLOG,
    STREAM_LAG,
    STREAM_LENGTH,
    STREAM_PENDING,
    STREAM_TRIM_POINT,
)
from taskhub.redis_client import RedisClient

logger = logging.getLogger("taskhub.events.metrics")

Refresh = Callable[[], Awaitable[None]]


def pipeline_metrics_refresher(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: RedisClient | None,
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


async def _refresh_stream(redis: RedisClient, keys: StreamKeys) -> None:
    state = await stream_state(redis, keys)
    STREAM_LENGTH.labels(keys.stream).set(state.length)
    for group in state.groups:
        STREAM_PENDING.labels(keys.stream, group.name).set(group.pending)
        STREAM_LAG.labels(keys.stream, group.name).set(group.lag)
    point = state.trim_point
    if point is not None:
        STREAM_TRIM_POINT.labels(keys.stream).set(id_time(point))
    DEAD_LETTERS.labels(keys.dead).set(await count_stream_dead(redis, keys))
