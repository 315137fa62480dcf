"""The sender's request, as a raw socket sees it: to the checked address, with the URL's
host as `Host`, its path and query exactly as registered, signed, nothing asked to be
compressed; one connection per attempt; what it reads of an answer is bounded; redirects
and timeouts are failed attempts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from taskhub.webhooks.sender import ERROR_EXCERPT, Attempt, Sender

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class RawServer:
    """Answers each request with `answer` (raw bytes) after `delay` seconds, and records
    each request's head."""

    answer: bytes = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
    delay: float = 0.0
    heads: list[list[str]] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[:-2]
        self.heads.append(head)
        length = next(
            (int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length")), 0
        )
        await reader.readexactly(length)
        await asyncio.sleep(self.delay)
        writer.write(self.answer)
        await writer.drain()
        writer.close()


@pytest.fixture
async def raw() -> AsyncIterator[RawServer]:
    server = RawServer()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    yield server
    listening.close()


async def send(url: str, *, timeout: float = 5.0) -> Attempt:
    sender = Sender(timeout=timeout, allow_private=True)
    try:
        return await sender.send(url=url, secrets=[SECRET], msg_id="msg_1", body=b'{"a":1}')
    finally:
        await sender.aclose()


def header(head: list[str], name: str) -> str | None:
    for line in head[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


async def test_the_request_goes_to_the_checked_address_as_registered(raw: RawServer) -> None:
    attempt = await send(f"http://localhost:{raw.port}/hooks/a%20b/c?x=1&y=%2F")
    assert attempt.ok and attempt.status_code == 204
    (head,) = raw.heads
    assert head[0] == "POST /hooks/a%20b/c?x=1&y=%2F HTTP/1.1"
    assert header(head, "host") == f"localhost:{raw.port}"
    assert header(head, "webhook-id") == "msg_1"
    assert (header(head, "webhook-signature") or "").startswith("v1,")
    assert header(head, "content-length") == "7"
    assert header(head, "accept-encoding") is None
    assert header(head, "user-agent") == "taskhub-webhooks/1"


async def test_each_attempt_opens_its_own_connection(raw: RawServer) -> None:
    raw.answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    sender = Sender(timeout=5, allow_private=True)
    try:
        for _ in range(3):
            attempt = await sender.send(
                url=f"http://127.0.0.1:{raw.port}/h", secrets=[SECRET], msg_id="m", body=b"{}"
            )
            assert attempt.ok
    finally:
        await sender.aclose()
    assert raw.connections == 3


async def test_an_error_answer_is_read_boundedly(raw: RawServer) -> None:
    body = b"E" * 100_000
    raw.answer = b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    attempt = await send(f"http://127.0.0.1:{raw.port}/h")
    assert not attempt.ok
    assert attempt.status_code == 500
    assert attempt.error == "HTTP 500: " + "E" * ERROR_EXCERPT


async def test_a_redirect_is_not_followed(raw: RawServer) -> None:
    raw.answer = (
        b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n"
    )
    attempt = await send(f"http://127.0.0.1:{raw.port}/h")
    assert attempt.status_code == 302
    assert attempt.error == "HTTP 302: redirects are not followed"
    assert len(raw.heads) == 1


async def test_a_slow_answer_is_a_timeout(raw: RawServer) -> None:
    raw.delay = 2.0
    attempt = await send(f"http://127.0.0.1:{raw.port}/h", timeout=0.3)
    assert not attempt.ok
    assert attempt.error == "no answer within 0.3 s"


async def test_nothing_listening_is_a_failed_attempt() -> None:
    attempt = await send("http://127.0.0.1:9/h")
    assert not attempt.ok
    assert attempt.status_code is None
    assert "Connect" in (attempt.error or "")
