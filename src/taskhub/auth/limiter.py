"""Failed-login limits per account and per client: Redis in the full stack, memory embedded."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError

from taskhub.redis_client import RedisClient

logger = logging.getLogger("taskhub.auth.limiter")


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `max_failures` failed logins per `window_seconds`."""

    max_failures: int
    window_seconds: int


class FailureCounter(Protocol):
    """Fixed-window counters of failed logins."""

    async def blocked_for(self, key: str, limit: Limit) -> int:
        """Seconds until `key` may try again; 0 when it may try now."""

    async def add_failure(self, key: str, limit: Limit) -> None:
        """Count one failure for `key`."""

    async def clear(self, key: str) -> None:
        """Forget `key`'s failures."""


class MemoryCounter:
    """In-process counters for the embedded shape (one process)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}

    async def blocked_for(self, key: str, limit: Limit) -> int:
        count, started = self._windows.get(key, (0, 0.0))
        remaining = started + limit.window_seconds - time.monotonic()
        if remaining <= 0:
            self._windows.pop(key, None)
            return 0
        return int(remaining) + 1 if count >= limit.max_failures else 0

    async def add_failure(self, key: str, limit: Limit) -> None:
        now = time.monotonic()
        count, started = self._windows.get(key, (0, now))
        if started + limit.window_seconds <= now:
            count, started = 0, now
        self._windows[key] = (count + 1, started)
        if len(self._windows) > 100_000:
            self._evict(now, limit)

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    def _evict(self, now: float, limit: Limit) -> None:
        stale = [k for k, (_, s) in self._windows.items() if s + limit.window_seconds <= now]
        for k in stale:
            del self._windows[k]


class RedisCounter:
    """Counters shared by every API process; fails open (and logs) when Redis is down.

    Each counter is one key, so its commands (GET + TTL, INCR + EXPIRE) stay in one slot on
    a Redis Cluster.
    """

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:login-failures:"

    async def blocked_for(self, key: str, limit: Limit) -> int:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self._prefix + key)
                pipe.ttl(self._prefix + key)
                count, ttl = await pipe.execute()
        except RedisError:
            logger.warning("login limiter: Redis unavailable, not limiting")
            return 0
        if count is not None and int(count) >= limit.max_failures:
            return max(int(ttl), 1)
        return 0

    async def add_failure(self, key: str, limit: Limit) -> None:
        name = self._prefix + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, limit.window_seconds, nx=True)
                await pipe.execute()
        except RedisError:
            logger.warning("login limiter: Redis unavailable, failure not counted")

    async def clear(self, key: str) -> None:
        try:
            await self._redis.delete(self._prefix + key)
        except RedisError:
            logger.warning("login limiter: Redis unavailable, failures not cleared")


class LoginLimiter:
    """Applies the account and client limits of the settings."""

    def __init__(self, counter: FailureCounter, *, account: Limit, client: Limit) -> None:
        self._counter = counter
        self._account = account
        self._client = client

    async def retry_after(self, *, account: str, client: str) -> int:
        """Seconds the caller must wait before trying; 0 when allowed."""
        return max(
            await self._counter.blocked_for(f"acct:{account}", self._account),
            await self._counter.blocked_for(f"client:{client}", self._client),
        )

    async def failed(self, *, account: str, client: str) -> None:
        """Count a failed attempt against both the account and the client."""
        await self._counter.add_failure(f"acct:{account}", self._account)
        await self._counter.add_failure(f"client:{client}", self._client)

    async def succeeded(self, *, account: str) -> None:
        """A correct password clears the account's failures."""
        await self._counter.clear(f"acct:{account}")
