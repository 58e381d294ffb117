"""The event loops a stream can run on: each backend in its own module, behind one interface.

A backend module provides ``stream(source, limits, first)``, the async generator that pulls
under limits, and ``BACKEND`` (how it closes a source, and how it lets the loop run once)
for the shared ending in ``_ending``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import ModuleType
from typing import Any, TypeVar

from .._ending import Backend, pass_through
from .._limits import Limits
from .._running import current_backend, current_clock
from .._source import Source
from . import _asyncio

__all__ = ["backend", "start"]

T = TypeVar("T")


def _module(what: str) -> ModuleType:
    if current_backend(what) == "asyncio":
        return _asyncio
    from . import _trio  # noqa: PLC0415 (trio is optional)

    return _trio


def start(source: Source[T], limits: Limits, first: object = None) -> AsyncGenerator[T, Any]:
    """The generator that pulls ``source`` under ``limits`` on the running event loop;
    ``first`` is a forwarded ``asend``/``athrow`` to make the first pull (``None``: ``anext``).

    Raises :class:`RuntimeError` when neither asyncio nor trio is running.
    """
    what = "iterating a with_deadline() stream"
    module = _module(what)
    if limits.unlimited:
        return pass_through(module.BACKEND, source, limits, first, current_clock(what)[1])
    stream: AsyncGenerator[T, Any] = module.stream(source, limits, first)
    return stream


def backend(what: str) -> Backend:
    """The running event loop's backend, for what is done outside a stream's generator."""
    result: Backend = _module(what).BACKEND
    return result
