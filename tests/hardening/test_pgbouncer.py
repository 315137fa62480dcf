"""DB_PGBOUNCER: taskhub behind PgBouncer 1.18 in transaction mode (no prepared statements).

Each test starts a pgbouncer of its own (tests/pgbouncer.py) with a small server pool, so
that which server connection a statement lands on is known: a named prepared statement is
shown to break there, taskhub's connections are shown to leave none behind, and asyncpg's
unnamed statements are shown to stay on one server connection from Parse to Sync when no
transaction is open.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError
from sqlalchemy import text

import tests.conftest
from taskhub.db import make_engine, pg_connect_args
from taskhub.driver import attach_driver_pool, detach_driver_pool
from taskhub.main import create_app
from taskhub.messaging.outbox import NOTIFY_CHANNEL, NOTIFY_RELAYS
from tests.commerce.conftest import make_product, place_order, wait_settled
from tests.conftest import clean_tables, client_for, make_settings, start_pgbouncer
from tests.factories import make_user
from tests.pgbouncer import PgBouncer

ROOT = Path(__file__).resolve().parents[2]
QUERY = "SELECT $1::int + 1"
PREPARED = "SELECT count(*) FROM pg_prepared_statements"


@pytest.fixture
def bouncers(pg_server: str) -> Iterator[Callable[..., PgBouncer]]:
    """Start private pgbouncers in front of the test PostgreSQL; all stopped at the end."""
    started: list[PgBouncer] = []

    def start(**options: Any) -> PgBouncer:
        started.append(start_pgbouncer(pg_server, **options))
        return started[-1]

    yield start
    for bouncer in started:
        bouncer.stop()


async def second_run_on_another_server(
    dsn: str, run: Callable[[], Awaitable[int]]
) -> BaseException | None:
    """`run()` once; then again while another client holds, inside a transaction, the server
    connection the first run used (pgbouncer reuses the last idle one), so that the second
    run lands on another server connection. What the second run raised, if anything."""
    assert await run() == 2
    holder = await asyncpg.connect(dsn, statement_cache_size=0)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1")
            try:
                assert await run() == 2
            except Exception as exc:  # the failure is the finding
                return exc
    finally:
        await holder.close()
    return None


async def test_named_prepared_statements_break_behind_pgbouncer_and_taskhubs_do_not(
    bouncers: Callable[..., PgBouncer], pg_server: str
) -> None:
    bouncer = bouncers(pool_size=2, round_robin=False)
    dsn = bouncer.url_through(pg_server)
    direct = make_settings(database_url=dsn)
    behind = make_settings(database_url=dsn, db_pgbouncer=True)
    # Bare asyncpg (the server's driver pool connects with pg_connect_args).
    for settings, broken in ((direct, True), (behind, False)):
        client = await asyncpg.connect(dsn, **pg_connect_args(settings))
        try:
            error = await second_run_on_another_server(
                dsn, functools.partial(client.fetchval, QUERY, 1)
            )
        finally:
            await client.close()
        if broken:
            # asyncpg's cached statement was prepared on the other server connection.
            assert isinstance(error, asyncpg.InvalidSQLStatementNameError), repr(error)
            assert "does not exist" in str(error)
        else:
            assert error is None, repr(error)
    # SQLAlchemy's asyncpg dialect (ORM sessions), in transactions and in autocommit.
    for settings, broken in ((direct, True), (behind, False)):
        for autocommit in (False, True):
            engine = make_engine(settings)
            if autocommit:
                engine = engine.execution_options(isolation_level="AUTOCOMMIT")
            try:
                async with engine.connect() as conn:

                    async def run(conn: Any = conn) -> int:
                        value = await conn.scalar(text("SELECT CAST(:n AS int) + 1"), {"n": 1})
                        await conn.commit()
                        return int(value)

                    error = await second_run_on_another_server(dsn, run)
                    if error is not None:
                        await conn.rollback()
            finally:
                await engine.dispose()
            if broken:
                assert error is not None and "does not exist" in str(error), repr(error)
            else:
                assert error is None, (autocommit, repr(error))


async def test_taskhub_leaves_no_prepared_statement_on_the_server(
    bouncers: Callable[..., PgBouncer], pg_database_url: str
) -> None:
    """Through one server connection (pool size 1), a workload of every kind of statement
    (ORM sessions, autocommit reads, the driver pool, the order CTE, the embedded handlers)
    leaves no named prepared statement behind."""
    bouncer = bouncers(pool_size=1)
    url = bouncer.url_through(pg_database_url)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    probe = await asyncpg.connect(dsn, statement_cache_size=0)
    try:
        # The probe sees the one server connection: a default asyncpg client's statement
        # shows up there, and is removed again.
        named = await asyncpg.connect(dsn)
        try:
            assert await named.fetchval(QUERY, 1) == 2
        finally:
            await named.close()
        assert await probe.fetchval(PREPARED) == 1
        await probe.execute("DEALLOCATE ALL")
        assert await probe.fetchval(PREPARED) == 0

        app = create_app(make_settings(database_url=url, db_pgbouncer=True))
        async with LifespanManager(app), client_for(app) as client:
            admin = await make_user(app, client, is_superuser=True)
            customer = await make_user(app, client)
            product = await make_product(client, admin, stock=5)
            assert (await client.get("/api/v2/products")).status_code == 200
            assert (await client.get("/api/v1/users/me", headers=customer.headers)).is_success
            plain = await place_order(client, customer, [(product, 1)])
            keyed = await client.post(
                "/api/v2/orders",
                json={"items": [{"product_id": product, "quantity": 2}]},
                headers={**customer.headers, "Idempotency-Key": "pgbouncer-1"},
            )
            assert plain.status_code == keyed.status_code == 201, (plain.text, keyed.text)
            ids = [plain.json()["id"], keyed.json()["id"]]
            statuses = await wait_settled(client, customer, ids)
            assert set(statuses.values()) == {"RESERVED"}
            r = await client.post(f"/api/v2/orders/{ids[0]}/cancel", headers=customer.headers)
            assert r.status_code == 200, r.text
            assert (await client.get("/api/v2/orders", headers=customer.headers)).is_success
            assert (await client.get("/ready")).status_code == 200
        assert await probe.fetchval(PREPARED) == 0
    finally:
        await probe.close()
        await clean_tables(pg_database_url)


async def test_unnamed_statements_outside_transactions_stay_on_one_server_connection(
    bouncers: Callable[..., PgBouncer], pg_server: str
) -> None:
    """Many clients, two server connections handed out in turn, no transactions: every
    statement (of several shapes, one needing type introspection) returns its own answer."""
    bouncer = bouncers(pool_size=2, round_robin=True)
    dsn = bouncer.url_through(pg_server)
    settings = make_settings(database_url=dsn, db_pgbouncer=True)
    shapes: list[tuple[str, Callable[[int], tuple[Any, ...]], Callable[[Any, int], bool]]] = [
        ("SELECT $1::int * 2 AS n", lambda i: (i,), lambda row, i: row["n"] == 2 * i),
        (
            "SELECT $1::text || '!' AS t, $2::int AS n",
            lambda i: (str(i), i),
            lambda row, i: row["t"] == f"{i}!" and row["n"] == i,
        ),
        (
            # A composite (row) type: asyncpg introspects it with a statement of its own.
            "SELECT $1::bigint AS n, NULL::information_schema.sql_sizing AS ns",
            lambda i: (i,),
            lambda row, i: row["n"] == i and row["ns"] is None,
        ),
    ]

    async def client_loop(seed: int) -> int:
        rng = random.Random(seed)
        conn = await asyncpg.connect(dsn, **pg_connect_args(settings))
        try:
            for _ in range(25):
                sql, args, check = rng.choice(shapes)
                value = rng.randint(1, 1_000_000)
                row = await conn.fetchrow(sql, *args(value))
                assert row is not None and check(row, value), (sql, value, row)
        finally:
            await conn.close()
        return seed

    assert sorted(await asyncio.gather(*(client_loop(seed) for seed in range(16)))) == list(
        range(16)
    )


async def test_a_notify_sent_through_pgbouncer_reaches_a_relay_listening_directly(
    bouncers: Callable[..., PgBouncer], pg_database_url: str
) -> None:
    """The NOTIFY half of LISTEN/NOTIFY works through transaction pooling: the API's own
    statement, on its driver pool behind PgBouncer, wakes a LISTEN on PostgreSQL itself
    (DATABASE_LISTEN_URL)."""
    bouncer = bouncers(pool_size=2)
    settings = make_settings(database_url=bouncer.url_through(pg_database_url), db_pgbouncer=True)
    heard = asyncio.Event()
    listener = await asyncpg.connect(pg_database_url.replace("+asyncpg", "", 1))
    engine = make_engine(settings, driver_pool=True)
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *_: heard.set())
        await attach_driver_pool(engine, settings)
        await NOTIFY_RELAYS.fetch(engine)
        await asyncio.wait_for(heard.wait(), timeout=10)
    finally:
        await detach_driver_pool(engine)
        await engine.dispose()
        await listener.close()


def test_a_missing_pgbouncer_fails_when_services_are_required_and_skips_otherwise(
    pg_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKHUB_TEST_PGBOUNCER", str(ROOT / "no-such-dir" / "pgbouncer"))
    monkeypatch.setattr(tests.conftest, "REQUIRE_SERVICES", True)
    with pytest.raises(pytest.fail.Exception, match=r"pgbouncer is required"):
        start_pgbouncer(pg_server)
    monkeypatch.setattr(tests.conftest, "REQUIRE_SERVICES", False)
    monkeypatch.setattr(tests.conftest, "_skipped_services", set())  # not this run's summary
    with pytest.raises(pytest.skip.Exception, match="pgbouncer unavailable"):
        start_pgbouncer(pg_server)


def test_pgbouncer_settings_turn_the_caches_off_and_choose_where_the_relay_listens() -> None:
    pg = "postgresql://taskhub@db:5432/taskhub"
    direct = make_settings(database_url=pg)
    assert direct.listen_url == "postgresql+asyncpg://taskhub@db:5432/taskhub"
    assert "statement_cache_size" not in pg_connect_args(direct)
    behind = make_settings(
        database_url="postgresql://taskhub@bouncer:6432/taskhub", db_pgbouncer=True
    )
    assert pg_connect_args(behind)["statement_cache_size"] == 0
    assert behind.listen_url is None  # no LISTEN through transaction pooling: the relay polls
    assert (
        make_settings(database_url=pg, db_pgbouncer=True, database_listen_url="").listen_url is None
    )
    explicit = make_settings(
        database_url="postgresql://taskhub@bouncer:6432/taskhub",
        db_pgbouncer=True,
        database_listen_url=pg,
    )
    assert explicit.listen_url == "postgresql+asyncpg://taskhub@db:5432/taskhub"
    assert make_settings(database_url="sqlite+aiosqlite:///x.db").listen_url is None
    with pytest.raises(ValidationError, match="DB_PGBOUNCER=true needs a PostgreSQL"):
        make_settings(database_url="sqlite+aiosqlite:///x.db", db_pgbouncer=True)
