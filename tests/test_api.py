"""The public surface: input checking (semantic 12), the decorator, the error, the forwarding
of ``asend``/``athrow``, and the package metadata."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import math
import pickle
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from fractions import Fraction
from importlib.metadata import version
from typing import Any

import anyio
import pytest
import trio

import stream_deadline
from stream_deadline import Deadline, DeadlineStream, StreamTimeoutError, with_deadline
from support import STALL, Record, collect, scripted


async def agen() -> AsyncGenerator[int, None]:
    yield 1


# 12. Bad input fails at once --------------------------------------------------------------

BAD_LIMITS: list[tuple[object, type[Exception], str]] = [
    (-1, ValueError, "must be non-negative, got -1"),
    (-0.5, ValueError, "must be non-negative"),
    (math.nan, ValueError, "must not be NaN"),
    (True, TypeError, "not bool True; booleans are not durations"),
    (False, TypeError, "booleans are not durations"),
    ("45", TypeError, "write {name}=45, not {name}='45'"),
    ([45], TypeError, "must be a number of seconds or None, not list"),
    (1j, TypeError, "not complex"),
]


@pytest.mark.parametrize(("value", "error", "message"), BAD_LIMITS)
@pytest.mark.parametrize("name", ["seconds", "first_item", "idle"])
def test_s12_bad_limits_fail_at_call_time_naming_the_parameter(
    name: str, value: object, error: type[Exception], message: str
) -> None:
    """Every limit parameter rejects negative, NaN, boolean, string and other non-numbers when
    ``with_deadline`` is called (no event loop needed, nothing pulled), naming the parameter."""
    kwargs: dict[str, Any] = {"first_item": None, "idle": None}
    seconds: object = 10
    if name == "seconds":
        seconds = value
    else:
        kwargs[name] = value
    source = agen()
    with pytest.raises(error, match=f"^`{name}`") as info:
        with_deadline(source, seconds, **kwargs)  # type: ignore[call-overload]
    assert message.format(name=name) in str(info.value)


@pytest.mark.parametrize("name", ["seconds", "first_item", "idle"])
@pytest.mark.parametrize("value", [0, 0.0, 3, 2.5, Fraction(1, 2), math.inf])
def test_s12_good_limits_are_accepted(name: str, value: float) -> None:
    """Zero, ints, floats, other real numbers and infinity (no limit) are accepted."""
    kwargs: dict[str, Any] = {name: value} if name != "seconds" else {}
    stream = with_deadline(agen(), value if name == "seconds" else None, **kwargs)
    assert isinstance(stream, DeadlineStream)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"on_timeout": "ignore"}, ValueError, '`on_timeout` must be "raise" or "stop", not \'ignore\''),
        ({"on_timeout": None}, ValueError, "`on_timeout` must be"),
        ({"close_timeout": -1}, ValueError, "`close_timeout` must be non-negative"),
        ({"close_timeout": None}, TypeError, "`close_timeout` must be a number of seconds, not NoneType"),
        ({"close_timeout": math.nan}, ValueError, "`close_timeout` must not be NaN"),
    ],
)
def test_s12_bad_options_fail_at_call_time(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """``on_timeout`` accepts only "raise" and "stop"; ``close_timeout`` only a non-negative number."""
    with pytest.raises(error, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        with_deadline(agen(), 10, **kwargs)


def sync_gen() -> Any:
    yield 1


async def coroutine() -> int:
    return 1


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ([1, 2, 3], "list is a sync iterable: use an async one"),
        (range(3), "range is a sync iterable"),
        (sync_gen(), "generator is a sync iterable"),
        (42, "`source` must be an async iterable, not int 42"),
        (agen, "`source` is the async generator function agen, not an async iterable: call it"),
    ],
)
def test_s12_bad_sources_fail_at_call_time(source: object, message: str) -> None:
    """A sync iterable (told to use an async one), a non-iterable, and an async generator
    function passed uncalled are refused when ``with_deadline`` is called."""
    with pytest.raises(TypeError) as info:
        with_deadline(source, 10)  # type: ignore[call-overload]
    assert message in str(info.value)


def test_s12_an_awaitable_source_is_told_to_await() -> None:
    """A coroutine (``client.create(stream=True)`` not awaited) is refused with the fix."""
    coro = coroutine()
    with pytest.raises(TypeError, match="await it to get the stream"):
        with_deadline(coro, 10)  # type: ignore[call-overload]
    coro.close()


def test_s12_missing_seconds_is_refused() -> None:
    """``with_deadline(source)`` and ``with_deadline()`` say that ``seconds`` is missing."""
    with pytest.raises(TypeError, match=r"with_deadline\(source\) is missing `seconds`"):
        with_deadline(agen())  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="needs `seconds`"):
        with_deadline()  # type: ignore[call-overload]


def test_s12_a_bare_decorator_is_refused() -> None:
    """``@with_deadline`` without a limit fails when applied, saying how to write it."""
    with pytest.raises(TypeError, match=r"needs a limit: write @with_deadline\(45\)"):

        @with_deadline  # type: ignore[call-overload]
        async def tokens() -> AsyncGenerator[int, None]:
            yield 1


@pytest.mark.parametrize("func", [coroutine, sync_gen, len, lambda: 1])
def test_s12_decorating_anything_but_an_async_generator_function_is_refused(func: Callable[..., Any]) -> None:
    """The decorator refuses coroutine functions (saying why), sync generators and plain
    callables when it is applied, not when they are called."""
    with pytest.raises(TypeError, match="decorates async generator functions") as info:
        with_deadline(10)(func)
    if func is coroutine:
        assert "which is a coroutine function" in str(info.value)


def test_s12_decorator_limits_are_checked_when_the_decorator_is_made() -> None:
    """Static limits and options of the decorator form are checked at once."""
    with pytest.raises(ValueError, match=r"^`seconds` must be non-negative"):
        with_deadline(-1)
    with pytest.raises(ValueError, match=r"^`idle` must not be NaN"):
        with_deadline(10, idle=math.nan)
    with pytest.raises(TypeError, match=r"^`seconds` must be a number of seconds"):
        with_deadline("10")  # type: ignore[call-overload]


def test_s12_a_callable_limit_is_checked_at_call_time() -> None:
    """A per-call limit is checked when the decorated function is called, with the same
    message plus where the value came from."""

    def limit(n: int) -> float:
        return n

    @with_deadline(limit)
    async def tokens(n: int) -> AsyncGenerator[int, None]:
        yield n

    assert isinstance(tokens(5), DeadlineStream)
    with pytest.raises(ValueError, match=r"^`seconds` \(returned by .*limit\) must be non-negative, got -1"):
        tokens(-1)


def test_s12_a_callable_limit_outside_the_decorator_is_refused() -> None:
    """In the wrapper form ``seconds`` cannot be a callable: the message points to the decorator."""
    with pytest.raises(TypeError, match="works only in the decorator form"):
        with_deadline(agen(), lambda: 5)  # type: ignore[call-overload]


def test_s12_deadline_after_checks_its_argument() -> None:
    """``Deadline.after`` rejects bad seconds with the same messages, and ``Deadline()`` says
    how to make one."""
    with pytest.raises(ValueError, match=r"^`seconds` must be non-negative"):
        Deadline.after(-1)
    with pytest.raises(TypeError, match=r"Deadline\.after"):
        Deadline()


def test_deadline_after_needs_a_running_loop() -> None:
    """Outside async code there is no event loop clock: the error says where to call it."""
    with pytest.raises(RuntimeError, match=r"Deadline.after\(\) needs a running event loop"):
        Deadline.after(5)


# The decorator ------------------------------------------------------------------------------


def test_decorator_keeps_name_docstring_and_signature() -> None:
    """``functools.wraps``: the decorated function keeps its metadata and signature."""

    @with_deadline(45, idle=5)
    async def tokens(prompt: str, *, n: int = 3) -> AsyncGenerator[str, None]:
        """Generate tokens."""
        yield prompt

    assert tokens.__name__ == "tokens"
    assert tokens.__doc__ == "Generate tokens."
    assert str(inspect.signature(tokens)) == "(prompt: 'str', *, n: 'int' = 3) -> 'AsyncGenerator[str, None]'"


@pytest.mark.anyio
async def test_decorator_computes_the_limit_per_call_from_the_arguments() -> None:
    """The seed's case: a method whose limit comes from the instance, evaluated once per call."""
    calls: list[float | None] = []

    class Model:
        def __init__(self, stream_timeout: float | None) -> None:
            self.stream_timeout = stream_timeout

        def limit(self, *args: Any, **kwargs: Any) -> float | None:
            calls.append(self.stream_timeout)
            return self.stream_timeout

        @with_deadline(lambda self, *args, **kwargs: self.limit(*args, **kwargs))
        async def astream(self, delays: list[float]) -> AsyncGenerator[int, None]:
            async for item in scripted(delays, Record()):
                yield item

    start = anyio.current_time()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(Model(3).astream([1, STALL]))
    assert (anyio.current_time() - start, info.value.timeout) == (3, 3)
    assert await collect(Model(None).astream([1, 1])) == [0, 1]
    assert calls == [3, None]


