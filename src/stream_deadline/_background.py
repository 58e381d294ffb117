"""An event loop in a thread of its own, for sync code that needs a watchdog.

A sync caller blocked in a read cannot be interrupted from its own thread. :func:`run` and
:func:`iterate` run async code on one shared background loop instead, where a
:func:`~stream_deadline.with_deadline` watch can cut it, and hand the results across. The
loop starts at the first use, serves every thread at once, works whether or not the calling
thread runs a loop of its own (Jupyter), and is stopped at interpreter exit (and forgotten in
a child after ``fork``).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["iterate", "run"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_exiting = False  # set at interpreter exit: no loop is started again


def _running_loop() -> asyncio.AbstractEventLoop:
    """The background loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _exiting:
            raise RuntimeError("the stream_deadline background loop is stopped: the interpreter is exiting")
        if _loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=_serve, args=(loop, ready), name="stream_deadline background loop", daemon=True
            )
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    try:
        loop.run_forever()
    finally:  # as asyncio.run ends: cancel what still runs, let it finish, close the generators
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _stop() -> None:
    """Stop the background loop, if it runs, and wait for its thread (at interpreter exit):
    the streams still open on it are closed as the loop shuts down."""
    global _loop, _thread, _exiting
    with _lock:
        loop, thread, _loop, _thread, _exiting = _loop, _thread, None, None, True
    if loop is not None and thread is not None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def _forget() -> None:
    """In a child after ``fork``: the parent's loop thread does not exist here (nor does a
    thread that may have held the lock)."""
    global _loop, _thread, _lock  # noqa: PLW0603 (one loop per process)
    _loop = _thread = None
    _lock = threading.Lock()


atexit.register(_stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and return its result, blocking this thread.

    If this thread is interrupted while it waits (``KeyboardInterrupt``), the coroutine is
    cancelled, and has finished (its cleanup run), before the interruption propagates.
    """
    finished = threading.Event()

    async def watched() -> T:
        try:
            return await coro
        finally:
            finished.set()

    future = asyncio.run_coroutine_threadsafe(watched(), _running_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        finished.wait()
        raise


def iterate(stream: AsyncIterator[T]) -> Iterator[T]:
    """Iterate ``stream`` on the background loop, one item at a time, from this thread.

    The stream is closed on the loop however the iteration ends (exhausted, an error, or the
    caller stopping early).
    """
    end = object()

    async def pull() -> T | object:
        return await anext(stream, end)

    try:
        while (item := run(pull())) is not end:
            yield item  # type: ignore[misc]  # (not `end`: an item of the stream)
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None and not _exiting:  # (at exit, the loop's shutdown closed it)
            run(aclose())
