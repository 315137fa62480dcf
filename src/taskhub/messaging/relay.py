"""The relay: moves unpublished outbox rows onto the Redis stream and marks them published.

Several relays may run at once (one per worker process). On PostgreSQL each batch is
claimed with `FOR UPDATE SKIP LOCKED`, so relays never publish the same rows concurrently;
the rows stay locked until the XADDs succeeded and `published_at` is committed. A crash
between the XADD and the commit publishes the batch again, which the idempotent handlers
absorb. The relay wakes on PostgreSQL `LISTEN` (writers NOTIFY once their transaction
committed: `outbox.Announcer`), or after `poll_seconds` at the latest.

Before publishing, the partition is bound to this database and its group exists
(`binding.StreamBinder`; a lost group gets the events it may have held published again).
Backpressure: the relay publishes only while the group's lag (entries not yet delivered) is
below `maxlen` (STREAM_MAXLEN), and never more than the room left; the outbox keeps the rest.
Several relays may overshoot by one batch each. Retention: about once a second the relay
trims the entries every group has acknowledged (`streams.trim`), and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import Integer, bindparam, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver import DriverStatement, Row, connection
from taskhub.messaging.backoff import Backoff
from taskhub.messaging.binding import DeploymentMismatch, StreamBinder
from taskhub.messaging.envelope import envelope_json
from taskhub.messaging.outbox import NOTIFY_CHANNEL
from taskhub.messaging.signal import WakeSignal
from taskhub.messaging.streams import (
    ENVELOPE_FIELD,
    GROUP,
    StreamKeys,
    StreamState,
    stream_state,
    trim,
)
from taskhub.models import OutboxEvent
from taskhub.observability import OUTBOX_PUBLISHED, RELAY_HELD_BACK

logger = logging.getLogger("taskhub.events.relay")

_outbox = table_of(OutboxEvent)
# Claims a batch and marks it published in one statement. The rows stay locked (and the
# mark uncommitted) until the XADDs succeeded; concurrent relays skip them.
CLAIM_BATCH = DriverStatement(
    update(_outbox)
    .where(
        _outbox.c.id.in_(
            select(_outbox.c.id)
            .where(_outbox.c.published_at.is_(None))
            .order_by(_outbox.c.id)
            .limit(bindparam("batch", type_=Integer()))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(published_at=bindparam("now", type_=UTCDateTime()))
    .returning(
        _outbox.c.id,
        _outbox.c.event_id,
        _outbox.c.type,
        _outbox.c.version,
        _outbox.c.payload,
        _outbox.c.request_id,
        _outbox.c.occurred_at,
    )
)


class Relay:
    """Publish the outbox to the stream until `stop()`."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        keys: StreamKeys,
        database_url: str | None,
        batch_size: int,
        poll_seconds: float,
        maxlen: int,
        binder: StreamBinder | None = None,
        state_every: float = 1.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._engine: AsyncEngine = sessionmaker.kw["bind"]
        self._redis = redis
        self._keys = keys
        self._database_url = database_url
        self._batch = batch_size
        self._poll = poll_seconds
        self._maxlen = maxlen
        self._binder = binder or StreamBinder(redis=redis, keys=keys, sessionmaker=sessionmaker)
        self._signal = WakeSignal()
        self._stopping = False
        self._listener: Any = None
        self._bound = False
        # The last stream state read, when, and how many entries were added since: their
        # sum bounds the group's lag from above (consumers only make it smaller).
        self._state_every = state_every
        self._state: StreamState | None = None
        self._state_at = 0.0
        self._added = 0
        self._next_trim = 0.0
        self._room_limited = False
        RELAY_HELD_BACK.labels(keys.stream).set(0)

    def stop(self) -> None:
        """Finish the current batch, then return from `run`."""
        self._stopping = True
        self._signal.wake()

    def wake(self) -> None:
        """Publish now (an in-process hint; NOTIFY does this across processes)."""
        self._signal.wake()

    async def run(self) -> None:
        """Publish batches until stopped; retries with backoff while a dependency is down.

        Raises DeploymentMismatch: the stream belongs to another database.
        """
        backoff = Backoff(base=0.05, cap=2.0)
        try:
            while not self._stopping:
                await self._ensure_listener()
                try:
                    published = await self.publish_batch()
                    await self._trim_if_due()
                except (asyncio.CancelledError, DeploymentMismatch):
                    raise
                except Exception as exc:  # Redis or the database down: retry, never die
                    self._bound = False
                    self._state = None
                    delay = backoff.next()
                    logger.warning("relay: publish failed (%r); retrying in %.2fs", exc, delay)
                    await self._signal.wait(delay)
                    continue
                backoff.reset()
                if self._room_limited:
                    # Held back by the group's lag: look again soon, the consumers drain it.
                    await self._signal.wait(min(self._poll, 0.05))
                elif published < self._batch:
                    await self._signal.wait(self._poll)
        finally:
            await self._close_listener()

    async def publish_batch(self) -> int:
        """Publish up to one batch of unpublished rows (less when the group lags); returns
        how many."""
        if not self._bound:
            # The group must exist before the first XADD, or a group created later at "$"
            # would skip those entries (and Redis may have restarted empty).
            await self._binder.bind()
            self._bound = True
            self._state = None
        room = await self._room()
        self._room_limited = room < self._batch
        RELAY_HELD_BACK.labels(self._keys.stream).set(int(room <= 0))
        if room <= 0:
            return 0
        params = {"batch": min(self._batch, room), "now": utcnow()}
        # BEGIN, one UPDATE ... RETURNING, the XADDs, COMMIT.
        async with connection(self._engine, transaction=True) as lent:
            rows = await lent.run(CLAIM_BATCH, **params)
            await self._xadd(rows)
        self._added += len(rows)
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def _room(self) -> int:
        """How many entries may be added before the group's lag reaches `maxlen`."""
        stale = self._state is None or time.monotonic() - self._state_at >= self._state_every
        if stale or self._lag_bound() + self._batch > self._maxlen:
            await self._read_state()
        return self._maxlen - self._lag_bound()

    def _lag_bound(self) -> int:
        group = self._state.group(GROUP) if self._state is not None else None
        return (group.lag if group is not None else 0) + self._added

    async def _read_state(self) -> StreamState:
        state = await stream_state(self._redis, self._keys)
        if state.group(GROUP) is None:
            # Redis lost the group since we bound it (restarted empty, or flushed).
            await self._binder.bind()
            state = await stream_state(self._redis, self._keys)
        self._state, self._state_at, self._added = state, time.monotonic(), 0
        return state

    async def _trim_if_due(self) -> None:
        """About once a second: drop the entries every group has acknowledged."""
        now = time.monotonic()
        if now < self._next_trim:
            return
        self._next_trim = now + self._state_every
        state = self._state
        if state is None or now - self._state_at >= self._state_every:
            state = await self._read_state()
        await trim(self._redis, self._keys, state)

    async def _xadd(self, rows: Sequence[Row]) -> None:
        """Append the claimed rows to the stream, in outbox order (inside the claim's
        transaction: if this fails, the rows stay unpublished)."""
        if not rows:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for row in sorted(rows, key=lambda row: int(row["id"])):
                envelope = envelope_json(
                    event_id=row["event_id"],
                    type=row["type"],
                    occurred_at=row["occurred_at"],
                    version=row["version"],
                    payload=row["payload"],
                    request_id=row["request_id"],
                )
                # No MAXLEN: only `trim` removes entries, once every group acknowledged them.
                pipe.xadd(self._keys.stream, {ENVELOPE_FIELD: envelope})
            await pipe.execute()

    async def _ensure_listener(self) -> None:
        """LISTEN for outbox inserts on PostgreSQL; best effort, the poll covers failures.

        `database_url` is `Settings.listen_url`: PostgreSQL itself, since a LISTEN through
        PgBouncer's transaction pooling would hear nothing. None (DB_PGBOUNCER without
        DATABASE_LISTEN_URL): no LISTEN, the relay polls every `poll_seconds`.
        """
        if self._database_url is None:
            return
        url = make_url(self._database_url)
        if not url.drivername.startswith("postgresql"):
            return
        if self._listener is not None and not self._listener.is_closed():
            return
        await self._close_listener()
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            async with asyncio.timeout(5):
                # Named, so that operators see the LISTEN connections in pg_stat_activity.
                conn = await asyncpg.connect(
                    dsn, server_settings={"application_name": "taskhub-relay"}
                )
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except Exception as exc:  # the poll fallback keeps the relay going
            logger.warning("relay: LISTEN unavailable (%r); polling", exc)
            return
        self._listener = conn
        self._signal.wake()  # rows may have arrived while not listening

    def _on_notify(self, *_args: object) -> None:
        self._signal.wake()

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
