"""Opening a live stream: subscribe first, then find where to resume, then stream."""

from __future__ import annotations

from uuid import UUID

from fastapi import Request

from taskhub.live.access import Watcher, still_allowed
from taskhub.live.hub import LiveHub
from taskhub.live.replay import resume_after, visible_replay
from taskhub.live.stream import EventStreamResponse, event_stream
from taskhub.live.visibility import Topic


async def open_stream(
    request: Request, *, watcher: Watcher, topic: Topic, last_event_id: UUID | None
) -> EventStreamResponse:
    """The stream of `topic` for `watcher`, resuming after `last_event_id` if given.

    The subscription comes first, so that nothing published from then on is missed; the
    replay (of what was committed before) follows in the stream itself. A dependency down
    before the stream starts is a 503.
    """
    state = request.app.state
    settings = state.settings
    hub: LiveHub = state.live
    subscription = await hub.subscribe(topic)
    try:
        replayed = None
        if last_event_id is not None:
            db = state.database.pooled
            after = await resume_after(db, last_event_id=last_event_id)
            replayed = visible_replay(
                db, topic=topic, after=after, window=settings.live_replay_window
            )

        async def allowed() -> bool:
            return await still_allowed(request, watcher, topic)

        body = event_stream(
            hub=hub,
            subscription=subscription,
            replayed=replayed,
            still_allowed=allowed,
            expires_at=watcher.token.expires_at,
            keepalive=settings.live_keepalive_seconds,
            recheck=settings.live_recheck_seconds,
        )
    except BaseException:
        hub.unsubscribe(subscription)
        raise
    return EventStreamResponse(body, on_close=lambda: hub.unsubscribe(subscription))
