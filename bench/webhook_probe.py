"""The "commit → webhook receiver" measurement of `make bench` (bench/run.py).

`WebhookProbe` is a webhook receiver (an HTTP server in a thread of its own) and the
endpoint that points at it: a site admin's `"scope": "all"` endpoint, registered just before
apibench.py runs, so that every order event is delivered to it. It records when each
delivery arrives and answers 204 at once. Like the SSE probe (`sse_probe.py`), it deletes
its endpoint once it has seen `created_before_quiet` `order.created` events and then
`quiet_seconds` without any delivery: the pause after apibench's end-to-end phase, before
wrk's load phases, so that deliveries do not load the server or the worker during them.

`sse_probe.commit_to_client` then measures arrival − commit for the events of the
end-to-end phase's orders (commit: the envelope's `occurred_at`). The server needs
WEBHOOK_ALLOW_PRIVATE=true to deliver to 127.0.0.1.

Standard library only, so that it runs in any Python.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sse_probe import Arrival


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: with the delivery loop's 16 connections at
    # once, the kernel resets the rest, and they come back only on the 5 s retry. A real
    # receiver (uvicorn: 2048) takes them all.
    request_queue_size = 1024
    daemon_threads = True


@dataclass
class WebhookProbe:
    """A receiver and its endpoint; see the module docstring."""

    base_url: str
    token: str
    created_before_quiet: int = 300
    quiet_seconds: float = 2.0
    arrivals: list[Arrival] = field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        probe = self

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                received_at = time.time()
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                self.send_response(204)
                self.end_headers()
                probe._record(body, received_at)

            def log_message(self, *_args: Any) -> None:
                return

        self._server = _Server(("127.0.0.1", 0), Receiver)
        self._lock = threading.Lock()
        self._endpoint: int | None = None
        self._done = threading.Event()

    @property
    def url(self) -> str:
        """Where the receiver listens."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> None:
        """Listen, and register the endpoint."""
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        created = self._call("POST", "/api/v2/webhooks", {"url": self.url, "scope": "all"})
        self._endpoint = int(created["id"])
        threading.Thread(target=self._stop_when_quiet, daemon=True).start()

    def stop(self) -> None:
        """Delete the endpoint (if not done yet) and stop listening."""
        self._unregister()
        self._server.shutdown()

    def _record(self, body: bytes, received_at: float) -> None:
        try:
            envelope: dict[str, Any] = json.loads(body)
            order_id = envelope.get("payload", {}).get("order_id")
            arrival = Arrival(
                received_at=received_at,
                event_type=str(envelope.get("type", "")),
                order_id=order_id if isinstance(order_id, int) else None,
                occurred_at=datetime.fromisoformat(envelope["occurred_at"]).timestamp(),
            )
        except (ValueError, KeyError) as exc:
            self.error = repr(exc)
            return
        with self._lock:
            self.arrivals.append(arrival)

    def _stop_when_quiet(self) -> None:
        while not self._done.wait(0.1):
            with self._lock:
                arrivals = list(self.arrivals)
            created = sum(1 for a in arrivals if a.event_type == "order.created")
            quiet_for = time.time() - arrivals[-1].received_at if arrivals else 0.0
            if created >= self.created_before_quiet and quiet_for >= self.quiet_seconds:
                self._unregister()

    def _unregister(self) -> None:
        if self._done.is_set():
            return
        self._done.set()
        if self._endpoint is not None:
            try:
                self._call("DELETE", f"/api/v2/webhooks/{self._endpoint}", None)
            except OSError as exc:
                self.error = repr(exc)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 (the bench's own server)
            self.base_url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            raw = response.read()
        parsed: dict[str, Any] = json.loads(raw) if raw else {}
        return parsed
