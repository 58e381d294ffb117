"""The thirteen numbered semantics of ``with_deadline``, each proven on asyncio and trio.

Every test runs on virtual time (see ``conftest.py``), so times are asserted exactly. Test
names start with the number of the semantic they prove (``test_s4_...`` proves semantic 4).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import nullcontext
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio
import trio

from stream_deadline import Deadline, StreamTimeoutError, with_deadline
from support import STALL, Closable, Record, collect, keepalive_stall, pull_in_new_task, scripted

pytestmark = pytest.mark.anyio

now = anyio.current_time


def backend() -> str:
    return sniffio.current_async_library()


# 1. Clock ---------------------------------------------------------------------------------


async def test_s1_clock_is_the_event_loops_clock() -> None:
    """A 1000 s deadline fires at exactly +1000 s on the loop's clock, which here is virtual:
    the stream reads the running loop's clock, not the wall clock."""
    start = now()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(scripted([STALL], Record()), 1000))
    assert now() == start + 1000
    assert info.value.elapsed == 1000


async def test_s1_deadline_object_uses_the_loops_clock() -> None:
    """``Deadline.after`` reads the same clock: ``when`` is now + seconds, ``remaining()`` counts
    down in virtual time and never goes negative, ``expired`` turns true at the deadline."""
    start = now()
    budget = Deadline.after(10)
    assert budget.when == start + 10
    assert budget.remaining() == 10
    await anyio.sleep(4)
    assert budget.remaining() == 6
    assert not budget.expired
    await anyio.sleep(7)
    assert budget.remaining() == 0.0
    assert budget.expired


# 2. Start ---------------------------------------------------------------------------------


async def test_s2_deadline_starts_at_the_first_pull() -> None:
    """A stream created 5 s before its first pull still gets its full 10 s: the deadline starts
    at the first ``__anext__``, which is also when the generator's body starts."""
    start = now()
    record = Record()
    stream = with_deadline(scripted([STALL], record), 10)
    await anyio.sleep(5)
    with pytest.raises(StreamTimeoutError) as info:
        await collect(stream)
    assert record.started_at == start + 5
    assert now() == start + 15
    assert info.value.elapsed == 10


async def test_s2_a_deadline_object_fixes_the_end_in_advance() -> None:
    """With a shared ``Deadline`` the end is fixed when the budget is made: a stream first pulled
    5 s into a 10 s budget times out 5 s later, and reports the budget's 10 s as its timeout."""
    start = now()
    budget = Deadline.after(10)
    await anyio.sleep(5)
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(scripted([STALL], Record()), budget))
    assert now() == start + 10
    assert (info.value.limit, info.value.timeout, info.value.elapsed) == ("deadline", 10, 5)


# 3. Check first ---------------------------------------------------------------------------


async def test_s3_every_pull_checks_the_deadline_first() -> None:
    """A consumer that comes back after the deadline gets the timeout at once, without the
    source being pulled again, and the source is closed at that moment."""
    start = now()
    record = Record()
    it = aiter(with_deadline(scripted([1, 1, 1], record), 2.5))
    assert await anext(it) == 0
    await anyio.sleep(5)  # the deadline passes while nobody is pulling
    with pytest.raises(StreamTimeoutError) as info:
        await anext(it)
    assert now() == start + 6
    assert record.pulls == 1
    assert record.closed_at == [start + 6]
    assert (info.value.limit, info.value.elapsed, info.value.items) == ("deadline", 6, 1)


async def test_s3_a_zero_deadline_never_pulls() -> None:
    """``seconds=0`` has passed at the first pull: the source's body never runs."""
    record = Record()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(scripted([1], record), 0))
    assert record.started_at is None
    assert (info.value.elapsed, info.value.items) == (0, 0)


async def test_s3_a_source_that_never_blocks_is_still_cut() -> None:
    """A source that never suspends never lets a timer run; the check on every pull cuts it
    anyway, on the first pull after the deadline."""

    async def busy() -> AsyncGenerator[int, None]:
        i = 0
        while True:
            yield i
            i += 1

    start = now()
    delivered = 0
    with pytest.raises(StreamTimeoutError):
        async for _ in with_deadline(busy(), 1):
            delivered += 1
            await anyio.sleep(0.25)  # the consumer's work moves the clock, not the source
    assert delivered == 4
    assert now() == start + 1


