"""Hooks told how every stream ended: set them once per process, as logging is configured.

::

    from stream_deadline import instrumentation

    instrumentation.set_on_end_hooks([instrumentation.LoggingHook(), instrumentation.PrometheusHook()])

Each hook is called with the :class:`~stream_deadline.StreamOutcome` of every stream that was
iterated or closed, once, after its source was closed and before its consumer is told; never
per item. An exception in a hook is logged, never raised.

:class:`PrometheusHook` needs ``prometheus_client`` (the ``prometheus`` extra) and
:class:`OpenTelemetryHook` ``opentelemetry-api`` (the ``opentelemetry`` extra); each imports
its library when it is made, not when this module is imported.
"""

from .._outcome import LoggingHook, OnEnd, get_on_end_hooks, set_on_end_hooks
from ._opentelemetry import OpenTelemetryHook
from ._prometheus import PrometheusHook

__all__ = [
    "LoggingHook",
    "OnEnd",
    "OpenTelemetryHook",
    "PrometheusHook",
    "get_on_end_hooks",
    "set_on_end_hooks",
]
