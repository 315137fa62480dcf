"""Ending a process's background tasks."""

from __future__ import annotations

import asyncio
import contextlib


async def finish(task: asyncio.Task[None], grace: float) -> None:
    """Wait up to `grace` seconds for a task that was told to stop, then cancel it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), timeout=grace)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
