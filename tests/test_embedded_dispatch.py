"""The embedded dispatcher follows the stream consumer's failure rule, on both databases:
transient failures never count toward `attempts`, deterministic ones do, and a row waiting
for its retry holds the rows after it back."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.config import Settings
from taskhub.db import make_engine, make_sessionmaker
from taskhub.errors import ConcurrentUpdate, ServiceUnavailable
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.embedded import EmbeddedDispatcher
from taskhub.messaging.envelope import Envelope
from taskhub.messaging.outbox import emit
from taskhub.messaging.signal import WakeSignal
from taskhub.models import OutboxEvent

FAILURES: dict[str, tuple[int, Callable[[], Exception]]] = {
    "down": (5, lambda: ServiceUnavailable("database is locked")),
    "deadlock": (5, ConcurrentUpdate),
    "broken": (99, lambda: RuntimeError("bug")),
}


@pytest.fixture
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the current shape's database."""
    engine = make_engine(settings)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_transient_failures_do_not_count_and_nothing_waits_behind_them(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    attempts: Counter[str] = Counter()
    applied: list[str] = []
    registry = Registry()

    @registry.on("test.touch", name="test.touch")
    async def handle(_session: AsyncSession, envelope: Envelope) -> None:
        key = str(envelope.payload["key"])
        attempts[key] += 1
        times, error = FAILURES.get(key, (0, RuntimeError))
        if attempts[key] <= times:
            raise error()
        applied.append(key)

    async with sessionmaker() as session, session.begin():
        for key in ("down", "deadlock", "broken", "fine"):
            await emit(session, type="test.touch", payload={"key": key})
    signal = WakeSignal()
    dispatcher = EmbeddedDispatcher(
        sessionmaker=sessionmaker,
        registry=registry,
        signal=signal,
        poll_seconds=0.05,
        jobs_every_seconds=60,
        max_attempts=2,
        retry_base_seconds=0.01,
        retry_cap_seconds=0.2,
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(20):
            while len(applied) < 3 or attempts["broken"] < 2:
                await asyncio.sleep(0.05)
    finally:
        dispatcher.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    # The row after the failing ones did not wait for their retries.
    assert applied[0] == "fine"
    assert sorted(applied) == ["deadlock", "down", "fine"]
    assert attempts["down"] == 6 and attempts["deadlock"] == 6
    async with sessionmaker() as session:
        rows = {
            row.payload["key"]: row for row in (await session.scalars(select(OutboxEvent))).all()
        }
    assert rows["down"].attempts == 0 and rows["down"].dead_at is None
    assert rows["deadlock"].attempts == 0 and rows["deadlock"].dead_at is None
    assert rows["broken"].attempts == 2 and rows["broken"].dead_at is not None
    assert "bug" in (rows["broken"].last_error or "")
    assert all(row.published_at is not None for row in rows.values())