@pytest.mark.anyio
async def test_decorator_accepts_a_shared_deadline() -> None:
    """A ``Deadline`` passed to the decorator bounds every stream it makes, together."""
    budget = Deadline.after(5)

    @with_deadline(budget)
    async def tokens() -> AsyncGenerator[int, None]:
        async for item in scripted([1, 1, 1, STALL], Record()):
            yield item

    with pytest.raises(StreamTimeoutError):
        await collect(tokens())
    with pytest.raises(StreamTimeoutError) as info:
        await collect(tokens())
    assert (info.value.elapsed, info.value.items) == (0, 0)


def test_decorators_stack() -> None:
    """A function already decorated with ``with_deadline`` can be decorated again."""

    @with_deadline(10)
    @with_deadline(None, idle=5)
    async def tokens() -> AsyncGenerator[int, None]:
        yield 1

    assert isinstance(tokens(), DeadlineStream)


# The stream -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_asend_and_athrow_are_forwarded_to_the_source() -> None:
    """``asend(v)`` reaches the source's ``yield``; ``athrow(e)`` is raised there and the
    source's answer comes back; both under the same limits."""
    received: list[object] = []

    async def echo() -> AsyncGenerator[int, object]:
        value: object = None
        n = 0
        while True:
            try:
                value = yield n
                received.append(value)
            except KeyError as exc:
                received.append(exc)
            n += 1

    stream = with_deadline(echo(), 10)
    assert await stream.asend(None) == 0
    assert await stream.asend("hello") == 1
    assert await stream.athrow(KeyError("k")) == 2
    assert await stream.__anext__() == 3
    await stream.aclose()
    assert received == ["hello", received[1], None]
    assert isinstance(received[1], KeyError)