# 4. Watchdog ------------------------------------------------------------------------------


async def test_s4_a_stalled_pull_is_cut_at_the_deadline() -> None:
    """Two items, then a stall: the waiting pull is cancelled at exactly the deadline, the
    source sees the cancellation and is closed at that same instant."""
    start = now()
    record = Record()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(scripted([1, 1, STALL], record), 10))
    assert now() == start + 10
    assert record.cancelled_at == [start + 10]
    assert record.closed_at == [start + 10]
    assert (info.value.limit, info.value.timeout, info.value.elapsed, info.value.items) == (
        "deadline",
        10,
        10,
        2,
    )


async def test_s4_first_item_bounds_the_first_pull() -> None:
    """No first item within ``first_item``: cut at exactly that time, named ``first_item``."""
    start = now()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(scripted([STALL], Record()), 60, first_item=3))
    assert now() == start + 3
    assert (info.value.limit, info.value.timeout, info.value.items) == ("first_item", 3, 0)


async def test_s4_idle_bounds_every_later_pull() -> None:
    """Items at 1 s and 2 s, the third due 7 s later: ``idle=5`` cuts the third pull at 7 s."""
    start = now()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(scripted([1, 1, 7], Record()), None, idle=5))
    assert now() == start + 7
    assert (info.value.limit, info.value.timeout, info.value.elapsed, info.value.items) == ("idle", 5, 7, 2)


async def test_s4_the_nearest_bound_wins() -> None:
    """With ``idle=5`` and a 10 s deadline, a pull started at 8 s is cut by the deadline at
    10 s, not by idle at 13 s; a pull started at 2 s is cut by idle at 7 s."""
    start = now()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(scripted([1] * 8 + [STALL], Record()), 10, idle=5))
    assert (now() - start, info.value.limit) == (10, "deadline")
    start = now()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(scripted([1, 1, STALL], Record()), 10, idle=5))
    assert (now() - start, info.value.limit) == (7, "idle")


async def test_s4_deadline_is_reported_when_two_limits_pass_together() -> None:
    """When the idle bound and the deadline fall on the same instant, the deadline is named."""
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(scripted([1, STALL], Record()), 6, idle=5))
    assert (info.value.limit, info.value.elapsed) == ("deadline", 6)


@pytest.mark.parametrize("idle", [0, 0.0005, 0.002])
@pytest.mark.parametrize("deadline", [None, 100])
async def test_s4_a_tiny_idle_limit_cuts_every_later_pull_that_waits(
    idle: float, deadline: float | None
) -> None:
    """The first item at 1 s, the second one 10 s later, the consumer busy for 1 s in between:
    ``idle=0`` (or half a millisecond, or two) cuts the second pull at exactly 2 s plus
    ``idle``, whether or not a total deadline is set. On asyncio such limits are armed by
    each pull: a watchdog looking ahead for them would wake on every turn of the loop."""
    start = now()
    record = Record()
    got: list[int] = []
    with pytest.raises(StreamTimeoutError) as info:
        async for item in with_deadline(scripted([1, 10], record), deadline, idle=idle):
            got.append(item)
            await anyio.sleep(1)  # consumer time: not a pull
    assert (info.value.limit, info.value.items, got) == ("idle", 1, [0])
    assert now() - start == pytest.approx(2 + idle, abs=1e-9)
    assert record.cancelled_at == [pytest.approx(start + 2 + idle, abs=1e-9)]


async def test_s4_a_keepalive_stall_is_a_stall() -> None:
    """A source that keeps waking up (keep-alive comments) but yields no item is cut by
    ``idle`` like any stall, and closed at that instant."""
    start = now()
    record = Record()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(keepalive_stall(3, record), None, idle=2))
    assert now() == start + 5
    assert record.closed_at == [start + 5]
    assert (info.value.limit, info.value.items) == ("idle", 3)


