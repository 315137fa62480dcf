"""Structured logging, the request id, and Prometheus metrics."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import Counter, Gauge, Histogram

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

HTTP_REQUESTS = Counter(
    "taskhub_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "taskhub_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_BACKLOG = Gauge("taskhub_outbox_backlog", "Outbox events not yet published")
OUTBOX_PUBLISHED = Counter("taskhub_outbox_published_total", "Outbox events published")
STREAM_LAG = Gauge(
    "taskhub_stream_lag", "Entries not yet delivered to the consumer group", ["stream", "group"]
)
STREAM_PENDING = Gauge(
    "taskhub_stream_pending", "Entries delivered but not acknowledged", ["stream", "group"]
)
STREAM_LENGTH = Gauge("taskhub_stream_length", "Entries in the stream (XLEN)", ["stream"])
STREAM_TRIM_POINT = Gauge(
    "taskhub_stream_trim_point_seconds",
    "Unix time of the oldest entry a consumer group still needs (pending or not delivered); "
    "only entries older than it are trimmed",
    ["stream"],
)
RELAY_HELD_BACK = Gauge(
    "taskhub_relay_held_back",
    "1 while this process's relay holds events back because the group's lag reached STREAM_MAXLEN",
    ["stream"],
)
EVENT_RETRIES = Counter(
    "taskhub_event_retries_total",
    "Failed attempts of an event that will be retried, by cause "
    "(unavailable and conflict are transient and never count toward dead-lettering)",
    ["cause"],
)
EVENTS_WAITING = Gauge(
    "taskhub_events_waiting_retry",
    "Events this process holds for a later attempt, per stream (`outbox` when embedded)",
    ["stream"],
)
DEPENDENCY_UP = Gauge(
    "taskhub_dependency_up",
    "1 while the dependency answers, as the event pipeline last saw it",
    ["dependency"],
)
DEAD_LETTERS = Gauge("taskhub_dead_letters", "Entries in the dead-letter stream", ["stream"])
DEAD_LETTERED = Counter("taskhub_dead_lettered_total", "Events moved to the dead-letter stream")
HANDLER_LATENCY = Histogram(
    "taskhub_handler_duration_seconds",
    "Event handler latency",
    ["event_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
HANDLER_RESULTS = Counter(
    "taskhub_handler_results_total", "Event handler outcomes", ["event_type", "result"]
)
WEBHOOK_DELIVERIES = Counter(
    "taskhub_webhook_deliveries_total",
    "Webhook delivery attempts by result: succeeded, retry (failed, tried again later), "
    "failed (the last attempt failed)",
    ["result"],
)
WEBHOOK_DELIVERY_LATENCY = Histogram(
    "taskhub_webhook_delivery_duration_seconds",
    "Time from sending a webhook to its answer (or to the failure)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_RETRY_QUEUE = Gauge(
    "taskhub_webhook_retry_queue",
    "Pending webhook deliveries waiting for a retry (at least one attempt failed)",
)
WEBHOOK_ENDPOINTS_DISABLED = Gauge(
    "taskhub_webhook_endpoints_disabled", "Webhook endpoints that are disabled"
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id when there is one.

    A record may carry `event_id`, `event_type` and a `fields` dict (e.g. the ids an event's
    payload names), each written as keys of their own.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid and rid != "-":
            entry["request_id"] = rid
        for key in ("event_id", "event_type"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        return True


def configure_logging(*, json_logs: bool, level: str = "INFO") -> None:
    """JSON lines outside dev, readable lines in dev; `level` is LOG_LEVEL."""
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-5s %(name)s [%(request_id)s] %(message)s")
        )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
