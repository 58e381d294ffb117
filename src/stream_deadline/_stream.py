"""The stream :func:`~stream_deadline.with_deadline` returns: an async generator's interface
over the backend's pull loop, which it starts at the first pull."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from types import TracebackType
from typing import Any, TypeVar, overload

from ._backends import backend, start
from ._ending import close, report_end
from ._limits import Limits
from ._outcome import Ending, StreamOutcome, Tally
from ._running import current_clock
from ._source import Source, Throw

__all__ = ["DeadlineStream"]

T_co = TypeVar("T_co", covariant=True)


class DeadlineStream(AsyncGenerator[T_co, Any]):
    """An async iterator with a deadline; what :func:`with_deadline` returns.

    It behaves like an async generator: ``async for``, :meth:`__anext__`, :meth:`asend`,
    :meth:`athrow`, :meth:`aclose`, and ``async with`` (which closes it on exit). It owns its
    source: however the stream ends, the source is closed exactly once.
    """

    __slots__ = ("_gen", "_limits", "_source")

    def __init__(self, source: AsyncIterable[T_co], limits: Limits, name: str | None = None) -> None:
        self._source = Source(source, name)
        self._limits = limits
        self._gen: AsyncGenerator[T_co, Any] | None = None

    def _generator(self, first: object = None) -> AsyncGenerator[T_co, Any]:
        if self._gen is None:
            self._gen = _closed() if self._source.closed else start(self._source, self._limits, first)
        return self._gen

    @property
    def name(self) -> str:
        """The stream's label in logs, hooks and metrics."""
        return self._source.name

    @property
    def outcome(self) -> StreamOutcome | None:
        """How the stream ended, once it has (see :class:`StreamOutcome`); ``None`` before."""
        return self._source.outcome

    def _free(self, what: str) -> AsyncGenerator[T_co, Any]:
        """The generator, refusing a second puller with words that say what to do."""
        gen = self._generator()
        if getattr(gen, "ag_running", False):
            raise RuntimeError(
                f"{what}: another task is pulling from this with_deadline() stream right now;"
                " a stream has one consumer at a time (to share its items, pull in one task"
                " and hand them on, e.g. through a queue or a memory channel)"
            )
        return gen

    def __aiter__(self) -> AsyncIterator[T_co]:
        return self._free("aiter()")  # `async for` runs the pull loop itself, with no layer between

    async def __anext__(self) -> T_co:
        """Return the next item from the source, under the stream's limits.

        Raises :class:`StopAsyncIteration` when the source is exhausted or the stream has
        finished (after a timeout or ``aclose()``), and :class:`StreamTimeoutError` when a limit
        passes, after closing the source.
        """
        # A coroutine, not the generator's own awaitable: a task cancelled before its first
        # step then ends without touching the generator (CPython 3.11 would throw the
        # cancellation into an unstarted asend(), at the generator's `yield`, as if athrow()).
        gen = self._free("anext()")
        del self  # (a traceback holds this frame; the stream, its outcome and so the error: no cycle)
        return await gen.__anext__()

    async def asend(self, value: Any, /) -> T_co:  # noqa: ANN401 (any value the source takes)
        """Send ``value`` to the source's ``yield`` and return its next item, under the same limits."""
        gen = self._free("asend()")
        del self  # (as in __anext__)
        return await gen.asend(value)

    @overload
    async def athrow(
        self, typ: type[BaseException], val: BaseException | object = None, tb: TracebackType | None = None, /
    ) -> T_co: ...
    @overload
    async def athrow(
        self, typ: BaseException, val: None = None, tb: TracebackType | None = None, /
    ) -> T_co: ...
    async def athrow(self, typ: Any, val: Any = None, tb: Any = None, /) -> T_co:
        """Raise an exception at the source's ``yield``; return its next item, under the same limits."""
        if isinstance(typ, BaseException):
            exc = typ
        else:
            exc = val if isinstance(val, BaseException) else typ() if val is None else typ(val)
        if tb is not None:
            exc = exc.with_traceback(tb)
        if self._gen is None:  # the first pull is this athrow()
            pull = self._generator(Throw(exc)).__anext__()
        else:
            pull = self._free("athrow()").asend(Throw(exc))
        del self  # (as in __anext__)
        return await pull

    async def aclose(self) -> None:
        """Close the stream and its source (once; later calls do nothing).

        Raises :class:`RuntimeError` if another task is pulling from the stream right now, as
        an async generator does, and whatever closing the source raised.
        """
        gen = self._gen
        if gen is not None and getattr(gen, "ag_running", False):
            raise RuntimeError("aclose(): another task is pulling from this stream right now")
        # The source is closed here, outside the generator, which then stops at its `yield`
        # with nothing left to close: on CPython < 3.13 a cancellation thrown into a
        # generator's aclose() while it awaits leaves it marked as running for good.
        source = self._source
        if source.closed:  # closed already: only the generator may be left to finish
            await (gen or self._generator()).aclose()
            return
        clock = current_clock("aclose()")[1]
        try:
            await close(backend("aclose()"), source, self._limits, clock)
        except BaseException as exc:  # (asyncio) cancelled while closing: the stream ends with that
            if gen is not None:  # its pull loop, if it started, reports it, with its counts
                with contextlib.suppress(BaseException):  # (it raises `exc` again: raised below)
                    await gen.athrow(exc)
            self._ended(clock, exc)
            raise
        await (gen or self._generator()).aclose()
        self._ended(clock, None)
        if source.close_error is not None:
            try:
                raise source.close_error
            finally:  # (its traceback holds this frame, and the source the error: no cycle)
                self = source = None  # type: ignore[assignment]  # noqa: PLW0642

    def _ended(self, clock: Callable[[], float], exc: BaseException | None) -> None:
        """Report the end of a stream whose pull loop did not (closed before its first pull);
        called by every ``aclose()``: a stream told already is not told again."""
        ending: Ending = "closed"
        if exc is not None:
            ending = "cancelled" if isinstance(exc, backend("aclose()").cancelled) else "error"
        report_end(self._source, self._limits, Tally(clock, clock(), 0, 0, None, None), ending, exc)

    async def __aenter__(self) -> DeadlineStream[T_co]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<DeadlineStream of {self._source.describe()} {self._limits}>"


def _closed() -> AsyncGenerator[Any, Any]:
    """A stand-in generator for a stream closed before it was iterated."""

    async def nothing() -> AsyncGenerator[Any, Any]:
        return
        yield  # pragma: no cover (makes this an async generator)

    return nothing()  # ends at its first pull, and is finished from then on
