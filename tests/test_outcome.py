"""Semantic 14, told once: every stream that was iterated or closed ends with one ``StreamOutcome``.

Each ending (exhausted, timeout, error, cancelled, closed, abandoned) is proven to give the
stream's ``on_end`` and each global hook the same outcome exactly once, with every field
asserted, on asyncio and trio, on virtual time (see ``conftest.py``), so times are exact. The
global hooks are set with ``set_on_end_hooks`` and restored to the default after each test.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import anyio
import pytest
import sniffio
import trio
import trio.testing

from stream_deadline import DeadlineStream, StreamOutcome, StreamTimeoutError, with_deadline
from stream_deadline.instrumentation import LoggingHook, get_on_end_hooks, set_on_end_hooks
from support import STALL, Closable, Record, collect, scripted, virtual_time_loop

ANYIO = pytest.mark.anyio
"""Run a test on asyncio and on trio, each on virtual time (the ``anyio_backend`` fixture)."""

LIMITED = pytest.mark.parametrize("limited", [True, False], ids=["limited", "pass-through"])
"""Run a test on a stream with limits and on one with none (the pass-through of semantic 13)."""


def backend() -> str:
    return sniffio.current_async_library()


def make(source: Any, limited: bool, **options: Any) -> DeadlineStream[Any]:
    """A stream over ``source`` with limits that never pass in these tests, or with none at all."""
    if limited:
        return with_deadline(source, 100, first_item=50, idle=50, **options)
    return with_deadline(source, None, **options)


@pytest.fixture
def restore_hooks() -> Iterator[None]:
    """Whatever the test sets with ``set_on_end_hooks``, the default is back afterwards."""
    yield
    set_on_end_hooks(None)


@pytest.fixture
def hooked(restore_hooks: None) -> list[StreamOutcome]:
    """The outcomes given to the one global hook installed, which records them."""
    seen: list[StreamOutcome] = []
    set_on_end_hooks([seen.append])
    return seen


def told_once(own: list[StreamOutcome], hooked: list[StreamOutcome]) -> StreamOutcome:
    """The one outcome given once to the stream's ``on_end`` and once to the global hook."""
    assert len(own) == 1, own
    assert len(hooked) == 1, hooked
    assert hooked[0] is own[0]
    return own[0]


class Feed:
    """An async iterable that is not an iterator: ``aiter()`` gives a scripted generator."""

    def __init__(self, record: Record) -> None:
        self.record = record

    def __aiter__(self) -> AsyncIterator[int]:
        return scripted([1], self.record)


class Broken:
    """A hook that raises."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, outcome: StreamOutcome) -> None:
        """Count the call, then fail."""
        self.calls += 1
        raise RuntimeError("the hook is broken")

    def __repr__(self) -> str:
        return "Broken()"


class FailsSecond(Closable):
    """A class-based source whose second pull raises ``ValueError``."""

    async def __anext__(self) -> int:
        if self.index == 1:
            raise ValueError("source failed")
        return await super().__anext__()


OUTCOMES: list[StreamOutcome] = []
"""What ``Client.chunks`` streams report to their ``on_end``."""


class Client:
    """A class with a decorated method: its outcome is named by the method's qualname."""

    @with_deadline(10, on_end=OUTCOMES.append)
    async def chunks(self) -> AsyncGenerator[int, None]:
        """One item."""
        yield 0


# exhausted ---------------------------------------------------------------------------------


@ANYIO
@LIMITED
async def test_exhausted_is_told_once_with_its_counts_and_times(
    limited: bool, hooked: list[StreamOutcome]
) -> None:
    """Items at 1 s and 3.5 s, the consumer holding each for 0.5 s: ``outcome`` is ``None``
    until the end, then one ``"exhausted"`` outcome, given once to ``on_end`` and to the hook,
    and kept on ``stream.outcome``: 2 items (all progress without ``progress=``), elapsed 4 s
    (the consumer's holds included), first item at 1 s, no close (the generator finished by
    itself), no error."""
    own: list[StreamOutcome] = []
    stream = make(scripted([1, 2], Record()), limited, on_end=own.append)
    assert stream.outcome is None
    assert await anext(stream) == 0
    assert stream.outcome is None
    await anyio.sleep(0.5)
    assert await collect(stream, pause=0.5) == [1]
    outcome = told_once(own, hooked)
    assert stream.outcome is outcome
    assert outcome == StreamOutcome(
        name="async_generator",
        ending="exhausted",
        items=2,
        progress_items=2,
        elapsed=4,
        time_to_first_item=1,
        time_to_first_progress=1,
    )


