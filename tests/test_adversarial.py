"""Sources that misbehave, each on asyncio and on trio, on virtual time (issue 6, part 1).

Every test asserts what the consumer sees, at which virtual time, how often the source was
closed, and what was logged on the ``stream_deadline`` logger. A source "misbehaves" when it
swallows a cancellation, hangs or fails while closing; a source that merely raises its own
error, or has no ``aclose()``, is not misbehaving and nothing is logged for it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
import sniffio
import trio

from stream_deadline import StreamTimeoutError, with_deadline
from support import STALL, Closable, Record, collect, pull_in_new_task, virtual_time_loop

pytestmark = pytest.mark.anyio

now = anyio.current_time

ASYNCIO = pytest.mark.parametrize(
    "anyio_backend", [("asyncio", {"loop_factory": virtual_time_loop})], ids=["asyncio"]
)
"""Run a test on asyncio only (it overrides the two-backend ``anyio_backend`` fixture)."""

WENT_ON = (
    "the source async_generator went on after the {limit} limit cut its pull (it caught the"
    " cancellation, was shielded from it, or its item came in as the limit passed) and returned"
    " an item; the item is dropped"
)
"""The warning for a source that returns an item after a limit cut its pull."""


def backend() -> str:
    return sniffio.current_async_library()


def cancelled() -> type[BaseException]:
    return anyio.get_cancelled_exc_class()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The messages the library logged at WARNING or above."""
    return [
        r.getMessage() for r in caplog.records if r.name == "stream_deadline" and r.levelno >= logging.WARNING
    ]


def cancelling() -> int:
    """How many cancellations are pending on the current asyncio task (0 on trio)."""
    if backend() != "asyncio":
        return 0
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


def jump(seconds: float) -> None:
    """Move the virtual clock forward *synchronously*, as a call that blocks the loop would.

    Trio's ``MockClock.jump`` does exactly that. looptime has no public equivalent, so this
    advances its integer clock (``LoopTimeEventLoop.__now``, in units of its resolution): the
    loop then sees the time as it would after a blocking call of ``seconds``.
    """
    if backend() == "trio":
        clock = trio.lowlevel.current_clock()
        assert isinstance(clock, trio.testing.MockClock)
        clock.jump(seconds)
        return
    loop: Any = asyncio.get_running_loop()
    loop._LoopTimeEventLoop__now += round(seconds * loop._LoopTimeEventLoop__resolution_reciprocal)


@pytest.fixture(autouse=True)
def _capture_library_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.INFO, logger="stream_deadline"):
        yield


# (1) A source that catches the cancellation ------------------------------------------------


