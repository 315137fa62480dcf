#!/usr/bin/env python3
"""`make bench-scale`: every list query at scale, and what the indexes cost writes.

1. Lists on PostgreSQL, at two sizes (default: 10k tasks, 10k products and 10k orders; then
   1M tasks, 100k products and 1M orders). For each: a fresh database migrated to the
   revision before the search columns and list indexes, loaded by `taskhub seed-demo`
   (timed), then migrated to head (timed: the search columns rewrite the tables, the
   indexes build concurrently), then VACUUM ANALYZE. One `taskhub serve` process answers
   every combination of list, sort, filter and search, as bob (a member of 50 projects
   holding 5,000 tasks) and as a site admin: a warm-up round, then rounds of the first page
   and the pages after it, plus a page in the middle of the table. p50 and p99 of the
   request latency, measured by a client on one keep-alive connection.
2. The same on the embedded shape: SQLite, 100k tasks (10k products, 10k orders).
3. Writes: POST /tasks and POST /orders with wrk, against two databases loaded alike (100k
   tasks), one at the revision before this change's migrations and one at head, servers
   alternated, three rounds each.

It writes a markdown table and the raw figures to bench/results/scale-<stamp>.md / .json
(and scale-latest.md). A benchmark, not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from taskhub.pagination import encode_cursor  # noqa: E402
from taskhub.projects.task_query import TaskFilters, TaskPage, TaskSort  # noqa: E402
from taskhub.seed import COMMON_WORD, DEMO_USERS, GENERATED_PASSWORD, RARE_WORD  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
# The revision before the search columns and the list indexes (migrations 4e7b1d9c2a60 and
# 9b2d5f3e8c17): the data is loaded there, as an existing database would be, then migrated.
BEFORE = "c3f1a9d2e7b4"
PASSWORDS = {email: password for email, password, _, _ in DEMO_USERS}
TARGET_P50_MS = 50.0
GROWTH = 2.0
GROWTH_FLOOR_MS = 10.0


def log(msg: str) -> None:
    """Progress on stderr."""
    sys.stderr.write(f"[bench-scale] {time.strftime('%H:%M:%S')} {msg}\n")
    sys.stderr.flush()


# --- databases and processes ----------------------------------------------------------------


def pg(sql: str, db: str = "postgres") -> Any:
    """Run one statement on the PostgreSQL server; the first value it returns."""

    async def run() -> Any:
        conn = await asyncpg.connect(f"{PG}/{db}")
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def pg_row(sql: str, db: str) -> dict[str, Any]:
    """The first row of a query."""

    async def run() -> dict[str, Any]:
        conn = await asyncpg.connect(f"{PG}/{db}")
        try:
            return dict(await conn.fetchrow(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


@dataclass
class Shape:
    """One database under test: how to reach it and what it holds."""

    name: str
    url: str
    env: dict[str, str]
    query: Any  # (sql) -> first value
    row: Any  # (sql) -> first row as a dict
    timings: dict[str, float] = field(default_factory=dict)


def base_env(database_url: str) -> dict[str, str]:
    """The environment of the taskhub processes of a run."""
    return {
        **os.environ,
        "ENVIRONMENT": "prod",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "MAX_OPEN_ORDERS_PER_USER": "0",
        "LOGIN_MAX_FAILURES_PER_CLIENT": "100000",
        "ACCESS_TOKEN_EXPIRE_MINUTES": "600",
        "BCRYPT_ROUNDS": "4",
    }


def taskhub(*args: str, env: dict[str, str]) -> float:
    """Run a taskhub command to its end (its progress shows on stderr); the seconds it took."""
    started = time.perf_counter()
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "taskhub.cli", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def migrate(env: dict[str, str], revision: str) -> float:
    """Migrate to a revision; the seconds the migrations took (not the process's start)."""
    code = (
        "import asyncio, sys, time; from taskhub.config import get_settings; "
        "from taskhub.migrate import upgrade; started = time.perf_counter(); "
        "asyncio.run(upgrade(get_settings(), sys.argv[1])); "
        "print(time.perf_counter() - started)"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code, revision], env=env, check=True, capture_output=True, text=True
    ).stdout
    return float(out.split()[-1])


