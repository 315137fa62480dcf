"""Edge middleware: one pure-ASGI layer for what every request needs, and CORS.

Request id, trailing-slash tolerance, the body size limit, security headers and HTTP metrics.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskhub.errors import PayloadTooLarge, problem_response
from taskhub.observability import HTTP_LATENCY, HTTP_REQUESTS, request_id_var
from taskhub.tracing import forget_incoming, remember_incoming

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
# OWASP REST Security Cheat Sheet: an API response is never framed, sniffed, cached or
# allowed to load anything. The docs UI loads its scripts, so it gets only `nosniff`; the
# /live page gets the rest with a policy of its own (LIVE_PAGE_CSP).
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
_DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")
# The /live page (taskhub.live.page) runs its own script and style and talks to this server
# only (the API and its event streams); nothing else, nothing inline.
LIVE_PAGE_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    b"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
LIVE_PAGE_HEADERS = [
    (name, LIVE_PAGE_CSP if name == b"content-security-policy" else value)
    for name, value in SECURITY_HEADERS
]


class _BodyTooLarge(HTTPException):
    """Raised from `receive` mid-stream (a chunked body, or one longer than it declared).

    An HTTPException, because FastAPI turns any other exception raised while it reads the
    body into a 400; this one it re-raises, and the app's handler renders it as a 413 problem.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds {limit} bytes")


class EdgeMiddleware:
    """Wraps every HTTP request; see the module docstring."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # One pair per label set the metrics themselves keep (unmatched paths share a route).
        self._metric_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
            scope["path"] = path
            scope["raw_path"] = path.encode()

        request_id = _incoming_request_id(scope) or new_request_id()
        token = request_id_var.set(request_id)
        # The request's W3C trace context goes with the events it writes, traced here or not.
        trace_token = _remember_trace(scope)
        rid = request_id.encode()
        started = time.perf_counter()
        status_holder = [500]

        response_started = False
        if path.startswith(_DOCS_PATHS):
            security_headers = SECURITY_HEADERS[:1]
        elif path == "/live" or path.startswith("/live/"):
            security_headers = LIVE_PAGE_HEADERS
        else:
            security_headers = SECURITY_HEADERS

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder[0] = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", rid))
                headers.extend(security_headers)
                message["headers"] = headers
            await send(message)

        limit = self.max_body_bytes
        if _declared_length(scope) > limit:
            # Refused before a byte of the body is read.
            try:
                await _too_large(limit)(scope, receive, send_wrapper)
            finally:
                self._observe(scope, 413, started)
                request_id_var.reset(token)
                forget_incoming(trace_token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _BodyTooLarge:
            # Read outside FastAPI's body parsing (which renders it itself): answer here.
            if not response_started:
                await _too_large(limit)(scope, receive, send_wrapper)
            status_holder[0] = 413
        finally:
            self._observe(scope, status_holder[0], started)
            request_id_var.reset(token)
            forget_incoming(trace_token)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        key = (scope["method"], self._route_template(scope), status)
        children = self._metric_children.get(key)
        if children is None:
            # `labels()` takes a lock and builds the label tuple; the children are kept.
            method, route, _ = key
            children = (
                HTTP_REQUESTS.labels(method, route, str(status)),
                HTTP_LATENCY.labels(method, route),
            )
            self._metric_children[key] = children
        children[0].inc()
        children[1].observe(elapsed)

    @staticmethod
    def _route_template(scope: Scope) -> str:
        # The router records the matched route in the scope; unmatched paths share one label
        # so that scanning random URLs cannot blow up the metric's cardinality.
        route = scope.get("route")
        return str(getattr(route, "path", "<unmatched>"))


class _RequestIds:
    """Request ids: 32 hex digits, a random prefix per process and a counter.

    Unique without a system call per request (uuid4 reads the OS's random source); a forked
    child draws a prefix of its own.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        """A new prefix, and the count from zero."""
        self.prefix = os.urandom(10).hex()
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFF:012x}"


new_request_id = _RequestIds()


def _too_large(limit: int) -> Response:
    return problem_response(
        PayloadTooLarge.status,
        f"The request body exceeds {limit} bytes",
        title=PayloadTooLarge.title,
        type_slug=PayloadTooLarge.type_slug,
        headers={"Connection": "close"},
    )


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.match(candidate) else None
    return None


def _remember_trace(scope: Scope) -> Any:
    traceparent = tracestate = None
    for name, value in scope["headers"]:
        if name == b"traceparent":
            traceparent = value.decode("latin-1")
        elif name == b"tracestate":
            tracestate = value.decode("latin-1")
    return remember_incoming(traceparent, tracestate) if traceparent is not None else None


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with its refused preflight answered as problem+json like every error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """The preflight answer; a refusal (400) becomes a problem document."""
        response = super().preflight_response(request_headers)
        if response.status_code >= 400:
            detail = bytes(response.body).decode(errors="replace") or "CORS preflight refused"
            return problem_response(response.status_code, detail, type_slug="cors-refused")
        return response