@pytest.mark.anyio
async def test_athrow_into_a_source_without_athrow_raises_it() -> None:
    """A plain async iterator cannot receive an exception: ``athrow`` raises it, and the
    stream is finished and its source closed, as a generator that does not catch it."""
    record = Record()
    stream = with_deadline(scripted([1, 1], record), 10)
    assert await anext(stream) == 0
    with pytest.raises(KeyError):
        await stream.athrow(KeyError("k"))
    assert record.closes == 1


@pytest.mark.anyio
async def test_asend_to_a_source_without_asend_is_refused() -> None:
    """A value sent to a source that is not a generator fails with a message saying so."""

    class Plain:
        def __aiter__(self) -> AsyncIterator[int]:
            return self

        async def __anext__(self) -> int:
            return 1

    stream = with_deadline(Plain(), 10)
    assert await anext(stream) == 1
    with pytest.raises(TypeError, match="is not an async generator and cannot receive values"):
        await stream.asend("x")


@pytest.mark.anyio
async def test_async_with_returns_the_stream_and_closes_it() -> None:
    """``async with`` gives the stream itself and closes the source on exit."""
    record = Record()
    stream = with_deadline(scripted([1, 1, 1], record), 10)
    async with stream as entered:
        assert entered is stream
        assert await anext(entered) == 0
    assert record.closes == 1


def test_a_stream_iterated_outside_async_code_says_so() -> None:
    """Iterating needs a running event loop; the error says which."""
    stream = with_deadline(agen(), 10)
    with pytest.raises(RuntimeError, match="needs a running event loop"):
        aiter(stream)


# The error --------------------------------------------------------------------------------


def test_error_is_a_timeout_error_with_its_facts() -> None:
    """``StreamTimeoutError`` is caught by ``except TimeoutError``, carries its four facts,
    says them in one sentence, and survives pickling (for multiprocessing and logging)."""
    error = StreamTimeoutError("idle", 5, 17.25, 12)
    assert isinstance(error, TimeoutError)
    assert (error.limit, error.timeout, error.elapsed, error.items) == ("idle", 5, 17.25, 12)
    assert str(error) == (
        "stream timed out: the idle limit of 5 s (idle) passed 17.250 s after the first pull,"
        " with 12 items delivered"
    )
    assert "with 1 item delivered" in str(StreamTimeoutError("deadline", 1, 1, 1))
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own object)
    assert (type(copy), str(copy), copy.items) == (StreamTimeoutError, str(error), 12)
    assert repr(error) == "StreamTimeoutError(limit='idle', timeout=5, elapsed=17.25, items=12)"
    assert error.errno is None  # (a TimeoutError is an OSError: the facts are not its errno)


