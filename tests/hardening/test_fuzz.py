"""Property-based fuzzing of the whole API against its own OpenAPI schema (schemathesis).

Shape: PostgreSQL, deliberately. It is the stricter database: int32 columns overflow, NUL
characters in text are refused, and comparisons are typed, so inputs that SQLite silently
accepts surface as errors there. The embedded shape runs the same handlers.

The app runs in-process on schemathesis' ASGI transport, whose single event-loop thread owns
the app's lifespan (engine, pool, embedded dispatcher). Each operation gets a fixed number of
examples, positive and negative, with Hypothesis derandomized (a fixed seed per test), once as
a regular user and once as a site admin, both with real tokens from the login endpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi import checks as oas
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from taskhub.main import create_app
from taskhub.migrate import upgrade
from taskhub.security import hash_password_sync
from tests.conftest import create_pg_database, drop_pg_database, make_settings, pg_url

pytestmark = pytest.mark.pg

EXAMPLES_PER_OPERATION = 15
PASSWORD = "Fuzz-password-123"
# Out of reach of the ids the fuzzer tends to pick (1, 2, ...), so that an admin deleting or
# deactivating "user 2" does not lock the fuzzing accounts out halfway through.
ADMIN_ID, USER_ID, LOGOUT_ID = 1_900_000_001, 1_900_000_002, 1_900_000_003
# These end the token they are sent with (or every token of its user): they are fuzzed with a
# fresh token of an account of their own, so that the other operations keep theirs.
ENDS_TOKENS = {"/api/v1/auth/logout", "/api/v1/auth/logout-all"}
PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger(__name__)


@schemathesis.check
def errors_are_problem_json(ctx: Any, response: schemathesis.Response, case: Any) -> bool | None:
    """Every 4xx/5xx answer is an RFC 9457 problem document."""
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith(PROBLEM_JSON), (
            f"{response.status_code} answered with {content_type!r}, not {PROBLEM_JSON}"
        )
        body = response.json()
        assert body["status"] == response.status_code, body
        assert {"type", "title", "detail"} <= body.keys(), body
    return None


CHECKS = [
    schemathesis.checks.not_a_server_error,
    oas.status_code_conformance,
    oas.content_type_conformance,
    oas.response_headers_conformance,
    oas.response_schema_conformance,
    oas.negative_data_rejection,
    errors_are_problem_json,
]


@dataclass
class FuzzTarget:
    """The schema loaded from the running app, and a bearer token per role."""

    schema: Any
    tokens: dict[str, str]
    app: Any

    def login(self, role: str) -> str:
        """A new token of the `role` account (`user`, `admin` or `logout`)."""
        with asgi.get_client(self.app) as client:
            r = client.post(
                "/api/v1/auth/login/access-token",
                data={"username": f"fuzz-{role}@example.com", "password": PASSWORD},
            )
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token


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
def fuzz_target(pg_server: str) -> Iterator[FuzzTarget]:
    """A fresh, migrated database and an app serving it, started on schemathesis' loop."""
    loop = asyncio.new_event_loop()
    name = loop.run_until_complete(create_pg_database(pg_server))
    url = pg_url(pg_server, name)
    try:
        settings_ = make_settings(database_url=url, max_open_orders_per_user=0)
        loop.run_until_complete(upgrade(settings_))
        loop.run_until_complete(_seed_accounts(url))
        app = create_app(settings_)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        target = FuzzTarget(schema=schema, tokens={}, app=app)
        target.tokens = {role: target.login(role) for role in ("user", "admin")}
        yield target
        asgi.shutdown_lifespans()
    finally:
        loop.run_until_complete(drop_pg_database(pg_server, name))
        loop.close()


def _fuzz_operation(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> int:
    """Run one operation's examples; returns how many requests were sent."""
    sent = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
    return sent


@pytest.mark.parametrize(
    ("role", "mode"),
    [
        ("user", GenerationMode.POSITIVE),
        ("admin", GenerationMode.POSITIVE),
        # Negative inputs as the admin only: a site admin gets past every permission gate, so
        # the malformed input reaches validation on every route (a regular user's stops at
        # 403/404 on admin-only and foreign resources, which the positive runs already cover).
        ("admin", GenerationMode.NEGATIVE),
    ],
    ids=["user-positive", "admin-positive", "admin-negative"],
)
def test_fuzz_api(
    fuzz_target: FuzzTarget,
    role: str,
    mode: GenerationMode,
    record_property: Callable[[str, object], None],
) -> None:
    """No input, valid or not, gets a 5xx, an undocumented answer, or a non-problem error."""
    headers = {"Authorization": f"Bearer {fuzz_target.tokens[role]}"}
    failures: list[str] = []
    operations = examples = 0
    for result in fuzz_target.schema.get_all_operations():
        operation = result.ok()
        operations += 1
        own = operation.path in ENDS_TOKENS
        token = fuzz_target.login("logout") if own else None
        try:
            examples += _fuzz_operation(
                operation, mode, {"Authorization": f"Bearer {token}"} if own else headers
            )
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to mutate (no input at all)
        except (Exception, BaseExceptionGroup) as exc:  # report every failing operation
            failures.append(f"--- {operation.label}\n{exc}")
    record_property("examples", examples)
    logger.info("fuzzed %d operations with %d requests (%s, %s)", operations, examples, role, mode)
    assert operations > 40
    assert examples > operations * EXAMPLES_PER_OPERATION // 2
    assert not failures, f"{len(failures)} failing operation(s):\n" + "\n".join(failures)
    # The token survived the run: no operation answered 401 merely because one ended it.
    with asgi.get_client(fuzz_target.app) as client:
        assert client.get("/api/v1/users/me", headers=headers).status_code == 200
