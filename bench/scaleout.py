#!/usr/bin/env python3
"""`make bench-scaleout`: end-to-end orders/s with 1 partition and 1 worker against
8 partitions and 4 workers, on the single Redis and on a local Redis Cluster.

For each of the four shapes: a fresh PostgreSQL database, a unique Redis prefix (the shared
Redis, or a cluster of 3 masters and 3 replicas started here), one `taskhub serve` and W
`taskhub worker` processes with STREAM_PARTITIONS=N. Two figures each:

- **backlog**: 3,000 orders are created while the relays are paused (the outbox fills),
  then the relays resume: orders/s until none is PENDING. The pipeline alone (relay,
  streams, reservation handlers), without the API in the way.
- **live**: 2,000 orders created 30 at a time through the API while the workers run:
  orders/s from the first request until none is PENDING, and created → RESERVED p50/p99.

Orders spread over 100 products (one line each), so that a hot product row does not
serialize every reservation. With `--profile`, py-spy samples one worker and the server
during the live phase of the 8 × 4 shapes, and the CPU seconds of every process (server,
workers, PostgreSQL, Redis, this load client) are counted from /proc. A benchmark, never a
test; writes bench/results/scaleout-<time>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.processes import LocalCluster, free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
TASKHUB = [sys.executable, "-m", "taskhub.cli"]
ADMIN = ("scaleout-admin@example.com", "Scaleout-admin-123")
PRODUCTS = 100


def log(msg: str) -> None:
    """Progress on stderr."""
    sys.stderr.write(f"[scaleout] {msg}\n")
    sys.stderr.flush()


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (and nothing else), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def pids_named(name: str) -> list[int]:
    """Processes whose command name is `name` (postgres, redis-server)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


class Shape:
    """One configuration: Redis kind, partitions, workers."""

    def __init__(self, redis_kind: str, partitions: int, workers: int) -> None:
        self.redis_kind = redis_kind
        self.partitions = partitions
        self.workers = workers

    @property
    def label(self) -> str:
        return f"{self.redis_kind}, {self.partitions} partition(s), {self.workers} worker(s)"


async def pending(db: str) -> int:
    conn = await asyncpg.connect(f"{PG}/{db}")
    try:
        return int(await conn.fetchval("SELECT count(*) FROM orders WHERE status = 'PENDING'"))
    finally:
        await conn.close()


async def wait_settled(db: str, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while await pending(db):
        if time.monotonic() > deadline:
            raise SystemExit("orders still PENDING at the deadline")
        await asyncio.sleep(0.02)
    return time.monotonic()


async def latencies(db: str, since: int) -> tuple[float, float]:
    conn = await asyncpg.connect(f"{PG}/{db}")
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM (reserved_at - created_at)) * 1000 AS ms FROM orders "
            "WHERE id > $1 AND reserved_at IS NOT NULL ORDER BY ms",
            since,
        )
        top = await conn.fetchval("SELECT coalesce(max(id), 0) FROM orders")
    finally:
        await conn.close()
    del top
    ms = [float(r["ms"]) for r in rows]
    if not ms:
        return 0.0, 0.0
    return ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))]


async def create_orders(base: str, token: str, count: int, parallel: int) -> None:
    rng = random.Random(count)
    gate = asyncio.Semaphore(parallel)
    limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        headers = {"Authorization": f"Bearer {token}"}

        async def one() -> None:
            async with gate:
                body = {"items": [{"product_id": rng.randint(1, PRODUCTS), "quantity": 1}]}
                r = await client.post("/api/v2/orders", json=body, headers=headers)
                if r.status_code != 201:
                    raise SystemExit(f"POST /orders: {r.status_code} {r.text}")

        await asyncio.gather(*(one() for _ in range(count)))