async def test_s4_first_item_does_not_bound_later_pulls_and_idle_not_the_first() -> None:
    """``first_item`` bounds only the first pull and ``idle`` only the later ones: a slow
    second item passes ``first_item=2``, a slow first item passes ``idle=2``."""
    assert await collect(with_deadline(scripted([1, 5], Record()), None, first_item=2)) == [0, 1]
    assert await collect(with_deadline(scripted([5, 1], Record()), None, idle=2)) == [0, 1]


async def test_s4_many_streams_are_each_cut_at_their_own_time() -> None:
    """Forty concurrent streams, stream ``i`` with one item and then a stall, under a deadline
    of ``2 + i/8`` s or (odd ``i``) an idle limit of ``1 + i/8`` s: each is cut at exactly its
    own bound, by the limit it names. On trio one watchdog task serves them all, and it is
    gone once they have ended."""
    base = live_tasks()
    cut: dict[int, tuple[str, float]] = {}
    peak = 0

    async def consume(i: int) -> None:
        nonlocal peak
        start = now()
        stream = with_deadline(scripted([0, STALL], Record()), 2 + i / 8, idle=1 + i / 8 if i % 2 else None)
        with pytest.raises(StreamTimeoutError) as info:
            async for _ in stream:
                peak = max(peak, live_tasks())
        cut[i] = (info.value.limit, now() - start)

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(consume, i)
    assert cut == {i: ("idle", 1 + i / 8) if i % 2 else ("deadline", 2 + i / 8) for i in range(40)}
    assert peak == base + 40
    await anyio.wait_all_tasks_blocked()  # a helper task that is done has exited by then
    assert live_tasks() == base


async def test_s4_limits_apply_to_pulls_in_new_tasks() -> None:
    """Each pull in a new task: the watchdog cancels whichever task waits in the pull."""
    start = now()
    it = aiter(with_deadline(scripted([1, 1, STALL], Record()), None, idle=3))
    assert [await pull_in_new_task(it), await pull_in_new_task(it)] == [0, 1]
    with pytest.raises(StreamTimeoutError) as info:
        await pull_in_new_task(it)
    assert now() == start + 5
    assert info.value.limit == "idle"


# 5. Consumer time -------------------------------------------------------------------------


async def test_s5_consumer_time_does_not_count_toward_idle() -> None:
    """The consumer spends 10 s on each item; items come 1 s after each pull; ``idle=1.5``
    never fires, because idle bounds the pull, not the consumer."""
    assert await collect(with_deadline(scripted([1, 1, 1], Record()), None, idle=1.5), pause=10) == [0, 1, 2]


async def test_s5_consumer_time_counts_toward_the_deadline() -> None:
    """The consumer's 3 s per item counts toward the 4.5 s deadline: the second pull starts at
    4 s and is cut at 4.5 s."""
    start = now()
    with pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(scripted([1, 1, 1], Record()), 4.5), pause=3)
    assert now() == start + 4.5
    assert info.value.items == 1


# 6. No loss -------------------------------------------------------------------------------


async def test_s6_every_item_before_the_limit_is_delivered_in_order() -> None:
    """Forty items a quarter second apart, then a stall, under a 15 s deadline: all forty are
    delivered once each and in order, and the error counts them."""
    delivered: list[int] = []
    with pytest.raises(StreamTimeoutError) as info:
        async for item in with_deadline(scripted([0.25] * 40 + [STALL], Record()), 15):
            delivered.append(item)
    assert delivered == list(range(40))
    assert info.value.items == 40


# 7. Outside cancellation ------------------------------------------------------------------


async def test_s7_outside_cancel_in_the_same_tick_is_not_a_timeout() -> None:
    """An enclosing cancel scope whose deadline is the stream's own deadline: the scope gets
    its cancellation; the consumer never sees a timeout; the source is closed once."""
    start = now()
    record = Record()
    with anyio.move_on_after(10) as scope:
        await collect(with_deadline(scripted([1, STALL], record), 10))
    assert scope.cancelled_caught
    assert now() == start + 10
    assert record.closes == 1


async def test_s7_an_earlier_enclosing_timeout_is_not_reported_as_ours() -> None:
    """``anyio.fail_after(5)`` around a 10 s stream raises its own ``TimeoutError`` at 5 s."""
    with pytest.raises(TimeoutError) as info:
        with anyio.fail_after(5):
            await collect(with_deadline(scripted([STALL], Record()), 10))
    assert type(info.value) is TimeoutError


