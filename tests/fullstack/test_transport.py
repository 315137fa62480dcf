"""The stream transport in-process, with a test registry: relay, consumer group, retries,
take-over of abandoned entries, dead letters, and reconnecting to Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict
from redis.typing import EncodableT, FieldT
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from taskhub.config import Settings
from taskhub.db import make_engine, make_sessionmaker, utcnow
from taskhub.messaging.consumer import StreamConsumer
from taskhub.messaging.deadletters import DLQ_DELIVERIES, DLQ_ERROR
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.envelope import Envelope, envelope_json, envelope_of
from taskhub.messaging.outbox import NOTIFY_CHANNEL, Announcer, backlog, emit
from taskhub.messaging.relay import Relay
from taskhub.messaging.signal import WakeSignal
from taskhub.messaging.streams import (
    ENVELOPE_FIELD,
    StreamKeys,
    ensure_group,
    entries_of,
    read_entries,
)
from taskhub.migrate import upgrade
from taskhub.models import OutboxEvent, ProcessedEvent
from tests.conftest import make_settings
from tests.fullstack.replies import with_fields
from tests.polling import eventually
from tests.processes import PrivateRedis

pytestmark = [pytest.mark.pg, pytest.mark.redis]


class TouchPayload(BaseModel):
    """The test event's payload."""

    model_config = ConfigDict(extra="forbid")
    key: str
    fail: int = 0


class Recorder:
    """A registry whose handler counts applications and fails on demand."""

    def __init__(self) -> None:
        self.applied: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.registry = Registry()
        self.registry.on("test.touch", name="test.touch")(self.handle)

    async def handle(self, _session: AsyncSession, envelope: Envelope) -> None:
        payload = TouchPayload.model_validate(envelope.payload)
        self.attempts[payload.key] += 1
        if self.attempts[payload.key] <= payload.fail:
            raise RuntimeError(f"failure {self.attempts[payload.key]}")
        self.applied[payload.key] += 1


@pytest.fixture
def sessionmaker(fs_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on the module's database."""
    return make_sessionmaker(fs_engine)


@pytest.fixture
def keys(redis_prefix: str) -> StreamKeys:
    """This test's stream keys."""
    return StreamKeys(redis_prefix)


def make_relay(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis
) -> Relay:
    return Relay(
        sessionmaker=sessionmaker,
        redis=redis,
        partitions=[StreamKeys(settings.redis_prefix)],
        database_url=settings.database_url,
        batch_size=50,
        poll_seconds=1.0,
        maxlen=settings.stream_maxlen,
    )


def make_consumer(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    recorder: Recorder,
    *,
    name: str | None = None,
    claim_idle_ms: int = 5000,
    max_deliveries: int = 3,
    batch_size: int | None = None,
) -> StreamConsumer:
    """A consumer of concurrency 4; with `batch_size`, batches on (the worker's PostgreSQL
    setting)."""
    return StreamConsumer(
        redis=redis,
        keys=StreamKeys(settings.redis_prefix),
        sessionmaker=sessionmaker,
        registry=recorder.registry,
        name=name or f"test-{uuid.uuid4().hex[:6]}",
        concurrency=4,
        claim_idle_ms=claim_idle_ms,
        max_deliveries=max_deliveries,
        block_ms=200,
        retry_base_seconds=0.02,
        batches=batch_size is not None,
        batch_size=batch_size or 1,
    )


async def emit_touches(
    sessionmaker: async_sessionmaker[AsyncSession], payloads: list[dict[str, Any]]
) -> None:
    async with sessionmaker() as session, session.begin():
        for payload in payloads:
            await emit(session, type="test.touch", payload=payload)


def entry(key: str, **extra: Any) -> dict[FieldT, EncodableT]:
    envelope = Envelope(
        id=uuid.uuid4(),
        type="test.touch",
        occurred_at=utcnow(),
        version=1,
        payload={"key": key, **extra},
    )
    return {ENVELOPE_FIELD: envelope.to_json()}


async def processed_count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)