def py_spy(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample a process (raw collapsed stacks) in the background."""
    return subprocess.Popen(  # noqa: S603
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def top_frames(raw: Path, limit: int = 10) -> list[tuple[str, float]]:
    """Share of samples spent inside each taskhub function (inclusive), busiest first,
    and `idle` (the event loop waiting), from py-spy's raw output."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    if not raw.exists():
        return []
    skip = {"<module>", "worker", "main", "serve", "run", "_run", "run_worker", "Worker.run"}
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        total += int(n)
        leaf = frames[-1].split(" (")[0]
        if leaf in ("Runner.run", "select", "KqueueSelector.select", "EpollSelector.select"):
            counts["idle"] += int(n)
            continue
        seen = set()
        for frame in frames:
            name, _, where = frame.partition(" (")
            if "taskhub/" in where and name not in skip and name not in seen:
                seen.add(name)
                counts[name] += int(n)
    return [(name, n / total) for name, n in counts.most_common(limit)] if total else []


async def run_shape(shape: Shape, *, backlog: int, live: int, profile: bool) -> dict[str, Any]:
    db = f"taskhub_scaleout_{uuid.uuid4().hex[:10]}"
    prefix = f"scaleout-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(f"{PG}/postgres")
    await conn.execute(f'CREATE DATABASE "{db}"')
    await conn.close()
    cluster: LocalCluster | None = None
    workdir = Path(tempfile.mkdtemp(prefix="scaleout-"))
    redis_url = REDIS
    if shape.redis_kind == "cluster":
        cluster = LocalCluster(workdir)
        cluster.start()
        redis_url = cluster.url
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "SECRET_KEY": "scaleout-secret-0123456789abcdef0123456789abcdef",
        "DATABASE_URL": f"{PG}/{db}",
        "REDIS_URL": redis_url,
        "REDIS_CLUSTER": "true" if cluster else "false",
        "REDIS_PREFIX": prefix,
        "STREAM_PARTITIONS": str(shape.partitions),
        "MAX_OPEN_ORDERS_PER_USER": "0",
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "4",
    }
    procs: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {"shape": shape.label, "load_before": os.getloadavg()[0]}
    redis: Any = None
    try:
        subprocess.run([*TASKHUB, "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
        subprocess.run(  # noqa: S603
            [*TASKHUB, "create-superuser", "--email", ADMIN[0], "--password", ADMIN[1]],
            env=env,
            check=True,
            capture_output=True,
        )
        server = subprocess.Popen(  # noqa: S603
            [*TASKHUB, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
        )
        procs.append(server)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(300):
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            r = await client.post(
                "/api/v2/auth/login/access-token",
                data={"username": ADMIN[0], "password": ADMIN[1]},
            )
            token = r.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for i in range(PRODUCTS):
                r = await client.post(
                    "/api/v2/products",
                    json={"sku": f"S-{i}", "name": "x", "price_cents": 100, "stock": 10**8},
                    headers=headers,
                )
                assert r.status_code == 201, r.text
        if cluster:
            redis = aioredis.RedisCluster.from_url(redis_url)
        else:
            redis = aioredis.Redis.from_url(redis_url)
        paused = f"{prefix}:events:relay-paused"
        await redis.set(paused, "1")
        workers = [
            subprocess.Popen(  # noqa: S603
                [*TASKHUB, "worker"], env=env, stderr=(workdir / f"worker-{i}.log").open("wb")
            )
            for i in range(shape.workers)
        ]
        procs.extend(workers)
        # Backlog: the outbox fills while the relays are paused.
        await create_orders(base, token, backlog, parallel=30)
        await wait_consumers(redis, prefix, shape)  # every worker reads every partition
        started = time.monotonic()
        await redis.delete(paused)
        finished = await wait_settled(db)
        result["backlog_orders_per_s"] = backlog / (finished - started)
        # Live: orders through the API while the workers run.
        since = await _max_order_id(db)
        pg_pids = pids_named("postgres")
        redis_pids = pids_named("redis-server")
        me = [os.getpid()]
        cpu_before = {
            "server": cpu_seconds([server.pid]),
            "workers": cpu_seconds([w.pid for w in workers]),
            "postgres": cpu_seconds(pg_pids),
            "redis": cpu_seconds(redis_pids),
            "load client": cpu_seconds(me),
        }
        spies: list[subprocess.Popen[bytes]] = []
        raws = {"worker": workdir / "worker.raw", "server": workdir / "server.raw"}
        if profile:
            spies = [
                py_spy(workers[0].pid, 8, raws["worker"]),
                py_spy(server.pid, 8, raws["server"]),
            ]
        started = time.monotonic()
        await create_orders(base, token, live, parallel=30)
        result["api_orders_per_s"] = live / (time.monotonic() - started)
        finished = await wait_settled(db)
        wall = finished - started
        result["live_orders_per_s"] = live / wall
        result["p50_ms"], result["p99_ms"] = await latencies(db, since)
        cpu_after = {
            "server": cpu_seconds([server.pid]),
            "workers": cpu_seconds([w.pid for w in workers]),
            "postgres": cpu_seconds(pg_pids),
            "redis": cpu_seconds(redis_pids),
            "load client": cpu_seconds(me),
        }
        result["cpu_s_per_1000_orders"] = {
            k: round((cpu_after[k] - cpu_before[k]) * 1000 / live, 3) for k in cpu_before
        }
        result["cpu_cores_busy"] = round(
            sum(cpu_after[k] - cpu_before[k] for k in cpu_before) / wall, 2
        )
        for spy in spies:
            spy.wait(30)
        if profile:
            result["profile"] = {k: top_frames(v) for k, v in raws.items()}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if redis is not None:
            await redis.aclose()
        if cluster is not None:
            cluster.stop()
        conn = await asyncpg.connect(f"{PG}/postgres")
        await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await conn.close()
    log(json.dumps(result))
    return result


async def wait_consumers(redis: Any, prefix: str, shape: Shape, timeout: float = 120) -> None:
    """Until every worker has joined the group of every partition (it is reading)."""
    deadline = time.monotonic() + timeout
    for k in range(shape.partitions):
        stream = f"{prefix}:{{events.p{k}}}:stream"
        while True:
            try:
                if len(await redis.xinfo_consumers(stream, "taskhub-workers")) >= shape.workers:
                    break
            except aioredis.ResponseError:
                pass  # the stream or its group is not there yet
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not join every partition")
            await asyncio.sleep(0.1)


async def _max_order_id(db: str) -> int:
    conn = await asyncpg.connect(f"{PG}/{db}")
    try:
        return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM orders"))
    finally:
        await conn.close()


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        f"# `make bench-scaleout` — {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Machine: {os.cpu_count()} cores, shared; load average (1 min) before each shape: "
        + ", ".join(f"{r['load_before']:.1f}" for r in results)
        + f". Orders over {PRODUCTS} products, one line each.",
        "",
        "| shape | backlog orders/s | live orders/s | API accepted orders/s (live) "
        "| live p50 / p99 ms | CPU cores busy (live) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['shape']} | {r['backlog_orders_per_s']:.0f} | {r['live_orders_per_s']:.0f} "
            f"| {r['api_orders_per_s']:.0f} | {r['p50_ms']:.0f} / {r['p99_ms']:.0f} "
            f"| {r['cpu_cores_busy']} |"
        )
    if not results:
        return "\n".join(lines) + "\n"
    by = {r["shape"]: r for r in results}
    lines += ["", "Ratios (8 partitions × 4 workers over 1 × 1):", ""]
    for kind in ("single", "cluster"):
        one = by.get(f"{kind}, 1 partition(s), 1 worker(s)")
        eight = by.get(f"{kind}, 8 partition(s), 4 worker(s)")
        if one and eight:
            backlog = eight["backlog_orders_per_s"] / one["backlog_orders_per_s"]
            live = eight["live_orders_per_s"] / one["live_orders_per_s"]
            lines.append(f"- {kind}: backlog {backlog:.2f}×, live {live:.2f}×")
    lines += ["", "CPU seconds per 1,000 orders (live phase):", ""]
    lines.append("| shape | " + " | ".join(results[0]["cpu_s_per_1000_orders"]) + " |")
    lines.append("|---|" + "---|" * len(results[0]["cpu_s_per_1000_orders"]))
    for r in results:
        lines.append(
            f"| {r['shape']} | "
            + " | ".join(str(v) for v in r["cpu_s_per_1000_orders"].values())
            + " |"
        )
    for r in results:
        if "profile" not in r:
            continue
        lines += ["", f"py-spy, {r['shape']} (share of samples inside each function):", ""]
        for who, frames in r["profile"].items():
            lines.append(f"- {who}: " + "; ".join(f"{n} {s:.0%}" for n, s in frames[:8]))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backlog", type=int, default=3000)
    ap.add_argument("--live", type=int, default=2000)
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--only", help="run the shapes whose label contains this text")
    a = ap.parse_args()
    shapes = [
        Shape("single", 1, 1),
        Shape("single", 8, 4),
        Shape("cluster", 1, 1),
        Shape("cluster", 8, 4),
    ]
    if a.only:
        shapes = [shape for shape in shapes if a.only in shape.label]
    results = []
    for shape in shapes:
        log(f"{shape.label} …")
        results.append(
            asyncio.run(
                run_shape(
                    shape,
                    backlog=a.backlog,
                    live=a.live,
                    profile=a.profile and shape.partitions > 1,
                )
            )
        )
    text = report(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scaleout-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.md"
    out.write_text(text)
    (RESULTS / "scaleout-latest.md").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