class Server:
    """One `taskhub serve` process for the duration of a `with` block."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env, self.port = env, port
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "taskhub.cli", "serve", "--port", str(self.port)],
            env=self.env,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                status, _ = Client(self.port).get("/health")
                if status == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        raise SystemExit("taskhub serve did not come up")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None  # noqa: S101
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Client:
    """Sequential requests on one keep-alive connection (opened again when the server has
    closed it while it sat idle)."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str) -> tuple[int, Any]:
        """Status and JSON body."""
        try:
            self.conn.request("GET", path, headers=self.headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.conn.request("GET", path, headers=self.headers)
            response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def timed(self, path: str) -> tuple[float, Any]:
        """Milliseconds and JSON body of a GET that must succeed (a first request on a new
        connection is not timed: it is made again)."""
        self.get(path) if self.conn.sock is None else None
        started = time.perf_counter()
        status, body = self.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body}")
        return elapsed, body


def login(port: int, email: str) -> str:
    """An access token for a demo account."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    password = PASSWORDS.get(email, GENERATED_PASSWORD)
    body = urllib.parse.urlencode({"username": email, "password": password})
    conn.request(
        "POST",
        "/api/v1/auth/login/access-token",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    response = conn.getresponse()
    token: str = json.loads(response.read())["access_token"]
    return token


# --- the lists ------------------------------------------------------------------------------


@dataclass
class Combo:
    """One list request: its path and query; how to page it."""

    name: str
    path: str
    params: dict[str, Any]
    role: str  # member, admin, public
    middle: str | None  # a cursor in the middle of the table


def task_combos(ids: dict[str, Any]) -> Iterator[Combo]:
    """GET /tasks: every sort, with every filter alone, combined, and with search."""
    due = "2025-09-01T00:00:00Z"
    for role in ("member", "admin"):
        project = ids["team_project"] if role == "member" else ids["other_project"]
        assignee = ids["alice"] if role == "member" else ids["outsider"]
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
            probe = TaskPage(filters=TaskFilters(), sort=sort, cursor=None, members_only=False)
            middle = encode_cursor(probe.cursor_of(ids["middle_task"]))
            for filters in filter_sets:
                label = " ".join(f"{k}={_shown(k, v, role)}" for k, v in filters.items())
                yield Combo(
                    name=f"tasks | {role} | sort={sort.value} {label}".rstrip(),
                    path="/api/v1/tasks",
                    params={"sort": sort.value, **filters},
                    role=role,
                    middle=middle,
                )


def _shown(name: str, value: Any, role: str) -> str:
    """A filter's value as the report names it (ids differ between databases)."""
    if name == "project_id":
        return "(one of bob's)" if role == "member" else "(another team's)"
    if name == "assignee_id":
        return "alice" if role == "member" else "(a generated user)"
    if name.startswith("due_"):
        return str(value)[:10]
    return str(value)


def product_combos(ids: dict[str, Any]) -> Iterator[Combo]:
    """GET /products: by id, by stock, searched (a rare word, a common prefix)."""
    for q in (None, RARE_WORD, "ber"):
        for in_stock in (None, True, False):
            params: dict[str, Any] = {}
            if q:
                params["q"] = q
            if in_stock is not None:
                params["in_stock"] = str(in_stock).lower()
            label = " ".join(f"{k}={v}" for k, v in params.items()) or "(no filter)"
            yield Combo(
                name=f"products | public | {label}",
                path="/api/v2/products",
                params=params,
                role="public",
                middle=encode_cursor([ids["middle_product"]]),
            )


def order_combos(ids: dict[str, Any]) -> Iterator[Combo]:
    """GET /orders: a user's and every order, by status."""
    for role in ("member", "admin"):
        for status in (None, "PAID", "FAILED"):
            params = {"status": status} if status else {}
            yield Combo(
                name=f"orders | {role} | {'status=' + status if status else '(no filter)'}",
                path="/api/v2/orders",
                params=params,
                role=role,
                middle=encode_cursor([ids["middle_order"]]),
            )