async def test_relay_then_consumer_apply_each_event_once(
    fs_settings: Callable[..., Settings],
    sessionmaker: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    keys: StreamKeys,
    running: Callable[[Any], None],
) -> None:
    settings = fs_settings()
    recorder = Recorder()
    # Two relays and two consumers compete, as several worker processes would.
    for _ in range(2):
        running(make_relay(settings, sessionmaker, redis_client))
        running(make_consumer(settings, sessionmaker, redis_client, recorder))
    await emit_touches(sessionmaker, [{"key": f"k{i}"} for i in range(120)])

    async def all_applied() -> bool:
        return sum(recorder.applied.values()) >= 120

    await eventually(all_applied, timeout=15, what="120 events applied")
    assert set(recorder.applied.values()) == {1}, "an event was applied twice"
    assert len(recorder.applied) == 120
    async with sessionmaker() as session:
        unpublished = await session.scalar(
            select(func.count()).where(OutboxEvent.published_at.is_(None))
        )
    assert unpublished == 0
    # Every stream entry is acknowledged, and the relays published each row exactly once.
    assert await redis_client.xlen(keys.stream) == 120

    async def acked() -> bool:
        return int((await redis_client.xpending(keys.stream, keys.group))["pending"]) == 0

    await eventually(acked, timeout=5, what="all entries acknowledged")


async def test_notify_wakes_the_relay_before_its_poll(
    fs_settings: Callable[..., Settings],
    fs_engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    keys: StreamKeys,
    running: Callable[[Any], None],
) -> None:
    settings = fs_settings()
    relay = Relay(
        sessionmaker=sessionmaker,
        redis=redis_client,
        partitions=[keys],
        database_url=settings.database_url,
        batch_size=50,
        poll_seconds=30.0,  # only LISTEN/NOTIFY can wake it in time
        maxlen=settings.stream_maxlen,
    )
    running(relay)
    await asyncio.sleep(0.3)  # let it LISTEN and go idle
    await emit_touches(sessionmaker, [{"key": "wake"}])
    # As the API does once the writing transaction committed.
    Announcer(fs_engine, WakeSignal()).announce()

    async def published() -> bool:
        return int(await redis_client.xlen(keys.stream)) == 1

    await eventually(published, timeout=3, what="the NOTIFY-woken relay to publish")


async def test_deterministic_failures_are_retried_then_dead_lettered(
    fs_settings: Callable[..., Settings],
    sessionmaker: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    keys: StreamKeys,
    running: Callable[[Any], None],
) -> None:
    settings = fs_settings()
    recorder = Recorder()
    await ensure_group(redis_client, keys)
    # The database answers: a RuntimeError is a deterministic failure, and counts.
    await redis_client.xadd(keys.stream, entry("flaky", fail=2))  # succeeds on attempt 3
    await redis_client.xadd(keys.stream, entry("broken", fail=99))  # never succeeds
    running(make_consumer(settings, sessionmaker, redis_client, recorder, max_deliveries=3))

    async def settled() -> bool:
        # Dead-lettering copies the entry first, then acknowledges it: wait for both.
        pending = await redis_client.xpending(keys.stream, keys.group)
        return (
            recorder.applied["flaky"] == 1
            and int(await redis_client.xlen(keys.dead)) == 1
            and pending["pending"] == 0
        )

    await eventually(settled, timeout=10, what="flaky applied and broken dead-lettered")
    assert recorder.attempts["flaky"] == 3
    assert recorder.attempts["broken"] == 3, "given up after exactly max_deliveries"
    assert recorder.applied["broken"] == 0
    [(_id, dead)] = with_fields(entries_of(await redis_client.xrange(keys.dead)))
    assert dead[DLQ_DELIVERIES] == b"3"
    assert b"failure 3" in dead[DLQ_ERROR]
    assert orjson.loads(dead[ENVELOPE_FIELD])["payload"]["key"] == "broken"
    summary = await redis_client.xpending(keys.stream, keys.group)
    assert summary["pending"] == 0
    # The failure counts of settled entries are gone with them.
    assert await redis_client.exists(keys.failures) == 0


