#!/usr/bin/env python3
"""`make bench`: the full stack (ONE server process + its worker) side by side with the floor.

Starts a fresh PostgreSQL database, a unique Redis prefix, the floor server from
../shared/bench, `taskhub serve` and `taskhub worker`; runs side_by_side.py and apibench.py
(`--runs N` times against the same server, to watch memory); measures order created →
RESERVED latency from the orders' own timestamps, and commit → SSE client with an event
stream connected during apibench's end-to-end phase (bench/sse_probe.py); stops everything
it started; and writes a markdown table plus JSON to bench/results/. A benchmark, not a
test: nothing here is run by CI.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sse_probe import SseProbe, commit_to_client
from webhook_probe import WebhookProbe

ROOT = Path(__file__).resolve().parents[1]
KIT = Path(os.environ.get("BENCH_KIT", ROOT.parent / "shared" / "bench"))
RESULTS = ROOT / "bench" / "results"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
ADMIN_EMAIL, ADMIN_PASSWORD = "bench-admin@example.com", "Bench-admin-123"
TARGETS = {
    "list_tasks": 0.5,
    "list_products": 0.5,
    "get_me": 0.5,
    "create_order": 0.5,
}


def log(msg: str) -> None:
    """Progress on stderr."""
    sys.stderr.write(f"[bench] {msg}\n")
    sys.stderr.flush()


async def _admin_sql(*statements: str, db: str = "postgres") -> None:
    conn = await asyncpg.connect(f"{PG}/{db}")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def sql(*statements: str, db: str = "postgres") -> None:
    """Run statements on the PostgreSQL server."""
    import asyncio

    asyncio.run(_admin_sql(*statements, db=db))


async def _fetch(query: str, db: str) -> list[Any]:
    conn = await asyncpg.connect(f"{PG}/{db}")
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def fetch(query: str, db: str) -> list[Any]:
    """Rows of a query."""
    import asyncio

    return asyncio.run(_fetch(query, db))


def wait_http(url: str, seconds: float = 60) -> None:
    """Wait until `url` answers 200."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (loopback)
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def rss_kb(pid: int) -> dict[str, int]:
    """Current and peak resident memory of a process, in kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def run_json(cmd: list[str]) -> tuple[dict[str, Any], str]:
    """Run a kit script and parse the JSON it prints."""
    log(" ".join(cmd[1:3]) + " …")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[1]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    text = proc.stdout
    start, end = text.index("{"), text.rindex("}") + 1
    return json.loads(text[start:end]), text


# apibench's end-to-end orders are the first 300 after the run's first order id on a product
# stocked 10**8 (its correctness checks use small stocks; its load phase comes after).
PIPELINE_ORDERS = (
    "SELECT o.id FROM orders o JOIN order_items i ON i.order_id = o.id "
    "JOIN products p ON p.id = i.product_id "
    "WHERE o.id > {since} AND p.stock > 1000000 ORDER BY o.id LIMIT 300"
)


def pipeline_orders(db: str, since_id: int) -> set[int]:
    """The ids of apibench's end-to-end orders."""
    return {int(r["id"]) for r in fetch(PIPELINE_ORDERS.format(since=int(since_id)), db)}


BACKLOG = (
    "SELECT (SELECT count(*) FROM orders WHERE status = 'PENDING') AS pending_orders, "
    "(SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished, "
    "(SELECT count(*) FROM webhook_deliveries WHERE state = 'pending') AS deliveries"
)


def wait_drained(db: str, seconds: float = 300) -> dict[str, float]:
    """Wait until the previous phase's events are all applied (see NOTES.md)."""
    start = time.monotonic()
    first = dict(fetch(BACKLOG, db)[0])
    while time.monotonic() - start < seconds:
        row = fetch(BACKLOG, db)[0]
        if not any(int(v) for v in row.values()):
            break
        time.sleep(0.2)
    return {**{k: int(v) for k, v in first.items()}, "waited_s": round(time.monotonic() - start, 1)}


