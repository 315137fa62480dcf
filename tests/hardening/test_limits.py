"""Abuse limits (OWASP API4 unrestricted resource consumption, API2 broken authentication).

Login brute force per account and per client (in memory and through Redis), body size, page
size, order quotas, CORS, security headers, and the refusal to start with a weak secret.

The database plays no part in most of these, so they run on one shape, pinned per test:
SQLite (embedded), or PostgreSQL where the test stands for the full stack (Redis).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from pydantic import ValidationError

from taskhub.config import Settings, get_settings
from taskhub.main import app_from_env
from tests.commerce.conftest import make_product, place_order, wait_settled
from tests.conftest import client_for
from tests.factories import Actor, make_user
from tests.hardening.conftest import assert_problem
from tests.polling import eventually

SQLITE = pytest.mark.parametrize("shape", ["sqlite"], indirect=True)
POSTGRES = pytest.mark.parametrize("shape", ["postgres"], indirect=True)
LOGIN_V1 = "/api/v1/auth/login/access-token"
LOGIN_V2 = "/api/v2/auth/login/access-token"
WRONG = "Wrong-password-1"


async def login(client: httpx.AsyncClient, email: str, password: str, path: str = LOGIN_V1) -> int:
    """The status of one login attempt."""
    r = await client.post(path, data={"username": email, "password": password})
    if r.status_code == 429:
        assert_problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1
    return r.status_code


async def until_login_works(client: httpx.AsyncClient, actor: Actor, *, timeout: float) -> float:
    """Seconds until the right password is accepted again."""

    async def accepted() -> bool:
        return await login(client, actor.email, actor.password) == 200

    return await eventually(accepted, timeout=timeout, every=0.2)


# --- login brute force ------------------------------------------------------------------------


@SQLITE
async def test_account_lockout_after_failures_then_window_expires(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(
        settings_factory(login_max_failures_per_account=3, login_account_window_seconds=2)
    )
    async with client_for(app) as client:
        victim = await make_user(app, client, login=False)
        bystander = await make_user(app, client, login=False)
        assert [await login(client, victim.email, WRONG) for _ in range(3)] == [401] * 3
        r = await client.post(LOGIN_V1, data={"username": victim.email, "password": WRONG})
        body = assert_problem(r, 429)
        assert 1 <= int(r.headers["retry-after"]) <= 2, r.headers
        assert "Too many failed logins" in str(body["detail"])
        # Locked even with the right password, on v2 too, and however the email is spelled.
        assert await login(client, victim.email, victim.password) == 429
        assert await login(client, victim.email, victim.password, LOGIN_V2) == 429
        assert await login(client, f"  {victim.email.upper()} ", victim.password) == 429
        # The lock is per account: another account on the same client logs in.
        assert await login(client, bystander.email, bystander.password) == 200
        waited = await until_login_works(client, victim, timeout=6)
        assert waited >= 0.5  # it really was locked for a while, then it opened by itself


@SQLITE
async def test_only_failed_logins_count(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(
        settings_factory(login_max_failures_per_account=3, login_max_failures_per_client=5)
    )
    async with client_for(app) as client:
        user = await make_user(app, client, login=False)
        assert [await login(client, user.email, user.password) for _ in range(8)] == [200] * 8
        # A success clears the account's failures: 2 + 2 failures never reach the limit of 3.
        for _ in range(2):
            assert [await login(client, user.email, WRONG) for _ in range(2)] == [401, 401]
            assert await login(client, user.email, user.password) == 200


@SQLITE
async def test_client_lockout_spans_accounts(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(
        settings_factory(
            login_max_failures_per_account=100,
            login_max_failures_per_client=4,
            login_client_window_seconds=2,
        )
    )
    async with client_for(app) as client:
        user = await make_user(app, client, login=False)
        # Credential stuffing: one guess each at many accounts, from one client.
        statuses = [await login(client, f"nobody{i}@example.com", WRONG) for i in range(4)]
        assert statuses == [401] * 4
        assert await login(client, user.email, user.password) == 429
        other_client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.9.8.7", 4000)),
            base_url="http://testserver",
        )
        async with other_client:
            assert await login(other_client, user.email, user.password) == 200
        await until_login_works(client, user, timeout=6)


@pytest.fixture
async def redis_client(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the shared test Redis."""
    client = aioredis.Redis.from_url(redis_server)
    yield client
    await client.aclose()


