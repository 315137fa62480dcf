"""A webhook receiver, run as a process of its own by the tests: `python receiver.py PORT`.

It verifies every delivery with the `standardwebhooks` package (the secret is set through
`POST /_control`), deduplicates by `webhook-id` as receivers are told to, and can be told to
answer failures for a while, to answer slowly, or to redirect. `GET /_received` reports what
it saw: the deliveries it accepted (each webhook-id once), every request per id, and the
requests it rejected.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

_lock = threading.Lock()
_control: dict[str, Any] = {
    "secret": None,
    "fail_remaining": 0,
    "fail_status": 500,
    "delay": 0.0,
    "redirect_to": None,
}
_accepted: list[dict[str, Any]] = []
_seen: set[str] = set()
_requests: dict[str, int] = {}
_rejected: list[str] = []
_duplicates = [0]
_answered = [0]


class Handler(BaseHTTPRequestHandler):
    """The control endpoints, and every other POST as a webhook delivery."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 (quiet)
        return

    def _answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        if self.path not in ("/_control", "/_received"):
            with _lock:
                _answered[0] += 1

    def do_GET(self) -> None:
        if self.path != "/_received":
            self._answer(404)
            return
        with _lock:
            report = {
                "accepted": list(_accepted),
                "requests": dict(_requests),
                "rejected": list(_rejected),
                "duplicates": _duplicates[0],
                "answered": _answered[0],
            }
        self._answer(200, report)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/_control":
            with _lock:
                _control.update(json.loads(body))
            self._answer(204)
            return
        msg_id = self.headers.get("webhook-id") or "-"
        with _lock:
            _requests[msg_id] = _requests.get(msg_id, 0) + 1
            control = dict(_control)
            failing = control["fail_remaining"] > 0
            if failing:
                _control["fail_remaining"] -= 1
        if control["delay"]:
            time.sleep(control["delay"])
        if control["redirect_to"]:
            self._answer(307, headers={"location": control["redirect_to"]})
            return
        if failing:
            self._answer(control["fail_status"], {"error": "failing on purpose"})
            return
        try:
            event = Webhook(control["secret"]).verify(body, dict(self.headers.items()))
        except (WebhookVerificationError, TypeError, ValueError) as exc:
            with _lock:
                _rejected.append(f"{msg_id}: {exc!r}")
            self._answer(400, {"error": "bad signature"})
            return
        with _lock:
            if msg_id in _seen:
                _duplicates[0] += 1
            else:
                _seen.add(msg_id)
                _accepted.append(
                    {
                        "webhook_id": msg_id,
                        "timestamp": self.headers.get("webhook-timestamp"),
                        "signature": self.headers.get("webhook-signature", ""),
                        "signatures": self.headers.get("webhook-signature", "").count("v1,"),
                        "body": body.decode(),
                        "content_type": self.headers.get("content-type"),
                        "host": self.headers.get("host"),
                        "path": self.path,
                        "event": event,
                    }
                )
        self._answer(200, {"ok": True})


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
