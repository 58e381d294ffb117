"""The ready-made hooks, against the real libraries: ``PrometheusHook`` read back from a
fresh ``CollectorRegistry``, ``OpenTelemetryHook`` from the SDK's in-memory metric reader and
span exporter. Real streams drive them, on both backends, on virtual time, so the times the
hooks record are exact.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncGenerator, Iterator
from typing import Any, NamedTuple

import anyio
import prometheus_client
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from stream_deadline import StreamOutcome, StreamTimeoutError, __version__, with_deadline
from stream_deadline.instrumentation import (
    LoggingHook,
    OpenTelemetryHook,
    PrometheusHook,
    get_on_end_hooks,
    set_on_end_hooks,
)
from support import STALL, Closable, Record, collect, scripted


@pytest.fixture(autouse=True)
def default_hooks() -> Iterator[None]:
    """Every test starts and ends with the default hooks."""
    set_on_end_hooks(None)
    yield
    set_on_end_hooks(None)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


class Otel(NamedTuple):
    """An SDK set up for one test: metrics read in memory, spans exported in memory."""

    reader: InMemoryMetricReader
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    tracer_provider: TracerProvider

    def metrics(self) -> dict[str, Metric]:
        """Every metric recorded so far, by name (all from the meter ``stream_deadline``)."""
        data = self.reader.get_metrics_data()
        assert data is not None
        found = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert (scope.scope.name, scope.scope.version) == ("stream_deadline", __version__)
                found.update({metric.name: metric for metric in scope.metrics})
        return found

    def points(self, metric: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """The data points of ``metric``, by their attributes."""
        return {
            frozenset(point.attributes.items()): point for point in self.metrics()[metric].data.data_points
        }


@pytest.fixture
def otel() -> Iterator[Otel]:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    yield Otel(reader, meter_provider, spans, tracer_provider)
    meter_provider.shutdown()
    tracer_provider.shutdown()


def attrs(**attributes: str) -> frozenset[tuple[str, str]]:
    """OpenTelemetry metric attributes: ``name="chat"`` is ``stream_deadline.name: chat``."""
    return frozenset((f"stream_deadline.{key}", value) for key, value in attributes.items())


def sample(registry: CollectorRegistry, metric: str, name: str = "chat", **labels: str) -> float | None:
    """The sample ``stream_deadline_<metric>`` of the stream ``name`` with ``labels``, or None."""
    return registry.get_sample_value(f"stream_deadline_{metric}", {"name": name, **labels})


async def failing() -> AsyncGenerator[int, None]:
    """One item after 1 s, then, 1 s later, ``ValueError("boom")``."""
    await anyio.sleep(1)
    yield 0
    await anyio.sleep(1)
    raise ValueError("boom")


# PrometheusHook ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_prometheus_records_a_timeout_with_its_limit_and_lateness(registry: CollectorRegistry) -> None:
    """An idle timeout whose source takes 0.25 s to close is counted under ``limit="idle"``;
    its lateness is exactly those 0.25 s (in the 0.25 bucket, not the 0.1 one), its duration
    3.25 s, its time to first progress 1 s and its items 1."""
    set_on_end_hooks([PrometheusHook(registry)])
    with pytest.raises(StreamTimeoutError):
        await collect(with_deadline(Closable([1, STALL], close_delay=0.25), 10, idle=2, name="chat"))

    assert sample(registry, "streams_total", ending="timeout", limit="idle") == 1
    assert sample(registry, "timeout_lateness_seconds_count", limit="idle") == 1
    assert sample(registry, "timeout_lateness_seconds_sum", limit="idle") == 0.25
    assert sample(registry, "timeout_lateness_seconds_bucket", limit="idle", le="0.1") == 0
    assert sample(registry, "timeout_lateness_seconds_bucket", limit="idle", le="0.25") == 1
    assert sample(registry, "stream_duration_seconds_sum", ending="timeout") == 3.25
    assert sample(registry, "time_to_first_progress_seconds_sum") == 1
    assert sample(registry, "stream_items_sum") == 1


@pytest.mark.anyio
async def test_prometheus_records_a_timeout_cut_on_time_as_zero_lateness(registry: CollectorRegistry) -> None:
    """A deadline that cuts a source which closes at once reaches its consumer exactly on
    time: a lateness of 0. No item came, so no time to first progress is observed."""
    set_on_end_hooks([PrometheusHook(registry)])
    with pytest.raises(StreamTimeoutError):
        await collect(with_deadline(scripted([STALL], Record()), 5, name="chat"))

    assert sample(registry, "streams_total", ending="timeout", limit="deadline") == 1
    assert sample(registry, "timeout_lateness_seconds_sum", limit="deadline") == 0
    assert sample(registry, "timeout_lateness_seconds_count", limit="deadline") == 1
    assert sample(registry, "time_to_first_progress_seconds_count") is None
    assert sample(registry, "stream_items_sum") == 0


@pytest.mark.anyio
async def test_prometheus_records_an_exhausted_stream_with_progress(registry: CollectorRegistry) -> None:
    """A stream that runs out is counted with ``limit=""``; its time to first progress is the
    first item ``progress`` counts (the second, at 2 s), not the first item; no lateness."""
    set_on_end_hooks([PrometheusHook(registry)])
    items = await collect(
        with_deadline(scripted([1, 1, 1], Record()), 10, progress=lambda i: i >= 1, name="chat")
    )
    assert items == [0, 1, 2]

    assert sample(registry, "streams_total", ending="exhausted", limit="") == 1
    assert sample(registry, "time_to_first_progress_seconds_sum") == 2
    assert sample(registry, "stream_items_sum") == 3
    assert sample(registry, "stream_items_bucket", le="2.0") == 0
    assert sample(registry, "stream_items_bucket", le="5.0") == 1
    assert sample(registry, "stream_duration_seconds_sum", ending="exhausted") == 3
    assert sample(registry, "timeout_lateness_seconds_count", limit="") is None


@pytest.mark.anyio
async def test_prometheus_records_an_error_and_a_close(registry: CollectorRegistry) -> None:
    """A source that raises is counted as ``ending="error"``; a stream the consumer closes
    after one item as ``ending="closed"``; each with its own duration."""
    set_on_end_hooks([PrometheusHook(registry)])
    with pytest.raises(ValueError, match="boom"):
        await collect(with_deadline(failing(), 10, name="chat"))
    stream = with_deadline(scripted([1, 1, 1], Record()), 10, name="chat")
    assert await anext(stream) == 0
    await anyio.sleep(0.5)
    await stream.aclose()

    assert sample(registry, "streams_total", ending="error", limit="") == 1
    assert sample(registry, "streams_total", ending="closed", limit="") == 1
    assert sample(registry, "stream_duration_seconds_sum", ending="error") == 2
    assert sample(registry, "stream_duration_seconds_sum", ending="closed") == 1.5
    assert sample(registry, "stream_items_count") == 2


@pytest.mark.anyio
async def test_prometheus_hooks_on_one_registry_share_its_metrics(registry: CollectorRegistry) -> None:
    """Two hooks on one registry register its metrics once (no "Duplicated timeseries") and
    both count into them; a hook with another namespace counts into its own."""
    set_on_end_hooks([PrometheusHook(registry), PrometheusHook(registry), PrometheusHook(registry, "other")])
    await collect(with_deadline(scripted([1], Record()), 10, name="chat"))
    labels = {"name": "chat", "ending": "exhausted", "limit": ""}
    assert registry.get_sample_value("stream_deadline_streams_total", labels) == 2
    assert registry.get_sample_value("other_streams_total", labels) == 1


@pytest.mark.anyio
async def test_prometheus_as_a_streams_own_on_end(registry: CollectorRegistry) -> None:
    """A hook given as one stream's ``on_end`` records that stream only, with the global hooks
    switched off."""
    set_on_end_hooks([])
    await collect(with_deadline(scripted([1], Record()), 10, name="mine", on_end=PrometheusHook(registry)))
    await collect(with_deadline(scripted([1], Record()), 10, name="other"))
    assert sample(registry, "streams_total", "mine", ending="exhausted", limit="") == 1
    assert sample(registry, "streams_total", "other", ending="exhausted", limit="") is None


def test_prometheus_default_registry() -> None:
    """Without a registry the hook records in prometheus_client's global ``REGISTRY``."""
    labels = {"name": "test_prometheus_default_registry", "ending": "closed", "limit": ""}
    before = prometheus_client.REGISTRY.get_sample_value("stream_deadline_streams_total", labels) or 0
    PrometheusHook()(StreamOutcome("test_prometheus_default_registry", "closed"))
    assert prometheus_client.REGISTRY.get_sample_value("stream_deadline_streams_total", labels) == before + 1


