"""Hooks told how every stream ended: set them once per process, as logging is configured.

::

    from stream_deadline import instrumentation

    instrumentation.set_on_end_hooks([instrumentation.LoggingHook(), my_hook])

Each hook is called with the :class:`~stream_deadline.StreamOutcome` of every stream that was
iterated or closed, once, after its source was closed and before its consumer is told; never
per item. An exception in a hook is logged, never raised.
"""

from .._outcome import LoggingHook, OnEnd, get_on_end_hooks, set_on_end_hooks

__all__ = ["LoggingHook", "OnEnd", "get_on_end_hooks", "set_on_end_hooks"]
