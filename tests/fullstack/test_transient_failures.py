"""Transient versus deterministic failures in the stream consumer (messaging.faults).

A database that is down, a pool that is exhausted, a deadlock: retried for as long as it
lasts, never counted, never dead-lettered, and the entries stay with their consumer. A
handler that fails while the database answers: counted, and dead-lettered after N.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from taskhub.config import Settings
from taskhub.db import make_engine, make_sessionmaker
from taskhub.errors import ConcurrentUpdate, ServiceUnavailable
from taskhub.messaging.consumer import StreamConsumer
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.envelope import Envelope
from taskhub.messaging.streams import StreamKeys, ensure_group, entries_of
from tests.fullstack.replies import with_fields
from tests.fullstack.test_transport import TouchPayload, entry, processed_count
from tests.hardening.tcp_proxy import TcpProxy
from tests.polling import eventually

pytestmark = [pytest.mark.pg, pytest.mark.redis]


class Flaky:
    """A registry whose handler fails in a chosen way for the first attempts of a key."""

    def __init__(self, failures: dict[str, tuple[int, Callable[[], Exception]]]) -> None:
        self.failures = failures
        self.attempts: Counter[str] = Counter()
        self.applied: Counter[str] = Counter()
        self.batches: list[int] = []
        self.registry = Registry()
        self.registry.on("test.touch", name="test.touch")(self.handle)

    async def handle(self, session: AsyncSession, envelope: Envelope) -> None:
        key = TouchPayload.model_validate(envelope.payload).key
        self.attempts[key] += 1
        times, error = self.failures.get(key, (0, RuntimeError))
        if self.attempts[key] <= times:
            if key == "standby":
                # What a write meets on a connection left on a standby after a failover.
                await session.execute(text("SET TRANSACTION READ ONLY"))
                await session.execute(text("CREATE TEMPORARY TABLE failover (x int)"))
            raise error()
        self.applied[key] += 1


@pytest.fixture
async def consumers(
    fs_settings: Callable[..., Settings],
    fs_engine: AsyncEngine,
    redis_client: aioredis.Redis,
) -> AsyncIterator[Callable[..., StreamConsumer]]:
    """Start consumers (stopped and awaited at the end)."""
    del fs_engine  # the tables are emptied after the test
    started: list[tuple[StreamConsumer, asyncio.Task[None]]] = []

    def start(
        registry: Registry,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        name: str,
        max_deliveries: int,
        claim_idle_ms: int = 5000,
        batch_size: int | None = None,
    ) -> StreamConsumer:
        consumer = StreamConsumer(
            redis=redis_client,
            keys=StreamKeys(fs_settings().redis_prefix),
            sessionmaker=sessionmaker,
            registry=registry,
            name=name,
            concurrency=4,
            claim_idle_ms=claim_idle_ms,
            max_deliveries=max_deliveries,
            block_ms=100,
            retry_base_seconds=0.02,
            retry_cap_seconds=0.5,
            batches=batch_size is not None,
            batch_size=batch_size or 1,
        )
        started.append((consumer, asyncio.create_task(consumer.run())))
        return consumer

    yield start
    for consumer, _ in started:
        consumer.stop()
    for _, task in started:
        await asyncio.wait_for(task, 15)


async def test_transient_failures_never_count_and_deterministic_ones_do(
    fs_settings: Callable[..., Settings],
    fs_engine: AsyncEngine,
    redis_client: aioredis.Redis,
    consumers: Callable[..., StreamConsumer],
) -> None:
    keys = StreamKeys(fs_settings().redis_prefix)
    flaky = Flaky(
        {
            # Far more transient failures than max_deliveries: all retried, none counted.
            "down": (6, lambda: ServiceUnavailable("pool exhausted")),
            "deadlock": (6, ConcurrentUpdate),
            "standby": (6, RuntimeError),  # the database refuses first: read-only
            # Deterministic (the database answers): dead-lettered at the 2nd failure.
            "broken": (99, lambda: RuntimeError("bug")),
            "once": (1, lambda: RuntimeError("bug")),
        }
    )
    await ensure_group(redis_client, keys)
    consumers(flaky.registry, make_sessionmaker(fs_engine), name="c1", max_deliveries=2)
    for key in ("down", "deadlock", "standby", "broken", "once", "fine"):
        await redis_client.xadd(keys.stream, entry(key))

    async def settled() -> bool:
        pending = await redis_client.xpending(keys.stream, keys.group)
        return (
            sum(flaky.applied.values()) == 5
            and int(await redis_client.xlen(keys.dead)) == 1
            and int(pending["pending"]) == 0
        )

    await eventually(settled, timeout=20, what="five applied and one dead letter")
    assert flaky.applied == Counter({"down": 1, "deadlock": 1, "standby": 1, "once": 1, "fine": 1})
    assert flaky.attempts["down"] == flaky.attempts["deadlock"] == flaky.attempts["standby"] == 7
    assert flaky.attempts["broken"] == 2, "dead-lettered after exactly max_deliveries"
    [(_id, dead)] = with_fields(entries_of(await redis_client.xrange(keys.dead)))
    assert b'"broken"' in dead[b"envelope"]
    assert await redis_client.exists(keys.failures) == 0, "failure counts left behind"
    assert await processed_count(make_sessionmaker(fs_engine)) == 5


async def test_a_transiently_failed_batch_counts_for_none_of_its_entries(
    fs_settings: Callable[..., Settings],
    fs_engine: AsyncEngine,
    redis_client: aioredis.Redis,
    consumers: Callable[..., StreamConsumer],
) -> None:
    keys = StreamKeys(fs_settings().redis_prefix)
    flaky = Flaky({})
    batch_failures = Counter[str]()

    @flaky.registry.on_batch("test.touch", name="test.touch")
    async def handle_many(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        batch_failures["calls"] += 1
        if batch_failures["calls"] <= 3:
            raise ConcurrentUpdate()  # a deadlock: the batch rolled back
        for envelope in envelopes:
            await flaky.handle(session, envelope)

    await ensure_group(redis_client, keys)
    for i in range(10):
        await redis_client.xadd(keys.stream, entry(f"k{i}"))
    # One deterministic failure would dead-letter an entry: none may be counted.
    consumers(
        flaky.registry, make_sessionmaker(fs_engine), name="c1", max_deliveries=1, batch_size=10
    )

    async def applied() -> bool:
        pending = await redis_client.xpending(keys.stream, keys.group)
        return sum(flaky.applied.values()) == 10 and int(pending["pending"]) == 0

    await eventually(applied, timeout=15, what="the batch applied")
    assert set(flaky.applied.values()) == {1}
    assert int(await redis_client.xlen(keys.dead)) == 0
    assert batch_failures["calls"] >= 1


async def test_a_database_outage_holds_entries_with_their_consumer_and_loses_none(
    fs_settings: Callable[..., Settings],
    fs_engine: AsyncEngine,
    redis_client: aioredis.Redis,
    consumers: Callable[..., StreamConsumer],
) -> None:
    settings = fs_settings()
    keys = StreamKeys(settings.redis_prefix)
    target = urlsplit(settings.database_url.replace("+asyncpg", ""))
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    proxied = settings.database_url.replace(f":{target.port}/", f":{proxy.port}/", 1)
    engine = make_engine(
        settings.model_copy(update={"database_url": proxied, "db_timeout_seconds": 1})
    )
    try:
        flaky = Flaky({})
        sessionmaker = make_sessionmaker(engine)
        # Two consumers with a short claim idle time: neither may take the other's held
        # entries over as abandoned while the database is down.
        for name in ("c1", "c2"):
            consumers(flaky.registry, sessionmaker, name=name, max_deliveries=1, claim_idle_ms=1200)

        async def joined() -> bool:
            try:
                return len(await redis_client.xinfo_consumers(keys.stream, keys.group)) == 2
            except aioredis.ResponseError:
                return False

        await eventually(joined, timeout=10, what="two consumers in the group")
        await proxy.cut()
        for i in range(20):
            await redis_client.xadd(keys.stream, entry(f"k{i}"))

        async def gate_closed() -> bool:
            up = REGISTRY.get_sample_value("taskhub_dependency_up", {"dependency": "database"})
            return up == 0

        await eventually(gate_closed, timeout=10, what="the consumers to find the database down")
        await asyncio.sleep(3.6)  # three times the claim idle time
        rows: Any = await redis_client.xpending_range(keys.stream, keys.group, "-", "+", 100)
        assert rows, "nothing was delivered before the gate closed"
        # Held, not taken over: XCLAIM … JUSTID resets the idle time without a delivery.
        assert {int(row["times_delivered"]) for row in rows} == {1}
        assert int(await redis_client.xlen(keys.dead)) == 0
        await proxy.restore()

        async def all_applied() -> bool:
            pending = await redis_client.xpending(keys.stream, keys.group)
            return sum(flaky.applied.values()) == 20 and int(pending["pending"]) == 0

        await eventually(all_applied, timeout=30, what="every entry applied after the outage")
        assert set(flaky.applied.values()) == {1}
        assert int(await redis_client.xlen(keys.dead)) == 0
        assert await processed_count(make_sessionmaker(fs_engine)) == 20
    finally:
        await engine.dispose()
        if proxy._server is None:
            await proxy.restore()
        await proxy.cut()
