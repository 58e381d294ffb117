"""A hook that counts stream endings and times in ``prometheus_client`` metrics.

``prometheus_client`` is imported when the first hook is made, not with this module: it is an
optional dependency (the ``prometheus`` extra).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, NamedTuple
from weakref import WeakKeyDictionary

from .._outcome import StreamOutcome
from ._buckets import DURATION_BUCKETS, ITEMS_BUCKETS, LATENESS_BUCKETS, TIME_TO_FIRST_PROGRESS_BUCKETS

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["PrometheusHook"]

INSTALL = "pip install 'stream-deadline[prometheus]'"


class _Metrics(NamedTuple):
    """The metrics of one namespace in one registry."""

    streams: Counter
    time_to_first_progress: Histogram
    lateness: Histogram
    items: Histogram
    duration: Histogram


# Registering a metric name twice in one registry raises "Duplicated timeseries": every hook
# on a registry shares that registry's metrics, made by the first one (under the lock).
_lock = threading.Lock()
_made: WeakKeyDictionary[CollectorRegistry, dict[str, _Metrics]] = WeakKeyDictionary()


class PrometheusHook:
    """A hook (see :func:`set_on_end_hooks`) that records every stream's outcome in
    ``prometheus_client`` metrics.

    Their names start with ``namespace`` (``stream_deadline`` below):

    - ``stream_deadline_streams_total{name, ending, limit}``: a counter of streams that ended
      (``limit`` is ``""`` unless the ending is ``"timeout"``);
    - ``stream_deadline_time_to_first_progress_seconds{name}``: a histogram of the time from
      the first pull to the first item ``progress`` counted (every item without one), for the
      streams that had one;
    - ``stream_deadline_timeout_lateness_seconds{name, limit}``: a histogram of how late each
      timeout reached its consumer (:attr:`~stream_deadline.StreamOutcome.late`);
    - ``stream_deadline_stream_items{name}``: a histogram of the items each stream delivered;
    - ``stream_deadline_stream_duration_seconds{name, ending}``: a histogram of the time from
      the first pull to the end.

    ``name`` is the stream's ``name`` (by default the decorated function's qualified name or
    the source's type name): keep it to a few values, never a request id. Hooks made with the
    same ``registry`` (by default prometheus_client's global ``REGISTRY``) and ``namespace``
    share their metrics.

    Raises:
        ImportError: prometheus_client is not installed.
        ValueError: ``registry`` already holds one of these names, registered by something
            else.
    """

    __slots__ = ("_metrics", "_namespace")

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "stream_deadline") -> None:
        try:
            import prometheus_client  # noqa: PLC0415 (an optional dependency: imported when used)
        except ImportError as exc:
            raise ImportError(f"PrometheusHook needs prometheus_client: {INSTALL}") from exc
        if registry is None:
            registry = prometheus_client.REGISTRY
        with _lock:
            by_namespace = _made.setdefault(registry, {})
            if namespace not in by_namespace:
                by_namespace[namespace] = _make(registry, namespace)
            self._metrics = by_namespace[namespace]
        self._namespace = namespace

    def __call__(self, outcome: StreamOutcome) -> None:
        metrics = self._metrics
        name = outcome.name
        metrics.streams.labels(name, outcome.ending, outcome.limit or "").inc()
        if outcome.time_to_first_progress is not None:
            metrics.time_to_first_progress.labels(name).observe(outcome.time_to_first_progress)
        if outcome.late is not None:
            metrics.lateness.labels(name, outcome.limit or "").observe(outcome.late)
        metrics.items.labels(name).observe(outcome.items)
        metrics.duration.labels(name, outcome.ending).observe(outcome.elapsed)

    def __repr__(self) -> str:
        return f"PrometheusHook(namespace={self._namespace!r})"


def _make(registry: CollectorRegistry, namespace: str) -> _Metrics:
    """Make and register the metrics of ``namespace`` in ``registry``; register none of them
    if one of their names is taken."""
    from prometheus_client import Counter, Histogram  # noqa: PLC0415 (see PrometheusHook)

    made: list[Counter | Histogram] = []

    def histogram(
        metric: str, documentation: str, labels: list[str], buckets: tuple[float, ...], unit: str
    ) -> Histogram:
        made.append(
            made_one := Histogram(
                metric, documentation, labels, namespace, unit=unit, registry=registry, buckets=buckets
            )
        )
        return made_one

    try:
        counter = Counter(
            "streams",
            "Streams that ended, by name, ending and (for a timeout) the limit that passed.",
            ["name", "ending", "limit"],
            namespace,
            registry=registry,
        )
        made.append(counter)
        return _Metrics(
            streams=counter,
            time_to_first_progress=histogram(
                "time_to_first_progress",
                "Seconds from the first pull to the first item that counts as progress.",
                ["name"],
                TIME_TO_FIRST_PROGRESS_BUCKETS,
                "seconds",
            ),
            lateness=histogram(
                "timeout_lateness",
                "Seconds from the moment a limit passed to the moment the consumer was told.",
                ["name", "limit"],
                LATENESS_BUCKETS,
                "seconds",
            ),
            items=histogram("stream_items", "Items delivered by a stream.", ["name"], ITEMS_BUCKETS, ""),
            duration=histogram(
                "stream_duration",
                "Seconds from the first pull to the end of a stream.",
                ["name", "ending"],
                DURATION_BUCKETS,
                "seconds",
            ),
        )
    except ValueError as exc:
        for metric in made:
            registry.unregister(metric)
        raise ValueError(
            f"PrometheusHook cannot register its metrics in {registry!r} under the namespace"
            f" {namespace!r}: {exc}; pass another `namespace` or `registry`"
        ) from exc
