"""The "commit → SSE client" measurement of `make bench` (bench/run.py).

`SseProbe` is a Server-Sent Events client of `GET /api/v2/orders/events`, connected as a
site admin (who sees every order's events) while apibench.py runs. It records when each
event arrives. apibench's end-to-end phase (300 orders, 30 at a time) comes after its
correctness checks and before its load phases; the probe hangs up once it has seen at least
`created_before_quiet` `order.created` events (the checks' ~42 and the phase's 300) and then
`quiet_seconds` without any event: the pause after the phase, before wrk's load phases (the
first of which writes no order), so that the probe does not load the server during them.

`commit_to_client` then takes the events of the end-to-end phase's orders and measures, for
each, its arrival minus its commit. The commit time is the envelope's `occurred_at`, which
the writer sets just before its transaction commits: the figure is an upper bound of the
latency, by the length of that transaction's end (a few milliseconds).

Standard library only, so that it runs in any Python.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Arrival:
    """One event as the probe received it."""

    received_at: float  # Unix seconds
    event_type: str
    order_id: int | None
    occurred_at: float  # Unix seconds, from the envelope


@dataclass
class SseProbe:
    """An SSE client in a thread of its own; see the module docstring."""

    base_url: str
    token: str
    created_before_quiet: int = 300
    quiet_seconds: float = 2.0
    arrivals: list[Arrival] = field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        self._connected = threading.Event()
        self._done = threading.Event()
        self._connection: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="sse-probe", daemon=True)

    def start(self, timeout: float = 30) -> None:
        """Connect; returns once the stream is open (its first bytes arrived)."""
        self._thread.start()
        if not self._connected.wait(timeout):
            raise RuntimeError(f"the SSE probe did not connect: {self.error}")
        threading.Thread(target=self._hang_up_when_quiet, daemon=True).start()

    def stop(self) -> None:
        """Hang up (if not done yet) and wait for the reader."""
        self._hang_up()
        self._thread.join(10)

    def _run(self) -> None:
        url = urlsplit(self.base_url)
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80)
        self._connection = connection
        try:
            connection.request(
                "GET",
                "/api/v2/orders/events",
                headers={"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"},
            )
            response = connection.getresponse()
            if response.status != 200:
                self.error = f"{response.status} {response.read()[:200]!r}"
                return
            pending = b""
            while not self._done.is_set():
                chunk = response.read1(65536)
                if not chunk:
                    return
                received_at = time.time()
                self._connected.set()
                pending += chunk
                *messages, pending = pending.split(b"\n\n")
                for message in messages:
                    self._record(message, received_at)
        except (OSError, http.client.HTTPException) as exc:
            if not self._done.is_set():
                self.error = repr(exc)
        finally:
            self._done.set()
            self._connected.set()
            connection.close()

    def _record(self, message: bytes, received_at: float) -> None:
        fields: dict[str, str] = {}
        for line in message.decode().split("\n"):
            name, _, value = line.partition(": ")
            if name and not name.startswith(":"):
                fields[name] = value
        if "data" not in fields:
            return  # a comment (keep-alive)
        envelope: dict[str, Any] = json.loads(fields["data"])
        order_id = envelope.get("payload", {}).get("order_id")
        self.arrivals.append(
            Arrival(
                received_at=received_at,
                event_type=fields.get("event", ""),
                order_id=order_id if isinstance(order_id, int) else None,
                occurred_at=datetime.fromisoformat(envelope["occurred_at"]).timestamp(),
            )
        )

    def _hang_up_when_quiet(self) -> None:
        while not self._done.wait(0.1):
            arrivals = self.arrivals
            created = sum(1 for a in arrivals if a.event_type == "order.created")
            quiet_for = time.time() - arrivals[-1].received_at if arrivals else 0.0
            if created >= self.created_before_quiet and quiet_for >= self.quiet_seconds:
                self._hang_up()

    def _hang_up(self) -> None:
        self._done.set()
        connection = self._connection
        if connection is not None and connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)


def commit_to_client(arrivals: list[Arrival], order_ids: set[int]) -> dict[str, Any]:
    """Arrival − commit (ms) of the events of these orders: p50, p99, max, by type."""
    delays = sorted(
        (a.received_at - a.occurred_at) * 1000 for a in arrivals if a.order_id in order_ids
    )
    by_type: dict[str, int] = {}
    for arrival in arrivals:
        if arrival.order_id in order_ids:
            by_type[arrival.event_type] = by_type.get(arrival.event_type, 0) + 1
    seen = {a.order_id for a in arrivals if a.event_type == "order.created"}
    summary: dict[str, Any] = {
        "events": len(delays),
        "by_type": by_type,
        "orders_without_created_event": len(order_ids - seen),
    }
    if not delays:
        return {**summary, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}

    def pick(q: float) -> float:
        return round(delays[min(len(delays) - 1, int(q * len(delays)))], 1)

    return {**summary, "p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(delays[-1], 1)}