@ANYIO
@LIMITED
async def test_exhausted_counts_the_close_the_stream_made(limited: bool, hooked: list[StreamOutcome]) -> None:
    """A class-based source is closed by the stream at its end, here in 2 s: ``close_seconds``
    is 2 and ``elapsed`` (to the moment the consumer is told) includes it."""
    own: list[StreamOutcome] = []
    source = Closable([1, 1], close_delay=2)
    assert await collect(make(source, limited, on_end=own.append)) == [0, 1]
    assert source.closes == [2]
    assert told_once(own, hooked) == StreamOutcome(
        name="Closable",
        ending="exhausted",
        items=2,
        progress_items=2,
        elapsed=4,
        time_to_first_item=1,
        time_to_first_progress=1,
        close_seconds=2,
    )


@ANYIO
@LIMITED
async def test_progress_counts_only_what_it_counts(limited: bool, hooked: list[StreamOutcome]) -> None:
    """With ``progress=`` counting items 2 and 3 of four, one a second: 4 items, 2 of them
    progress, the first item at 1 s, the first progress at 3 s."""
    own: list[StreamOutcome] = []
    stream = make(scripted([1, 1, 1, 1], Record()), limited, progress=lambda i: i >= 2, on_end=own.append)
    assert await collect(stream) == [0, 1, 2, 3]
    assert told_once(own, hooked) == StreamOutcome(
        name="async_generator",
        ending="exhausted",
        items=4,
        progress_items=2,
        elapsed=4,
        time_to_first_item=1,
        time_to_first_progress=3,
    )


@ANYIO
async def test_a_close_that_fails_at_the_end_is_the_error(hooked: list[StreamOutcome]) -> None:
    """A source exhausted whose close raises: the consumer gets that error, and the outcome is
    ``"error"`` with it as both ``error`` and ``close_error``."""
    own: list[StreamOutcome] = []
    boom = ValueError("close failed")
    with pytest.raises(ValueError, match="close failed") as info:
        await collect(with_deadline(Closable([1], close_error=boom), 10, on_end=own.append))
    outcome = told_once(own, hooked)
    assert info.value is boom
    assert (outcome.error, outcome.close_error) == (boom, boom)
    assert outcome._replace(error=None, close_error=None) == StreamOutcome(
        name="Closable",
        ending="error",
        items=1,
        progress_items=1,
        elapsed=1,
        time_to_first_item=1,
        time_to_first_progress=1,
        close_seconds=0,
    )


# timeout -----------------------------------------------------------------------------------


@ANYIO
@pytest.mark.parametrize(
    ("delays", "seconds", "options", "limit", "elapsed", "items"),
    [
        ([1, 1, STALL], 10, {}, "deadline", 10, 2),
        ([STALL], 60, {"first_item": 3}, "first_item", 3, 0),
        ([1, 1, 7], None, {"idle": 5}, "idle", 7, 2),
    ],
    ids=["deadline", "first_item", "idle"],
)
async def test_timeout_names_its_limit(  # noqa: PLR0917 (the parametrized case)
    delays: list[float],
    seconds: float | None,
    options: dict[str, float],
    limit: str,
    elapsed: float,
    items: int,
    hooked: list[StreamOutcome],
) -> None:
    """Each limit that passes mid-pull ends the stream with ``"timeout"`` naming it, the error
    the consumer got (the same object), the items so far, elapsed at the bound, ``late`` 0 (the
    close took no time) and the stream's own close of the source (``close_seconds`` 0)."""
    own: list[StreamOutcome] = []
    source = Closable(delays)
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(source, seconds, **options, on_end=own.append))
    outcome = told_once(own, hooked)
    assert outcome.error is info.value
    assert info.value.limit == limit
    assert source.closes == [elapsed]
    first = 1 if items else None
    assert outcome._replace(error=None) == StreamOutcome(
        name="Closable",
        ending="timeout",
        limit=limit,  # type: ignore[arg-type]
        items=items,
        progress_items=items,
        elapsed=elapsed,
        time_to_first_item=first,
        time_to_first_progress=first,
        late=0,
        close_seconds=0,
    )


