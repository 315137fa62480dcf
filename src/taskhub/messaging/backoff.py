"""Exponential backoff with jitter, for reconnects and retries."""

from __future__ import annotations

import random


class Backoff:
    """`next()` returns base, 2×base, 4×base … up to `cap`, each with ±25 % jitter."""

    def __init__(self, *, base: float, cap: float) -> None:
        self._base = base
        self._cap = cap
        self._attempt = 0

    def next(self) -> float:
        """The next delay in seconds."""
        delay = min(self._cap, self._base * (2**self._attempt))
        self._attempt = min(self._attempt + 1, 30)
        return float(delay * random.uniform(0.75, 1.25))  # noqa: S311 (jitter, not security)

    def reset(self) -> None:
        """Start again from `base` after a success."""
        self._attempt = 0


def retry_delay(deliveries: int, *, base: float, cap: float) -> float:
    """The delay before redelivering an entry that failed `deliveries` times."""
    delay = min(cap, base * (2 ** max(0, deliveries - 1)))
    return float(delay * random.uniform(0.75, 1.25))  # noqa: S311
