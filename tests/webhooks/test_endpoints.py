"""The webhook endpoints API on both shapes: create (201, Location, the secret once), list,
read, update, delete, rotate-secret, test, deliveries and redeliver; who may see what; the
URL rule (SSRF) at registration; problem+json errors."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from taskhub.config import Settings
from tests.conftest import client_for
from tests.factories import Actor, make_user

PRIVATE_OK = {"webhook_allow_private": True}
# Nothing listens there: deliveries fail, which these tests do not wait for.
DEAD_URL = "http://127.0.0.1:9/hooks"


@pytest.fixture
async def open_app(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> FastAPI:
    """An app that accepts loopback URLs, retrying never (a failed attempt is final)."""
    return await app_factory(settings_factory(webhook_retry_schedule=[], **PRIVATE_OK))


@pytest.fixture
async def strict_app(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> FastAPI:
    """An app with the default address rule (WEBHOOK_ALLOW_PRIVATE off)."""
    return await app_factory(settings_factory())


async def create(
    client: httpx.AsyncClient, actor: Actor, status: int = 201, **body: Any
) -> dict[str, Any]:
    r = await client.post("/api/v2/webhooks", json={"url": DEAD_URL, **body}, headers=actor.headers)
    assert r.status_code == status, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_create_shows_the_secret_once_and_reads_never_do(open_app: FastAPI) -> None:
    async with client_for(open_app) as client:
        user = await make_user(open_app, client)
        r = await client.post(
            "/api/v2/webhooks",
            json={"url": DEAD_URL, "description": "orders"},
            headers=user.headers,
        )
        assert r.status_code == 201, r.text
        created = r.json()
        assert r.headers["location"] == f"/api/v2/webhooks/{created['id']}"
        secret = created["secret"]
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
        assert created["events"] == ["order.*"]
        assert created["scope"] == "own"
        assert created["owner_id"] == user.id
        assert created["project_id"] is None
        assert created["active"] is True
        assert created["disabled_reason"] is None
        one = await client.get(r.headers["location"], headers=user.headers)
        listed = await client.get("/api/v2/webhooks", headers=user.headers)
    assert one.status_code == 200
    assert "secret" not in one.json()
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    assert "secret" not in listed.json()["items"][0]
    assert secret not in one.text + listed.text


async def test_the_list_is_keyset_paginated_and_shows_only_the_callers(open_app: FastAPI) -> None:
    async with client_for(open_app) as client:
        user = await make_user(open_app, client)
        other = await make_user(open_app, client)
        admin = await make_user(open_app, client, is_superuser=True)
        mine = [(await create(client, user))["id"] for _ in range(5)]
        theirs = (await create(client, other))["id"]
        seen: list[int] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (
                await client.get("/api/v2/webhooks", params=params, headers=user.headers)
            ).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        everyone = await client.get("/api/v2/webhooks", headers=admin.headers)
        forged = await client.get("/api/v2/webhooks?cursor=WzEsMl0", headers=user.headers)
    assert seen == mine
    assert {item["id"] for item in everyone.json()["items"]} == {*mine, theirs}
    assert forged.status_code == 400
    assert forged.headers["content-type"] == "application/problem+json"


async def test_another_users_endpoint_is_not_found(open_app: FastAPI) -> None:
    async with client_for(open_app) as client:
        owner = await make_user(open_app, client)
        other = await make_user(open_app, client)
        admin = await make_user(open_app, client, is_superuser=True)
        endpoint_id = (await create(client, owner))["id"]
        base = f"/api/v2/webhooks/{endpoint_id}"
        answers = [
            await client.get(base, headers=other.headers),
            await client.patch(base, json={"description": "x"}, headers=other.headers),
            await client.delete(base, headers=other.headers),
            await client.post(base + "/rotate-secret", headers=other.headers),
            await client.post(base + "/test", headers=other.headers),
            await client.get(base + "/deliveries", headers=other.headers),
            await client.post(base + "/deliveries/1/redeliver", headers=other.headers),
        ]
        by_admin = await client.get(base, headers=admin.headers)
        unauthenticated = await client.get(base)
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    assert by_admin.status_code == 200
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"


async def test_scope_all_is_for_site_admins(open_app: FastAPI) -> None:
    async with client_for(open_app) as client:
        user = await make_user(open_app, client)
        admin = await make_user(open_app, client, is_superuser=True)
        refused = await create(client, user, status=403, scope="all")
        granted = await create(client, admin, scope="all")
        mine = await create(client, user)
        widen = await client.patch(
            f"/api/v2/webhooks/{mine['id']}", json={"scope": "all"}, headers=user.headers
        )
    assert refused["status"] == 403
    assert granted["scope"] == "all"
    assert widen.status_code == 403


@pytest.mark.parametrize(
    ("events", "status"),
    [
        (["order.*"], 201),
        (["order.paid", "order.cancelled", "order.paid"], 201),
        (["task.*"], 422),
        (["order.shipped"], 422),
        (["webhook.test"], 422),
        ([], 422),
        (["ORDER.*"], 422),
        ("order.*", 422),
    ],
)
async def test_events_are_types_or_prefixes_the_endpoint_can_see(
    open_app: FastAPI, events: Any, status: int
) -> None:
    async with client_for(open_app) as client:
        user = await make_user(open_app, client)
        body = await create(client, user, status=status, events=events)
    if status == 201:
        assert body["events"] == list(dict.fromkeys(events))
    else:
        assert body["status"] == 422
        assert body["errors"][0]["loc"][:2] == ["body", "events"]


async def test_update_delete_and_strict_bodies(open_app: FastAPI) -> None:
    async with client_for(open_app) as client:
        user = await make_user(open_app, client)
        endpoint = await create(client, user, description="first")
        base = f"/api/v2/webhooks/{endpoint['id']}"
        changed = await client.patch(
            base,
            json={"events": ["order.paid"], "description": None, "url": DEAD_URL + "/v2"},
            headers=user.headers,
        )
        null_url = await client.patch(base, json={"url": None}, headers=user.headers)
        unknown = await client.patch(base, json={"secret": "whsec_x"}, headers=user.headers)
        not_bool = await client.patch(base, json={"active": 1}, headers=user.headers)
        deleted = await client.delete(base, headers=user.headers)
        gone = await client.get(base, headers=user.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["order.paid"]
    assert changed.json()["description"] is None
    assert changed.json()["url"] == DEAD_URL + "/v2"
    assert [a.status_code for a in (null_url, unknown, not_bool)] == [422, 422, 422]
    assert deleted.status_code == 204
    assert gone.status_code == 404


async def test_rotate_secret_returns_a_new_one(open_app: FastAPI) -> None:
    async with client_for(open_app) as client:
        user = await make_user(open_app, client)
        endpoint = await create(client, user)
        r = await client.post(
            f"/api/v2/webhooks/{endpoint['id']}/rotate-secret", headers=user.headers
        )
    assert r.status_code == 200, r.text
    assert r.json()["secret"].startswith("whsec_")
    assert r.json()["secret"] != endpoint["secret"]


async def test_test_queues_a_delivery_and_redeliver_sends_the_same_event_again(
    open_app: FastAPI,
) -> None:
    async with client_for(open_app) as client:
        user = await make_user(open_app, client)
        endpoint = await create(client, user)
        base = f"/api/v2/webhooks/{endpoint['id']}"
        queued = await client.post(base + "/test", headers=user.headers)
        assert queued.status_code == 202, queued.text
        test = queued.json()
        again = await client.post(f"{base}/deliveries/{test['id']}/redeliver", headers=user.headers)
        missing = await client.post(f"{base}/deliveries/999999/redeliver", headers=user.headers)
        listed = await client.get(base + "/deliveries", headers=user.headers)
    assert test["event_type"] == "webhook.test"
    assert test["state"] == "pending"
    assert test["attempt"] == 0
    assert again.status_code == 202, again.text
    assert again.json()["event_id"] == test["event_id"]
    assert again.json()["id"] != test["id"]
    assert missing.status_code == 404
    items = listed.json()["items"]
    assert [d["id"] for d in items] == [again.json()["id"], test["id"]]  # newest first
    assert set(items[0]) == {
        "id",
        "event_id",
        "event_type",
        "attempt",
        "status_code",
        "latency_ms",
        "error",
        "next_attempt_at",
        "state",
        "created_at",
        "updated_at",
    }


async def test_a_disabled_endpoint_takes_no_test_and_fails_its_pending_deliveries(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    # A retry an hour away keeps the failed test delivery pending.
    app = await app_factory(settings_factory(webhook_retry_schedule=[3600], **PRIVATE_OK))
    async with client_for(app) as client:
        user = await make_user(app, client)
        endpoint = await create(client, user)
        base = f"/api/v2/webhooks/{endpoint['id']}"
        queued = (await client.post(base + "/test", headers=user.headers)).json()
        disabled = await client.patch(base, json={"active": False}, headers=user.headers)
        refused_test = await client.post(base + "/test", headers=user.headers)
        refused_again = await client.post(
            f"{base}/deliveries/{queued['id']}/redeliver", headers=user.headers
        )
        deliveries = (await client.get(base + "/deliveries", headers=user.headers)).json()
        enabled = await client.patch(base, json={"active": True}, headers=user.headers)
    assert disabled.json()["active"] is False
    assert disabled.json()["disabled_reason"]
    assert refused_test.status_code == 409
    assert refused_test.headers["content-type"] == "application/problem+json"
    assert refused_again.status_code == 409
    assert [d["state"] for d in deliveries["items"]] == ["failed"]
    assert deliveries["items"][0]["next_attempt_at"] is None
    assert enabled.json()["active"] is True
    assert enabled.json()["disabled_reason"] is None


# --- the address rule (OWASP API7) ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.8.9.10:8080/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://[fc00::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://localhost:8000/hook",
        "http://LOCALHOST/hook",
        "ftp://example.com/hook",
        "http://user:pass@example.com/hook",
        "https://",
        "not a url",
    ],
)
async def test_urls_that_could_reach_inside_are_refused_at_registration(
    strict_app: FastAPI, url: str
) -> None:
    async with client_for(strict_app) as client:
        user = await make_user(strict_app, client)
        refused = await client.post("/api/v2/webhooks", json={"url": url}, headers=user.headers)
        endpoint = await client.post(
            "/api/v2/webhooks", json={"url": "https://93.184.215.14/h"}, headers=user.headers
        )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["loc"] == ["body", "url"]
    # A public address is accepted (nothing is sent to it here); a PATCH applies the same rule.
    assert endpoint.status_code == 201, endpoint.text
    async with client_for(strict_app) as client:
        patched = await client.patch(
            f"/api/v2/webhooks/{endpoint.json()['id']}", json={"url": url}, headers=user.headers
        )
    assert patched.status_code == 422


async def test_allow_private_lifts_the_rule_but_not_for_metadata(open_app: FastAPI) -> None:
    async with client_for(open_app) as client:
        user = await make_user(open_app, client)
        answers = {
            url: (await client.post("/api/v2/webhooks", json={"url": url}, headers=user.headers))
            for url in (
                "http://127.0.0.1:9/hook",
                "http://10.1.2.3/hook",
                "http://localhost:9/hook",
                "http://169.254.169.254/latest/meta-data/",
                "http://[fd00:ec2::254]/",
            )
        }
    assert {url: r.status_code for url, r in answers.items()} == {
        "http://127.0.0.1:9/hook": 201,
        "http://10.1.2.3/hook": 201,
        "http://localhost:9/hook": 201,
        "http://169.254.169.254/latest/meta-data/": 422,
        "http://[fd00:ec2::254]/": 422,
    }
