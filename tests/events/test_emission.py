"""Every domain event of the contract (EVENTS.md) is written in the transaction of its change,
with the payload the contract gives; a task event's id is on the activity rows of the same
change; a rolled-back change writes no event; and every type is handled (none is
dead-lettered), on both shapes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from taskhub.config import Settings
from taskhub.models import OutboxEvent, Task, TaskActivity, TaskPriority, TaskStatus, User
from taskhub.projects import tasks as task_service
from taskhub.projects.permissions import load_project_access
from tests.commerce.conftest import make_product, place_order, wait_settled
from tests.conftest import client_for
from tests.factories import make_user
from tests.projects.conftest import add_member, make_project, make_task


async def events_of(app: FastAPI, *types: str) -> list[dict[str, Any]]:
    """The outbox rows of these types (all if none given), oldest first."""
    async with app.state.sessionmaker() as session:
        stmt = select(OutboxEvent).order_by(OutboxEvent.id)
        if types:
            stmt = stmt.where(OutboxEvent.type.in_(types))
        rows = (await session.scalars(stmt)).all()
    return [
        {
            "id": row.event_id,
            "type": row.type,
            "payload": row.payload,
            "published": row.published_at is not None,
            "dead": row.dead_at is not None,
        }
        for row in rows
    ]


async def activity_of(app: FastAPI, task_id: int) -> list[tuple[str, str | None]]:
    """(field, event id) of the task's activity rows, oldest first."""
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            select(TaskActivity.field, TaskActivity.event_id)
            .where(TaskActivity.task_id == task_id)
            .order_by(TaskActivity.id)
        )
        return [(field, event_id) for field, event_id in rows]


async def all_handled(app: FastAPI) -> None:
    """Wait until the embedded dispatcher applied every event; none was dead-lettered."""
    async with asyncio.timeout(20):
        while True:
            events = await events_of(app)
            if all(e["published"] for e in events):
                break
            await asyncio.sleep(0.02)
    assert [e for e in events if e["dead"]] == []


