"""The list queries' plans at a realistic size: every page is a range of an index.

A database per shape is loaded by `taskhub seed-demo`'s loader (40,000 tasks, 10,000
products, 20,000 orders; bob is a member of 50 projects holding 5,000 of the tasks), and
every list statement the API runs is explained: GET /tasks for a member and for a site
admin, for every sort, with the filters alone and combined, on its first page and on a page
in the middle; GET /products and GET /orders likewise.

- PostgreSQL (vacuumed and analyzed, as autovacuum leaves a table): EXPLAIN ANALYZE shows
  no sequential scan of tasks, products or orders, and the rows a plan reads from them
  (returned or filtered out, over every loop) stay within a page's budget: a page is found
  without reading or sorting the rows before it. A sort only orders what such a plan read:
  a member's per-project pages being merged, a search's walk or a rare word's matches, or
  a handful of rows the planner found cheaper to sort than to read in order.
- SQLite (no statistics, as the embedded shape runs): EXPLAIN QUERY PLAN never shows
  `SCAN tasks` (products, orders): each is searched by a range of an index. A plain page
  has no `USE TEMP B-TREE FOR ORDER BY`; a member's merged pages and a search's matches are
  the only sorted sets. The work (SQLite's virtual-machine steps, counted by a progress
  handler) stays a fraction of a scan of the table, plus, for a search, what FTS5 takes to
  read the word's rows.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from rich.console import Console
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Dialect

from taskhub.catalog.service import product_page
from taskhub.driver import DriverStatement, _Compiled
from taskhub.migrate import upgrade
from taskhub.orders.documents import ORDERS_PAGE
from taskhub.pages import PageStatement
from taskhub.pagination import encode_cursor
from taskhub.projects.task_query import TaskFilters, TaskPage, TaskSort
from taskhub.search import WALK
from taskhub.security import TokenClaims
from taskhub.seed import COMMON_WORD, RARE_WORD, seed_demo
from tests.conftest import (
    PG_ADMIN_DSN,
    _pg_available,
    create_pg_database,
    drop_pg_database,
    make_settings,
    pg_url,
    service_missing,
)

# The expiry of the member tokens the plans bind (only their claims are read).
FAR = datetime(2100, 1, 1, tzinfo=UTC)

TASKS, PRODUCTS, ORDERS = 40_000, 10_000, 20_000
LIMIT = 50
PROJECTS = 50  # bob's
WORDS = (RARE_WORD, COMMON_WORD, "ber")  # in 0.1 % of the rows, in every title, a prefix
BIG = ("tasks", "products", "orders")
# PostgreSQL: rows a plan may read. A page: its rows and those its filters skip (the most
# selective combination keeps one row in 15). A member's merge: a page per project.
PAGE_ROWS = 3 * (LIMIT + 1) * 15
MERGE_ROWS = 3 * PROJECTS * (LIMIT + 1)


@dataclass
class Loaded:
    """A seeded database: its dialect, where it is, and the ids and sizes a case names."""

    shape: str
    dialect: Dialect
    url: str
    bob: int
    alice: int
    team_project: int
    other_project: int
    outsider: int
    middle_task: dict[str, Any]
    middle_order: int
    matches: dict[tuple[str, str], int]  # (table, word) → rows that match
    scan_steps: int  # SQLite: VM steps of a scan of tasks


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Loaded]:
    """The seeded database of one shape (loaded once for the module)."""
    postgres = request.param == "postgres"
    if postgres:
        if problem := await _pg_available():
            service_missing("PostgreSQL", problem)
        server = PG_ADMIN_DSN
        name = await create_pg_database(server)
        url = pg_url(server, name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('plans') / 'plans.db'}"
    settings = make_settings(database_url=url)
    try:
        await upgrade(settings)
        await seed_demo(
            settings,
            tasks=TASKS,
            products=PRODUCTS,
            orders=ORDERS,
            console=Console(file=io.StringIO()),
        )
        run = _postgres_reader(url) if postgres else _sqlite_reader(url)
        found = {key: await run(sql) for key, sql in _IDS.items()}
        middle = await run(_MIDDLE_TASK, row=True)
        matches = {
            (table, word): await run(_COUNT[postgres].format(table=table, word=word))
            for table in ("tasks", "products")
            for word in WORDS
        }
        yield Loaded(
            shape=request.param,
            dialect=asyncpg_dialect() if postgres else sqlite.dialect(),  # type: ignore[no-untyped-call]
            url=url,
            middle_task=_task_row(middle),
            matches=matches,
            scan_steps=0 if postgres else _vm_steps(_sqlite(url), _SCAN, []),
            **found,
        )
    finally:
        if postgres:
            await drop_pg_database(server, name)


_IDS = {
    "bob": "SELECT id FROM users WHERE email = 'bob@example.com'",
    "alice": "SELECT id FROM users WHERE email = 'alice@example.com'",
    "team_project": "SELECT id FROM projects WHERE title = 'Demo project'",
    "other_project": "SELECT min(id) FROM projects WHERE title LIKE 'Demo team %'",
    "outsider": "SELECT min(user_id) FROM project_members WHERE role = 'member' AND "
    "project_id = (SELECT min(id) FROM projects WHERE title LIKE 'Demo team %')",
    "middle_order": "SELECT id FROM orders ORDER BY id LIMIT 1 OFFSET 10000",
}
_MIDDLE_TASK = (
    "SELECT id, priority, due_date, created_at FROM tasks ORDER BY id LIMIT 1 OFFSET 20000"
)
# Rows of {table} that match {word} (the constants above, no outside text).
_COUNT = {
    True: "SELECT count(*) FROM {table} WHERE search @@ to_tsquery('simple', '{word}:*')",
    False: "SELECT count(*) FROM {table}_search WHERE {table}_search MATCH '{word}*'",
}
# A scan of tasks that keeps no row (no index serves the condition).
_SCAN = "SELECT * FROM tasks WHERE title = description"


def _postgres_reader(url: str) -> Any:
    async def run(sql: str, *, row: bool = False) -> Any:
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            return dict(await conn.fetchrow(sql)) if row else await conn.fetchval(sql)
        finally:
            await conn.close()

    return run


def _sqlite(url: str) -> sqlite3.Connection:
    return sqlite3.connect(url.split("///", 1)[1])


def _sqlite_reader(url: str) -> Any:
    async def run(sql: str, *, row: bool = False) -> Any:
        with _sqlite(url) as conn:
            cursor = conn.execute(sql)
            found = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        return dict(zip(names, found, strict=True)) if row else found[0]

    return run


def _task_row(row: dict[str, Any]) -> dict[str, Any]:
    """A task row as a page's cursor reads it (SQLite's text timestamps parsed)."""
    for name in ("due_date", "created_at"):
        if isinstance(row[name], str):
            row[name] = datetime.fromisoformat(row[name]).replace(tzinfo=UTC)
    return row


# --- the statements -------------------------------------------------------------------------


@dataclass
class Case:
    """One list query as the API runs it on this database, with its values."""

    name: str
    statement: DriverStatement
    params: dict[str, Any]
    kind: str  # "page", "merge" (a member's projects) or "search"
    table: str
    word: str | None = None


def task_cases(db: Loaded) -> Iterator[Case]:
    """GET /tasks for bob (a member of 50 projects) and for a site admin."""
    due = datetime(2025, 9, 1, tzinfo=UTC)
    for role in ("member", "admin"):
        project = db.team_project if role == "member" else db.other_project
        assignee = db.alice if role == "member" else db.outsider
        filter_sets: list[dict[str, Any]] = [
            {},
            {"status": "done"},
            {"priority": "urgent"},
            {"status": "done", "priority": "urgent"},
            {"project_id": project},
            {"assignee_id": assignee},
            {"due_before": due},
            {"due_after": due},
            {"due_after": due, "priority": "high"},
            {"q": RARE_WORD},
            {"q": COMMON_WORD},
            {"q": RARE_WORD, "status": "done"},
            {"q": RARE_WORD, "project_id": project},
            {"q": RARE_WORD, "assignee_id": assignee},
        ]
        for sort in TaskSort:
            middle = TaskPage(filters=TaskFilters(), sort=sort, cursor=None, members_only=False)
            for filters in filter_sets:
                for cursor in (None, encode_cursor(middle.cursor_of(db.middle_task))):
                    page = TaskPage(
                        filters=TaskFilters(**filters),
                        sort=sort,
                        cursor=cursor,
                        members_only=role == "member",
                    )
                    merged = role == "member" and not {"project_id", "assignee_id"} & {*filters}
                    kind = "merge" if merged else "search" if "q" in filters else "page"
                    token = (
                        TokenClaims(user_id=db.bob, epoch=0, jti="plans", expires_at=FAR)
                        if role == "member"
                        else None
                    )
                    yield Case(
                        name=f"tasks {role} sort={sort.value} {filters} after={bool(cursor)}",
                        statement=_executed(page.statement(db.dialect.name), db),
                        params={**page.params(token), "limit": LIMIT + 1, "page_size": LIMIT},
                        kind=kind,
                        table="tasks",
                        word=filters.get("q"),
                    )


def product_cases(db: Loaded) -> Iterator[Case]:
    """GET /products: the catalog, searched, by stock, first and middle pages."""
    for q in (None, *WORDS):
        for in_stock in (None, True, False):
            for after_id in (None, PRODUCTS // 2):
                statement, params = product_page(
                    after_id=after_id, q=q, in_stock=in_stock, dialect=db.dialect.name
                )
                yield Case(
                    name=f"products q={q} in_stock={in_stock} after={after_id}",
                    statement=_executed(statement, db),
                    params={**params, "limit": LIMIT + 1, "page_size": LIMIT},
                    kind="search" if q else "page",
                    table="products",
                    word=q,
                )


def order_cases(db: Loaded) -> Iterator[Case]:
    """GET /orders: a user's and everyone's, by status, first and middle pages."""
    for (everyone, status), statement in ORDERS_PAGE.items():
        for before_id in (2**31, db.middle_order):
            params: dict[str, Any] = {"limit": LIMIT + 1, "before_id": before_id}
            if not everyone:
                params["user_id"] = db.bob
            yield Case(
                name=f"orders everyone={everyone} status={status} before={before_id}",
                statement=statement,
                params=params,
                kind="page",
                table="orders",
            )


def _executed(statement: PageStatement, db: Loaded) -> DriverStatement:
    """What runs: the database-written page on PostgreSQL, the row query on SQLite."""
    return statement.json if db.shape == "postgres" else statement.rows


def all_cases(db: Loaded) -> list[Case]:
    """Every case, tasks, products and orders."""
    return [*task_cases(db), *product_cases(db), *order_cases(db)]


def _compiled(statement: DriverStatement, dialect: Dialect) -> _Compiled:
    """The statement compiled for `dialect` (not the one it keeps for its own database:
    these tests compile the app's statements for both)."""
    return _Compiled(statement.statement.compile(dialect=dialect), dialect)


def _matches(db: Loaded, case: Case) -> int:
    return db.matches[(case.table, case.word)] if case.word else 0


# --- PostgreSQL -----------------------------------------------------------------------------


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _rows_read(nodes: list[dict[str, Any]]) -> float:
    """Rows the nodes read from the big tables: returned or filtered out, every loop."""
    read = 0.0
    for node in nodes:
        if node.get("Relation Name") in BIG:
            rows = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
            rows += node.get("Rows Removed by Index Recheck", 0)
            read += rows * node.get("Actual Loops", 1)
    return read


def postgres_budget(db: Loaded, case: Case) -> int:
    """The rows a case may read: a page, a page per project, or a search's walk (or a rare
    word's matches)."""
    if case.kind == "search":
        return WALK + _matches(db, case) + MERGE_ROWS
    return MERGE_ROWS if case.kind == "merge" else PAGE_ROWS


async def explain_postgres(db: Loaded, cases: list[Case]) -> list[str]:
    """What is wrong with the cases' plans on PostgreSQL (nothing, one hopes)."""
    problems = []
    conn = await asyncpg.connect(db.url.replace("+asyncpg", ""))
    try:
        for case in cases:
            compiled = _compiled(case.statement, db.dialect)
            raw = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + compiled.sql, *compiled.args(case.params)
            )
            nodes = list(_nodes(json.loads(raw)[0]["Plan"]))
            budget = postgres_budget(db, case)
            for node in nodes:
                if not node.get("Actual Loops"):
                    continue  # a part of the plan that did not run (one-time filter false)
                if node["Node Type"] == "Seq Scan" and node["Relation Name"] in BIG:
                    problems.append(f"{case.name}: sequential scan of {node['Relation Name']}")
                if node["Node Type"] == "Sort" and (below := _rows_read(list(_nodes(node)))):
                    if below > (PAGE_ROWS if case.kind == "page" else budget):
                        problems.append(f"{case.name}: sorts {below:.0f} rows read")
            if (read := _rows_read(nodes)) > budget:
                problems.append(f"{case.name}: reads {read:.0f} rows (budget {budget})")
    finally:
        await conn.close()
    return problems


