"""Tasks: CRUD, assignment rules, status changes, validation and the activity log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.projects.conftest import Team, make_project, make_task


async def activity(client: httpx.AsyncClient, team: Team, task_id: int) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/tasks/{task_id}/activity", headers=team.viewer.headers)
    assert r.status_code == 200
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_create_read_update_delete(client: httpx.AsyncClient, team: Team) -> None:
    r = await client.post(
        "/api/v1/tasks",
        json={
            "title": "Write docs",
            "description": "API section",
            "project_id": team.project_id,
            "priority": "high",
            "due_date": "2031-05-01T12:00:00+02:00",
        },
        headers=team.member.headers,
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert r.headers["location"] == f"/api/v1/tasks/{task['id']}"
    assert task["status"] == "todo"
    assert task["priority"] == "high"
    assert task["created_by_id"] == team.member.id
    assert task["assignee_id"] is None
    assert datetime.fromisoformat(task["due_date"]) == datetime.fromisoformat(
        "2031-05-01T10:00:00+00:00"
    )
    for stamp in ("created_at", "updated_at", "due_date"):
        assert datetime.fromisoformat(task[stamp]).utcoffset() is not None
    r = await client.get(f"/api/v1/tasks/{task['id']}", headers=team.viewer.headers)
    assert r.json() == task
    r = await client.patch(
        f"/api/v1/tasks/{task['id']}",
        json={"description": None, "due_date": None},
        headers=team.member.headers,
    )
    assert r.status_code == 200
    assert (r.json()["description"], r.json()["due_date"]) == (None, None)
    assert r.json()["title"] == "Write docs"
    r = await client.put(
        f"/api/v1/tasks/{task['id']}",
        json={"title": "Rewritten", "project_id": team.project_id},
        headers=team.member.headers,
    )
    assert r.status_code == 200
    assert (r.json()["title"], r.json()["priority"]) == ("Rewritten", "none")
    r = await client.delete(f"/api/v1/tasks/{task['id']}", headers=team.admin.headers)
    assert r.status_code == 204
    r = await client.get(f"/api/v1/tasks/{task['id']}", headers=team.owner.headers)
    assert r.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "x" * 201},
        {"title": "nul\u0000byte"},
        {"title": "ok", "project_id": 2**31},
        {"title": "ok", "project_id": 0},
        {"title": "ok", "assignee_id": 2**31},
        {"title": "ok", "assignee_id": -1},
        {"title": "ok", "status": "blocked"},
        {"title": "ok", "priority": "critical"},
        {"title": "ok", "due_date": "tomorrow"},
        {"title": "ok", "due_date": "0001-01-01T00:00:00+05:00"},
        {"title": "ok", "created_by_id": 1},
        {"title": "ok", "id": 5},
    ],
)
async def test_create_validation_is_422(
    client: httpx.AsyncClient, team: Team, body: dict[str, object]
) -> None:
    payload = {"project_id": team.project_id, **body}
    r = await client.post("/api/v1/tasks", json=payload, headers=team.member.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"]


async def test_lone_surrogate_is_422_not_500(client: httpx.AsyncClient, team: Team) -> None:
    content = '{"title": "bad \\ud800", "project_id": ' + str(team.project_id) + "}"
    r = await client.post(
        "/api/v1/tasks",
        content=content,
        headers={**team.member.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422


async def test_patch_rejects_nulls_moves_and_unknown_fields(
    client: httpx.AsyncClient, team: Team
) -> None:
    task = await make_task(client, team.owner, team.project_id)
    other = await make_project(client, team.owner, title="Other")
    url = f"/api/v1/tasks/{task['id']}"
    for body in ({"title": None}, {"status": None}, {"project_id": other}, {"owner": 1}):
        r = await client.patch(url, json=body, headers=team.owner.headers)
        assert r.status_code == 422, body
    r = await client.put(url, json={"title": "x", "project_id": other}, headers=team.owner.headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "project_id"]
    r = await client.get(url, headers=team.owner.headers)
    assert r.json()["project_id"] == team.project_id


async def test_huge_path_ids_are_422(client: httpx.AsyncClient, team: Team) -> None:
    task = await make_task(client, team.owner, team.project_id)
    for method, path in (
        ("GET", f"/api/v1/tasks/{2**31}"),
        ("GET", f"/api/v1/projects/{2**63}"),
        ("POST", f"/api/v1/tasks/{task['id']}/assign/{2**40}"),
        ("DELETE", f"/api/v1/projects/{team.project_id}/members/{2**31}"),
    ):
        r = await client.request(method, path, headers=team.owner.headers)
        assert r.status_code == 422, path


@pytest.mark.parametrize("how", ["create", "patch", "assign"])
async def test_assignee_must_be_a_member(client: httpx.AsyncClient, team: Team, how: str) -> None:
    outsider = team.outsider.id
    if how == "create":
        r = await client.post(
            "/api/v1/tasks",
            json={"title": "x", "project_id": team.project_id, "assignee_id": outsider},
            headers=team.owner.headers,
        )
        loc = ["body", "assignee_id"]
    else:
        task = await make_task(client, team.owner, team.project_id)
        if how == "patch":
            r = await client.patch(
                f"/api/v1/tasks/{task['id']}",
                json={"assignee_id": outsider},
                headers=team.owner.headers,
            )
            loc = ["body", "assignee_id"]
        else:
            r = await client.post(
                f"/api/v1/tasks/{task['id']}/assign/{outsider}", headers=team.owner.headers
            )
            loc = ["path", "user_id"]
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == loc
    assert "member" in r.json()["detail"]


async def test_site_admin_non_member_cannot_be_assignee(
    client: httpx.AsyncClient, team: Team
) -> None:
    r = await client.post(
        "/api/v1/tasks",
        json={"title": "x", "project_id": team.project_id, "assignee_id": team.site_admin.id},
        headers=team.site_admin.headers,
    )
    assert r.status_code == 422


async def test_member_self_assignment_rules(client: httpx.AsyncClient, team: Team) -> None:
    me = team.member
    # Creating a task assigned to oneself is fine; to someone else needs admin.
    await make_task(client, me, team.project_id, assignee_id=me.id)
    r = await client.post(
        "/api/v1/tasks",
        json={"title": "x", "project_id": team.project_id, "assignee_id": team.viewer.id},
        headers=me.headers,
    )
    assert r.status_code == 403
    # Taking an unassigned task, then dropping it, is fine.
    task = await make_task(client, team.owner, team.project_id)
    url = f"/api/v1/tasks/{task['id']}"
    r = await client.post(f"{url}/assign/{me.id}", headers=me.headers)
    assert (r.status_code, r.json()["assignee_id"]) == (200, me.id)
    r = await client.patch(url, json={"assignee_id": None}, headers=me.headers)
    assert (r.status_code, r.json()["assignee_id"]) == (200, None)
    # Taking a task from someone else, or giving one away, is not.
    theirs = await make_task(client, team.owner, team.project_id, assignee_id=team.admin.id)
    r = await client.post(f"/api/v1/tasks/{theirs['id']}/assign/{me.id}", headers=me.headers)
    assert r.status_code == 403
    r = await client.patch(url, json={"assignee_id": team.viewer.id}, headers=me.headers)
    assert r.status_code == 403
    # A viewer may not even self-assign.
    r = await client.post(f"{url}/assign/{team.viewer.id}", headers=team.viewer.headers)
    assert r.status_code == 403


async def test_viewer_assignee_may_change_only_the_status(
    client: httpx.AsyncClient, team: Team
) -> None:
    task = await make_task(client, team.owner, team.project_id, assignee_id=team.viewer.id)
    url = f"/api/v1/tasks/{task['id']}"
    r = await client.patch(url, json={"status": "in_progress"}, headers=team.viewer.headers)
    assert (r.status_code, r.json()["status"]) == (200, "in_progress")
    r = await client.patch(
        url, json={"status": "done", "title": "sneaky"}, headers=team.viewer.headers
    )
    assert r.status_code == 403
    # Sending an unchanged field alongside the status is not a change, so it is allowed.
    r = await client.patch(
        url, json={"status": "done", "title": task["title"]}, headers=team.viewer.headers
    )
    assert (r.status_code, r.json()["status"]) == (200, "done")
    r = await client.delete(url, headers=team.viewer.headers)
    assert r.status_code == 403


async def test_activity_log_records_every_change(client: httpx.AsyncClient, team: Team) -> None:
    task = await make_task(client, team.member, team.project_id, title="Log me")
    url = f"/api/v1/tasks/{task['id']}"
    r = await client.patch(
        url, json={"title": "Logged", "priority": "urgent"}, headers=team.member.headers
    )
    assert r.status_code == 200
    r = await client.post(f"{url}/status/done", headers=team.member.headers)
    assert r.status_code == 200
    r = await client.post(f"{url}/assign/{team.viewer.id}", headers=team.admin.headers)
    assert r.status_code == 200
    r = await client.patch(
        url, json={"due_date": "2030-01-02T03:04:05Z"}, headers=team.owner.headers
    )
    assert r.status_code == 200
    # A request that changes nothing logs nothing.
    r = await client.post(f"{url}/status/done", headers=team.member.headers)
    assert r.status_code == 200
    entries = await activity(client, team, task["id"])
    summary = [(e["actor_id"], e["field"], e["old_value"], e["new_value"]) for e in entries]
    assert summary == [
        (team.member.id, "created", None, "Log me"),
        (team.member.id, "title", "Log me", "Logged"),
        (team.member.id, "priority", "none", "urgent"),
        (team.member.id, "status", "todo", "done"),
        (team.admin.id, "assignee_id", None, str(team.viewer.id)),
        (team.owner.id, "due_date", None, "2030-01-02T03:04:05+00:00"),
    ]
    assert all(
        datetime.fromisoformat(str(e["created_at"])).utcoffset() is not None for e in entries
    )
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids)


async def test_activity_is_paginated(client: httpx.AsyncClient, team: Team) -> None:
    task = await make_task(client, team.member, team.project_id)
    url = f"/api/v1/tasks/{task['id']}"
    for status in ("in_progress", "done", "todo", "done"):
        await client.post(f"{url}/status/{status}", headers=team.member.headers)
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await client.get(f"{url}/activity", params=params, headers=team.owner.headers)
        seen += [e["id"] for e in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert seen == sorted(set(seen))


async def test_status_route_rejects_unknown_status(client: httpx.AsyncClient, team: Team) -> None:
    task = await make_task(client, team.owner, team.project_id)
    r = await client.post(f"/api/v1/tasks/{task['id']}/status/blocked", headers=team.owner.headers)
    assert r.status_code == 422
