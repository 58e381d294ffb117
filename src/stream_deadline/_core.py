"""The public forms: ``with_deadline`` (wrapper and decorator) and the stream it returns.

``with_deadline`` validates everything at once and returns a :class:`DeadlineStream`. The
stream picks its backend (``_asyncio`` or ``_trio``) when it is first iterated and from then on
is driven by that backend's generator, an ordinary async generator: ``async for`` over the
stream runs it directly, with no layer in between.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from types import TracebackType
from typing import (
    Any,
    Concatenate,
    Final,
    Literal,
    NoReturn,
    ParamSpec,
    Protocol,
    TypeAlias,
    TypeVar,
    overload,
)

from ._backends import current_backend, start_stream
from ._deadline import Deadline
from ._engine import Closer, Limits
from ._source import Source
from ._validate import check_close_timeout, check_on_timeout, check_seconds

__all__ = ["DeadlineStream", "Seconds", "with_deadline"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
P = ParamSpec("P")

Seconds: TypeAlias = "float | Deadline | None"
"""A total limit: seconds from the first pull, a shared :class:`Deadline`, or ``None`` for none."""

PerCall: TypeAlias = "Callable[Concatenate[Any, ...], Seconds] | Callable[[], Seconds]"
"""A limit computed per call from the decorated function's arguments (``self`` first, for
methods): ``lambda self, *args, **kwargs: self.stream_timeout``."""

DEFAULT_CLOSE_TIMEOUT: Final = 5.0
_RAISE: Final = "raise"  # (the default of `on_timeout`, told apart by identity)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


class DeadlineStream(AsyncGenerator[T_co, Any]):
    """An async iterator with a deadline; what :func:`with_deadline` returns.

    It behaves like an async generator: ``async for``, :meth:`__anext__`, :meth:`asend`,
    :meth:`athrow`, :meth:`aclose`, and ``async with`` (which closes it on exit). It owns its
    source: however the stream ends, the source is closed exactly once.
    """

    __slots__ = ("_close", "_gen", "_limits", "_source")

    def __init__(self, source: AsyncIterable[T_co], limits: Limits) -> None:
        self._source = Source(source)
        self._limits = limits
        self._gen: AsyncGenerator[T_co, Any] | None = None
        self._close: Closer | None = None  # the backend's close, once the backend is known

    def _generator(self) -> AsyncGenerator[T_co, Any]:
        gen = self._gen
        if gen is None:
            if self._source.closed:
                gen = _closed()
            else:
                gen, self._close = start_stream(self._source, self._limits)
            self._gen = gen
        return gen

    def __aiter__(self) -> AsyncIterator[T_co]:
        return self._generator()

    async def __anext__(self) -> T_co:
        # A coroutine, not the generator's own awaitable: a task cancelled before its first
        # step then ends without touching the generator (CPython 3.11 would throw the
        # cancellation into an unstarted asend(), at the generator's `yield`, as if athrow()).
        gen = self._gen
        return await (self._generator() if gen is None else gen).__anext__()

    async def asend(self, value: Any, /) -> T_co:  # noqa: ANN401 (any value the source takes)
        """Send ``value`` to the source's ``yield`` and return its next item, under the same limits."""
        return await self._generator().asend(value)

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
        gen = self._generator()
        return await (gen.athrow(typ) if val is None and tb is None else gen.athrow(typ, val, tb))

    async def aclose(self) -> None:
        """Close the stream and its source (once; later calls do nothing).

        Raises :class:`RuntimeError` if another task is pulling from the stream right now, as
        an async generator does, and whatever closing the source raised.
        """
        source = self._source
        if self._gen is not None:
            source.closing_outside = True
            try:
                await self._gen.aclose()
            finally:
                source.closing_outside = False
        else:
            self._gen = _closed()
        if not source.closed:
            close = self._close or current_backend("aclose()").close
            source.close_error = await close(source, self._limits.close_timeout)
        problem, source.close_error = source.close_error, None
        if problem is not None:
            raise problem

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


class _Decorator(Protocol):
    def __call__(self, func: Callable[P, AsyncIterator[T]], /) -> Callable[P, DeadlineStream[T]]: ...


_Options: TypeAlias = "tuple[float | None, float | None, bool, float]"
"""The checked ``first_item``, ``idle``, ``on_timeout == "stop"`` and ``close_timeout``."""


def _make_limits(seconds: object, options: _Options, origin: str = "") -> Limits:
    """The limits for the total limit ``seconds`` (a number, ``None`` or a Deadline), checked,
    and ``options``."""
    if type(seconds) is not int and type(seconds) is not float:  # (numbers: the common case)
        if isinstance(seconds, Deadline):
            return Limits(seconds.seconds, seconds, *options)
        if callable(seconds) and not origin:
            raise TypeError(
                "`seconds` must be a number of seconds, None or a Deadline; a callable that computes"
                " the limit per call works only in the decorator form: @with_deadline(lambda *a, **k: ...)"
            )
    else:
        # A plain number equal to one checked before (for these same options) needs no check.
        limits = _SHARED_LIMITS.get((seconds, options))
        if limits is not None:
            return limits
    checked = check_seconds("seconds", seconds, origin=origin)
    key = (checked, options)
    limits = _SHARED_LIMITS.get(key)
    if limits is None:
        if len(_SHARED_LIMITS) >= _SHARED_LIMITS_MAX:
            _SHARED_LIMITS.clear()
        limits = _SHARED_LIMITS[key] = Limits(checked, None, *options)
    return limits


