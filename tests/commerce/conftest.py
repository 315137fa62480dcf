"""Commerce fixtures: an admin, a customer, products, and pipeline helpers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Actor, make_user

_sku = itertools.count(1)


@pytest.fixture(scope="session", params=["sqlite", "postgres", "pgbouncer"])
def shape(request: pytest.FixtureRequest) -> str:
    """The commerce tests run on a third shape too: PostgreSQL through PgBouncer in
    transaction mode (tests/pgbouncer.py), with DB_PGBOUNCER=true."""
    return str(request.param)


@pytest.fixture
async def admin(app: FastAPI, client: httpx.AsyncClient) -> Actor:
    """A site admin."""
    return await make_user(app, client, is_superuser=True)


@pytest.fixture
async def customer(app: FastAPI, client: httpx.AsyncClient) -> Actor:
    """A regular user who places orders."""
    return await make_user(app, client)


async def make_product(
    client: httpx.AsyncClient, admin: Actor, *, stock: int = 10, price_cents: int = 1000
) -> int:
    """Create a product through the API and return its id."""
    r = await client.post(
        "/api/v2/products",
        json={
            "sku": f"SKU-{next(_sku)}",
            "name": "Widget",
            "price_cents": price_cents,
            "stock": stock,
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    product_id: int = r.json()["id"]
    return product_id


async def place_order(
    client: httpx.AsyncClient, actor: Actor, lines: Iterable[tuple[int, int]]
) -> httpx.Response:
    """POST /orders with (product_id, quantity) lines."""
    return await client.post(
        "/api/v2/orders",
        json={"items": [{"product_id": p, "quantity": q} for p, q in lines]},
        headers=actor.headers,
    )


async def wait_settled(
    client: httpx.AsyncClient, actor: Actor, order_ids: Iterable[int], *, timeout: float = 30
) -> dict[int, str]:
    """Poll until no order is PENDING; returns each order's status."""
    pending = set(order_ids)
    statuses: dict[int, str] = {}
    async with asyncio.timeout(timeout):
        while pending:
            for order_id in list(pending):
                r = await client.get(f"/api/v2/orders/{order_id}", headers=actor.headers)
                assert r.status_code == 200, r.text
                statuses[order_id] = r.json()["status"]
                if statuses[order_id] != "PENDING":
                    pending.discard(order_id)
            if pending:
                await asyncio.sleep(0.02)
    return statuses