async def test_s7_an_enclosing_timeout_expiring_with_ours_wins() -> None:
    """The native enclosing timeout (``asyncio.timeout`` / ``trio.fail_after``) expiring at the
    same instant as the stream's deadline surfaces as itself, not as ``StreamTimeoutError``."""
    if backend() == "asyncio":
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(10):
                await collect(with_deadline(scripted([STALL], Record()), 10))
        assert type(info.value) is TimeoutError
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0
    else:
        with pytest.raises(trio.TooSlowError):
            with trio.fail_after(10):
                await collect(with_deadline(scripted([STALL], Record()), 10))


async def test_s7_a_later_enclosing_timeout_does_not_fire() -> None:
    """Our 5 s deadline inside ``fail_after(20)``: ours fires, theirs does not, and afterwards
    the enclosing scope still works (on asyncio the task has no cancellation left pending)."""
    with anyio.fail_after(20) as scope:
        with pytest.raises(StreamTimeoutError):
            await collect(with_deadline(scripted([STALL], Record()), 5))
        if backend() == "asyncio":
            task = asyncio.current_task()
            assert task is not None
            assert task.cancelling() == 0
        await anyio.sleep(1)
    assert not scope.cancelled_caught


async def test_s7_outside_cancel_of_a_task_hopping_consumer() -> None:
    """The consumer pulls each item in a new task; a sibling cancels the consumer's scope at
    the very instant of the deadline: the cancellation wins and nothing leaks out."""
    record = Record()
    it = aiter(with_deadline(scripted([1, STALL], record), 10))
    async with anyio.create_task_group() as tg:

        async def canceller() -> None:
            await anyio.sleep(10)
            tg.cancel_scope.cancel()

        tg.start_soon(canceller)
        while True:
            await pull_in_new_task(it)
    assert tg.cancel_scope.cancelled_caught
    await aclose_quietly(it)
    assert record.closes == 1


async def aclose_quietly(it: Any) -> None:
    await it.aclose()


# 8. Closed once ---------------------------------------------------------------------------


async def test_s8_the_source_is_closed_before_the_timeout_reaches_the_consumer() -> None:
    """At the moment the consumer catches the timeout, the source's ``finally`` has already run."""
    record = Record()
    try:
        await collect(with_deadline(scripted([1, STALL], record), 3))
    except StreamTimeoutError:
        assert record.closes == 1
    else:  # pragma: no cover
        pytest.fail("no timeout")


@pytest.mark.parametrize(
    "ending", ["timeout", "end", "error", "aclose", "async-with", "break-aclose", "stop"]
)
async def test_s8_a_class_based_source_is_closed_exactly_once(ending: str) -> None:
    """A source that is not a generator (so nothing closes it but the stream) gets exactly one
    ``aclose()`` however the stream ends, even when the stream is closed again afterwards."""
    source = Closable([1, 1, 1] if ending != "timeout" else [1, STALL])
    stream = with_deadline(
        source, 100 if ending != "timeout" else 5, on_timeout="stop" if ending == "stop" else "raise"
    )
    if ending in ("timeout", "end", "stop"):
        with pytest.raises(StreamTimeoutError) if ending == "timeout" else nullcontext():
            await collect(stream)
    elif ending == "error":

        async def bad() -> AsyncGenerator[int, None]:
            yield 1
            raise ValueError("source failed")

        failing = Closable([1])
        stream = with_deadline(Chain(failing, bad()), 100)
        with pytest.raises(ValueError, match="source failed"):
            await collect(stream)
        source = failing
    elif ending == "aclose":
        await anext(stream)
        await stream.aclose()
    elif ending == "async-with":
        async with stream:
            await anext(stream)
    else:
        async for _ in stream:
            break
        await stream.aclose()
    await stream.aclose()
    assert len(source.closes) == 1


class Chain:
    """An async iterable whose iterator is another object: the stream closes both."""

    def __init__(self, outer: Closable, inner: AsyncGenerator[int, None]) -> None:
        self.outer = outer
        self.inner = inner

    def __aiter__(self) -> AsyncIterator[int]:
        return self.inner

    async def aclose(self) -> None:
        """Close the outer object (the stream must call this too)."""
        await self.outer.aclose()


