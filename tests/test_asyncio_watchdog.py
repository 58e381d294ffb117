"""The asyncio backend's shared alarms and the stream's awaitables: cases an independent review
found (differential fuzzing against the previous backend). All on looptime's virtual clock."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from typing import Any, TypeVar

import looptime
import pytest

from stream_deadline import StreamTimeoutError, with_deadline
from support import Closable

T = TypeVar("T")


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new event loop with looptime's virtual clock."""
    loop = looptime.patch_event_loop(asyncio.new_event_loop())
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def counting(seen: list[str]) -> AsyncGenerator[int, None]:
    """0, 1, 2, ... 10 ms apart; notes what is thrown in at its ``yield``."""
    i = 0
    while True:
        try:
            yield i
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise
        i += 1
        await asyncio.sleep(0.01)


def test_a_pull_task_cancelled_before_it_starts_leaves_the_stream_alone() -> None:
    """``create_task(anext(stream))`` cancelled before its first step ends as cancelled
    without touching the stream: nothing is thrown into the source, and the next pull goes on
    (CPython 3.11 throws such a cancellation into an unstarted ``asend()`` at the generator's
    ``yield``, as if it were ``athrow()``: the stream's ``__anext__`` must not hand that out)."""
    seen: list[str] = []

    async def main() -> tuple[bool, int]:
        stream = with_deadline(counting(seen), 10)
        await anext(stream)
        task = asyncio.create_task(anext(stream))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = await anext(stream)
        await stream.aclose()
        return task.cancelled(), after

    assert run_virtual(main()) == (True, 1)
    assert seen == ["GeneratorExit"]  # from the aclose() only


def test_a_bound_a_hair_past_the_virtual_clocks_tick_is_still_reached() -> None:
    """On looptime the clock stands on ticks: a deadline of 0.1 + 0.2 s = 0.30000000000000004
    is due at the tick 0.3, even while the source keeps the loop busy (it never idles, so the
    clock never moves past the tick): the alarm's own time counts as reached."""

    async def busy() -> AsyncGenerator[int, None]:
        await asyncio.sleep(0.2)
        while True:  # noqa: ASYNC110 (a keep-alive that never yields an item)
            await asyncio.sleep(0)
        yield 0  # pragma: no cover

    async def main() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.1)
        with pytest.raises(StreamTimeoutError) as info:
            await anext(with_deadline(busy(), 0.2))
        return info.value.limit, loop.time()

    limit, at = run_virtual(asyncio.wait_for(main(), 5))
    assert (limit, at) == ("deadline", pytest.approx(0.3))


def test_a_loop_closed_with_a_stream_open_is_not_kept_alive() -> None:
    """A loop closed without ``shutdown_asyncgens()`` while a stream's alarm is armed is freed
    once nothing else holds it: the per-loop alarms do not keep their loop alive."""
    seen: list[str] = []
    refs = []
    for _ in range(3):
        loop = looptime.patch_event_loop(asyncio.new_event_loop())
        keep = []

        async def open_one(keep: list[object]) -> None:
            stream = with_deadline(counting(seen), 60, idle=5)
            await anext(stream)
            keep.append(stream)

        loop.run_until_complete(open_one(keep))
        loop.close()
        refs.append(weakref.ref(loop))
        del loop, keep
        gc.collect()
    assert [ref() for ref in refs] == [None, None, None]


def test_two_loops_in_two_threads_cut_every_stream() -> None:
    """Two event loops in two threads, each with many streams cut by their deadline at about
    the same moment: every stream is cut, and no alarm callback fails (each loop's alarms run
    in a context of their own; one shared context cannot be entered by two threads at once,
    and a lost callback would leave every later stream of that loop uncut)."""
    errors: list[object] = []
    outcomes: list[list[str]] = []

    async def many() -> list[str]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))

        async def one() -> str:
            try:
                async for _ in with_deadline(counting([]), 0.05):
                    pass
            except StreamTimeoutError as exc:
                return exc.limit
            return "ended"

        async with asyncio.timeout(10):
            return list(await asyncio.gather(*(one() for _ in range(1_500))))

    threads = [threading.Thread(target=lambda: outcomes.append(run_virtual(many()))) for _ in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: inside the alarms' callbacks too
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert [set(o) for o in outcomes] == [{"deadline"}, {"deadline"}]


def test_an_ended_stream_lets_go_of_its_source() -> None:
    """A stream that ended releases its source at once, even while other streams keep the
    loop's alarm queue (where the ended stream's entry may linger) alive."""

    class Big:
        """A source that is nothing but its size."""

        def __aiter__(self) -> Big:
            return self

        async def __anext__(self) -> int:
            await asyncio.sleep(0.01)
            return 0

    async def main() -> list[object]:
        keep = with_deadline(counting([]), 60)
        await anext(keep)  # one live stream: the queue stays
        refs = []
        for _ in range(5):
            source = Big()
            refs.append(weakref.ref(source))
            stream = with_deadline(source, 60)
            await anext(stream)
            await stream.aclose()
            del source, stream
        gc.collect()
        alive = [ref() for ref in refs]
        await keep.aclose()
        return alive

    assert run_virtual(main()) == [None] * 5


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"seconds": 1.0, "idle": 0.0}, ("deadline", 1.0)),
        ({"first_item": 1.0, "idle": 0.0}, ("first_item", 1.0)),
    ],
)
def test_a_zero_idle_limit_does_not_switch_the_other_limits_off(
    limits: dict[str, float], expected: tuple[str, float]
) -> None:
    """``idle=0`` together with a total deadline or a first-item limit: the source's first item
    would take 10 s, and the stream is cut at exactly 1 s by the other limit (the watchdog's
    look-ahead for ``idle=0`` must not leave it never waking again)."""

    async def slow() -> AsyncGenerator[int, None]:
        await asyncio.sleep(10)
        yield 0

    async def main() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        seconds = limits.pop("seconds", None)
        with pytest.raises(StreamTimeoutError) as info:
            await anext(with_deadline(slow(), seconds, **limits))
        return info.value.limit, loop.time()

    limit, at = run_virtual(main())
    assert (limit, at) == (expected[0], pytest.approx(expected[1]))