def measure(clients: dict[str, Client], combo: Combo, rounds: int, pages: int) -> list[float]:
    """Latencies (ms) of a combination: rounds of the first page and the pages after it,
    and as many requests for the page in the middle. The first round warms up."""
    client = clients[combo.role]
    samples: list[float] = []
    for round_ in range(rounds + 1):
        cursor = None
        for _ in range(pages):
            query = {"limit": 50, **combo.params, **({"cursor": cursor} if cursor else {})}
            elapsed, body = client.timed(f"{combo.path}?{urllib.parse.urlencode(query)}")
            if round_:
                samples.append(elapsed)
            cursor = body["next_cursor"]
            if cursor is None:
                break
        if combo.middle and round_:
            query = {"limit": 50, **combo.params, "cursor": combo.middle}
            for _ in range(pages):
                elapsed, _ = client.timed(f"{combo.path}?{urllib.parse.urlencode(query)}")
                samples.append(elapsed)
    return samples


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def ids_of(shape: Shape) -> dict[str, Any]:
    """The ids the combinations name, and rows in the middle of the tables."""
    one = shape.query
    ids = {
        "alice": one("SELECT id FROM users WHERE email = 'alice@example.com'"),
        "team_project": one("SELECT id FROM projects WHERE title = 'Demo project'"),
        "other_project": one(
            "SELECT coalesce(max(id), 0) FROM projects WHERE title LIKE 'Demo team %'"
        ),
        "middle_product": one(
            "SELECT id FROM products ORDER BY id LIMIT 1 OFFSET (SELECT count(*) / 2 FROM products)"
        ),
        "middle_order": one(
            "SELECT id FROM orders ORDER BY id LIMIT 1 OFFSET (SELECT count(*) / 2 FROM orders)"
        ),
    }
    other = int(ids["other_project"])  # an id read above
    ids["outsider"] = one(
        f"SELECT min(user_id) FROM project_members WHERE role = 'member' AND project_id = {other}"  # noqa: S608
    )
    task = shape.row(
        "SELECT id, priority, due_date, created_at FROM tasks ORDER BY id "
        "LIMIT 1 OFFSET (SELECT count(*) / 2 FROM tasks)"
    )
    for name in ("due_date", "created_at"):
        if isinstance(task[name], str):
            task[name] = datetime.fromisoformat(task[name]).replace(tzinfo=UTC)
    ids["middle_task"] = task
    return ids


def run_lists(shape: Shape, port: int, rounds: int, pages: int) -> dict[str, dict[str, Any]]:
    """Every combination against one server on the shape's database."""
    ids = ids_of(shape)
    figures: dict[str, dict[str, Any]] = {}
    with Server(shape.env, port):
        clients = {
            "member": Client(port, login(port, "bob@example.com")),
            "admin": Client(port, login(port, "admin@example.com")),
            "public": Client(port),
        }
        combos = [*task_combos(ids), *product_combos(ids), *order_combos(ids)]
        log(f"{shape.name}: {len(combos)} combinations")
        for combo in combos:
            samples = measure(clients, combo, rounds, pages)
            figures[combo.name] = {
                "p50": round(percentile(samples, 0.50), 2),
                "p99": round(percentile(samples, 0.99), 2),
                "n": len(samples),
            }
    return figures


# --- the runs -------------------------------------------------------------------------------


def postgres_shape(label: str, tasks: int, products: int, orders: int) -> Shape:
    """A PostgreSQL database loaded at the revision before this change, then migrated."""
    db = f"taskhub_scale_{uuid.uuid4().hex[:8]}"
    pg(f'CREATE DATABASE "{db}"')
    env = base_env(f"{PG}/{db}")
    shape = Shape(
        label,
        db,
        env,
        query=lambda sql: pg(sql, db),
        row=lambda sql: pg_row(sql, db),
    )
    log(f"{label}: at {BEFORE}, loading {tasks} tasks, {products} products, {orders} orders")
    migrate(env, BEFORE)
    shape.timings["seed_s"] = taskhub(
        "seed-demo",
        "--tasks", str(tasks), "--products", str(products), "--orders", str(orders),
        env=env,
    )  # fmt: skip
    log(f"{label}: loaded in {shape.timings['seed_s']:.0f} s; migrating to head")
    shape.timings["search_columns_s"] = migrate(env, "4e7b1d9c2a60")
    shape.timings["indexes_s"] = migrate(env, "head")
    started = time.perf_counter()
    pg("VACUUM ANALYZE", db)
    shape.timings["vacuum_analyze_s"] = time.perf_counter() - started
    shape.timings["tasks_mb"] = float(pg("SELECT pg_total_relation_size('tasks') / 1048576", db))
    log(f"{label}: migrated ({shape.timings})")
    return shape


