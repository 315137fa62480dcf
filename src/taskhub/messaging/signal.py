"""An in-process wake-up for the outbox dispatcher, set after a commit that wrote events."""

from __future__ import annotations

import asyncio


class WakeSignal:
    """Coalescing wake-up: many `wake()` calls before one `wait()` cost one loop turn."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        """Ask the waiting loop to run now."""
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Return when woken, or after `seconds`."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            pass
        self._event.clear()