async def test_s8_closing_a_stream_that_never_started_closes_the_source() -> None:
    """``aclose()`` before the first pull still closes the source (an HTTP response, say),
    and the closed stream then ends at once."""
    source = Closable([1])
    stream = with_deadline(source, 10)
    await stream.aclose()
    assert len(source.closes) == 1
    assert await collect(stream) == []
    assert len(source.closes) == 1


async def test_s8_a_hanging_close_does_not_hide_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """The source's ``aclose()`` hangs: the timeout still surfaces, ``close_timeout`` (2 s) after
    the deadline; the overrun is logged as a warning and chained as the cause."""
    start = now()
    source = Closable([1, STALL], close_delay=STALL)
    with caplog.at_level(logging.INFO, logger="stream_deadline"), pytest.raises(StreamTimeoutError) as info:
        await collect(with_deadline(source, 5, close_timeout=2))
    assert now() == start + 7
    assert isinstance(info.value.__cause__, TimeoutError)
    assert "close_timeout=2" in str(info.value.__cause__)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "took longer than close_timeout=2 s" in warnings[0].getMessage()


async def test_s8_a_failing_close_does_not_hide_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """The source's ``aclose()`` raises: the consumer still gets the timeout, with the close
    error as its cause, and the failure is logged with its traceback."""
    source = Closable([1, STALL], close_error=RuntimeError("close failed"))
    with (
        caplog.at_level(logging.WARNING, logger="stream_deadline"),
        pytest.raises(StreamTimeoutError) as info,
    ):
        await collect(with_deadline(source, 5))
    assert isinstance(info.value.__cause__, RuntimeError)
    (record,) = caplog.records
    assert record.exc_info is not None
    assert "closing the source Closable failed" in record.getMessage()


