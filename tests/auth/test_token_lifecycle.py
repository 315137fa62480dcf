"""Tokens end when their account says so: deletion (and no id is reused), password changes,
deactivation, logout and logout-all end every token they concern at once, on both shapes."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.factories import make_user
from tests.hardening.conftest import assert_problem

ME = "/api/v1/users/me"


async def test_a_deleted_users_token_stays_dead_after_new_accounts(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, client, is_superuser=True)
    doomed = await make_user(app, client)  # the newest account: its id is the highest
    assert (await client.get(ME, headers=doomed.headers)).status_code == 200
    r = await client.delete(f"/api/v1/users/{doomed.id}", headers=admin.headers)
    assert r.status_code == 204
    # An admin creates a new site admin, then more accounts: none gets the deleted id.
    created = []
    for i in range(3):
        body = {"email": f"next{i}@example.com", "password": "Password-123", "is_superuser": True}
        r = await client.post("/api/v1/users", json=body, headers=admin.headers)
        assert r.status_code == 201, r.text
        created.append(r.json()["id"])
    assert doomed.id not in created
    assert min(created) > doomed.id
    for path in (ME, "/api/v1/users", f"/api/v1/users/{doomed.id}", "/api/v2/users/me"):
        assert_problem(await client.get(path, headers=doomed.headers), 401)