@ANYIO
async def test_late_counts_the_close_of_the_source(hooked: list[StreamOutcome]) -> None:
    """A 10 s deadline cuts a stalled pull, and the source's close takes 2 s: the consumer is
    told at 12 s, so ``late`` is exactly 2, ``close_seconds`` 2, ``elapsed`` 12 (the error's
    own ``elapsed`` stays 10, when the limit passed)."""
    own: list[StreamOutcome] = []
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(Closable([1, STALL], close_delay=2), 10, on_end=own.append))
    outcome = told_once(own, hooked)
    assert outcome.error is info.value
    assert info.value.elapsed == 10
    assert outcome._replace(error=None) == StreamOutcome(
        name="Closable",
        ending="timeout",
        limit="deadline",
        items=1,
        progress_items=1,
        elapsed=12,
        time_to_first_item=1,
        time_to_first_progress=1,
        late=2,
        close_seconds=2,
    )


@ANYIO
async def test_late_counts_from_a_bound_that_passed_between_pulls(hooked: list[StreamOutcome]) -> None:
    """A 2.5 s deadline that passes while the consumer holds item 0 (from 1 s to 6 s): the
    next pull is told at 6 s, 3.5 s after the bound, which is ``late``; the stream closes the
    suspended generator (``close_seconds`` 0)."""
    own: list[StreamOutcome] = []
    record = Record()
    stream = with_deadline(scripted([1, 1, 1], record), 2.5, on_end=own.append)
    assert await anext(stream) == 0
    await anyio.sleep(5)
    with pytest.raises(StreamTimeoutError) as info:
        await anext(stream)
    outcome = told_once(own, hooked)
    assert outcome.error is info.value
    assert record.closed_at == [6]
    assert outcome._replace(error=None) == StreamOutcome(
        name="async_generator",
        ending="timeout",
        limit="deadline",
        items=1,
        progress_items=1,
        elapsed=6,
        time_to_first_item=1,
        time_to_first_progress=1,
        late=3.5,
        close_seconds=0,
    )


@ANYIO
async def test_a_close_that_overruns_close_timeout_is_the_close_error(hooked: list[StreamOutcome]) -> None:
    """A timeout whose close hangs past ``close_timeout=1``: the outcome is still ``"timeout"``,
    told 1 s late, with the ``TimeoutError`` of the overrun as ``close_error`` (and as the
    timeout's cause) and ``close_seconds`` 1."""
    own: list[StreamOutcome] = []
    with pytest.raises(StreamTimeoutError) as info:
        await collect(
            with_deadline(Closable([STALL], close_delay=STALL), 5, close_timeout=1, on_end=own.append)
        )
    outcome = told_once(own, hooked)
    assert outcome.error is info.value
    assert type(outcome.close_error) is TimeoutError
    assert info.value.__cause__ is outcome.close_error
    assert outcome._replace(error=None, close_error=None) == StreamOutcome(
        name="Closable",
        ending="timeout",
        limit="deadline",
        elapsed=6,
        late=1,
        close_seconds=1,
    )


@ANYIO
async def test_stop_mode_is_a_timeout_without_an_error(hooked: list[StreamOutcome]) -> None:
    """With ``on_timeout="stop"`` the iteration ends quietly at the 5 s deadline; the outcome is
    ``"timeout"`` of the deadline with ``error`` ``None``."""
    own: list[StreamOutcome] = []
    source = Closable([1, STALL])
    assert await collect(with_deadline(source, 5, on_timeout="stop", on_end=own.append)) == [0]
    assert source.closes == [5]
    assert told_once(own, hooked) == StreamOutcome(
        name="Closable",
        ending="timeout",
        limit="deadline",
        error=None,
        items=1,
        progress_items=1,
        elapsed=5,
        time_to_first_item=1,
        time_to_first_progress=1,
        late=0,
        close_seconds=0,
    )


# error -------------------------------------------------------------------------------------


@ANYIO
@LIMITED
async def test_an_error_of_the_source_is_the_outcomes_error(
    limited: bool, hooked: list[StreamOutcome]
) -> None:
    """A source that yields at once, then raises 1 s later: ``"error"`` with the very exception
    the consumer got; nothing was left to close (the generator finished by raising)."""
    boom = ValueError("source failed")

    async def fails() -> AsyncGenerator[int, None]:
        yield 0
        await anyio.sleep(1)
        raise boom

    own: list[StreamOutcome] = []
    with pytest.raises(ValueError, match="source failed") as info:
        await collect(make(fails(), limited, on_end=own.append))
    outcome = told_once(own, hooked)
    assert outcome.error is info.value is boom
    assert outcome._replace(error=None) == StreamOutcome(
        name="async_generator",
        ending="error",
        items=1,
        progress_items=1,
        elapsed=1,
        time_to_first_item=0,
        time_to_first_progress=0,
    )


