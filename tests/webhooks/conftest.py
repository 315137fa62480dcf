"""Webhook test fixtures: real receiver processes, and helpers to read deliveries."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.polling import eventually
from tests.processes import free_port

RECEIVER = Path(__file__).with_name("receiver.py")


class Receiver:
    """`receiver.py` in a process of its own, on a free port of 127.0.0.1."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(RECEIVER), str(self.port)], stdout=self._log, stderr=self._log
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/hooks/taskhub") -> str:
        """A webhook URL on this receiver."""
        return self.base + path

    async def wait_ready(self) -> None:
        """Block until it answers."""
        deadline = time.monotonic() + 15
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(self.base + "/_received")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the receiver did not start")
                await asyncio.sleep(0.05)

    async def control(self, **values: Any) -> None:
        """Change how it answers: secret, fail_remaining, fail_status, delay, redirect_to."""
        async with httpx.AsyncClient() as client:
            response = await client.post(self.base + "/_control", json=values)
            assert response.status_code == 204

    async def received(self) -> dict[str, Any]:
        """What it saw: accepted (once per webhook-id), requests per id, rejected, duplicates."""
        async with httpx.AsyncClient() as client:
            report: dict[str, Any] = (await client.get(self.base + "/_received")).json()
            return report

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float, what: str
    ) -> dict[str, Any]:
        """Poll the report until `predicate` holds; fail at the deadline."""
        report: dict[str, Any] = {}

        async def holds() -> bool:
            nonlocal report
            report = await self.received()
            return predicate(report)

        await eventually(holds, timeout=timeout, what=what)
        return report

    def close(self) -> None:
        """Stop the process."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[[], Awaitable[Receiver]]]:
    """Start receivers; all are stopped at the end."""
    started: list[Receiver] = []

    async def start() -> Receiver:
        receiver = Receiver(tmp_path / f"receiver-{len(started)}.log")
        started.append(receiver)
        await receiver.wait_ready()
        return receiver

    yield start
    for receiver in started:
        receiver.close()
