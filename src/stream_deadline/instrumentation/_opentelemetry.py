"""A hook that tells OpenTelemetry how each stream ended: an event on the current span, and
metrics through the meter API.

Only ``opentelemetry-api`` is used, imported when the first hook is made, not with this
module: it is an optional dependency (the ``opentelemetry`` extra). Where the event and the
metrics go is the application's choice (its SDK, exporters and views).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import __version__
from .._outcome import StreamOutcome
from ._buckets import DURATION_BUCKETS, ITEMS_BUCKETS, LATENESS_BUCKETS, TIME_TO_FIRST_PROGRESS_BUCKETS

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

__all__ = ["EVENT", "OpenTelemetryHook"]

EVENT = "stream_deadline.end"
"""The name of the span event."""

INSTALL = "pip install 'stream-deadline[opentelemetry]'"


class OpenTelemetryHook:
    """A hook (see :func:`set_on_end_hooks`) that tells OpenTelemetry how every stream ended.

    On the current span, if it is recording, it adds the event ``stream_deadline.end`` whose
    attributes are the fields of the :class:`~stream_deadline.StreamOutcome`, each prefixed
    with ``stream_deadline.`` (``stream_deadline.ending``, ``stream_deadline.late``, ...);
    fields that are ``None`` are left out, and an exception becomes two attributes, its type's
    name and its message (``stream_deadline.error.type``, ``stream_deadline.error.message``;
    likewise ``stream_deadline.close_error.*``).

    It records, through the meter ``stream_deadline`` of ``meter_provider`` (by default the
    global one), with the attributes ``stream_deadline.name``, ``stream_deadline.ending`` and
    ``stream_deadline.limit`` (only for a timeout):

    - ``stream_deadline.streams`` (counter, ``{stream}``): streams that ended, by name, ending
      and limit;
    - ``stream_deadline.time_to_first_progress`` (histogram, ``s``), by name: from the first
      pull to the first item ``progress`` counted (every item without one), for the streams
      that had one;
    - ``stream_deadline.timeout.lateness`` (histogram, ``s``), by name and limit: how late each
      timeout reached its consumer (:attr:`~stream_deadline.StreamOutcome.late`);
    - ``stream_deadline.stream.items`` (histogram, ``{item}``), by name: items delivered;
    - ``stream_deadline.stream.duration`` (histogram, ``s``), by name and ending: from the first
      pull to the end.

    The histograms advise bucket boundaries made for LLM streams (time to first progress 50 ms
    to 2 min, lateness 1 ms to 10 s, items 1 to 100,000, duration 100 ms to 10 min); views
    configured in the SDK take precedence. Exported to Prometheus, these are the names and
    buckets of :class:`PrometheusHook`.

    Raises:
        ImportError: opentelemetry-api is not installed.
    """

    __slots__ = ("_current_span", "_duration", "_items", "_lateness", "_streams", "_time_to_first_progress")

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        try:
            from opentelemetry import metrics, trace  # noqa: PLC0415 (an optional dependency: imported when used)
        except ImportError as exc:
            raise ImportError(f"OpenTelemetryHook needs opentelemetry-api: {INSTALL}") from exc
        self._current_span = trace.get_current_span
        meter = metrics.get_meter("stream_deadline", __version__, meter_provider)
        self._streams = meter.create_counter(
            "stream_deadline.streams",
            "{stream}",
            "Streams that ended, by name, ending and (for a timeout) the limit that passed.",
        )
        self._time_to_first_progress = meter.create_histogram(
            "stream_deadline.time_to_first_progress",
            "s",
            "Time from the first pull to the first item that counts as progress.",
            explicit_bucket_boundaries_advisory=TIME_TO_FIRST_PROGRESS_BUCKETS,
        )
        self._lateness = meter.create_histogram(
            "stream_deadline.timeout.lateness",
            "s",
            "Time from the moment a limit passed to the moment the consumer was told.",
            explicit_bucket_boundaries_advisory=LATENESS_BUCKETS,
        )
        self._items = meter.create_histogram(
            "stream_deadline.stream.items",
            "{item}",
            "Items delivered by a stream.",
            explicit_bucket_boundaries_advisory=ITEMS_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "stream_deadline.stream.duration",
            "s",
            "Time from the first pull to the end of a stream.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def __call__(self, outcome: StreamOutcome) -> None:
        span = self._current_span()
        if span.is_recording():
            span.add_event(EVENT, event_attributes(outcome))
        name = {"stream_deadline.name": outcome.name}
        ending = {**name, "stream_deadline.ending": outcome.ending}
        if outcome.limit is None:
            self._streams.add(1, ending)
        else:
            limit = {**name, "stream_deadline.limit": outcome.limit}
            self._streams.add(1, {**ending, **limit})
            if outcome.late is not None:
                self._lateness.record(outcome.late, limit)
        if outcome.time_to_first_progress is not None:
            self._time_to_first_progress.record(outcome.time_to_first_progress, name)
        self._items.record(outcome.items, name)
        self._duration.record(outcome.elapsed, ending)

    def __repr__(self) -> str:
        return "OpenTelemetryHook()"


def event_attributes(outcome: StreamOutcome) -> dict[str, str | int | float]:
    """The attributes of the span event for ``outcome``: its fields, prefixed, without the
    ``None`` ones; an exception as its type's name and its message."""
    attributes: dict[str, str | int | float] = {}
    for field, value in outcome._asdict().items():
        if value is None:
            continue
        key = f"stream_deadline.{field}"
        if isinstance(value, BaseException):
            attributes[f"{key}.type"] = type(value).__name__
            attributes[f"{key}.message"] = str(value)
        else:
            attributes[key] = value
    return attributes
