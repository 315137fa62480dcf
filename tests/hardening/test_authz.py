"""Token abuse (OWASP API2) and object-level authorization on v2 (OWASP API1).

tests/auth covers forged, expired, `alg: none`, future-`iat` and oversized tokens on v1, and
tests/commerce the direct order routes; these add what those leave out.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from taskhub.config import Settings
from taskhub.main import create_app
from tests.commerce.conftest import make_product, place_order, wait_settled
from tests.conftest import make_settings
from tests.factories import Actor, make_user
from tests.hardening.conftest import assert_problem

V2_AUTHENTICATED = [
    ("GET", "/api/v2/users/me"),
    ("GET", "/api/v2/orders"),
    ("POST", "/api/v2/orders"),
    ("GET", "/api/v2/orders/1"),
    ("POST", "/api/v2/orders/1/pay"),
    ("POST", "/api/v2/orders/1/cancel"),
    ("POST", "/api/v2/orders/1/confirm"),
]


def assert_unauthorized(response: httpx.Response) -> None:
    """401 problem+json with a Bearer challenge."""
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_inactive_and_deleted_users_tokens_fail_on_v2(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, client, is_superuser=True)
    inactive = await make_user(app, client)
    deleted = await make_user(app, client)
    for actor in (inactive, deleted):
        assert (await client.get("/api/v2/users/me", headers=actor.headers)).status_code == 200
    r = await client.patch(
        f"/api/v1/users/{inactive.id}", json={"is_active": False}, headers=admin.headers
    )
    assert r.status_code == 200
    r = await client.delete(f"/api/v1/users/{deleted.id}", headers=admin.headers)
    assert r.status_code == 204
    body = {"items": [{"product_id": 1, "quantity": 1}]}
    for actor in (inactive, deleted):
        for method, path in V2_AUTHENTICATED:
            r = await client.request(
                method, path, headers=actor.headers, json=body if method == "POST" else None
            )
            assert_unauthorized(r)


async def test_credentials_only_in_the_bearer_header(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = await make_user(app, client)
    me = "/api/v2/users/me"
    assert (await client.get(me, headers={"Authorization": f"bearer {user.token}"})).is_success
    refused = [
        {"Authorization": f"Basic {user.token}"},
        {"Authorization": user.token},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Cookie": f"access_token={user.token}"},
        {"X-Access-Token": user.token},
    ]
    for headers in refused:
        assert_unauthorized(await client.get(me, headers=headers))
    assert_unauthorized(await client.get(me, params={"access_token": user.token}))


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


async def test_header_tricks_in_the_token_are_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # The signature is valid for the payload, but the header asks for another algorithm or
    # points at another key: PyJWT must verify with the server's HS256 key only.
    user = await make_user(app, client)
    _, payload, signature = user.token.split(".")
    for header in (
        {"alg": "none", "typ": "JWT"},
        {"alg": "HS256", "typ": "JWT", "kid": "../../dev/null"},
        {"alg": "HS256", "typ": "JWT", "jku": "https://evil.example.com/keys"},
        {"alg": "RS256", "typ": "JWT"},
    ):
        for sig in (signature, ""):
            token = f"{_b64(header)}.{payload}.{sig}"
            r = await client.get("/api/v2/users/me", headers={"Authorization": f"Bearer {token}"})
            assert_unauthorized(r)


@pytest.mark.parametrize("shape", ["sqlite"], indirect=True)
@pytest.mark.parametrize("size", [8 * 1024, 100 * 1024])
async def test_oversized_authorization_header_through_a_real_server(
    size: int, settings: Settings, unused_tcp_port_factory: Callable[[], int]
) -> None:
    # In-process clients skip the HTTP server's own limits; here uvicorn parses the request.
    port = unused_tcp_port_factory()
    app = create_app(make_settings(database_url=settings.database_url))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(15):
            while not server.started:
                await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            r = await http.get(
                "/api/v2/users/me", headers={"Authorization": "Bearer " + "a" * size}
            )
            # uvicorn (httptools) passes even a 100 KiB header to the app, which refuses the
            # token by its length without parsing it.
            assert_unauthorized(r)
            assert (await http.get("/health")).status_code == 200  # the server is fine
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


# --- object-level authorization on v2 -----------------------------------------------------------


async def _orders_seen(client: httpx.AsyncClient, actor: Actor, **params: Any) -> set[int]:
    seen: set[int] = set()
    cursor: str | None = None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/v2/orders", params=query, headers=actor.headers)
        assert r.status_code == 200, r.text
        page = r.json()
        seen |= {o["id"] for o in page["items"]}
        assert all(o["user_id"] == actor.id for o in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return seen


async def test_another_users_orders_are_invisible_and_untouchable(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, client, is_superuser=True)
    alice, mallory = await make_user(app, client), await make_user(app, client)
    pid = await make_product(client, admin, stock=100)
    alice_orders = [(await place_order(client, alice, [(pid, 1)])).json()["id"] for _ in range(3)]
    await wait_settled(client, alice, alice_orders)
    await client.post(f"/api/v2/orders/{alice_orders[0]}/cancel", headers=alice.headers)
    await client.post(f"/api/v2/orders/{alice_orders[1]}/confirm", headers=alice.headers)
    own = (await place_order(client, mallory, [(pid, 1)])).json()["id"]

    # Lists, with every filter, and with a cursor forged to start past Alice's ids.
    for status in (None, "PENDING", "RESERVED", "CONFIRMED", "PAID", "CANCELLED", "FAILED"):
        params = {"status": status} if status else {}
        assert await _orders_seen(client, mallory, **params) <= {own}
    forged = base64.urlsafe_b64encode(orjson.dumps([max(alice_orders) + 1])).decode().rstrip("=")
    r = await client.get("/api/v2/orders", params={"cursor": forged}, headers=mallory.headers)
    assert {o["id"] for o in r.json()["items"]} <= {own}
    # Every route that names an order, with and without an Idempotency-Key.
    absent = assert_problem(await client.get("/api/v2/orders/999999", headers=mallory.headers), 404)
    for oid in alice_orders:
        for method, suffix in [("GET", ""), ("POST", "/pay"), ("POST", "/confirm")]:
            for extra in ({}, {"Idempotency-Key": f"k-{oid}"}):
                r = await client.request(
                    method, f"/api/v2/orders/{oid}{suffix}", headers={**mallory.headers, **extra}
                )
                body = assert_problem(r, 404)
                # Indistinguishable from an order that does not exist.
                assert body["detail"] == absent["detail"], body
        assert_problem(
            await client.post(f"/api/v2/orders/{oid}/cancel", headers=mallory.headers), 404
        )
    # A mass-assigned owner is refused, not applied.
    r = await client.post(
        "/api/v2/orders",
        json={"items": [{"product_id": pid, "quantity": 1}], "user_id": alice.id},
        headers=mallory.headers,
    )
    assert_problem(r, 422)
    # Nothing Mallory did changed Alice's orders.
    statuses = [
        (await client.get(f"/api/v2/orders/{oid}", headers=alice.headers)).json()["status"]
        for oid in alice_orders
    ]
    assert statuses == ["CANCELLED", "CONFIRMED", "RESERVED"]


async def test_idempotency_keys_are_scoped_per_user(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # The same key and body from another user must create that user's own order, never
    # replay the first user's response (which would leak Alice's order to Mallory).
    admin = await make_user(app, client, is_superuser=True)
    alice, mallory = await make_user(app, client), await make_user(app, client)
    pid = await make_product(client, admin, stock=10)
    body = {"items": [{"product_id": pid, "quantity": 1}]}
    key = {"Idempotency-Key": "shared-key-1"}
    a = await client.post("/api/v2/orders", json=body, headers={**alice.headers, **key})
    m = await client.post("/api/v2/orders", json=body, headers={**mallory.headers, **key})
    assert a.status_code == m.status_code == 201
    assert "idempotent-replayed" not in m.headers
    assert m.json()["user_id"] == mallory.id and m.json()["id"] != a.json()["id"]
