"""OPENTELEMETRY_ENABLED: FastAPI's native OpenTelemetry, off unless asked for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace

from taskhub.config import Settings
from tests.conftest import client_for


class RecordingTracer(trace.NoOpTracer):
    """Remembers the names of the spans it is asked to start."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        """Record the span, then start a non-recording one."""
        self.started.append(name)
        return super().start_span(name, *args, **kwargs)


class RecordingProvider(trace.TracerProvider):
    """A configured provider, as an OpenTelemetry SDK would install one."""

    def __init__(self) -> None:
        self.tracer = RecordingTracer()

    def get_tracer(self, *_args: Any, **_kwargs: Any) -> trace.Tracer:
        """The one recording tracer."""
        return self.tracer


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> RecordingProvider:
    """The process's tracer provider, for the test only."""
    recording = RecordingProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: recording)
    return recording


@pytest.mark.parametrize("shape", ["sqlite"], indirect=True)
@pytest.mark.parametrize("enabled", [False, True])
async def test_request_spans_only_when_enabled(
    app_factory: Callable[[Settings], Any],
    settings_factory: Callable[..., Settings],
    provider: RecordingProvider,
    enabled: bool,
) -> None:
    app = await app_factory(settings_factory(opentelemetry_enabled=enabled))
    async with client_for(app) as client:
        r = await client.get("/api/v2/products")
    assert r.status_code == 200
    if enabled:
        assert {"GET", "fastapi.endpoint"} <= set(provider.tracer.started)
    else:
        assert provider.tracer.started == []
