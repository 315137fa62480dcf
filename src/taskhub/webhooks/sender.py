"""One delivery attempt over HTTP: checked, signed, bounded (see `webhooks.delivery`).

The URL is checked again (`addresses.check_url`) and the request goes to the address that
was checked, with the URL's host as `Host` and TLS server name; redirects are not followed;
at most `MAX_RESPONSE_BYTES` of an error answer are read (nothing of a 2xx one). A 2xx within
the timeout succeeds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import httpx
import yarl

from taskhub.webhooks.addresses import IPAddress, RefusedUrl, check_url
from taskhub.webhooks.signing import signed_headers

# What is read of a failed attempt's answer, for its `error` (a 2xx answer's body: nothing).
MAX_RESPONSE_BYTES = 4096
ERROR_EXCERPT = 200
USER_AGENT = "taskhub-webhooks/1"


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one attempt went."""

    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None


class Sender:
    """POSTs signed deliveries (see the module docstring), with aiohttp: a third of httpx's
    CPU per request (bench/NOTES.md), which a burst of deliveries spends beside the
    pipeline's own work in the worker."""

    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self._timeout = timeout
        self._allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # No connection is reused: each one was opened to an address checked for
                # its URL, with that URL's host as TLS server name.
                connector=aiohttp.TCPConnector(force_close=True),
                # No proxy from the environment: it would connect on our behalf to
                # addresses nobody checked.
                trust_env=False,
                headers={"user-agent": USER_AGENT},
                # The error excerpt is the bytes as sent: nothing is decompressed, and no
                # compression is asked for.
                auto_decompress=False,
                skip_auto_headers=("accept-encoding",),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()

    async def send(self, *, url: str, secrets: Sequence[str], msg_id: str, body: bytes) -> Attempt:
        """One attempt: checked, signed, bounded in time and in what it reads."""
        started = time.perf_counter()
        status: int | None = None
        try:
            async with asyncio.timeout(self._timeout):
                target = await check_url(url, allow_private=self._allow_private)
                headers = signed_headers(
                    secrets, msg_id=msg_id, timestamp=int(time.time()), body=body
                )
                headers["host"] = target.url.netloc.decode("ascii")
                async with self._client().post(
                    _to_address(target.url, target.addresses[0]),
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    server_hostname=target.host if target.url.scheme == "https" else None,
                ) as response:
                    status = response.status
                    # A 2xx says all there is to say: its body is never read.
                    ok = 200 <= status < 300
                    excerpt = b"" if ok else await _read_bounded(response)
        except RefusedUrl as refused:
            return self._result(started, None, f"refused: {refused}")
        except TimeoutError:
            return self._result(started, status, f"no answer within {self._timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return self._result(started, status, f"{exc.__class__.__name__}: {exc}"[:500])
        if 200 <= status < 300:
            return self._result(started, status, None)
        if 300 <= status < 400:
            return self._result(started, status, f"HTTP {status}: redirects are not followed")
        text = excerpt.decode("utf-8", "replace").strip()[:ERROR_EXCERPT]
        return self._result(started, status, f"HTTP {status}" + (f": {text}" if text else ""))

    @staticmethod
    def _result(started: float, status: int | None, error: str | None) -> Attempt:
        elapsed = time.perf_counter() - started
        return Attempt(
            ok=error is None,
            status_code=status,
            latency_ms=round(elapsed * 1000),
            error=error,
        )


def _to_address(url: httpx.URL, address: IPAddress) -> yarl.URL:
    """The URL with its host replaced by the address that was checked (the path and query
    exactly as registered)."""
    path, _, query = url.raw_path.decode("ascii").partition("?")
    return yarl.URL.build(
        scheme=url.scheme,
        host=f"[{address}]" if address.version == 6 else str(address),
        port=url.port,
        path=path,
        query_string=query,
        encoded=True,
    )


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """At most MAX_RESPONSE_BYTES of the answer (the rest is never read)."""
    read = bytearray()
    while len(read) < MAX_RESPONSE_BYTES:
        chunk = await response.content.read(MAX_RESPONSE_BYTES - len(read))
        if not chunk:
            break
        read += chunk
    return bytes(read)
