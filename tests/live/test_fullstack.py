"""The streams on the full stack, with real processes: two `taskhub serve` processes and a
`taskhub worker` on PostgreSQL and Redis. Any server serves any subscriber: each reads every
event from the streams, whichever process wrote it and whichever worker applied it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from taskhub.migrate import upgrade
from tests.conftest import (
    clean_tables,
    create_pg_database,
    drop_pg_database,
    make_settings,
    pg_url,
    started_apps,
)
from tests.factories import Actor, make_user
from tests.live.sse import open_stream, served
from tests.processes import PrivateRedis, ServerProcess, TaskhubProcess, process_env

pytestmark = [pytest.mark.pg, pytest.mark.redis]
OUTCOMES = frozenset({"order.reserved", "order.failed"})
EVENTS = "/api/v2/orders/events"
ADMIN_EMAIL, PASSWORD = "live-admin@example.com", "Live-pass-123"


@dataclass
class Stack:
    servers: list[ServerProcess]
    clients: list[httpx.AsyncClient]
    worker: TaskhubProcess


@pytest.fixture
async def stack(
    pg_server: str, redis_server: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    name = await create_pg_database(pg_server)
    url = pg_url(pg_server, name)
    await upgrade(make_settings(database_url=url))
    env = process_env(
        DATABASE_URL=url,
        REDIS_URL=redis_server,
        REDIS_PREFIX=redis_prefix,
        BCRYPT_ROUNDS="4",
        RELAY_POLL_SECONDS="0.2",
        LIVE_RECHECK_SECONDS="0.2",
        LIVE_KEEPALIVE_SECONDS="1",
        # Several partitions: each server reads every one of them.
        STREAM_PARTITIONS="4",
    )
    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "taskhub.cli", "create-superuser", "--email", ADMIN_EMAIL,
         "--password", PASSWORD],
        env=env, capture_output=True, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    servers = [
        ServerProcess(env=env, log=tmp_path / f"serve-{i}.log", cwd=tmp_path) for i in (0, 1)
    ]
    worker = TaskhubProcess(["worker"], env=env, log=tmp_path / "worker.log", cwd=tmp_path)
    clients = [httpx.AsyncClient(base_url=s.url, timeout=30) for s in servers]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.wait_ready) for s in servers))
        yield Stack(servers=servers, clients=clients, worker=worker)
    finally:
        for client in clients:
            await client.aclose()
        for process in [*servers, worker]:
            if process.proc.poll() is None:
                process.terminate()
            process.close()
        await drop_pg_database(pg_server, name)


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Actor:
    token = await client.post(
        "/api/v1/auth/login/access-token", data={"username": email, "password": password}
    )
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    me = (await client.get("/api/v1/users/me", headers=headers)).json()
    return Actor(me["id"], email, password, token.json()["access_token"])


async def sign_up(client: httpx.AsyncClient, email: str) -> Actor:
    r = await client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return await log_in(client, email)


async def ticket(client: httpx.AsyncClient, actor: Actor) -> str:
    r = await client.post("/api/v1/auth/stream-ticket", headers=actor.headers)
    assert r.status_code == 200, r.text
    value: str = r.json()["ticket"]
    return value


async def test_any_server_streams_every_users_events(stack: Stack) -> None:
    a, b = stack.clients
    admin = await log_in(a, ADMIN_EMAIL)
    alice, bob = await sign_up(a, "alice@example.com"), await sign_up(b, "bob@example.com")
    product = await b.post(
        "/api/v2/products",
        json={"sku": "LIVE-FS", "name": "Live", "price_cents": 100, "stock": 100},
        headers=admin.headers,
    )
    assert product.status_code == 201, product.text
    line = {"items": [{"product_id": product.json()["id"], "quantity": 1}]}
    # Alice watches on server A with a ticket that server B issued; the admin watches on B.
    async with (
        open_stream(a, EVENTS, params={"ticket": await ticket(b, alice)}) as alices,
        open_stream(b, EVENTS, headers=admin.headers) as admins,
        open_stream(a, EVENTS, headers=bob.headers) as bobs,
    ):
        placed = await b.post("/api/v2/orders", json=line, headers=alice.headers)
        order_id = placed.json()["id"]
        # Applied by the worker meanwhile (the event stream's order holds whoever applies it).
        cancelled = await a.post(f"/api/v2/orders/{order_id}/cancel", headers=alice.headers)
        assert cancelled.status_code == 200, cancelled.text
        bobs_order = (await a.post("/api/v2/orders", json=line, headers=bob.headers)).json()["id"]
        # The reservation's outcome comes from the worker, whenever it gets there: skipped.
        alice_got = await alices.take_until("order.cancelled", skip=OUTCOMES)
        admin_got = await admins.take_until("order.cancelled", skip=OUTCOMES)
        admin_got += await admins.take_until("order.created", skip=OUTCOMES)
        bobs_got = await bobs.take_until("order.created", skip=OUTCOMES)
        assert [m.envelope["payload"]["order_id"] for m in bobs_got] == [bobs_order]
    assert [m.event for m in alice_got] == ["order.created", "order.cancelled"]
    assert {m.envelope["payload"]["order_id"] for m in alice_got} == {order_id}
    # The same event, with the same id and the same envelope, on both servers.
    assert [(m.id, m.data) for m in alice_got] == [(m.id, m.data) for m in admin_got[:2]]

    # Alice reconnects to the other server after missing events: they are replayed.
    missed = (await a.post("/api/v2/orders", json=line, headers=alice.headers)).json()["id"]
    headers = {**alice.headers, "Last-Event-ID": alice_got[-1].event_id}
    async with open_stream(b, EVENTS, headers=headers) as resumed:
        replayed = await resumed.take_until("order.created", skip=OUTCOMES)
        assert [m.envelope["payload"]["order_id"] for m in replayed] == [missed]


async def test_a_server_ends_its_streams_when_told_to_stop(stack: Stack) -> None:
    a, _ = stack.clients
    alice = await sign_up(a, "alice@example.com")
    async with open_stream(a, EVENTS, headers=alice.headers) as stream:
        # uvicorn exits by raising the signal it caught again, once it has shut down.
        code = await asyncio.to_thread(stack.servers[0].terminate, 60)
        assert code in (0, -signal.SIGTERM), stack.servers[0].tail()
        await stream.until_ended()
        # The server ended it on SIGTERM (not its graceful shutdown's timeout), saying why.
        assert "stream ended: the server is restarting" in stream.comments


async def test_a_stream_is_refused_while_the_event_streams_cannot_be_read(
    pg_database_url: str, private_redis: PrivateRedis
) -> None:
    settings = make_settings(
        database_url=pg_database_url, redis_url=private_redis.url, redis_prefix="live-down"
    )
    try:
        async with started_apps() as start:
            app = await start(settings)
            async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
                user = await make_user(app, http)
                # Nobody listened yet, so no reader has a position to resume from: where to
                # start cannot be known while Redis is down. (A reader that has one keeps it
                # through an outage, and its streams go on.)
                private_redis.kill()
                request = http.build_request("GET", EVENTS, headers=user.headers)
                refused = await http.send(request, stream=True)
                await refused.aclose()
                assert refused.status_code == 503
                assert refused.headers["retry-after"]
                assert refused.headers["content-type"].startswith("application/problem+json")
                private_redis.start()
                async with open_stream(http, EVENTS, headers=user.headers) as stream:
                    assert not stream.ended
    finally:
        await clean_tables(pg_database_url)


async def test_a_stream_goes_on_after_redis_restarted_empty(
    pg_database_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url=pg_database_url, redis_url=private_redis.url, redis_prefix="live-restart"
    )
    env = process_env(
        DATABASE_URL=pg_database_url,
        REDIS_URL=private_redis.url,
        REDIS_PREFIX="live-restart",
        RELAY_POLL_SECONDS="0.1",
    )
    worker = TaskhubProcess(["worker"], env=env, log=tmp_path / "worker.log", cwd=tmp_path)
    try:
        async with started_apps() as start:
            app = await start(settings)
            async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
                admin = await make_user(app, http, is_superuser=True)
                product = await http.post(
                    "/api/v2/products",
                    json={"sku": "LIVE-R", "name": "Live", "price_cents": 100, "stock": 100},
                    headers=admin.headers,
                )
                line = {"items": [{"product_id": product.json()["id"], "quantity": 1}]}
                async with open_stream(http, EVENTS, headers=admin.headers) as stream:
                    first = await http.post("/api/v2/orders", json=line, headers=admin.headers)
                    (before,) = await stream.take(1)
                    assert before.envelope["payload"]["order_id"] == first.json()["id"]
                    private_redis.kill()
                    private_redis.start()
                    # The same stream goes on, without reconnecting: the server's reader
                    # reconnects and reads on; the events the worker republishes into the new
                    # stream are not sent twice.
                    second = await http.post("/api/v2/orders", json=line, headers=admin.headers)
                    assert second.status_code == 201, second.text
                    while True:
                        message = await stream.next(timeout=60)
                        assert message is not None, "the stream ended"
                        assert message.id != before.id, "an event came twice"
                        if message.envelope["payload"]["order_id"] == second.json()["id"]:
                            break
    finally:
        worker.close()
        await clean_tables(pg_database_url)
