"""messaging.fanout on a real Redis: a reader delivers what is added after it attached, in
order, skips what is not an envelope, goes idle without listeners, and reads a recreated
stream from its start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from taskhub.messaging.fanout import START, PublishedEvent, StreamFanout, newest_id
from taskhub.messaging.streams import ENVELOPE_FIELD, StreamKeys

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server)
    yield client
    await client.aclose()


def envelope(n: int) -> bytes:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": "order.step",
            "occurred_at": "2026-12-02T10:00:00Z",
            "version": 1,
            "payload": {"order_id": 1, "step": n},
            "request_id": None,
        }
    ).encode()


async def test_a_reader_delivers_what_comes_after_it_attached(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    keys = StreamKeys(redis_prefix)
    got: list[PublishedEvent] = []
    listening = [True]
    fanout = StreamFanout(
        redis=redis,
        partitions=[keys],
        deliver=got.append,
        wanted=lambda: listening[0],
        block_ms=50,
    )
    await redis.xadd(keys.stream, {ENVELOPE_FIELD: envelope(-1)})  # before: not delivered
    task = asyncio.create_task(fanout.run())
    try:
        await fanout.attach()
        for n in range(3):
            await redis.xadd(keys.stream, {ENVELOPE_FIELD: envelope(n)})
        await redis.xadd(keys.stream, {b"other": b"not an envelope"})
        await redis.xadd(keys.stream, {ENVELOPE_FIELD: b"{not json"})
        await redis.xadd(keys.stream, {ENVELOPE_FIELD: envelope(3)})
        async with asyncio.timeout(20):
            while len(got) < 4:
                await asyncio.sleep(0.01)
        assert [event.payload["step"] for event in got] == [0, 1, 2, 3]
        assert json.loads(got[0].data)["payload"]["step"] == 0
        # Nobody listens any more: the reader drops its position (and stops reading).
        listening[0] = False
        reader = fanout._readers[0]
        async with asyncio.timeout(20):
            while reader.position is not None:
                await asyncio.sleep(0.01)
        await redis.xadd(keys.stream, {ENVELOPE_FIELD: envelope(4)})
        listening[0] = True
        await fanout.attach()
        await redis.xadd(keys.stream, {ENVELOPE_FIELD: envelope(5)})
        async with asyncio.timeout(20):
            while len(got) < 5:
                await asyncio.sleep(0.01)
        assert got[4].payload["step"] == 5
    finally:
        fanout.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def test_a_recreated_stream_is_read_from_its_start(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    keys = StreamKeys(redis_prefix)
    assert await newest_id(redis, keys) == START
    fanout = StreamFanout(
        redis=redis, partitions=[keys], deliver=lambda _: None, wanted=lambda: True
    )
    reader = fanout._readers[0]
    await redis.xadd(keys.stream, {ENVELOPE_FIELD: envelope(0)})
    await fanout.attach()
    assert reader.position == await newest_id(redis, keys) != START
    # As after Redis restarted empty: the stream's ids are now behind the reader's position.
    reader.position = "99999999999999-0"
    await reader._check_recreated()
    assert reader.position == START