async def test_task_events_carry_the_api_values_and_share_their_id_with_the_activity(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await make_user(app, client)
    helper = await make_user(app, client)
    project_id = await make_project(client, owner)
    await add_member(client, project_id, by=owner, user=helper, role="member")
    task = await make_task(client, owner, project_id, title="Draft", priority="low")
    r = await client.patch(
        f"/api/v1/tasks/{task['id']}",
        json={"title": "Final", "priority": "high", "due_date": "2031-05-06T07:08:09+02:00"},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    r = await client.post(f"/api/v1/tasks/{task['id']}/assign/{helper.id}", headers=owner.headers)
    assert r.status_code == 200, r.text
    activity = await activity_of(app, task["id"])
    r = await client.delete(f"/api/v1/tasks/{task['id']}", headers=owner.headers)
    assert r.status_code == 204
    await all_handled(app)
    created, edited, assigned = await events_of(app, "task.created", "task.updated")
    (deleted,) = await events_of(app, "task.deleted")
    assert created["payload"] == {"task_id": task["id"], "project_id": project_id, "task": task}
    assert edited["payload"] == {
        "task_id": task["id"],
        "project_id": project_id,
        "changes": {
            "title": ["Draft", "Final"],
            "priority": ["low", "high"],
            "due_date": [None, updated["due_date"]],
        },
    }
    assert updated["due_date"] == "2031-05-06T05:08:09Z"
    assert assigned["payload"]["changes"] == {"assignee_id": [None, helper.id]}
    assert deleted["payload"] == {"task_id": task["id"], "project_id": project_id}
    # One event per change; one activity row per changed field, carrying that event's id.
    assert activity == [
        ("created", created["id"]),
        ("title", edited["id"]),
        ("priority", edited["id"]),
        ("due_date", edited["id"]),
        ("assignee_id", assigned["id"]),
    ]


async def test_activity_entries_show_their_event_id(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await make_user(app, client)
    project_id = await make_project(client, owner)
    task = await make_task(client, owner, project_id)
    r = await client.get(f"/api/v1/tasks/{task['id']}/activity", headers=owner.headers)
    (created,) = await events_of(app, "task.created")
    assert [entry["event_id"] for entry in r.json()["items"]] == [created["id"]]


async def test_member_events_and_the_unassignment_they_cause(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await make_user(app, client)
    alice = await make_user(app, client)
    bob = await make_user(app, client)
    project_id = await make_project(client, owner)
    await add_member(client, project_id, by=owner, user=alice, role="member")
    await add_member(client, project_id, by=owner, user=bob, role="viewer")
    for _ in range(2):  # a change of role, then none
        r = await client.put(
            f"/api/v1/projects/{project_id}/members/{alice.id}",
            json={"role": "admin"},
            headers=owner.headers,
        )
        assert r.status_code == 200, r.text
    r = await client.post(
        f"/api/v1/projects/{project_id}/transfer-ownership",
        json={"user_id": alice.id},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    task = await make_task(client, alice, project_id, assignee_id=bob.id)
    r = await client.delete(
        f"/api/v1/projects/{project_id}/members/{bob.id}", headers=alice.headers
    )
    assert r.status_code == 204, r.text
    await all_handled(app)
    members = await events_of(app, "member.added", "member.removed", "member.role_changed")
    p = project_id
    assert [(e["type"], e["payload"]) for e in members] == [
        ("member.added", {"project_id": p, "user_id": owner.id, "role": "owner"}),
        ("member.added", {"project_id": p, "user_id": alice.id, "role": "member"}),
        ("member.added", {"project_id": p, "user_id": bob.id, "role": "viewer"}),
        (
            "member.role_changed",
            {"project_id": p, "user_id": alice.id, "role": "admin", "previous_role": "member"},
        ),
        (
            "member.role_changed",
            {"project_id": p, "user_id": owner.id, "role": "admin", "previous_role": "owner"},
        ),
        (
            "member.role_changed",
            {"project_id": p, "user_id": alice.id, "role": "owner", "previous_role": "admin"},
        ),
        ("member.removed", {"project_id": p, "user_id": bob.id, "role": "viewer"}),
    ]
    unassigned = (await events_of(app, "task.updated"))[-1]
    assert unassigned["payload"] == {
        "task_id": task["id"],
        "project_id": p,
        "changes": {"assignee_id": [bob.id, None]},
    }
    assert (await activity_of(app, task["id"]))[-1] == ("assignee_id", unassigned["id"])


async def test_order_events_name_the_order_its_owner_and_its_status(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    app = await app_factory(settings_factory(expiry_sweep_seconds=0.05))
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        customer = await make_user(app, client)
        product = await make_product(client, admin, stock=3, price_cents=250)
        ids = {}
        for name in ("paid", "confirmed_then_cancelled", "cancelled_by_admin", "failed"):
            quantity = 5 if name == "failed" else 1
            r = await place_order(client, customer, [(product, quantity)])
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
            await wait_settled(client, customer, [ids[name]])
        o = ids
        for path, who in (
            (f"{o['paid']}/pay", customer),
            (f"{o['confirmed_then_cancelled']}/confirm", customer),
            (f"{o['confirmed_then_cancelled']}/cancel", customer),
            (f"{o['cancelled_by_admin']}/cancel", admin),
        ):
            r = await client.post(f"/api/v2/orders/{path}", headers=who.headers)
            assert r.status_code == 200, r.text
        failed = await client.get(f"/api/v2/orders/{o['failed']}", headers=customer.headers)
        await all_handled(app)
    events = [(e["type"], e["payload"]) for e in await events_of(app)]
    u = customer.id

    def of(order_id: int) -> list[tuple[str, dict[str, Any]]]:
        return [(t, p) for t, p in events if p.get("order_id") == order_id]

    def base(order_id: int, status: str) -> dict[str, Any]:
        return {"order_id": order_id, "user_id": u, "status": status}

    assert of(o["paid"]) == [
        ("order.created", {**base(o["paid"], "PENDING"), "total_cents": 250}),
        ("order.reserved", base(o["paid"], "RESERVED")),
        ("order.paid", base(o["paid"], "PAID")),
    ]
    c = o["confirmed_then_cancelled"]
    assert of(c)[1:] == [
        ("order.reserved", base(c, "RESERVED")),
        ("order.confirmed", base(c, "CONFIRMED")),
        ("order.cancelled", {**base(c, "CANCELLED"), "reason": "user"}),
    ]
    a = o["cancelled_by_admin"]
    assert of(a)[-1] == ("order.cancelled", {**base(a, "CANCELLED"), "reason": "admin"})
    f = o["failed"]
    reason = failed.json()["status_reason"]
    assert "insufficient stock" in reason
    assert of(f) == [
        ("order.created", {**base(f, "PENDING"), "total_cents": 1250}),
        ("order.failed", {**base(f, "FAILED"), "reason": reason}),
    ]


async def test_an_expired_reservation_is_an_order_cancelled_event(
    settings_factory: Callable[..., Settings],
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
) -> None:
    settings = settings_factory(reservation_ttl=timedelta(seconds=0), expiry_sweep_seconds=0.05)
    app = await app_factory(settings)
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        product = await make_product(client, admin, stock=3)
        r = await place_order(client, admin, [(product, 1)])
        order_id = r.json()["id"]
        async with asyncio.timeout(20):
            while not await events_of(app, "order.cancelled"):
                await asyncio.sleep(0.02)
        await all_handled(app)
    (cancelled,) = await events_of(app, "order.cancelled")
    assert cancelled["payload"] == {
        "order_id": order_id,
        "user_id": admin.id,
        "status": "CANCELLED",
        "reason": "expired",
    }


async def test_a_rolled_back_change_writes_no_event(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await make_user(app, client)
    project_id = await make_project(client, owner)
    await all_handled(app)
    before = await events_of(app)

    class Abandoned(Exception):
        pass

    async def write_then_abandon() -> None:
        async with app.state.sessionmaker() as session, session.begin():
            user = await session.get(User, owner.id)
            assert user is not None
            access = await load_project_access(session, user=user, project_id=project_id)
            task = await task_service.create_task(
                session,
                access=access,
                title="Never",
                description=None,
                assignee_id=None,
                status=TaskStatus.TODO,
                priority=TaskPriority.NONE,
                due_date=None,
            )
            # The change and its event were both written in this transaction...
            assert (await session.scalar(select(func.count()).select_from(OutboxEvent))) == len(
                before
            ) + 1
            assert task.id is not None
            raise Abandoned  # ...which rolls back.

    with pytest.raises(Abandoned):
        await write_then_abandon()
    assert await events_of(app) == before
    async with app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Task)) == 0


async def test_a_refused_request_writes_no_event(app: FastAPI, client: httpx.AsyncClient) -> None:
    owner = await make_user(app, client)
    outsider = await make_user(app, client)
    project_id = await make_project(client, owner)
    task = await make_task(client, owner, project_id)
    await all_handled(app)
    before = await events_of(app)
    refused = [
        await client.post(
            f"/api/v1/tasks/{task['id']}/assign/{outsider.id}", headers=owner.headers
        ),
        await client.delete(
            f"/api/v1/projects/{project_id}/members/{owner.id}", headers=owner.headers
        ),
        await client.patch(
            f"/api/v1/tasks/{task['id']}", json={"title": ""}, headers=owner.headers
        ),
    ]
    assert [r.status_code for r in refused] == [422, 409, 422]
    assert await events_of(app) == before


async def test_deleting_a_project_or_an_account_announces_what_goes_with_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, client, is_superuser=True)
    owner = await make_user(app, client)
    leaver = await make_user(app, client)
    doomed = await make_project(client, owner, title="Doomed")
    kept = await make_project(client, owner, title="Kept")
    for project_id in (doomed, kept):
        await add_member(client, project_id, by=owner, user=leaver, role="member")
    gone_tasks = [(await make_task(client, owner, doomed))["id"] for _ in range(2)]
    assigned = await make_task(client, owner, kept, assignee_id=leaver.id)
    await all_handled(app)
    before = len(await events_of(app))
    r = await client.delete(f"/api/v1/projects/{doomed}", headers=owner.headers)
    assert r.status_code == 204, r.text
    r = await client.delete(f"/api/v1/users/{leaver.id}", headers=admin.headers)
    assert r.status_code == 204, r.text
    await all_handled(app)
    after = [(e["type"], e["payload"]) for e in (await events_of(app))[before:]]
    assert after == [
        *[("task.deleted", {"task_id": t, "project_id": doomed}) for t in gone_tasks],
        ("member.removed", {"project_id": doomed, "user_id": owner.id, "role": "owner"}),
        ("member.removed", {"project_id": doomed, "user_id": leaver.id, "role": "member"}),
        ("member.removed", {"project_id": kept, "user_id": leaver.id, "role": "member"}),
        (
            "task.updated",
            {
                "task_id": assigned["id"],
                "project_id": kept,
                "changes": {"assignee_id": [leaver.id, None]},
            },
        ),
    ]
    unassigned = (await events_of(app))[-1]
    assert (await activity_of(app, assigned["id"]))[-1] == ("assignee_id", unassigned["id"])
