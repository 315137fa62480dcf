"""Signup, login, tokens and their edge cases."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import httpx
import jwt
import pytest
from fastapi import FastAPI

from taskhub.config import Settings
from tests.factories import DEFAULT_PASSWORD, login_token, make_user
from tests.processes import SECRET

LOGIN = "/api/v1/auth/login/access-token"


async def test_signup_login_me(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/auth/signup",
        json={"email": "New@Example.com", "password": "Long-enough-1", "full_name": "New"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["email"] == "new@example.com"
    assert body["is_superuser"] is False
    assert r.headers["location"] == f"/api/v1/users/{body['id']}"
    assert "hashed_password" not in body
    token = await login_token(client, email="new@example.com", password="Long-enough-1")
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == body["id"]
    v2 = await client.post(
        LOGIN.replace("v1", "v2"), data={"username": "new@example.com", "password": "Long-enough-1"}
    )
    assert v2.status_code == 200
    assert v2.json()["token_type"] == "bearer"
    assert v2.json()["expires_in"] == 30 * 60
    me2 = await client.get("/api/v2/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me2.json()["email"] == "new@example.com"


@pytest.mark.parametrize(
    "extra",
    [{"is_superuser": True}, {"is_active": False}, {"id": 99}, {"hashed_password": "x"}],
)
async def test_signup_rejects_privileged_fields(
    client: httpx.AsyncClient, extra: dict[str, object]
) -> None:
    r = await client.post(
        "/api/v1/auth/signup", json={"email": "x@example.com", "password": "Long-enough-1", **extra}
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["type"] == "extra_forbidden"


async def test_signup_duplicate_email_is_409(client: httpx.AsyncClient) -> None:
    body = {"email": "dup@example.com", "password": "Long-enough-1"}
    assert (await client.post("/api/v1/auth/signup", json=body)).status_code == 201
    body["email"] = "DUP@example.com"
    r = await client.post("/api/v1/auth/signup", json=body)
    assert r.status_code == 409


async def test_signup_can_be_disabled(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(settings_factory(allow_signup=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post(
            "/api/v1/auth/signup", json={"email": "a@example.com", "password": "Long-enough-1"}
        )
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("password", "fragment"),
    [("short", "at least 8"), ("é" * 37, "at most 72 bytes"), ("x" * 73, "at most 72 bytes")],
)
async def test_password_rules(client: httpx.AsyncClient, password: str, fragment: str) -> None:
    r = await client.post(
        "/api/v1/auth/signup", json={"email": "p@example.com", "password": password}
    )
    assert r.status_code == 422
    assert fragment in r.text


async def test_72_byte_password_is_accepted(client: httpx.AsyncClient) -> None:
    password = "a" * 72
    r = await client.post(
        "/api/v1/auth/signup", json={"email": "p72@example.com", "password": password}
    )
    assert r.status_code == 201
    await login_token(client, email="p72@example.com", password=password)


async def test_login_overlong_password_is_401(app: FastAPI, client: httpx.AsyncClient) -> None:
    user = await make_user(app, client, login=False, password="b" * 72)
    for attempt in ("b" * 73, "b" * 10_000):
        r = await client.post(LOGIN, data={"username": user.email, "password": attempt})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"


async def test_login_wrong_password_and_unknown_email(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = await make_user(app, client, login=False)
    wrong = await client.post(LOGIN, data={"username": user.email, "password": "Wrong-pass-1"})
    unknown = await client.post(
        LOGIN, data={"username": "ghost@example.com", "password": "Wrong-pass-1"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_unknown_email_costs_a_bcrypt_check(
    app_factory: Callable[[Settings], Any],
    settings_factory: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unknown email is checked against a dummy hash of the same cost as a real one, so
    that it takes as long (bench/login_timing.py measures it); counted, not timed."""
    app = await app_factory(settings_factory(bcrypt_rounds=10))
    checked: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await make_user(app, c, email="known@example.com", login=False)
        costs = []
        for email in ("known@example.com", "nobody@example.com"):
            checked.clear()
            r = await c.post(LOGIN, data={"username": email, "password": "Wrong-pass-1"})
            assert r.status_code == 401
            assert len(checked) == 1, email  # exactly one bcrypt check, known or not
            costs.append(checked[0][:7])
    assert costs == [b"$2b$10$", b"$2b$10$"]  # the same algorithm and cost


