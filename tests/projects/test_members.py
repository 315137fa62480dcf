"""Members: ownership is unique and moves only by transfer; ranks bound who manages whom."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from taskhub.models import ProjectMember, Role
from tests.factories import make_user
from tests.projects.conftest import Team, add_member, make_task


def members_url(team: Team, user_id: int | None = None) -> str:
    base = f"/api/v1/projects/{team.project_id}/members"
    return base if user_id is None else f"{base}/{user_id}"


async def roles_of(client: httpx.AsyncClient, team: Team) -> dict[int, str]:
    r = await client.get(members_url(team), headers=team.owner.headers)
    assert r.status_code == 200
    return {m["user_id"]: m["role"] for m in r.json()["items"]}


async def owner_rows(app: FastAPI, project_id: int) -> int:
    async with app.state.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).where(
                ProjectMember.project_id == project_id, ProjectMember.role == Role.OWNER
            )
        )
    return int(count or 0)


async def test_member_listing_shape_and_pagination(client: httpx.AsyncClient, team: Team) -> None:
    first = await client.get(members_url(team), params={"limit": 3}, headers=team.viewer.headers)
    assert first.status_code == 200
    page = first.json()
    assert [m["role"] for m in page["items"]] == ["owner", "admin", "member"]
    assert set(page["items"][0]) == {"user_id", "email", "full_name", "role", "created_at"}
    assert page["items"][0]["email"] == team.owner.email
    assert (
        page["items"][0]["created_at"].endswith("Z") or "+00:00" in page["items"][0]["created_at"]
    )
    second = await client.get(
        members_url(team),
        params={"limit": 3, "cursor": page["next_cursor"]},
        headers=team.viewer.headers,
    )
    assert [m["user_id"] for m in second.json()["items"]] == [team.viewer.id]
    assert second.json()["next_cursor"] is None


async def test_add_member_then_re_role(app: FastAPI, client: httpx.AsyncClient, team: Team) -> None:
    newcomer = await make_user(app, client)
    r = await client.put(
        members_url(team, newcomer.id), json={"role": "viewer"}, headers=team.admin.headers
    )
    assert r.status_code == 201
    assert r.headers["location"] == members_url(team, newcomer.id)
    assert r.json()["role"] == "viewer"
    r = await client.put(
        members_url(team, newcomer.id), json={"role": "member"}, headers=team.admin.headers
    )
    assert r.status_code == 200
    assert r.json()["role"] == "member"
    # The newcomer now sees the project.
    r = await client.get(f"/api/v1/projects/{team.project_id}", headers=newcomer.headers)
    assert r.json()["my_role"] == "member"


async def test_add_unknown_user_is_404(client: httpx.AsyncClient, team: Team) -> None:
    r = await client.put(
        members_url(team, 987654), json={"role": "viewer"}, headers=team.owner.headers
    )
    assert r.status_code == 404
    assert r.json()["detail"] == "User not found"


@pytest.mark.parametrize("body", [{"role": "boss"}, {"role": "viewer", "extra": 1}, {}])
async def test_member_body_is_validated(
    client: httpx.AsyncClient, team: Team, body: dict[str, object]
) -> None:
    r = await client.put(members_url(team, team.viewer.id), json=body, headers=team.owner.headers)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


async def test_transfer_ownership(app: FastAPI, client: httpx.AsyncClient, team: Team) -> None:
    r = await client.post(
        f"/api/v1/projects/{team.project_id}/transfer-ownership",
        json={"user_id": team.member.id},
        headers=team.owner.headers,
    )
    assert r.status_code == 200
    assert r.json()["owner_id"] == team.member.id
    assert r.json()["my_role"] == "admin"
    roles = await roles_of(client, team)
    assert roles[team.owner.id] == "admin"
    assert roles[team.member.id] == "owner"
    assert await owner_rows(app, team.project_id) == 1
    # The former owner is now an admin: deleting the project is no longer theirs to do.
    r = await client.delete(f"/api/v1/projects/{team.project_id}", headers=team.owner.headers)
    assert r.status_code == 403


async def test_put_owner_role_is_a_transfer(
    app: FastAPI, client: httpx.AsyncClient, team: Team
) -> None:
    r = await client.put(
        members_url(team, team.viewer.id), json={"role": "owner"}, headers=team.owner.headers
    )
    assert r.status_code == 200
    assert r.json()["role"] == "owner"
    roles = await roles_of(client, team)
    assert (roles[team.owner.id], roles[team.viewer.id]) == ("admin", "owner")
    assert await owner_rows(app, team.project_id) == 1
    r = await client.get(f"/api/v1/projects/{team.project_id}", headers=team.owner.headers)
    assert r.json()["owner_id"] == team.viewer.id


async def test_site_admin_transfers_without_being_a_member(
    app: FastAPI, client: httpx.AsyncClient, team: Team
) -> None:
    r = await client.post(
        f"/api/v1/projects/{team.project_id}/transfer-ownership",
        json={"user_id": team.admin.id},
        headers=team.site_admin.headers,
    )
    assert r.status_code == 200
    assert r.json()["owner_id"] == team.admin.id
    assert r.json()["my_role"] is None
    assert await owner_rows(app, team.project_id) == 1


async def test_transfer_to_non_member_is_422(client: httpx.AsyncClient, team: Team) -> None:
    r = await client.post(
        f"/api/v1/projects/{team.project_id}/transfer-ownership",
        json={"user_id": team.outsider.id},
        headers=team.owner.headers,
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "user_id"]
    r = await client.put(
        members_url(team, team.outsider.id), json={"role": "owner"}, headers=team.owner.headers
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["path", "user_id"]
    assert (await roles_of(client, team))[team.owner.id] == "owner"


async def test_transfer_to_self_changes_nothing(client: httpx.AsyncClient, team: Team) -> None:
    r = await client.post(
        f"/api/v1/projects/{team.project_id}/transfer-ownership",
        json={"user_id": team.owner.id},
        headers=team.owner.headers,
    )
    assert r.status_code == 200
    assert r.json()["owner_id"] == team.owner.id
    assert r.json()["my_role"] == "owner"


@pytest.mark.parametrize("who", ["owner", "site_admin"])
async def test_owner_cannot_be_demoted_or_removed(
    app: FastAPI, client: httpx.AsyncClient, team: Team, who: str
) -> None:
    actor = team.actor(who)
    r = await client.put(
        members_url(team, team.owner.id), json={"role": "admin"}, headers=actor.headers
    )
    assert r.status_code == 409
    r = await client.delete(members_url(team, team.owner.id), headers=actor.headers)
    assert r.status_code == 409
    assert await owner_rows(app, team.project_id) == 1


async def test_admin_cannot_touch_the_owner(client: httpx.AsyncClient, team: Team) -> None:
    r = await client.delete(members_url(team, team.owner.id), headers=team.admin.headers)
    assert r.status_code == 409
    r = await client.put(
        members_url(team, team.owner.id), json={"role": "viewer"}, headers=team.admin.headers
    )
    assert r.status_code == 409
    assert (await roles_of(client, team))[team.owner.id] == "owner"


async def test_ranks_bound_member_management(
    app: FastAPI, client: httpx.AsyncClient, team: Team
) -> None:
    second_admin = await make_user(app, client)
    await add_member(client, team.project_id, by=team.owner, user=second_admin, role="admin")
    # Equal rank: an admin cannot remove, demote or promote another admin.
    r = await client.delete(members_url(team, second_admin.id), headers=team.admin.headers)
    assert r.status_code == 403
    r = await client.put(
        members_url(team, second_admin.id), json={"role": "viewer"}, headers=team.admin.headers
    )
    assert r.status_code == 403
    # An admin cannot grant admin, nor raise their own role.
    r = await client.put(
        members_url(team, team.member.id), json={"role": "admin"}, headers=team.admin.headers
    )
    assert r.status_code == 403
    r = await client.put(
        members_url(team, team.admin.id), json={"role": "owner"}, headers=team.admin.headers
    )
    assert r.status_code == 403
    # A member cannot manage anyone, even a viewer.
    r = await client.delete(members_url(team, team.viewer.id), headers=team.member.headers)
    assert r.status_code == 403
    # The owner can do all of these.
    r = await client.delete(members_url(team, second_admin.id), headers=team.owner.headers)
    assert r.status_code == 204
    roles = await roles_of(client, team)
    assert second_admin.id not in roles
    assert roles[team.member.id] == "member"


@pytest.mark.parametrize("who", ["viewer", "member", "admin"])
async def test_member_can_leave(client: httpx.AsyncClient, team: Team, who: str) -> None:
    actor = team.actor(who)
    r = await client.delete(members_url(team, actor.id), headers=actor.headers)
    assert r.status_code == 204
    r = await client.get(f"/api/v1/projects/{team.project_id}", headers=actor.headers)
    assert r.status_code == 404
    assert actor.id not in await roles_of(client, team)


async def test_owner_cannot_leave(client: httpx.AsyncClient, team: Team) -> None:
    r = await client.delete(members_url(team, team.owner.id), headers=team.owner.headers)
    assert r.status_code == 409
    assert "transfer" in r.json()["detail"]


async def test_removing_a_non_member_is_404(client: httpx.AsyncClient, team: Team) -> None:
    r = await client.delete(members_url(team, team.outsider.id), headers=team.owner.headers)
    assert r.status_code == 404
    r = await client.get(members_url(team, team.outsider.id), headers=team.owner.headers)
    assert r.status_code == 404


async def test_removed_member_tasks_are_unassigned_and_logged(
    client: httpx.AsyncClient, team: Team
) -> None:
    task = await make_task(client, team.owner, team.project_id, assignee_id=team.member.id)
    r = await client.delete(members_url(team, team.member.id), headers=team.admin.headers)
    assert r.status_code == 204
    r = await client.get(f"/api/v1/tasks/{task['id']}", headers=team.owner.headers)
    assert r.json()["assignee_id"] is None
    r = await client.get(f"/api/v1/tasks/{task['id']}/activity", headers=team.owner.headers)
    last = r.json()["items"][-1]
    assert (last["field"], last["old_value"], last["new_value"], last["actor_id"]) == (
        "assignee_id",
        str(team.member.id),
        None,
        team.admin.id,
    )


async def test_concurrent_transfers_leave_exactly_one_owner(
    app: FastAPI, client: httpx.AsyncClient, team: Team
) -> None:
    targets = [team.admin, team.member, team.viewer]
    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/projects/{team.project_id}/transfer-ownership",
                json={"user_id": target.id},
                headers=team.owner.headers,
            )
            for target in targets
        )
    )
    statuses = sorted(r.status_code for r in responses)
    # The first transfer wins; the former owner is then an admin, so the others are refused.
    assert statuses == [200, 403, 403], [r.text for r in responses]
    assert await owner_rows(app, team.project_id) == 1
    roles = await roles_of(client, team)
    assert roles[team.owner.id] == "admin"
    assert sorted(roles.values()).count("owner") == 1
