"""Schemathesis runs every check against the whole API, through its own OpenAPI document.

A real `taskhub serve` process (PostgreSQL, deliberately: it is the stricter database: int32
columns overflow, NUL characters in text are refused, comparisons are typed) is tested by the
schemathesis CLI, as any user of the API would run it:
- all phases as a site admin (whom no permission gate stops, so every input reaches
  validation): the schema's examples, coverage (boundary values, every undeclared method of
  every path, which must be a 405 naming the allowed methods in `Allow`), fuzzing (positive
  and negative) and stateful sequences (resources created, then read, changed, deleted);
- examples and fuzzing as a regular user.
Checks: all of schemathesis' (status code, content type, headers and schema conformance,
negative data rejected, positive data accepted, required headers, unsupported methods and the
Allow header, use after free, ignored auth, object-level authorization, no 5xx) plus
taskhub's own (every error is problem+json: `schemathesis_hooks.py`), except
`ensure_resource_availability`: it takes a task that vanished with its deleted project for a
created resource that cannot be found. `schemathesis.toml` lists the answers that
`positive_data_acceptance` accepts, and why.

Generation is deterministic, so a run is reproducible; each operation gets a few examples per
phase, which keeps the run to about a minute.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from taskhub.security import hash_password_sync
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.processes import TaskhubProcess, free_port, process_env

pytestmark = pytest.mark.pg

HERE = Path(__file__).resolve().parent
EXAMPLES_PER_OPERATION = 10
PASSWORD = "Fuzz-password-123"
# Out of reach of the ids the fuzzer tends to pick (1, 2, ...), so that an admin deleting or
# deactivating "user 2" does not lock the fuzzing accounts out halfway through.
ADMIN_ID, USER_ID, LOGOUT_ID = 1_900_000_001, 1_900_000_002, 1_900_000_003
# These end the token they are sent with (or every token of its user): they are fuzzed with a
# token of an account of their own, so that the other runs keep theirs.
ENDS_TOKENS = r"^/api/v1/auth/logout(-all)?$"
logger = logging.getLogger(__name__)


@dataclass
class FuzzTarget:
    """A running server and a bearer token per role."""

    url: str
    tokens: dict[str, str]
    process: TaskhubProcess


async def _seed_accounts(url: str) -> None:
    hashed = hash_password_sync(PASSWORD, rounds=4)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for user_id, email, admin in [
                (ADMIN_ID, "fuzz-admin@example.com", True),
                (USER_ID, "fuzz-user@example.com", False),
                (LOGOUT_ID, "fuzz-logout@example.com", False),
            ]:
                await conn.execute(
                    text(
                        "INSERT INTO users (id, email, hashed_password, full_name, is_active,"
                        " is_superuser) VALUES (:id, :email, :h, 'fuzz', true, :admin)"
                    ),
                    {"id": user_id, "email": email, "h": hashed, "admin": admin},
                )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def fuzz_target(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    """A fresh, migrated database, and `taskhub serve` on it."""
    loop = asyncio.new_event_loop()
    name = loop.run_until_complete(create_pg_database(pg_server))
    url = pg_url(pg_server, name)
    tmp = tmp_path_factory.mktemp("fuzz")
    env = process_env(
        DATABASE_URL=url,
        BCRYPT_ROUNDS="4",
        MAX_OPEN_ORDERS_PER_USER="0",
        LOGIN_MAX_FAILURES_PER_ACCOUNT="100000",
        LOGIN_MAX_FAILURES_PER_CLIENT="100000",
    )
    server: TaskhubProcess | None = None
    try:
        migrate = subprocess.run(
            ["python", "-m", "taskhub.cli", "migrate"], env=env, capture_output=True, check=False
        )
        assert migrate.returncode == 0, migrate.stderr
        loop.run_until_complete(_seed_accounts(url))
        port = free_port()
        server = TaskhubProcess(
            ["serve", "--port", str(port)], env=env, log=tmp / "serve.log", cwd=tmp
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, server.tail()
            time.sleep(0.2)
        tokens = {}
        for role in ("user", "admin", "logout"):
            r = httpx.post(
                f"{base}/api/v1/auth/login/access-token",
                data={"username": f"fuzz-{role}@example.com", "password": PASSWORD},
            )
            assert r.status_code == 200, r.text
            tokens[role] = r.json()["access_token"]
        yield FuzzTarget(url=base, tokens=tokens, process=server)
    finally:
        if server is not None:
            server.close()
        loop.run_until_complete(drop_pg_database(pg_server, name))
        loop.close()


def _summary(output: str) -> dict[str, object]:
    """Operations, requests and failures by check, from the CLI's summary."""
    tested = re.search(r"Tested: (\d+)", output)
    generated = re.search(r"(\d+) generated", output)
    failures = dict(re.findall(r"❌ (ST\d+ [^:\n]+): (\d+)", output))
    return {
        "operations": int(tested.group(1)) if tested else 0,
        "requests": int(generated.group(1)) if generated else 0,
        "failures": failures,
    }


@pytest.mark.parametrize(
    ("role", "phases"),
    [
        ("admin", "examples,coverage,fuzzing,stateful"),
        ("user", "examples,fuzzing"),
        ("logout", "examples,fuzzing"),
    ],
)
def test_fuzz_api(
    fuzz_target: FuzzTarget,
    role: str,
    phases: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    """Every check passes on every operation: no 5xx, no undocumented answer, header,
    content type or body, no 405 without its full Allow, no accepted invalid input."""
    env = process_env(SCHEMATHESIS_HOOKS=str(HERE / "schemathesis_hooks.py"))
    command = [
        "st",
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{fuzz_target.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {fuzz_target.tokens[role]}",
        "--checks",
        "all",
        "--exclude-checks",
        "ensure_resource_availability",
        "--include-path-regex" if role == "logout" else "--exclude-path-regex",
        ENDS_TOKENS,
        "--phases",
        phases,
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--generation-deterministic",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    run = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=540, check=False
    )
    summary = _summary(run.stdout)
    record_property("schemathesis", summary)
    logger.info("schemathesis (%s, %s): %s", role, phases, summary)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-2000:]
    document = httpx.get(f"{fuzz_target.url}/openapi.json").json()
    enders = [path for path in document["paths"] if re.match(ENDS_TOKENS, path)]
    assert len(enders) == 2, enders
    operations = sum(len(item) for item in document["paths"].values())
    if role == "logout":
        assert summary["operations"] == len(enders), summary
        return
    assert summary["operations"] == operations - len(enders) > 40, summary
    assert isinstance(summary["requests"], int) and summary["requests"] > operations * 5, summary