@ANYIO
@LIMITED
async def test_an_error_of_progress_ends_the_stream_and_closes_the_source(
    limited: bool, hooked: list[StreamOutcome]
) -> None:
    """``progress`` raising on the second item (at 2 s): the consumer gets that exception, the
    outcome is ``"error"`` with it, the source was closed once by the stream (``close_seconds``
    0), and only the first item counted as progress."""
    boom = ValueError("progress failed")

    def progress(item: int) -> bool:
        if item == 1:
            raise boom
        return True

    own: list[StreamOutcome] = []
    record = Record()
    delivered: list[int] = []
    with pytest.raises(ValueError, match="progress failed") as info:
        async for item in make(scripted([1, 1, 1], record), limited, progress=progress, on_end=own.append):
            delivered.append(item)
    outcome = told_once(own, hooked)
    assert delivered == [0]
    assert outcome.error is info.value is boom
    assert record.closed_at == [2]
    assert (outcome.ending, outcome.limit, outcome.late) == ("error", None, None)
    assert (outcome.progress_items, outcome.time_to_first_progress) == (1, 1)
    assert (outcome.elapsed, outcome.close_seconds, outcome.close_error) == (2, 0, None)


@ANYIO
@LIMITED
async def test_an_item_progress_failed_on_is_not_counted_as_delivered(
    limited: bool, hooked: list[StreamOutcome]
) -> None:
    """``progress`` raising on the very first item (at 1 s): that item never reaches the
    consumer, so the outcome, whose ``items`` are the items delivered, says 0 items and no
    first item."""
    boom = ValueError("progress failed")

    def progress(item: int) -> bool:
        raise boom

    own: list[StreamOutcome] = []
    delivered: list[int] = []
    with pytest.raises(ValueError, match="progress failed"):
        async for item in make(scripted([1, 1], Record()), limited, progress=progress, on_end=own.append):
            delivered.append(item)
    outcome = told_once(own, hooked)
    assert delivered == []
    assert outcome._replace(error=None) == StreamOutcome(
        name="async_generator",
        ending="error",
        items=0,
        progress_items=0,
        elapsed=1,
        time_to_first_item=None,
        time_to_first_progress=None,
        close_seconds=0,
    )


# cancelled ---------------------------------------------------------------------------------


@ANYIO
@LIMITED
async def test_an_outside_cancellation_is_cancelled(limited: bool, hooked: list[StreamOutcome]) -> None:
    """A cancel scope of 3 s around the pulls, the second of which stalls: ``"cancelled"``, with
    the very cancellation the consumer got as ``error``, 1 item, elapsed 3 s; nothing to close
    (the cancellation finished the generator)."""
    own: list[StreamOutcome] = []
    caught: list[BaseException] = []
    record = Record()
    stream = make(scripted([1, STALL], record), limited, on_end=own.append)
    with anyio.move_on_after(3):
        assert await anext(stream) == 0
        try:
            await anext(stream)
        except anyio.get_cancelled_exc_class() as exc:
            caught.append(exc)
            raise
    outcome = told_once(own, hooked)
    assert outcome.error is caught[0]
    assert record.closed_at == [3]
    assert outcome._replace(error=None) == StreamOutcome(
        name="async_generator",
        ending="cancelled",
        items=1,
        progress_items=1,
        elapsed=3,
        time_to_first_item=1,
        time_to_first_progress=1,
    )


# closed ------------------------------------------------------------------------------------


