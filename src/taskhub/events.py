"""Composition root of the event pipeline: which domain handles which event."""

from __future__ import annotations

from taskhub.messaging.dispatch import Registry
from taskhub.orders import handlers as order_handlers


def build_registry() -> Registry:
    """Every handler and periodic job of the application."""
    registry = Registry()
    order_handlers.register(registry)
    return registry
