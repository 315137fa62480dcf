"""Composition root of the event pipeline: which domain handles which event."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from taskhub import idempotency
from taskhub.auth import stream_tickets, tokens
from taskhub.config import Settings, get_settings
from taskhub.messaging.dispatch import Registry
from taskhub.messaging.retention import OutboxPurge
from taskhub.orders import handlers as order_handlers
from taskhub.projects.events import PROJECT_EVENTS
from taskhub.webhooks import fanout
from taskhub.webhooks.delivery import purge_settled


def build_registry(settings: Settings | None = None) -> Registry:
    """Every handler and periodic job of the application.

    The webhook fan-out runs for every event type of the contract (EVENTS.md), before the
    type's own handlers; task and member events have no other handler.
    """
    settings = settings or get_settings()
    registry = Registry()
    fanout.register(registry)
    order_handlers.register(registry, reservation_ttl=settings.reservation_ttl)
    registry.declare(*PROJECT_EVENTS)
    registry.every("idempotency.purge")(idempotency.purge_expired)
    registry.every("tokens.purge")(tokens.purge_revoked_tokens)

    async def purge_deliveries(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        return await purge_settled(sessionmaker, retention=settings.webhook_retention)

    registry.every("webhooks.purge")(purge_deliveries)
    registry.every("stream_tickets.purge")(stream_tickets.purge_expired_tickets)
    registry.every("outbox.purge")(OutboxPurge(keep=outbox_retention(settings)))
    return registry


def outbox_retention(settings: Settings) -> timedelta:
    """How long published outbox rows are kept: the live streams replay them for
    `Last-Event-ID`, and (full stack) a lost consumer group republishes recent ones."""
    if settings.embedded_events:
        return settings.live_replay_window
    return max(settings.live_replay_window, settings.stream_republish_window)