def test_prometheus_refuses_a_registry_that_holds_its_names(registry: CollectorRegistry) -> None:
    """A registry that already holds one of the names (made by something else) gets a
    ValueError that names the fix, and none of the hook's metrics is left registered: once
    the other metric is gone, a hook registers them all."""
    theirs = prometheus_client.Histogram("stream_deadline_stream_items", "not ours", registry=registry)
    with pytest.raises(ValueError, match=re.escape("pass another `namespace` or `registry`")) as info:
        PrometheusHook(registry)
    assert "stream_deadline_stream_items" in str(info.value)
    registry.unregister(theirs)
    PrometheusHook(registry)(StreamOutcome("direct", "closed", items=7))
    assert sample(registry, "streams_total", "direct", ending="closed", limit="") == 1
    assert sample(registry, "stream_items_sum", "direct") == 7


# OpenTelemetryHook ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_opentelemetry_adds_the_outcome_to_the_current_span(otel: Otel) -> None:
    """A timeout inside a recording span adds one ``stream_deadline.end`` event to it, whose
    attributes are the outcome's fields (``None`` ones left out), the error and the close
    error each as type name and message."""
    set_on_end_hooks([OpenTelemetryHook(otel.meter_provider)])
    source = Closable([1, STALL], close_delay=0.25, close_error=RuntimeError("hang-up refused"))
    tracer = otel.tracer_provider.get_tracer("tests")
    with tracer.start_as_current_span("request"), pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(source, 10, idle=2, name="chat"))
    (span,) = otel.spans.get_finished_spans()
    (event,) = span.events
    assert event.name == "stream_deadline.end"
    assert dict(event.attributes or {}) == {
        "stream_deadline.name": "chat",
        "stream_deadline.ending": "timeout",
        "stream_deadline.limit": "idle",
        "stream_deadline.error.type": "StreamTimeoutError",
        "stream_deadline.error.message": str(info.value),
        "stream_deadline.items": 1,
        "stream_deadline.progress_items": 1,
        "stream_deadline.elapsed": 3.25,
        "stream_deadline.time_to_first_item": 1.0,
        "stream_deadline.time_to_first_progress": 1.0,
        "stream_deadline.late": 0.25,
        "stream_deadline.close_seconds": 0.25,
        "stream_deadline.close_error.type": "RuntimeError",
        "stream_deadline.close_error.message": "hang-up refused",
    }


