"""Factories for the projects domain: projects, members and tasks through the real API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from taskhub.models import Project, ProjectMember, Role, User
from taskhub.security import hash_password
from tests.factories import DEFAULT_PASSWORD, Actor, login_token

ROLES = ("viewer", "member", "admin", "owner")


async def make_project(client: httpx.AsyncClient, owner: Actor, *, title: str = "Project") -> int:
    """Create a project owned by `owner` and return its id."""
    r = await client.post("/api/v1/projects", json={"title": title}, headers=owner.headers)
    assert r.status_code == 201, r.text
    project_id: int = r.json()["id"]
    return project_id


async def add_member(
    client: httpx.AsyncClient, project_id: int, *, by: Actor, user: Actor, role: str
) -> None:
    """Add `user` to the project with a role, acting as `by`."""
    r = await client.put(
        f"/api/v1/projects/{project_id}/members/{user.id}", json={"role": role}, headers=by.headers
    )
    assert r.status_code == 201, r.text


async def make_task(
    client: httpx.AsyncClient, actor: Actor, project_id: int, **fields: Any
) -> dict[str, Any]:
    """Create a task through the API and return its JSON."""
    body = {"title": "A task", "project_id": project_id, **fields}
    r = await client.post("/api/v1/tasks", json=body, headers=actor.headers)
    assert r.status_code == 201, r.text
    task: dict[str, Any] = r.json()
    return task


@dataclass
class Team:
    """A project with one user per role, an outsider and a site admin."""

    project_id: int
    owner: Actor
    admin: Actor
    member: Actor
    viewer: Actor
    outsider: Actor
    site_admin: Actor

    def actor(self, who: str) -> Actor:
        """The actor playing `who` (a role, 'outsider' or 'site_admin')."""
        actor: Actor = getattr(self, who)
        return actor


async def build_team(app: FastAPI, client: httpx.AsyncClient) -> Team:
    """Create the users, the project and the memberships of a `Team`.

    The rows are written in one transaction (the matrix builds hundreds of teams); the
    tokens still come from the real login endpoint.
    """
    who = ("owner", "admin", "member", "viewer", "outsider", "site_admin")
    tag = uuid.uuid4().hex[:8]
    async with app.state.sessionmaker() as session, session.begin():
        hashed = await hash_password(DEFAULT_PASSWORD, rounds=app.state.settings.bcrypt_rounds)
        users = {
            name: User(
                email=f"{name}-{tag}@example.com",
                hashed_password=hashed,
                full_name=name,
                is_superuser=name == "site_admin",
            )
            for name in who
        }
        project = Project(title=f"Team {tag}")
        session.add_all([*users.values(), project])
        await session.flush()
        session.add_all(
            ProjectMember(project_id=project.id, user_id=users[role].id, role=Role(role))
            for role in ROLES
        )
    actors = {
        name: Actor(
            id=user.id,
            email=user.email,
            password=DEFAULT_PASSWORD,
            token=await login_token(client, email=user.email, password=DEFAULT_PASSWORD),
        )
        for name, user in users.items()
    }
    return Team(project_id=project.id, **actors)


@pytest.fixture
async def team(app: FastAPI, client: httpx.AsyncClient) -> Team:
    """A project with one user per role, an outsider and a site admin."""
    return await build_team(app, client)
