"""GET /api/v2/orders/events: a user's order events, live, in order, and nobody else's."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from tests.factories import Actor, make_user
from tests.live.conftest import emit_event, make_product, place_order
from tests.live.sse import EventStream, open_stream, refused

EVENTS = "/api/v2/orders/events"
OUTCOMES = frozenset({"order.reserved", "order.failed"})


async def test_one_orders_events_arrive_in_order(
    live_app: FastAPI, http: httpx.AsyncClient, admin: Actor
) -> None:
    user = await make_user(live_app, http)
    product = await make_product(http, admin)
    async with open_stream(http, EVENTS, headers=user.headers) as stream:
        order_id = await place_order(http, user, product)
        # The order's later events, each in a transaction of its own, as fast as they come.
        for step in range(20):
            await emit_event(
                live_app, "order.step", {"order_id": order_id, "user_id": user.id, "step": step}
            )
        cancelled = await http.post(f"/api/v2/orders/{order_id}/cancel", headers=user.headers)
        assert cancelled.status_code == 200, cancelled.text
        # The reservation's outcome comes from the dispatcher, whenever it gets there.
        messages = await stream.take_until("order.cancelled", skip=OUTCOMES)
    assert [m.event for m in messages] == ["order.created"] + ["order.step"] * 20 + [
        "order.cancelled"
    ]
    assert [m.envelope["payload"].get("step") for m in messages[1:21]] == list(range(20))
    for message in messages:
        envelope = message.envelope
        assert message.id == envelope["id"] and message.event == envelope["type"]
        assert envelope["payload"]["order_id"] == order_id
        assert {"occurred_at", "version", "request_id"} <= envelope.keys()
    assert len({m.id for m in messages}) == 22


async def test_another_users_order_events_never_arrive(
    live_app: FastAPI, http: httpx.AsyncClient, admin: Actor
) -> None:
    alice, bob = await make_user(live_app, http), await make_user(live_app, http)
    product = await make_product(http, admin)
    async with (
        open_stream(http, EVENTS, headers=alice.headers) as alices,
        open_stream(http, EVENTS, headers=bob.headers) as bobs,
        open_stream(http, EVENTS, headers=admin.headers) as admins,
    ):
        mine = {alice.id: [], bob.id: []}  # type: dict[int, list[int]]
        for actor in (alice, bob, bob, alice, bob):
            mine[actor.id].append(await place_order(http, actor, product))
        # Events that name their owner (the contract's payloads) and events that do not (an
        # order's owner is then looked up): both kinds go to the owner only.
        await emit_event(live_app, "order.noted", {"order_id": mine[bob.id][0], "user_id": bob.id})
        await emit_event(live_app, "order.noted", {"order_id": mine[alice.id][0]})
        # The last event of all is Alice's: once it is in, Alice has seen everything of hers.
        await emit_event(live_app, "order.noted", {"order_id": mine[alice.id][1]})
        # Each of her orders: order.created (and its reservation's outcome, skipped).
        alice_got = await alices.take_until("order.noted", skip=OUTCOMES)
        alice_got += await alices.take_until("order.noted", skip=OUTCOMES)
        bob_got = await bobs.take_until("order.noted", skip=OUTCOMES)
        admin_got = await admins.take_until("order.noted", skip=OUTCOMES)
        while len([m for m in admin_got if m.event == "order.noted"]) < 3:
            admin_got += await admins.take_until("order.noted", skip=OUTCOMES)
        # Nothing else is on its way to either of them.
        await emit_event(live_app, "order.noted", {"order_id": mine[bob.id][2]})
        bobs_last = await bobs.take_until("order.noted", skip=OUTCOMES)
        assert bobs_last[-1].envelope["payload"]["order_id"] == mine[bob.id][2]
        bob_got += bobs_last[:-1]
        await quiet_outcomes(alices)
        assert alices.messages.empty()
    assert {m.envelope["payload"]["order_id"] for m in alice_got} == set(mine[alice.id])
    assert {m.envelope["payload"]["order_id"] for m in bob_got} == set(mine[bob.id])
    assert [m.event for m in alice_got].count("order.noted") == 2
    assert all(m.envelope["payload"].get("user_id") in (None, alice.id) for m in alice_got)
    assert {m.envelope["payload"]["order_id"] for m in admin_got} == set(
        mine[alice.id] + mine[bob.id]
    )


async def quiet_outcomes(stream: EventStream) -> None:
    """Nothing but outcome events (of the stream's own orders) is left for the stream."""
    while not stream.messages.empty():
        message = await stream.next()
        assert message is not None and message.event in OUTCOMES, message


async def test_a_stream_needs_a_valid_token(live_app: FastAPI, http: httpx.AsyncClient) -> None:
    user = await make_user(live_app, http)
    assert (await refused(http, EVENTS)).status_code == 401
    bad = await refused(http, EVENTS, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert (await http.post("/api/v1/auth/logout", headers=user.headers)).status_code == 204
    assert (await refused(http, EVENTS, headers=user.headers)).status_code == 401


async def test_an_idle_stream_gets_keep_alive_comments(
    live_app: FastAPI, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_app, http)
    async with open_stream(http, EVENTS, headers=user.headers) as stream:
        async with asyncio.timeout(20):
            while "keep-alive" not in stream.comments:
                await asyncio.sleep(0.05)
        response = stream.response
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-accel-buffering"] == "no"
        assert stream.messages.empty()