async def test_a_source_that_swallows_the_cancellation_and_yields_is_cut(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The source catches the cancellation of its stalled pull and yields a late item anyway:
    the late item is dropped, the timeout surfaces at the deadline exactly, the source is
    closed once, and the library logs that the source went on after the cut."""
    start = now()
    record = Record()

    async def swallower() -> AsyncGenerator[str, None]:
        try:
            yield "early"
            try:
                await anyio.sleep_forever()
            except cancelled():
                pass  # a bad source: carries on as if nothing happened
            yield "late"
            yield "later"
        finally:
            record.closed_at.append(now())

    items: list[str] = []
    with pytest.raises(StreamTimeoutError) as info:
        async for item in with_deadline(swallower(), 5):
            items.append(item)
    assert items == ["early"]
    assert (now() - start, info.value.limit, info.value.timeout, info.value.items) == (5, "deadline", 5, 1)
    assert [t - start for t in record.closed_at] == [5]
    assert warnings_of(caplog) == [WENT_ON.format(limit="deadline")]
    assert cancelling() == 0


async def test_a_source_that_swallows_the_cancellation_in_a_new_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same swallowing source pulled from a new task per item: the task that waits in the
    pull gets the timeout at the deadline, the late item is never delivered."""
    start = now()

    async def swallower() -> AsyncGenerator[int, None]:
        yield 0
        try:
            await anyio.sleep_forever()
        except cancelled():
            pass
        yield 1

    it = aiter(with_deadline(swallower(), 5))
    assert await pull_in_new_task(it) == 0
    with pytest.raises(StreamTimeoutError):
        await pull_in_new_task(it)
    assert now() - start == 5
    assert len(warnings_of(caplog)) == 1
    with pytest.raises(StopAsyncIteration):
        await anext(it)


def stubborn(swallows: int, record: Record) -> AsyncGenerator[int, None]:
    """A source that, once its pull is cancelled, swallows ``swallows`` cancellations and keeps
    awaiting (a retry loop around a read), then lets the next one through."""

    async def gen() -> AsyncGenerator[int, None]:
        try:
            yield 0
            left = swallows
            while True:
                try:
                    await anyio.sleep_forever()
                except cancelled():
                    record.cancelled_at.append(now())
                    if left == 0:
                        raise
                    left -= 1
        finally:
            record.closed_at.append(now())

    return gen()


async def test_a_source_that_keeps_awaiting_after_the_cancellation(caplog: pytest.LogCaptureFixture) -> None:
    """The source swallows three cancellations and keeps awaiting. On asyncio a cancellation
    is delivered once, so the watchdog cancels again every ``close_timeout`` (2 s), logging
    each time: the fourth one gets through at 5 + 3 * 2 = 11 s. On trio a cancelled scope
    stays cancelled, so every await of the source raises again at once: timeout at 5 s."""
    start = now()
    record = Record()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(stubborn(3, record), 5, close_timeout=2))
    if backend() == "asyncio":
        assert [t - start for t in record.cancelled_at] == [5, 7, 9, 11]
        assert now() - start == 11
        assert len(warnings_of(caplog)) == 3
        assert all("did not stop within close_timeout=2 s" in m for m in warnings_of(caplog))
    else:
        assert [t - start for t in record.cancelled_at] == [5, 5, 5, 5]
        assert now() - start == 5
        assert warnings_of(caplog) == []
    assert info.value.elapsed == now() - start
    assert record.closed_at == [now()]
    assert cancelling() == 0


async def test_a_source_that_keeps_awaiting_is_bounded_by_close_timeout_per_swallow() -> None:
    """With the default ``close_timeout`` of 5 s a source that swallows one cancellation
    delays the timeout by at most 5 s on asyncio, and not at all on trio."""
    start = now()
    with pytest.raises(StreamTimeoutError):
        await collect(with_deadline(stubborn(1, Record()), 3))
    assert now() - start == (8 if backend() == "asyncio" else 3)


async def test_a_source_that_swallows_the_cancellation_and_ends(caplog: pytest.LogCaptureFixture) -> None:
    """The source catches the cancellation of its pull and ends (``StopAsyncIteration``)
    instead of letting it through. The limit passed: the consumer must see the timeout at the
    deadline (never a quiet end), no cancellation may stay pending on the task, and the
    misbehaviour is logged."""
    start = now()

    async def quitter() -> AsyncGenerator[int, None]:
        yield 0
        try:
            await anyio.sleep_forever()
        except cancelled():
            return

    with pytest.raises(StreamTimeoutError):
        await collect(with_deadline(quitter(), 5))
    assert now() - start == 5
    assert cancelling() == 0
    assert len(warnings_of(caplog)) == 1


async def converter() -> AsyncGenerator[int, None]:
    """A source that turns the cancellation of its stalled pull into an error of its own."""
    yield 0
    try:
        await anyio.sleep_forever()
    except cancelled():
        raise ConnectionError("read aborted") from None


async def test_a_source_that_turns_the_cancellation_into_its_own_error() -> None:
    """The source catches the cancellation and raises an error of its own (as some clients
    turn a cancelled read into a connection error): the consumer gets that error, the
    source's last word, at the deadline, and can go on waiting afterwards."""
    start = now()
    with pytest.raises(ConnectionError, match="read aborted"):
        await collect(with_deadline(converter(), 5))
    assert now() - start == 5
    await anyio.sleep(1)
    assert now() - start == 6


