"""Partitions: events of one order stay in one partition, and STREAM_PARTITIONS changes on a
running system by the documented procedure (drain, switch, resume) without losing or
reordering anything; a worker that finds entries beyond its setting consumes them too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from taskhub.cli import app as cli
from taskhub.db import make_sessionmaker
from taskhub.messaging.relay import Relay
from taskhub.messaging.streams import (
    ENVELOPE_FIELD,
    MAX_PARTITIONS,
    ControlKeys,
    all_partitions,
    partition_for,
    partition_index,
    read_entries,
)
from tests.fullstack.conftest import WorkerProcess, order_status_counts, pending_orders
from tests.fullstack.stack import Stack, processed
from tests.invariants import assert_stock_invariant
from tests.polling import eventually
from tests.processes import SECRET

pytestmark = [pytest.mark.pg, pytest.mark.redis]


def test_an_event_goes_to_the_partition_of_its_order_else_its_project() -> None:
    assert partition_index({"order_id": 42}, 1) == 0
    for count in (2, 8, MAX_PARTITIONS):
        for order_id in range(200):
            # Every event of an order, whatever else its payload names, and stable.
            expected = partition_index({"order_id": order_id}, count)
            assert 0 <= expected < count
            assert partition_index({"order_id": order_id, "project_id": 3}, count) == expected
            assert partition_index({"order_id": order_id, "status": "PAID"}, count) == expected
    # crc32 of the decimal id: the same in every process and language.
    assert partition_for({"order_id": 1}, 8) == "p7"  # crc32(b"1") = 0x83dcefb7
    assert partition_for({"project_id": 1, "task_id": 9}, 8) == "p7"
    assert partition_for({"webhook_id": 5}, 8) == "p0"
    spread = {partition_index({"order_id": i}, 8) for i in range(100)}
    assert spread == set(range(8))
    with pytest.raises(ValueError, match="STREAM_PARTITIONS"):
        all_partitions("x", MAX_PARTITIONS + 1)


def cli_env(stack: Stack, partitions: int) -> dict[str, str]:
    return {
        "ENVIRONMENT": "test",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": stack.settings.database_url,
        "REDIS_URL": stack.settings.redis_url or "",
        "REDIS_PREFIX": stack.settings.redis_prefix,
        "STREAM_PARTITIONS": str(partitions),
    }


async def last_ids(stack: Stack, count: int) -> list[str]:
    redis = stack.app.state.redis
    out = []
    for keys in all_partitions(stack.settings.redis_prefix, count):
        info = await redis.xinfo_stream(keys.stream)
        out.append(str(info["last-generated-id"]))
    return out


async def test_stream_partitions_change_by_drain_switch_resume(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    stack: Stack = await stack_factory(stream_partitions=4)
    before = workers(stack.settings)
    product = await stack.product(stock=1000)
    await stack.orders([[(product, 1)] for _ in range(60)])
    await stack.wait_drained(30, [before])
    # Orders keep coming while the drain runs; the API never stops.
    load = asyncio.create_task(stack.orders([[(product, 1)] for _ in range(60)], parallel=4))
    runner = CliRunner()
    drained = await asyncio.to_thread(
        runner.invoke, cli, ["streams", "drain", "--timeout", "60"], env=cli_env(stack, 4)
    )
    assert drained.exit_code == 0, drained.output
    assert "drained" in drained.output
    redis = stack.app.state.redis
    assert await redis.exists(ControlKeys(stack.settings.redis_prefix).relay_paused)
    # Drained: every partition delivered and acknowledged, while the relays publish nothing.
    for keys in stack.partitions:
        summary = await redis.xpending(keys.stream, keys.group)
        assert int(summary["pending"]) == 0, keys.partition
    await load
    frozen = await last_ids(stack, 4)
    assert await pending_orders(stack.engine) > 0, "orders made while paused wait in the outbox"
    await asyncio.sleep(0.5)
    assert await last_ids(stack, 4) == frozen, "a paused relay published"

    # Switch: the workers restart with 2 partitions, then the relays resume.
    assert await asyncio.to_thread(before.terminate) == 0
    smaller = stack.settings.model_copy(update={"stream_partitions": 2})
    after = [workers(smaller) for _ in range(2)]
    resumed = await asyncio.to_thread(
        runner.invoke, cli, ["streams", "resume"], env=cli_env(stack, 2)
    )
    assert resumed.exit_code == 0, resumed.output
    smaller_stack = Stack(
        smaller, stack.app, stack.client, stack.admin, stack.customer, stack.engine
    )
    await smaller_stack.wait_drained(30, after)
    assert await order_status_counts(stack.engine) == {"RESERVED": 120}
    assert await processed(stack.engine, "orders.reserve") == 120
    # Nothing more went to the partitions the new setting no longer covers.
    assert (await last_ids(stack, 4))[2:] == frozen[2:]
    assert (await last_ids(stack, 2)) != frozen[:2]
    assert all("no longer covers" not in w.log.read_text() for w in after)
    await assert_stock_invariant(stack.engine)


async def test_a_worker_consumes_entries_left_in_partitions_beyond_its_setting(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    # STREAM_PARTITIONS lowered from 4 to 2 without a drain: nothing may be lost.
    stack: Stack = await stack_factory(stream_partitions=4)
    product = await stack.product(stock=1000)
    order_ids = await stack.orders([[(product, 1)] for _ in range(40)])
    relay = Relay(
        sessionmaker=make_sessionmaker(stack.engine),
        redis=stack.app.state.redis,
        partitions=all_partitions(stack.settings.redis_prefix, 4),
        database_url=None,
        batch_size=100,
        poll_seconds=1.0,
        maxlen=1000,
    )
    assert await relay.publish_batch() == 40
    redis = stack.app.state.redis
    beyond = 0
    for keys in all_partitions(stack.settings.redis_prefix, 4)[2:]:
        for _, fields in read_entries(await redis.xread({keys.stream: "0"})):
            assert fields is not None and ENVELOPE_FIELD in fields
            beyond += 1
    expected_beyond = sum(1 for i in order_ids if partition_index({"order_id": i}, 4) >= 2)
    assert beyond == expected_beyond > 0

    worker = workers(stack.settings.model_copy(update={"stream_partitions": 2}))
    await stack.wait_drained(30, [worker])  # all 4 partitions, as the API's settings say
    assert await order_status_counts(stack.engine) == {"RESERVED": 40}

    async def warned() -> bool:
        return "no longer covers" in worker.log.read_text()

    await eventually(warned, timeout=5, what="the worker's warning")
    await assert_stock_invariant(stack.engine)