@ANYIO
@LIMITED
@pytest.mark.parametrize("how", ["aclose", "async with", "break + aclose"])
async def test_closed_by_the_consumer(how: str, limited: bool, hooked: list[StreamOutcome]) -> None:
    """One item at 1 s, held 2 s, then the stream closed (``aclose()``, the exit of ``async
    with``, or ``break`` then ``aclose()``); the source's close takes 2 s: ``"closed"``, 1 item,
    elapsed 5 s, ``close_seconds`` 2, the source closed once; ``error`` is ``None``: the
    consumer saw none."""
    own: list[StreamOutcome] = []
    source = Closable([1, 1, 1], close_delay=2)
    stream = make(source, limited, on_end=own.append)
    if how == "aclose":
        assert await anext(stream) == 0
        await anyio.sleep(2)
        await stream.aclose()
    elif how == "async with":
        async with stream:
            assert await anext(stream) == 0
            await anyio.sleep(2)
    else:
        async for _ in stream:
            await anyio.sleep(2)
            break
        assert own == []
        await stream.aclose()
    outcome = told_once(own, hooked)
    assert stream.outcome is outcome
    assert source.closes == [3]
    assert outcome.error is None  # (the consumer saw no error: the GeneratorExit is the close's own)
    assert outcome._replace(error=None) == StreamOutcome(
        name="Closable",
        ending="closed",
        items=1,
        progress_items=1,
        elapsed=5,
        time_to_first_item=1,
        time_to_first_progress=1,
        close_seconds=2,
    )


@ANYIO
@LIMITED
async def test_closed_before_it_was_iterated(limited: bool, hooked: list[StreamOutcome]) -> None:
    """A stream closed before its first pull: ``"closed"`` with 0 items, no error, the source's
    close (2 s) as ``close_seconds``; a later pull ends at once and tells nothing more."""
    own: list[StreamOutcome] = []
    source = Closable([1], close_delay=2)
    stream = make(source, limited, on_end=own.append)
    await stream.aclose()
    outcome = told_once(own, hooked)
    assert stream.outcome is outcome
    assert source.closes == [0]
    assert outcome == StreamOutcome(name="Closable", ending="closed", close_seconds=2)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert told_once(own, hooked) is outcome


@ANYIO
@LIMITED
async def test_closed_after_aiter_but_before_the_first_pull(
    limited: bool, hooked: list[StreamOutcome]
) -> None:
    """``aiter(stream)`` (which makes the stream's generator without starting it), then
    ``stream.aclose()`` before any pull: the stream was closed, so it is told once, as a stream
    closed before it was iterated is: ``"closed"``, 0 items, no error, the source's close (2 s)
    as ``close_seconds``."""
    own: list[StreamOutcome] = []
    source = Closable([1], close_delay=2)
    stream = make(source, limited, on_end=own.append)
    it = aiter(stream)
    await stream.aclose()
    assert source.closes == [0]
    outcome = told_once(own, hooked)
    assert stream.outcome is outcome
    assert outcome == StreamOutcome(name="Closable", ending="closed", close_seconds=2)
    with pytest.raises(StopAsyncIteration):
        await anext(it)
    assert told_once(own, hooked) is outcome


@ANYIO
@LIMITED
@pytest.mark.parametrize("iterated", [True, False], ids=["after a pull", "before iteration"])
async def test_a_cancellation_during_aclose_is_told_once(
    iterated: bool, limited: bool, hooked: list[StreamOutcome]
) -> None:
    """The consumer is cancelled 0.5 s into an ``aclose()`` that waits 2 s for the source's
    close: the stream has ended, so it is told once, then and there: on asyncio, where the
    cancellation interrupts the close, as ``"cancelled"`` with that very cancellation; on trio,
    where the close is shielded and the cancellation lands after it, as ``"closed"``. A later
    ``aclose()`` tells nothing more, and the source was closed once."""
    own: list[StreamOutcome] = []
    caught: list[BaseException] = []
    source = Closable([1, 1], close_delay=2)
    stream = make(source, limited, on_end=own.append)
    if iterated:
        assert await anext(stream) == 0
    with anyio.move_on_after(0.5):
        try:
            await stream.aclose()
        except anyio.get_cancelled_exc_class() as exc:
            caught.append(exc)
            raise
    outcome = told_once(own, hooked)
    if backend() == "asyncio":
        assert outcome.ending == "cancelled"
        assert outcome.error is caught[0]
    else:
        assert outcome.ending == "closed"
    assert outcome.items == int(iterated)
    await stream.aclose()
    assert told_once(own, hooked) is outcome
    assert len(source.closes) == 1


