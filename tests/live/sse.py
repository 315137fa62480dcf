"""Test helpers for event streams: the app served over real HTTP (httpx's ASGI transport
buffers whole responses, so it cannot read a stream), and a Server-Sent Events reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app (already started: its lifespan is the caller's) on a free port of
    127.0.0.1, in this event loop; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=_free_port(),
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Message:
    """One SSE message."""

    id: str | None
    event: str | None
    data: str

    @property
    def event_id(self) -> str:
        """The message's id, which every event message of taskhub's streams has."""
        assert self.id is not None, self
        return self.id

    @property
    def envelope(self) -> dict[str, Any]:
        """The event's envelope (the message's data)."""
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


@dataclass
class EventStream:
    """An open event stream, read in the background into messages and comments."""

    response: httpx.Response
    messages: asyncio.Queue[Message | None] = field(default_factory=asyncio.Queue)
    comments: list[str] = field(default_factory=list)
    ended: bool = False
    _reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if data:
                        await self.messages.put(
                            Message(fields.get("id"), fields.get("event"), "\n".join(data))
                        )
                    fields, data = {}, []
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        data.append(value)
                    else:
                        fields[name] = value
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            self.ended = True
            await self.messages.put(None)

    async def next(self, timeout: float = 20) -> Message | None:
        """The next message; None once the stream has ended."""
        if self.ended and self.messages.empty():
            return None
        async with asyncio.timeout(timeout):
            return await self.messages.get()

    async def take_until(
        self, last: str, *, skip: frozenset[str] = frozenset(), timeout: float = 30
    ) -> list[Message]:
        """The messages up to and including the first of type `last`, without those of the
        `skip` types (events whose timing the test does not control)."""
        taken: list[Message] = []
        async with asyncio.timeout(timeout):
            while not taken or taken[-1].event != last:
                message = await self.messages.get()
                assert message is not None, f"the stream ended after {taken}"
                if message.event not in skip:
                    taken.append(message)
        return taken

    async def take(self, count: int, timeout: float = 30) -> list[Message]:
        """The next `count` messages (fails if the stream ends first)."""
        taken: list[Message] = []
        async with asyncio.timeout(timeout):
            while len(taken) < count:
                message = await self.messages.get()
                assert message is not None, f"the stream ended after {taken}"
                taken.append(message)
        return taken

    async def until_ended(self, timeout: float = 20) -> list[Message]:
        """Every message left, once the server has ended the stream."""
        rest = []
        async with asyncio.timeout(timeout):
            while (message := await self.messages.get()) is not None:
                rest.append(message)
        return rest

    async def close(self) -> None:
        await self.response.aclose()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> AsyncIterator[EventStream]:
    """Open an event stream (it must answer 200 text/event-stream) and read it."""
    request = client.build_request("GET", path, headers=headers, params=params)
    response = await client.send(request, stream=True)
    stream: EventStream | None = None
    try:
        if response.status_code != 200:
            await response.aread()
        assert response.status_code == 200, (response.status_code, response.text)
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(response)
        stream.start()
        # The server's first bytes, a comment, say the subscription is in place.
        async with asyncio.timeout(20):
            while not stream.comments and not stream.ended:
                await asyncio.sleep(0.01)
        yield stream
    finally:
        if stream is not None:
            await stream.close()
        else:
            await response.aclose()


async def refused(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """The answer to a stream request that must be refused (a stream that opens instead
    fails the test rather than hang it)."""
    request = client.build_request("GET", path, headers=headers, params=params)
    response = await client.send(request, stream=True)
    if response.status_code == 200:
        await response.aclose()
        raise AssertionError(f"{path}: the stream opened")
    await response.aread()
    return response
