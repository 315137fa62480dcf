"""Operating the pipeline: /metrics gauges, the `taskhub dlq` commands, `taskhub worker`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from typer.testing import CliRunner

from taskhub.cli import app as cli
from taskhub.config import Settings
from taskhub.db import make_sessionmaker, utcnow
from taskhub.messaging.deadletters import DLQ_DELIVERIES, DLQ_ERROR
from taskhub.messaging.envelope import Envelope
from taskhub.messaging.outbox import emit
from taskhub.messaging.streams import ENVELOPE_FIELD, StreamKeys, as_str, ensure_group, entries_of
from taskhub.models import OutboxEvent
from tests.conftest import client_for
from tests.fullstack.replies import with_fields
from tests.processes import SECRET

pytestmark = [pytest.mark.redis]


def dead_fields(key: str) -> dict[FieldT, EncodableT]:
    envelope = Envelope(
        id=uuid.uuid4(), type="test.touch", occurred_at=utcnow(), version=1, payload={"k": key}
    )
    return {
        ENVELOPE_FIELD: envelope.to_json(),
        DLQ_ERROR: b"RuntimeError('boom')",
        DLQ_DELIVERIES: b"5",
    }


def cli_env(**values: str | None) -> dict[str, str | None]:
    return {"ENVIRONMENT": "test", "SECRET_KEY": SECRET, **values}


@pytest.mark.pg
async def test_metrics_show_outbox_backlog_stream_lag_and_dead_letters(
    fs_settings: Callable[..., Settings],
    fs_engine: AsyncEngine,
    fs_app_factory: Callable[[Settings], Any],
    redis_client: aioredis.Redis,
) -> None:
    settings = fs_settings()
    keys = StreamKeys(settings.redis_prefix)
    async with make_sessionmaker(fs_engine)() as session, session.begin():
        for _ in range(3):
            await emit(session, type="test.touch", payload={})
    await ensure_group(redis_client, keys)
    for _ in range(2):
        await redis_client.xadd(keys.stream, {ENVELOPE_FIELD: b"{}"})
    await redis_client.xadd(keys.dead, dead_fields("x"))
    app = await fs_app_factory(settings)
    async with client_for(app) as client:
        body = (await client.get("/metrics")).text
    assert "taskhub_outbox_backlog 3.0" in body
    assert f'taskhub_stream_lag{{group="{keys.group}",stream="{keys.stream}"}} 2.0' in body
    assert f'taskhub_stream_pending{{group="{keys.group}",stream="{keys.stream}"}} 0.0' in body
    assert f'taskhub_dead_letters{{stream="{keys.dead}"}} 1.0' in body


def test_dlq_commands_on_the_dead_letter_stream(redis_server: str, redis_prefix: str) -> None:
    import asyncio

    keys = StreamKeys(redis_prefix)
    env = cli_env(REDIS_URL=redis_server, REDIS_PREFIX=redis_prefix)

    async def setup() -> list[str]:
        client = aioredis.Redis.from_url(redis_server)
        try:
            return [as_str(await client.xadd(keys.dead, dead_fields(k))) for k in ("a", "b", "c")]
        finally:
            await client.aclose()

    async def lengths() -> tuple[int, int]:
        client = aioredis.Redis.from_url(redis_server)
        try:
            return int(await client.xlen(keys.stream)), int(await client.xlen(keys.dead))
        finally:
            await client.aclose()

    ids = asyncio.run(setup())
    runner = CliRunner()
    listed = runner.invoke(cli, ["dlq", "list", "--limit", "2"], env=env)
    assert listed.exit_code == 0, listed.output
    assert ids[0] in listed.output and ids[1] in listed.output and ids[2] not in listed.output
    assert "boom" in listed.output

    replayed = runner.invoke(cli, ["dlq", "replay", ids[0]], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert asyncio.run(lengths()) == (1, 2)

    async def replayed_fields() -> dict[bytes, bytes]:
        client = aioredis.Redis.from_url(redis_server)
        try:
            [(_id, fields)] = with_fields(entries_of(await client.xrange(keys.stream)))
            return dict(fields)
        finally:
            await client.aclose()

    fields = asyncio.run(replayed_fields())
    assert set(fields) == {ENVELOPE_FIELD}, "the dlq.* fields are stripped on replay"

    assert runner.invoke(cli, ["dlq", "drop", ids[1]], env=env).exit_code == 0
    assert asyncio.run(lengths()) == (1, 1)
    assert runner.invoke(cli, ["dlq", "replay", "--all"], env=env).exit_code == 0
    assert asyncio.run(lengths()) == (2, 0)
    missing = runner.invoke(cli, ["dlq", "drop", ids[2]], env=env)
    assert missing.exit_code == 1
    assert runner.invoke(cli, ["dlq", "drop"], env=env).exit_code != 0, "needs ID or --all"


def test_dlq_commands_on_embedded_dead_outbox_rows(sqlite_database_url: str) -> None:
    import asyncio

    env = cli_env(DATABASE_URL=sqlite_database_url)

    async def setup() -> list[int]:
        engine = create_async_engine(sqlite_database_url)
        try:
            sessionmaker = make_sessionmaker(engine)
            async with sessionmaker() as session, session.begin():
                ids = [await emit(session, type="test.touch", payload={}) for _ in range(2)]
                await session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(ids))
                    .values(dead_at=utcnow(), published_at=utcnow(), attempts=5, last_error="x")
                )
            return ids
        finally:
            await engine.dispose()

    async def rows() -> list[tuple[int, bool, bool, int]]:
        engine = create_async_engine(sqlite_database_url)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(
                    select(
                        OutboxEvent.id,
                        OutboxEvent.dead_at.is_not(None),
                        OutboxEvent.published_at.is_not(None),
                        OutboxEvent.attempts,
                    ).order_by(OutboxEvent.id)
                )
                return [(id_, dead, published, tries) for id_, dead, published, tries in result]
        finally:
            await engine.dispose()

    ids = asyncio.run(setup())
    try:
        runner = CliRunner()
        listed = runner.invoke(cli, ["dlq", "list"], env=env)
        assert listed.exit_code == 0, listed.output
        assert all(f"{i} " in listed.output for i in ids), listed.output
        assert runner.invoke(cli, ["dlq", "replay", str(ids[0])], env=env).exit_code == 0
        assert asyncio.run(rows()) == [(ids[0], False, False, 0), (ids[1], True, True, 5)]
        assert runner.invoke(cli, ["dlq", "drop", "--all"], env=env).exit_code == 0
        assert asyncio.run(rows()) == [(ids[0], False, False, 0)]
    finally:
        from tests.conftest import clean_tables

        asyncio.run(clean_tables(sqlite_database_url))


def test_worker_refuses_to_start_without_redis() -> None:
    result = CliRunner().invoke(cli, ["worker"], env=cli_env(REDIS_URL=None))
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.output
