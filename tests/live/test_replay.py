"""Last-Event-ID: a stream that reconnects gets the events it missed (the last hour), in
order and once each, then the live ones, with nothing lost in between."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from taskhub.db import utcnow
from taskhub.models import OutboxEvent
from tests.factories import Actor, make_user
from tests.live.conftest import emit_event, quiet
from tests.live.sse import open_stream, refused

EVENTS = "/api/v2/orders/events"


async def emit_steps(app: FastAPI, user: Actor, steps: range) -> None:
    for step in steps:
        await emit_event(app, "order.step", {"order_id": 1, "user_id": user.id, "step": step})


def steps_of(messages: list) -> list[int]:  # type: ignore[type-arg]
    return [m.envelope["payload"]["step"] for m in messages]


async def test_last_event_id_resumes_with_no_gap_and_no_duplicate(
    live_app: FastAPI, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_app, http)
    async with open_stream(http, EVENTS, headers=user.headers) as first:
        await emit_steps(live_app, user, range(0, 5))
        seen = await first.take(5)
    assert steps_of(seen) == list(range(5))
    # Missed while disconnected:
    await emit_steps(live_app, user, range(5, 15))
    # Events keep coming while the stream reconnects and replays: each must arrive once.
    writer = asyncio.create_task(emit_steps(live_app, user, range(15, 40)))
    headers = {**user.headers, "Last-Event-ID": seen[-1].event_id}
    async with open_stream(http, EVENTS, headers=headers) as second:
        await writer
        resumed = await second.take(35)
        await emit_steps(live_app, user, range(40, 41))
        assert steps_of([await second.next()]) == [40]
        assert second.messages.empty()
    assert steps_of(resumed) == list(range(5, 40))
    assert len({m.id for m in seen + resumed}) == 40


async def test_the_query_parameter_resumes_too(live_app: FastAPI, http: httpx.AsyncClient) -> None:
    user = await make_user(live_app, http)
    async with open_stream(http, EVENTS, headers=user.headers) as first:
        await emit_steps(live_app, user, range(0, 3))
        seen = await first.take(3)
    await emit_steps(live_app, user, range(3, 6))
    params = {"last_event_id": seen[0].event_id}
    async with open_stream(http, EVENTS, headers=user.headers, params=params) as second:
        assert steps_of(await second.take(5)) == [1, 2, 3, 4, 5]


async def test_replay_shows_only_the_callers_events_of_the_last_hour(
    live_app: FastAPI, http: httpx.AsyncClient
) -> None:
    user, other = await make_user(live_app, http), await make_user(live_app, http)
    async with open_stream(http, EVENTS, headers=user.headers) as first:
        await emit_steps(live_app, user, range(0, 1))
        (seen,) = await first.take(1)
    await emit_event(live_app, "order.step", {"order_id": 2, "user_id": other.id, "step": -1})
    await emit_event(live_app, "task.step", {"project_id": 1, "user_id": user.id, "step": -2})
    await emit_steps(live_app, user, range(1, 3))
    # An event of two hours ago is past the replay window (LIVE_REPLAY_WINDOW).
    await emit_steps(live_app, user, range(3, 4))
    async with live_app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.payload["step"].as_integer() == 3)
            .values(occurred_at=utcnow() - timedelta(hours=2))
        )
    await emit_steps(live_app, user, range(4, 5))
    await quiet(live_app)
    headers = {**user.headers, "Last-Event-ID": seen.event_id}
    async with open_stream(http, EVENTS, headers=headers) as second:
        replayed = await second.take(3)
        assert second.messages.empty()
    assert steps_of(replayed) == [1, 2, 4]


async def test_an_unknown_last_event_id_replays_the_whole_window(
    live_app: FastAPI, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_app, http)
    await emit_steps(live_app, user, range(0, 4))
    headers = {**user.headers, "Last-Event-ID": "00000000-0000-4000-8000-000000000000"}
    async with open_stream(http, EVENTS, headers=headers) as stream:
        assert steps_of(await stream.take(4)) == [0, 1, 2, 3]


async def test_a_malformed_last_event_id_is_refused(
    live_app: FastAPI, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_app, http)
    answer = await refused(http, EVENTS, headers={**user.headers, "Last-Event-ID": "42"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["header", "Last-Event-ID"]