# --- SQLite ---------------------------------------------------------------------------------

# A progress handler runs every STEP virtual-machine instructions.
STEP = 100


def _vm_steps(conn: sqlite3.Connection, sql: str, args: list[Any]) -> int:
    """How many virtual-machine instructions a statement takes (to a hundred)."""
    ticks: list[int] = []

    def tick() -> int:
        ticks.append(STEP)
        return 0

    conn.set_progress_handler(tick, STEP)
    try:
        conn.execute(sql, args).fetchall()
    finally:
        conn.set_progress_handler(None, STEP)
    return sum(ticks)


def sqlite_budget(db: Loaded, case: Case) -> int:
    """The steps a case may take: a fraction of a scan of tasks; a member's merge, up to a
    scan's worth (fifty small searches and a sort); a search, on SQLite, about fifty steps
    per match on top (FTS5 reads the word's whole list of rows, which are then sorted)."""
    if case.kind == "page":
        return db.scan_steps // 4
    return db.scan_steps + 50 * _matches(db, case)


def explain_sqlite(db: Loaded, cases: list[Case]) -> list[str]:
    """What is wrong with the cases' plans on SQLite (nothing, one hopes)."""
    problems = []
    conn = _sqlite(db.url)
    try:
        for case in cases:
            compiled = _compiled(case.statement, db.dialect)
            args = compiled.args(case.params)
            for *_, detail in conn.execute("EXPLAIN QUERY PLAN " + compiled.sql, args):
                if detail.split()[:2] in (["SCAN", table] for table in BIG):
                    problems.append(f"{case.name}: {detail}")
                if detail == "USE TEMP B-TREE FOR ORDER BY" and case.kind == "page":
                    problems.append(f"{case.name}: {detail}")
            budget = sqlite_budget(db, case)
            if (steps := _vm_steps(conn, compiled.sql, args)) > budget:
                problems.append(f"{case.name}: {steps} VM steps (budget {budget})")
    finally:
        conn.close()
    return problems


async def test_every_list_query_reads_a_range_of_an_index(loaded: Loaded) -> None:
    cases = all_cases(loaded)
    assert len(cases) > 450
    assert loaded.matches[("tasks", RARE_WORD)] == TASKS // 1000
    assert loaded.matches[("tasks", COMMON_WORD)] == TASKS
    if loaded.shape == "postgres":
        problems = await explain_postgres(loaded, cases)
    else:
        assert loaded.scan_steps > 100_000
        problems = explain_sqlite(loaded, cases)
    assert problems == [], "\n".join(problems)