_SHARED_LIMITS: Final[dict[tuple[float | None, _Options], Limits]] = {}
"""Streams with the same limits share one (immutable) Limits: 80 bytes less per stream. Keyed
by checked values only (an int and the equal float are one key)."""
_SHARED_LIMITS_MAX: Final = 256
_DEFAULT_OPTIONS: Final[_Options] = (None, None, False, DEFAULT_CLOSE_TIMEOUT)


def _is_async_iterable(obj: object) -> bool:
    return hasattr(type(obj), "__aiter__")


def _refuse_source(source: object) -> NoReturn:
    """Raise the ``TypeError`` that says what ``source``, not an async iterable, is instead."""
    if inspect.isasyncgenfunction(source):
        name = getattr(source, "__name__", "gen")
        raise TypeError(
            f"`source` is the async generator function {name}, not an async iterable:"
            f" call it, e.g. with_deadline({name}(...), 45)"
        )
    if inspect.isawaitable(source):
        raise TypeError(
            f"`source` is an awaitable ({type(source).__name__}), not an async iterable:"
            " await it to get the stream, e.g."
            " with_deadline(await client.chat.completions.create(..., stream=True), 45)"
        )
    if hasattr(type(source), "__iter__"):
        raise TypeError(
            f"`source` must be an async iterable, but {type(source).__name__} is a sync iterable:"
            " use an async one (an async generator or an async client's stream)"
        )
    raise TypeError(f"`source` must be an async iterable, not {type(source).__name__} {source!r}")


def _is_decoratable(func: object) -> bool:
    return inspect.isasyncgenfunction(func) or getattr(func, "__stream_deadline__", False) is True


def _decorator(seconds: object, options: _Options) -> _Decorator:
    limits_for: Callable[..., Limits]
    if callable(seconds):
        per_call: Callable[..., object] = seconds
        origin = f" (returned by {getattr(seconds, '__qualname__', repr(seconds))})"

        def computed(*args: object, **kwargs: object) -> Limits:
            return _make_limits(per_call(*args, **kwargs), options, origin)

        limits_for = computed
    else:
        static = _make_limits(seconds, options)

        def fixed(*_args: object, **_kwargs: object) -> Limits:
            return static

        limits_for = fixed

    def decorate(func: Callable[P, AsyncIterator[T]], /) -> Callable[P, DeadlineStream[T]]:
        if not _is_decoratable(func):
            raise TypeError(
                f"@with_deadline decorates async generator functions (async def with yield),"
                f" not {getattr(func, '__qualname__', type(func).__name__)}"
                + (
                    ", which is a coroutine function: its result is awaited, not iterated"
                    if inspect.iscoroutinefunction(func)
                    else ""
                )
                + "; to limit an async iterable, call with_deadline(source, seconds)"
            )

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> DeadlineStream[T]:
            return DeadlineStream(func(*args, **kwargs), limits_for(*args, **kwargs))

        wrapper.__stream_deadline__ = True  # type: ignore[attr-defined]
        return wrapper

    return decorate


