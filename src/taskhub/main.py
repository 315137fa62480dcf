"""The application factory and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub import __version__
from taskhub.api import ROUTERS
from taskhub.auth.limiter import Limit, LoginLimiter, MemoryCounter, RedisCounter
from taskhub.auth.tokens import RequestSession
from taskhub.background import finish
from taskhub.config import Settings, get_settings
from taskhub.db import make_engine, make_sessionmaker
from taskhub.driver import Database, attach_driver_pool, detach_driver_pool
from taskhub.errors import install_error_handlers
from taskhub.events import build_registry
from taskhub.health import router as health_router
from taskhub.live.page import router as live_page_router
from taskhub.live.runtime import LiveUpdates, end_streams_on_signals
from taskhub.messaging.binding import DeploymentMismatch, StreamBinder
from taskhub.messaging.embedded import EmbeddedDispatcher
from taskhub.messaging.faults import DatabaseGate
from taskhub.messaging.metrics import pipeline_metrics_refresher
from taskhub.messaging.outbox import Announcer
from taskhub.messaging.signal import WakeSignal
from taskhub.messaging.streams import all_partitions
from taskhub.middleware import EdgeMiddleware, ProblemCORSMiddleware
from taskhub.observability import configure_logging
from taskhub.openapi import install_openapi
from taskhub.redis_client import RedisClient, make_redis
from taskhub.runtime import tune_gc
from taskhub.tracing import configure_tracing
from taskhub.webhooks.delivery import (
    LEASE_MARGIN_SECONDS,
    DeliveryLoop,
    webhook_metrics_refresher,
)

TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
logger = logging.getLogger("taskhub.main")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; the engine, Redis and background loops live in the lifespan."""
    settings = settings or get_settings()
    settings.signing_key()  # fail (or create the dev key) at start, not at the first login

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings, driver_pool=True)
        await attach_driver_pool(engine, settings)
        app.state.engine = engine
        # Write transactions begin by confirming the request's caller (auth.tokens).
        app.state.sessionmaker = make_sessionmaker(engine, sync_session_class=RequestSession)
        # GET and HEAD only read: their statements autocommit (no BEGIN/COMMIT round trips).
        app.state.read_sessionmaker = make_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        app.state.redis = make_redis(settings, socket_timeout=5) if settings.redis_url else None
        app.state.events = WakeSignal()
        app.state.announcer = Announcer(engine, app.state.events)
        app.state.database = Database(engine, on_events=app.state.announcer.announce)
        app.state.login_limiter = make_login_limiter(settings, app.state.redis)
        if app.state.redis is not None:
            await check_stream_binding(settings, app.state.redis, app.state.sessionmaker)
        # /metrics gauges: outbox backlog, plus stream lag and dead letters (full stack)
        # or dead outbox rows (embedded).
        app.state.refresh_metrics = webhook_metrics_refresher(
            app.state.sessionmaker,
            pipeline_metrics_refresher(
                app.state.sessionmaker,
                app.state.redis,
                all_partitions(settings.redis_prefix, settings.stream_partitions),
            ),
        )
        # Live streams (Server-Sent Events): every published event, to this process's
        # subscribers (full stack: read from the streams; embedded: told by the dispatcher).
        live = LiveUpdates(settings, database=app.state.database, redis=app.state.redis)
        app.state.live = live.hub
        live.start()
        restore_signals = (
            end_streams_on_signals(live.hub)
            if getattr(app.state, "end_streams_on_signals", False)
            else None
        )
        dispatcher_task: asyncio.Task[None] | None = None
        deliveries_task: asyncio.Task[None] | None = None
        if settings.embedded_events:
            registry = build_registry(settings)
            # The webhook deliveries, which the workers send in the full stack.
            # One database gate: an outage either of them meets pauses both, as in a worker.
            gate = DatabaseGate(engine)
            deliveries = DeliveryLoop.from_settings(settings, app.state.sessionmaker, gate=gate)
            registry.after_commit(deliveries.on_commit)
            deliveries_task = asyncio.create_task(deliveries.run(), name="webhook-deliveries")
            dispatcher = EmbeddedDispatcher(
                sessionmaker=app.state.sessionmaker,
                registry=registry,
                signal=app.state.events,
                poll_seconds=settings.relay_poll_seconds,
                jobs_every_seconds=settings.expiry_sweep_seconds,
                max_attempts=settings.event_max_deliveries,
                gate=gate,  # closed by the dispatcher, which stops last
                observer=live.hub.on_outbox_row,
            )
            app.state.dispatcher = dispatcher
            dispatcher_task = asyncio.create_task(dispatcher.run(), name="embedded-dispatcher")
        try:
            yield
        finally:
            if deliveries_task is not None:
                # Attempts in flight end within the webhook timeout; then their outcome is
                # recorded (a cancelled one would be attempted again after its lease).
                deliveries.stop()
                await finish(
                    deliveries_task, settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
                )
            if restore_signals is not None:
                restore_signals()
            await live.close()
            if dispatcher_task is not None:
                # Let it finish the event in hand: a cancelled database call could leave a
                # connection (and, on SQLite, the write lock) behind.
                dispatcher.stop()
                await finish(dispatcher_task, 10)
            if app.state.redis is not None:
                await app.state.redis.aclose()
            await app.state.announcer.close()
            await detach_driver_pool(engine)
            await engine.dispose()

    docs = settings.docs_enabled
    app = FastAPI(
        title="taskhub",
        version=__version__,
        summary="Task management (v1) and commerce (v2)",
        # Paths are relative to the server that serves the document.
        servers=[{"url": "/", "description": "The server serving this document"}],
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        redirect_slashes=False,
        # Off, FastAPI skips even asking OpenTelemetry for its providers on each request.
        telemetry=None if settings.opentelemetry_enabled else TELEMETRY_OFF,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_openapi(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(health_router)
    app.include_router(live_page_router)
    if settings.cors_origins:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["Location", "Retry-After", "X-Request-ID"],
        )
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes)
    return app