def test_a_stream_with_a_tiny_idle_limit_does_not_grow_the_loops_timers() -> None:
    """With ``idle`` under a millisecond, over a source that never suspends (so the watch's
    timer never runs), 20,000 items leave fewer than 100 timer handles in the loop: the
    stream does not add one per item."""

    async def numbers(n: int) -> AsyncGenerator[int, None]:
        for i in range(n):
            yield i

    async def main() -> int:
        loop = asyncio.get_running_loop()
        entries = 0
        async with with_deadline(numbers(20_000), 60, idle=0.0005) as stream:
            async for i in stream:
                if i == 19_999:
                    entries = len(loop._scheduled)  # type: ignore[attr-defined]  # (white-box)
        return entries

    assert 0 < run_virtual(main()) < 100


async def _three_then_stall(closed: list[bool]) -> AsyncGenerator[int, None]:
    """0, 1, 2 at 10 ms intervals, then a wait of an hour; notes its close."""
    try:
        for i in range(3):
            await asyncio.sleep(0.01)
            yield i
        await asyncio.sleep(3600)
        yield 99
    finally:
        closed.append(True)


def test_a_stream_made_in_one_loop_is_watched_in_the_loop_that_iterates_it() -> None:
    """``aiter(stream)`` in one event loop (closed since), the iteration in another: the
    stream is cut at exactly its 1 s deadline on the iterating loop's clock, after all three
    items, and its source is closed once (the generator must not use the first loop)."""
    closed: list[bool] = []
    stream = with_deadline(_three_then_stall(closed), 1)

    async def make() -> AsyncIterator[int]:
        return aiter(stream)

    iterator = run_virtual(make())

    async def consume() -> tuple[list[int], str, float]:
        loop = asyncio.get_running_loop()
        start, got = loop.time(), []
        with pytest.raises(StreamTimeoutError) as info:
            async for item in iterator:
                got.append(item)
        return got, info.value.limit, loop.time() - start

    got, limit, at = run_virtual(consume())
    assert (got, limit, at, closed) == ([0, 1, 2], "deadline", pytest.approx(1), [True])


def test_a_stream_made_in_a_busy_loop_of_another_thread_is_watched_in_its_own() -> None:
    """``aiter(stream)`` in a task of a loop in another thread, and the stream iterated here
    while that loop's thread is still inside a task step (so that loop has a current task):
    the stream is cut at exactly its 1 s deadline on this loop's clock, not left to the
    other loop, whose timer it must not touch from here."""
    closed: list[bool] = []
    stream = with_deadline(_three_then_stall(closed), 1)
    made, release = threading.Event(), threading.Event()
    iterators: list[AsyncIterator[int]] = []

    async def make_and_block() -> None:
        iterators.append(aiter(stream))
        made.set()
        release.wait(30)  # blocks this task's step: its loop has a current task meanwhile

    other = threading.Thread(target=lambda: asyncio.run(make_and_block()))
    other.start()
    try:
        assert made.wait(30)

        async def consume() -> tuple[list[int], str, float]:
            loop = asyncio.get_running_loop()
            start, got = loop.time(), []
            with pytest.raises(StreamTimeoutError) as info:
                async for item in iterators[0]:
                    got.append(item)
            return got, info.value.limit, loop.time() - start

        got, limit, at = run_virtual(consume())
    finally:
        release.set()
        other.join(30)
    assert (got, limit, at, closed) == ([0, 1, 2], "deadline", pytest.approx(1), [True])


@pytest.mark.parametrize("seconds", [None, 60])
def test_a_dropped_stream_is_closed_by_the_loops_finalizer(seconds: float | None) -> None:
    """A stream dropped between two items without ``aclose()`` (a ``break`` out of ``async
    for``, and nothing else) has its source closed exactly once by the loop's async-generator
    finalizer, with a limit or without: the source is a class, which nothing else closes."""

    async def main() -> int:
        source = Closable([0, 0, 0])
        stream = with_deadline(source, seconds)
        async for _ in stream:
            break
        del stream
        gc.collect()
        for _ in range(3):  # the finalizer's task runs the close
            await asyncio.sleep(0)
        return len(source.closes)

    assert run_virtual(main()) == 1
