"""Hardening helpers: problem+json assertions and polling, shared by the files here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, *statuses: int) -> dict[str, object]:
    """The response is one of `statuses`, rendered as RFC 9457 problem+json; returns the body."""
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON, response.headers
    body: dict[str, object] = response.json()
    assert body["status"] == response.status_code
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.1
) -> float:
    """Poll `probe` until it is true; returns the seconds it took (fails after `timeout`)."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while not await probe():
            await asyncio.sleep(interval)
    return time.monotonic() - started
