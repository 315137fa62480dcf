"""Ending tokens holds across server processes: two `taskhub serve` processes on one
database, in both shapes; what one ends, the other refuses at once (the check is in the
database, not in a process's memory)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from taskhub.migrate import upgrade
from tests.conftest import create_pg_database, drop_pg_database, make_settings, pg_url
from tests.processes import ServerProcess, process_env

LOGIN = "/api/v1/auth/login/access-token"
ME = "/api/v1/users/me"
EMAIL, PASSWORD = "two-servers@example.com", "Two-servers-1"


@pytest.fixture
async def sqlite_env(tmp_path: Path) -> dict[str, str]:
    """The embedded shape: a fresh migrated SQLite file."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'two.db'}"
    await upgrade(make_settings(database_url=url))
    return {"DATABASE_URL": url}


@pytest.fixture
async def postgres_env(
    pg_server: str, redis_server: str, redis_prefix: str
) -> AsyncIterator[dict[str, str]]:
    """The full stack: a fresh migrated PostgreSQL database, Redis for the events."""
    name = await create_pg_database(pg_server)
    url = pg_url(pg_server, name)
    await upgrade(make_settings(database_url=url))
    yield {"DATABASE_URL": url, "REDIS_URL": redis_server, "REDIS_PREFIX": redis_prefix}
    await drop_pg_database(pg_server, name)


@pytest.fixture(params=["sqlite_env", "postgres_env"])
def shape_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Both shapes, each on a database of its own."""
    env: dict[str, str] = request.getfixturevalue(request.param)
    return env


@pytest.fixture
async def two_servers(
    shape_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of two server processes on the same database."""
    env = process_env(BCRYPT_ROUNDS="4", **shape_env)
    servers = [
        ServerProcess(env=env, log=tmp_path / f"serve-{i}.log", cwd=tmp_path) for i in (0, 1)
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.wait_ready) for s in servers))
        async with (
            httpx.AsyncClient(base_url=servers[0].url, timeout=30) as a,
            httpx.AsyncClient(base_url=servers[1].url, timeout=30) as b,
        ):
            yield a, b
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.terminate()
            server.close()


async def login(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.post(LOGIN, data={"username": EMAIL, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return (await client.get(ME, headers=headers)).status_code


async def test_logout_all_on_one_server_ends_tokens_on_the_other(
    two_servers: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_servers
    r = await a.post("/api/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD})
    assert r.status_code == 201, r.text
    first, second = await login(a), await login(b)
    # Both servers know both tokens (and have checked their signatures once).
    assert [await me(a, first), await me(b, first), await me(a, second), await me(b, second)] == [
        200
    ] * 4

    assert (await a.post("/api/v1/auth/logout-all", headers=first)).status_code == 204
    # The very next request to the other server is refused, for both tokens.
    assert [await me(b, first), await me(b, second), await me(a, second)] == [401] * 3

    # One token logged out on B is refused on A; the user's other tokens go on.
    third, fourth = await login(b), await login(b)
    assert (await b.post("/api/v1/auth/logout", headers=third)).status_code == 204
    assert [await me(a, third), await me(a, fourth), await me(b, fourth)] == [401, 200, 200]
