"""The README's curl walk-throughs, extracted from README.md and run verbatim with curl
against real processes: `taskhub serve` embedded (SQLite, in-process events), and the full
stack (`taskhub serve` + `taskhub worker`, PostgreSQL + Redis).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.processes import TaskhubProcess, free_port, process_env

README = Path(__file__).resolve().parents[2] / "README.md"
PASSWORD = "Walk-through-123"


def walkthrough(name: str) -> list[str]:
    """The curl commands of one README block, continuation lines joined."""
    text = README.read_text()
    match = re.search(
        rf"<!-- walkthrough:{name}:start -->(.*?)<!-- walkthrough:{name}:end -->", text, re.S
    )
    assert match, f"README.md has no walkthrough:{name} block"
    commands: list[str] = []
    current = ""
    for line in match.group(1).splitlines():
        if line.startswith("```") or line.startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def run(command: str, *, port: int, token: str = "") -> Any:
    """Run one README command as written (port and password filled in); parse its JSON."""
    command = command.replace("localhost:8000", f"localhost:{port}")
    command = command.replace("<your-password>", PASSWORD)
    out = subprocess.run(  # noqa: S602 (the README's own commands, on loopback)
        ["bash", "-c", command],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "TOKEN": token},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(out.stdout)


class Stack:
    """A running server (and worker, for the full stack) on a fresh database."""

    def __init__(self, env: dict[str, str], tmp: Path, *, worker: bool) -> None:
        self.port = free_port()
        self.env = process_env(**env)
        setup = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "taskhub.cli", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert setup.returncode == 0, setup.stdout + setup.stderr
        admin = subprocess.run(  # noqa: S603
            [
                "python",
                "-m",
                "taskhub.cli",
                "create-superuser",
                "--email",
                "admin@example.com",
                "--password",
                PASSWORD,
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert admin.returncode == 0, admin.stdout + admin.stderr
        self.procs = [
            TaskhubProcess(
                ["serve", "--port", str(self.port)], env=self.env, log=tmp / "serve.log", cwd=tmp
            )
        ]
        if worker:
            self.procs.append(
                TaskhubProcess(["worker"], env=self.env, log=tmp / "worker.log", cwd=tmp)
            )

    def wait_ready(self) -> None:
        """Block until /health answers."""
        deadline = time.monotonic() + 60
        while True:
            try:
                run(f"curl -sf http://localhost:{self.port}/health", port=self.port)
                return
            except (subprocess.CalledProcessError, json.JSONDecodeError):
                if time.monotonic() > deadline:
                    pytest.fail("server did not start:\n" + self.procs[0].tail())
                time.sleep(0.2)

    def close(self) -> None:
        for proc in self.procs:
            if proc.proc.poll() is None:
                proc.terminate()
            proc.close()


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """The embedded shape: a SQLite file, no Redis."""
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'walk.db'}", "BCRYPT_ROUNDS": "4"}


@pytest.fixture
async def fullstack_env(
    pg_server: str, redis_server: str, redis_prefix: str
) -> AsyncIterator[dict[str, str]]:
    """The full stack: a fresh PostgreSQL database and a unique Redis prefix."""
    name = await create_pg_database(pg_server)
    yield {
        "DATABASE_URL": pg_url(pg_server, name),
        "REDIS_URL": redis_server,
        "REDIS_PREFIX": redis_prefix,
        "BCRYPT_ROUNDS": "4",
    }
    await drop_pg_database(pg_server, name)


@pytest.fixture(params=["embedded_env", "fullstack_env"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """The two runtime shapes, each on its own fresh database."""
    assert shutil.which("curl"), "the walk-through needs curl"
    assert shutil.which("jq"), "the walk-through needs jq"
    env = request.getfixturevalue(request.param)
    s = Stack(env, tmp_path, worker=request.param == "fullstack_env")
    try:
        s.wait_ready()
        yield s
    finally:
        s.close()


async def test_v2_walkthrough(stack: Stack) -> None:
    login, create, listing, order, status, pay, cancel = walkthrough("v2")
    port = stack.port
    token = run(login, port=port)["access_token"]
    product = run(create, port=port, token=token)
    assert product["id"] == 1 and product["stock"] == 10
    assert [p["sku"] for p in run(listing, port=port)["items"]] == ["SKU-1001"]
    placed = run(order, port=port, token=token)
    assert placed["id"] == 1 and placed["status"] == "PENDING" and placed["total_cents"] == 3998
    deadline = time.monotonic() + 30
    while (current := run(status, port=port, token=token))["status"] == "PENDING":
        assert time.monotonic() < deadline, "the order was never reserved"
        await asyncio.sleep(0.1)
    assert current["status"] == "RESERVED"
    assert run(pay, port=port, token=token)["status"] == "PAID"
    refused = run(cancel, port=port, token=token)
    assert refused["status"] == 409 and refused["current_status"] == "PAID"
    # The compensation path on a second order: cancel gives the stock back.
    second = run(order, port=port, token=token)
    cancel_second = cancel.replace("/orders/1/", f"/orders/{second['id']}/")
    await asyncio.sleep(0.3)
    assert run(cancel_second, port=port, token=token)["status"] == "CANCELLED"
    deadline = time.monotonic() + 30
    while run(f"curl -s http://localhost:{port}/api/v2/products/1", port=port)["stock"] != 8:
        assert time.monotonic() < deadline, "the cancelled order's stock never came back"
        await asyncio.sleep(0.1)


async def test_v1_walkthrough(stack: Stack) -> None:
    login, new_user, project, member, task, listing, status, activity = walkthrough("v1")
    port = stack.port
    token = run(login, port=port)["access_token"]
    assert run(new_user, port=port, token=token)["email"] == "dev@example.com"
    assert run(project, port=port, token=token)["id"] == 1
    assert run(member, port=port, token=token)["role"] == "member"
    created = run(task, port=port, token=token)
    assert created["assignee_id"] == 2 and created["priority"] == "high"
    assert [t["id"] for t in run(listing, port=port, token=token)["items"]] == [1]
    assert run(status, port=port, token=token)["status"] == "in_progress"
    fields = [a["field"] for a in run(activity, port=port, token=token)["items"]]
    assert "status" in fields
    # The demo data logs in too: the dev user created above can log in and see the task.
    dev = run(
        f"curl -s -X POST http://localhost:{port}/api/v1/auth/login/access-token "
        "-d 'username=dev@example.com&password=Dev-pass-123'",
        port=port,
    )["access_token"]
    assert [t["id"] for t in run(listing, port=port, token=dev)["items"]] == [1]