def latency_percentiles(db: str, since_id: int) -> dict[str, float]:
    """Order created → RESERVED, from the orders' own timestamps (ms)."""
    # apibench's pipeline orders are the first 300 after `since_id` on a product stocked
    # 10**8 (its correctness checks use small stocks).
    query = (
        "SELECT extract(epoch FROM (o.reserved_at - o.created_at)) * 1000 AS ms "
        "FROM orders o JOIN order_items i ON i.order_id = o.id "
        "JOIN products p ON p.id = i.product_id "
        "WHERE o.id > {since} AND p.stock > 1000000 AND o.reserved_at IS NOT NULL "
        "ORDER BY o.id LIMIT 300"
    )
    rows = fetch(query.format(since=int(since_id)), db)
    values = sorted(float(r["ms"]) for r in rows)
    if not values:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan")}

    def pick(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return {"n": len(values), "p50_ms": round(pick(0.50), 1), "p99_ms": round(pick(0.99), 1)}


def main() -> None:
    """Run the benchmark; see the module docstring."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "3")))
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--floor-port", type=int, default=8200)
    ap.add_argument("--workers", type=int, default=1, help="taskhub worker processes")
    a = ap.parse_args()

    tag = uuid.uuid4().hex[:8]
    db, floor_db = f"taskhub_bench_{tag}", "floor"
    sql(
        f'CREATE DATABASE "{db}"',
        f'DROP DATABASE IF EXISTS "{floor_db}" WITH (FORCE)',
        f'CREATE DATABASE "{floor_db}"',
    )
    env = {
        **os.environ,
        "ENVIRONMENT": "prod",
        "DATABASE_URL": f"{PG}/{db}",
        "REDIS_URL": REDIS,
        "REDIS_PREFIX": f"taskhub-bench-{tag}",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "MAX_OPEN_ORDERS_PER_USER": "0",
        "LOGIN_MAX_FAILURES_PER_CLIENT": "100000",
        "BCRYPT_ROUNDS": os.environ.get("BENCH_BCRYPT_ROUNDS", "12"),
        # The webhook probe's receiver listens on 127.0.0.1 (webhook_probe.py).
        "WEBHOOK_ALLOW_PRIVATE": "true",
    }
    taskhub = [sys.executable, "-m", "taskhub.cli"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([*taskhub, "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
        subprocess.run(  # noqa: S603
            [*taskhub, "create-superuser", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD],
            env=env,
            check=True,
            capture_output=True,
        )
        floor = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(KIT),
                "floor_server:app",
                "--port",
                str(a.floor_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env={**os.environ, "FLOOR_DSN": f"{PG}/{floor_db}"},
        )
        procs.append(floor)
        server = subprocess.Popen(  # noqa: S603
            [*taskhub, "serve", "--host", "127.0.0.1", "--port", str(a.port)], env=env
        )
        procs.append(server)
        for _ in range(a.workers):
            procs.append(subprocess.Popen([*taskhub, "worker"], env=env))  # noqa: S603
        base, floor_base = f"http://127.0.0.1:{a.port}", f"http://127.0.0.1:{a.floor_port}"
        wait_http(base + "/health")
        wait_http(floor_base + "/products")
        req = urllib.request.Request(  # noqa: S310 (loopback)
            base + "/api/v1/auth/login/access-token",
            data=f"username={ADMIN_EMAIL}&password={ADMIN_PASSWORD}".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        with urllib.request.urlopen(req) as r:  # noqa: S310
            admin_token = json.load(r)["access_token"]

        runs: list[dict[str, Any]] = []
        for n in range(a.runs):
            log(f"run {n + 1}/{a.runs}")
            sbs, sbs_text = run_json(
                [
                    sys.executable,
                    str(KIT / "side_by_side.py"),
                    "--project",
                    base,
                    "--floor",
                    floor_base,
                    "--secs",
                    str(a.secs),
                    "--admin-email",
                    ADMIN_EMAIL,
                    "--admin-password",
                    ADMIN_PASSWORD,
                ]
            )
            drained = wait_drained(db)
            log(f"run {n + 1}: backlog after side_by_side {drained}")
            since = int(fetch("SELECT coalesce(max(id), 0) AS m FROM orders", db)[0]["m"])
            # A site admin's event stream, open through the end-to-end phase (sse_probe.py).
            probe = SseProbe(base, admin_token)
            probe.start()
            # And a site admin's webhook endpoint for every order (webhook_probe.py).
            receiver = WebhookProbe(base, admin_token)
            receiver.start()
            try:
                api, _ = run_json(
                    [
                        sys.executable,
                        str(KIT / "apibench.py"),
                        "--v1",
                        base,
                        "--v2",
                        base,
                        "--admin-token",
                        admin_token,
                        "--secs",
                        str(a.secs),
                    ]
                )
            finally:
                probe.stop()
                receiver.stop()
            latency = latency_percentiles(db, since)
            orders = pipeline_orders(db, since)
            sse = commit_to_client(probe.arrivals, orders)
            sse["probe_error"] = probe.error
            log(f"run {n + 1}: commit → SSE client {sse}")
            webhook = commit_to_client(receiver.arrivals, orders)
            webhook["probe_error"] = receiver.error
            log(f"run {n + 1}: commit → webhook receiver {webhook}")
            runs.append(
                {
                    "side_by_side": sbs,
                    "apibench": api,
                    "latency": latency,
                    "sse": sse,
                    "webhook": webhook,
                    "server_rss_kb": rss_kb(server.pid),
                    "backlog_before_e2e": drained,
                }
            )
            ratio_line = sbs_text.strip().splitlines()[-1]
            log(f"run {n + 1}: {ratio_line} rss={runs[-1]['server_rss_kb']}")
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        sql(
            f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)',
            f'DROP DATABASE IF EXISTS "{floor_db}" WITH (FORCE)',
        )
        drop_redis_keys(f"taskhub-bench-{tag}")
    write_report(runs, a)


def drop_redis_keys(prefix: str) -> None:
    """Delete the run's Redis keys (its event stream and the like)."""
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def event_delivery_rows(run: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Design §6's last row: events out, under the end-to-end load."""
    sse = run["sse"]
    rows = [
        (
            f"commit → SSE client p99 (ms; {sse['events']} events: "
            + ", ".join(f"{t} {n}" for t, n in sorted(sse["by_type"].items()))
            + f"; p50 {sse['p50_ms']})",
            f"{sse['p99_ms']}",
            "≤ 250",
            sse["p99_ms"] <= 250 and not sse["orders_without_created_event"],
        )
    ]
    webhook = run["webhook"]
    rows.append(
        (
            f"commit → webhook receiver p99 (ms; {webhook['events']} deliveries: "
            + ", ".join(f"{t} {n}" for t, n in sorted(webhook["by_type"].items()))
            + f"; p50 {webhook['p50_ms']})",
            f"{webhook['p99_ms']}",
            "≤ 500",
            webhook["p99_ms"] <= 500 and not webhook["orders_without_created_event"],
        )
    )
    return rows


def write_report(runs: list[dict[str, Any]], a: argparse.Namespace) -> None:
    """bench/results/<stamp>.md and .json, from the first run (later runs watch memory)."""
    first = runs[0]
    sbs, api, lat = first["side_by_side"], first["apibench"], first["latency"]
    rows: list[tuple[str, str, str, bool]] = []
    for phase, target in TARGETS.items():
        r = sbs[phase]
        rows.append(
            (
                f"{phase} (project {r['project_rps']:.0f} / floor {r['floor_rps']:.0f} rps)",
                f"{r['ratio']:.2f}",
                f"≥ {target}",
                r["ratio"] >= target,
            )
        )
    e2e = api["load"]["order_pipeline"]["orders_per_s_end_to_end"]
    rows.append(("end to end, 300 orders 30 at a time (orders/s)", f"{e2e}", "≥ 250", e2e >= 250))
    rows.append(("created → RESERVED p50 (ms)", f"{lat['p50_ms']}", "≤ 50", lat["p50_ms"] <= 50))
    rows.append(("created → RESERVED p99 (ms)", f"{lat['p99_ms']}", "≤ 250", lat["p99_ms"] <= 250))
    rows.extend(event_delivery_rows(first))
    peaks = [r["server_rss_kb"]["VmHWM"] / 1024 for r in runs]
    rss_now = [r["server_rss_kb"]["VmRSS"] / 1024 for r in runs]
    rows.append(("server peak RSS (MB)", f"{max(peaks):.0f}", "≤ 250", max(peaks) <= 250))
    growth = rss_now[-1] - rss_now[0] if len(rss_now) > 1 else 0.0
    rows.append(
        (
            f"server RSS after each run (MB): {', '.join(f'{x:.0f}' for x in rss_now)}",
            f"{growth:+.0f}",
            "no growth (≤ +10)",
            growth <= 10,
        )
    )
    checks = {k: v.get("ok") for k, v in api["checks"].items() if isinstance(v, dict)}
    rows.append(
        (
            "apibench correctness checks",
            ", ".join(f"{k}={v}" for k, v in checks.items()),
            "all ok",
            all(checks.values()),
        )
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        f"# Benchmark {stamp}",
        "",
        f"One `taskhub serve` process + {a.workers} worker, PostgreSQL + Redis, "
        f"{a.secs}s phases, {a.runs} run(s); ratios are from run 1.",
        "",
        "| figure | value | target | pass |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {value} | {target} | {'✅' if ok else '❌'} |"
        for name, value, target, ok in rows
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stamp}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(runs, indent=2, default=str))
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
