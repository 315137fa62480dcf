"""Composition root of the event pipeline: which domain handles which event."""

from __future__ import annotations

from taskhub import idempotency
from taskhub.auth import tokens
from taskhub.config import Settings, get_settings
from taskhub.messaging.dispatch import Registry
from taskhub.orders import handlers as order_handlers
from taskhub.projects.events import PROJECT_EVENTS


def build_registry(settings: Settings | None = None) -> Registry:
    """Every handler and periodic job of the application."""
    settings = settings or get_settings()
    registry = Registry()
    order_handlers.register(registry, reservation_ttl=settings.reservation_ttl)
    registry.declare(*PROJECT_EVENTS)
    registry.every("idempotency.purge")(idempotency.purge_expired)
    registry.every("tokens.purge")(tokens.purge_revoked_tokens)
    return registry