@ANYIO
@pytest.mark.parametrize(
    "ending", ["exhausted", "timeout", "error", "cancelled", "closed", "closed before iteration"]
)
async def test_later_closes_and_pulls_tell_nothing_more(ending: str, hooked: list[StreamOutcome]) -> None:
    """Whatever ended the stream, two more ``aclose()`` and a pull afterwards report nothing
    more: still one outcome each, the same one, and the source closed once."""
    own: list[StreamOutcome] = []
    source = (FailsSecond if ending == "error" else Closable)([1, 1] if ending != "timeout" else [1, STALL])
    stream = with_deadline(source, 5, on_end=own.append)
    if ending == "exhausted":
        assert await collect(stream) == [0, 1]
    elif ending == "timeout":
        with pytest.raises(StreamTimeoutError):
            await collect(stream)
    elif ending == "error":
        with pytest.raises(ValueError, match="source failed"):
            await collect(stream)
    elif ending == "cancelled":
        with anyio.move_on_after(1.5):
            await collect(stream)
    elif ending == "closed":
        assert await anext(stream) == 0
        await stream.aclose()
    else:
        await stream.aclose()
    outcome = told_once(own, hooked)
    assert outcome.ending == ending.removesuffix(" before iteration")
    await stream.aclose()
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert told_once(own, hooked) is outcome
    assert stream.outcome is outcome
    assert len(source.closes) == 1


# abandoned ---------------------------------------------------------------------------------


def dropped_generator_warning() -> AbstractContextManager[object]:
    """Trio warns about every async generator garbage-collected before it was exhausted."""
    if backend() == "trio":
        return pytest.warns(ResourceWarning, match="was garbage collected before it had been exhausted")
    return nullcontext()


@ANYIO
@LIMITED
async def test_abandoned_when_garbage_collected(limited: bool, hooked: list[StreamOutcome]) -> None:
    """A stream iterated once (item 0 at 1 s), then every reference dropped and collected: the
    event loop's async-generator finalizer closes it, and it is told once as ``"abandoned"``
    (``error`` ``None``), the source closed once (in 2 s)."""
    own: list[StreamOutcome] = []
    source = Closable([1, 1, 1], close_delay=2)
    closes = source.closes
    stream = make(source, limited, on_end=own.append)
    assert await anext(stream) == 0
    with dropped_generator_warning():
        del stream, source
        gc.collect()
    await anyio.sleep(10)  # the loop's finalizer runs the close
    outcome = told_once(own, hooked)
    assert closes == [1]
    assert outcome.error is None  # (the consumer saw no error: the GeneratorExit is the close's own)
    assert outcome._replace(error=None) == StreamOutcome(
        name="Closable",
        ending="abandoned",
        items=1,
        progress_items=1,
        elapsed=3,
        time_to_first_item=1,
        time_to_first_progress=1,
        close_seconds=2,
    )


@ANYIO
@LIMITED
async def test_abandoned_over_an_async_generator_dropped_with_it(
    limited: bool, hooked: list[StreamOutcome]
) -> None:
    """The stream and its async-generator source dropped together (the loop finalizes both, in
    an order of its own): still one ``"abandoned"`` outcome, and the source closed once."""
    own: list[StreamOutcome] = []
    record = Record()
    stream = make(scripted([1, 1, 1], record), limited, on_end=own.append)
    assert await anext(stream) == 0
    with dropped_generator_warning():
        del stream
        gc.collect()
    await anyio.sleep(10)
    outcome = told_once(own, hooked)
    assert (outcome.ending, outcome.items, outcome.elapsed, outcome.error) == ("abandoned", 1, 1, None)
    assert record.closed_at == [1]


@LIMITED
@pytest.mark.parametrize("how", ["shutdown_asyncgens", "asyncio.Runner"])
def test_abandoned_when_asyncio_shuts_down_its_async_generators(
    how: str, limited: bool, hooked: list[StreamOutcome]
) -> None:
    """A stream left suspended (and referenced) when its asyncio run ends: the loop's
    ``shutdown_asyncgens()`` (which ``asyncio.run`` and ``asyncio.Runner`` call on the way out)
    closes it, and it is told once as ``"abandoned"``; on a virtual clock: item 0 at 1 s, run
    over at 3 s, the source's close 2 s."""
    own: list[StreamOutcome] = []
    source = Closable([1, 1, 1], close_delay=2)
    kept: list[DeadlineStream[int]] = []

    async def main() -> None:
        stream = make(source, limited, on_end=own.append)
        kept.append(stream)
        assert await anext(stream) == 0
        await asyncio.sleep(2)

    if how == "shutdown_asyncgens":
        loop = virtual_time_loop()
        try:
            loop.run_until_complete(main())
            assert own == []
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
    else:
        with asyncio.Runner(loop_factory=virtual_time_loop) as runner:
            runner.run(main())
            assert own == []
    outcome = told_once(own, hooked)
    assert kept[0].outcome is outcome
    assert len(source.closes) == 1
    assert outcome.error is None  # (the consumer saw no error: the GeneratorExit is the close's own)
    assert outcome._replace(error=None) == StreamOutcome(
        name="Closable",
        ending="abandoned",
        items=1,
        progress_items=1,
        elapsed=5,
        time_to_first_item=1,
        time_to_first_progress=1,
        close_seconds=2,
    )


