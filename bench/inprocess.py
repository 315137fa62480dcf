#!/usr/bin/env python3
"""CPU per request of the four benchmark requests, in process, for taskhub and the floor.

Drives both ASGI apps directly (no HTTP server, no network, no wrk), 16 requests at a time,
and divides the process's CPU time by the number of requests. This is the figure that decides
the wrk ratios when the server is CPU-bound, without the noise of a shared machine.

  python bench/inprocess.py [--n 2000] [--only get_me] [--profile get_me]

Needs PostgreSQL (BENCH_PG). Creates two throwaway databases and drops them.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import os
import pstats
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
KIT = Path(os.environ.get("BENCH_KIT", ROOT.parent / "shared" / "bench"))
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


async def call(
    app: Any, method: str, path: str, token: str | None = None, body: Any = None, query: str = ""
) -> tuple[int, bytes]:
    """One request through an ASGI app; the status and body."""
    raw = orjson.dumps(body) if body is not None else b""
    headers = [(b"host", b"bench"), (b"accept", b"application/json")]
    if token:
        headers.append((b"authorization", b"Bearer " + token.encode()))
    if body is not None:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    status, chunks = 0, []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def load(
    name: str, app: Any, request: tuple[Any, ...], n: int, conc: int, profile: bool
) -> float:
    """Run `request` n times, `conc` at a time; CPU ms per request."""
    for _ in range(50):  # warm up
        status, body = await call(app, *request)
        assert status < 300, (name, status, body[:300])
    left = n
    prof: Any = None
    if profile:
        try:
            from pyinstrument import Profiler

            prof = Profiler(interval=0.0002, async_mode="disabled")
        except ImportError:
            prof = cProfile.Profile()

    async def one() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, body = await call(app, *request)
            assert status < 300, (name, status, body[:300])

    cpu, wall = time.process_time(), time.perf_counter()
    if prof:
        prof.start() if hasattr(prof, "start") else prof.enable()
    await asyncio.gather(*(one() for _ in range(conc)))
    if prof and hasattr(prof, "stop"):
        prof.stop()
        print(
            prof.output_text(
                unicode=False, show_all=bool(os.environ.get("PROFILE_ALL")), short_mode=False
            )
        )
    elif prof:
        prof.disable()
        pstats.Stats(prof).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(60)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / n * 1000


async def lifespan(app: Any) -> tuple[asyncio.Queue[Any], asyncio.Task[Any]]:
    """Start an app's lifespan; returns (inbox, task) to stop it."""
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    started = asyncio.Event()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()
        elif message["type"].endswith("failed"):
            raise SystemExit(message)

    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send)
    )
    await asyncio.wait_for(started.wait(), 60)
    return inbox, task


async def admin(*statements: str) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        for s in statements:
            await conn.execute(s)
    finally:
        await conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--conc", type=int, default=16)
    ap.add_argument("--only", action="append")
    ap.add_argument("--profile")
    ap.add_argument("--skip-floor", action="store_true")
    a = ap.parse_args()
    tag = uuid.uuid4().hex[:8]
    db, floor_db = f"taskhub_inproc_{tag}", f"floor_inproc_{tag}"
    await admin(f'CREATE DATABASE "{db}"', f'CREATE DATABASE "{floor_db}"')
    os.environ.update(
        {
            "ENVIRONMENT": "prod",
            "DATABASE_URL": f"{PG}/{db}",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "REDIS_PREFIX": f"taskhub-inproc-{tag}",
            "SECRET_KEY": "inproc-" + uuid.uuid4().hex * 2,
            "MAX_OPEN_ORDERS_PER_USER": "0",
            "BCRYPT_ROUNDS": "4",
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ["FLOOR_DSN"] = f"{PG}/{floor_db}"
    try:
        from taskhub.cli import main as cli_main  # noqa: F401 (import cost out of the timing)
        from taskhub.config import get_settings
        from taskhub.main import create_app
        from taskhub.migrate import upgrade

        await upgrade(get_settings())
        app = create_app(get_settings())
        # Keep the lifespan tasks referenced: asyncio holds tasks weakly, and a collected
        # one shuts its app down (our engine's driver pool with it) in the middle of a run.
        running = [await lifespan(app)]
        email, password = f"u-{tag}@example.com", "Bench-pass-123!"
        st, body = await call(
            app,
            "POST",
            "/api/v1/auth/signup",
            body={"email": email, "password": password, "full_name": "B"},
        )
        assert st == 201, body
        uid = orjson.loads(body)["id"]
        conn = await asyncpg.connect(f"{PG}/{db}")
        await conn.execute("UPDATE users SET is_superuser = true WHERE id = $1", uid)
        await conn.close()
        form = f"username={email}&password={password}".encode()
        scope_call = await _form_login(app, form)
        tok = scope_call
        st, body = await call(app, "POST", "/api/v1/projects", tok, {"title": "p"})
        pid = orjson.loads(body)["id"]
        for i in range(100):
            await call(
                app,
                "POST",
                "/api/v1/tasks",
                tok,
                {"title": f"t{i}", "description": "x" * 50, "project_id": pid, "assignee_id": uid},
            )
        product = None
        for i in range(50):
            st, body = await call(
                app,
                "POST",
                "/api/v2/products",
                tok,
                {"sku": f"SKU-{tag}-{i}", "name": f"P {i}", "price_cents": 1000, "stock": 10**8},
            )
            assert st == 201, body
            product = product or orjson.loads(body)["id"]
        ours = {
            "list_tasks": ("GET", "/api/v1/tasks", tok, None, "limit=50"),
            "list_products": ("GET", "/api/v2/products", None, None, "limit=50"),
            "get_me": ("GET", "/api/v1/users/me", tok),
            "create_order": (
                "POST",
                "/api/v2/orders",
                tok,
                {"items": [{"product_id": product, "quantity": 1}]},
            ),
        }
        floor_results: dict[str, float] = {}
        if not a.skip_floor:
            sys.path.insert(0, str(KIT))
            floor = importlib.import_module("floor_server")
            running.append(await lifespan(floor.app))
            ftok = orjson.loads((await call(floor.app, "GET", "/token"))[1])["access_token"]
            theirs = {
                "list_tasks": ("GET", "/tasks", ftok, None, "limit=50"),
                "list_products": ("GET", "/products", None, None, "limit=50"),
                "get_me": ("GET", "/me", ftok),
                "create_order": (
                    "POST",
                    "/orders",
                    ftok,
                    {"items": [{"product_id": 1, "quantity": 1}]},
                ),
            }
            for name, request in theirs.items():
                if a.only and name not in a.only:
                    continue
                floor_results[name] = await load(name, floor.app, request, a.n, a.conc, False)
        for name, request in ours.items():
            if a.only and name not in a.only:
                continue
            ms = await load(name, app, request, a.n, a.conc, a.profile == name)
            f = floor_results.get(name)
            extra = f"  floor {f:.3f} ms  cost ×{ms / f:.2f}" if f else ""
            print(f"{name:14s} taskhub {ms:.3f} ms CPU/request{extra}", flush=True)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        await admin(
            f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)',
            f'DROP DATABASE IF EXISTS "{floor_db}" WITH (FORCE)',
        )
        os._exit(0)


async def _form_login(app: Any, form: bytes) -> str:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/login/access-token",
        "raw_path": b"/api/v1/auth/login/access-token",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(form)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": form, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            out.append(message.get("body", b""))

    await app(scope, receive, send)
    return str(orjson.loads(b"".join(out))["access_token"])


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
