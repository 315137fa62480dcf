"""Tokens end when their account says so: deletion (and no id is reused), password changes,
deactivation, logout and logout-all end every token they concern at once, on both shapes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from taskhub.auth.tokens import purge_revoked_tokens
from taskhub.db import utcnow
from taskhub.events import build_registry
from taskhub.models import RevokedToken
from tests.commerce.conftest import make_product, place_order
from tests.factories import Actor, login_token, make_user
from tests.hardening.conftest import assert_problem

ME = "/api/v1/users/me"


async def test_a_deleted_users_token_stays_dead_after_new_accounts(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, client, is_superuser=True)
    doomed = await make_user(app, client)  # the newest account: its id is the highest
    assert (await client.get(ME, headers=doomed.headers)).status_code == 200
    r = await client.delete(f"/api/v1/users/{doomed.id}", headers=admin.headers)
    assert r.status_code == 204
    # An admin creates a new site admin, then more accounts: none gets the deleted id.
    created = []
    for i in range(3):
        body = {"email": f"next{i}@example.com", "password": "Password-123", "is_superuser": True}
        r = await client.post("/api/v1/users", json=body, headers=admin.headers)
        assert r.status_code == 201, r.text
        created.append(r.json()["id"])
    assert doomed.id not in created
    assert min(created) > doomed.id
    for path in (ME, "/api/v1/users", f"/api/v1/users/{doomed.id}", "/api/v2/users/me"):
        assert_problem(await client.get(path, headers=doomed.headers), 401)


@dataclass
class Account:
    """A user with two tokens (two logins) and an order of theirs."""

    user: Actor
    second_token: str
    order_id: int

    @property
    def second(self) -> dict[str, str]:
        """The Authorization header of the second login."""
        return {"Authorization": f"Bearer {self.second_token}"}


@pytest.fixture
async def admin(app: FastAPI, client: httpx.AsyncClient) -> Actor:
    """A site admin."""
    return await make_user(app, client, is_superuser=True)


@pytest.fixture
async def account(app: FastAPI, client: httpx.AsyncClient, admin: Actor) -> Account:
    """A regular user, logged in twice, with an order."""
    user = await make_user(app, client)
    second = await login_token(client, email=user.email, password=user.password)
    assert second != user.token
    product_id = await make_product(client, admin)
    r = await place_order(client, user, [(product_id, 1)])
    assert r.status_code == 201, r.text
    return Account(user=user, second_token=second, order_id=r.json()["id"])


async def answers(client: httpx.AsyncClient, headers: dict[str, str], order_id: int) -> set[int]:
    """The statuses of the token on every way the API checks one: the per-request lookup,
    the statements that check the account themselves, and a write transaction."""
    unknown_product = {"items": [{"product_id": 999_999, "quantity": 1}]}
    requests = [
        client.get(ME, headers=headers),
        client.get("/api/v2/users/me", headers=headers),
        client.post("/api/v1/auth/login/test-token", headers=headers),
        client.get("/api/v1/tasks", headers=headers),
        client.get("/api/v1/projects", headers=headers),
        client.get(f"/api/v2/orders/{order_id}", headers=headers),
        client.get("/api/v2/orders", headers=headers),
        client.post("/api/v2/orders", json=unknown_product, headers=headers),
        client.post(
            "/api/v2/orders",
            json=unknown_product,
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        ),
        client.patch(ME, json={"full_name": "Still here"}, headers=headers),
    ]
    statuses = set()
    for request in requests:
        r = await request
        if r.status_code == 401:
            assert_problem(r, 401)
            assert r.headers["www-authenticate"] == "Bearer"
        statuses.add(r.status_code)
    return statuses


LIVE = {200, 422}  # 422: the order of an unknown product, refused after the token passed
DEAD = {401}


async def test_the_probe_tells_live_from_dead(client: httpx.AsyncClient, account: Account) -> None:
    assert await answers(client, account.user.headers, account.order_id) == LIVE
    assert await answers(client, {"Authorization": "Bearer x"}, account.order_id) == DEAD


async def test_password_change_ends_every_token_at_once(
    client: httpx.AsyncClient, account: Account
) -> None:
    user = account.user
    r = await client.patch(
        ME,
        json={"password": "New-password-1", "current_password": user.password},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    assert await answers(client, user.headers, account.order_id) == DEAD
    assert await answers(client, account.second, account.order_id) == DEAD
    token = await login_token(client, email=user.email, password="New-password-1")
    fresh = {"Authorization": f"Bearer {token}"}
    assert await answers(client, fresh, account.order_id) == LIVE


async def test_admin_password_reset_ends_every_token_at_once(
    client: httpx.AsyncClient, account: Account, admin: Actor
) -> None:
    user = account.user
    r = await client.patch(
        f"/api/v1/users/{user.id}", json={"password": "Reset-password-1"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert await answers(client, user.headers, account.order_id) == DEAD
    assert await answers(client, account.second, account.order_id) == DEAD
    # Other changes by an admin leave the tokens alone.
    token = await login_token(client, email=user.email, password="Reset-password-1")
    fresh = {"Authorization": f"Bearer {token}"}
    r = await client.patch(
        f"/api/v1/users/{user.id}", json={"full_name": "Renamed"}, headers=admin.headers
    )
    assert r.status_code == 200
    assert await answers(client, fresh, account.order_id) == LIVE


async def test_logout_ends_this_token_only(client: httpx.AsyncClient, account: Account) -> None:
    user = account.user
    # The token was used (and its signature check cached) before it is logged out.
    assert await answers(client, user.headers, account.order_id) == LIVE
    r = await client.post("/api/v1/auth/logout", headers=user.headers)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert await answers(client, user.headers, account.order_id) == DEAD
    assert await answers(client, account.second, account.order_id) == LIVE
    # Logging out twice: the token is already dead.
    assert_problem(await client.post("/api/v1/auth/logout", headers=user.headers), 401)


async def test_logout_all_ends_every_token(client: httpx.AsyncClient, account: Account) -> None:
    user = account.user
    r = await client.post("/api/v1/auth/logout-all", headers=account.second)
    assert r.status_code == 204, r.text
    assert await answers(client, user.headers, account.order_id) == DEAD
    assert await answers(client, account.second, account.order_id) == DEAD
    assert_problem(await client.post("/api/v1/auth/logout-all", headers=user.headers), 401)
    token = await login_token(client, email=user.email, password=user.password)
    fresh = {"Authorization": f"Bearer {token}"}
    assert await answers(client, fresh, account.order_id) == LIVE


async def test_deactivation_ends_tokens_for_good(
    client: httpx.AsyncClient, account: Account, admin: Actor
) -> None:
    user = account.user
    path = f"/api/v1/users/{user.id}"
    r = await client.patch(path, json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert await answers(client, user.headers, account.order_id) == DEAD
    # Reactivation does not bring the old tokens back: the account logs in again.
    r = await client.patch(path, json={"is_active": True}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert await answers(client, user.headers, account.order_id) == DEAD
    assert await answers(client, account.second, account.order_id) == DEAD
    token = await login_token(client, email=user.email, password=user.password)
    fresh = {"Authorization": f"Bearer {token}"}
    assert await answers(client, fresh, account.order_id) == LIVE


async def test_logged_out_ids_are_purged_once_expired(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    user = account.user
    assert (await client.post("/api/v1/auth/logout", headers=user.headers)).status_code == 204
    sessionmaker = app.state.sessionmaker
    async with sessionmaker() as session, session.begin():
        session.add(
            RevokedToken(
                jti="long-expired", user_id=user.id, expires_at=utcnow() - timedelta(days=1)
            )
        )
    purged = await purge_revoked_tokens(sessionmaker)
    assert purged == 1
    async with sessionmaker() as session:
        left = (await session.scalars(select(RevokedToken.jti))).all()
    # The logged-out token has not expired yet: its record stays, and so does the refusal.
    assert left == [jwt.decode(user.token, options={"verify_signature": False})["jti"]]
    assert await answers(client, user.headers, account.order_id) == DEAD
    # The job runs with the others (embedded dispatcher, workers).
    assert "tokens.purge" in {name for name, _ in build_registry(app.state.settings).jobs}


async def test_logout_endpoints_are_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/api/v1/auth/logout", "/api/v1/auth/logout-all"):
        responses = paths[path]["post"]["responses"]
        assert "204" in responses, path
        problem = responses["401"]["content"]["application/problem+json"]
        assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}, path