@LIMITED
def test_abandoned_when_trio_run_ends(limited: bool, hooked: list[StreamOutcome]) -> None:
    """A stream left suspended (and referenced) when ``trio.run`` ends: trio closes the async
    generators left at the end of the run, and the stream is told once as ``"abandoned"``."""
    own: list[StreamOutcome] = []
    source = Closable([1, 1, 1])
    kept: list[DeadlineStream[int]] = []

    async def main() -> None:
        stream = make(source, limited, on_end=own.append)
        kept.append(stream)
        assert await anext(stream) == 0
        await trio.sleep(2)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    outcome = told_once(own, hooked)
    assert kept[0].outcome is outcome
    assert len(source.closes) == 1
    assert outcome.error is None  # (the consumer saw no error: the GeneratorExit is the close's own)
    assert outcome._replace(error=None) == StreamOutcome(
        name="Closable",
        ending="abandoned",
        items=1,
        progress_items=1,
        elapsed=3,
        time_to_first_item=1,
        time_to_first_progress=1,
        close_seconds=0,
    )


# names -------------------------------------------------------------------------------------


@ANYIO
@pytest.mark.parametrize(
    ("make_source", "name", "expected"),
    [
        (lambda record: scripted([1], record), None, "async_generator"),
        (lambda record: Closable([1]), None, "Closable"),
        (Feed, None, "Feed"),
        (lambda record: scripted([1], record), "llm-answer", "llm-answer"),
    ],
    ids=["async generator", "class", "iterable", "name="],
)
async def test_the_name_is_the_sources_type_or_name(
    make_source: Callable[[Record], Any], name: str | None, expected: str, hooked: list[StreamOutcome]
) -> None:
    """The outcome's ``name`` (and ``stream.name``) is the source's type name (of the iterable
    given, not of its iterator), or ``name=`` when given."""
    own: list[StreamOutcome] = []
    stream = with_deadline(make_source(Record()), 10, name=name, on_end=own.append)
    assert stream.name == expected
    assert await collect(stream) == [0]
    assert told_once(own, hooked).name == expected


@ANYIO
async def test_the_decorator_reports_under_the_functions_qualname(hooked: list[StreamOutcome]) -> None:
    """The decorated form names each call's stream after the function's ``__qualname__`` (or
    ``name=``), and each call's stream reports its own outcome once."""
    own: list[StreamOutcome] = []

    @with_deadline(10, idle=5, on_end=own.append)
    async def numbers(n: int) -> AsyncGenerator[int, None]:
        for i in range(n):
            await anyio.sleep(1)
            yield i

    @with_deadline(None, name="named", on_end=own.append)
    async def renamed() -> AsyncGenerator[int, None]:
        yield 0

    assert await collect(numbers(2)) == [0, 1]
    assert await collect(numbers(1)) == [0]
    assert await collect(renamed()) == [0]
    qualname = "test_the_decorator_reports_under_the_functions_qualname.<locals>.numbers"
    assert own == hooked
    assert [(o.name, o.ending, o.items, o.elapsed) for o in own] == [
        (qualname, "exhausted", 2, 2),
        (qualname, "exhausted", 1, 1),
        ("named", "exhausted", 1, 0),
    ]
    OUTCOMES.clear()
    assert await collect(Client().chunks()) == [0]
    assert [(o.name, o.ending) for o in OUTCOMES] == [("Client.chunks", "exhausted")]
    OUTCOMES.clear()


# hooks -------------------------------------------------------------------------------------


@ANYIO
async def test_on_end_comes_first_then_the_global_hooks_in_order(restore_hooks: None) -> None:
    """``on_end`` is called before the global hooks, which are called in the order given, all
    with the same outcome; when they run, the source is closed, ``stream.outcome`` is set, and
    the consumer has not been told yet."""
    calls: list[tuple[str, StreamOutcome]] = []
    source = Closable([1, STALL])
    told = False
    seen_then: list[tuple[int, bool, bool]] = []

    def hook(tag: str) -> Callable[[StreamOutcome], None]:
        def record(outcome: StreamOutcome) -> None:
            calls.append((tag, outcome))
            seen_then.append((len(source.closes), stream.outcome is outcome, told))

        return record

    set_on_end_hooks([hook("first"), hook("second")])
    stream = with_deadline(source, 5, on_end=hook("own"))
    with pytest.raises(StreamTimeoutError):
        await collect(stream)
    told = True
    assert [tag for tag, _ in calls] == ["own", "first", "second"]
    assert all(outcome is stream.outcome for _, outcome in calls)
    assert seen_then == [(1, True, False)] * 3