def sqlite_shape(directory: Path, tasks: int, products: int, orders: int) -> Shape:
    """A SQLite file at head, loaded by seed-demo."""
    path = directory / "scale.db"
    env = base_env(f"sqlite+aiosqlite:///{path}")
    import sqlite3

    def query(sql: str) -> Any:
        with sqlite3.connect(path) as conn:
            return conn.execute(sql).fetchone()[0]

    def row(sql: str) -> dict[str, Any]:
        with sqlite3.connect(path) as conn:
            cursor = conn.execute(sql)
            values = cursor.fetchone()
            return dict(zip([d[0] for d in cursor.description], values, strict=True))

    shape = Shape("sqlite", str(path), env, query=query, row=row)
    migrate(env, "head")
    shape.timings["seed_s"] = taskhub(
        "seed-demo",
        "--tasks", str(tasks), "--products", str(products), "--orders", str(orders),
        env=env,
    )  # fmt: skip
    return shape


def wrk_post(
    port: int, tokens: list[str], path: str, bodies: list[dict[str, Any]], secs: int
) -> tuple[float, int]:
    """Requests per second of a POST under wrk (8 connections, one thread), and how many.
    Request n is sent by tokens[n mod len] with bodies[n mod len]."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
    listed = ", ".join(f'"Bearer {token}"' for token in tokens)
    texts = ", ".join(f"[[{json.dumps(body)}]]" for body in bodies)
    script.write(
        f"tokens = {{{listed}}}\nbodies = {{{texts}}}\nn = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        '  local headers = {["Content-Type"] = "application/json",'
        ' ["Authorization"] = tokens[n % #tokens + 1]}\n'
        '  return wrk.format("POST", nil, headers, bodies[n % #bodies + 1])\n'
        "end\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("RESULT %d %f %d\\n", summary.requests, summary.duration / 1e6,'
        " summary.errors.status))\nend\n"
    )
    script.close()
    try:
        out = subprocess.run(  # noqa: S603
            [  # noqa: S607 (wrk from PATH, as make bench uses it)
                "wrk",
                "-t1",
                "-c8",
                f"-d{secs}s",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    requests, seconds, non2xx = next(
        line.split()[1:] for line in out.splitlines() if line.startswith("RESULT")
    )
    if int(non2xx):
        raise SystemExit(f"POST {path}: {non2xx} answers were not 2xx")
    return int(requests) / float(seconds), int(requests)


# One row inserted as the API inserts it, its own transaction each time.
INSERTS = {
    "orders": (
        "INSERT INTO orders (user_id, status, total_cents) VALUES ($1, 'PENDING', 100)",
        "SELECT min(id) FROM users WHERE email LIKE 'demo-user-%'",
    ),
    "tasks": (
        "INSERT INTO tasks (project_id, title, description, status, priority, assignee_id, "
        "due_date) VALUES ($1, 'Bench task needle words', 'Written by bench-scale', "
        "'todo', 'high', NULL, now())",
        "SELECT id FROM projects WHERE title = 'Demo project'",
    ),
}


async def insert_cost(db: str, count: int = 3000) -> dict[str, float]:
    """PostgreSQL's CPU time (µs) per single-row INSERT, from its backend's /proc entry:
    what the table's indexes cost a write, without HTTP, concurrency or commit waits."""
    conn = await asyncpg.connect(f"{PG}/{db}")
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await conn.execute("SET synchronous_commit = off")
        costs = {}
        for kind, (sql, argument) in INSERTS.items():
            statement = await conn.prepare(sql)
            value = await conn.fetchval(argument)
            for _ in range(200):  # warm up
                await statement.fetch(value)
            started = cpu_seconds([pid])[pid]
            for _ in range(count):
                await statement.fetch(value)
            costs[kind] = (cpu_seconds([pid])[pid] - started) / count * 1e6
        return costs
    finally:
        await conn.close()


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of processes (from /proc; gone ones are left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


def backends(db: str) -> list[int]:
    """The PostgreSQL backends serving a database."""
    pids = pg(f"SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = '{db}'")  # noqa: S608
    return list(pids or [])


def cpu_per_request(server: int, db: str, run: Any) -> tuple[float, int, float, float]:
    """Run `run()` (a wrk run: (rps, requests)); its rps, requests, and the CPU milliseconds
    per request of the server process and of PostgreSQL's backends. CPU time, unlike
    throughput, barely moves with what else runs on the machine."""
    before = cpu_seconds([server, *backends(db)])
    rps, requests = run()
    after = cpu_seconds([server, *backends(db)])
    spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    server_ms = spent.pop(server, 0.0) * 1000 / requests
    return rps, requests, server_ms, sum(spent.values()) * 1000 / requests


def run_writes(tasks: int, rounds: int, secs: int, port: int) -> dict[str, Any]:
    """POST /tasks and POST /orders before and after this change's migrations."""
    shapes = {}
    for when, revision in (("before", BEFORE), ("after", "head")):
        db = f"taskhub_scale_{uuid.uuid4().hex[:8]}"
        pg(f'CREATE DATABASE "{db}"')
        env = base_env(f"{PG}/{db}")
        env["REDIS_URL"] = REDIS  # events wait in the outbox: no dispatcher in the server
        env["REDIS_PREFIX"] = f"taskhub-scale-{uuid.uuid4().hex[:8]}"
        migrate(env, revision)
        taskhub(
            "seed-demo", "--tasks", str(tasks), "--products", "10000", "--orders", str(tasks),
            env=env,
        )  # fmt: skip
        pg("VACUUM ANALYZE", db)
        shapes[when] = (db, env)
    figures: dict[str, dict[str, dict[str, list[float]]]] = {
        kind: {when: {"rps": [], "server_ms": [], "postgres_ms": []} for when in shapes}
        for kind in ("tasks", "orders")
    }
    try:
        for round_ in range(rounds):
            for when in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                db, env = shapes[when]
                projects = pg(
                    "SELECT array_agg(id) FROM projects WHERE title LIKE 'Demo project%'", db
                )
                products = pg(
                    "SELECT array_agg(id) FROM (SELECT id FROM products WHERE stock > 0 "
                    "ORDER BY id LIMIT 100) AS stocked",
                    db,
                )
                with Server(env, port) as server:
                    assert server.proc is not None  # noqa: S101
                    # Alice's tasks in her projects; orders of 40 users, of 100 products.
                    alice = [login(port, "alice@example.com")]
                    people = pg("SELECT count(*) FROM users WHERE email LIKE 'demo-user-%'", db)
                    buyers = [
                        login(port, f"demo-user-{n}@example.com")
                        for n in range(1, min(40, people) + 1)
                    ]
                    task_bodies = [
                        {
                            "title": f"Bench task {RARE_WORD} words",
                            "description": "Written by bench-scale to time POST /tasks",
                            "project_id": project,
                            "priority": "high",
                            "due_date": "2026-03-01T12:00:00Z",
                        }
                        for project in projects
                    ]
                    orders = [{"items": [{"product_id": p, "quantity": 1}]} for p in products]
                    for kind, tokens, path, bodies in (
                        ("tasks", alice, "/api/v1/tasks", task_bodies),
                        ("orders", buyers, "/api/v2/orders", orders),
                    ):
                        rps, _, server_ms, postgres_ms = cpu_per_request(
                            server.proc.pid,
                            db,
                            lambda t=tokens, p=path, b=bodies: wrk_post(port, t, p, b, secs),
                        )
                        figures[kind][when]["rps"].append(rps)
                        figures[kind][when]["server_ms"].append(server_ms)
                        figures[kind][when]["postgres_ms"].append(postgres_ms)
                        log(
                            f"writes {round_ + 1} {when} {kind}: {rps:.0f}/s, CPU per request "
                            f"server {server_ms:.2f} ms, PostgreSQL {postgres_ms:.2f} ms"
                        )
        inserts: dict[str, dict[str, list[float]]] = {
            kind: {when: [] for when in shapes} for kind in INSERTS
        }
        for round_ in range(rounds):
            for when in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                for kind, micros in asyncio.run(insert_cost(shapes[when][0])).items():
                    inserts[kind][when].append(micros)
        figures["inserts"] = inserts
        log(f"inserts: {inserts}")
    finally:
        for db, env in shapes.values():
            pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            drop_redis_keys(env["REDIS_PREFIX"])
    return figures


def drop_redis_keys(prefix: str) -> None:
    """Delete a run's Redis keys."""
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# --- the report -----------------------------------------------------------------------------


def verdict(small: dict[str, Any] | None, large: dict[str, Any]) -> tuple[str, bool]:
    """The growth from the small size to the large one, and whether the targets hold."""
    ok = large["p50"] <= TARGET_P50_MS
    if small is None:
        return "", ok
    growth = large["p50"] / small["p50"] if small["p50"] else 0.0
    if large["p50"] > GROWTH_FLOOR_MS and growth > GROWTH:
        ok = False
    return f"{growth:.2f}×", ok


def report(
    sizes: list[str],
    lists: dict[str, dict[str, dict[str, Any]]],
    timings: dict[str, dict[str, float]],
    writes: dict[str, Any] | None,
    args: argparse.Namespace,
    stamp: str | None = None,
) -> str:
    """The markdown report (bench/results/scale-<stamp>.md, .json and scale-latest.md)."""
    stamp = stamp or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    small, large = sizes[0], sizes[-1]
    names = list(lists[large])
    passed = 0
    rows = []
    for name in names:
        before = lists[small].get(name) if small != large else None
        growth, ok = verdict(before, lists[large][name])
        passed += ok
        cells = [f"{lists[s][name]['p50']:.1f} / {lists[s][name]['p99']:.1f}" for s in sizes]
        if "sqlite" in lists:
            found = lists["sqlite"].get(name)
            cells.append(f"{found['p50']:.1f} / {found['p99']:.1f}" if found else "")
        rows.append(f"| {name} | {' | '.join(cells)} | {growth} | {'✅' if ok else '❌'} |")
    worst = max(names, key=lambda n: lists[large][n]["p50"])
    search = [n for n in names if f"q={RARE_WORD}" in n and n.startswith("tasks")]
    lines = [
        f"# Scale benchmark {stamp}",
        "",
        f"PostgreSQL, one `taskhub serve` process; sizes: {', '.join(sizes)}"
        + (f"; SQLite: {args.sqlite_tasks} tasks" if "sqlite" in lists else "")
        + f". Each cell: p50 / p99 in ms of GET requests on one keep-alive connection "
        f"({args.rounds} rounds of up to {args.pages} pages, plus as many requests for a page "
        "in the middle of the table; a warm-up round first). Targets: p50 ≤ 50 ms at the "
        f"largest size, and at most {GROWTH:.0f}× the smallest size's p50 where over "
        f"{GROWTH_FLOOR_MS:.0f} ms.",
        "",
        f"**{passed} of {len(names)} combinations meet the targets.** Slowest p50 at {large}: "
        f"{lists[large][worst]['p50']:.1f} ms ({worst}). Search for `{RARE_WORD}` "
        f"(one task in 1,000) at {large}: p50 "
        f"{max(lists[large][n]['p50'] for n in search):.1f} ms at most, member and site admin.",
        "",
        "## Loading and migrating",
        "",
        "| size | seed-demo (s) | search columns (s, table locked) | indexes (s, concurrent) "
        "| VACUUM ANALYZE (s) | tasks table + indexes (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for size, t in timings.items():
        if "search_columns_s" in t:
            lines.append(
                f"| {size} | {t['seed_s']:.0f} | {t['search_columns_s']:.1f} | "
                f"{t['indexes_s']:.1f} | {t['vacuum_analyze_s']:.1f} | {float(t['tasks_mb']):.0f} |"
            )
        else:
            lines.append(f"| {size} | {t['seed_s']:.0f} | | | | |")
    if writes:
        lines += [
            "",
            "## Writes before and after the indexes",
            "",
            f"wrk, 8 connections, {args.write_secs} s per run, the two databases' servers "
            f"alternated for {args.write_rounds} rounds; CPU per request from /proc (the server "
            "process, and PostgreSQL's backends of that database). Medians.",
            "",
            "| request | before: req/s · CPU ms (server + PostgreSQL) | after | after / before: "
            "req/s · CPU per request |",
            "|---|---|---|---|",
        ]
        for kind, label in (("tasks", "POST /api/v1/tasks"), ("orders", "POST /api/v2/orders")):
            cells, totals = [], {}
            for when in ("before", "after"):
                f = writes[kind][when]
                rps, server_ms = statistics.median(f["rps"]), statistics.median(f["server_ms"])
                postgres_ms = statistics.median(f["postgres_ms"])
                totals[when] = (rps, server_ms + postgres_ms)
                cells.append(
                    f"{rps:.0f} · {server_ms + postgres_ms:.2f} "
                    f"({server_ms:.2f} + {postgres_ms:.2f})"
                )
            rps_ratio = totals["after"][0] / totals["before"][0]
            cpu_ratio = totals["after"][1] / totals["before"][1]
            lines.append(
                f"| {label} | {cells[0]} | {cells[1]} | {rps_ratio:.2f} · {cpu_ratio:.2f} |"
            )
        lines += [
            "",
            "PostgreSQL's CPU time per single-row INSERT (its backend's /proc entry, 3,000 rows "
            "a run, one transaction each; no HTTP, no concurrency, no commit wait), medians:",
            "",
            "| table | before (µs) | after (µs) | added |",
            "|---|---|---|---|",
        ]
        for kind, runs in writes["inserts"].items():
            before, after = statistics.median(runs["before"]), statistics.median(runs["after"])
            lines.append(f"| {kind} | {before:.0f} | {after:.0f} | {after - before:+.0f} µs |")
    header = " | ".join(f"{s} p50 / p99" for s in sizes)
    if "sqlite" in lists:
        header += f" | SQLite {args.sqlite_tasks} p50 / p99"
    lines += [
        "",
        "## Every list, sort, filter and search",
        "",
        f"| list | role | query | {header} | growth | pass |",
        "|---|---|---|" + "---|" * (len(sizes) + (1 if "sqlite" in lists else 0)) + "---|---|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"scale-{stamp}.md").write_text(text)
    (RESULTS / "scale-latest.md").write_text(text)
    (RESULTS / f"scale-{stamp}.json").write_text(
        json.dumps({"lists": lists, "timings": timings, "writes": writes}, indent=2, default=str)
    )
    return text


def main() -> None:
    """Run the benchmark; see the module docstring."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="10000,1000000", help="task counts, comma-separated")
    ap.add_argument("--products", default="10000,100000")
    ap.add_argument("--orders", default="10000,1000000")
    ap.add_argument("--sqlite-tasks", type=int, default=100_000, help="0: no SQLite run")
    ap.add_argument("--write-tasks", type=int, default=100_000, help="0: no write run")
    ap.add_argument("--write-rounds", type=int, default=3)
    ap.add_argument("--write-secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--port", type=int, default=8300)
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL databases")
    ap.add_argument("--report", type=Path, help="write the report of a run's scale-*.json again")
    args = ap.parse_args()
    if args.report:
        run = json.loads(args.report.read_text())
        sizes = [name for name in run["lists"] if name != "sqlite"]
        stamp = args.report.stem.removeprefix("scale-")
        text = report(sizes, run["lists"], run["timings"], run["writes"], args, stamp)
        sys.stdout.write(text)
        return
    if args.write_tasks and shutil.which("wrk") is None:
        raise SystemExit("wrk is required for the write run: apt-get install -y wrk")
    sizes = list(
        zip(
            *(
                [int(x) for x in getattr(args, name).split(",")]
                for name in ("tasks", "products", "orders")
            ),
            strict=True,
        )
    )
    lists: dict[str, dict[str, dict[str, Any]]] = {}
    timings: dict[str, dict[str, float]] = {}
    labels = []
    for tasks, products, orders in sizes:
        label = f"{tasks:,} tasks".replace(",", " ")
        labels.append(label)
        shape = postgres_shape(label, tasks, products, orders)
        try:
            lists[label] = run_lists(shape, args.port, args.rounds, args.pages)
            timings[label] = shape.timings
        finally:
            if not args.keep:
                pg(f'DROP DATABASE IF EXISTS "{shape.url}" WITH (FORCE)')
    if args.sqlite_tasks:
        with tempfile.TemporaryDirectory() as directory:
            shape = sqlite_shape(Path(directory), args.sqlite_tasks, 10_000, 10_000)
            lists["sqlite"] = run_lists(shape, args.port, args.rounds, args.pages)
            timings[f"SQLite {args.sqlite_tasks}"] = shape.timings
    writes = None
    if args.write_tasks:
        writes = run_writes(args.write_tasks, args.write_rounds, args.write_secs, args.port)
    sys.stdout.write(report(labels, lists, timings, writes, args))


if __name__ == "__main__":
    main()
