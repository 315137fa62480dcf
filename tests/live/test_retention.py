"""The outbox keeps published events for the replay window (and, on the full stack, the
republish window), then the periodic job purges them; unpublished rows and dead letters
stay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.config import Settings
from taskhub.db import make_engine, make_sessionmaker, utcnow
from taskhub.events import build_registry, outbox_retention
from taskhub.messaging.outbox import emit
from taskhub.messaging.retention import OutboxPurge
from taskhub.models import OutboxEvent
from tests.conftest import make_settings


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(settings)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def add_event(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    *,
    age: timedelta,
    published: bool = True,
    dead: bool = False,
) -> None:
    async with sessions() as session, session.begin():
        row_id = await emit(session, type="test.retention", payload={"name": name})
        now = utcnow()
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == row_id)
            .values(
                occurred_at=now - age,
                published_at=now - age if published else None,
                dead_at=now - age if dead else None,
            )
        )


async def names(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(select(OutboxEvent.payload).order_by(OutboxEvent.id))
        return [row["name"] for row in rows]


async def test_published_events_past_the_window_are_purged(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    hour = timedelta(hours=1)
    await add_event(sessions, "dead letter", age=3 * hour, dead=True)
    for n in range(5):
        await add_event(sessions, f"old {n}", age=2 * hour)
    await add_event(sessions, "old, not yet published", age=2 * hour, published=False)
    await add_event(sessions, "old again", age=2 * hour)
    await add_event(sessions, "recent", age=timedelta(minutes=59))
    await add_event(sessions, "new, not yet published", age=timedelta(0), published=False)
    # Small windows: the walk goes on past windows that end in old rows.
    purge = OutboxPurge(keep=hour, batch=2)
    assert await purge(sessions) == 6
    assert await names(sessions) == [
        "dead letter",
        "old, not yet published",
        "recent",
        "new, not yet published",
    ]
    assert await purge(sessions) == 0


def test_the_retention_covers_every_reader_of_published_events() -> None:
    embedded = make_settings(live_replay_window=timedelta(hours=1))
    assert outbox_retention(embedded) == timedelta(hours=1)
    full = make_settings(redis_url="redis://localhost", live_replay_window=timedelta(hours=1))
    assert outbox_retention(full) == full.stream_republish_window == timedelta(hours=24)
    longer = make_settings(redis_url="redis://localhost", live_replay_window=timedelta(days=2))
    assert outbox_retention(longer) == timedelta(days=2)
    assert "outbox.purge" in [name for name, _ in build_registry(embedded).jobs]
    assert make_settings(live_replay_window="PT30M").live_replay_window == timedelta(minutes=30)
    assert make_settings(live_replay_window="90").live_replay_window == timedelta(seconds=90)