@POSTGRES
@pytest.mark.redis
async def test_login_limits_are_shared_through_redis(
    app_factory: Callable[[Settings], Any],
    settings_factory: Callable[..., Settings],
    redis_server: str,
    redis_prefix: str,
    redis_client: aioredis.Redis,
) -> None:
    settings = settings_factory(
        redis_url=redis_server,
        redis_prefix=redis_prefix,
        login_max_failures_per_account=3,
        login_account_window_seconds=2,
    )
    # Two API processes behind a load balancer: two apps, one Redis.
    app_a, app_b = await app_factory(settings), await app_factory(settings)
    async with client_for(app_a) as a, client_for(app_b) as b:
        user = await make_user(app_a, a, login=False)
        assert [await login(a, user.email, WRONG), await login(b, user.email, WRONG)] == [401] * 2
        assert await login(a, user.email, WRONG) == 401
        # Three failures in total, spread over both: both refuse.
        assert await login(a, user.email, user.password) == 429
        assert await login(b, user.email, user.password, LOGIN_V2) == 429
        key = f"{redis_prefix}:login-failures:acct:{user.email}"
        assert int(await redis_client.get(key) or 0) == 3
        assert 0 < await redis_client.ttl(key) <= 2
        await until_login_works(b, user, timeout=6)
        assert await login(a, user.email, user.password) == 200
        assert await redis_client.get(key) is None  # a success clears the account's count


# --- request size -----------------------------------------------------------------------------


def _order_body(lines: int) -> bytes:
    return orjson.dumps({"items": [{"product_id": 1, "quantity": 1}] * lines})


@SQLITE
async def test_body_over_max_body_bytes_is_413(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(settings_factory(max_body_bytes=2048))
    async with client_for(app) as client:
        user = await make_user(app, client)
        headers = {**user.headers, "Content-Type": "application/json"}
        small, big = _order_body(50), _order_body(100)
        assert len(small) < 2048 < len(big)
        # Under the limit the request is handled (no such product: 422).
        r = await client.post("/api/v2/orders", content=small, headers=headers)
        assert_problem(r, 422)

        r = await client.post("/api/v2/orders", content=big, headers=headers)
        assert r.request.headers["content-length"] == str(len(big))
        body = assert_problem(r, 413)
        assert body["type"] == "https://taskhub.dev/problems/payload-too-large"
        assert r.headers["x-frame-options"] == "DENY" and "x-request-id" in r.headers

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 256):
                yield big[start : start + 256]

        # Chunked: no Content-Length to refuse up front; the stream is cut at the limit.
        r = await client.post("/api/v2/orders", content=chunks(), headers=headers)
        assert "content-length" not in r.request.headers
        assert r.request.headers["transfer-encoding"] == "chunked"
        assert assert_problem(r, 413)["type"] == body["type"]

        # A form body (the login) is limited the same way.
        form = {"username": "x@example.com", "password": "p" * 4000}
        r = await client.post(LOGIN_V1, data=form)
        assert_problem(r, 413)


# --- page size and order quotas ---------------------------------------------------------------


