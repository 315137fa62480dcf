"""Every way the database can be unavailable answers 503 with Retry-After, never 500
(issue 15, defect 6): connection refused, an unknown database, too many connections, the
database starting up, and (embedded) a SQLite file that cannot be opened.

The PostgreSQL refusals that need a server in a particular state are answered by a small
fake server speaking the protocol's first exchange: it declines TLS and answers the startup
message with the FATAL error a real server sends in that state.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from taskhub.config import Settings
from taskhub.security import create_access_token
from tests.conftest import client_for, make_settings, started_apps
from tests.hardening.conftest import assert_problem
from tests.processes import SECRET, free_port

SSL_REQUEST = 80877103


async def _refuse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, sqlstate: str, message: str
) -> None:
    try:
        while True:
            length = struct.unpack("!i", await reader.readexactly(4))[0]
            body = await reader.readexactly(length - 4)
            if length == 8 and struct.unpack("!i", body)[0] == SSL_REQUEST:
                writer.write(b"N")  # no TLS; the client sends its startup message next
                await writer.drain()
                continue
            fields = b"".join(
                code + value.encode() + b"\0"
                for code, value in (
                    (b"S", "FATAL"),
                    (b"V", "FATAL"),
                    (b"C", sqlstate),
                    (b"M", message),
                )
            )
            payload = fields + b"\0"
            writer.write(b"E" + struct.pack("!i", len(payload) + 4) + payload)
            await writer.drain()
            return
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        writer.close()


async def fake_postgres(sqlstate: str, message: str) -> tuple[asyncio.Server, int]:
    """A server that refuses every connection with `sqlstate` at startup."""
    port = free_port()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _refuse(reader, writer, sqlstate=sqlstate, message=message)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    return server, port


def _pg(port: int, database: str = "taskhub") -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"


@pytest.fixture
async def start() -> AsyncIterator[Callable[[Settings], Any]]:
    async with started_apps() as start_app:
        yield start_app


PROBES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/v2/products/1", {}),
    ("GET", "/api/v2/products", {}),
    ("POST", "/api/v1/auth/login/access-token", {"data": {"username": "a@b.c", "password": "x"}}),
    ("POST", "/api/v2/auth/login/access-token", {"data": {"username": "a@b.c", "password": "x"}}),
    ("GET", "/api/v1/users/me", {"auth": True}),
    ("GET", "/api/v1/tasks", {"auth": True}),
    ("GET", "/api/v1/projects", {"auth": True}),
    (
        "POST",
        "/api/v2/orders",
        {"auth": True, "json": {"items": [{"product_id": 1, "quantity": 1}]}},
    ),
    ("GET", "/api/v2/orders/1", {"auth": True}),
    ("GET", "/ready", {}),
]


async def assert_unavailable_everywhere(app: FastAPI) -> None:
    token = create_access_token(user_id=1, epoch=0, key=SECRET, expires_in=timedelta(minutes=5))
    async with client_for(app) as client:
        for method, path, options in PROBES:
            kwargs = {k: v for k, v in options.items() if k != "auth"}
            if options.get("auth"):
                kwargs["headers"] = {"Authorization": f"Bearer {token}"}
            r = await client.request(method, path, **kwargs)
            assert_problem(r, 503)
            assert int(r.headers["retry-after"]) >= 1, (method, path)
        assert (await client.get("/health")).status_code == 200


def _settings(url: str) -> Settings:
    return make_settings(database_url=url, db_timeout_seconds=2)


@pytest.mark.pg
@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [
        ("57P03", "the database system is starting up"),
        ("53300", "sorry, too many clients already"),
        ("3D000", 'database "taskhub" does not exist'),
        ("28P01", 'password authentication failed for user "postgres"'),
    ],
    ids=["starting-up", "too-many-connections", "unknown-database", "bad-password"],
)
async def test_postgres_refusing_connections_is_503(
    start: Callable[[Settings], Any], sqlstate: str, message: str
) -> None:
    server, port = await fake_postgres(sqlstate, message)
    async with server:
        app = await start(_settings(_pg(port)))
        await assert_unavailable_everywhere(app)


@pytest.mark.pg
async def test_a_real_unknown_database_is_503(
    start: Callable[[Settings], Any], pg_server: str
) -> None:
    base = pg_server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    app = await start(_settings(f"{base}/taskhub_no_such_database"))
    await assert_unavailable_everywhere(app)


async def test_connection_refused_is_503(start: Callable[[Settings], Any]) -> None:
    app = await start(_settings(_pg(free_port())))
    await assert_unavailable_everywhere(app)


async def test_sqlite_file_that_cannot_be_opened_is_503(
    start: Callable[[Settings], Any], tmp_path: Path
) -> None:
    app = await start(_settings(f"sqlite+aiosqlite:///{tmp_path}/missing-dir/taskhub.db"))
    await assert_unavailable_everywhere(app)
