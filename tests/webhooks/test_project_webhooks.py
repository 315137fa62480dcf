"""A project's webhook endpoints follow the projects' role matrix: its admins and owner (and
site admins) manage them; a member or viewer gets 403, a non-member 404, for every
operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from taskhub.config import Settings
from tests.conftest import client_for
from tests.projects.conftest import Team, build_team

DEAD_URL = "http://127.0.0.1:9/hooks"
ALLOWED = {"owner", "admin", "site_admin"}


@pytest.fixture
async def open_app(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> FastAPI:
    """Loopback URLs allowed; a failed attempt is final (nothing waits for retries)."""
    settings = settings_factory(webhook_allow_private=True, webhook_retry_schedule=[])
    return await app_factory(settings)


async def _operations(
    client: httpx.AsyncClient, team: Team, headers: dict[str, str]
) -> dict[str, httpx.Response]:
    """Every operation on the project's endpoints, as the caller of `headers`, on an endpoint
    (and a delivery) the owner made."""
    base = f"/api/v1/projects/{team.project_id}/webhooks"
    owner = team.owner.headers
    made = await client.post(base, json={"url": DEAD_URL, "events": ["task.*"]}, headers=owner)
    assert made.status_code == 201, made.text
    one = f"{base}/{made.json()['id']}"
    test = await client.post(one + "/test", headers=owner)
    assert test.status_code == 202, test.text
    delivery = test.json()["id"]
    return {
        "create": await client.post(base, json={"url": DEAD_URL}, headers=headers),
        "list": await client.get(base, headers=headers),
        "read": await client.get(one, headers=headers),
        "update": await client.patch(one, json={"description": "d"}, headers=headers),
        "rotate": await client.post(one + "/rotate-secret", headers=headers),
        "test": await client.post(one + "/test", headers=headers),
        "deliveries": await client.get(one + "/deliveries", headers=headers),
        "redeliver": await client.post(f"{one}/deliveries/{delivery}/redeliver", headers=headers),
        "delete": await client.delete(one, headers=headers),
    }


SUCCESS = {
    "create": 201,
    "list": 200,
    "read": 200,
    "update": 200,
    "rotate": 200,
    "test": 202,
    "deliveries": 200,
    "redeliver": 202,
    "delete": 204,
}


@pytest.mark.parametrize("who", ["owner", "admin", "member", "viewer", "outsider", "site_admin"])
async def test_the_role_matrix_of_project_webhooks(open_app: FastAPI, who: str) -> None:
    async with client_for(open_app) as client:
        team = await build_team(open_app, client)
        answers = await _operations(client, team, team.actor(who).headers)
    if who in ALLOWED:
        expected = SUCCESS
    else:
        expected = dict.fromkeys(SUCCESS, 404 if who == "outsider" else 403)
    assert {op: r.status_code for op, r in answers.items()} == expected
    for r in answers.values():
        if r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json"
    if who in ALLOWED:
        created = answers["create"]
        assert created.json()["scope"] == "project"
        assert created.json()["project_id"] == team.project_id
        assert created.json()["events"] == ["task.*", "member.*"]
        assert created.headers["location"] == (
            f"/api/v1/projects/{team.project_id}/webhooks/{created.json()['id']}"
        )


async def test_project_endpoints_are_not_order_endpoints(open_app: FastAPI) -> None:
    async with client_for(open_app) as client:
        team = await build_team(open_app, client)
        base = f"/api/v1/projects/{team.project_id}/webhooks"
        made = await client.post(base, json={"url": DEAD_URL}, headers=team.owner.headers)
        wrong_events = await client.post(
            base, json={"url": DEAD_URL, "events": ["order.*"]}, headers=team.owner.headers
        )
        no_scope = await client.post(
            base, json={"url": DEAD_URL, "scope": "all"}, headers=team.owner.headers
        )
        as_order_endpoint = await client.get(
            f"/api/v2/webhooks/{made.json()['id']}", headers=team.site_admin.headers
        )
        other_project = await client.post(
            "/api/v1/projects", json={"title": "Other"}, headers=team.owner.headers
        )
        elsewhere = await client.get(
            f"/api/v1/projects/{other_project.json()['id']}/webhooks/{made.json()['id']}",
            headers=team.owner.headers,
        )
    assert made.status_code == 201
    assert wrong_events.status_code == 422
    assert no_scope.status_code == 422
    assert as_order_endpoint.status_code == 404
    assert elsewhere.status_code == 404
