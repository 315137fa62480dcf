"""Write events into the outbox, in the caller's transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, ColumnElement, Insert, Select, bindparam, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver import DriverStatement, Executor, in_session
from taskhub.messaging.envelope import Envelope, envelope_of
from taskhub.messaging.signal import WakeSignal
from taskhub.models import OutboxEvent
from taskhub.observability import request_id_var
from taskhub.tracing import current_carrier

logger = logging.getLogger("taskhub.events.outbox")

_outbox = table_of(OutboxEvent)
# The columns every event row gets from `event_values` (the payload comes separately).
_EVENT_COLUMNS = ("event_id", "type", "version", "request_id", "trace_context", "occurred_at")
INSERT_EVENT = DriverStatement(
    insert(_outbox)
    .values(
        event_id=bindparam("event_id"),
        type=bindparam("type"),
        version=bindparam("version"),
        payload=bindparam("payload", type_=JSON()),
        request_id=bindparam("request_id"),
        trace_context=bindparam("trace_context"),
        occurred_at=bindparam("occurred_at", type_=UTCDateTime()),
        attempts=0,
    )
    .returning(_outbox.c.id)
)


def new_event_id() -> str:
    """A fresh event id (a UUID), for a change that records it beside its event (`emit`)."""
    return str(uuid.uuid4())


def event_values(
    *,
    type: str,  # noqa: A002
    version: int = 1,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The columns of a new event but its payload: its id (fresh unless given), this
    request's id and trace context (taskhub.tracing), now."""
    return {
        "event_id": event_id or new_event_id(),
        "type": type,
        "version": version,
        "request_id": request_id_var.get(),
        "trace_context": current_carrier(),
        "occurred_at": utcnow(),
    }


def insert_selected(source: Select[Any], *, payload: ColumnElement[Any]) -> Insert:
    """An INSERT of one event per row of `source`, for a statement that writes the change
    and its events together (a data-modifying CTE). Bind `event_params(...)` with it.

    `payload` is an expression over `source`'s columns (e.g. the new row's id as JSON).
    """
    params = [bindparam(f"event_{name}", type_=_outbox.c[name].type) for name in _EVENT_COLUMNS]
    rows = source.with_only_columns(*params, payload, literal(0), maintain_column_froms=True)
    return insert(_outbox).from_select([*_EVENT_COLUMNS, "payload", "attempts"], rows)


def event_params(*, type: str, version: int = 1) -> dict[str, Any]:  # noqa: A002
    """The parameters `insert_selected` binds, for one event of `type`."""
    return {
        f"event_{name}": value for name, value in event_values(type=type, version=version).items()
    }


async def emit(
    target: Executor | AsyncSession,
    *,
    type: str,  # noqa: A002
    payload: dict[str, Any],
    version: int = 1,
    event_id: str | None = None,
) -> int:
    """Record an event; it is published only if the surrounding transaction commits.

    `event_id` is the id the change recorded beside it (`new_event_id`), if it records one
    (a task's activity rows). Returns the outbox row id. After the commit the writer wakes
    the in-process dispatcher (embedded shape) and, on PostgreSQL, the relays of every
    process (`Announcer`).
    """
    db = _executor(target)
    values = event_values(type=type, version=version, event_id=event_id)
    rows = await db.run(INSERT_EVENT, **values, payload=payload)
    db.events_written()
    return int(rows[0]["id"])


async def emit_many(
    target: Executor | AsyncSession,
    events: Sequence[tuple[str, dict[str, Any]]],
    *,
    event_ids: Sequence[str] | None = None,
) -> None:
    """Record several events (type, payload) at once, in the surrounding transaction;
    `event_ids`, if given, are their ids (as `emit`'s `event_id`), one per event."""
    if not events:
        return
    if event_ids is not None and len(event_ids) != len(events):
        raise ValueError("one event id per event")
    ids: Sequence[str | None] = event_ids if event_ids is not None else [None] * len(events)
    db = _executor(target)
    rows = [
        {**event_values(type=type_, event_id=event_id), "payload": payload}
        for (type_, payload), event_id in zip(events, ids, strict=True)
    ]
    await db.run_many(INSERT_EVENT, rows)
    db.events_written()


def _executor(target: Executor | AsyncSession) -> Executor:
    return in_session(target) if isinstance(target, AsyncSession) else target


NOTIFY_CHANNEL = "taskhub_outbox"
NOTIFY_RELAYS = DriverStatement(select(func.pg_notify(NOTIFY_CHANNEL, "")))


class Announcer:
    """Says that events were committed: wakes this process's dispatcher and every relay.

    On PostgreSQL the relays LISTEN. The NOTIFY goes in a statement of its own, after the
    writing transaction committed (inside it, PostgreSQL would serialize the commits of all
    writers on the notification queue's lock), from a task of its own, so that no response
    waits for it. NOTIFYs are coalesced: while one is in flight, the commits made meanwhile
    are covered by one more sent after it. So every commit is followed by a NOTIFY that
    starts after it, and under load there are far fewer NOTIFYs than commits (each is a
    transaction of its own, whose commit PostgreSQL flushes). Best effort: the relays also
    poll, and the events are committed whatever happens here.
    """

    def __init__(self, engine: AsyncEngine, signal: WakeSignal) -> None:
        self._engine = engine
        self._signal = signal
        self._notifies = engine.dialect.name == "postgresql"
        self._pending = False
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def announce(self) -> None:
        """Call once the transaction that wrote events has committed."""
        self._signal.wake()
        if not self._notifies:
            return
        self._pending = True
        if self._task is None:
            self._task = asyncio.create_task(self._send(), name="outbox-notify")

    async def _send(self) -> None:
        try:
            while self._pending:
                self._pending = False
                try:
                    await NOTIFY_RELAYS.fetch(self._engine)
                    self.sent += 1
                except Exception as exc:  # noqa: BLE001 - the poll delivers the events anyway
                    logger.warning("could not notify the relays (%r); they will poll", exc)
        finally:
            self._task = None

    async def close(self) -> None:
        """Let the NOTIFY in flight finish (before the engine goes away)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5)


def to_envelope(row: OutboxEvent) -> Envelope:
    """The envelope of an outbox row."""
    return envelope_of(
        event_id=row.event_id,
        type=row.type,
        occurred_at=row.occurred_at,
        version=row.version,
        payload=row.payload,
        request_id=row.request_id,
    )


async def backlog(session: AsyncSession) -> int:
    """How many events wait to be published."""
    stmt = select(func.count()).where(OutboxEvent.published_at.is_(None))
    return int(await session.scalar(stmt) or 0)
