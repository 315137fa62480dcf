"""Deliveries end to end, in the embedded shape on both databases: a real receiver process
verifies every signature with the `standardwebhooks` package, answers failures for a while,
and deduplicates by webhook-id; the retries arrive, and nothing is accepted twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from taskhub.config import Settings
from taskhub.models import OutboxEvent, WebhookDelivery
from taskhub.webhooks import signing
from tests.commerce.conftest import make_product, place_order, wait_settled
from tests.conftest import client_for, started_apps
from tests.factories import Actor, make_user
from tests.polling import eventually
from tests.projects.conftest import make_project, make_task
from tests.webhooks.conftest import Receiver

FAST_RETRIES = [0.1, 0.1, 0.1, 0.1]


async def all_events_handled(app: FastAPI) -> None:
    """Wait until the embedded dispatcher applied every event written so far."""

    async def handled() -> bool:
        async with app.state.sessionmaker() as session:
            waiting = await session.scalar(
                select(func.count()).where(OutboxEvent.published_at.is_(None))
            )
        return bool(waiting == 0)

    async with asyncio.timeout(30):
        while not await handled():
            await asyncio.sleep(0.02)


async def project_webhook(
    client: httpx.AsyncClient, actor: Actor, project_id: int, url: str, **body: Any
) -> dict[str, Any]:
    """Register a project endpoint; its JSON (with the secret)."""
    r = await client.post(
        f"/api/v1/projects/{project_id}/webhooks", json={"url": url, **body}, headers=actor.headers
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_retries_arrive_and_a_deduplicating_receiver_accepts_each_event_once(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    settings = settings_factory(webhook_allow_private=True, webhook_retry_schedule=FAST_RETRIES)
    app = await app_factory(settings)
    receiver = await receivers()
    async with client_for(app) as client:
        owner = await make_user(app, client)
        project_id = await make_project(client, owner)
        endpoint = await project_webhook(
            client, owner, project_id, receiver.url(), events=["task.*"]
        )
        await receiver.control(secret=endpoint["secret"], fail_remaining=3)
        tasks = [await make_task(client, owner, project_id, title=f"T{i}") for i in range(3)]
        report = await receiver.wait_for(
            lambda r: len(r["accepted"]) == 3, timeout=30, what="three task.created events"
        )
        listing = f"/api/v1/projects/{project_id}/webhooks/{endpoint['id']}/deliveries"

        async def recorded() -> bool:
            # The receiver's answer comes before the outcome is recorded.
            r = await client.get(listing, headers=owner.headers)
            return all(d["state"] != "pending" for d in r.json()["items"])

        await eventually(recorded, timeout=30, what="the outcomes to be recorded")
        r = await client.get(listing, headers=owner.headers)
    assert r.status_code == 200, r.text
    deliveries = r.json()["items"]
    assert report["rejected"] == []
    assert sorted(a["event"]["payload"]["task_id"] for a in report["accepted"]) == sorted(
        t["id"] for t in tasks
    )
    assert {a["event"]["type"] for a in report["accepted"]} == {"task.created"}
    # Three failed requests, then every event once more: the retries arrived.
    assert sum(report["requests"].values()) == 3 + 3
    assert {d["state"] for d in deliveries} == {"succeeded"}
    assert sum(d["attempt"] for d in deliveries) == 6
    assert [d["id"] for d in deliveries] == sorted((d["id"] for d in deliveries), reverse=True)


async def order_webhook(
    client: httpx.AsyncClient, actor: Actor, url: str, **body: Any
) -> dict[str, Any]:
    """Register an order endpoint; its JSON (with the secret)."""
    r = await client.post("/api/v2/webhooks", json={"url": url, **body}, headers=actor.headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_order_events_reach_their_owner_and_the_all_scope_only(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    app = await app_factory(settings_factory(webhook_allow_private=True))
    mine, theirs, everyone = await receivers(), await receivers(), await receivers()
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        alice = await make_user(app, client)
        bob = await make_user(app, client)
        for receiver, actor, body in (
            (mine, alice, {}),
            (theirs, bob, {}),
            (everyone, admin, {"scope": "all", "events": ["order.created"]}),
        ):
            endpoint = await order_webhook(client, actor, receiver.url(), **body)
            await receiver.control(secret=endpoint["secret"])
        product = await make_product(client, admin, stock=5)
        r = await place_order(client, alice, [(product, 2)])
        assert r.status_code == 201, r.text
        order = r.json()
        got = await mine.wait_for(
            lambda r: (
                {"order.created", "order.reserved"} <= {a["event"]["type"] for a in r["accepted"]}
            ),
            timeout=30,
            what="alice's order events",
        )
        await everyone.wait_for(lambda r: len(r["accepted"]) == 1, timeout=30, what="the admin's")
        # Whatever bob's endpoint would have been sent was queued in the same transactions.
        await wait_settled(client, alice, [order["id"]])
        async with app.state.sessionmaker() as session:
            queued = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert queued == 3  # alice: created + reserved; the admin: created
    assert (await theirs.received())["requests"] == {}
    created = next(a for a in got["accepted"] if a["event"]["type"] == "order.created")
    assert created["event"]["payload"] == {
        "order_id": order["id"],
        "user_id": alice.id,
        "status": "PENDING",
        "total_cents": order["total_cents"],
    }
    assert created["webhook_id"] == created["event"]["id"]  # webhook-id is the event id
    assert created["content_type"] == "application/json"
    assert created["signatures"] == 1
    assert set(created["event"]) == {
        "id",
        "type",
        "occurred_at",
        "version",
        "payload",
        "request_id",
    }
    assert abs(int(created["timestamp"]) - time.time()) < 300
    (admin_view,) = (await everyone.received())["accepted"]
    assert admin_view["webhook_id"] == created["webhook_id"]


async def test_ten_failed_deliveries_in_a_row_disable_the_endpoint(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    # No retries: each delivery fails on its first attempt.
    app = await app_factory(settings_factory(webhook_allow_private=True, webhook_retry_schedule=[]))
    receiver = await receivers()
    async with client_for(app) as client:
        owner = await make_user(app, client)
        project_id = await make_project(client, owner)
        endpoint = await project_webhook(
            client, owner, project_id, receiver.url(), events=["task.created"]
        )
        base = f"/api/v1/projects/{project_id}/webhooks/{endpoint['id']}"
        await receiver.control(secret=endpoint["secret"], fail_remaining=1000, fail_status=503)

        async def recorded(**states: int) -> None:
            async def reached() -> bool:
                r = await client.get(base + "/deliveries?limit=200", headers=owner.headers)
                found = [d["state"] for d in r.json()["items"]]
                return all(found.count(state) == n for state, n in states.items())

            await eventually(reached, timeout=30, what=f"deliveries {states}")

        # Nine failures, a success (which resets the count), then ten failures; each step
        # recorded before the next (deliveries settle concurrently, in any order).
        for _ in range(9):
            await make_task(client, owner, project_id)
        await recorded(failed=9)
        await receiver.control(fail_remaining=0)
        await make_task(client, owner, project_id)
        await recorded(failed=9, succeeded=1)
        await receiver.control(fail_remaining=1000)
        for _ in range(9):
            await make_task(client, owner, project_id)
        await recorded(failed=18, succeeded=1)
        still = (await client.get(base, headers=owner.headers)).json()
        await make_task(client, owner, project_id)

        async def disabled() -> bool:
            return (await client.get(base, headers=owner.headers)).json()["active"] is False

        await eventually(disabled, timeout=30, what="the endpoint to be disabled")
        after = (await client.get(base, headers=owner.headers)).json()
        await make_task(client, owner, project_id)  # not queued: the endpoint is disabled
        await all_events_handled(app)
        deliveries = (
            await client.get(base + "/deliveries?limit=200", headers=owner.headers)
        ).json()
        metrics = (await client.get("/metrics")).text
    assert still["active"] is True
    assert after["disabled_reason"].startswith("10 consecutive deliveries failed")
    assert "HTTP 503" in after["disabled_reason"]
    assert len(deliveries["items"]) == 20
    assert [d["state"] for d in deliveries["items"]].count("failed") == 19
    assert all(d["status_code"] in (200, 503) for d in deliveries["items"])
    assert "taskhub_webhook_endpoints_disabled 1.0" in metrics
    assert 'taskhub_webhook_deliveries_total{result="failed"}' in metrics


async def test_redirects_are_not_followed(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    # The first hop must be allowed to be reached at all here (a loopback receiver); the
    # redirect's target, a private address, is never contacted whatever the address rule.
    app = await app_factory(settings_factory(webhook_allow_private=True, webhook_retry_schedule=[]))
    redirecting, target = await receivers(), await receivers()
    await redirecting.control(redirect_to=target.url("/internal/admin"))
    async with client_for(app) as client:
        user = await make_user(app, client)
        endpoint = await order_webhook(client, user, redirecting.url())
        base = f"/api/v2/webhooks/{endpoint['id']}"
        await client.post(base + "/test", headers=user.headers)

        async def settled() -> bool:
            items = (await client.get(base + "/deliveries", headers=user.headers)).json()["items"]
            return bool(items[0]["state"] != "pending")

        await eventually(settled, timeout=30, what="the test delivery to settle")
        (delivery,) = (await client.get(base + "/deliveries", headers=user.headers)).json()["items"]
    assert delivery["state"] == "failed"
    assert delivery["status_code"] == 307
    assert "redirects are not followed" in delivery["error"]
    assert len((await redirecting.received())["requests"]) == 1
    assert (await target.received())["requests"] == {}


async def test_the_address_is_checked_again_at_delivery(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    receiver = await receivers()
    # Registered while loopback was allowed (as a name that resolved to a public address
    # could later resolve to loopback: DNS rebinding)...
    async with started_apps() as start:
        lenient = await start(settings_factory(webhook_allow_private=True))
        async with client_for(lenient) as client:
            user = await make_user(lenient, client)
            endpoint = await order_webhook(client, user, receiver.url())
    # ...and delivered by a process that refuses it.
    strict = await app_factory(settings_factory(webhook_retry_schedule=[]))
    base = f"/api/v2/webhooks/{endpoint['id']}"
    async with client_for(strict) as client:
        queued = await client.post(base + "/test", headers=user.headers)
        assert queued.status_code == 202, queued.text

        async def settled() -> bool:
            items = (await client.get(base + "/deliveries", headers=user.headers)).json()["items"]
            return bool(items[0]["state"] != "pending")

        await eventually(settled, timeout=30, what="the test delivery to settle")
        (delivery,) = (await client.get(base + "/deliveries", headers=user.headers)).json()["items"]
    assert delivery["state"] == "failed"
    assert delivery["status_code"] is None
    assert delivery["error"].startswith("refused: 127.0.0.1 is a loopback address")
    assert (await receiver.received())["requests"] == {}


async def test_after_a_rotation_both_secrets_sign_and_a_slow_answer_is_retried(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    settings = settings_factory(
        webhook_allow_private=True, webhook_retry_schedule=[0.1], webhook_timeout_seconds=0.5
    )
    app = await app_factory(settings)
    old_secret_receiver = await receivers()
    async with client_for(app) as client:
        user = await make_user(app, client)
        endpoint = await order_webhook(client, user, old_secret_receiver.url())
        base = f"/api/v2/webhooks/{endpoint['id']}"
        rotated = (await client.post(base + "/rotate-secret", headers=user.headers)).json()
        # The receiver still knows only the old secret, and answers too slowly at first.
        await old_secret_receiver.control(secret=endpoint["secret"], delay=1.5)
        queued = (await client.post(base + "/test", headers=user.headers)).json()
        await old_secret_receiver.wait_for(
            lambda r: sum(r["requests"].values()) >= 1, timeout=30, what="a first attempt"
        )
        await old_secret_receiver.control(delay=0)

        async def settled() -> bool:
            items = (await client.get(base + "/deliveries", headers=user.headers)).json()["items"]
            return bool(items[0]["state"] != "pending")

        await eventually(settled, timeout=30, what="the test delivery to settle")
        (delivery,) = (await client.get(base + "/deliveries", headers=user.headers)).json()["items"]
    report = await old_secret_receiver.received()
    assert rotated["secret"] != endpoint["secret"]
    assert delivery["id"] == queued["id"]
    assert delivery["state"] == "succeeded"
    assert delivery["attempt"] == 2
    (accepted,) = report["accepted"]
    assert accepted["signatures"] == 2
    assert accepted["event"]["type"] == "webhook.test"
    assert accepted["event"]["payload"] == {"webhook_id": endpoint["id"]}
    assert accepted["webhook_id"] == queued["event_id"]
    # The new secret verifies the same request too.
    headers = {
        "webhook-id": accepted["webhook_id"],
        "webhook-timestamp": accepted["timestamp"],
        "webhook-signature": accepted["signature"],
    }
    assert Webhook(rotated["secret"]).verify(accepted["body"], headers) == accepted["event"]
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(accepted["body"], headers)
