"""The live streams' machinery in a server process: the hub and its event source.

Full stack: the stream readers (`messaging.fanout.StreamFanout`), which read while someone
in this process listens. Embedded: the dispatcher's report of each outbox row
(`LiveHub.on_outbox_row`, passed to it as its observer).

On SIGTERM or SIGINT the server's streams end at once (`end_streams_on_signals`), so that
the server's graceful shutdown does not wait for clients that would never leave, and the
clients reconnect (to another server) right away.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from redis.asyncio import Redis

from taskhub.background import finish
from taskhub.config import Settings
from taskhub.driver import Database
from taskhub.live.hub import LiveHub
from taskhub.messaging.fanout import PublishedEvent, StreamFanout
from taskhub.messaging.streams import all_partitions
from taskhub.orders.events import order_owners

SignalHandler = Callable[[int, FrameType | None], object]


class LiveUpdates:
    """The hub, its routing task and (full stack) the stream readers."""

    def __init__(self, settings: Settings, *, database: Database, redis: Redis | None) -> None:
        async def owners(order_ids: Sequence[int]) -> dict[int, int]:
            return await order_owners(database.pooled, order_ids)

        self.fanout: StreamFanout | None = None
        attach = None
        if redis is not None and not settings.embedded_events:
            self.fanout = StreamFanout(
                redis=redis,
                partitions=all_partitions(settings.redis_prefix, settings.stream_partitions),
                deliver=self._publish,
                wanted=self._wanted,
            )
            attach = self.fanout.attach
        self.hub = LiveHub(owners=owners, max_queued=settings.live_max_queued_events, attach=attach)
        self._tasks: list[asyncio.Task[None]] = []

    def _publish(self, event: PublishedEvent) -> None:
        self.hub.publish(event)

    def _wanted(self) -> bool:
        return self.hub.has_subscribers

    def start(self) -> None:
        """Start routing (and reading the streams)."""
        self._tasks.append(asyncio.create_task(self.hub.run(), name="live-hub"))
        if self.fanout is not None:
            self._tasks.append(asyncio.create_task(self.fanout.run(), name="live-fanout"))

    async def close(self) -> None:
        """End every stream, then stop."""
        self.hub.close()
        if self.fanout is not None:
            self.fanout.stop()
        for task in self._tasks:
            await finish(task, 3)


def end_streams_on_signals(hub: LiveHub) -> Callable[[], None]:
    """Chain SIGTERM/SIGINT to the server's own handlers so that they end the streams first;
    returns what restores the handlers. Only in the main thread (where a server installs its
    handlers), and only on top of callable ones."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    installed: list[tuple[signal.Signals, SignalHandler, SignalHandler]] = []

    def chained(prior: SignalHandler) -> SignalHandler:
        def handler(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(hub.close)
            prior(signum, frame)

        return handler

    for sig in (signal.SIGTERM, signal.SIGINT):
        prior = signal.getsignal(sig)
        if callable(prior):
            handler = chained(prior)
            signal.signal(sig, handler)
            installed.append((sig, prior, handler))

    def restore() -> None:
        for sig, prior, handler in installed:
            if signal.getsignal(sig) is handler:
                signal.signal(sig, prior)

    return restore
