"""Which event loop runs the stream: each backend lives in its own private module."""

from __future__ import annotations

import asyncio
import sys
from asyncio import _get_running_loop  # pyright: ignore[reportPrivateUsage] (exported by asyncio)
from collections.abc import AsyncGenerator, Callable
from threading import get_ident
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import _asyncio
from ._engine import unlimited_stream

if TYPE_CHECKING:
    from ._engine import Closer, Limits
    from ._source import Source

__all__ = ["Backend", "current_backend", "start_stream"]

T = TypeVar("T")


class Backend(Protocol):
    """What the engine needs of an event loop; ``_asyncio`` and ``_trio`` provide it."""

    @property
    def NAME(self) -> str:  # noqa: N802 (a module constant, read through the protocol)
        """The backend's name, as ``sniffio.current_async_library()`` says it."""
        ...

    def clock(self) -> Callable[[], float]:
        """Return the running loop's clock: what ``anyio.current_time()`` reads."""
        ...

    def limited_stream(self, source: Source[T], limits: Limits) -> AsyncGenerator[T, Any]:
        """Return the generator that pulls ``source`` under ``limits``."""
        ...

    async def close(self, source: Source[Any], close_timeout: float) -> BaseException | None:
        """Close ``source`` within ``close_timeout``, shielded from outside cancellation where
        the backend needs it; return (after logging) what went wrong, or ``None``."""
        ...


def start_stream(source: Source[T], limits: Limits) -> tuple[AsyncGenerator[T, Any], Closer]:
    """Return the generator that pulls ``source`` under ``limits`` on the running event loop,
    and its backend's ``close``.

    Raises :class:`RuntimeError` when neither asyncio nor trio is running.
    """
    # Asked once and handed on: on Linux, every asyncio.get_running_loop() calls getpid().
    loop = _get_running_loop()
    backend = _backend_of(loop, "iterating a with_deadline() stream")
    if limits.unlimited:
        gen = unlimited_stream(backend.close, source, limits)
    elif backend is _asyncio:
        gen = _asyncio.limited_stream(source, limits, loop, get_ident())
    else:
        gen = backend.limited_stream(source, limits)
    return gen, backend.close


def current_backend(what: str) -> Backend:
    """Return the backend of the event loop running in this thread.

    Raises :class:`RuntimeError` naming ``what`` when neither asyncio nor trio is running.
    """
    return _backend_of(_get_running_loop(), what)


def _backend_of(loop: asyncio.AbstractEventLoop | None, what: str) -> Backend:
    """The backend running this code, given the thread's running asyncio loop (if any)."""
    if loop is not None and _asyncio.task_of(loop) is not None:
        return _asyncio  # in an asyncio task (trio as asyncio's guest runs in plain callbacks)
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_task():
        from . import _trio  # noqa: PLC0415 (trio is optional)

        return _trio
    if loop is None:
        raise RuntimeError(
            f"{what} needs a running event loop: use it inside async code run by asyncio or trio"
        )
    return _asyncio
