"""Stream retention: trimming never removes an entry a group has not acknowledged, the relay
holds back while the group lags by STREAM_MAXLEN, and a Redis restarted empty loses no
published event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from taskhub.config import Settings
from taskhub.db import make_sessionmaker
from taskhub.messaging.metrics import pipeline_metrics_refresher
from taskhub.messaging.outbox import backlog
from taskhub.messaging.relay import Relay
from taskhub.messaging.streams import (
    StreamKeys,
    as_str,
    ensure_group,
    entries_of,
    id_time,
    read_entries,
    stream_state,
    trim,
)
from tests.fullstack.conftest import (
    WorkerProcess,
    order_status_counts,
)
from tests.fullstack.stack import Stack, processed
from tests.fullstack.test_transport import (
    Recorder,
    emit_touches,
    entry,
    make_consumer,
    processed_count,
)
from tests.invariants import assert_stock_invariant
from tests.polling import eventually
from tests.processes import PrivateRedis

pytestmark = [pytest.mark.pg, pytest.mark.redis]


def make_relay(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    maxlen: int,
    batch_size: int = 20,
) -> Relay:
    return Relay(
        sessionmaker=sessionmaker,
        redis=redis,
        partitions=[StreamKeys(settings.redis_prefix)],
        database_url=settings.database_url,
        batch_size=batch_size,
        poll_seconds=0.2,
        maxlen=maxlen,
        state_every=0.2,
    )


async def test_trimming_keeps_every_pending_and_undelivered_entry(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    keys = StreamKeys(redis_prefix)
    await ensure_group(redis_client, keys)
    ids = [as_str(await redis_client.xadd(keys.stream, entry(f"k{i}"))) for i in range(300)]
    # The workers' group: 200 delivered, of which 100..149 are still pending; 100 not yet
    # delivered. A second group (another reader) got as far as entry 250.
    delivered = read_entries(
        await redis_client.xreadgroup(keys.group, "w", {keys.stream: ">"}, count=200)
    )
    assert len(delivered) == 200
    await redis_client.xack(keys.stream, keys.group, *ids[:100], *ids[150:200])
    await redis_client.xgroup_create(keys.stream, "other", id=ids[250])

    state = await stream_state(redis_client, keys)
    assert state.trim_point == ids[100]
    group = state.group(keys.group)
    assert group is not None
    assert group.lag == 100
    await trim(redis_client, keys, state)
    kept = [i for i, _ in entries_of(await redis_client.xrange(keys.stream, ids[100], "+"))]
    assert kept == ids[100:], "an unacknowledged entry was trimmed"
    assert await redis_client.xlen(keys.stream) < 300, "nothing was trimmed"

    # Once both groups have acknowledged everything, (nearly) all of it may go.
    rest = read_entries(
        await redis_client.xreadgroup(keys.group, "w", {keys.stream: ">"}, count=1000)
    )
    await redis_client.xack(keys.stream, keys.group, *ids[100:150], *(i for i, _ in rest))
    await redis_client.xreadgroup("other", "o", {keys.stream: ">"}, count=1000)
    await redis_client.xack(keys.stream, "other", *ids[251:])
    state = await stream_state(redis_client, keys)
    assert state.trim_point is not None and id_time(state.trim_point) > 0
    await trim(redis_client, keys, state)
    assert await redis_client.xlen(keys.stream) < 100


async def test_the_relay_holds_back_while_the_group_lags_and_resumes_as_it_drains(
    fs_settings: Callable[..., Settings],
    fs_engine: AsyncEngine,
    redis_client: aioredis.Redis,
    running: Callable[[Any], None],
) -> None:
    settings = fs_settings()
    keys = StreamKeys(settings.redis_prefix)
    sessionmaker = make_sessionmaker(fs_engine)
    await emit_touches(sessionmaker, [{"key": f"k{i}"} for i in range(300)])
    running(make_relay(settings, sessionmaker, redis_client, maxlen=50))

    async def held_back() -> bool:
        value = REGISTRY.get_sample_value("taskhub_relay_held_back", {"stream": keys.stream})
        return value == 1

    await eventually(held_back, timeout=10, what="the relay to hold back")
    # One relay never overshoots: it publishes the room left, and no more.
    assert await redis_client.xlen(keys.stream) == 50
    async with sessionmaker() as session:
        assert await backlog(session) == 250, "the outbox keeps what is held back"
    refresh = pipeline_metrics_refresher(sessionmaker, redis_client, [keys])
    await refresh()
    exposition = generate_latest().decode()
    assert f'taskhub_stream_lag{{group="{keys.group}",stream="{keys.stream}"}} 50.0' in exposition
    assert f'taskhub_stream_length{{stream="{keys.stream}"}} 50.0' in exposition
    assert f'taskhub_stream_trim_point_seconds{{stream="{keys.stream}"}}' in exposition
    assert "taskhub_outbox_backlog 250.0" in exposition

    recorder = Recorder()
    running(make_consumer(settings, sessionmaker, redis_client, recorder))

    async def drained() -> bool:
        return sum(recorder.applied.values()) == 300 and await redis_client.xlen(keys.stream) < 100

    await eventually(drained, timeout=30, what="all 300 applied and the stream trimmed")
    assert set(recorder.applied.values()) == {1}
    async with sessionmaker() as session:
        assert await backlog(session) == 0
    assert int(await redis_client.xlen(keys.dead)) == 0


async def test_a_redis_restarted_empty_gets_the_unapplied_events_published_again(
    fs_settings: Callable[..., Settings],
    fs_engine: AsyncEngine,
    private_redis: PrivateRedis,
    running: Callable[[Any], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = fs_settings(redis_url=private_redis.url)
    keys = StreamKeys(settings.redis_prefix)
    sessionmaker = make_sessionmaker(fs_engine)
    client = aioredis.Redis.from_url(private_redis.url, socket_connect_timeout=0.5)
    try:
        recorder = Recorder()
        consumer = make_consumer(settings, sessionmaker, client, recorder)
        running(make_relay(settings, sessionmaker, client, maxlen=1000))
        consuming = asyncio.create_task(consumer.run())
        await emit_touches(sessionmaker, [{"key": f"early{i}"} for i in range(10)])

        async def early_applied() -> bool:
            return sum(recorder.applied.values()) == 10

        await eventually(early_applied, timeout=10, what="the first events applied")
        consumer.stop()  # nobody consumes now: what the relay publishes stays in Redis
        await asyncio.wait_for(consuming, 10)
        await emit_touches(sessionmaker, [{"key": f"late{i}"} for i in range(30)])

        async def published() -> bool:
            async with sessionmaker() as session:
                return await backlog(session) == 0 and await client.xlen(keys.stream) >= 30

        await eventually(published, timeout=10, what="the late events published")
        private_redis.kill()
        private_redis.start()  # empty: the 30 published entries are gone
        fresh = aioredis.Redis.from_url(private_redis.url)
        assert await fresh.xlen(keys.stream) == 0
        await fresh.aclose()
        caplog.set_level(logging.WARNING, logger="taskhub.events.binding")
        running(make_consumer(settings, sessionmaker, client, recorder))

        async def all_applied() -> bool:
            return sum(recorder.applied.values()) == 40

        await eventually(all_applied, timeout=20, what="the lost events applied")
        assert set(recorder.applied.values()) == {1}
        assert await processed_count(sessionmaker) == 40
        # Only the events not applied yet were published again.
        assert "30 published event(s) not yet applied" in caplog.text
    finally:
        await client.aclose()


@pytest.mark.slow
async def test_a_backlog_larger_than_stream_maxlen_is_applied_in_full(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    stack: Stack = await stack_factory(stream_maxlen=100)
    product = await stack.product(stock=10_000)
    # No worker runs while the orders come in: the outbox holds them all.
    await stack.orders([[(product, 1)] for _ in range(2000)], parallel=50)
    started = [workers(stack.settings, STREAM_MAXLEN="100") for _ in range(2)]
    await stack.wait_drained(90, started)
    assert await order_status_counts(stack.engine) == {"RESERVED": 2000}
    assert await processed(stack.engine, "orders.reserve") == 2000
    assert int(await stack.app.state.redis.xlen(stack.keys.dead)) == 0
    await assert_stock_invariant(stack.engine)