@pytest.mark.anyio
async def test_opentelemetry_records_a_timeout_in_metrics(otel: Otel) -> None:
    """A timeout is counted with its limit as an attribute; its lateness, time to first
    progress, items and duration are recorded in histograms with the advised buckets."""
    set_on_end_hooks([OpenTelemetryHook(otel.meter_provider)])
    with pytest.raises(StreamTimeoutError):
        await collect(with_deadline(Closable([1, STALL], close_delay=0.25), 10, idle=2, name="chat"))

    assert {name: metric.unit for name, metric in otel.metrics().items()} == {
        "stream_deadline.streams": "{stream}",
        "stream_deadline.time_to_first_progress": "s",
        "stream_deadline.timeout.lateness": "s",
        "stream_deadline.stream.items": "{item}",
        "stream_deadline.stream.duration": "s",
    }
    assert (
        otel.points("stream_deadline.streams")[attrs(name="chat", ending="timeout", limit="idle")].value == 1
    )
    lateness = otel.points("stream_deadline.timeout.lateness")[attrs(name="chat", limit="idle")]
    assert (lateness.count, lateness.sum) == (1, 0.25)
    assert lateness.explicit_bounds == (
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
    )
    assert lateness.bucket_counts[lateness.explicit_bounds.index(0.25)] == 1
    first = otel.points("stream_deadline.time_to_first_progress")[attrs(name="chat")]
    assert (first.count, first.sum, first.explicit_bounds[0], first.explicit_bounds[-1]) == (1, 1, 0.05, 120)
    items = otel.points("stream_deadline.stream.items")[attrs(name="chat")]
    assert (items.count, items.sum, items.explicit_bounds[0], items.explicit_bounds[-1]) == (1, 1, 1, 100_000)
    duration = otel.points("stream_deadline.stream.duration")[attrs(name="chat", ending="timeout")]
    assert (duration.count, duration.sum) == (1, 3.25)


