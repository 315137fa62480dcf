"""One Server-Sent Events connection: replay, then live events, until it may no longer go on.

The subscription is registered before anything is replayed, so an event committed while the
replay runs arrives live if not replayed, and is sent once either way: the connection
remembers the ids it sent that may still come live (`SentIds`). Each event is one message:

    id: <event id>
    event: <type>
    data: <envelope JSON>

After `keepalive` seconds without a message a comment line (`: keep-alive`) keeps proxies
and clients from timing out. Every `recheck` seconds the stream checks again that its caller
may still watch (`still_allowed`: the token not ended, the account active, the membership
there); when not, or when its token expires, it ends with a comment saying why. A member's
removal (`member.removed`) ends it at once.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from taskhub.db import utcnow
from taskhub.live.hub import LiveHub, Subscription
from taskhub.live.replay import Replayed

logger = logging.getLogger("taskhub.live")

EVENT_STREAM = "text/event-stream"
KEEPALIVE = b": keep-alive\n\n"
# Events written in one chunk when a connection has several waiting.
CHUNK_EVENTS = 200
# Ids remembered besides those a replay adds (a republished event arrives twice).
RECENT_IDS = 1024


def comment(text: str) -> bytes:
    """An SSE comment line, which clients ignore."""
    return b": " + text.replace("\n", " ").encode() + b"\n\n"


class SentIds:
    """The ids this connection sent that might arrive again, the oldest forgotten first."""

    def __init__(self, capacity: int = RECENT_IDS) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> None:
        """Remember an id sent."""
        self._ids[event_id] = None
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response that ends its subscription however it ends (even when
    the client is gone before the first byte)."""

    media_type = EVENT_STREAM

    def __init__(self, content: AsyncIterator[bytes], *, on_close: Callable[[], None]) -> None:
        super().__init__(content, headers={"X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def event_stream(
    *,
    hub: LiveHub,
    subscription: Subscription,
    replayed: AsyncIterator[list[Replayed]] | None,
    still_allowed: Callable[[], Awaitable[bool]],
    expires_at: datetime,
    keepalive: float,
    recheck: float,
) -> AsyncIterator[bytes]:
    """The bytes of one stream; see the module docstring."""
    sent = SentIds()
    try:
        # The first bytes: the client knows the stream is open before any event.
        yield comment("connected")
        if replayed is not None:
            async for page in replayed:
                messages = []
                for item in page:
                    if item.event.id in sent:
                        continue
                    if item.may_arrive_live:
                        sent.capacity += 1
                        sent.add(item.event.id)
                    messages.append(item.event.message)
                if messages:
                    yield b"".join(messages)
        async for chunk in _live(subscription, sent, still_allowed, expires_at, keepalive, recheck):
            yield chunk
    except Exception:  # the connection ends; the client resumes with Last-Event-ID
        logger.exception("live: a stream failed")
        yield comment("stream ended: server error")
    finally:
        hub.unsubscribe(subscription)


async def _live(
    subscription: Subscription,
    sent: SentIds,
    still_allowed: Callable[[], Awaitable[bool]],
    expires_at: datetime,
    keepalive: float,
    recheck: float,
) -> AsyncIterator[bytes]:
    now = time.monotonic()
    expires = now + (expires_at - utcnow()).total_seconds()
    next_check, quiet_until = now + recheck, now + keepalive
    while True:
        now = time.monotonic()
        await subscription.wait(min(next_check, quiet_until, expires) - now)
        events = subscription.take(CHUNK_EVENTS)
        fresh = [event for event in events if event.id not in sent]
        for event in fresh:
            sent.add(event.id)
        now = time.monotonic()
        if fresh:
            yield b"".join(event.message for event in fresh)
            quiet_until = now + keepalive
        if subscription.ended is not None and not events:
            yield comment(f"stream ended: {subscription.ended}")
            return
        if now >= expires:
            yield comment("stream ended: the token expired")
            return
        if now >= next_check:
            if not await _allowed(still_allowed):
                yield comment("stream ended: no longer allowed")
                return
            next_check = time.monotonic() + recheck
        if now >= quiet_until:
            yield KEEPALIVE
            quiet_until = now + keepalive


async def _allowed(still_allowed: Callable[[], Awaitable[bool]]) -> bool:
    """The caller's access, checked again; a check that cannot be made (the database down)
    ends the stream too: access that cannot be confirmed is not assumed."""
    try:
        return await still_allowed()
    except Exception as exc:
        logger.warning("live: cannot check a stream's access (%r); ending it", exc)
        return False