@ASYNCIO
async def test_a_converted_cancellation_leaves_no_cancellation_pending() -> None:
    """After the converted cancellation above, no cancellation may stay pending on the
    consumer task: an enclosing ``asyncio.timeout`` entered before the stream must still
    raise ``TimeoutError`` when it expires (not a bare ``CancelledError``)."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(20):
            with pytest.raises(ConnectionError):
                await collect(with_deadline(converter(), 5))
            assert cancelling() == 0
            await anyio.sleep_forever()


# (1b) A source that pulls each item through asyncio.wait_for ------------------------------
#
# langchain-openai's `stream_chunk_timeout` (on by default) pulls every chunk of the openai SDK's
# stream through `asyncio.wait_for`. On Python 3.11, `wait_for` drops a cancellation that
# arrives in the same turn of the loop as its item and returns the item instead (CPython
# gh-86296, gone in 3.12, where `wait_for` is built on `asyncio.timeout`). A source that does
# this has swallowed the cancellation without meaning to.

ITEM_EVERY = 0.25
"""The gap between the items of :func:`per_item_wait_for`: exact in binary, so that the fourth
item lands at 1.0 s exactly."""

JUST_AFTER_AN_ITEM = 4 * ITEM_EVERY + 1e-10
"""A limit a tenth of a nanosecond after the fourth item (``3``): both fall due in the same turn of the
loop, the item's first. (``BaseEventLoop._run_once`` runs in one turn every timer due before
``time() + _clock_resolution``, the resolution of ``time.monotonic``: 1 ns on Linux. looptime's
virtual clock stands on 1.0 exactly when the item's timer comes up.)"""


async def per_item_wait_for(record: Record) -> AsyncGenerator[int, None]:
    """Ten items, one every ``ITEM_EVERY`` s, each pulled through ``asyncio.wait_for`` with a
    generous timeout of its own, as langchain-openai does."""

    async def items() -> AsyncGenerator[int, None]:
        for i in range(10):
            await asyncio.sleep(ITEM_EVERY)
            yield i

    it = items()
    try:
        while True:
            try:
                item = await asyncio.wait_for(anext(it), 120)
            except StopAsyncIteration:
                return
            record.yielded.append(item)
            yield item
    finally:
        record.closed_at.append(now())
        await it.aclose()


