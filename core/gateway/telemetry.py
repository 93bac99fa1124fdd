"""OpenTelemetry spans per pipeline stage, only when an OTLP endpoint is configured.

Off by default: ``span()`` then returns one shared no-op context manager, and
opentelemetry is never imported. With OTEL_EXPORTER_OTLP_ENDPOINT set and the
``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp`` packages installed, spans are
exported in batches; if the packages are missing, telemetry stays off and says so once.
"""

from __future__ import annotations

import contextlib
import logging

from core.settings import settings

log = logging.getLogger(__name__)
_NOOP = contextlib.nullcontext()
_tracer = None
_configured = False


def _setup():
    global _tracer, _configured
    _configured = True
    endpoint = settings().otel_endpoint
    if not endpoint:
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-sdk/exporter are not installed; gateway spans are off"
        )
        return
    provider = TracerProvider(resource=Resource.create({"service.name": "quorum-gateway"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("quorum.gateway")


def span(name: str):
    """``with span("gateway.guardrails"):`` - a real span when configured, else nothing."""
    if not _configured:
        _setup()
    if _tracer is None:
        return _NOOP
    return _tracer.start_as_current_span(name)


def reset() -> None:
    """Read the configuration again (tests)."""
    global _tracer, _configured
    _tracer, _configured = None, False