async def test_s8_a_source_that_hangs_in_finally_during_the_cut_pull(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The source's ``finally`` awaits a long time after its pull is cancelled: the timeout
    still reaches the consumer ``close_timeout`` after the deadline at the latest. On asyncio,
    where a cancellation is delivered once, the watchdog cancels again after ``close_timeout``
    and logs it; on trio the cancelled scope also cancels the ``finally``'s wait at once."""
    start = now()
    record = Record()

    async def stubborn() -> AsyncGenerator[int, None]:
        try:
            yield 0
            await anyio.sleep_forever()
        finally:
            try:
                await anyio.sleep(1000)
            finally:
                record.closed_at.append(now())

    with caplog.at_level(logging.WARNING, logger="stream_deadline"), pytest.raises(StreamTimeoutError):
        await collect(with_deadline(stubborn(), 5, close_timeout=2))
    expected = 7 if backend() == "asyncio" else 5
    assert now() == start + expected
    assert record.closed_at == [start + expected]
    assert len(caplog.records) == (1 if backend() == "asyncio" else 0)


async def test_s8_a_close_error_surfaces_on_normal_end() -> None:
    """When the source ends normally but its ``aclose()`` raises, the error reaches the
    consumer: close problems are never swallowed."""
    source = Closable([1], close_error=RuntimeError("close failed"))
    with pytest.raises(RuntimeError, match="close failed"):
        await collect(with_deadline(source, 5))


# 9. Finished after a timeout --------------------------------------------------------------


async def test_s9_after_a_timeout_later_pulls_end() -> None:
    """Once timed out, the stream is finished: the next pull raises ``StopAsyncIteration``
    and the source is not touched again."""
    record = Record()
    it = aiter(with_deadline(scripted([1, STALL, 1], record), 3))
    assert await anext(it) == 0
    with pytest.raises(StreamTimeoutError):
        await anext(it)
    with pytest.raises(StopAsyncIteration):
        await anext(it)
    assert record.pulls == 2
    assert record.closes == 1


async def test_the_error_reports_the_items_delivered_as_an_int() -> None:
    """``StreamTimeoutError.items`` is the exact count of items delivered, an ``int`` (the
    asyncio backend counts in a float internally), and the message names it in words."""
    it = aiter(with_deadline(scripted([0] * 300 + [STALL], Record()), 3))
    for _ in range(300):
        await anext(it)
    with pytest.raises(StreamTimeoutError) as info:
        await anext(it)
    assert (type(info.value.items), info.value.items) == (int, 300)
    assert "with 300 items delivered" in str(info.value)


async def test_s9_on_timeout_stop_ends_quietly_after_closing(caplog: pytest.LogCaptureFixture) -> None:
    """``on_timeout="stop"``: the iteration just ends with the items so far, the source is
    closed at the deadline, and the timeout is logged at INFO."""
    start = now()
    record = Record()
    with caplog.at_level(logging.INFO, logger="stream_deadline"):
        items = await collect(with_deadline(scripted([1, 1, STALL], record), 4, on_timeout="stop"))
    assert items == [0, 1]
    assert record.closed_at == [start + 4]
    assert any("on_timeout='stop'" in r.getMessage() for r in caplog.records)


# 10. One puller at a time -----------------------------------------------------------------


async def test_s10_a_second_concurrent_pull_is_refused() -> None:
    """While one task waits in a pull, a second pull raises ``RuntimeError`` (as an async
    generator does) and the first pull still gets its item; the stream goes on normally."""
    it = aiter(with_deadline(scripted([2, 1], Record()), 100, idle=10))
    results: list[int] = []
    async with anyio.create_task_group() as tg:

        async def first() -> None:
            results.append(await anext(it))

        tg.start_soon(first)
        await anyio.sleep(1)
        with pytest.raises(RuntimeError, match="already running"):
            await anext(it)
    assert results == [0]
    assert await collect(it) == [1]


# 11. Nothing left behind ------------------------------------------------------------------


def live_timers() -> int:
    """Timer handles still pending on the asyncio loop (0 on trio, where none exist)."""
    if backend() != "asyncio":
        return 0
    loop = asyncio.get_running_loop()
    return sum(not h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]


@pytest.mark.parametrize("ending", ["timeout", "end", "aclose", "garbage"])
async def test_s11_nothing_outlives_the_stream(ending: str) -> None:
    """After a stream ends (timeout, normal end, ``aclose``, or dropped and collected), no timer
    handle is pending, no task is left (on trio, the watchdog task exits once no stream needs
    it), and no cancel scope constrains the consumer."""
    tasks_before = live_tasks()
    stream = with_deadline(
        scripted([1, 1] if ending == "end" else [1, STALL], Record()), 50, first_item=5, idle=5
    )
    if ending == "timeout":
        with pytest.raises(StreamTimeoutError):
            await collect(stream)
    elif ending == "end":
        await collect(stream)
    else:
        it = aiter(stream)
        await anext(it)
        if ending == "aclose":
            await it.aclose()
        else:
            if backend() == "trio":
                # Trio itself warns (ResourceWarning) about any async generator dropped before it
                # is exhausted and asks for `async with aclosing(...)`: there, close the stream.
                await it.aclose()
                return
            del it, stream
            gc.collect()
            await anyio.lowlevel.checkpoint()  # let the loop's async-generator finalizer run
            await anyio.lowlevel.checkpoint()
    assert live_timers() == 0
    assert anyio.current_effective_deadline() == math.inf
    await anyio.wait_all_tasks_blocked()  # a helper task that is done has exited by then
    assert live_tasks() == tasks_before


def live_tasks() -> int:
    """Tasks alive in the run (trio's count includes its system tasks)."""
    if backend() == "asyncio":
        return len(asyncio.all_tasks())
    return trio.lowlevel.current_statistics().tasks_living


# 13. No limit, no cost --------------------------------------------------------------------


async def test_s13_no_limit_passes_items_through_without_a_watchdog() -> None:
    """With no limit at all, no timer is armed and no scope is opened around the pull: the
    items simply pass through, and the source is still closed at the end."""
    seen: list[tuple[int, float]] = []

    async def source() -> AsyncGenerator[int, None]:
        for i in range(3):
            await anyio.sleep(1)
            seen.append((live_timers(), anyio.current_effective_deadline()))
            yield i

    assert await collect(with_deadline(source(), None)) == [0, 1, 2]
    assert seen == [(0, math.inf)] * 3