@ASYNCIO
async def test_a_wait_for_per_item_source_is_cut_when_its_item_lands_with_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The source's fourth pull returns its item in the very turn the watchdog cancels it (on
    3.11 ``wait_for`` then drops the cancellation): the stream still ends at the limit with a
    ``StreamTimeoutError`` after three items, closes the source, and leaves no cancellation
    pending on the task."""
    start = now()
    record = Record()
    items: list[int] = []
    with pytest.raises(StreamTimeoutError) as info:
        async for item in with_deadline(per_item_wait_for(record), JUST_AFTER_AN_ITEM):
            items.append(item)
    assert items == [0, 1, 2]
    assert (info.value.limit, info.value.timeout, info.value.items) == ("deadline", JUST_AFTER_AN_ITEM, 3)
    assert now() - start == 4 * ITEM_EVERY  # the turn in which both fell due
    assert record.closed_at == [4 * ITEM_EVERY]
    assert cancelling() == 0
    swallowed = sys.version_info < (3, 12)
    assert warnings_of(caplog) == ([WENT_ON.format(limit="deadline")] if swallowed else [])
    assert record.yielded == ([0, 1, 2, 3] if swallowed else [0, 1, 2])


@ASYNCIO
async def test_asyncio_timeout_around_the_same_source_is_lost_on_python_3_11() -> None:
    """The contrast: an ``asyncio.timeout`` around the same loop, in one task, with the same
    limit. On 3.11 its cancellation is dropped by ``wait_for``: the loop runs to the end of the
    source and no ``TimeoutError`` is raised (the timeout fires but never lands). On 3.12 and
    later it ends after three items."""
    record = Record()
    items: list[int] = []
    timed_out = False
    scope = asyncio.timeout(JUST_AFTER_AN_ITEM)
    try:
        async with scope:
            async for item in per_item_wait_for(record):
                items.append(item)
    except TimeoutError:
        timed_out = True
    assert scope.expired()  # it fired in both cases
    assert cancelling() == 0
    if sys.version_info < (3, 12):
        assert (timed_out, items) == (False, list(range(10)))
    else:
        assert (timed_out, items) == (True, [0, 1, 2])


# (2) A source that hangs while closing -----------------------------------------------------


@pytest.mark.parametrize("close_with", ["aclose", "async-close"])
async def test_a_close_that_hangs_forever_after_a_timeout(
    caplog: pytest.LogCaptureFixture, close_with: str
) -> None:
    """The source's ``aclose()`` (or async ``close()``) never returns: the timeout surfaces
    exactly ``close_timeout`` after the deadline, with the overrun chained as its cause and
    logged once; the close was attempted once."""
    start = now()
    source = Closable([1, STALL], close_with=close_with, close_delay=STALL)
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(source, 5, close_timeout=1.5))
    assert now() - start == 6.5
    assert [t - start for t in source.closes] == [5]
    assert isinstance(info.value.__cause__, TimeoutError)
    assert "close_timeout=1.5" in str(info.value.__cause__)
    assert len(warnings_of(caplog)) == 1
    assert "took longer than close_timeout=1.5 s" in warnings_of(caplog)[0]


async def test_a_close_that_hangs_forever_on_a_normal_end(caplog: pytest.LogCaptureFixture) -> None:
    """The source ends normally but its ``aclose()`` hangs: the consumer gets the close's
    ``TimeoutError`` (not ``StreamTimeoutError``) ``close_timeout`` after the end, all
    items delivered first, and the overrun is logged."""
    start = now()
    source = Closable([1, 1], close_delay=STALL)
    items: list[int] = []
    with pytest.raises(TimeoutError) as info:
        async for item in with_deadline(source, 50, close_timeout=3):
            items.append(item)
    assert items == [0, 1]
    assert type(info.value) is TimeoutError
    assert now() - start == 5
    assert len(warnings_of(caplog)) == 1


async def test_a_finally_that_hangs_forever_on_aclose(caplog: pytest.LogCaptureFixture) -> None:
    """The consumer stops early and calls ``aclose()``; the source's ``finally`` awaits
    forever: ``aclose()`` returns control after ``close_timeout`` raising ``TimeoutError``,
    the overrun is logged, and the stream is closed for good."""
    start = now()
    record = Record()

    async def hanging() -> AsyncGenerator[int, None]:
        try:
            yield 0
            yield 1
        finally:
            record.closed_at.append(now())
            await anyio.sleep_forever()

    stream = with_deadline(hanging(), 50, close_timeout=2)
    assert await anext(stream) == 0
    with pytest.raises(TimeoutError, match="close_timeout=2"):
        await stream.aclose()
    assert now() - start == 2
    assert [t - start for t in record.closed_at] == [0]
    assert len(warnings_of(caplog)) == 1
    await stream.aclose()  # closed once: nothing more happens
    assert now() - start == 2


@ASYNCIO
async def test_a_pull_after_a_failed_aclose_ends() -> None:
    """After ``aclose()`` raised a close overrun, the stream is finished: a later pull raises
    ``StopAsyncIteration``, not ``RuntimeError("already running")`` (which would tell the
    user, wrongly, that another task is pulling; semantic 10)."""

    async def hanging() -> AsyncGenerator[int, None]:
        try:
            yield 0
        finally:
            await anyio.sleep_forever()

    stream = with_deadline(hanging(), 50, close_timeout=2)
    assert await anext(stream) == 0
    with pytest.raises(TimeoutError):
        await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_a_finally_that_hangs_forever_in_the_cut_pull(caplog: pytest.LogCaptureFixture) -> None:
    """The stalled pull is cut and the source's ``finally`` then awaits forever, inside the
    pull. asyncio: the watchdog cancels that wait after ``close_timeout`` and logs it, so the
    timeout surfaces at deadline + close_timeout. trio: the scope is still cancelled, so the
    ``finally``'s wait ends at once and the timeout surfaces at the deadline."""
    start = now()
    record = Record()

    async def hanging() -> AsyncGenerator[int, None]:
        try:
            yield 0
            await anyio.sleep_forever()
        finally:
            try:
                await anyio.sleep_forever()
            finally:
                record.closed_at.append(now())

    with pytest.raises(StreamTimeoutError):
        await collect(with_deadline(hanging(), 5, close_timeout=2))
    expected = 7 if backend() == "asyncio" else 5
    assert now() - start == expected
    assert [t - start for t in record.closed_at] == [expected]
    assert len(warnings_of(caplog)) == (1 if backend() == "asyncio" else 0)


