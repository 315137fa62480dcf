"""The delivery loop: POST pending deliveries to their endpoints, signed, and record how it went.

It runs in every `taskhub worker` (and in the API process in the embedded shape). Deliveries
are database rows, so every process shares them and they survive restarts:

- **Claim.** A process takes due deliveries of active endpoints, once half its slots are free
  (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serializes writers), and leases them:
  `next_attempt_at` moves to the end of the lease (twice the attempt's timeout, at least the
  timeout and 5 s). A process that dies mid-attempt leaves the lease to run out, and another
  process tries again: at least once, so receivers deduplicate by `webhook-id`.
- **Attempt.** `sender.Sender`: checked again, to the checked address, signed, no redirects,
  a bounded read. A 2xx within `WEBHOOK_TIMEOUT_SECONDS` succeeds.
- **Record.** Outcomes that finish while one is being written are written together, in one
  transaction. Guarded by the attempt number it claimed, so a late writer changes nothing. A
  failure is retried after the next delay of `WEBHOOK_RETRY_SCHEDULE` (± 20 %), and is
  `failed` after the last; `FAILURES_TO_DISABLE` failed deliveries in a row disable the
  endpoint.
- **Our database down** is never a failed attempt (messaging.faults): claiming waits for the
  database gate to open, and an outcome that cannot be recorded is recorded once the database
  answers again (or, if the lease ran out meanwhile, the delivery is simply attempted again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.config import Settings
from taskhub.db import UTCDateTime, table_of, utcnow
from taskhub.driver import DriverStatement, claimed_once, in_list, in_session
from taskhub.messaging.backoff import Backoff
from taskhub.messaging.faults import DatabaseGate, Fault
from taskhub.messaging.metrics import Refresh
from taskhub.messaging.signal import WakeSignal
from taskhub.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from taskhub.observability import (
    WEBHOOK_DELIVERIES,
    WEBHOOK_DELIVERY_LATENCY,
    WEBHOOK_ENDPOINTS_DISABLED,
    WEBHOOK_RETRY_QUEUE,
)
from taskhub.webhooks.fanout import QUEUED
from taskhub.webhooks.sender import Attempt, Sender
from taskhub.webhooks.service import disable_endpoint

logger = logging.getLogger("taskhub.webhooks")

FAILURES_TO_DISABLE = 10
JITTER = 0.2
# The longest a loop waits before looking for due deliveries again (other processes queue
# deliveries too, and a lease may run out).
POLL_SECONDS = 1.0
# A lease outlasts the attempt it covers (bounded by the timeout) by at least this much.
LEASE_MARGIN_SECONDS = 5.0

_d, _e = table_of(WebhookDelivery), table_of(WebhookEndpoint)
_PENDING = DeliveryState.PENDING.value
_due = (
    select(_d.c.id)
    .select_from(_d.join(_e, _e.c.id == _d.c.endpoint_id))
    .where(
        _d.c.state == _PENDING,
        _d.c.next_attempt_at <= bindparam("now", type_=UTCDateTime()),
        _e.c.active,
    )
    .order_by(_d.c.next_attempt_at, _d.c.id)
    .limit(bindparam("batch", type_=Integer()))
    .with_for_update(of=_d, skip_locked=True)
)
CLAIM = DriverStatement(
    update(_d)
    .where(_d.c.id.in_(claimed_once(_due, "due")), _d.c.state == _PENDING)
    .values(next_attempt_at=bindparam("lease_until", type_=UTCDateTime()))
    .returning(_d.c.id, _d.c.endpoint_id, _d.c.event_id, _d.c.body, _d.c.attempt)
)
ENDPOINTS = DriverStatement(
    select(
        _e.c.id,
        _e.c.url,
        _e.c.secret,
        _e.c.previous_secret,
        _e.c.previous_secret_expires_at,
    ).where(in_list(_e.c.id, "endpoint_ids"))
)
NEXT_DUE = DriverStatement(
    select(func.min(_d.c.next_attempt_at).label("due"))
    .select_from(_d.join(_e, _e.c.id == _d.c.endpoint_id))
    .where(_d.c.state == _PENDING, _e.c.active)
)
_record = (
    update(_d)
    .where(
        _d.c.id == bindparam("delivery_id", type_=Integer()),
        _d.c.state == _PENDING,
        _d.c.attempt == bindparam("claimed_attempt", type_=Integer()),
    )
    .values(
        state=bindparam("state"),
        attempt=bindparam("claimed_attempt", type_=Integer()) + 1,
        status_code=bindparam("status_code", type_=Integer()),
        latency_ms=bindparam("latency_ms", type_=Integer()),
        error=bindparam("error"),
        next_attempt_at=bindparam("next_attempt_at", type_=UTCDateTime()),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
)
RECORD = DriverStatement(_record.returning(_d.c.endpoint_id))
# Successes, many at once (executemany: one pipelined round trip on PostgreSQL).
RECORD_SUCCESSES = DriverStatement(_record)
RESET_FAILURES = DriverStatement(
    update(_e)
    .where(in_list(_e.c.id, "endpoint_ids"), _e.c.consecutive_failures != 0)
    .values(consecutive_failures=0)
)
COUNT_FAILURE = DriverStatement(
    update(_e)
    .where(_e.c.id == bindparam("endpoint_id", type_=Integer()))
    .values(consecutive_failures=_e.c.consecutive_failures + 1)
    .returning(_e.c.consecutive_failures, _e.c.active)
)
RETRY_QUEUE = DriverStatement(
    select(func.count().label("n")).where(_d.c.state == _PENDING, _d.c.attempt > 0)
)
DISABLED_ENDPOINTS = DriverStatement(select(func.count().label("n")).where(_e.c.active.is_(False)))


def retry_delay(
    failed_attempts: int, schedule: Sequence[float], *, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt of a delivery that failed `failed_attempts` times
    (the schedule's delay for it, ± 20 %); None when the schedule is exhausted."""
    if failed_attempts < 1 or failed_attempts > len(schedule):
        return None
    factor = (rng or random).uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (jitter)
    return float(schedule[failed_attempts - 1] * factor)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this process leased, with what it needs to attempt it."""

    delivery_id: int
    endpoint_id: int
    event_id: str
    body: bytes
    attempt: int  # attempts made before this one
    url: str
    secrets: tuple[str, ...]
    lease_deadline: float  # time.monotonic() when the lease runs out


class DeliveryLoop:
    """Claims due deliveries and attempts them, `concurrency` at a time, until `stop()`."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        schedule: Sequence[float],
        timeout: float,
        concurrency: int,
        allow_private: bool,
        gate: DatabaseGate | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._schedule = tuple(schedule)
        self._timeout = timeout
        self._lease = timedelta(seconds=timeout + max(LEASE_MARGIN_SECONDS, timeout))
        self._concurrency = concurrency
        self._sender = Sender(timeout=timeout, allow_private=allow_private)
        self._own_gate = gate is None
        self._gate = gate or DatabaseGate(sessionmaker.kw["bind"])
        self._clock = clock
        self._signal = WakeSignal()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Claim once half the slots are free, not one slot at a time (a transaction each).
        self._claim_at = max(1, concurrency // 2)
        self._outcomes: list[tuple[Claimed, Attempt, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        gate: DatabaseGate | None = None,
    ) -> DeliveryLoop:
        """The loop as the settings configure it (WEBHOOK_*)."""
        return cls(
            sessionmaker=sessionmaker,
            schedule=settings.webhook_retry_schedule,
            timeout=settings.webhook_timeout_seconds,
            concurrency=settings.webhook_concurrency,
            allow_private=settings.webhook_allow_private,
            gate=gate,
        )

    def wake(self) -> None:
        """Look for due deliveries now (deliveries were queued in this process)."""
        self._signal.wake()

    def on_commit(self, info: Mapping[str, Any]) -> None:
        """A handler transaction committed: wake if it queued deliveries."""
        if info.get(QUEUED):
            self.wake()

    def stop(self) -> None:
        """Claim nothing more; `run` returns once the attempts in flight are recorded."""
        self._stopping = True
        self._signal.wake()

    async def run(self) -> None:
        """Loop until `stop()`."""
        backoff = Backoff(base=0.1, cap=5.0)
        try:
            while not self._stopping:
                if not self._gate.is_open:
                    await self._wait_for_gate()
                    continue
                free = self._concurrency - len(self._in_flight)
                if free < self._claim_at:
                    await self._signal.wait(POLL_SECONDS)
                    continue
                claimed: list[Claimed] = []
                try:
                    claimed = await self.claim(free)
                    wait = 0.0 if len(claimed) == free else await self._idle_wait()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if await self._gate.classify(exc) is Fault.DETERMINISTIC:
                        logger.exception("webhook deliveries: claiming failed")
                    await self._signal.wait(backoff.next())
                    continue
                backoff.reset()
                for delivery in claimed:
                    self._start(delivery)
                if wait > 0 and not self._stopping:
                    await self._signal.wait(wait)
        finally:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            await self._sender.aclose()
            if self._own_gate:
                await self._gate.aclose()

    def _start(self, delivery: Claimed) -> None:
        task = asyncio.create_task(self._attempt(delivery), name="webhook-delivery")
        self._in_flight.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._in_flight.discard(finished)
            self._signal.wake()  # a slot is free

        task.add_done_callback(done)

    async def claim(self, batch: int) -> list[Claimed]:
        """Lease up to `batch` due deliveries of active endpoints (see the module docstring)."""
        now = self._clock()
        async with self._sessionmaker() as session, session.begin():
            db = in_session(session)
            rows = await db.run(CLAIM, now=now, batch=batch, lease_until=now + self._lease)
            if not rows:
                return []
            endpoints = {
                int(row["id"]): row
                for row in await db.run(
                    ENDPOINTS, endpoint_ids=sorted({int(r["endpoint_id"]) for r in rows})
                )
            }
        deadline = time.monotonic() + self._lease.total_seconds()
        claimed = []
        for row in sorted(rows, key=lambda r: int(r["id"])):
            endpoint = endpoints[int(row["endpoint_id"])]
            secrets = [str(endpoint["secret"])]
            expires = endpoint["previous_secret_expires_at"]
            if endpoint["previous_secret"] and expires is not None and expires > now:
                secrets.append(str(endpoint["previous_secret"]))
            claimed.append(
                Claimed(
                    delivery_id=int(row["id"]),
                    endpoint_id=int(row["endpoint_id"]),
                    event_id=str(row["event_id"]),
                    body=str(row["body"]).encode(),
                    attempt=int(row["attempt"]),
                    url=str(endpoint["url"]),
                    secrets=tuple(secrets),
                    lease_deadline=deadline,
                )
            )
        return claimed

    async def _idle_wait(self) -> float:
        """Seconds until the next pending delivery is due, at most POLL_SECONDS."""
        async with self._sessionmaker() as session:
            rows = await in_session(session).run(NEXT_DUE)
        due: datetime | None = rows[0]["due"] if rows else None
        if due is None:
            return POLL_SECONDS
        seconds = (due - self._clock()).total_seconds()
        return min(POLL_SECONDS, max(0.005, seconds))

    async def _attempt(self, delivery: Claimed) -> None:
        attempt = await self._sender.send(
            url=delivery.url,
            secrets=delivery.secrets,
            msg_id=delivery.event_id,
            body=delivery.body,
        )
        WEBHOOK_DELIVERY_LATENCY.observe(attempt.latency_ms / 1000)
        backoff = Backoff(base=0.1, cap=2.0)
        while True:
            try:
                await self._record_soon(delivery, attempt)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                fault = await self._gate.classify(exc)
                if fault is Fault.DETERMINISTIC:
                    logger.exception("webhook delivery %s: recording failed", delivery.delivery_id)
                    return
                logger.info(
                    "webhook delivery %s: the database is unavailable (%r); its outcome is "
                    "recorded once it answers",
                    delivery.delivery_id,
                    exc,
                )
            if time.monotonic() > delivery.lease_deadline:
                # Another process may attempt it now; this outcome was never an attempt.
                logger.warning(
                    "webhook delivery %s: its outcome could not be recorded in time; "
                    "it will be attempted again",
                    delivery.delivery_id,
                )
                return
            await self._gate.wait_open()
            await asyncio.sleep(backoff.next())

    async def _record_soon(self, delivery: Claimed, attempt: Attempt) -> None:
        """Record an outcome together with the others that arrive meanwhile: one transaction
        for all the outcomes that came in while the previous one was being written. Raises
        what recording them raised."""
        done = asyncio.get_running_loop().create_future()
        self._outcomes.append((delivery, attempt, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_outcomes(), name="webhook-outcomes")
        await done

    async def _write_outcomes(self) -> None:
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                await self.record_all([(delivery, attempt) for delivery, attempt, _ in batch])
            except asyncio.CancelledError:
                for *_, done in batch:
                    done.cancel()
                raise
            except Exception as exc:
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for *_, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def record(self, delivery: Claimed, attempt: Attempt) -> None:
        """Record an attempt's outcome, unless the delivery moved on meanwhile (see above)."""
        await self.record_all([(delivery, attempt)])

    async def record_all(self, outcomes: Sequence[tuple[Claimed, Attempt]]) -> None:
        """Record attempts' outcomes in one transaction (see `record`)."""
        now = self._clock()
        successes = [(d, a) for d, a in outcomes if a.ok]
        results: list[str] = ["succeeded"] * len(successes)
        async with self._sessionmaker() as session, session.begin():
            db = in_session(session)
            await db.run_many(
                RECORD_SUCCESSES,
                [
                    self._row(d, a, state=DeliveryState.SUCCEEDED, next_at=None, now=now)
                    for d, a in successes
                ],
            )
            if successes:
                # A late success (recorded by another process meanwhile) still proves that
                # the endpoint answers.
                await db.run(
                    RESET_FAILURES, endpoint_ids=sorted({d.endpoint_id for d, _ in successes})
                )
            for delivery, attempt in outcomes:
                if not attempt.ok:
                    result = await self._record_failure(session, delivery, attempt, now)
                    if result is not None:
                        results.append(result)
        for result in results:
            WEBHOOK_DELIVERIES.labels(result).inc()
        for delivery, attempt in outcomes:
            if not attempt.ok:
                logger.info(
                    "webhook delivery %s (event %s) attempt %d failed: %s",
                    delivery.delivery_id,
                    delivery.event_id,
                    delivery.attempt + 1,
                    attempt.error,
                )

    async def _record_failure(
        self, session: AsyncSession, delivery: Claimed, attempt: Attempt, now: datetime
    ) -> str | None:
        """Record a failed attempt: retried later, or failed (and counted against its
        endpoint); None when the delivery moved on meanwhile."""
        db = in_session(session)
        delay = retry_delay(delivery.attempt + 1, self._schedule)
        if delay is None:
            state, next_at = DeliveryState.FAILED, None
        else:
            state, next_at = DeliveryState.PENDING, now + timedelta(seconds=delay)
        row = self._row(delivery, attempt, state=state, next_at=next_at, now=now)
        if not await db.run(RECORD, **row):
            return None  # recorded by another process after the lease ran out, or disabled
        if state is DeliveryState.PENDING:
            return "retry"
        counted = await db.run(COUNT_FAILURE, endpoint_id=delivery.endpoint_id)
        failures = int(counted[0]["consecutive_failures"]) if counted else 0
        if failures >= FAILURES_TO_DISABLE and await disable_endpoint(
            session,
            endpoint_id=delivery.endpoint_id,
            reason=f"{failures} consecutive deliveries failed; the last: {attempt.error}"[:1000],
        ):
            logger.warning(
                "webhook endpoint %s disabled after %d failed deliveries",
                delivery.endpoint_id,
                failures,
            )
        return "failed"

    @staticmethod
    def _row(
        delivery: Claimed,
        attempt: Attempt,
        *,
        state: DeliveryState,
        next_at: datetime | None,
        now: datetime,
    ) -> dict[str, Any]:
        return {
            "delivery_id": delivery.delivery_id,
            "claimed_attempt": delivery.attempt,
            "state": state.value,
            "status_code": attempt.status_code,
            "latency_ms": attempt.latency_ms,
            "error": attempt.error,
            "next_attempt_at": next_at,
            "now": now,
        }

    async def _wait_for_gate(self) -> None:
        opened = asyncio.ensure_future(self._gate.wait_open())
        try:
            while not opened.done() and not self._stopping:
                await asyncio.wait({opened}, timeout=POLL_SECONDS)
        finally:
            opened.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await opened


async def purge_settled(
    sessionmaker: async_sessionmaker[AsyncSession], *, retention: timedelta
) -> int:
    """Delete succeeded and failed deliveries last changed longer than `retention` ago."""
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.state != DeliveryState.PENDING,
                WebhookDelivery.updated_at < utcnow() - retention,
            )
        )
    return int(getattr(result, "rowcount", 0) or 0)


def webhook_metrics_refresher(
    sessionmaker: async_sessionmaker[AsyncSession], then: Refresh | None = None
) -> Refresh:
    """An async callable that updates the retry queue's depth and the disabled endpoints
    (then runs `then`, another refresher); errors are logged, never raised."""

    async def refresh() -> None:
        try:
            async with asyncio.timeout(2), sessionmaker() as session:
                db = in_session(session)
                WEBHOOK_RETRY_QUEUE.set(int((await db.run(RETRY_QUEUE))[0]["n"]))
                WEBHOOK_ENDPOINTS_DISABLED.set(int((await db.run(DISABLED_ENDPOINTS))[0]["n"]))
        except Exception as exc:  # the database down must not break /metrics
            logger.warning("metrics: database unavailable (%r)", exc)
        if then is not None:
            await then()

    return refresh
