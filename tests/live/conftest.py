"""Fixtures of the live-stream tests: the app of each shape served over real HTTP, with
short keep-alive and re-check intervals, and helpers that write events and orders."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from taskhub.config import Settings
from taskhub.messaging.outbox import emit
from taskhub.models import OutboxEvent
from tests.factories import Actor, make_user
from tests.live.sse import served

_sku = itertools.count(1)
LIVE_SETTINGS: dict[str, Any] = {"live_keepalive_seconds": 0.3, "live_recheck_seconds": 0.1}


@pytest.fixture
async def live_app(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> FastAPI:
    """The app of the current shape (embedded dispatch, on SQLite or PostgreSQL), started."""
    started: FastAPI = await app_factory(settings_factory(**LIVE_SETTINGS))
    return started


@pytest.fixture
async def http(live_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app served on a real port."""
    async with served(live_app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def emit_event(app: FastAPI, event_type: str, payload: dict[str, Any]) -> None:
    """Write one event into the outbox in a transaction of its own, as a service would, and
    wake the dispatcher (the events other branches of the code emit are written so)."""
    async with app.state.sessionmaker() as session, session.begin():
        await emit(session, type=event_type, payload=payload)
    app.state.announcer.announce()


async def quiet(app: FastAPI) -> None:
    """Wait until the dispatcher has read every event written and no stream is open: what
    a stream opened next gets live was written after."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        async with app.state.sessionmaker() as session:
            backlog = await session.scalar(
                select(func.count()).where(OutboxEvent.published_at.is_(None))
            )
        if not backlog and not app.state.live.has_subscribers:
            return
        assert asyncio.get_running_loop().time() < deadline, "the outbox never drained"
        await asyncio.sleep(0.02)


async def make_product(client: httpx.AsyncClient, admin: Actor, *, stock: int = 1000) -> int:
    """A product, created by a site admin."""
    response = await client.post(
        "/api/v2/products",
        json={"sku": f"LIVE-{next(_sku)}", "name": "Live", "price_cents": 250, "stock": stock},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    product_id: int = response.json()["id"]
    return product_id


async def place_order(client: httpx.AsyncClient, actor: Actor, product_id: int) -> int:
    """An order of one unit."""
    response = await client.post(
        "/api/v2/orders",
        json={"items": [{"product_id": product_id, "quantity": 1}]},
        headers=actor.headers,
    )
    assert response.status_code == 201, response.text
    order_id: int = response.json()["id"]
    return order_id


@pytest.fixture
async def admin(live_app: FastAPI, http: httpx.AsyncClient) -> Actor:
    """A site admin."""
    return await make_user(live_app, http, is_superuser=True)