# (3) A source whose close raises -----------------------------------------------------------


@pytest.mark.parametrize("close_with", ["aclose", "async-close", "sync-close"])
async def test_a_close_that_raises_after_a_timeout(caplog: pytest.LogCaptureFixture, close_with: str) -> None:
    """The source's close raises: the consumer still gets the timeout at the deadline, with
    the close error as its ``__cause__``; the failure is logged with its traceback."""
    start = now()
    source = Closable([1, STALL], close_with=close_with, close_error=OSError("socket gone"))
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(source, 5))
    assert now() - start == 5
    assert isinstance(info.value.__cause__, OSError)
    assert len(source.closes) == 1
    (message,) = warnings_of(caplog)
    assert message == "closing the source Closable failed"
    assert any(r.exc_info is not None for r in caplog.records if r.levelno == logging.WARNING)


async def test_a_finally_that_raises_on_aclose(caplog: pytest.LogCaptureFixture) -> None:
    """An async generator whose ``finally`` raises when the consumer closes it early: the
    error reaches the ``aclose()`` caller (never swallowed) and is logged; the stream is then
    closed for good."""

    async def failing() -> AsyncGenerator[int, None]:
        try:
            yield 0
            yield 1
        finally:
            raise OSError("cleanup failed")

    stream = with_deadline(failing(), 50)
    assert await anext(stream) == 0
    with pytest.raises(OSError, match="cleanup failed"):
        await stream.aclose()
    assert warnings_of(caplog) == ["closing the source async_generator failed"]
    await stream.aclose()
    assert len(warnings_of(caplog)) == 1


async def test_a_close_that_raises_a_cancellation_like_error() -> None:
    """A close that raises a ``BaseException`` that is not an ``Exception`` is not caught and
    logged as a close failure: it propagates to the consumer as itself."""

    class Fatal(BaseException):
        pass

    source = Closable([1], close_error=Fatal())
    with pytest.raises(Fatal):
        await collect(with_deadline(source, 5))
    assert len(source.closes) == 1


# (4) A source that blocks the event loop -----------------------------------------------------


async def test_a_source_that_blocks_the_loop_then_awaits() -> None:
    """The source blocks the loop synchronously for 10 s (the clock jumps as a blocking call
    would make it) in the middle of a pull, then awaits: the watchdog could not run while the
    loop was blocked, but the timeout surfaces as soon as the source gives control back, at
    11 s, reporting the deadline of 5 s and the true elapsed time."""
    start = now()
    record = Record()

    async def blocker() -> AsyncGenerator[int, None]:
        try:
            await anyio.sleep(1)
            jump(10)  # e.g. a synchronous DNS lookup or a CPU-bound parse
            await anyio.sleep(1)
            yield 0
        finally:
            record.closed_at.append(now())

    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(blocker(), 5))
    assert now() - start == 11
    assert (info.value.limit, info.value.timeout, info.value.elapsed, info.value.items) == (
        "deadline",
        5,
        11,
        0,
    )
    assert [t - start for t in record.closed_at] == [11]


