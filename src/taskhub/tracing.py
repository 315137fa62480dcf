"""OpenTelemetry traces across the event pipeline: HTTP → outbox → relay → stream → handler.

Only the OpenTelemetry API is a dependency. Spans are recorded when the process has a
configured tracer provider (an SDK installed by `opentelemetry-instrument`, or
`OPENTELEMETRY_SPANS_FILE`, see `configure_tracing`); without one every function here is a
cheap no-op, and the W3C context is still passed along unchanged.

- **Request.** FastAPI's own telemetry (`OPENTELEMETRY_ENABLED`) opens the server span as a
  child of the request's `traceparent`. Without a span of its own the API still honours the
  header: the edge middleware keeps it (`remember_incoming`), so the trace goes on in the
  workers.
- **Outbox.** Every outbox row builder stores `current_carrier()` with the row: the W3C
  carrier (`traceparent`, `tracestate`, `baggage`) of the current span, as JSON text.
- **Relay.** One PRODUCER span per event published (`publish <type>`), child of the row's
  context; its own context travels in the stream entry's `traceparent`/`tracestate` fields
  (the envelope itself stays as the contract has it).
- **Handler.** The consumer's CONSUMER span (`process <type>`), child of the entry's context,
  wraps the handlers' transaction; work done inside it (a webhook delivery row, an HTTP
  call) continues the trace through `headers()` / `current_carrier()`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

logger = logging.getLogger("taskhub.tracing")

TRACER_NAME = "taskhub"
# Stream entry fields that carry the context next to the envelope.
TRACEPARENT_FIELD = b"traceparent"
TRACESTATE_FIELD = b"tracestate"
_W3C_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
# The request's own W3C headers, kept when the API records no span of its own.
_incoming: ContextVar[str | None] = ContextVar("incoming_trace_context", default=None)


def enabled() -> bool:
    """Whether this process records spans (a tracer provider is configured)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


# Carriers ---------------------------------------------------------------------------------


def encode(carrier: Mapping[str, str]) -> str | None:
    """A carrier as the outbox stores it (JSON text); None when it names no trace."""
    return orjson.dumps(dict(carrier)).decode() if "traceparent" in carrier else None


def decode(text: str | bytes | None) -> dict[str, str]:
    """The carrier of an outbox row's `trace_context` (empty when absent or unreadable)."""
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}


def remember_incoming(traceparent: str | None, tracestate: str | None) -> Any:
    """Keep the request's W3C headers for `current_carrier` (a token for `forget_incoming`)."""
    if traceparent is None or not _W3C_TRACEPARENT.match(traceparent.strip()):
        return None
    carrier = {"traceparent": traceparent.strip()}
    if tracestate:
        carrier["tracestate"] = tracestate[:512]
    return _incoming.set(orjson.dumps(carrier).decode())


def forget_incoming(token: Any) -> None:
    """Undo `remember_incoming`."""
    if token is not None:
        _incoming.reset(token)


def current_carrier() -> str | None:
    """The trace context to store with an outbox row: the current span's, else the
    request's own headers, else None."""
    if not enabled():  # no span can be current: skip the propagators (every event pays it)
        return _incoming.get()
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" in carrier:
        return encode(carrier)
    return _incoming.get()


def headers() -> dict[str, str]:
    """W3C headers (`traceparent`, …) continuing the current trace, for an outgoing HTTP
    request such as a webhook delivery; empty when nothing is traced."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" not in carrier:
        carrier = decode(_incoming.get())
    return carrier


def entry_fields(carrier: Mapping[str, str]) -> dict[bytes, bytes]:
    """A carrier as stream entry fields."""
    fields = {}
    if "traceparent" in carrier:
        fields[TRACEPARENT_FIELD] = carrier["traceparent"].encode()
    if "tracestate" in carrier:
        fields[TRACESTATE_FIELD] = carrier["tracestate"].encode()
    return fields


def carrier_of_entry(fields: Mapping[bytes, bytes] | None) -> dict[str, str]:
    """The carrier a stream entry's fields hold (empty when none)."""
    if not fields:
        return {}
    carrier = {}
    for key, name in ((TRACEPARENT_FIELD, "traceparent"), (TRACESTATE_FIELD, "tracestate")):
        value = fields.get(key)
        if value:
            carrier[name] = value.decode(errors="replace")
    return carrier


# Spans --------------------------------------------------------------------------------------


def start_span(
    name: str,
    *,
    parent: Mapping[str, str],
    kind: SpanKind,
    attributes: Mapping[str, Any] | None = None,
) -> Span:
    """Start (not activate) a span, child of the context in `parent` (a root without one).

    Callers check `enabled()` first: without a provider this returns a non-recording span.
    """
    return _tracer().start_span(
        name, context=propagate.extract(parent), kind=kind, attributes=dict(attributes or {})
    )


def carrier_of(span: Span) -> dict[str, str]:
    """The W3C carrier naming `span` as the parent."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def end_span(span: Span, error: BaseException | None = None) -> None:
    """End a span, marking it failed when `error` is given."""
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


@contextmanager
def continued(
    name: str,
    carrier: Mapping[str, str],
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span | None]:
    """Run the block in a span continuing `carrier`'s trace (the current span inside it);
    yields None, and does nothing, when the process records no spans.

    Webhook delivery: `with continued("webhook deliver", carrier, kind=SpanKind.CLIENT):`
    then send `headers()` with the request.
    """
    if not enabled():
        yield None
        return
    span = start_span(name, parent=carrier, kind=kind, attributes=attributes)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except BaseException as exc:
        end_span(span, exc)
        raise
    else:
        span.end()
    finally:
        otel_context.detach(token)


@contextmanager
def activated(span: Span | None) -> Iterator[None]:
    """Make `span` the current span for the block (nothing when None)."""
    if span is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


# Configuration ------------------------------------------------------------------------------


def configure_tracing(*, service_name: str, spans_file: Path | None) -> None:
    """With `spans_file` (OPENTELEMETRY_SPANS_FILE): install the OpenTelemetry SDK's tracer
    provider, writing each ended span to the file as one JSON line. Without it nothing is
    changed: a provider installed otherwise (`opentelemetry-instrument`) is used as is."""
    if spans_file is None:
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        logger.warning(
            "OPENTELEMETRY_SPANS_FILE is set but the OpenTelemetry SDK is not installed "
            "(pip install opentelemetry-sdk): no spans are recorded"
        )
        return
    out = spans_file.open("a", encoding="utf-8")  # open for the life of the process
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    # Exported as each span ends, so that a process killed later has written its spans.
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
