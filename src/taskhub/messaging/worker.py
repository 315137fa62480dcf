"""`taskhub worker`: the relay, the stream consumer, the periodic jobs and the webhook
deliveries, in one process.

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
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub.config import Settings
from taskhub.db import make_engine, make_sessionmaker
from taskhub.errors import is_transient
from taskhub.messaging.backoff import Backoff
from taskhub.messaging.binding import DeploymentMismatch, StreamBinder
from taskhub.messaging.consumer import StreamConsumer
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.faults import DatabaseGate
from taskhub.messaging.metrics import pipeline_metrics_refresher
from taskhub.messaging.relay import Relay
from taskhub.messaging.streams import all_partitions, consumer_name
from taskhub.webhooks.delivery import DeliveryLoop, webhook_metrics_refresher

logger = logging.getLogger("taskhub.worker")


def make_stream_redis(url: str) -> Redis:
    """A client for the stream commands; XREADGROUP blocks at most a second."""
    return Redis.from_url(
        url,
        socket_timeout=10,
        socket_connect_timeout=2,
        health_check_interval=30,
        max_connections=None,
    )


class Worker:
    """The pieces of one worker process, started and stopped together."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        if settings.redis_url is None:
            raise ValueError("REDIS_URL is not set; the embedded shape needs no worker")
        self.settings = settings
        self.registry = registry
        self.engine = make_engine(settings)
        self.sessionmaker = make_sessionmaker(self.engine)
        self.redis = make_stream_redis(settings.redis_url)
        self.name = consumer_name()
        keys = all_partitions(settings.redis_prefix)
        handlers = registry.handlers_per_type()
        self.binders = binders = {
            partition: StreamBinder(
                redis=self.redis,
                keys=partition,
                sessionmaker=self.sessionmaker,
                republish_window=settings.stream_republish_window,
                handlers_per_type=handlers,
            )
            for partition in keys
        }
        self.gate = DatabaseGate(self.engine)
        self.relays = [
            Relay(
                sessionmaker=self.sessionmaker,
                redis=self.redis,
                keys=keys[0],  # the relay writes every event to its partition's stream
                database_url=settings.listen_url,  # LISTEN here; None: poll
                batch_size=settings.relay_batch_size,
                poll_seconds=settings.relay_poll_seconds,
                maxlen=settings.stream_maxlen,
                binder=binders[keys[0]],
            )
        ]
        self.consumers = [
            StreamConsumer(
                redis=self.redis,
                keys=partition,
                sessionmaker=self.sessionmaker,
                registry=registry,
                name=self.name,
                concurrency=settings.worker_concurrency,
                claim_idle_ms=settings.event_claim_idle_ms,
                max_deliveries=settings.event_max_deliveries,
                retry_cap_seconds=settings.event_retry_max_seconds,
                batches=True,
                batch_size=settings.worker_batch_size,
                binder=binders[partition],
                gate=self.gate,
            )
            for partition in keys
        ]
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
