"""The handler registry: every type of the event contract is known (the webhook fan-out
handles those no domain handler reacts to) and applied, in one transaction per batch when
every handler has a batch form; a type nobody declared is still malformed; after-commit hooks
see what a handler transaction wrote; each handler applies an event once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.config import Settings
from taskhub.db import make_engine, make_sessionmaker
from taskhub.events import build_registry
from taskhub.messaging.dispatch import (
    MalformedEvent,
    Outcome,
    Registry,
    apply_batch,
    apply_event,
)
from taskhub.messaging.envelope import Envelope
from taskhub.orders.events import ORDER_EVENTS
from taskhub.projects.events import PROJECT_EVENTS


@pytest.fixture
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the current shape's database."""
    engine = make_engine(settings)
    yield make_sessionmaker(engine)
    await engine.dispose()


def envelope(event_type: str, **payload: Any) -> Envelope:
    return Envelope(
        id=uuid4(), type=event_type, occurred_at=datetime.now(UTC), version=1, payload=payload
    )


def test_every_contract_type_is_known_and_reaches_the_fan_out_first(settings: Settings) -> None:
    registry = build_registry(settings)
    for event_type in (*ORDER_EVENTS, *PROJECT_EVENTS):
        names = [r.name for r in registry.registrations(event_type)]
        assert names[0] == "webhooks.fanout", event_type
        # The release handler of order.cancelled has no batch form.
        assert registry.batchable(event_type) is (event_type != "order.cancelled"), event_type
    assert [r.name for r in registry.registrations("order.created")] == [
        "webhooks.fanout",
        "orders.reserve",
    ]
    counts = registry.handlers_per_type()
    assert counts["order.created"] == counts["order.cancelled"] == 2
    assert counts["task.updated"] == counts["order.paid"] == 1
    assert registry.registrations("order.shipped") == []
    assert registry.registrations("webhook.test") == []  # never through the pipeline


async def test_declared_types_apply_and_unknown_ones_are_malformed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    seen: list[tuple[str, str]] = []
    committed: list[bool] = []
    registry = Registry()
    registry.declare("thing.happened")

    @registry.on_every(name="test.every")
    async def every(session: AsyncSession, event: Envelope) -> None:
        seen.append(("every", event.type))
        session.info["noted"] = True

    @registry.on("other.happened", name="test.domain")
    async def domain(_session: AsyncSession, event: Envelope) -> None:
        seen.append(("domain", event.type))

    registry.after_commit(lambda info: committed.append(bool(info.get("noted"))))
    declared = envelope("thing.happened")
    assert await apply_event(sessionmaker, registry, declared) is Outcome.APPLIED
    assert await apply_event(sessionmaker, registry, declared) is Outcome.DUPLICATE
    assert await apply_event(sessionmaker, registry, envelope("other.happened")) is Outcome.APPLIED
    with pytest.raises(MalformedEvent, match="no handler"):
        await apply_event(sessionmaker, registry, envelope("nobody.knows"))
    assert seen == [
        ("every", "thing.happened"),
        ("every", "other.happened"),
        ("domain", "other.happened"),
    ]
    assert committed == [True, True, False]


async def test_a_batch_runs_every_handler_in_one_transaction_or_none(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ran: list[tuple[str, int]] = []
    registry = Registry()

    @registry.on_every_batch(name="test.every")
    async def every(_session: AsyncSession, events: Sequence[Envelope]) -> None:
        ran.append(("every", len(events)))

    @registry.on_batch("x.done", name="test.domain")
    async def domain(_session: AsyncSession, events: Sequence[Envelope]) -> None:
        ran.append(("domain", len(events)))
        if any(e.payload.get("poison") for e in events):
            raise RuntimeError("poison")

    registry.on_every(name="test.every")(lambda _s, _e: _never())
    registry.on("x.done", name="test.domain")(lambda _s, _e: _never())
    assert registry.batchable("x.done")
    poisoned = [envelope("x.done"), envelope("x.done", poison=True)]
    with pytest.raises(RuntimeError):
        await apply_batch(sessionmaker, registry, poisoned)
    # Nothing was recorded: the same events apply afterwards, all of them.
    good = [envelope("x.done"), envelope("x.done")]
    await apply_batch(sessionmaker, registry, [poisoned[0], *good])
    await apply_batch(sessionmaker, registry, good)  # a redelivery: nothing runs
    assert ran == [("every", 2), ("domain", 2), ("every", 3), ("domain", 3)]


async def _never() -> None:
    raise AssertionError("the single form must not run in a batch")
