"""Binding an event partition's Redis keys to this database, and recovering a lost group.

**Identity.** The `deployment` table holds a random id made by the migration that created
it. The first process to use a partition writes that id into the partition's binding key
(`SET NX`); every relay, consumer and API process compares it with its own database's at
start and whenever it reconnects. A different id means that two stacks share a
REDIS_PREFIX: the process refuses (`DeploymentMismatch`) instead of handing one database's
events to the other's handlers.

**A Redis that lost the group** (restarted without persistence, or flushed): the entries it
held are gone, applied or not. Whoever finds the group missing first marks the outbox rows
published within `STREAM_REPUBLISH_WINDOW` that are not yet applied by every handler of
their type (no `processed_events` record) as unpublished, then creates the group, so that
the relays publish them again. Handlers are idempotent, so an event published twice
changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.db import table_of, utcnow
from taskhub.messaging.streams import StreamKeys, as_str, ensure_group, group_exists
from taskhub.models import Deployment, OutboxEvent, ProcessedEvent
from taskhub.redis_client import RedisClient

logger = logging.getLogger("taskhub.events.binding")


class DeploymentMismatch(RuntimeError):
    """The partition's Redis keys belong to another database: this process must not run."""


class StreamBinder:
    """Binds one partition to this database; shared by a process's relay and consumer."""

    def __init__(
        self,
        *,
        redis: RedisClient,
        keys: StreamKeys,
        sessionmaker: async_sessionmaker[AsyncSession],
        republish_window: timedelta = timedelta(hours=24),
        handlers_per_type: Mapping[str, int] | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._sessionmaker = sessionmaker
        self._window = republish_window
        self._handlers = dict(handlers_per_type or {})
        self._deployment: str | None = None
        self._lock = asyncio.Lock()

    async def deployment_id(self) -> str:
        """This database's id (read once)."""
        if self._deployment is None:
            async with self._sessionmaker() as session:
                value = await session.scalar(
                    select(Deployment.deployment_id).where(Deployment.id == 1)
                )
            if value is None:
                raise RuntimeError("the deployment table is empty: run `taskhub migrate`")
            self._deployment = value
        return self._deployment

    async def verify(self) -> None:
        """Claim the partition for this database if unclaimed; refuse another's."""
        mine = await self.deployment_id()
        while not await self._redis.set(self._keys.binding, mine, nx=True):
            theirs = await self._redis.get(self._keys.binding)
            if theirs is None:
                continue  # deleted meanwhile: claim it again
            if as_str(theirs) != mine:
                raise DeploymentMismatch(
                    f"the Redis keys {self._keys.tag}:* belong to another database "
                    f"(deployment {as_str(theirs)}), not to this one (deployment {mine}): "
                    f"two stacks share REDIS_PREFIX={self._keys.prefix!r}; give each its own"
                )
            return

    async def bind(self) -> bool:
        """Verify the binding and make sure the group exists; True when this call had to
        create it (after republishing what the lost stream may have held)."""
        async with self._lock:
            await self.verify()
            if await group_exists(self._redis, self._keys):
                return False
            republished = await self.republish_unapplied()
            created = await ensure_group(self._redis, self._keys)
            if republished:
                logger.warning(
                    "%s had no consumer group (Redis lost its data?): %d published event(s) "
                    "not yet applied will be published again",
                    self._keys.stream,
                    republished,
                )
            elif created:
                logger.info("created the consumer group of %s", self._keys.stream)
            return created

    async def republish_unapplied(self) -> int:
        """Mark recent published events that are not applied yet as unpublished."""
        outbox, processed = table_of(OutboxEvent).c, table_of(ProcessedEvent).c
        applied = (
            select(func.count())
            .select_from(ProcessedEvent)
            .where(processed.event_id == outbox.event_id)
            .scalar_subquery()
        )
        expected = case(self._handlers, value=outbox.type, else_=1) if self._handlers else 1
        stmt = (
            update(table_of(OutboxEvent))
            .where(
                outbox.published_at.is_not(None),
                outbox.published_at >= utcnow() - self._window,
                outbox.dead_at.is_(None),
                applied < expected,
            )
            .values(published_at=None)
            .execution_options(synchronize_session=False)
        )
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)
