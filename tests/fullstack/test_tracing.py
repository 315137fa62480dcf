"""One trace from the HTTP request to the worker's handler, across two processes:
the API (in this process, the SDK's in-memory exporter) and a real `taskhub worker`
(exporting its spans to a file: OPENTELEMETRY_SPANS_FILE)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from taskhub import tracing
from taskhub.models import OutboxEvent
from tests.fullstack.conftest import WorkerProcess
from tests.fullstack.stack import Stack
from tests.polling import eventually

pytestmark = [pytest.mark.pg, pytest.mark.redis]

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@pytest.fixture
def api_spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """This process's tracer provider (the SDK, in memory), for the test only."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return exporter


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def hex_id(value: int, width: int) -> str:
    return f"0x{value:0{width}x}"


async def test_one_trace_from_the_request_through_the_outbox_and_stream_to_the_handler(
    stack_factory: Callable[..., Any],
    workers: Callable[..., WorkerProcess],
    api_spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    stack: Stack = await stack_factory(opentelemetry_enabled=True, stream_partitions=4)
    spans_file = tmp_path / "worker-spans.jsonl"
    worker = workers(stack.settings, OPENTELEMETRY_SPANS_FILE=str(spans_file))
    product = await stack.product(stock=5)
    r = await stack.client.post(
        "/api/v2/orders",
        json={"items": [{"product_id": product, "quantity": 1}]},
        headers={**stack.customer.headers, "traceparent": TRACEPARENT},
    )
    assert r.status_code == 201, r.text
    await stack.wait_drained(30, [worker])

    # The API: the server span continues the client's trace.
    server = next(
        s
        for s in api_spans.get_finished_spans()
        if s.kind == SpanKind.SERVER
        and s.attributes is not None
        and s.attributes.get("url.path") == "/api/v2/orders"
    )
    assert hex_id(server.context.trace_id, 32) == f"0x{CLIENT_TRACE}"
    assert server.parent is not None and hex_id(server.parent.span_id, 16) == f"0x{CLIENT_SPAN}"
    api_ids = {
        hex_id(s.context.span_id, 16)
        for s in api_spans.get_finished_spans()
        if s.context.trace_id == server.context.trace_id
    }

    # The worker (another process): relay → stream → handler, in the same trace.
    def named(name: str) -> dict[str, Any] | None:
        return next((s for s in read_spans(spans_file) if s["name"] == name), None)

    async def exported() -> bool:
        return named("process order.created") is not None

    await eventually(exported, timeout=15, what="the worker to export its spans")
    publish, process = named("publish order.created"), named("process order.created")
    assert publish is not None and process is not None
    assert publish["context"]["trace_id"] == process["context"]["trace_id"] == f"0x{CLIENT_TRACE}"
    assert publish["kind"] == "SpanKind.PRODUCER"
    assert publish["parent_id"] in api_ids, "the relay's span continues the request's"
    assert process["kind"] == "SpanKind.CONSUMER"
    assert process["parent_id"] == publish["context"]["span_id"], "handler ← stream ← relay"


async def test_the_requests_traceparent_is_stored_without_a_tracer(
    stack_factory: Callable[..., Any],
) -> None:
    # No SDK and OPENTELEMETRY_ENABLED off: the context still goes with the event.
    stack: Stack = await stack_factory()
    assert not tracing.enabled()
    product = await stack.product(stock=5)
    r = await stack.client.post(
        "/api/v2/orders",
        json={"items": [{"product_id": product, "quantity": 1}]},
        headers={**stack.customer.headers, "traceparent": TRACEPARENT, "tracestate": "k=v"},
    )
    assert r.status_code == 201, r.text
    untraced = await stack.client.post(
        "/api/v2/orders",
        json={"items": [{"product_id": product, "quantity": 1}]},
        headers={**stack.customer.headers, "traceparent": "00-garbage"},
    )
    assert untraced.status_code == 201, untraced.text
    async with stack.engine.connect() as conn:
        stored = (
            await conn.execute(
                select(OutboxEvent.trace_context)
                .where(OutboxEvent.type == "order.created")
                .order_by(OutboxEvent.id)
            )
        ).scalars()
        contexts = [orjson.loads(c) if c else None for c in stored]
    assert contexts == [{"traceparent": TRACEPARENT, "tracestate": "k=v"}, None]


def test_webhook_deliveries_can_continue_a_stored_trace(api_spans: InMemorySpanExporter) -> None:
    carrier = {"traceparent": TRACEPARENT}
    with tracing.continued("webhook deliver", carrier, kind=SpanKind.CLIENT) as span:
        assert span is not None
        sent = tracing.headers()
    [finished] = api_spans.get_finished_spans()
    assert sent["traceparent"] == f"00-{CLIENT_TRACE}-{finished.context.span_id:016x}-01"
    assert finished.parent is not None and f"{finished.parent.span_id:016x}" == CLIENT_SPAN
