"""The suite's one poller: wait, with a deadline, for something to become true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest


async def eventually(
    probe: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 10,
    what: str = "the condition",
    every: float = 0.05,
) -> float:
    """Poll `probe` until it holds; returns the seconds it took. At the deadline the test
    fails, naming `what` (never a bare timeout from deep inside the probe)."""
    started = time.monotonic()
    deadline = started + timeout
    while not await probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)
    return time.monotonic() - started
