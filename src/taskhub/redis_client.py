"""The Redis clients of every process: one server, or a Redis Cluster (REDIS_CLUSTER).

With `REDIS_CLUSTER=true`, `REDIS_URL` names one node of the cluster (a seed): redis-py's
asyncio `RedisCluster` discovers the others and routes every command by its key's slot. Every
command taskhub sends names keys of one slot only (an event partition's keys share a hash
tag, `messaging.streams`; the login limiter's and the control keys are one key each), so the
same code runs on both. A cluster client follows failovers itself: a command that finds its
node gone or its slot moved makes the client re-read the cluster's layout, and the caller's
own retry (relay, consumer) then reaches the new master.
"""

from __future__ import annotations

from typing import Any, TypeAlias, TypeGuard

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from taskhub.config import Settings

RedisClient: TypeAlias = Redis | RedisCluster


def make_redis(
    settings: Settings,
    *,
    socket_timeout: float,
    socket_connect_timeout: float = 2,
    max_connections: int = 1000,
) -> RedisClient:
    """A client of `REDIS_URL`: a cluster client when `REDIS_CLUSTER` is set.

    A worker holds one blocked connection per partition it reads (XREADGROUP BLOCK), so the
    pools allow many more than redis-py's default 100.
    """
    if settings.redis_url is None:
        raise ValueError("REDIS_URL is not set")
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "health_check_interval": 30,
    }
    if settings.redis_cluster:
        # Few, quick retries inside the client: the pipeline's own loops (relay, consumer)
        # retry for as long as a failover takes, with their backoff and logging.
        return RedisCluster.from_url(
            settings.redis_url,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3),
            max_connections=max_connections,  # per node
            **common,
        )
    return Redis.from_url(settings.redis_url, max_connections=max_connections, **common)


def is_cluster(redis: RedisClient) -> TypeGuard[RedisCluster]:
    """Whether the client talks to a Redis Cluster."""
    return isinstance(redis, RedisCluster)
