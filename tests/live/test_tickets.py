"""POST /api/v1/auth/stream-ticket: tickets open one stream each, within 60 s, as their
token's user, and only while that token is valid."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from taskhub.auth.stream_tickets import purge_expired_tickets
from taskhub.config import Settings
from taskhub.db import utcnow
from taskhub.models import StreamTicket
from tests.factories import Actor, make_user
from tests.live.conftest import LIVE_SETTINGS, emit_event
from tests.live.sse import open_stream, refused, served

TICKET = "/api/v1/auth/stream-ticket"
EVENTS = "/api/v2/orders/events"


async def ticket_of(client: httpx.AsyncClient, actor: Actor) -> str:
    response = await client.post(TICKET, headers=actor.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"ticket", "expires_in"} and 0 < body["expires_in"] <= 60
    ticket: str = body["ticket"]
    return ticket


async def test_a_ticket_opens_one_stream_of_its_users_events(
    live_app: FastAPI, http: httpx.AsyncClient
) -> None:
    alice, bob = await make_user(live_app, http), await make_user(live_app, http)
    ticket = await ticket_of(http, alice)
    async with open_stream(http, EVENTS, params={"ticket": ticket}) as stream:
        await emit_event(live_app, "order.created", {"order_id": 1, "user_id": bob.id})
        await emit_event(live_app, "order.created", {"order_id": 2, "user_id": alice.id})
        (message,) = await stream.take(1)
        assert message.envelope["payload"]["order_id"] == 2
        # Used: it opens nothing else, on any stream.
        again = await refused(http, EVENTS, params={"ticket": ticket})
        assert again.status_code == 401, again.text
        assert again.json()["detail"] == "The stream ticket is unknown, used or expired"
    assert (await refused(http, EVENTS, params={"ticket": "forged"})).status_code == 401


@pytest.fixture
async def quiet_app(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> FastAPI:
    """The live app with its periodic jobs not due again for an hour (if the dispatcher has
    not run them yet, this does): its own ticket purge cannot race the test's."""
    started: FastAPI = await app_factory(
        settings_factory(**LIVE_SETTINGS, expiry_sweep_seconds=3600)
    )
    await started.state.dispatcher.run_jobs_if_due()
    return started


@pytest.fixture
async def quiet_http(quiet_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with served(quiet_app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def test_an_expired_ticket_is_refused(
    quiet_app: FastAPI, quiet_http: httpx.AsyncClient
) -> None:
    live_app, http = quiet_app, quiet_http
    user = await make_user(live_app, http)
    ticket = await ticket_of(http, user)
    async with live_app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(StreamTicket).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await refused(http, EVENTS, params={"ticket": ticket})).status_code == 401
    # The periodic job forgets expired tickets.
    assert await purge_expired_tickets(live_app.state.sessionmaker) == 1
    async with live_app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(StreamTicket)) == 0


async def test_a_ticket_is_bound_to_its_tokens_validity(
    live_app: FastAPI, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_app, http)
    ticket = await ticket_of(http, user)
    second = await ticket_of(http, user)
    assert (await http.post("/api/v1/auth/logout", headers=user.headers)).status_code == 204
    # The ticket of a logged-out token is refused, and that token gets no new one.
    assert (await refused(http, EVENTS, params={"ticket": ticket})).status_code == 401
    assert (await refused(http, EVENTS, params={"ticket": second})).status_code == 401
    assert (await http.post(TICKET, headers=user.headers)).status_code == 401
    # A new login's tickets work.
    login = await http.post(
        "/api/v1/auth/login/access-token", data={"username": user.email, "password": user.password}
    )
    fresh = Actor(user.id, user.email, user.password, login.json()["access_token"])
    async with open_stream(http, EVENTS, params={"ticket": await ticket_of(http, fresh)}):
        pass


async def test_a_deactivated_users_ticket_is_refused(
    live_app: FastAPI, http: httpx.AsyncClient
) -> None:
    admin = await make_user(live_app, http, is_superuser=True)
    user = await make_user(live_app, http)
    ticket = await ticket_of(http, user)
    r = await http.patch(
        f"/api/v1/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert (await refused(http, EVENTS, params={"ticket": ticket})).status_code == 401


async def test_a_ticket_needs_a_token(http: httpx.AsyncClient) -> None:
    refused = await http.post(TICKET)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
