"""Our own database going down while a delivery is in flight is not a failed attempt: the
outcome is recorded once the database answers again, and the receiver is not sent the event
twice (PostgreSQL, reached through a TCP proxy the test cuts)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from taskhub.models import WebhookEndpoint
from tests.conftest import clean_tables, client_for, make_settings, started_apps
from tests.factories import make_user
from tests.hardening.tcp_proxy import TcpProxy
from tests.polling import eventually
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.pg


@pytest.fixture
async def proxy(pg_server: str, pg_database_url: str) -> AsyncIterator[TcpProxy]:
    """A cuttable proxy in front of the run's PostgreSQL; the tables are emptied after."""
    target = urlsplit(pg_server)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    yield proxy
    if proxy._server is None:
        await proxy.restore()
    await proxy.cut()
    await clean_tables(pg_database_url)


async def test_the_database_down_during_an_attempt_is_not_a_failed_attempt(
    pg_server: str,
    pg_database_url: str,
    proxy: TcpProxy,
    receivers: Callable[[], Awaitable[Receiver]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = urlsplit(pg_server).port or 5432
    through_proxy = pg_database_url.replace(f":{port}/", f":{proxy.port}/", 1)
    settings = make_settings(
        database_url=through_proxy,
        db_timeout_seconds=1,
        webhook_allow_private=True,
        webhook_retry_schedule=[0.1, 0.1],
    )
    receiver = await receivers()
    caplog.set_level(logging.INFO, logger="taskhub.webhooks")
    async with started_apps() as start:
        app: FastAPI = await start(settings)
        async with client_for(app) as client:
            user = await make_user(app, client)
            r = await client.post(
                "/api/v2/webhooks", json={"url": receiver.url()}, headers=user.headers
            )
            endpoint = r.json()
            base = f"/api/v2/webhooks/{endpoint['id']}"
            # The receiver takes its time: the database goes down while it does.
            await receiver.control(secret=endpoint["secret"], delay=2.0)
            queued = await client.post(base + "/test", headers=user.headers)
            assert queued.status_code == 202, queued.text
            await receiver.wait_for(
                lambda r: sum(r["requests"].values()) == 1, timeout=30, what="the attempt"
            )
            await proxy.cut()
            await receiver.wait_for(lambda r: r["answered"] == 1, timeout=30, what="the answer")

            async def held() -> bool:
                return any("its outcome is recorded once" in m for m in caplog.messages)

            await eventually(held, timeout=30, what="the outcome to be held for the database")
            await proxy.restore()

            async def settled() -> bool:
                r = await client.get(base + "/deliveries", headers=user.headers)
                return r.status_code == 200 and r.json()["items"][0]["state"] != "pending"

            await eventually(settled, timeout=30, what="the delivery to be recorded")
            (delivery,) = (await client.get(base + "/deliveries", headers=user.headers)).json()[
                "items"
            ]
            async with app.state.sessionmaker() as session:
                failures = await session.scalar(
                    select(WebhookEndpoint.consecutive_failures).where(
                        WebhookEndpoint.id == endpoint["id"]
                    )
                )
    report = await receiver.received()
    assert delivery["state"] == "succeeded"
    assert delivery["attempt"] == 1
    assert delivery["status_code"] == 200
    assert delivery["error"] is None
    assert failures == 0
    assert sum(report["requests"].values()) == 1  # not sent again
    assert len(report["accepted"]) == 1
