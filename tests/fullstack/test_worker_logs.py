"""The worker logs one INFO line per applied event, with the event type, the ids its payload
names and the request id, in both log formats; LOG_LEVEL sets the level."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.conftest import make_settings
from tests.fullstack.conftest import WorkerProcess
from tests.fullstack.stack import Stack

pytestmark = [pytest.mark.pg, pytest.mark.redis]


@pytest.mark.parametrize("environment", ["test", "dev"])
async def test_each_applied_event_is_logged_with_its_ids_and_request_id(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess], environment: str
) -> None:
    stack: Stack = await stack_factory()
    worker = workers(stack.settings, ENVIRONMENT=environment)  # test: JSON lines; dev: text
    product = await stack.product(stock=5)
    request_id = f"req-{environment}-7f3a"
    r = await stack.client.post(
        "/api/v2/orders",
        json={"items": [{"product_id": product, "quantity": 1}]},
        headers={**stack.customer.headers, "X-Request-ID": request_id},
    )
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    await stack.wait_drained(30, [worker])
    log = worker.log.read_text().splitlines()
    lines = [line for line in log if "applied order.created" in line]
    assert len(lines) == 1, worker.tail()
    # The reservation's outcome is an event of its own, logged once too.
    assert len([line for line in log if "applied order.reserved" in line]) == 1, worker.tail()
    if environment == "test":
        entry = orjson.loads(lines[0])
        assert entry["level"] == "info"
        assert entry["event_type"] == "order.created"
        assert entry["order_id"] == order_id
        assert entry["request_id"] == request_id
    else:
        assert " INFO " in lines[0]
        assert "order.created" in lines[0]
        assert f"order_id={order_id}" in lines[0]
        assert f"[{request_id}]" in lines[0]


async def test_log_level_quiets_the_per_event_lines(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    stack: Stack = await stack_factory()
    worker = workers(stack.settings, LOG_LEVEL="warning")
    product = await stack.product(stock=5)
    await stack.order([(product, 1)])
    await stack.wait_drained(30, [worker])
    assert "applied order" not in worker.log.read_text()
    with pytest.raises(ValueError, match="log_level"):
        make_settings(log_level="loud")
