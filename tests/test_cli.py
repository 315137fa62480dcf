"""The `taskhub` CLI as scripts use it: migrate, create-superuser, seed-demo."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from taskhub.main import create_app
from tests.conftest import client_for, make_settings
from tests.factories import login_token
from tests.processes import SECRET


async def taskhub(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI in a subprocess; returns (exit code, combined output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskhub.cli",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite database for CLI runs."""
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "ENVIRONMENT": "test",
        "SECRET_KEY": SECRET,
        "BCRYPT_ROUNDS": "4",
    }


async def test_migrate_superuser_and_demo_logins(cli_env: dict[str, str]) -> None:
    code, out = await taskhub("migrate", env=cli_env)
    assert code == 0, out
    code, out = await taskhub(
        "create-superuser",
        "--email",
        "Root@Example.com",
        "--password",
        "Root-pass-123",
        env=cli_env,
    )
    assert code == 0, out
    assert "created" in out
    code, out = await taskhub(
        "create-superuser",
        "--email",
        "root@example.com",
        "--password",
        "Root-pass-456",
        env=cli_env,
    )
    assert code == 0 and "updated" in out
    code, out = await taskhub(
        "create-superuser", "--email", "x@example.com", "--password", "short", env=cli_env
    )
    assert code != 0
    code, out = await taskhub("seed-demo", "--tasks", "25", "--products", "3", env=cli_env)
    assert code == 0, out
    assert "alice@example.com" in out and "Alice-pass-123" in out

    app = create_app(make_settings(database_url=cli_env["DATABASE_URL"]))
    async with LifespanManager(app), client_for(app) as client:
        root = await login_token(client, email="root@example.com", password="Root-pass-456")
        me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {root}"})
        assert me.json()["is_superuser"] is True
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith("@example.com"):
                token = await login_token(client, email=parts[0], password=parts[1])
                assert token
        products = (await client.get("/api/v2/products")).json()["items"]
        assert len(products) == 3
        assert all(p["stock"] == 100 for p in products)


async def test_production_refuses_a_missing_secret(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "ENVIRONMENT": "prod", "SECRET_KEY": "changeme"}
    code, out = await taskhub("serve", "--port", "1", env=env)
    assert code != 0
    assert "SECRET_KEY" in out


async def test_cli_help_lists_every_command(cli_env: dict[str, str]) -> None:
    code, out = await taskhub("--help", env=cli_env)
    assert code == 0
    for command in ("serve", "worker", "migrate", "create-superuser", "seed-demo"):
        assert command in out