async def test_a_source_that_blocks_the_loop_then_yields() -> None:
    """The source blocks the loop past the deadline and then yields an item without awaiting:
    the item it produced is delivered (no checkpoint came between), and the very next pull
    raises the timeout without pulling, at the same instant (check first, semantic 3)."""
    start = now()
    record = Record()

    async def blocker() -> AsyncGenerator[int, None]:
        try:
            await anyio.sleep(1)
            jump(10)
            yield 0
            record.pulls += 1
            yield 1
        finally:
            record.closed_at.append(now())

    items: list[int] = []
    with pytest.raises(StreamTimeoutError) as info:
        async for item in with_deadline(blocker(), 5):
            items.append(item)
    assert items == [0]
    assert record.pulls == 0
    assert now() - start == 11
    assert (info.value.elapsed, info.value.items) == (11, 1)
    assert [t - start for t in record.closed_at] == [11]


async def test_a_real_blocking_call_in_the_source() -> None:
    """A real ``time.sleep`` of 20 ms inside a pull (the one real sleep of this suite): with
    a zero idle limit after it, the stream still times out, at the source's next await."""
    import time  # noqa: PLC0415

    async def blocker() -> AsyncGenerator[int, None]:
        yield 0
        time.sleep(0.02)  # noqa: ASYNC251 (the real blocking call is the point)
        await anyio.sleep(1)
        yield 1

    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(blocker(), None, idle=0.5))
    assert info.value.limit == "idle"


# (5) A source that raises its own TimeoutError ----------------------------------------------


async def test_a_source_that_raises_its_own_timeout_error(caplog: pytest.LogCaptureFixture) -> None:
    """An httpx-style read timeout raised by the source reaches the consumer as itself: the
    very same object, a plain ``TimeoutError``, not a ``StreamTimeoutError``; the source is
    closed once and nothing is logged as a warning."""
    start = now()
    own = TimeoutError("read timed out")
    record = Record()

    async def reader() -> AsyncGenerator[int, None]:
        try:
            yield 0
            await anyio.sleep(2)
            raise own
        finally:
            record.closed_at.append(now())

    items: list[int] = []
    with pytest.raises(TimeoutError) as info:
        async for item in with_deadline(reader(), 5, idle=3):
            items.append(item)
    assert info.value is own
    assert not isinstance(info.value, StreamTimeoutError)
    assert items == [0]
    assert now() - start == 2
    assert [t - start for t in record.closed_at] == [2]
    assert warnings_of(caplog) == []


async def test_a_source_whose_own_timeout_expires_with_ours() -> None:
    """The source wraps its read in its own ``fail_after(5)`` and our deadline is 5 s too:
    both expire at the same instant. The consumer sees exactly one timeout at 5 s, and on
    asyncio no cancellation is left pending on its task."""
    start = now()

    async def reader() -> AsyncGenerator[int, None]:
        with anyio.fail_after(5):
            await anyio.sleep_forever()
        yield 0

    with pytest.raises(TimeoutError):
        await collect(with_deadline(reader(), 5))
    assert now() - start == 5
    assert cancelling() == 0
    await anyio.sleep(1)
    assert now() - start == 6


# (6) Sources without aclose() ------------------------------------------------------------


@pytest.mark.parametrize("close_with", ["none", "async-close", "sync-close", "aclose"])
@pytest.mark.parametrize("ending", ["timeout", "end", "aclose"])
async def test_sources_with_every_kind_of_close(
    caplog: pytest.LogCaptureFixture, close_with: str, ending: str
) -> None:
    """A class-based source with no close at all, an async ``close()`` (openai ``AsyncStream``),
    a sync ``close()`` or ``aclose()``: each works, is closed exactly once (when it can be) at
    the right time, however the stream ends, and nothing is logged as a warning."""
    start = now()
    source = Closable([1, 1, 1] if ending != "timeout" else [1, STALL], close_with=close_with)
    stream = with_deadline(source, 5)
    if ending == "timeout":
        with pytest.raises(StreamTimeoutError):
            await collect(stream)
        expected = [5]
    elif ending == "end":
        assert await collect(stream) == [0, 1, 2]
        expected = [3]
    else:
        assert await anext(stream) == 0
        await stream.aclose()
        expected = [1]
    await stream.aclose()
    assert [t - start for t in source.closes] == ([] if close_with == "none" else expected)
    assert warnings_of(caplog) == []


