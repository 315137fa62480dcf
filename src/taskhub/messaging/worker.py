"""`taskhub worker`: the relay, the stream consumers, the periodic jobs and the webhook
deliveries, in one process.

Every worker reads every partition through the consumer group: one consumer per partition,
sharing the process's `WORKER_CONCURRENCY` slots, so the group spreads each partition's
entries over the workers that are running, and each worker's claimer takes over what a dead
worker left pending on every partition. Partitions beyond STREAM_PARTITIONS that still hold
undelivered or unacknowledged entries (left by a larger setting) are consumed too, with a
warning, until the next restart.

Runs until SIGTERM or SIGINT, then shuts down gracefully: it stops reading new entries,
finishes and acknowledges the handlers in flight, and returns (exit code 0). If a stream
belongs to another database (`binding.DeploymentMismatch`), `run` raises it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import start_http_server
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.config import Settings
from taskhub.db import make_engine, make_sessionmaker
from taskhub.errors import is_transient
from taskhub.messaging.backoff import Backoff
from taskhub.messaging.binding import DeploymentMismatch, StreamBinder
from taskhub.messaging.consumer import Slots, StreamConsumer
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.faults import DatabaseGate
from taskhub.messaging.metrics import pipeline_metrics_refresher
from taskhub.messaging.relay import Relay
from taskhub.messaging.streams import (
    StreamKeys,
    all_partitions,
    consumer_name,
    partitions_in_use,
)
from taskhub.redis_client import RedisClient, make_redis
from taskhub.webhooks.delivery import DeliveryLoop, webhook_metrics_refresher

logger = logging.getLogger("taskhub.worker")


def make_stream_redis(settings: Settings) -> RedisClient:
    """A client for the stream commands; XREADGROUP blocks at most a second."""
    return make_redis(settings, socket_timeout=10)


class Worker:
    """The pieces of one worker process, started and stopped together."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        if settings.redis_url is None:
            raise ValueError("REDIS_URL is not set; the embedded shape needs no worker")
        self.settings = settings
        self.registry = registry
        self.engine = make_engine(settings)
        self.sessionmaker = make_sessionmaker(self.engine)
        self.redis = make_stream_redis(settings)
        self.name = consumer_name()
        keys = all_partitions(settings.redis_prefix, settings.stream_partitions)
        self.binders: dict[str, StreamBinder] = {}
        self.gate = DatabaseGate(self.engine)
        self.slots = Slots(settings.worker_concurrency)
        self.relays = [
            Relay(
                sessionmaker=self.sessionmaker,
                redis=self.redis,
                partitions=keys,  # each event goes to its partition's stream
                database_url=settings.listen_url,  # LISTEN here; None: poll
                batch_size=settings.relay_batch_size,
                poll_seconds=settings.relay_poll_seconds,
                maxlen=settings.stream_maxlen,
                binders={k.partition: self._binder(k) for k in keys},
            )
        ]
        self.consumers = [self._consumer(partition) for partition in keys]
        self.deliveries = DeliveryLoop.from_settings(settings, self.sessionmaker, gate=self.gate)
        # Handlers write events (an order's reservation outcome) and queue webhook
        # deliveries: this process's relay and delivery loop take them at once.
        registry.after_commit(self._after_handler_commit)
        self.refresh_metrics = webhook_metrics_refresher(
            self.sessionmaker, pipeline_metrics_refresher(self.sessionmaker, self.redis, keys)
        )
        self._stop = asyncio.Event()

    def _after_handler_commit(self, info: Mapping[str, Any]) -> None:
        if info.get("outbox_written"):
            self._wake_relays()
        self.deliveries.on_commit(info)

    def _binder(self, keys: StreamKeys) -> StreamBinder:
        """The partition's binder, shared by this process's relay and consumer."""
        if keys.partition not in self.binders:
            self.binders[keys.partition] = StreamBinder(
                redis=self.redis,
                keys=keys,
                sessionmaker=self.sessionmaker,
                republish_window=self.settings.stream_republish_window,
                handlers_per_type=self.registry.handlers_per_type(),
            )
        return self.binders[keys.partition]

    def _consumer(self, keys: StreamKeys) -> StreamConsumer:
        settings = self.settings
        return StreamConsumer(
            redis=self.redis,
            keys=keys,
            sessionmaker=self.sessionmaker,
            registry=self.registry,
            name=self.name,
            concurrency=settings.worker_concurrency,
            claim_idle_ms=settings.event_claim_idle_ms,
            max_deliveries=settings.event_max_deliveries,
            retry_cap_seconds=settings.event_retry_max_seconds,
            batches=True,
            batch_size=settings.worker_batch_size,
            binder=self._binder(keys),
            gate=self.gate,
            slots=self.slots,
        )

    async def _adopt_leftover_partitions(self) -> None:
        """Consume, too, the partitions beyond STREAM_PARTITIONS that still hold entries not
        delivered or not acknowledged (STREAM_PARTITIONS was lowered without a drain)."""
        count = self.settings.stream_partitions
        try:
            leftover = await partitions_in_use(self.redis, self.settings.redis_prefix, count)
        except Exception as exc:  # Redis gone again: the drain procedure still covers it
            logger.warning("worker: could not look for leftover partitions (%r)", exc)
            return
        for keys in leftover:
            logger.warning(
                "%s holds entries but STREAM_PARTITIONS=%d no longer covers it: consuming "
                "it until this worker restarts (see `taskhub streams drain`)",
                keys.stream,
                count,
            )
            consumer = self._consumer(keys)
            await self._binder(keys).verify()
            self.consumers.append(consumer)

    def stop(self) -> None:
        """Begin the graceful shutdown."""
        if not self._stop.is_set():
            logger.info("worker %s: stopping", self.name)
        self._stop.set()
        for relay in self.relays:
            relay.stop()
        for consumer in self.consumers:
            consumer.stop()
        self.deliveries.stop()

    async def run(self) -> None:
        """Run everything until `stop()`, then release the connections."""
        logger.info("worker %s: started", self.name)
        try:
            if not await self._verify_bindings():
                return
            await self._adopt_leftover_partitions()
        except BaseException:
            await self.redis.aclose()
            await self.engine.dispose()
            raise
        tasks = [
            *(asyncio.create_task(r.run(), name="relay") for r in self.relays),
            *(asyncio.create_task(c.run(), name="consumer") for c in self.consumers),
            asyncio.create_task(self._run_jobs(), name="jobs"),
            asyncio.create_task(self.deliveries.run(), name="webhook-deliveries"),
        ]
        if self.settings.worker_metrics_port is not None:
            start_http_server(self.settings.worker_metrics_port)
            tasks.append(asyncio.create_task(self._refresh_metrics_loop(), name="metrics"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.gate.aclose()
            await self.redis.aclose()
            await self.engine.dispose()
            logger.info("worker %s: stopped", self.name)

    async def _verify_bindings(self) -> bool:
        """Before anything runs: every partition belongs to this database (raises
        DeploymentMismatch otherwise). Waits while Redis or the database is down; False
        when stopped meanwhile."""
        backoff = Backoff(base=0.2, cap=2.0)
        while not self._stop.is_set():
            try:
                for binder in self.binders.values():
                    await binder.verify()
            except DeploymentMismatch:
                raise
            except Exception as exc:  # a dependency down: wait for it
                delay = backoff.next()
                logger.warning(
                    "worker: cannot check the streams yet (%r); retry in %.1fs", exc, delay
                )
                await self._sleep(delay)
                continue
            return True
        return False

    async def _run_jobs(self) -> None:
        every = self.settings.expiry_sweep_seconds
        while not self._stop.is_set():
            started = time.monotonic()
            await run_jobs(self.registry, self.sessionmaker, on_work=self._wake_relays)
            await self._sleep(max(0.0, every - (time.monotonic() - started)))

    def _wake_relays(self) -> None:
        for relay in self.relays:
            relay.wake()

    async def _refresh_metrics_loop(self) -> None:
        while not self._stop.is_set():
            await self.refresh_metrics()
            await self._sleep(5.0)

    async def _sleep(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            pass


async def run_jobs(
    registry: Registry,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    on_work: Callable[[], None] | None = None,
) -> int:
    """Run each periodic job once; a failing job is logged and the others still run."""
    total = 0
    for name, job in registry.jobs:
        try:
            done = await job(sessionmaker)
        except Exception as exc:
            if is_transient(exc):  # the database is down or busy: the next sweep retries
                logger.warning("job %s failed (%r); next sweep retries", name, exc)
            else:
                logger.exception("job %s failed", name)
            continue
        if done:
            logger.info("job %s handled %d item(s)", name, done)
            total += done
    if total and on_work is not None:
        on_work()  # jobs emit events (e.g. expiry); publish them now
    return total


async def run_worker(settings: Settings, registry: Registry) -> None:
    """Run one worker until SIGTERM/SIGINT."""
    worker = Worker(settings, registry)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
