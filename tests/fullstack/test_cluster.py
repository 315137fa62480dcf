"""The full stack on a real Redis Cluster (3 masters, 3 replicas, on loopback) with
STREAM_PARTITIONS=8 and real `taskhub worker` processes: oversell, kill -9, a master failed
over under load, and the login limiter, the binding and `taskhub dlq` on the cluster.

The cluster is started once for the module; the failover test, last, leaves it healthy
(the killed node rejoins as a replica).
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import RedisCluster
from sqlalchemy import text
from typer.testing import CliRunner

from taskhub.cli import app as cli
from taskhub.messaging.streams import StreamKeys, partition_index
from tests.conftest import service_missing
from tests.fullstack.conftest import WorkerProcess, order_status_counts, pending_orders
from tests.fullstack.stack import Stack, processed, stock_of
from tests.invariants import assert_stock_invariant
from tests.polling import eventually
from tests.processes import SECRET, LocalCluster

pytestmark = [pytest.mark.pg, pytest.mark.redis, pytest.mark.slow]

PARTITIONS = 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A local Redis Cluster for this module."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        service_missing("redis-server", "redis-server and redis-cli are needed for a cluster")
    local = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    local.start()
    yield local
    local.stop()


@pytest.fixture
async def cluster_stack(stack_factory: Callable[..., Any], cluster: LocalCluster) -> Stack:
    """The API on the cluster with 8 partitions (its workers get the same settings)."""
    stack: Stack = await stack_factory(
        redis_url=cluster.url, redis_cluster=True, stream_partitions=PARTITIONS
    )
    assert isinstance(stack.app.state.redis, RedisCluster)
    return stack


async def partitions_used(stack: Stack) -> set[str]:
    """The partitions whose stream received entries."""
    redis = stack.app.state.redis
    used = set()
    for keys in stack.partitions:
        if await redis.exists(keys.stream) and (await redis.xinfo_stream(keys.stream))[
            "last-generated-id"
        ] not in (b"0-0", "0-0"):
            used.add(keys.partition)
    return used


async def test_oversell_on_the_cluster_with_8_partitions_and_3_workers(
    cluster_stack: Stack, workers: Callable[..., WorkerProcess]
) -> None:
    stack = cluster_stack
    started = [workers(stack.settings) for _ in range(3)]
    product = await stack.product(stock=50)
    await stack.wait_consumers(3)
    order_ids = await stack.orders([[(product, 1)] for _ in range(200)], parallel=50)
    await stack.wait_drained(60, started)
    assert await order_status_counts(stack.engine) == {"RESERVED": 50, "FAILED": 150}
    assert await stock_of(stack.engine, product) == 0
    assert await processed(stack.engine, "orders.reserve") == 200
    await assert_stock_invariant(stack.engine)
    # The orders were spread over the partitions, each partition on its cluster node.
    expected = {f"p{partition_index({'order_id': i}, PARTITIONS)}" for i in order_ids}
    assert len(expected) == PARTITIONS
    assert await partitions_used(stack) == expected
    assert all(w.proc.poll() is None for w in started), "a worker died"


async def test_kill_9_on_the_cluster_leaves_nothing_unclaimed_on_any_partition(
    cluster_stack: Stack, workers: Callable[..., WorkerProcess]
) -> None:
    stack = cluster_stack
    products = [await stack.product(stock=10_000) for _ in range(3)]
    rng = random.Random(17)
    lines = [
        [(p, rng.randint(1, 3)) for p in rng.sample(products, rng.randint(1, 3))]
        for _ in range(240)
    ]
    await stack.orders(lines)
    # Small batches and few slots, so that every worker holds entries when one is killed.
    slow = {"WORKER_CONCURRENCY": "2", "WORKER_BATCH_SIZE": "3"}
    started = [workers(stack.settings, **slow) for _ in range(3)]

    async def some_settled() -> bool:
        return await pending_orders(stack.engine) < 200

    await eventually(some_settled, timeout=30, what="the workers to start settling")
    started[0].kill9()
    assert await pending_orders(stack.engine) > 0, "finished before the kill; proved nothing"
    await stack.wait_drained(60, started)
    assert await order_status_counts(stack.engine) == {"RESERVED": 240}
    assert await processed(stack.engine, "orders.reserve") == 240
    async with stack.engine.connect() as conn:
        reservations = await conn.scalar(text("SELECT count(*) FROM reservations"))
        items = await conn.scalar(text("SELECT count(*) FROM order_items"))
    assert reservations == items
    await assert_stock_invariant(stack.engine)


async def test_limiter_binding_and_dlq_on_the_cluster(cluster_stack: Stack) -> None:
    stack = cluster_stack
    redis = stack.app.state.redis
    # The login limiter: its counters live on the cluster.
    statuses = []
    for _ in range(6):
        r = await stack.client.post(
            "/api/v1/auth/login/access-token",
            data={"username": stack.customer.email, "password": "wrong-password-1"},
        )
        statuses.append(r.status_code)
    assert statuses == [401] * 5 + [429], statuses
    # The binding: the API bound every partition to its database.
    for keys in stack.partitions:
        assert await redis.get(keys.binding) is not None, keys.partition
    # `taskhub dlq` over the partitions, on the cluster.
    keys = StreamKeys(stack.settings.redis_prefix, "p5")
    dead_id = (
        await redis.xadd(keys.dead, {b"envelope": b"{}", b"dlq.error": b"RuntimeError('x')"})
    ).decode()
    env = {
        "ENVIRONMENT": "test",
        "SECRET_KEY": SECRET,
        "REDIS_URL": stack.settings.redis_url,
        "REDIS_CLUSTER": "true",
        "REDIS_PREFIX": stack.settings.redis_prefix,
        "STREAM_PARTITIONS": str(PARTITIONS),
    }
    runner = CliRunner()

    def invoke(*args: str) -> Any:  # the commands run their own event loop
        return asyncio.to_thread(runner.invoke, cli, list(args), env=env)

    listed = await invoke("dlq", "list")
    assert listed.exit_code == 0, listed.output
    assert f"p5/{dead_id}" in listed.output
    replayed = await invoke("dlq", "replay", f"p5/{dead_id}")
    assert replayed.exit_code == 0, replayed.output
    assert await redis.xlen(keys.dead) == 0
    assert await redis.xlen(keys.stream) == 1
    status = await invoke("streams", "status")
    assert status.exit_code == 0, status.output
    assert "p7" in status.output


async def test_a_master_failed_over_under_load_loses_nothing(
    cluster_stack: Stack, workers: Callable[..., WorkerProcess], cluster: LocalCluster
) -> None:
    stack = cluster_stack
    started = [workers(stack.settings) for _ in range(3)]
    product = await stack.product(stock=150)
    await stack.wait_consumers(3)
    total = 400
    load = asyncio.create_task(stack.orders([[(product, 1)] for _ in range(total)], parallel=8))

    async def under_way() -> bool:
        return await processed(stack.engine, "orders.reserve") >= 60

    await eventually(under_way, timeout=60, what="the load to be under way")
    victim = cluster.masters()[0]
    replica = cluster.replica_of(victim)
    assert not load.done(), "the load finished before the failover; the test proved nothing"
    cluster.kill(victim)  # SIGKILL: no goodbye; its replica takes over after the timeout

    async def promoted() -> bool:
        return replica in await asyncio.to_thread(cluster.masters)

    await eventually(promoted, timeout=30, what="the replica to take over", every=0.2)
    order_ids = await load
    assert len(set(order_ids)) == total
    await asyncio.to_thread(cluster.start_node, victim)  # rejoins, as a replica
    await stack.wait_drained(90, started)
    await asyncio.to_thread(cluster.wait_ok)
    assert await order_status_counts(stack.engine) == {"RESERVED": 150, "FAILED": 250}
    assert await processed(stack.engine, "orders.reserve") == total
    assert await stock_of(stack.engine, product) == 0
    await assert_stock_invariant(stack.engine)
    assert all(w.proc.poll() is None for w in started), "a worker died"
