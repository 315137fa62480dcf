"""Operating the partitions: their status, and draining them to change STREAM_PARTITIONS.

Changing the number of partitions moves most orders to another partition. Entries still in
flight under the old mapping would then be handled beside newer events of the same order
under the new one, out of order, and a partition the new number no longer covers would be
read by nobody. So the change is made on empty streams:

1. `drain` sets the relays' pause flag (the API keeps writing events to the outbox), waits
   until no relay is in the middle of a batch (`relay.wait_for_relays`: each reads the flag
   under the same lock before it publishes), then until every partition, including those
   beyond the current setting, has delivered and acknowledged every entry.
2. The workers and the API restart with the new STREAM_PARTITIONS.
3. `resume` clears the flag; the outbox is published with the new mapping.

A worker that finds entries in partitions beyond its setting (the drain was skipped) warns
and consumes them as well, so nothing is lost either way (`worker.Worker`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from taskhub.config import Settings
from taskhub.messaging.deadletters import count_stream_dead
from taskhub.messaging.relay import wait_for_relays
from taskhub.messaging.streams import (
    ControlKeys,
    StreamKeys,
    StreamState,
    all_partitions,
    partitions_in_use,
    stream_state,
)
from taskhub.redis_client import RedisClient


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    """One partition's stream as the group sees it."""

    keys: StreamKeys
    state: StreamState
    dead: int
    covered: bool  # within STREAM_PARTITIONS


@dataclass(frozen=True, slots=True)
class Status:
    """Every partition in use, and whether the relays are paused."""

    partitions: list[PartitionStatus]
    paused: bool

    @property
    def unsettled(self) -> int:
        """Entries not yet delivered or not yet acknowledged, over every partition."""
        return sum(p.state.unsettled for p in self.partitions)

    def render(self) -> str:
        """A table for the terminal."""
        lines = [f"relays: {'PAUSED' if self.paused else 'publishing'}"]
        lines.append(f"{'partition':<10} {'entries':>8} {'lag':>8} {'pending':>8} {'dead':>6}")
        for p in self.partitions:
            group = p.state.groups[0] if p.state.groups else None
            lines.append(
                f"{p.keys.partition:<10} {p.state.length:>8} "
                f"{group.lag if group else 0:>8} {group.pending if group else 0:>8} "
                f"{p.dead:>6}" + ("" if p.covered else "  (beyond STREAM_PARTITIONS)")
            )
        return "\n".join(lines)


async def status(redis: RedisClient, settings: Settings) -> Status:
    """The partitions of STREAM_PARTITIONS, and any beyond it still holding entries."""
    count = settings.stream_partitions
    covered = all_partitions(settings.redis_prefix, count)
    extra = await partitions_in_use(redis, settings.redis_prefix, count)
    keys = [*covered, *extra]
    states = await asyncio.gather(*(stream_state(redis, k) for k in keys))
    dead = await asyncio.gather(*(count_stream_dead(redis, k) for k in keys))
    paused = bool(await redis.exists(ControlKeys(settings.redis_prefix).relay_paused))
    return Status(
        partitions=[
            PartitionStatus(k, s, d, i < count)
            for i, (k, s, d) in enumerate(zip(keys, states, dead, strict=True))
        ],
        paused=paused,
    )


async def pause(redis: RedisClient, engine: AsyncEngine, settings: Settings) -> None:
    """Stop the relays: once this returns, none publishes until `resume`."""
    await redis.set(ControlKeys(settings.redis_prefix).relay_paused, "1")
    await wait_for_relays(engine)


async def resume(redis: RedisClient, settings: Settings) -> None:
    """Let the relays publish again."""
    await redis.delete(ControlKeys(settings.redis_prefix).relay_paused)


async def drain(
    redis: RedisClient,
    engine: AsyncEngine,
    settings: Settings,
    *,
    timeout: float,  # noqa: ASYNC109 - a deadline across many polls, not one await
    report: Callable[[str], object] | None = None,
    every: float = 0.5,
) -> bool:
    """Pause the relays and wait until every partition is settled; False at the timeout
    (the relays stay paused)."""
    await pause(redis, engine, settings)
    deadline = time.monotonic() + timeout
    last = -1
    while True:
        current = await status(redis, settings)
        if current.unsettled == 0:
            return True
        if report is not None and current.unsettled != last:
            report(f"waiting for {current.unsettled} entries to be delivered and acknowledged")
            last = current.unsettled
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)
