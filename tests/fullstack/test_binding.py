"""The event streams are bound to one database: a second stack sharing the REDIS_PREFIX is
refused at start (worker and API), instead of handing it the first stack's events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asgi_lifespan import LifespanManager

from taskhub.config import Settings
from taskhub.main import create_app
from taskhub.messaging.binding import DeploymentMismatch
from taskhub.migrate import upgrade
from tests.conftest import make_settings
from tests.fullstack.conftest import WorkerProcess
from tests.fullstack.stack import Stack

pytestmark = [pytest.mark.pg, pytest.mark.redis]


async def test_a_second_database_on_the_same_prefix_is_refused(
    stack_factory: Callable[..., Any],
    workers: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    stack: Stack = await stack_factory()  # the API bound the prefix to its database
    redis = stack.app.state.redis
    assert await redis.get(stack.keys.binding) is not None
    # Another stack: its own database (a fresh SQLite file), the same Redis and prefix.
    other_url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    await upgrade(make_settings(database_url=other_url))
    other: Settings = stack.settings.model_copy(update={"database_url": other_url})

    refused = workers(other)
    code = await asyncio.to_thread(refused.proc.wait, 30)
    assert code == 3, refused.tail()
    assert "belong to another database" in refused.tail(), refused.tail()
    assert not await redis.exists(stack.keys.stream), "the refused worker touched the stream"

    with pytest.raises(DeploymentMismatch, match="share REDIS_PREFIX"):
        async with LifespanManager(create_app(other), startup_timeout=30):
            pass

    # The right database is accepted, and its worker gets on with the events.
    worker = workers(stack.settings)
    product = await stack.product(stock=5)
    await stack.order([(product, 1)])
    await stack.wait_drained(30, [worker])
    assert worker.proc.poll() is None, worker.tail()
