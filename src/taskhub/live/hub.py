"""The process's live subscribers, and the routing of every published event to them.

The fan-out (`messaging.fanout`: the stream readers, or the embedded dispatcher) hands each
event to `publish`, which only queues it; one task (`run`) routes the queued events to the
subscriptions whose topic accepts them (`live.visibility`), in the order they came: it asks
only the subscriptions filed under the event's routes (the order's owner, every order, the
project), so routing costs what the event's audience does, not what the process's streams
do. Owners of orders that an event does not name are looked up in one statement per batch,
when some stream needs them, and cached (an order never changes hands). With nobody
subscribed, `publish` drops the event at once.

A subscription buffers at most `max_queued` events for its connection; one that falls
further behind is ended, and its client resumes with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence

from taskhub.errors import ServiceUnavailable
from taskhub.live.visibility import Route, Topic, routes_of
from taskhub.messaging.fanout import PublishedEvent, event_of_row
from taskhub.models import OutboxEvent
from taskhub.orders.events import id_in

logger = logging.getLogger("taskhub.live")

OwnerLookup = Callable[[Sequence[int]], Awaitable[dict[int, int]]]
OWNER_CACHE_SIZE = 10_000
ATTACH_SECONDS = 3.0


class Subscription:
    """One stream's topic and the events waiting for its connection."""

    def __init__(self, topic: Topic, *, max_queued: int) -> None:
        self.topic = topic
        self.ended: str | None = None
        self._max_queued = max_queued
        self._queue: deque[PublishedEvent] = deque()
        self._ready = asyncio.Event()

    def push(self, event: PublishedEvent) -> None:
        """Queue an event for the connection (or end a connection that fell behind)."""
        if self.ended is not None:
            return
        if len(self._queue) >= self._max_queued:
            self.end("too far behind")
            return
        self._queue.append(event)
        self._ready.set()

    def end(self, reason: str) -> None:
        """End the stream after the events already queued."""
        if self.ended is None:
            self.ended = reason
        self._ready.set()

    async def wait(self, seconds: float) -> None:
        """Return when an event is queued or the stream ended, or after `seconds`."""
        if self._queue or self.ended is not None:
            return
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await self._ready.wait()
        except TimeoutError:
            pass

    def take(self, limit: int) -> list[PublishedEvent]:
        """Up to `limit` queued events, oldest first."""
        queue = self._queue
        taken = [queue.popleft() for _ in range(min(limit, len(queue)))]
        if not queue and self.ended is None:
            self._ready.clear()
        return taken


class LiveHub:
    """The subscriptions of this process and the task that feeds them."""

    def __init__(
        self,
        *,
        owners: OwnerLookup,
        max_queued: int,
        attach: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._owners = owners
        self._max_queued = max_queued
        self._attach = attach
        self._subscriptions: set[Subscription] = set()
        self._routes: dict[Route, set[Subscription]] = {}
        self._inbox: deque[PublishedEvent] = deque()
        self._inbox_ready = asyncio.Event()
        self._owner_cache: OrderedDict[int, int] = OrderedDict()
        self._closed = False

    @property
    def has_subscribers(self) -> bool:
        """Whether anyone in this process listens."""
        return bool(self._subscriptions)

    def publish(self, event: PublishedEvent) -> None:
        """Queue a published event for routing (nothing at all when nobody listens)."""
        if self._subscriptions and not self._closed:
            self._inbox.append(event)
            self._inbox_ready.set()

    def on_outbox_row(self, row: OutboxEvent) -> None:
        """The embedded dispatcher's report of an outbox row."""
        if self._subscriptions and not self._closed:
            self.publish(event_of_row(row))

    async def subscribe(self, topic: Topic) -> Subscription:
        """Register a stream; events published from now on reach it.

        Raises ServiceUnavailable when the event source cannot be read (Redis down) or the
        server is shutting down.
        """
        if self._closed:
            raise ServiceUnavailable("The server is shutting down", retry_after=1)
        subscription = Subscription(topic, max_queued=self._max_queued)
        self._subscriptions.add(subscription)
        self._routes.setdefault(topic.route, set()).add(subscription)
        if self._attach is not None:
            try:
                async with asyncio.timeout(ATTACH_SECONDS):
                    await self._attach()
            except Exception as exc:
                self.unsubscribe(subscription)
                logger.warning("live: cannot read the event streams (%r)", exc)
                raise ServiceUnavailable("Live updates are unavailable right now") from None
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a stream (its connection closed)."""
        self._subscriptions.discard(subscription)
        filed = self._routes.get(subscription.topic.route)
        if filed is not None:
            filed.discard(subscription)
            if not filed:
                del self._routes[subscription.topic.route]
        subscription.end("closed")

    def close(self) -> None:
        """End every stream (the server is stopping) and stop routing."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.end("the server is restarting")
        self._inbox_ready.set()

    async def run(self) -> None:
        """Route queued events until `close()`."""
        while not self._closed:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            while self._inbox and not self._closed:
                events = list(self._inbox)
                self._inbox.clear()
                try:
                    await self._route(events)
                except Exception:  # never let one batch stop the routing of the next ones
                    logger.exception("live: routing failed")

    async def _route(self, events: list[PublishedEvent]) -> None:
        owners = await self._owners_for(events)
        for event in events:
            owner = owners.get(id_in(event.payload, "order_id") or 0)
            for route in routes_of(event, owner):
                for subscription in list(self._routes.get(route, ())):
                    if subscription.topic.accepts(event, owner):
                        subscription.push(event)
                        if subscription.topic.ends_with(event):
                            subscription.end("no longer allowed")

    def _user_order_streams(self) -> list[Subscription]:
        """The streams of one user's orders (not a site admin's every order)."""
        return [
            subscription
            for route, filed in self._routes.items()
            if route[0] == "order" and route[1] is not None
            for subscription in filed
        ]

    async def _owners_for(self, events: list[PublishedEvent]) -> dict[int, int]:
        """The owners of the orders these events are about but do not name, when a stream of
        one user's orders listens (cached); if they cannot be read now, those streams end."""
        cache = self._owner_cache
        missing = {
            order_id
            for event in events
            if event.type.startswith("order.")
            and id_in(event.payload, "user_id") is None
            and (order_id := id_in(event.payload, "order_id")) is not None
            and order_id not in cache
        }
        if missing and self._user_order_streams():
            try:
                found = await self._owners(list(missing))
            except Exception as exc:
                # Which of them may see these events is unknown: end their streams rather
                # than skip events; the clients resume with Last-Event-ID.
                logger.warning("live: cannot look up order owners (%r)", exc)
                for subscription in self._user_order_streams():
                    subscription.end("unavailable")
                found = {}
            for order_id, owner in found.items():
                cache[order_id] = owner
            while len(cache) > OWNER_CACHE_SIZE:
                cache.popitem(last=False)
        owners: dict[int, int] = {}
        for event in events:
            order_id = id_in(event.payload, "order_id")
            if order_id is not None and order_id in cache:
                owners[order_id] = cache[order_id]
        return owners
