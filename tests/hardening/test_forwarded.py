"""X-Forwarded-For is believed only from FORWARDED_ALLOW_IPS: `taskhub serve` (uvicorn) as
scripts start it, and the login limiter's per-client key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from taskhub.migrate import upgrade
from tests.conftest import make_settings
from tests.processes import ServerProcess, process_env

LOGIN = "/api/v1/auth/login/access-token"
CLIENT_LIMIT = 3


@pytest.fixture
async def database(tmp_path: Path) -> str:
    """A migrated SQLite file of this test's own."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'forwarded.db'}"
    await upgrade(make_settings(database_url=url))
    return url


@pytest.fixture
async def serve(
    tmp_path: Path, database: str
) -> AsyncIterator[Callable[..., Awaitable[ServerProcess]]]:
    """Start `taskhub serve` processes with extra environment; all are stopped at the end."""
    servers: list[ServerProcess] = []

    async def start(**env: str) -> ServerProcess:
        server = ServerProcess(
            env=process_env(
                DATABASE_URL=database,
                BCRYPT_ROUNDS="4",
                LOGIN_MAX_FAILURES_PER_CLIENT=str(CLIENT_LIMIT),
                **env,
            ),
            log=tmp_path / f"serve-{len(servers)}.log",
            cwd=tmp_path,
        )
        servers.append(server)
        await asyncio.to_thread(server.wait_ready)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.terminate()
        server.close()


async def failed_logins(server: ServerProcess, count: int) -> list[int]:
    """`count` wrong passwords for as many accounts, each claiming another client address."""
    statuses = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for i in range(count):
            r = await client.post(
                LOGIN,
                data={"username": f"nobody{i}@example.com", "password": "Wrong-pass-1"},
                headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
            )
            statuses.append(r.status_code)
    return statuses


async def test_spoofed_forwarded_for_does_not_change_the_limiter_key(
    serve: Callable[..., Awaitable[ServerProcess]],
) -> None:
    # The default: no proxy is trusted, so every attempt counts against the real peer
    # (127.0.0.1) and the client limit is reached whatever X-Forwarded-For says.
    server = await serve()
    statuses = await failed_logins(server, CLIENT_LIMIT + 2)
    assert statuses == [401] * CLIENT_LIMIT + [429, 429], statuses


async def test_a_trusted_proxy_forwards_the_client_address(
    serve: Callable[..., Awaitable[ServerProcess]],
) -> None:
    # The peer (127.0.0.1) is a listed proxy: each attempt comes from the address it names,
    # so no client reaches the limit.
    server = await serve(FORWARDED_ALLOW_IPS="127.0.0.1")
    assert await failed_logins(server, CLIENT_LIMIT + 2) == [401] * (CLIENT_LIMIT + 2)