@pytest.mark.anyio
async def test_opentelemetry_records_other_endings_without_a_limit(otel: Otel) -> None:
    """Exhausted, error and closed streams are counted by ending with no limit attribute and
    no lateness; the time to first progress is that of the first item ``progress`` counts;
    two hooks on one meter provider both record; outside any span no event is added."""
    set_on_end_hooks([OpenTelemetryHook(otel.meter_provider), OpenTelemetryHook(otel.meter_provider)])
    await collect(with_deadline(scripted([1, 1], Record()), 10, progress=lambda i: i >= 1, name="progress"))
    with pytest.raises(ValueError, match="boom"):
        await collect(with_deadline(failing(), 10, name="chat"))
    stream = with_deadline(scripted([1, 1], Record()), 10, name="chat")
    await anext(stream)
    await stream.aclose()

    counts = {point: data.value for point, data in otel.points("stream_deadline.streams").items()}
    assert counts == {
        attrs(name="progress", ending="exhausted"): 2,
        attrs(name="chat", ending="error"): 2,
        attrs(name="chat", ending="closed"): 2,
    }
    assert "stream_deadline.timeout.lateness" not in otel.metrics()
    first = {point: data.sum for point, data in otel.points("stream_deadline.time_to_first_progress").items()}
    assert first == {attrs(name="progress"): 2 * 2, attrs(name="chat"): 2 * (1 + 1)}
    durations = {point: data.sum for point, data in otel.points("stream_deadline.stream.duration").items()}
    assert durations == {
        attrs(name="progress", ending="exhausted"): 2 * 2,
        attrs(name="chat", ending="error"): 2 * 2,
        attrs(name="chat", ending="closed"): 2 * 1,
    }
    assert otel.spans.get_finished_spans() == ()


# Optional dependencies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hook", "module", "extra"),
    [
        (PrometheusHook, "prometheus_client", "prometheus"),
        (OpenTelemetryHook, "opentelemetry", "opentelemetry"),
    ],
)
def test_a_hook_without_its_library_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, hook: type[Any], module: str, extra: str
) -> None:
    """Made without its library, a hook raises ImportError naming the extra to install."""
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=re.escape(f"pip install 'stream-deadline[{extra}]'")):
        hook()


def test_importing_instrumentation_loads_neither_library() -> None:
    """``import stream_deadline.instrumentation`` imports neither prometheus_client nor
    opentelemetry: the hooks import them when they are made."""
    code = (
        "import sys, stream_deadline.instrumentation as i;"
        " print(i.PrometheusHook.__name__, i.OpenTelemetryHook.__name__);"
        " print(sorted(m for m in sys.modules if m.split('.')[0] in ('prometheus_client', 'opentelemetry')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603 (this interpreter)
    assert done.stdout.splitlines() == ["PrometheusHook OpenTelemetryHook", "[]"]


def test_the_default_hook_is_still_logging_alone() -> None:
    """Adding the hooks changed no default: the global hooks are one LoggingHook."""
    (hook,) = get_on_end_hooks()
    assert isinstance(hook, LoggingHook)
