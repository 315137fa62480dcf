"""The role matrix of design §4: every action × every kind of caller, exact status codes.

Callers: the four project roles, a non-member (404 for everything, never 403), and a site
admin who is not a member (allowed everything an owner is).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Actor, make_user
from tests.projects.conftest import Team, add_member, build_team, make_task

WHO = ("viewer", "member", "admin", "owner", "outsider", "site_admin")
Action = Callable[[httpx.AsyncClient, FastAPI, Team, Actor], Awaitable[httpx.Response]]


def expect(
    viewer: int, member: int, admin: int, owner: int, outsider: int, site_admin: int
) -> dict[str, int]:
    """The expected status for each caller, in WHO order."""
    return dict(zip(WHO, (viewer, member, admin, owner, outsider, site_admin), strict=True))


async def _task(client: httpx.AsyncClient, team: Team, **fields: object) -> int:
    task = await make_task(client, team.owner, team.project_id, **fields)
    task_id: int = task["id"]
    return task_id


# --- read ----------------------------------------------------------------------------------


async def read_project(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    return await c.get(f"/api/v1/projects/{t.project_id}", headers=a.headers)


async def read_members(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    return await c.get(f"/api/v1/projects/{t.project_id}/members", headers=a.headers)


async def read_member(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    return await c.get(f"/api/v1/projects/{t.project_id}/members/{t.owner.id}", headers=a.headers)


async def read_task(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    return await c.get(f"/api/v1/tasks/{await _task(c, t)}", headers=a.headers)


async def read_activity(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    return await c.get(f"/api/v1/tasks/{await _task(c, t)}/activity", headers=a.headers)


# --- tasks ---------------------------------------------------------------------------------


async def create_task(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    return await c.post(
        "/api/v1/tasks", json={"title": "new", "project_id": t.project_id}, headers=a.headers
    )


async def patch_task(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    task_id = await _task(c, t)
    return await c.patch(f"/api/v1/tasks/{task_id}", json={"title": "edited"}, headers=a.headers)


async def put_task(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    task_id = await _task(c, t)
    body = {"title": "replaced", "priority": "high"}
    return await c.put(f"/api/v1/tasks/{task_id}", json=body, headers=a.headers)


async def status_of_others_task(
    c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor
) -> httpx.Response:
    task_id = await _task(c, t, assignee_id=t.owner.id)
    return await c.post(f"/api/v1/tasks/{task_id}/status/done", headers=a.headers)


async def status_of_my_task(
    c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor
) -> httpx.Response:
    # Outsiders and site admins cannot be assignees (not members): theirs is the owner's task.
    mine = a.id in (t.viewer.id, t.member.id, t.admin.id, t.owner.id)
    task_id = await _task(c, t, assignee_id=a.id if mine else t.owner.id)
    return await c.post(f"/api/v1/tasks/{task_id}/status/in_progress", headers=a.headers)


async def patch_status_of_my_task(
    c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor
) -> httpx.Response:
    mine = a.id in (t.viewer.id, t.member.id, t.admin.id, t.owner.id)
    task_id = await _task(c, t, assignee_id=a.id if mine else t.owner.id)
    return await c.patch(f"/api/v1/tasks/{task_id}", json={"status": "done"}, headers=a.headers)


async def assign_task(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    task_id = await _task(c, t)
    return await c.post(f"/api/v1/tasks/{task_id}/assign/{t.viewer.id}", headers=a.headers)


async def delete_task(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    return await c.delete(f"/api/v1/tasks/{await _task(c, t)}", headers=a.headers)


# --- project and members -------------------------------------------------------------------


async def patch_project(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    return await c.patch(
        f"/api/v1/projects/{t.project_id}", json={"title": "renamed"}, headers=a.headers
    )


async def put_project(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    body = {"title": "replaced", "description": "all new"}
    return await c.put(f"/api/v1/projects/{t.project_id}", json=body, headers=a.headers)


async def add_viewer(c: httpx.AsyncClient, app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    newcomer = await make_user(app, c, login=False)
    return await c.put(
        f"/api/v1/projects/{t.project_id}/members/{newcomer.id}",
        json={"role": "viewer"},
        headers=a.headers,
    )


async def promote_viewer(c: httpx.AsyncClient, app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    extra = await make_user(app, c, login=False)
    await add_member(c, t.project_id, by=t.owner, user=extra, role="viewer")
    return await c.put(
        f"/api/v1/projects/{t.project_id}/members/{extra.id}",
        json={"role": "member"},
        headers=a.headers,
    )


async def remove_viewer(c: httpx.AsyncClient, app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    extra = await make_user(app, c, login=False)
    await add_member(c, t.project_id, by=t.owner, user=extra, role="viewer")
    return await c.delete(f"/api/v1/projects/{t.project_id}/members/{extra.id}", headers=a.headers)


async def grant_admin(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    # Admin is not below an admin's own rank, so only the owner (and site admins) may grant it.
    target = t.viewer if a.id != t.viewer.id else t.member
    return await c.put(
        f"/api/v1/projects/{t.project_id}/members/{target.id}",
        json={"role": "admin"},
        headers=a.headers,
    )


async def delete_project(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    return await c.delete(f"/api/v1/projects/{t.project_id}", headers=a.headers)


async def transfer(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    target = t.member if a.id != t.member.id else t.viewer
    return await c.post(
        f"/api/v1/projects/{t.project_id}/transfer-ownership",
        json={"user_id": target.id},
        headers=a.headers,
    )


async def put_owner_role(c: httpx.AsyncClient, _app: FastAPI, t: Team, a: Actor) -> httpx.Response:
    target = t.member if a.id != t.member.id else t.viewer
    return await c.put(
        f"/api/v1/projects/{t.project_id}/members/{target.id}",
        json={"role": "owner"},
        headers=a.headers,
    )


MATRIX: list[tuple[Action, dict[str, int]]] = [
    (read_project, expect(200, 200, 200, 200, 404, 200)),
    (read_members, expect(200, 200, 200, 200, 404, 200)),
    (read_member, expect(200, 200, 200, 200, 404, 200)),
    (read_task, expect(200, 200, 200, 200, 404, 200)),
    (read_activity, expect(200, 200, 200, 200, 404, 200)),
    (create_task, expect(403, 201, 201, 201, 404, 201)),
    (patch_task, expect(403, 200, 200, 200, 404, 200)),
    (put_task, expect(403, 200, 200, 200, 404, 200)),
    (status_of_others_task, expect(403, 200, 200, 200, 404, 200)),
    (status_of_my_task, expect(200, 200, 200, 200, 404, 200)),
    (patch_status_of_my_task, expect(200, 200, 200, 200, 404, 200)),
    (assign_task, expect(403, 403, 200, 200, 404, 200)),
    (delete_task, expect(403, 403, 204, 204, 404, 204)),
    (patch_project, expect(403, 403, 200, 200, 404, 200)),
    (put_project, expect(403, 403, 200, 200, 404, 200)),
    (add_viewer, expect(403, 403, 201, 201, 404, 201)),
    (promote_viewer, expect(403, 403, 200, 200, 404, 200)),
    (remove_viewer, expect(403, 403, 204, 204, 404, 204)),
    (grant_admin, expect(403, 403, 403, 200, 404, 200)),
    (delete_project, expect(403, 403, 403, 204, 404, 204)),
    (transfer, expect(403, 403, 403, 200, 404, 200)),
    (put_owner_role, expect(403, 403, 403, 200, 404, 200)),
]
CASES = [
    pytest.param(action, who, statuses[who], id=f"{action.__name__}-{who}")
    for action, statuses in MATRIX
    for who in WHO
]


@pytest.mark.parametrize(("action", "who", "status"), CASES)
async def test_role_matrix(
    app: FastAPI, client: httpx.AsyncClient, action: Action, who: str, status: int
) -> None:
    team = await build_team(app, client)
    response = await action(client, app, team, team.actor(who))
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("who", WHO)
async def test_task_list_shows_only_member_projects(
    client: httpx.AsyncClient, team: Team, who: str
) -> None:
    await make_task(client, team.owner, team.project_id, title="visible to members")
    r = await client.get(
        "/api/v1/tasks", params={"project_id": team.project_id}, headers=team.actor(who).headers
    )
    assert r.status_code == 200
    titles = [t["title"] for t in r.json()["items"]]
    assert titles == ([] if who == "outsider" else ["visible to members"])


async def test_unknown_project_and_task_are_404_like_hidden_ones(
    client: httpx.AsyncClient, team: Team
) -> None:
    hidden = await make_task(client, team.owner, team.project_id)
    for path in ("/api/v1/projects/999999", "/api/v1/tasks/999999"):
        r = await client.get(path, headers=team.member.headers)
        assert r.status_code == 404
    r = await client.get(f"/api/v1/tasks/{hidden['id']}", headers=team.outsider.headers)
    assert r.status_code == 404
    r = await client.post(
        "/api/v1/tasks", json={"title": "x", "project_id": 999999}, headers=team.member.headers
    )
    assert r.status_code == 404
    r = await client.post(
        "/api/v1/tasks",
        json={"title": "x", "project_id": team.project_id},
        headers=team.outsider.headers,
    )
    assert r.status_code == 404
