"""Handler registry and the idempotent application of one event.

Transport-agnostic: the embedded dispatcher and the Redis stream consumer both call
`apply_event`. The event id is recorded in the handler's own transaction, so a redelivered
event changes nothing twice. Each applied event is logged once at INFO (`log_applied`).

An event type is known when a domain handler reacts to it or it is declared (`declare`);
handlers registered with `on_every` (the webhook fan-out) run for every known type, before
the type's own handlers. An unknown type is malformed (dead-lettered).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.db import on_postgresql
from taskhub.driver import DriverStatement, TextList
from taskhub.messaging.envelope import Envelope
from taskhub.observability import HANDLER_LATENCY, HANDLER_RESULTS

logger = logging.getLogger("taskhub.events")

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, Sequence[Envelope]], Awaitable[None]]
Job = Callable[[async_sessionmaker[AsyncSession]], Awaitable[int]]
# Called after a handler's transaction committed, with the session's `info` (what the
# handler noted there: outbox events written, webhook deliveries queued, ...).
CommitHook = Callable[[Mapping[str, Any]], None]


class MalformedEvent(Exception):
    """The event does not match its schema, or no handler knows its type: dead-letter it."""


class Outcome(StrEnum):
    """What happened to one delivery."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Registration:
    """One handler for one event type; `name` keys its processed-event records."""

    name: str
    handler: Handler


@dataclass
class Registry:
    """Event type → handlers, plus periodic jobs (e.g. reservation expiry).

    A handler may also have a batch form (`on_batch`, `on_every_batch`); a type whose
    handlers all have one is applied in batches by the stream consumer (`apply_batch`).
    Every form records under its handler's name.
    """

    handlers: dict[str, list[Registration]] = field(default_factory=dict)
    batch_handlers: dict[tuple[str, str], BatchHandler] = field(default_factory=dict)
    universal: list[Registration] = field(default_factory=list)
    universal_batch: dict[str, BatchHandler] = field(default_factory=dict)
    declared: set[str] = field(default_factory=set)
    jobs: list[tuple[str, Job]] = field(default_factory=list)
    commit_hooks: list[CommitHook] = field(default_factory=list)

    def declare(self, *event_types: str) -> None:
        """Accept these types although no domain handler reacts to them (the handlers
        registered with `on_every` still do)."""
        self.declared.update(event_types)

    def knows(self, event_type: str) -> bool:
        """Whether events of this type are accepted (handled or declared)."""
        return event_type in self.handlers or event_type in self.declared

    def registrations(self, event_type: str) -> list[Registration]:
        """The handlers of a known type, in the order they run; [] for an unknown type."""
        if not self.knows(event_type):
            return []
        return [*self.universal, *self.handlers.get(event_type, [])]

    def handlers_per_type(self) -> dict[str, int]:
        """How many handlers (processed-event records) each known type gets."""
        return {t: len(self.registrations(t)) for t in self.handlers.keys() | self.declared}

    def on_batch(self, event_type: str, *, name: str) -> Callable[[BatchHandler], BatchHandler]:
        """Decorator: the batch form of `event_type`'s handler named `name`."""

        def register(handler: BatchHandler) -> BatchHandler:
            self.batch_handlers[(event_type, name)] = handler
            return handler

        return register

    def on_every_batch(self, *, name: str) -> Callable[[BatchHandler], BatchHandler]:
        """Decorator: the batch form of the `on_every` handler named `name`."""

        def register(handler: BatchHandler) -> BatchHandler:
            self.universal_batch[name] = handler
            return handler

        return register

    def batch_form(self, event_type: str, registration: Registration) -> BatchHandler | None:
        """The batch form of one of the type's handlers, if it has one."""
        if registration in self.universal:
            return self.universal_batch.get(registration.name)
        return self.batch_handlers.get((event_type, registration.name))

    def batchable(self, event_type: str) -> bool:
        """Whether events of this type can be applied together (`apply_batch`)."""
        registrations = self.registrations(event_type)
        return bool(registrations) and all(
            self.batch_form(event_type, r) is not None for r in registrations
        )

    def on(self, event_type: str, *, name: str) -> Callable[[Handler], Handler]:
        """Decorator: register `handler` for `event_type`."""

        def register(handler: Handler) -> Handler:
            self.handlers.setdefault(event_type, []).append(Registration(name, handler))
            return handler

        return register

    def on_every(self, *, name: str) -> Callable[[Handler], Handler]:
        """Decorator: register `handler` for every known event type."""

        def register(handler: Handler) -> Handler:
            self.universal.append(Registration(name, handler))
            return handler

        return register

    def every(self, name: str) -> Callable[[Job], Job]:
        """Decorator: register a periodic job (returns how much work it did)."""

        def register(job: Job) -> Job:
            self.jobs.append((name, job))
            return job

        return register

    def after_commit(self, hook: CommitHook) -> None:
        """Call `hook` with the session's info after each handler transaction commits."""
        self.commit_hooks.append(hook)

    def committed(self, info: Mapping[str, Any]) -> None:
        """Run the commit hooks (after a handler transaction committed)."""
        for hook in self.commit_hooks:
            hook(info)


async def apply_event(
    sessionmaker: async_sessionmaker[AsyncSession], registry: Registry, envelope: Envelope
) -> Outcome:
    """Run every handler of the event, each once, each in its own transaction.

    Raises MalformedEvent for an unknown type or a payload that fails validation; the caller
    classifies any other exception (`messaging.faults`) and retries the event.
    """
    applied: list[str] = []
    for registration in _registrations(registry, envelope):
        async with sessionmaker() as session:
            async with session.begin():
                ran = await _run_handler(session, envelope, registration)
            if ran:
                applied.append(registration.name)
                registry.committed(session.info)
    if not applied:
        return Outcome.DUPLICATE
    log_applied(envelope, "+".join(applied))
    return Outcome.APPLIED


