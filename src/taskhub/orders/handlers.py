"""Event handlers of the orders domain: reserve, release, expire."""

from __future__ import annotations

from taskhub.messaging.dispatch import Registry


def register(registry: Registry) -> None:
    """Attach the orders handlers and jobs to `registry`."""
    del registry
