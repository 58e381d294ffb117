"""Ownership of the wrapped source: close it exactly once, however it is closed."""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Coroutine, Generator
from types import AsyncGeneratorType
from typing import Any, Generic, TypeVar

__all__ = ["Source", "close_failed", "close_overran", "logger", "start"]

T = TypeVar("T")

logger = logging.getLogger("stream_deadline")
"""Every message of the library goes through this logger."""


class Source(Generic[T]):
    """The source a stream owns: the async iterable and, once opened, the iterator it returned.

    :meth:`open` calls ``aiter()`` at the first pull (so a stream over another stream that is
    not yet iterated stays lazy). :meth:`close` closes the iterator and then, when it is a
    different object (or there is none yet), the iterable,
    each with its ``aclose()`` or, failing that, its ``close()`` (awaited when it returns an
    awaitable: the openai SDK's ``AsyncStream.close()`` is a coroutine). It does so once; later
    calls do nothing.
    """

    __slots__ = ("close_error", "closed", "closing_outside", "iterable", "iterator")

    iterable: AsyncIterable[T]
    iterator: AsyncIterator[T] | None
    closed: bool
    close_error: BaseException | None
    """What closing failed with during ``aclose()``, for the stream's ``aclose()`` to raise."""
    closing_outside: bool
    """Set while :meth:`DeadlineStream.aclose` closes the stream's generator, which then stops
    at its ``yield`` at once (its watchdog stopped) and leaves the source to the stream: on
    CPython < 3.13 a cancellation thrown into a generator's ``aclose()`` (the close_timeout)
    leaves it marked as running, so the source is closed outside it."""

    def __init__(self, iterable: AsyncIterable[T]) -> None:
        self.iterable = iterable
        self.iterator = None
        self.closed = False
        self.close_error = None
        self.closing_outside = False

    def open(self) -> AsyncIterator[T]:
        """The iterator, from ``aiter(iterable)`` on the first call."""
        if self.iterator is None:
            self.iterator = aiter(self.iterable)
        return self.iterator

    def describe(self) -> str:
        """Name the source for log messages."""
        return type(self.iterable).__qualname__

    def settled(self) -> bool:
        """Whether there is nothing left to close: closed already, or a finished async
        generator on its own (as a generator is after its pull was cancelled); if so, the
        source counts as closed from now on."""
        if not self.closed:
            it = self.iterator
            if (
                it is None
                or it is not self.iterable
                or type(it) is not AsyncGeneratorType
                or it.ag_frame is not None
            ):
                return False
            self.closed = True
        return True

    def close(self) -> Coroutine[Any, Any, None]:
        """Return the closing of the iterator, then of the iterable if it is another object, to
        await at once; only the first call closes anything (the source counts as closed from it on)."""
        if self.closed:
            return _nothing()
        self.closed = True
        it = self.iterator
        if it is self.iterable and type(it) is AsyncGeneratorType:  # the common case: no coroutine around
            return it.aclose()
        return self._close_both()

    async def _close_both(self) -> None:
        try:
            if self.iterator is not None:
                await _close(self.iterator)
        finally:
            if self.iterable is not self.iterator:
                await _close(self.iterable)


async def _nothing() -> None:
    pass


async def _close(obj: object) -> None:
    method: Any = getattr(obj, "aclose", None) or getattr(obj, "close", None)
    if method is None:
        return
    result = method()
    if hasattr(result, "__await__") or inspect.isawaitable(result):
        await result


def start(coro: Coroutine[Any, Any, None]) -> Awaitable[None] | None:
    """Run ``coro`` up to its first suspension; ``None`` if it finished without one, else an
    awaitable that goes on from there (so a close that never waits needs no timer at all).

    What ``coro`` raises before it suspends propagates from here.
    """
    try:
        first = coro.send(None)
    except StopIteration:
        return None
    return _resume(coro, first)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], first: object) -> Generator[Any, Any, None]:
    """Go on with ``coro``, which has just yielded ``first`` to the event loop: ``yield from``
    for a coroutine already started."""
    value = first
    while True:
        try:
            sent = yield value
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 (thrown in by the event loop: passed on)
            try:
                value = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                value = coro.send(sent)
            except StopIteration:
                return


def close_overran(source: Source[Any], close_timeout: float) -> TimeoutError:
    """Log that closing ``source`` overran ``close_timeout``; return the error to chain."""
    logger.warning(
        "closing the source %s took longer than close_timeout=%g s; gave up waiting",
        source.describe(),
        close_timeout,
    )
    return TimeoutError(f"closing the source took longer than close_timeout={close_timeout:g} s")


def close_failed(source: Source[Any], exc: Exception) -> Exception:
    """Log that closing ``source`` raised ``exc``; return it to chain."""
    logger.warning("closing the source %s failed", source.describe(), exc_info=exc)
    return exc
