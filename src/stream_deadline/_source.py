"""Ownership of the wrapped source: open it lazily, forward ``asend``/``athrow`` to it, close
it exactly once, and keep how the stream over it ended."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from types import AsyncGeneratorType
from typing import Any, Generic, TypeVar

from ._outcome import StreamOutcome, logger

__all__ = ["Source", "Throw", "close_failed", "close_overran"]

T = TypeVar("T")


class Throw:
    """What :meth:`DeadlineStream.athrow` sends into the stream's pull loop: an exception to
    throw into the source (its ``athrow``) as the next pull."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Source(Generic[T]):
    """The async iterable a stream owns and, once opened, the iterator it returned.

    :meth:`open` calls ``aiter()`` at the first pull (so a stream over another stream that is
    not yet iterated stays lazy). :meth:`close` closes the iterator and then, when it is a
    different object (or there is none yet), the iterable, each with its ``aclose()`` or,
    failing that, its ``close()`` (awaited when it returns an awaitable: the openai SDK's
    ``AsyncStream.close()`` is a coroutine). Only the first call closes anything.

    It also keeps the stream's ``name``, how closing went, and, once the stream has ended,
    its ``outcome``: it is the one object that the stream and its pull loop share.
    """

    __slots__ = ("close_error", "close_seconds", "closed", "iterable", "iterator", "name", "outcome")

    def __init__(self, iterable: AsyncIterable[T], name: str | None = None) -> None:
        self.iterable = iterable
        self.iterator: AsyncIterator[T] | None = None
        self.closed = False
        self.name = type(iterable).__qualname__ if name is None else name
        self.outcome: StreamOutcome | None = None
        self.close_seconds: float | None = None  # how long closing took, once closed here
        self.close_error: BaseException | None = None  # what closing raised (or its overrun)

    def open(self) -> AsyncIterator[T]:
        """The iterator, from ``aiter(iterable)`` on the first call."""
        if self.iterator is None:
            self.iterator = aiter(self.iterable)
        return self.iterator

    def forward(self, sent: object) -> AsyncIterator[T]:
        """The next pull after the consumer's ``asend(sent)``, or ``athrow()`` (``sent`` a
        :class:`Throw`): the source's own ``asend``/``athrow``, as an iterator of one item."""
        iterator = self.open()
        if isinstance(sent, Throw):
            athrow = getattr(iterator, "athrow", None)
            if athrow is None:  # as in a generator that does not catch it
                raise sent.exc
            return _Once(athrow(sent.exc))
        asend = getattr(iterator, "asend", None)
        if asend is None:
            raise TypeError(
                f"asend(): the source {type(iterator).__qualname__} is not an async generator"
                " and cannot receive values; use asend(None) or anext()"
            )
        return _Once(asend(sent))

    def describe(self) -> str:
        """Name the source for log messages: the stream's ``name``."""
        return self.name

    def settled(self) -> bool:
        """Whether there is nothing left to close: closed already, or an async generator of
        its own that has finished (as one is after its pull was cancelled)."""
        if not self.closed:
            it = self.iterator
            if it is not self.iterable or type(it) is not AsyncGeneratorType or it.ag_frame is not None:
                return False
            self.closed = True
        return True

    async def close(self) -> Exception | None:
        """Close the iterator, then the iterable if it is another object; only once. Return
        what closing raised (a cancellation propagates)."""
        if self.closed:
            return None
        self.closed = True
        iterator, iterable = self.iterator, self.iterable
        del self  # (the error's traceback holds this frame, and the source will keep the error)
        try:
            try:
                if iterator is not None:
                    await _close(iterator)
            finally:
                if iterable is not iterator:
                    await _close(iterable)
        except Exception as exc:  # noqa: BLE001 (returned: logged, then raised or chained by the caller)
            return exc
        return None


class _Once(AsyncIterator[T]):
    """An iterator of the one item an awaitable returns: a forwarded pull, pulled like any other."""

    __slots__ = ("_pull",)

    def __init__(self, pull: Awaitable[T]) -> None:
        self._pull: Awaitable[T] | None = pull

    async def __anext__(self) -> T:
        pull, self._pull = self._pull, None
        if pull is None:
            raise StopAsyncIteration
        return await pull


async def _close(obj: object) -> None:
    method: Any = getattr(obj, "aclose", None) or getattr(obj, "close", None)
    if method is None:
        return
    result = method()
    if inspect.isawaitable(result):
        await result


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
