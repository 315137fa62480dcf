"""GET /api/v1/projects/{id}/events: a project's task and member events, for its members
only; a stream ends when its member is removed, logs out or is deactivated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from taskhub.config import Settings
from tests.factories import Actor, make_user
from tests.live.conftest import LIVE_SETTINGS, emit_event, quiet
from tests.live.sse import open_stream, refused, served


async def make_project(client: httpx.AsyncClient, owner: Actor, *members: Actor) -> int:
    created = await client.post("/api/v1/projects", json={"title": "Live"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    project_id: int = created.json()["id"]
    for member in members:
        added = await client.put(
            f"/api/v1/projects/{project_id}/members/{member.id}",
            json={"role": "viewer"},
            headers=owner.headers,
        )
        assert added.status_code == 201, added.text
    return project_id


def events_of(project_id: int) -> str:
    return f"/api/v1/projects/{project_id}/events"


async def test_members_get_their_projects_task_and_member_events(
    live_app: FastAPI, http: httpx.AsyncClient
) -> None:
    owner, member, admin = (
        await make_user(live_app, http),
        await make_user(live_app, http),
        await make_user(live_app, http, is_superuser=True),
    )
    project = await make_project(http, owner, member)
    other = await make_project(http, owner)
    # The projects' own events (the member's member.added) are dispatched before the streams
    # open: they would otherwise arrive first, whenever the dispatcher gets to them.
    await quiet(live_app)
    async with (
        open_stream(http, events_of(project), headers=member.headers) as members,
        open_stream(http, events_of(project), headers=admin.headers) as admins,
    ):
        await emit_event(live_app, "task.created", {"task_id": 1, "project_id": other})
        await emit_event(live_app, "order.created", {"order_id": 1, "user_id": member.id})
        await emit_event(live_app, "task.created", {"task_id": 2, "project_id": project})
        await emit_event(
            live_app,
            "task.updated",
            {"task_id": 2, "project_id": project, "changes": {"status": ["todo", "done"]}},
        )
        await emit_event(
            live_app, "member.added", {"project_id": project, "user_id": 99, "role": "member"}
        )
        got = await members.take(3)
        assert [m.event for m in await admins.take(3)] == [m.event for m in got]
        assert members.messages.empty()
    assert [m.event for m in got] == ["task.created", "task.updated", "member.added"]
    assert {m.envelope["payload"]["project_id"] for m in got} == {project}


async def test_a_non_member_gets_404_like_every_project_route(
    live_app: FastAPI, http: httpx.AsyncClient
) -> None:
    owner, stranger = await make_user(live_app, http), await make_user(live_app, http)
    project = await make_project(http, owner)
    answer = await refused(http, events_of(project), headers=stranger.headers)
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert (await refused(http, events_of(10_000), headers=owner.headers)).status_code == 404
    assert (await refused(http, events_of(project))).status_code == 401


@pytest.mark.parametrize("how", ["removed", "logout", "logout-all", "deactivated", "password"])
async def test_a_stream_ends_when_its_user_may_no_longer_watch(
    live_app: FastAPI, http: httpx.AsyncClient, how: str
) -> None:
    owner, member = await make_user(live_app, http), await make_user(live_app, http)
    admin = await make_user(live_app, http, is_superuser=True)
    project = await make_project(http, owner, member)
    orders = open_stream(http, "/api/v2/orders/events", headers=member.headers)
    tasks = open_stream(http, events_of(project), headers=member.headers)
    async with orders as order_stream, tasks as task_stream:
        await emit_event(live_app, "task.created", {"task_id": 1, "project_id": project})
        await task_stream.take(1)
        if how == "removed":
            r = await http.delete(
                f"/api/v1/projects/{project}/members/{member.id}", headers=owner.headers
            )
        elif how in ("logout", "logout-all"):
            r = await http.post(f"/api/v1/auth/{how}", headers=member.headers)
        elif how == "deactivated":
            r = await http.patch(
                f"/api/v1/users/{member.id}", json={"is_active": False}, headers=admin.headers
            )
        else:
            r = await http.patch(
                "/api/v1/users/me",
                json={"password": "Another-pass-1", "current_password": member.password},
                headers=member.headers,
            )
        assert r.status_code in (200, 204), r.text
        # The stream ends by itself (the test only waits for it: no timing is asserted).
        await task_stream.until_ended()
        assert any(c.startswith("stream ended") for c in task_stream.comments)
        await emit_event(live_app, "task.created", {"task_id": 2, "project_id": project})
        if how == "removed":
            # Still a user in good standing: the orders stream goes on.
            await emit_event(live_app, "order.created", {"order_id": 5, "user_id": member.id})
            assert (await order_stream.next()).event == "order.created"  # type: ignore[union-attr]
        else:
            await order_stream.until_ended()
    assert (await refused(http, events_of(project), headers=member.headers)).status_code in (
        401,
        404,
    )


async def test_member_removed_ends_the_stream_at_once(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    # No periodic re-check here: the event itself ends the removed member's stream.
    app = await app_factory(settings_factory(**{**LIVE_SETTINGS, "live_recheck_seconds": 3600}))
    async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        owner, member, other = (
            await make_user(app, http),
            await make_user(app, http),
            await make_user(app, http),
        )
        project = await make_project(http, owner, member, other)
        async with (
            open_stream(http, events_of(project), headers=member.headers) as members,
            open_stream(http, events_of(project), headers=other.headers) as others,
        ):
            removed = {"project_id": project, "user_id": member.id, "role": "viewer"}
            await emit_event(app, "member.removed", removed)
            # The removed member gets the event of their removal, then the end (the events of
            # the project's set-up may still be on their way: they come before).
            ended = await members.until_ended()
            assert [m.event for m in ended if m.event != "member.added"] == ["member.removed"]
            await emit_event(app, "task.created", {"task_id": 3, "project_id": project})
            seen = await others.take_until("task.created", skip=frozenset({"member.added"}))
            assert [m.event for m in seen] == ["member.removed", "task.created"]
            assert not others.ended
