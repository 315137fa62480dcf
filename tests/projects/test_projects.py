"""Projects: creation and ownership, visibility, updates, deletion, validation."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from taskhub.models import ProjectMember, Task, TaskActivity
from tests.factories import make_user
from tests.projects.conftest import Team, make_project, make_task


async def test_create_makes_the_creator_the_owner(app: FastAPI, client: httpx.AsyncClient) -> None:
    owner = await make_user(app, client)
    r = await client.post(
        "/api/v1/projects",
        json={"title": "Launch", "description": "Q3 launch"},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    project = r.json()
    assert r.headers["location"] == f"/api/v1/projects/{project['id']}"
    assert project["owner_id"] == owner.id
    assert project["my_role"] == "owner"
    assert (project["title"], project["description"]) == ("Launch", "Q3 launch")
    for stamp in ("created_at", "updated_at"):
        assert datetime.fromisoformat(project[stamp]).utcoffset() is not None
    r = await client.get(f"/api/v1/projects/{project['id']}/members", headers=owner.headers)
    assert [(m["user_id"], m["role"]) for m in r.json()["items"]] == [(owner.id, "owner")]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "x" * 201},
        {"title": "ok", "owner_id": 1},
        {"title": "ok", "id": 7},
        {"title": "a\u0000b"},
        {"title": "ok", "description": "d" * 20_001},
        {"title": None},
    ],
)
async def test_create_validation(
    app: FastAPI, client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    user = await make_user(app, client)
    r = await client.post("/api/v1/projects", json=body, headers=user.headers)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


async def test_requires_authentication(client: httpx.AsyncClient) -> None:
    for method, path in (("GET", "/api/v1/projects"), ("GET", "/api/v1/tasks")):
        r = await client.request(method, path)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"


async def test_list_shows_member_projects_and_paginates(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = await make_user(app, client)
    bob = await make_user(app, client)
    admin = await make_user(app, client, is_superuser=True)
    mine = [await make_project(client, alice, title=f"a{i}") for i in range(5)]
    theirs = await make_project(client, bob, title="b")
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/v1/projects", params=params, headers=alice.headers)
        assert r.status_code == 200
        seen += [p["id"] for p in r.json()["items"]]
        assert all(p["my_role"] == "owner" for p in r.json()["items"])
        assert all(p["owner_id"] == alice.id for p in r.json()["items"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == mine
    r = await client.get("/api/v1/projects", headers=admin.headers)
    items = r.json()["items"]
    assert [p["id"] for p in items] == [*mine, theirs]
    assert {p["my_role"] for p in items} == {None}
    assert items[-1]["owner_id"] == bob.id


async def test_patch_and_put(client: httpx.AsyncClient, team: Team) -> None:
    url = f"/api/v1/projects/{team.project_id}"
    r = await client.patch(url, json={"description": "first"}, headers=team.admin.headers)
    assert r.status_code == 200
    assert r.json()["description"] == "first"
    assert r.json()["my_role"] == "admin"
    assert r.json()["owner_id"] == team.owner.id
    r = await client.patch(url, json={"title": "Renamed"}, headers=team.admin.headers)
    assert (r.json()["title"], r.json()["description"]) == ("Renamed", "first")
    # PUT replaces: an omitted description is cleared.
    r = await client.put(url, json={"title": "Replaced"}, headers=team.owner.headers)
    assert r.status_code == 200
    assert (r.json()["title"], r.json()["description"]) == ("Replaced", None)
    for body in ({"title": None}, {"owner_id": team.admin.id}):
        r = await client.patch(url, json=body, headers=team.owner.headers)
        assert r.status_code == 422
    r = await client.put(url, json={"description": "no title"}, headers=team.owner.headers)
    assert r.status_code == 422
    r = await client.get(url, headers=team.viewer.headers)
    assert r.json()["title"] == "Replaced"


async def test_delete_removes_members_tasks_and_activity(
    app: FastAPI, client: httpx.AsyncClient, team: Team
) -> None:
    task = await make_task(client, team.owner, team.project_id, assignee_id=team.member.id)
    r = await client.delete(f"/api/v1/projects/{team.project_id}", headers=team.owner.headers)
    assert r.status_code == 204
    r = await client.get(f"/api/v1/projects/{team.project_id}", headers=team.site_admin.headers)
    assert r.status_code == 404
    r = await client.get(f"/api/v1/tasks/{task['id']}", headers=team.site_admin.headers)
    assert r.status_code == 404
    async with app.state.sessionmaker() as session:
        for model in (ProjectMember, Task, TaskActivity):
            assert await session.scalar(select(func.count()).select_from(model)) == 0


async def test_trailing_slash_is_tolerated(client: httpx.AsyncClient, team: Team) -> None:
    r = await client.get("/api/v1/projects/", headers=team.viewer.headers)
    assert r.status_code == 200
    assert [p["id"] for p in r.json()["items"]] == [team.project_id]
