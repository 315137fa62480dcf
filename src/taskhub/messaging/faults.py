"""Transient versus deterministic handler failures, and the database gate.

A failure is **transient** when retrying the same event later may succeed: the database (or
the pool) is unavailable, or a concurrent transaction got in the way (a deadlock, a
serialization failure). `taskhub.errors.is_transient` is the one map of those. A failure
that map does not know is transient too when the database does not answer a probe right
after it: a dependency that is down explains it. Transient failures never count toward
dead-lettering. Anything else is **deterministic**: it counts, and an event that fails that
way `EVENT_MAX_DELIVERIES` times is dead-lettered.

The gate stops a consumer from hammering a database that is down: a failure that means the
database is unavailable closes it, and one probe (`SELECT 1`, with capped exponential
backoff and jitter) at a time reopens it once the database answers again. While it is
closed, consumers read nothing new and retry nothing.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from taskhub.errors import ServiceUnavailable, database_error, is_transient
from taskhub.messaging.backoff import Backoff
from taskhub.observability import DEPENDENCY_UP

logger = logging.getLogger("taskhub.events.faults")


class Fault(StrEnum):
    """Why an attempt failed."""

    UNAVAILABLE = "unavailable"  # transient: the database (or the pool) is not answering
    CONFLICT = "conflict"  # transient: a deadlock or a concurrent change
    DETERMINISTIC = "deterministic"  # counts toward dead-lettering


class DatabaseGate:
    """Open while the database answers; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        probe_timeout: float = 2.0,
        probe_base: float = 0.1,
        probe_cap: float = 2.0,
    ) -> None:
        self._engine = engine
        self._probe_timeout = probe_timeout
        self._probe_base = probe_base
        self._probe_cap = probe_cap
        self._open = asyncio.Event()
        self._open.set()
        self._prober: asyncio.Task[None] | None = None
        DEPENDENCY_UP.labels("database").set(1)

    @property
    def is_open(self) -> bool:
        """Whether work that needs the database should go ahead."""
        return self._open.is_set()

    async def wait_open(self) -> None:
        """Return once the gate is open."""
        await self._open.wait()

    def close(self) -> None:
        """The database is unavailable: hold work back until a probe succeeds."""
        if self._open.is_set():
            logger.warning("database unavailable: holding events back until it answers")
        self._open.clear()
        DEPENDENCY_UP.labels("database").set(0)
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe_until_open(), name="database-probe")

    async def answers(self) -> bool:
        """One probe now: whether the database answers `SELECT 1`."""
        try:
            async with asyncio.timeout(self._probe_timeout), self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - any failure to answer means unavailable
            return False
        return True

    async def classify(self, exc: BaseException) -> Fault:
        """Transient or deterministic (see the module docstring); closes the gate when the
        database is found unavailable."""
        if is_transient(exc):
            if isinstance(database_error(exc), ServiceUnavailable):
                self.close()
                return Fault.UNAVAILABLE
            return Fault.CONFLICT
        if not await self.answers():
            self.close()
            return Fault.UNAVAILABLE
        return Fault.DETERMINISTIC

    async def aclose(self) -> None:
        """Stop probing (the process is shutting down)."""
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)

    async def _probe_until_open(self) -> None:
        backoff = Backoff(base=self._probe_base, cap=self._probe_cap)
        while not await self.answers():  # noqa: ASYNC110 - polling is the point of a probe
            await asyncio.sleep(backoff.next())
        logger.warning("database answers again: resuming events")
        DEPENDENCY_UP.labels("database").set(1)
        self._open.set()
