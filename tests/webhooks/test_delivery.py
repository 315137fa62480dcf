"""Deliveries end to end, in the embedded shape on both databases: a real receiver process
verifies every signature with the `standardwebhooks` package, answers failures for a while,
and deduplicates by webhook-id; the retries arrive, and nothing is accepted twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

from taskhub.config import Settings
from tests.conftest import client_for
from tests.factories import Actor, make_user
from tests.projects.conftest import make_project, make_task
from tests.webhooks.conftest import Receiver

FAST_RETRIES = [0.1, 0.1, 0.1, 0.1]


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
        r = await client.get(
            f"/api/v1/projects/{project_id}/webhooks/{endpoint['id']}/deliveries",
            headers=owner.headers,
        )
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