async def test_a_source_whose_close_attribute_is_not_a_method() -> None:
    """An iterator whose ``close`` is a plain value rather than a method cannot be closed;
    trying fails loudly (a ``TypeError`` chained to the timeout), never silently."""

    class Odd(Closable):
        close = None  # e.g. a dataclass field named "close"

    source = Odd([1, STALL], close_with="none")
    with pytest.raises(StreamTimeoutError):
        await collect(with_deadline(source, 5))


# (7) Nested wrappers ---------------------------------------------------------------------


@pytest.mark.parametrize(("inner", "outer"), [(5, 2), (2, 5)])
async def test_nested_wrappers_the_nearer_limit_fires(inner: float, outer: float) -> None:
    """``with_deadline(with_deadline(src, inner), outer)``: the nearer limit fires at its
    time, the error names it (limit and timeout), the source is closed exactly once, no
    warning is logged and no cancellation stays pending."""
    start = now()
    source = Closable([1, STALL])
    stream = with_deadline(with_deadline(source, inner), outer)
    with pytest.raises(StreamTimeoutError) as info:
        await collect(stream)
    nearer = min(inner, outer)
    assert now() - start == nearer
    assert (info.value.limit, info.value.timeout, info.value.elapsed, info.value.items) == (
        "deadline",
        nearer,
        nearer,
        1,
    )
    await stream.aclose()
    assert [t - start for t in source.closes] == [nearer]
    assert cancelling() == 0


@pytest.mark.parametrize(
    ("inner", "outer", "limit", "at"),
    [
        ({"seconds": 10, "idle": 2}, {"seconds": 6}, "idle", 3),
        ({"seconds": 6}, {"seconds": 10, "idle": 2}, "idle", 3),
        ({"seconds": None, "first_item": 4}, {"seconds": 3}, "deadline", 3),
        ({"seconds": 3}, {"seconds": None, "first_item": 4}, "deadline", 3),
    ],
)
async def test_nested_wrappers_with_mixed_limits(
    inner: dict[str, Any], outer: dict[str, Any], limit: str, at: float
) -> None:
    """Nested wrappers with different kinds of limit, pulled from a new task per item: the
    limit that passes first is the one reported, at its time."""
    start = now()
    source = Closable([1, STALL] if limit == "idle" else [STALL])
    inner, outer = dict(inner), dict(outer)
    seconds_in = inner.pop("seconds")
    seconds_out = outer.pop("seconds")
    it = aiter(with_deadline(with_deadline(source, seconds_in, **inner), seconds_out, **outer))
    with pytest.raises(StreamTimeoutError) as info:
        while True:
            await pull_in_new_task(it)
    assert (info.value.limit, now() - start) == (limit, at)
    assert len(source.closes) == 1


async def test_nested_wrappers_expiring_together() -> None:
    """Inner and outer deadlines of 5 s pass at the same instant: exactly one timeout
    reaches the consumer at 5 s, the source is closed once, and no cancellation is left."""
    start = now()
    source = Closable([STALL])
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(with_deadline(source, 5), 5))
    assert (now() - start, info.value.timeout) == (5, 5)
    assert len(source.closes) == 1
    assert cancelling() == 0


# (8) An ending at the very tick of the deadline ------------------------------------------------


