"""The public forms: ``with_deadline``, as a wrapper and as a decorator.

Both check everything at once and return a :class:`DeadlineStream` (per call, for the
decorator), which picks its backend when it is first iterated.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import (
    Any,
    Concatenate,
    Final,
    Literal,
    NamedTuple,
    NoReturn,
    ParamSpec,
    Protocol,
    TypeAlias,
    TypeVar,
    overload,
)

from ._limits import Deadline, Limits, check_close_timeout, check_on_timeout, check_seconds
from ._outcome import OnEnd, StreamOutcome
from ._stream import DeadlineStream

__all__ = ["Seconds", "with_deadline"]

T = TypeVar("T")
P = ParamSpec("P")

Seconds: TypeAlias = float | Deadline | None  # (a real type at runtime: pydantic and get_type_hints read it)
"""A total limit: seconds from the first pull, a shared :class:`Deadline`, or ``None`` for none."""

PerCall: TypeAlias = Callable[Concatenate[Any, ...], Seconds] | Callable[[], Seconds]
"""A limit computed per call from the decorated function's arguments (``self`` first, for
methods): ``lambda self, *args, **kwargs: self.stream_timeout``."""

PerCallSpan: TypeAlias = Callable[Concatenate[Any, ...], float | None] | Callable[[], float | None]
"""A ``first_item`` or ``idle`` computed per call, as :data:`PerCall` computes ``seconds``."""

DEFAULT_CLOSE_TIMEOUT: Final = 5.0
_RAISE: Final = "raise"  # (the default of `on_timeout`, told apart by identity)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


class _Decorator(Protocol):
    def __call__(self, func: Callable[P, AsyncIterator[T]], /) -> Callable[P, DeadlineStream[T]]: ...


class _Rest(NamedTuple):
    """The checked options that are never computed per call."""

    stop: bool
    close_timeout: float
    progress: Callable[[Any], object] | None
    on_end: OnEnd | None


_DEFAULT_REST: Final = _Rest(False, DEFAULT_CLOSE_TIMEOUT, None, None)


def _make_limits(
    seconds: object, first_item: float | None, idle: float | None, rest: _Rest, origin: str = ""
) -> Limits:
    """The limits for the total limit ``seconds`` (a number, ``None`` or a Deadline), checked,
    with ``first_item`` and ``idle`` (checked) and ``rest``."""
    if isinstance(seconds, Deadline):
        return Limits(seconds.seconds, seconds, first_item, idle, *rest)
    return Limits(check_seconds("seconds", seconds, origin=origin), None, first_item, idle, *rest)


def _origin(compute: Callable[..., object]) -> str:
    return f" (returned by {getattr(compute, '__qualname__', None) or repr(compute)})"


def _callable_or_none(name: str, value: object, example: str) -> Callable[..., Any] | None:
    if value is not None and not callable(value):
        raise TypeError(
            f"`{name}` must be a callable or None, not {type(value).__name__} {value!r}; {example}"
        )
    return value


def _check_rest(on_timeout: object, close_timeout: object, progress: object, on_end: object) -> _Rest:
    return _Rest(
        check_on_timeout(on_timeout),
        check_close_timeout(close_timeout),
        _callable_or_none(
            "progress",
            progress,
            "pass the function itself, e.g. progress=stream_deadline.progress.openai_chunk",
        ),
        _callable_or_none(
            "on_end", on_end, "pass a function that takes the StreamOutcome, e.g. on_end=print"
        ),
    )


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


def _decorator(
    seconds: object, first_item: object, idle: object, rest: _Rest, name: str | None
) -> _Decorator:
    """The decorator; each of ``seconds``, ``first_item`` and ``idle`` may be computed per call."""
    given = {"seconds": seconds, "first_item": first_item, "idle": idle}
    per_call: dict[str, Callable[..., object]] = {p: v for p, v in given.items() if callable(v)}
    spans = {p: check_seconds(p, given[p]) for p in ("first_item", "idle") if p not in per_call}
    # What does not change per call is checked now, once: a bad value fails at decoration.
    base = (
        None
        if "seconds" in per_call
        else _make_limits(seconds, spans.get("first_item"), spans.get("idle"), rest)
    )

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
        label = getattr(func, "__qualname__", None) or repr(func)
        stream_name = label if name is None else name

        def limits_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Limits:
            if base is not None and not per_call:
                return base
            computed: dict[str, object] = {}
            for param, compute in per_call.items():
                try:
                    computed[param] = compute(*args, **kwargs)
                except Exception as exc:
                    exc.add_note(f"(raised computing `{param}` for @with_deadline on {label})")
                    raise
            limits = base
            if limits is None:
                limits = _make_limits(computed.pop("seconds"), None, None, rest, _origin(per_call["seconds"]))
            spans_now = spans | {
                p: check_seconds(p, v, origin=_origin(per_call[p])) for p, v in computed.items()
            }
            return limits._replace(first_item=spans_now["first_item"], idle=spans_now["idle"])

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> DeadlineStream[T]:
            return DeadlineStream(func(*args, **kwargs), limits_for(args, kwargs), stream_name)

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
    progress: Callable[[T], object] | None = None,
    name: str | None = None,
    on_end: Callable[[StreamOutcome], object] | None = None,
) -> DeadlineStream[T]: ...
@overload
def with_deadline(
    seconds: Seconds | PerCall,
    /,
    *,
    first_item: float | PerCallSpan | None = None,
    idle: float | PerCallSpan | None = None,
    on_timeout: Literal["raise", "stop"] = "raise",
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    progress: Callable[[Any], object] | None = None,
    name: str | None = None,
    on_end: Callable[[StreamOutcome], object] | None = None,
) -> _Decorator: ...
@overload
def with_deadline(
    *,
    seconds: Seconds | PerCall,
    first_item: float | PerCallSpan | None = None,
    idle: float | PerCallSpan | None = None,
    on_timeout: Literal["raise", "stop"] = "raise",
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    progress: Callable[[Any], object] | None = None,
    name: str | None = None,
    on_end: Callable[[StreamOutcome], object] | None = None,
) -> _Decorator: ...
def with_deadline(  # noqa: C901, PLR0913 (the keyword-only options are the API; each form's checks)
    source: Any = _MISSING,
    /,
    seconds: Any = _MISSING,
    *,
    first_item: Any = None,
    idle: Any = None,
    on_timeout: Literal["raise", "stop"] = _RAISE,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    progress: Callable[[Any], object] | None = None,
    name: str | None = None,
    on_end: Callable[[StreamOutcome], object] | None = None,
) -> DeadlineStream[Any] | _Decorator:
    """Put a deadline on an async iterator, or, without one, decorate an async generator function.

    ``with_deadline(source, seconds, ...)`` returns a :class:`DeadlineStream` over ``source``;
    ``with_deadline(seconds, ...)`` returns a decorator that does the same to every iterator
    the decorated async generator function returns. In the decorator form ``seconds``,
    ``first_item`` and ``idle`` may each be a callable: it receives the decorated function's
    arguments and returns the limit, once per call
    (``lambda self, *args, **kwargs: self.stream_timeout``).

    Args:
        source: any async iterable; the stream owns it and closes it.
        seconds: the total budget: seconds counted from the first pull, a shared
            :class:`Deadline`, or ``None`` for no total limit. ``math.inf`` means ``None``.
        first_item: seconds the first wait may last (time to first item: with ``progress``,
            to the first item it counts), or ``None``.
        idle: seconds each later wait may last (a stall detector), or ``None``. It does not
            apply to the first wait: that is what ``first_item`` is for.
        on_timeout: ``"raise"`` (default) raises :class:`StreamTimeoutError`; ``"stop"`` ends
            the iteration quietly (after closing the source).
        close_timeout: seconds to wait for the source to close after a timeout or at the end;
            a close that takes longer is abandoned and logged.
        progress: which items count as progress, ``item -> bool`` (for LLM streams,
            :func:`stream_deadline.progress.openai_chunk` or
            :func:`~stream_deadline.progress.langchain_chunk`), or ``None``: every item does.
            Items it does not count are still delivered, in order, but do not end a wait (see
            5). An exception it raises ends the stream with that exception, after closing the
            source.
        name: the stream's label in logs, hooks and metrics; by default the decorated
            function's qualified name, or the source's type name.
        on_end: called once with the stream's :class:`StreamOutcome` when it has ended, before
            the global hooks (:func:`stream_deadline.instrumentation.set_on_end_hooks`); an
            exception it raises is logged, never raised.

    Semantics (each is tested on asyncio and trio):

    1. **Clock.** Every time is read from the running event loop's clock (what
       ``anyio.current_time()`` returns), so virtual clocks work, including one set on the
       loop instance (``loop.time = ...``).
    2. **Start.** The total deadline starts at the first ``__anext__``, when a generator's body
       starts and its request goes out. A :class:`Deadline` fixes it in advance instead.
    3. **Check first.** Every ``__anext__`` checks the deadline first; past it, the source is
       closed and the timeout raised without pulling.
    4. **Watchdog.** Every pull is bounded by whichever is nearest: the deadline, or the
       bound of the wait it is part of (see 5). When that bound passes
       while a task waits in the pull, exactly that task is cancelled, whichever task it is;
       the source is closed with ``aclose()`` (bounded by ``close_timeout``) and
       :class:`StreamTimeoutError` raised in it. A stall in which bytes still arrive but no
       item does (SSE keep-alive comments) is a stall like any other. When two limits pass
       at the same instant, the total deadline is the one reported. A pull in flight at or
       after its bound is cut whatever the clock's resolution: a timer that runs a little
       early (uvloop counts whole milliseconds) counts its bound as reached. A limit of zero
       still lets the pull start: an item it returns without waiting is delivered, and it is
       cut at its first wait, even a ``sleep(0)``, as under ``asyncio.timeout(0)`` or
       ``trio.fail_after(0)``. A source that catches the cancellation (or is shielded from
       it) and returns an item anyway is cut all the same: the late item is dropped and a
       ``WARNING`` logged.
    5. **Waits.** A *wait* starts when a pull starts and no item counted as progress has
       arrived since the previous wait ended (the first wait starts at the first pull); it
       ends when such an item arrives. Without ``progress`` every item counts, so each pull
       is a wait of its own. ``first_item`` bounds the first wait, ``idle`` every later one.
       Time the consumer spends between pulls counts toward the total deadline and, within a
       wait that goes on across items ``progress`` did not count, toward that wait: a pull
       started after its bound raises at once, as after the deadline (3).
    6. **No loss.** Items that arrived before a limit passed are all delivered, in order; none
       is dropped or duplicated. Whatever else ends the source reaches the consumer as it
       would through a pass-through async generator, ``GeneratorExit`` included.
    7. **Outside cancellation wins.** A consumer cancelled by anyone else, even in the same
       loop tick as the deadline, sees the cancellation, never a timeout, and no outside
       cancellation is swallowed. Enclosing ``asyncio.timeout``, anyio and trio scopes keep
       working and are not reported as the stream's timeout. As with ``asyncio.timeout``, a
       task that carried a cancellation from before (``Task.cancelling()`` above zero) still
       gets its timeout, and the count is left as it was.
    8. **Closed once.** The source is closed exactly once: on timeout, normal end, error
       (one raised by ``aiter()`` or by a first ``athrow()`` included), ``aclose()``,
       ``async with`` exit, and ``break`` followed by ``aclose()``. Its
       ``finally`` blocks have run before :class:`StreamTimeoutError` reaches the consumer. A
       close that hangs or raises does not hide the timeout: the timeout still surfaces within
       ``close_timeout``; the close problem is logged (logger ``stream_deadline``) and chained
       as the timeout's ``__cause__``.
    9. **Finished after a timeout.** Later pulls raise :class:`StopAsyncIteration`, as a
       finished async generator does. ``on_timeout="stop"`` ends the iteration quietly (after
       closing the source) instead of raising.
    10. **One puller at a time, one event loop.** A second task pulling while a pull is in
        progress gets :class:`RuntimeError`, and the stream's state stays intact. A stream
        belongs to the event loop of its first pull: a pull from another loop or thread gets
        :class:`RuntimeError` before it changes anything, and nothing is done to the source
        from there; the stream is finished, and ``aclose()`` in its own loop closes the source.
    11. **Nothing left behind.** No timer handle, task or cancel scope outlives the stream.
    12. **Bad input fails at once**, when ``with_deadline`` is called or the decorator
        applied, with :class:`TypeError` or :class:`ValueError` naming the parameter. A limit
        computed per call is checked at call time with the same messages.
    13. **No limit, no cost.** With no limit at all the stream only passes items through
        (and counts them for its outcome).
    14. **Told once.** Every stream that was iterated or closed ends with one
        :class:`StreamOutcome` (its :attr:`~DeadlineStream.outcome`), given once to ``on_end``
        and to each global hook, whatever ended it: exhausted, timeout, error, outside
        cancellation, closed, or finalized without being closed (``"abandoned"``).

    Raises:
        TypeError: a parameter has the wrong type (see 12).
        ValueError: a limit is negative or NaN, or ``on_timeout`` is not a known word.
    """
    if on_timeout is _RAISE and close_timeout is DEFAULT_CLOSE_TIMEOUT and progress is on_end is None:
        rest = _DEFAULT_REST  # (all left out: nothing to check)
    else:
        rest = _check_rest(on_timeout, close_timeout, progress, on_end)
    if name is not None and not isinstance(name, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"`name` must be a str or None, not {type(name).__name__} {name!r}")
    if source is _MISSING:
        if seconds is _MISSING:
            raise TypeError("with_deadline() needs `seconds`: a number, None (no total limit) or a Deadline")
        return _decorator(seconds, first_item, idle, rest, name)
    if seconds is not _MISSING:
        if not _is_async_iterable(source):
            _refuse_source(source)
        for param, value in (("seconds", seconds), ("first_item", first_item), ("idle", idle)):
            if callable(value):
                raise TypeError(
                    f"`{param}` must be a number of seconds or None here; a callable that computes"
                    f" it per call works only in the decorator form: @with_deadline(..., {param}=lambda"
                    " *args, **kwargs: ...)"
                )
        limits = _make_limits(
            seconds, check_seconds("first_item", first_item), check_seconds("idle", idle), rest
        )
        return DeadlineStream(source, limits, name)
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
    return _decorator(source, first_item, idle, rest, name)
