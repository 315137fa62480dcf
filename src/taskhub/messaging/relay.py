"""The relay: moves unpublished outbox rows onto the partitions' streams, marks them published.

Several relays may run at once (one per worker process). They take turns: on PostgreSQL each
batch is claimed and published under a transaction-scoped advisory lock (`RELAY_LOCK`), so
batches reach the streams in outbox order and the events of one order keep their order in
their partition. The claim itself also skips locked rows (`FOR UPDATE SKIP LOCKED`). The
rows stay locked until the XADDs succeeded (and, on a cluster, reached a replica:
`streams.publish`) and `published_at` is committed. A crash between the XADD and the commit
publishes the batch again, which the idempotent handlers absorb. The relay wakes on
PostgreSQL `LISTEN` (writers NOTIFY once their transaction committed: `outbox.Announcer`),
or after `poll_seconds` at the latest.

Each event goes to its partition (`streams.partition_index`: its order id, or project id,
among STREAM_PARTITIONS). Before publishing, every partition is bound to this database and
its group exists (`binding.StreamBinder`; a lost group gets the events it may have held
published again). While the relays' pause flag is set (`taskhub streams drain`) nothing is
published; the flag is read under the advisory lock, so once `wait_for_relays` returned no
relay publishes any more. Backpressure: the relay publishes only while every partition's
group lags (entries not yet delivered) less than `maxlen` (STREAM_MAXLEN), and never more
than the room left in the most lagging one; the outbox keeps the rest. Several relays may
overshoot by one batch each. Retention: about once a second the relay trims, in every
partition, the entries every group has acknowledged (`streams.trim`), and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson
from opentelemetry.trace import Span, SpanKind
from sqlalchemy import Integer, bindparam, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from taskhub import tracing
from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver import DriverStatement, Row, claimed_once, connection
from taskhub.messaging.backoff import Backoff
from taskhub.messaging.binding import DeploymentMismatch, StreamBinder
from taskhub.messaging.envelope import envelope_json
from taskhub.messaging.outbox import NOTIFY_CHANNEL
from taskhub.messaging.signal import WakeSignal
from taskhub.messaging.streams import (
    ENVELOPE_FIELD,
    GROUP,
    ControlKeys,
    Fields,
    StreamKeys,
    StreamState,
    partition_index,
    publish,
    stream_state,
    trim,
)
from taskhub.models import OutboxEvent
from taskhub.observability import OUTBOX_PUBLISHED, RELAY_HELD_BACK
from taskhub.redis_client import RedisClient

logger = logging.getLogger("taskhub.events.relay")

_outbox = table_of(OutboxEvent)
# Claims a batch and marks it published in one statement. The rows stay locked (and the
# mark uncommitted) until the XADDs succeeded; concurrent relays skip them.
CLAIM_BATCH = DriverStatement(
    update(_outbox)
    .where(
        _outbox.c.id.in_(
            claimed_once(
                select(_outbox.c.id)
                .where(_outbox.c.published_at.is_(None))
                .order_by(_outbox.c.id)
                .limit(bindparam("batch", type_=Integer()))
                .with_for_update(skip_locked=True),
                "unpublished",
            )
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
        _outbox.c.trace_context,
        _outbox.c.occurred_at,
    )
)
# The relays' turn (PostgreSQL): a transaction-scoped advisory lock, so batches are
# published one after the other, in outbox order. The key is arbitrary but fixed.
RELAY_LOCK = 0x7461736B_6875620A
TAKE_TURN = DriverStatement(select(func.pg_advisory_xact_lock(bindparam("key"))))


async def wait_for_relays(engine: AsyncEngine) -> None:
    """Return once no relay is in the middle of a batch (PostgreSQL; see the module
    docstring). A relay that takes its turn afterwards reads the pause flag first."""
    if engine.dialect.name != "postgresql":
        return
    async with connection(engine, transaction=True) as lent:
        await lent.run(TAKE_TURN, key=RELAY_LOCK)


class Relay:
    """Publish the outbox to the partitions' streams until `stop()`."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: RedisClient,
        partitions: Sequence[StreamKeys],
        database_url: str | None,
        batch_size: int,
        poll_seconds: float,
        maxlen: int,
        binders: Mapping[str, StreamBinder] | None = None,
        state_every: float = 1.0,
    ) -> None:
        if not partitions:
            raise ValueError("a relay needs at least one partition")
        self._sessionmaker = sessionmaker
        self._engine: AsyncEngine = sessionmaker.kw["bind"]
        self._redis = redis
        self._partitions = list(partitions)
        self._control = ControlKeys(self._partitions[0].prefix)
        self._database_url = database_url
        self._batch = batch_size
        self._poll = poll_seconds
        self._maxlen = maxlen
        binders = binders or {}
        self._binders = [
            binders.get(keys.partition)
            or StreamBinder(redis=redis, keys=keys, sessionmaker=sessionmaker)
            for keys in self._partitions
        ]
        self._take_turns = self._engine.dialect.name == "postgresql"
        self._signal = WakeSignal()
        self._stopping = False
        self._listener: Any = None
        self._bound = False
        # The last state read of each partition's stream, when, and how many entries were
        # added to each since: their sum bounds the group's lag from above (consumers only
        # make it smaller).
        self._state_every = state_every
        self._states: list[StreamState] | None = None
        self._state_at = 0.0
        self._added = [0] * len(self._partitions)
        self._next_trim = 0.0
        self._room_limited = False
        self.paused = False
        for keys in self._partitions:
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

        Raises DeploymentMismatch: a stream belongs to another database.
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
                    self._states = None
                    delay = backoff.next()
                    logger.warning("relay: publish failed (%r); retrying in %.2fs", exc, delay)
                    await self._signal.wait(delay)
                    continue
                backoff.reset()
                if self.paused:
                    await self._signal.wait(self._poll)
                elif self._room_limited:
                    # Held back by the group's lag: look again soon, the consumers drain it.
                    await self._signal.wait(min(self._poll, 0.05))
                elif published < self._batch:
                    await self._signal.wait(self._poll)
        finally:
            await self._close_listener()

    async def publish_batch(self) -> int:
        """Publish up to one batch of unpublished rows (less when a group lags, none while
        paused); returns how many."""
        if not self._bound:
            # A group must exist before the first XADD, or a group created later at "$"
            # would skip those entries (and Redis may have restarted empty).
            for binder in self._binders:
                await binder.bind()
            self._bound = True
            self._states = None
        room = await self._room()
        self._room_limited = room < self._batch
        if room <= 0:
            return 0
        params = {"batch": min(self._batch, room), "now": utcnow()}
        # BEGIN, (our turn), the pause flag, one UPDATE ... RETURNING, the XADDs, COMMIT.
        async with connection(self._engine, transaction=True) as lent:
            if self._take_turns:
                await lent.run(TAKE_TURN, key=RELAY_LOCK)
            self.paused = bool(await self._redis.exists(self._control.relay_paused))
            if self.paused:
                return 0
            rows = await lent.run(CLAIM_BATCH, **params)
            await self._xadd(rows)
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def _room(self) -> int:
        """How many entries may be added before a partition's group lag reaches `maxlen`."""
        stale = self._states is None or time.monotonic() - self._state_at >= self._state_every
        if stale or self._lag_bound() + self._batch > self._maxlen:
            await self._read_state()
        return self._maxlen - self._lag_bound()

    def _lag_bound(self) -> int:
        if self._states is None:
            return max(self._added)
        bounds = []
        for state, added, keys in zip(self._states, self._added, self._partitions, strict=True):
            group = state.group(GROUP)
            bound = (group.lag if group is not None else 0) + added
            RELAY_HELD_BACK.labels(keys.stream).set(int(bound >= self._maxlen))
            bounds.append(bound)
        return max(bounds)

    async def _read_state(self) -> list[StreamState]:
        states = list(
            await asyncio.gather(*(stream_state(self._redis, keys) for keys in self._partitions))
        )
        for index, state in enumerate(states):
            if state.group(GROUP) is None:
                # Redis lost the group since we bound it (restarted empty, or flushed).
                await self._binders[index].bind()
                states[index] = await stream_state(self._redis, self._partitions[index])
        self._states, self._state_at = states, time.monotonic()
        self._added = [0] * len(self._partitions)
        return states

    async def _trim_if_due(self) -> None:
        """About once a second: drop the entries every group has acknowledged."""
        now = time.monotonic()
        if now < self._next_trim:
            return
        self._next_trim = now + self._state_every
        states = self._states
        if states is None or now - self._state_at >= self._state_every:
            states = await self._read_state()
        await asyncio.gather(
            *(
                trim(self._redis, keys, state)
                for keys, state in zip(self._partitions, states, strict=True)
            )
        )

    async def _xadd(self, rows: Sequence[Row]) -> None:
        """Append the claimed rows to their partitions' streams, in outbox order (inside the
        claim's transaction: if this fails, the rows stay unpublished)."""
        if not rows:
            return
        count = len(self._partitions)
        traced = tracing.enabled()
        spans: list[Span] = []
        entries: list[tuple[StreamKeys, Fields]] = []
        for row in sorted(rows, key=lambda row: int(row["id"])):
            payload = row["payload"]
            if isinstance(payload, str):
                payload = orjson.loads(payload)
            index = partition_index(payload, count)
            keys = self._partitions[index]
            fields: Fields = {
                ENVELOPE_FIELD: envelope_json(
                    event_id=row["event_id"],
                    type=row["type"],
                    occurred_at=row["occurred_at"],
                    version=row["version"],
                    payload=payload,
                    request_id=row["request_id"],
                )
            }
            carrier = tracing.decode(row["trace_context"])
            if traced and carrier:
                span = tracing.start_span(
                    f"publish {row['type']}",
                    parent=carrier,
                    kind=SpanKind.PRODUCER,
                    attributes={
                        "messaging.system": "redis",
                        "messaging.operation.type": "send",
                        "messaging.destination.name": keys.stream,
                        "messaging.message.id": str(row["event_id"]),
                    },
                )
                spans.append(span)
                carrier = tracing.carrier_of(span)
            fields.update(tracing.entry_fields(carrier))
            entries.append((keys, fields))
            self._added[index] += 1
        try:
            await publish(self._redis, entries)
        except BaseException as exc:
            for span in spans:
                tracing.end_span(span, exc)
            raise
        for span in spans:
            span.end()

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