# Metadata ---------------------------------------------------------------------------------


def test_version_comes_from_the_package_metadata() -> None:
    """``__version__`` is the installed distribution's version."""
    assert stream_deadline.__version__ == version("stream-deadline")


def test_the_public_names_are_exported() -> None:
    """``__all__`` lists exactly the public names, sorted."""
    assert stream_deadline.__all__ == sorted(stream_deadline.__all__)
    assert {"with_deadline", "Deadline", "StreamTimeoutError", "DeadlineStream"} <= set(
        stream_deadline.__all__
    )


def test_the_first_pull_may_be_made_before_the_loop_runs() -> None:
    """``anext(stream)`` and ``stream.asend(None)`` made outside any event loop and run by
    ``asyncio.run`` / ``trio.run`` work: the backend is picked when the pull runs, not when
    the awaitable is made (as with an async generator)."""

    async def source() -> AsyncGenerator[int, None]:
        yield 7

    assert asyncio.run(anext(with_deadline(source(), 5))) == 7
    assert asyncio.run(with_deadline(source(), 5).asend(None)) == 7
    assert trio.run(anext, with_deadline(source(), 5)) == 7


# Per-call limits, names, and the options of issue 14 ------------------------------------------


@pytest.mark.anyio
async def test_decorator_computes_first_item_and_idle_per_call() -> None:
    """The issue's form: ``seconds``, ``first_item`` and ``idle`` each computed from the
    instance, once per call. A model with ``first_token_timeout=2`` is cut at 2 s on a
    first item that takes 5 s; one with ``idle_timeout=1`` at 1 s into a stall after its
    first item; one with neither runs to the end."""
    calls: list[str] = []

    class Model:
        def __init__(self, first: float | None, idle: float | None) -> None:
            self.stream_timeout = 60
            self.first_token_timeout = first
            self.idle_timeout = idle

        def first(self) -> float | None:
            calls.append("first_item")
            return self.first_token_timeout

        @with_deadline(
            lambda self, *a, **k: self.stream_timeout,
            first_item=lambda self, *a, **k: self.first(),
            idle=lambda self, *a, **k: self.idle_timeout,
        )
        async def astream(self, delays: list[float]) -> AsyncGenerator[int, None]:
            async for item in scripted(delays, Record()):
                yield item

    start = anyio.current_time()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(Model(2, None).astream([5, 1]))
    assert (info.value.limit, anyio.current_time() - start) == ("first_item", 2)
    start = anyio.current_time()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(Model(None, 1).astream([0, STALL]))
    assert (info.value.limit, anyio.current_time() - start) == ("idle", 1)
    assert await collect(Model(None, None).astream([5, 5])) == [0, 1]
    assert calls == ["first_item"] * 3


@pytest.mark.parametrize("param", ["first_item", "idle"])
def test_a_per_call_first_item_or_idle_is_checked_at_call_time(param: str) -> None:
    """A computed ``first_item``/``idle`` is checked at call time with the usual message and
    where it came from; a static one with a bad value fails when the decorator is made."""

    def span(n: float) -> float:
        return n

    @with_deadline(None, **{param: span})
    async def tokens(n: float) -> AsyncGenerator[float, None]:
        yield n

    assert isinstance(tokens(5), DeadlineStream)
    with pytest.raises(ValueError, match=rf"^`{param}` \(returned by .*span\) must be non-negative, got -1"):
        tokens(-1)
    with pytest.raises(TypeError, match=rf"^`{param}` must be a number of seconds or None, not str"):
        with_deadline(None, **{param: "3"})


def test_an_error_raised_computing_a_limit_names_the_decorator_and_the_function() -> None:
    """A per-call callable with the wrong signature raises its own error, with a note that
    names the parameter, ``@with_deadline`` and the decorated function."""

    @with_deadline(30, idle=lambda: 5)  # takes no arguments, but is called with the function's
    async def tokens(n: int) -> AsyncGenerator[int, None]:
        yield n

    with pytest.raises(TypeError) as info:
        tokens(1)
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 1
    assert "`idle`" in notes[0]
    assert "@with_deadline" in notes[0]
    assert (
        "test_an_error_raised_computing_a_limit_names_the_decorator_and_the_function.<locals>.tokens"
        in notes[0]
    )