class EndsAt:
    """A source whose ``__anext__`` waits ``at`` seconds and then ends or raises."""

    def __init__(self, at: float, error: BaseException | None) -> None:
        self.at = at
        self.error = error
        self.woke: list[float] = []
        self.closes = 0

    def __aiter__(self) -> EndsAt:
        return self

    async def __anext__(self) -> int:
        await anyio.sleep(self.at)
        self.woke.append(now())
        raise StopAsyncIteration if self.error is None else self.error

    async def aclose(self) -> None:
        """Count the close."""
        self.closes += 1


@pytest.mark.parametrize("error", [None, ValueError("boom")], ids=["StopAsyncIteration", "ValueError"])
async def test_an_ending_at_the_very_tick_of_the_deadline(error: BaseException | None) -> None:
    """The source's wait ends at exactly the deadline's loop time, and it would then end or
    raise. Both backends resolve the tie the same way: the deadline wins (the cancellation
    lands on the wait that is due at the same instant), the consumer gets the timeout at 5 s,
    the source is closed once, and nothing is left pending."""
    start = now()
    source = EndsAt(5, error)
    with pytest.raises(StreamTimeoutError):
        await collect(with_deadline(source, 5))
    assert now() - start == 5
    assert source.woke == []
    assert source.closes == 1
    assert cancelling() == 0


@pytest.mark.parametrize("error", [None, ValueError("boom")], ids=["StopAsyncIteration", "ValueError"])
async def test_an_ending_just_before_the_deadline(error: BaseException | None) -> None:
    """One microsecond before the deadline the source's own ending wins: a normal end, or its
    error as itself."""
    start = now()
    source = EndsAt(4.999, error)
    if error is None:
        assert await collect(with_deadline(source, 5)) == []
    else:
        with pytest.raises(ValueError, match="boom"):
            await collect(with_deadline(source, 5))
    assert now() - start == pytest.approx(4.999)
    assert source.closes == 1


async def test_an_ending_after_the_limit_at_the_same_tick_in_a_new_task() -> None:
    """The tie again, with the pull in a new task and an idle limit instead of the deadline."""
    start = now()
    source = EndsAt(3, None)
    it = aiter(with_deadline(source, math.inf, idle=3, first_item=3))
    with pytest.raises(StreamTimeoutError) as info:
        await pull_in_new_task(it)
    assert (info.value.limit, now() - start) == ("first_item", 3)
    assert source.closes == 1


async def test_with_deadline_over_an_async_iterator_protocol_only() -> None:
    """A minimal object with only ``__aiter__``/``__anext__`` (no close, no asend/athrow):
    items flow, the timeout fires, and ``asend``/``athrow`` fail as documented."""

    class Minimal:
        def __init__(self) -> None:
            self.n = 0

        def __aiter__(self) -> AsyncIterator[int]:
            return self

        async def __anext__(self) -> int:
            self.n += 1
            if self.n > 2:
                await anyio.sleep_forever()
            return self.n

    stream = with_deadline(Minimal(), 5)
    assert await anext(stream) == 1
    with pytest.raises(KeyError):
        await stream.athrow(KeyError("k"))
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


# (9) A zero limit and a pull that needs no waiting -------------------------------------------


def test_a_zero_idle_limit_and_a_ready_item_agree_across_backends(caplog: pytest.LogCaptureFixture) -> None:
    """A source whose second item is ready at once (no await), under ``idle=0``: both
    backends must agree on the outcome, and no warning may claim that the source ignored a
    cancellation it never saw."""
    import trio.testing  # noqa: PLC0415

    async def ready() -> AsyncGenerator[int, None]:
        await anyio.sleep(10)
        yield 1
        yield 2

    async def main() -> object:
        try:
            return [i async for i in with_deadline(ready(), 100, idle=0)]
        except StreamTimeoutError as exc:
            return exc.limit

    on_asyncio = anyio.run(main, backend="asyncio", backend_options={"loop_factory": virtual_time_loop})
    on_trio = anyio.run(
        main, backend="trio", backend_options={"clock": trio.testing.MockClock(autojump_threshold=0)}
    )
    assert on_asyncio == on_trio
    assert warnings_of(caplog) == []