async def apply_batch(
    sessionmaker: async_sessionmaker[AsyncSession],
    registry: Registry,
    envelopes: Sequence[Envelope],
) -> None:
    """Apply events of one batchable type together, in one transaction (PostgreSQL).

    For each handler of the type, in order, the processed-event records of the whole batch
    are written first; its batch form gets only the events it had not seen before. All or
    nothing: on any exception nothing was applied, and the caller applies the events one by
    one instead (`apply_event`).
    """
    event_type = envelopes[0].type
    applied: dict[str, list[str]] = {}
    started = time.perf_counter()
    try:
        async with sessionmaker() as session:
            async with session.begin():
                for registration in registry.registrations(event_type):
                    handler = registry.batch_form(event_type, registration)
                    if handler is None:
                        raise ValueError(f"{registration.name} has no batch form")
                    fresh_ids = await record_processed(session, envelopes, registration.name)
                    fresh = [e for e in envelopes if str(e.id) in fresh_ids]
                    if fresh:
                        await handler(session, fresh)
                    for envelope in fresh:
                        applied.setdefault(str(envelope.id), []).append(registration.name)
            registry.committed(session.info)
    except Exception:
        HANDLER_RESULTS.labels(event_type, "error").inc(len(envelopes))
        raise
    elapsed = time.perf_counter() - started
    for envelope in envelopes:
        names = applied.get(str(envelope.id))
        if names:
            HANDLER_LATENCY.labels(event_type).observe(elapsed / len(applied))
            log_applied(envelope, "+".join(names))
    HANDLER_RESULTS.labels(event_type, "applied").inc(len(applied))
    HANDLER_RESULTS.labels(event_type, "duplicate").inc(len(envelopes) - len(applied))


def _registrations(registry: Registry, envelope: Envelope) -> list[Registration]:
    registrations = registry.registrations(envelope.type)
    if not registrations:
        HANDLER_RESULTS.labels(envelope.type[:64], "malformed").inc()
        raise MalformedEvent(f"no handler for event type {envelope.type!r}")
    return registrations


async def _run_handler(
    session: AsyncSession, envelope: Envelope, registration: Registration
) -> bool:
    """Record the event for this handler and run it, in the caller's transaction.

    False (and nothing run) when the record was already there: a redelivery.
    """
    started = time.perf_counter()
    try:
        if not await record_processed(session, [envelope], registration.name):
            HANDLER_RESULTS.labels(envelope.type, "duplicate").inc()
            return False
        await registration.handler(session, envelope)
    except ValidationError as exc:
        HANDLER_RESULTS.labels(envelope.type, "malformed").inc()
        raise MalformedEvent(f"invalid payload: {exc.error_count()} error(s)") from exc
    except Exception:
        HANDLER_RESULTS.labels(envelope.type, "error").inc()
        raise
    HANDLER_LATENCY.labels(envelope.type).observe(time.perf_counter() - started)
    HANDLER_RESULTS.labels(envelope.type, "applied").inc()
    return True


def log_applied(envelope: Envelope, handler: str) -> None:
    """One INFO line per applied event: its type, the ids its payload names, its request id,
    and the handlers that applied it (`a+b`).

    Generic: any top-level payload field named `id` or `*_id` with a scalar value (order_id,
    task_id, project_id, ...). JSON logs carry each id as a key of its own.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    ids = subject_ids(envelope.payload)
    logger.info(
        "applied %s %s (handler %s, event %s)",
        envelope.type,
        " ".join(f"{key}={value}" for key, value in ids.items()) or "-",
        handler,
        envelope.id,
        extra={
            "event_id": str(envelope.id),
            "event_type": envelope.type,
            "request_id": envelope.request_id or "-",
            "fields": ids,
        },
    )


def subject_ids(payload: dict[str, object]) -> dict[str, object]:
    """The ids a payload names: its `id` and `*_id` fields with scalar values (at most 5)."""
    out: dict[str, object] = {}
    for key, value in payload.items():
        if (key == "id" or key.endswith("_id")) and isinstance(value, int | str):
            if not isinstance(value, bool):
                out[key] = value if isinstance(value, int) else value[:64]
                if len(out) == 5:
                    break
    return out


# The processed-event records of a batch (one event: a batch of one), written at once: the
# ids not recorded before come back. One statement per database: PostgreSQL unnests an
# array, SQLite reads a JSON array.
_RECORD_PROCESSED_SQL = {
    "postgresql": (
        "INSERT INTO processed_events (event_id, handler) "
        "SELECT unnest(CAST(:event_ids AS VARCHAR[])), CAST(:handler AS VARCHAR) "
        "ON CONFLICT DO NOTHING RETURNING event_id"
    ),
    "sqlite": (
        "INSERT INTO processed_events (event_id, handler) "
        "SELECT value, :handler FROM json_each(:event_ids) WHERE true "
        "ON CONFLICT DO NOTHING RETURNING event_id"
    ),
}
RECORD_PROCESSED = {
    dialect: DriverStatement(text(sql).bindparams(bindparam("event_ids", type_=TextList())))
    for dialect, sql in _RECORD_PROCESSED_SQL.items()
}


async def record_processed(
    session: AsyncSession, envelopes: Sequence[Envelope], handler: str
) -> set[str]:
    """Record the events for `handler`; the ids of those it had not processed before."""
    statement = RECORD_PROCESSED["postgresql" if on_postgresql(session) else "sqlite"]
    rows = await statement.run(
        session, event_ids=[str(envelope.id) for envelope in envelopes], handler=handler
    )
    return {str(row["event_id"]) for row in rows}