async def test_malformed_entries_are_dead_lettered_and_the_consumer_goes_on(
    fs_settings: Callable[..., Settings],
    sessionmaker: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    keys: StreamKeys,
    running: Callable[[Any], None],
) -> None:
    settings = fs_settings()
    recorder = Recorder()
    running(make_consumer(settings, sessionmaker, redis_client, recorder))
    await ensure_group(redis_client, keys)
    await redis_client.xadd(keys.stream, {b"envelope": b"{not json"})
    await redis_client.xadd(keys.stream, {b"other": b"field"})
    await redis_client.xadd(keys.stream, entry("bad-payload", unexpected=True))
    unknown = Envelope(
        id=uuid.uuid4(), type="test.unknown", occurred_at=utcnow(), version=1, payload={}
    )
    await redis_client.xadd(keys.stream, {ENVELOPE_FIELD: unknown.to_json()})
    await redis_client.xadd(keys.stream, entry("good"))

    async def done() -> bool:
        return recorder.applied["good"] == 1 and int(await redis_client.xlen(keys.dead)) == 4

    await eventually(done, timeout=10, what="4 dead letters and the good event applied")
    dead = with_fields(entries_of(await redis_client.xrange(keys.dead)))
    errors = [fields[DLQ_ERROR] for _id, fields in dead]
    assert all(b"malformed" in e or b"invalid payload" in e or b"no handler" in e for e in errors)
    assert recorder.attempts["bad-payload"] == 0 or recorder.applied["bad-payload"] == 0


async def test_abandoned_entries_are_claimed_and_own_pending_reread(
    fs_settings: Callable[..., Settings],
    sessionmaker: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    keys: StreamKeys,
    running: Callable[[Any], None],
) -> None:
    settings = fs_settings()
    recorder = Recorder()
    await ensure_group(redis_client, keys)
    for i in range(6):
        await redis_client.xadd(keys.stream, entry(f"e{i}"))
    # A consumer that died after reading 3 entries, and one that will come back.
    await redis_client.xreadgroup(keys.group, "dead-one", {keys.stream: ">"}, count=3)
    await redis_client.xreadgroup(keys.group, "comes-back", {keys.stream: ">"}, count=3)
    running(make_consumer(settings, sessionmaker, redis_client, recorder, name="comes-back"))

    async def own_done() -> bool:
        return all(recorder.applied[f"e{i}"] == 1 for i in range(3, 6))

    await eventually(own_done, timeout=3, what="own pending entries re-read at start")
    assert all(recorder.applied[f"e{i}"] == 0 for i in range(3)), "claimed before idle"
    running(make_consumer(settings, sessionmaker, redis_client, recorder, claim_idle_ms=500))

    async def claimed() -> bool:
        return all(recorder.applied[f"e{i}"] == 1 for i in range(6))

    await eventually(claimed, timeout=10, what="abandoned entries taken over")
    assert sum(recorder.applied.values()) == 6


async def test_consumer_and_relay_survive_redis_restarts(
    fs_settings: Callable[..., Settings],
    sessionmaker: async_sessionmaker[AsyncSession],
    private_redis: PrivateRedis,
    running: Callable[[Any], None],
    redis_prefix: str,
) -> None:
    settings = fs_settings(redis_url=private_redis.url)
    recorder = Recorder()
    client = aioredis.Redis.from_url(private_redis.url, socket_connect_timeout=0.5)
    try:
        running(make_relay(settings, sessionmaker, client))
        running(make_consumer(settings, sessionmaker, client, recorder))
        await emit_touches(sessionmaker, [{"key": "before"}])

        async def first() -> bool:
            return recorder.applied["before"] == 1

        await eventually(first, timeout=5, what="the first event")
        private_redis.kill()
        await emit_touches(sessionmaker, [{"key": f"during{i}"} for i in range(5)])
        await asyncio.sleep(0.5)  # relay and consumer now fail and back off
        assert sum(recorder.applied.values()) == 1
        private_redis.start()  # empty: the group is recreated by whoever comes first

        async def all_done() -> bool:
            return all(recorder.applied[f"during{i}"] == 1 for i in range(5))

        await eventually(all_done, timeout=15, what="events written while Redis was down")
        assert set(recorder.applied.values()) == {1}
        assert await processed_count(sessionmaker) == 6
    finally:
        await client.aclose()
    del redis_prefix


