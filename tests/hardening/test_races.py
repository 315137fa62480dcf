"""Races between a user's requests and changes to that user, run concurrently and looped:
only the deliberate answers appear, and the invariants hold after every round.

- An admin deletes a user while the user creates projects and orders: the deletion is 204,
  or the deliberate 409 (the user owns a project or has an order); the user's requests are
  201, or 401 once the account is gone; never a 500 or a foreign-key 409. No project is
  left without its owner, no order without its user.
- A task is assigned to a member while the member is removed from the project: the
  assignment is 200, or 422 (not a member); the removal is 204; a removed member is never
  left assigned.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from taskhub.models import Order, ProjectMember, Role, Task, User
from tests.commerce.conftest import make_product, place_order
from tests.factories import Actor, make_user
from tests.hardening.conftest import assert_problem
from tests.projects.conftest import add_member, make_project, make_task

# Rounds per shape. On SQLite writers are serialized, so these races are only between a
# request's first read and its write transaction: fewer rounds catch them (and each costs
# more, SQLite's busy handler sleeping while another writer holds the lock).
DELETE_ROUNDS = {"postgresql": 60, "sqlite": 30}
ASSIGN_ROUNDS = {"postgresql": 120, "sqlite": 30}


async def after(delay: float, request: Awaitable[httpx.Response]) -> httpx.Response:
    """Send `request` after `delay` seconds (to vary which side of a race starts first)."""
    await asyncio.sleep(delay)
    return await request


async def owners_per_project(app: FastAPI) -> dict[int, int]:
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            select(ProjectMember.project_id, func.count())
            .where(ProjectMember.role == Role.OWNER)
            .group_by(ProjectMember.project_id)
        )
        return dict(rows.all())


async def test_deleting_a_user_while_they_write(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_user(app, client, is_superuser=True)
    product_id = await make_product(client, admin, stock=10_000)
    seen: Counter[tuple[str, int]] = Counter()
    projects = 0
    for round_ in range(DELETE_ROUNDS[app.state.engine.dialect.name]):
        victim = await make_user(app, client)
        keyed = {**victim.headers, "Idempotency-Key": uuid.uuid4().hex}
        line = {"items": [{"product_id": product_id, "quantity": 1}]}
        # Who starts first, and by how much, varies from round to round (0-30 ms either way),
        # so that both the deletion and the user's requests win some rounds.
        lead = (round_ % 7) * 0.005
        head_start = (lead, 0.0) if round_ % 2 else (0.0, lead)
        deletion, *own = await asyncio.gather(
            after(
                head_start[0], client.delete(f"/api/v1/users/{victim.id}", headers=admin.headers)
            ),
            *(
                after(head_start[1], request)
                for request in (
                    client.post("/api/v1/projects", json={"title": "a"}, headers=victim.headers),
                    client.post("/api/v1/projects", json={"title": "b"}, headers=victim.headers),
                    place_order(client, victim, [(product_id, 1)]),
                    client.post("/api/v2/orders", json=line, headers=keyed),
                )
            ),
        )
        seen[("delete", deletion.status_code)] += 1
        for r in own:
            seen[("own", r.status_code)] += 1
            assert r.status_code in (201, 401), (r.status_code, r.text)
            if r.status_code == 401:
                assert_problem(r, 401)
        created = [r for r in own if r.status_code == 201]
        if deletion.status_code == 204:
            # Nothing the user created survived them: it would have made the deletion a 409.
            assert not created, [r.json() for r in created]
        else:
            body = assert_problem(deletion, 409)
            assert body["type"].endswith("/conflict"), body  # the deliberate answer
            assert "owns projects" in body["detail"] or "has orders" in body["detail"], body
            assert created
        projects += sum(1 for r in own[:2] if r.status_code == 201)
        async with app.state.sessionmaker() as session:
            user = await session.get(User, victim.id)
            orders = await session.scalar(
                select(func.count()).select_from(Order).where(Order.user_id == victim.id)
            )
        assert (user is None) == (deletion.status_code == 204)
        assert user is not None or not orders
    owners = await owners_per_project(app)
    assert len(owners) == projects and set(owners.values()) <= {1}, owners
    # Both outcomes were exercised, or the loop proved little.
    assert seen[("delete", 204)] and seen[("own", 401)], seen


async def test_assigning_a_task_while_the_assignee_is_removed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await make_user(app, client)
    member: Actor = await make_user(app, client)
    project_id = await make_project(client, owner)
    seen: Counter[tuple[str, int]] = Counter()
    for round_ in range(ASSIGN_ROUNDS[app.state.engine.dialect.name]):
        await add_member(client, project_id, by=owner, user=member, role="member")
        task = await make_task(client, owner, project_id)
        # Every third round the removal gets a head start (2-8 ms), so that it wins some.
        head_start = (round_ % 3) * 0.002 + 0.002 if round_ % 3 else 0.0
        assignment, creation, removal = await asyncio.gather(
            after(
                head_start,
                client.post(
                    f"/api/v1/tasks/{task['id']}/assign/{member.id}", headers=owner.headers
                ),
            ),
            after(
                head_start,
                client.post(
                    "/api/v1/tasks",
                    json={
                        "title": "born assigned",
                        "project_id": project_id,
                        "assignee_id": member.id,
                    },
                    headers=owner.headers,
                ),
            ),
            client.delete(
                f"/api/v1/projects/{project_id}/members/{member.id}", headers=owner.headers
            ),
        )
        seen[("assign", assignment.status_code)] += 1
        seen[("create", creation.status_code)] += 1
        assert removal.status_code == 204, removal.text
        assert assignment.status_code in (200, 422), assignment.text
        assert creation.status_code in (201, 422), creation.text
        for r in (assignment, creation):
            if r.status_code == 422:
                assert_problem(r, 422)
        async with app.state.sessionmaker() as session:
            stranded = (
                await session.scalars(
                    select(Task.id).where(
                        Task.project_id == project_id, Task.assignee_id == member.id
                    )
                )
            ).all()
        assert not stranded, (stranded, assignment.status_code, creation.status_code)
    assert seen[("assign", 200)] and seen[("assign", 422)], seen