async def check_stream_binding(
    settings: Settings, redis: RedisClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Refuse to start when REDIS_PREFIX's streams belong to another database.

    Best effort otherwise: with Redis or the database down the API still starts (orders go
    to the outbox), and the workers check the binding again before they relay or consume.
    """
    for keys in all_partitions(settings.redis_prefix, settings.stream_partitions):
        binder = StreamBinder(redis=redis, keys=keys, sessionmaker=sessionmaker)
        try:
            async with asyncio.timeout(3):
                await binder.verify()
        except DeploymentMismatch:
            logger.critical("refusing to start: the event streams belong to another database")
            raise
        except Exception as exc:  # noqa: BLE001 - a dependency down must not stop the API
            logger.warning("could not check the event streams' database binding (%r)", exc)
            return


def make_login_limiter(settings: Settings, redis: RedisClient | None) -> LoginLimiter:
    """Failed-login limits, shared through Redis when there is one."""
    counter = RedisCounter(redis, settings.redis_prefix) if redis is not None else MemoryCounter()
    return LoginLimiter(
        counter,
        account=Limit(
            settings.login_max_failures_per_account, settings.login_account_window_seconds
        ),
        client=Limit(settings.login_max_failures_per_client, settings.login_client_window_seconds),
    )


def app_from_env() -> FastAPI:
    """Uvicorn factory entry point: settings from the environment, logging and GC configured."""
    settings = get_settings()
    configure_logging(json_logs=settings.environment != "dev", level=settings.log_level)
    configure_tracing(service_name="taskhub-api", spans_file=settings.opentelemetry_spans_file)
    app = create_app(settings)
    # Served by uvicorn: its SIGTERM/SIGINT handlers end the event streams first.
    app.state.end_streams_on_signals = True
    tune_gc(settings.gc_gen0_threshold)
    return app