async def test_notifies_are_coalesced_and_one_always_follows_the_last_commit(
    fs_settings: Callable[..., Settings], fs_engine: AsyncEngine
) -> None:
    received: list[float] = []
    url = make_url(fs_settings().database_url).set(drivername="postgresql")
    listener = await asyncpg.connect(url.render_as_string(hide_password=False))
    await listener.add_listener(NOTIFY_CHANNEL, lambda *_: received.append(time.monotonic()))
    try:
        announcer = Announcer(fs_engine, WakeSignal())
        for _ in range(200):  # a burst of commits: one NOTIFY covers them all
            announcer.announce()
        await announcer.close()
        assert announcer.sent == 1
        # Commits while a NOTIFY is in flight get exactly one more, sent after them.
        announcer.announce()
        await asyncio.sleep(0)  # the NOTIFY is now on its way
        last_commit = time.monotonic()
        for _ in range(50):
            announcer.announce()
        await announcer.close()
        assert announcer.sent == 3

        async def all_arrived() -> bool:
            return len(received) == 3

        await eventually(all_arrived, timeout=3, what="three notifications")
        assert received[-1] > last_commit
    finally:
        await listener.close()


async def test_a_backlog_is_applied_in_batches_larger_than_the_concurrency(
    fs_settings: Callable[..., Settings],
    sessionmaker: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    keys: StreamKeys,
    running: Callable[[Any], None],
) -> None:
    settings = fs_settings()
    recorder = Recorder()
    batches: list[int] = []

    @recorder.registry.on_batch("test.touch", name="test.touch")
    async def handle_many(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        batches.append(len(envelopes))
        for envelope in envelopes:
            await recorder.handle(session, envelope)

    await ensure_group(redis_client, keys)
    for i in range(60):
        await redis_client.xadd(keys.stream, entry(f"k{i}"))
    consumer = make_consumer(settings, sessionmaker, redis_client, recorder, batch_size=25)
    running(consumer)

    async def all_applied() -> bool:
        return sum(recorder.applied.values()) == 60 and consumer.in_flight == 0

    await eventually(all_applied, timeout=10, what="the backlog applied")
    # Reads of a batch's worth, not of the 4 free slots: 25 + 25 + 10.
    assert batches == [25, 25, 10]
    assert await processed_count(sessionmaker) == 60
    pending = await redis_client.xpending(keys.stream, keys.group)
    assert int(pending["pending"]) == 0


@pytest.mark.parametrize(
    ("payload", "request_id", "micros"),
    [({"order_id": 7}, "req-1", 615253), ({"a": [1, "✓"], "b": None}, None, 0)],
)
def test_the_relays_wire_form_is_the_envelopes(
    payload: dict[str, Any], request_id: str | None, micros: int
) -> None:
    columns: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": "order.created",
        "occurred_at": datetime(2026, 11, 26, 17, 40, 45, micros, tzinfo=UTC),
        "version": 1,
        "request_id": request_id,
    }
    model = envelope_of(payload=payload, **columns).to_json()
    # The relay gets the payload as a dict (SQLAlchemy) or as JSON text (the driver).
    assert envelope_json(payload=payload, **columns) == model
    assert envelope_json(payload=orjson.dumps(payload).decode(), **columns) == model


async def test_the_relay_publishes_from_sqlite_too(
    tmp_path: Path, redis_client: aioredis.Redis, keys: StreamKeys
) -> None:
    # The full-stack shape is PostgreSQL's; a worker on the embedded database still relays.
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")
    await upgrade(settings)
    engine = make_engine(settings)
    try:
        sessionmaker = make_sessionmaker(engine)
        await emit_touches(sessionmaker, [{"key": "first"}, {"key": "second"}])
        relay = Relay(
            sessionmaker=sessionmaker,
            redis=redis_client,
            partitions=[keys],
            database_url=settings.database_url,
            batch_size=50,
            poll_seconds=30.0,
            maxlen=settings.stream_maxlen,
        )
        assert await relay.publish_batch() == 2
        assert await relay.publish_batch() == 0
        entries = with_fields(read_entries(await redis_client.xread({keys.stream: "0"})))
        keys_sent = [
            Envelope.from_json(fields[ENVELOPE_FIELD]).payload["key"] for _, fields in entries
        ]
        assert keys_sent == ["first", "second"]
        async with sessionmaker() as session:
            assert await backlog(session) == 0
    finally:
        await engine.dispose()