@ANYIO
@pytest.mark.parametrize("ending", ["timeout", "exhausted"])
async def test_a_hook_that_raises_is_logged_and_the_stream_ends_as_it_would_have(
    ending: str, restore_hooks: None, caplog: pytest.LogCaptureFixture
) -> None:
    """An ``on_end`` and a global hook that raise: each failure is logged at ``ERROR`` by the
    ``stream_deadline`` logger with its traceback, the hooks after them are still called, and
    the consumer sees what it would have (the timeout, or the items and a quiet end)."""
    broken_own, broken_global = Broken(), Broken()
    seen: list[StreamOutcome] = []
    set_on_end_hooks([broken_global, seen.append])
    stream = with_deadline(
        Closable([1, STALL] if ending == "timeout" else [1]), 5, name="s", on_end=broken_own
    )
    delivered: list[int] = []
    if ending == "timeout":
        with pytest.raises(StreamTimeoutError):
            async for item in stream:
                delivered.append(item)
    else:
        delivered = await collect(stream)
    assert delivered == [0]
    assert (broken_own.calls, broken_global.calls) == (1, 1)
    assert [o.ending for o in seen] == [ending]
    errors = [r for r in caplog.records if r.name == "stream_deadline" and r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "the on_end hook Broken() failed on the outcome of stream s"
    ] * 2
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], RuntimeError) for r in errors)


@ANYIO
async def test_the_default_hook_logs_and_no_hooks_silence_it(
    restore_hooks: None, caplog: pytest.LogCaptureFixture
) -> None:
    """By default one ``LoggingHook`` logs a timeout at ``INFO`` (the error's text, or a line
    for ``on_timeout="stop"``) and an exhausted stream at ``DEBUG``; after
    ``set_on_end_hooks([])`` nothing is logged at all, while ``on_end`` is still called."""
    caplog.set_level(logging.DEBUG, logger="stream_deadline")
    assert [type(hook) for hook in get_on_end_hooks()] == [LoggingHook]

    def logged() -> list[tuple[int, str]]:
        return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "stream_deadline"]

    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(Closable([1, STALL]), 2, name="a"))
    await collect(with_deadline(Closable([1, STALL]), 2, on_timeout="stop", name="b"))
    await collect(with_deadline(Closable([1]), 2, name="c"))
    assert logged() == [
        (logging.INFO, str(info.value)),
        (
            logging.INFO,
            (
                "stream b timed out: the deadline limit passed 2.000 s after the first pull, with 1"
                " item(s) delivered; stopping quietly (on_timeout='stop')"
            ),
        ),
        (logging.DEBUG, "stream c ended: exhausted"),
    ]
    caplog.clear()
    set_on_end_hooks([])
    assert get_on_end_hooks() == ()
    own: list[StreamOutcome] = []
    with pytest.raises(StreamTimeoutError):
        await collect(with_deadline(Closable([1, STALL]), 2, on_end=own.append))
    await collect(with_deadline(Closable([1, STALL]), 2, on_timeout="stop", on_end=own.append))
    await collect(with_deadline(Closable([1]), 2, on_end=own.append))
    assert logged() == []
    assert [o.ending for o in own] == ["timeout", "timeout", "exhausted"]


def test_set_on_end_hooks_refuses_a_non_callable(restore_hooks: None) -> None:
    """A hook that is not callable is refused with ``TypeError`` naming it, and the hooks in
    place stay as they were; ``None`` restores the default ``LoggingHook``."""
    before = get_on_end_hooks()
    with pytest.raises(TypeError, match=r"set_on_end_hooks\(\) takes callables .* not int 42"):
        set_on_end_hooks([print, 42])  # type: ignore[list-item]
    assert get_on_end_hooks() == before
    set_on_end_hooks([print])
    assert get_on_end_hooks() == (print,)
    set_on_end_hooks(None)
    assert repr(get_on_end_hooks()) == "(LoggingHook(),)"
