"""Replay after `Last-Event-ID`: the events a reconnecting stream missed, from the outbox.

The outbox keeps published events (messaging.retention), in commit order by id. A stream that
resumes after event E gets the events of its topic with a larger outbox id than E's, written
within LIVE_REPLAY_WINDOW, in id order, a page at a time. E unknown (never seen, or purged
since): the whole window, since nothing tells what the client has.

Replay includes events committed but not yet on the stream; the stream's subscription was
registered first, so those also arrive live, and the connection drops the second copy
(`live.stream`). Each replayed event says whether it may still arrive live: not yet
published, or published so recently that the fan-out may not have read it yet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Integer, bindparam, or_, select

from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver import DriverStatement, Executor
from taskhub.live.visibility import Topic, visible
from taskhub.messaging.fanout import PublishedEvent, event_of
from taskhub.models import OutboxEvent

PAGE = 500
# A published event this recent may still be on its way to the fan-out's reader.
STILL_ARRIVING = timedelta(seconds=60)

_outbox = table_of(OutboxEvent)
FIND_EVENT = DriverStatement(
    select(_outbox.c.id).where(_outbox.c.event_id == bindparam("event_id"))
)


def _page_of(prefixes: tuple[str, ...]) -> DriverStatement:
    return DriverStatement(
        select(
            _outbox.c.id,
            _outbox.c.event_id,
            _outbox.c.type,
            _outbox.c.version,
            _outbox.c.payload,
            _outbox.c.request_id,
            _outbox.c.occurred_at,
            _outbox.c.published_at,
        )
        .where(
            _outbox.c.id > bindparam("after", type_=Integer()),
            _outbox.c.occurred_at >= bindparam("since", type_=UTCDateTime()),
            or_(*(_outbox.c.type.startswith(prefix, autoescape=True) for prefix in prefixes)),
        )
        .order_by(_outbox.c.id)
        .limit(bindparam("limit", type_=Integer()))
    )


_PAGES: dict[tuple[str, ...], DriverStatement] = {}


@dataclass(frozen=True, slots=True)
class Replayed:
    """An event from the outbox, and whether it may also still arrive live."""

    event: PublishedEvent
    may_arrive_live: bool


async def resume_after(db: Executor, *, last_event_id: UUID) -> int:
    """The outbox id to resume after: the event's, or 0 (the whole window) when unknown."""
    rows = await db.run(FIND_EVENT, event_id=str(last_event_id))
    return int(rows[0]["id"]) if rows else 0


async def replay(
    db: Executor, *, after: int, prefixes: tuple[str, ...], window: timedelta
) -> AsyncIterator[list[Replayed]]:
    """Pages of the events after outbox id `after` whose type starts with one of `prefixes`,
    written within `window`, in outbox order."""
    statement = _PAGES.get(prefixes)
    if statement is None:
        statement = _PAGES[prefixes] = _page_of(prefixes)
    now = utcnow()
    since, recent = now - window, now - STILL_ARRIVING
    while True:
        rows = await db.run(statement, after=after, since=since, limit=PAGE)
        if not rows:
            return
        yield [
            Replayed(
                event=event_of(
                    event_id=row["event_id"],
                    type=row["type"],
                    occurred_at=row["occurred_at"],
                    version=row["version"],
                    payload=row["payload"],
                    request_id=row["request_id"],
                ),
                may_arrive_live=_may_arrive_live(row["published_at"], recent),
            )
            for row in rows
        ]
        if len(rows) < PAGE:
            return
        after = int(rows[-1]["id"])


def _may_arrive_live(published_at: datetime | None, recent: datetime) -> bool:
    return published_at is None or published_at >= recent


async def visible_replay(
    db: Executor, *, topic: Topic, after: int, window: timedelta
) -> AsyncIterator[list[Replayed]]:
    """`replay`, keeping the events the topic accepts (`visibility.visible`)."""
    async for page in replay(db, after=after, prefixes=topic.prefixes, window=window):
        shown = {event.id for event in await visible(topic, [item.event for item in page], db)}
        yield [item for item in page if item.event.id in shown]