@pytest.mark.parametrize("param", ["first_item", "idle"])
def test_a_callable_first_item_or_idle_outside_the_decorator_is_refused(param: str) -> None:
    """In the wrapper form a limit cannot be computed per call: the message says where it can."""
    with pytest.raises(TypeError, match=rf"^`{param}` must be a number.*works only in the decorator form"):
        with_deadline(agen(), 10, **{param: lambda: 5})


@pytest.mark.parametrize("param", ["seconds", "first_item", "idle"])
def test_a_timedelta_limit_is_refused_with_the_fix(param: str) -> None:
    """A ``timedelta`` is not taken for seconds: the message says to call ``.total_seconds()``."""
    kwargs: dict[str, Any] = {param: dt.timedelta(seconds=3)}
    seconds = kwargs.pop("seconds", 10)
    with pytest.raises(TypeError, match=rf"^`{param}` must be .*not timedelta.*\.total_seconds\(\)"):
        with_deadline(agen(), seconds, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"progress": "openai_chunk"},
            r"^`progress` must be a callable or None, not str.*progress=stream_deadline",
        ),
        ({"progress": True}, r"^`progress` must be a callable or None, not bool"),
        ({"on_end": [print]}, r"^`on_end` must be a callable or None, not list.*on_end=print"),
        ({"name": 5}, r"^`name` must be a str or None, not int 5"),
    ],
)
def test_bad_progress_on_end_and_name_fail_at_call_time(kwargs: dict[str, Any], message: str) -> None:
    """``progress``, ``on_end`` and ``name`` are checked when ``with_deadline`` is called, in
    both forms, naming the parameter."""
    with pytest.raises(TypeError, match=message):
        with_deadline(agen(), 10, **kwargs)
    with pytest.raises(TypeError, match=message):
        with_deadline(10, **kwargs)


def test_the_name_defaults_to_the_source_type_or_the_function() -> None:
    """``name``: the source's type name, the decorated function's qualified name, or as given."""

    @with_deadline(10)
    async def tokens() -> AsyncGenerator[int, None]:
        yield 1

    @with_deadline(10, name="qwen3")
    async def named() -> AsyncGenerator[int, None]:
        yield 1

    assert with_deadline(agen(), 10).name == "async_generator"
    assert with_deadline(agen(), 10, name="gpt").name == "gpt"
    assert tokens().name == "test_the_name_defaults_to_the_source_type_or_the_function.<locals>.tokens"
    assert named().name == "qwen3"


def test_seconds_is_a_real_type_at_runtime() -> None:
    """``Seconds`` is a type, not a string: ``typing.get_type_hints`` resolves it, and a
    pydantic field declared with it (as on a LangChain chat model) validates numbers,
    ``None`` and refuses a string that is not a number."""
    import pydantic  # noqa: PLC0415 (langchain-core's dependency, in the test group through it)

    class Settings(pydantic.BaseModel, arbitrary_types_allowed=True):
        stream_timeout: stream_deadline.Seconds = 45

    assert typing.get_type_hints(Settings)["stream_timeout"] == stream_deadline.Seconds
    assert (Settings().stream_timeout, Settings(stream_timeout=None).stream_timeout) == (45, None)
    with pytest.raises(pydantic.ValidationError):
        Settings(stream_timeout="soon")  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["anext", "asend", "async-for", "athrow"])
async def test_a_second_puller_is_told_it_is_a_with_deadline_stream(how: str) -> None:
    """While one task waits in a pull, a second pull (``anext``, ``asend``, ``athrow`` or a
    second ``async for``) gets a ``RuntimeError`` that names the stream and what to do
    instead of Python's generic "already running"; the first pull goes on unharmed."""
    stream = with_deadline(scripted([0, 5, 1], Record()), 60)
    assert await anext(stream) == 0
    got: list[int] = []

    async def first() -> None:
        got.append(await anext(stream))

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.sleep(1)
        with pytest.raises(RuntimeError, match=r"another task is pulling from this with_deadline\(\) stream"):
            if how == "anext":
                await anext(stream)
            elif how == "asend":
                await stream.asend(None)
            elif how == "athrow":
                await stream.athrow(KeyError("k"))
            else:
                async for _ in stream:
                    pass  # pragma: no cover (refused)
    assert got == [1]
    assert await anext(stream) == 2
    await stream.aclose()