@overload
def with_deadline(
    source: AsyncIterable[T],
    /,
    seconds: Seconds,
    *,
    first_item: float | None = None,
    idle: float | None = None,
    on_timeout: Literal["raise", "stop"] = "raise",
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> DeadlineStream[T]: ...
@overload
def with_deadline(
    seconds: Seconds | PerCall,
    /,
    *,
    first_item: float | None = None,
    idle: float | None = None,
    on_timeout: Literal["raise", "stop"] = "raise",
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> _Decorator: ...
@overload
def with_deadline(
    *,
    seconds: Seconds | PerCall,
    first_item: float | None = None,
    idle: float | None = None,
    on_timeout: Literal["raise", "stop"] = "raise",
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> _Decorator: ...
def with_deadline(  # noqa: PLR0913 (the four keyword-only options are the API)
    source: Any = _MISSING,
    /,
    seconds: Any = _MISSING,
    *,
    first_item: float | None = None,
    idle: float | None = None,
    on_timeout: Literal["raise", "stop"] = _RAISE,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> DeadlineStream[Any] | _Decorator:
    """Put a deadline on an async iterator, or, without one, decorate an async generator function.

    ``with_deadline(source, seconds, ...)`` returns a :class:`DeadlineStream` over ``source``;
    ``with_deadline(seconds, ...)`` returns a decorator that does the same to every iterator
    the decorated async generator function returns. In the decorator form ``seconds`` may also
    be a callable: it receives the decorated function's arguments and returns the limit, once
    per call (``lambda self, *args, **kwargs: self.stream_timeout``).

    Args:
        source: any async iterable; the stream owns it and closes it.
        seconds: the total budget: seconds counted from the first pull, a shared
            :class:`Deadline`, or ``None`` for no total limit. ``math.inf`` means ``None``.
        first_item: seconds the first pull may take (time to first item), or ``None``.
        idle: seconds each later pull may take (a stall detector), or ``None``. It does not
            apply to the first pull: that is what ``first_item`` is for.
        on_timeout: ``"raise"`` (default) raises :class:`StreamTimeoutError`; ``"stop"`` ends
            the iteration quietly (after closing the source).
        close_timeout: seconds to wait for the source to close after a timeout or at the end;
            a close that takes longer is abandoned and logged.

    Semantics (each is tested on asyncio and trio):

    1. **Clock.** Every time is read from the running event loop's clock (what
       ``anyio.current_time()`` returns), so virtual clocks work.
    2. **Start.** The total deadline starts at the first ``__anext__``, when a generator's body
       starts and its request goes out. A :class:`Deadline` fixes it in advance instead.
    3. **Check first.** Every ``__anext__`` checks the deadline first; past it, the source is
       closed and the timeout raised without pulling.
    4. **Watchdog.** Every pull is bounded by whichever is nearest: the deadline,
       ``first_item`` (first pull only) or ``idle`` (every later pull). When that bound passes
       while a task waits in the pull, exactly that task is cancelled, whichever task it is;
       the source is closed with ``aclose()`` (bounded by ``close_timeout``) and
       :class:`StreamTimeoutError` raised in it. A stall in which bytes still arrive but no
       item does (SSE keep-alive comments) is a stall like any other. When two limits pass
       at the same instant, the total deadline is the one reported.
    5. **Consumer time.** Time the consumer spends between pulls counts toward the total
       deadline, not toward ``first_item`` or ``idle``.
    6. **No loss.** Items that arrived before a limit passed are all delivered, in order; none
       is dropped or duplicated.
    7. **Outside cancellation wins.** A consumer cancelled by anyone else, even in the same
       loop tick as the deadline, sees the cancellation, never a timeout, and no outside
       cancellation is swallowed. Enclosing ``asyncio.timeout``, anyio and trio scopes keep
       working and are not reported as the stream's timeout.
    8. **Closed once.** The source is closed exactly once: on timeout, normal end, error,
       ``aclose()``, ``async with`` exit, and ``break`` followed by ``aclose()``. Its
       ``finally`` blocks have run before :class:`StreamTimeoutError` reaches the consumer. A
       close that hangs or raises does not hide the timeout: the timeout still surfaces within
       ``close_timeout``; the close problem is logged (logger ``stream_deadline``) and chained
       as the timeout's ``__cause__``.
    9. **Finished after a timeout.** Later pulls raise :class:`StopAsyncIteration`, as a
       finished async generator does. ``on_timeout="stop"`` ends the iteration quietly (after
       closing the source) instead of raising.
    10. **One puller at a time.** A second task pulling while a pull is in progress gets
        :class:`RuntimeError`, and the stream's state stays intact.
    11. **Nothing left behind.** No timer handle, task or cancel scope outlives the stream.
    12. **Bad input fails at once**, when ``with_deadline`` is called or the decorator
        applied, with :class:`TypeError` or :class:`ValueError` naming the parameter. A limit
        computed per call is checked at call time with the same messages.
    13. **No limit, no cost.** With no limit at all the stream only passes items through.

    Raises:
        TypeError: a parameter has the wrong type (see 12).
        ValueError: a limit is negative or NaN, or ``on_timeout`` is not a known word.
    """
    if first_item is idle is None and on_timeout is _RAISE and close_timeout is DEFAULT_CLOSE_TIMEOUT:
        options = _DEFAULT_OPTIONS  # (all left out: nothing to check)
    else:
        options = (
            check_seconds("first_item", first_item),
            check_seconds("idle", idle),
            check_on_timeout(on_timeout),
            check_close_timeout(close_timeout),
        )
    if source is _MISSING:
        if seconds is _MISSING:
            raise TypeError("with_deadline() needs `seconds`: a number, None (no total limit) or a Deadline")
        return _decorator(seconds, options)
    if seconds is not _MISSING:
        if not _is_async_iterable(source):
            _refuse_source(source)
        return DeadlineStream(source, _make_limits(seconds, options))
    if _is_async_iterable(source):
        raise TypeError(
            "with_deadline(source) is missing `seconds`: pass a number, None (no total limit)"
            " or a Deadline, e.g. with_deadline(source, 45)"
        )
    if inspect.isasyncgenfunction(source):
        raise TypeError(
            "@with_deadline needs a limit: write @with_deadline(45), @with_deadline(None, idle=5)"
            " or @with_deadline(lambda *args, **kwargs: ...), not a bare @with_deadline"
        )
    return _decorator(source, options)