@SQLITE
async def test_every_list_caps_the_page_size(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(settings_factory(webhook_allow_private=True))
    async with client_for(app) as client:
        await _every_list_caps_the_page_size(app, client)


async def _every_list_caps_the_page_size(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_user(app, client, is_superuser=True)
    r = await client.post("/api/v1/projects", json={"title": "P"}, headers=admin.headers)
    project_id = r.json()["id"]
    r = await client.post(
        "/api/v1/tasks", json={"title": "T", "project_id": project_id}, headers=admin.headers
    )
    task_id = r.json()["id"]
    hook = {"url": "http://127.0.0.1:9/hook"}
    webhooks = {
        "/api/v2/": await client.post("/api/v2/webhooks", json=hook, headers=admin.headers),
        "/api/v1/": await client.post(
            f"/api/v1/projects/{project_id}/webhooks", json=hook, headers=admin.headers
        ),
    }
    assert all(r.status_code == 201 for r in webhooks.values()), webhooks
    schema = (await client.get("/openapi.json")).json()
    lists = [
        path.format(
            project_id=project_id,
            task_id=task_id,
            webhook_id=next(r.json()["id"] for p, r in webhooks.items() if path.startswith(p)),
        )
        for path, item in schema["paths"].items()
        if any(p["name"] == "limit" for p in item.get("get", {}).get("parameters", []))
    ]
    assert len(lists) >= 7, lists
    for path in lists:
        assert (await client.get(path, params={"limit": 200}, headers=admin.headers)).is_success
        for bad in (201, 0, 10**12):
            r = await client.get(path, params={"limit": bad}, headers=admin.headers)
            body = assert_problem(r, 422)
            assert body["errors"][0]["loc"] == ["query", "limit"], (path, body)


@SQLITE
async def test_open_order_quota_is_per_user_and_paid_orders_free_a_slot(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    # tests/commerce covers the quota with cancellation; this adds paying and other users.
    app = await app_factory(settings_factory(max_open_orders_per_user=1))
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        alice, bob = await make_user(app, client), await make_user(app, client)
        pid = await make_product(client, admin, stock=100)
        first = (await place_order(client, alice, [(pid, 1)])).json()["id"]
        assert_problem(await place_order(client, alice, [(pid, 1)]), 409)
        assert (await place_order(client, bob, [(pid, 1)])).status_code == 201
        await wait_settled(client, alice, [first])
        r = await client.post(f"/api/v2/orders/{first}/pay", headers=alice.headers)
        assert r.status_code == 200, r.text
        assert (await place_order(client, alice, [(pid, 1)])).status_code == 201


@SQLITE
async def test_open_order_quota_zero_disables_it(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(settings_factory(max_open_orders_per_user=0))
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        user = await make_user(app, client)
        pid = await make_product(client, admin, stock=100)
        statuses = [(await place_order(client, user, [(pid, 1)])).status_code for _ in range(6)]
        assert statuses == [201] * 6


# --- CORS and security headers ----------------------------------------------------------------

ALLOWED = "https://app.example.com"


@SQLITE
async def test_cors_echoes_only_configured_origins(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(settings_factory(cors_origins=[ALLOWED, "https://admin.example.com"]))
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
    }
    async with client_for(app) as client:
        r = await client.get("/api/v2/products", headers={"Origin": ALLOWED})
        assert r.headers["access-control-allow-origin"] == ALLOWED  # echoed, never "*"
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "origin" in r.headers["vary"].lower()
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
        r = await client.options("/api/v2/orders", headers={"Origin": ALLOWED, **preflight})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == ALLOWED
        assert "POST" in r.headers["access-control-allow-methods"]

        for evil in ("https://evil.example.com", "https://app.example.com.evil.io", "null"):
            r = await client.get("/api/v2/products", headers={"Origin": evil})
            assert r.status_code == 200
            assert "access-control-allow-origin" not in r.headers, evil
            r = await client.options("/api/v2/orders", headers={"Origin": evil, **preflight})
            assert r.status_code == 400
            assert r.headers["content-type"] == "application/problem+json"
            assert "access-control-allow-origin" not in r.headers, evil


@SQLITE
async def test_no_cors_headers_without_configured_origins(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v2/products", headers={"Origin": ALLOWED})
    assert r.status_code == 200
    assert not [h for h in r.headers if h.startswith("access-control-")]


@pytest.mark.parametrize("value", ["*", "https://a.example.com,*", '["*"]'])
def test_wildcard_cors_origin_is_refused_at_startup(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("CORS_ORIGINS", value)
    monkeypatch.setenv("SECRET_KEY", "s" * 48)
    with pytest.raises(ValidationError, match="CORS_ORIGINS may not contain"):
        get_settings()


@SQLITE
async def test_security_headers_on_every_response(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    app = await app_factory(settings_factory(max_body_bytes=1024))
    async with client_for(app) as client:
        user = await make_user(app, client)

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b" " * 256

        json_headers = {**user.headers, "Content-Type": "application/json"}
        responses = {
            "200 json": await client.get("/api/v2/products"),
            "200 health": await client.get("/health"),
            "200 metrics": await client.get("/metrics"),
            "201": await client.post("/api/v1/projects", json={"title": "x"}, headers=user.headers),
            "400": await client.post("/api/v2/orders", content=b"{", headers=json_headers),
            "401": await client.get("/api/v1/users/me"),
            "404": await client.get("/api/v2/nothing-here"),
            "405": await client.delete("/health"),
            "413 declared": await client.post("/api/v2/orders", content=b" " * 2048),
            "413 chunked": await client.post(
                "/api/v2/orders", content=chunked(), headers=json_headers
            ),
            "422": await client.get("/api/v2/products", params={"limit": 0}),
        }
        for name, r in responses.items():
            assert str(r.status_code) == name.split()[0], (name, r.status_code, r.text)
            assert r.headers["x-content-type-options"] == "nosniff", name
            assert r.headers["x-frame-options"] == "DENY", name
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"], name
            assert r.headers["cache-control"] == "no-store", name
            assert r.headers["referrer-policy"] == "no-referrer", name
            assert len(r.headers["x-request-id"]) >= 16, name
            if r.status_code >= 400:
                assert_problem(r, r.status_code)
        docs = await client.get("/docs")
        assert docs.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in docs.headers  # the UI loads its scripts


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["test", "prod"])
@pytest.mark.parametrize(
    "secret", [None, "", "   ", "change-me", "changeme", "CHANGE_ME", "secret", "short-but-real-1"]
)
def test_weak_secret_key_fails_startup_outside_dev(
    environment: str, secret: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVIRONMENT", environment)
    if secret is None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY", secret)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        app_from_env()


def test_dev_may_run_without_a_secret_and_strong_secrets_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("ENVIRONMENT", "dev")
    assert get_settings().secret_key is None
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("SECRET_KEY", "k" * 32)
    assert get_settings().signing_key() == "k" * 32