async def test_inactive_user_cannot_login_and_token_stops(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, client, is_superuser=True)
    user = await make_user(app, client)
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200
    r = await client.patch(
        f"/api/v1/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert r.status_code == 200
    assert r.json()["is_active"] is False
    r = await client.get("/api/v1/users/me", headers=user.headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    r = await client.post(LOGIN, data={"username": user.email, "password": DEFAULT_PASSWORD})
    assert r.status_code == 401


async def test_deleted_user_token_stops(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_user(app, client, is_superuser=True)
    user = await make_user(app, client)
    assert (
        await client.delete(f"/api/v1/users/{user.id}", headers=admin.headers)
    ).status_code == 204
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 401


def _forge(claims: dict[str, object], key: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def _none_alg_token(sub: str) -> str:
    import base64
    import json

    def b64(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    now = int(time.time())
    header = b64({"alg": "none", "typ": "JWT"})
    claims = b64({"sub": sub, "iat": now, "exp": now + 600, "jti": "x"})
    return f"{header}.{claims}."


async def test_bad_tokens_are_401(app: FastAPI, client: httpx.AsyncClient) -> None:
    user = await make_user(app, client)
    now = datetime.now(UTC)
    good = {
        "sub": str(user.id),
        "ep": 0,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": "a",
    }
    tampered_parts = user.token.split(".")
    tampered_parts[1] = tampered_parts[1][:-2] + (
        "AA" if not tampered_parts[1].endswith("AA") else "BB"
    )
    cases = {
        "valid forged with the right key (control)": (_forge(good), 200),
        "expired": (_forge({**good, "exp": int((now - timedelta(minutes=1)).timestamp())}), 401),
        "wrong key": (_forge(good, key="another-secret-0123456789abcdef0123"), 401),
        "alg none": (_none_alg_token(str(user.id)), 401),
        "HS512": (_forge(good, alg="HS512"), 401),
        "future iat": (_forge({**good, "iat": int((now + timedelta(hours=1)).timestamp())}), 401),
        "no exp": (_forge({k: v for k, v in good.items() if k != "exp"}), 401),
        "non-numeric sub": (_forge({**good, "sub": "abc"}), 401),
        "no epoch (issued before epochs)": (
            _forge({k: v for k, v in good.items() if k != "ep"}),
            401,
        ),
        "another epoch": (_forge({**good, "ep": 1}), 401),
        "epoch true": (_forge({**good, "ep": True}), 401),
        "epoch text": (_forge({**good, "ep": "0"}), 401),
        "jti not text": (_forge({**good, "jti": 7}), 401),
        "jti too long": (_forge({**good, "jti": "j" * 65}), 401),
        "huge sub": (_forge({**good, "sub": str(2**70)}), 401),
        "unknown user": (_forge({**good, "sub": "999999"}), 401),
        "tampered": (".".join(tampered_parts), 401),
        "garbage": ("not.a.token", 401),
        "100 KB": ("a" * 100_000, 401),
    }
    for name, (token, expected) in cases.items():
        r = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == expected, name
        if expected == 401:
            assert r.headers["www-authenticate"] == "Bearer", name
            assert r.headers["content-type"] == "application/problem+json", name


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/users/me")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    r = await client.post("/api/v1/auth/login/test-token")
    assert r.status_code == 401


async def test_test_token_echoes_user(app: FastAPI, client: httpx.AsyncClient) -> None:
    user = await make_user(app, client)
    r = await client.post("/api/v1/auth/login/test-token", headers=user.headers)
    assert r.status_code == 200
    assert r.json()["email"] == user.email
