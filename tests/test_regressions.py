"""Regressions: one or more tests per bug found in review, each failing on the code before its fix.

Test names start with the bug's number (``test_bug1_...`` is about bug 1). Timing is on virtual
time (looptime on asyncio, ``MockClock`` on trio) except where a real clock is the point (uvloop,
a clock replaced on the loop instance, two loops in two threads); those use generous bounds and
real-time safety timeouts, so that no test can hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import logging
import math
import sys
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import anyio
import looptime
import pytest
import sniffio
import trio
import trio.testing

from stream_deadline import Deadline, StreamTimeoutError, with_deadline
from stream_deadline._source import Source
from support import BACKENDS, Closable, collect, virtual_time_loop
from test_adversarial import cancelling

T = TypeVar("T")

ANYIO = pytest.mark.anyio
"""Run a test on asyncio and on trio, each on virtual time (the ``anyio_backend`` fixture)."""

now = anyio.current_time


def backend() -> str:
    return sniffio.current_async_library()


def cancelled() -> type[BaseException]:
    return anyio.get_cancelled_exc_class()


def run_virtual(main: Coroutine[Any, Any, T], clock_resolution: float | None = None) -> T:
    """Run ``main`` on a new looptime loop (virtual clock from 0); ``clock_resolution``, if
    given, makes the loop run each timer up to that many seconds before its time, as asyncio
    does within its clock's resolution (a coarse clock)."""
    loop = looptime.patch_event_loop(asyncio.new_event_loop())  # type: ignore[arg-type]
    if clock_resolution is not None:
        coarse: Any = loop
        coarse._clock_resolution = clock_resolution  # BaseEventLoop's own attribute
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The messages the library logged at WARNING or above."""
    return [
        r.getMessage() for r in caplog.records if r.name == "stream_deadline" and r.levelno >= logging.WARNING
    ]


def went_on(name: str, limit: str) -> str:
    """The one warning for a pull that returned an item after its limit cut it (bugs 6 and 7)."""
    return (
        f"the source {name} went on after the {limit} limit cut its pull (it caught the cancellation"
        ", was shielded from it, or its item came in as the limit passed) and returned an item;"
        " the item is dropped"
    )


@pytest.fixture(autouse=True)
def _capture_library_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.INFO, logger="stream_deadline"):
        yield


def armed() -> list[str]:
    """On asyncio, the live timer handles of the running loop whose callback is the library's
    (nothing of an ended stream may stay armed); on trio, nothing to look at."""
    if backend() != "asyncio":
        return []
    loop: Any = asyncio.get_running_loop()
    return [
        repr(handle)
        for handle in loop._scheduled
        if not handle.cancelled() and "stream_deadline" in str(getattr(handle._callback, "__module__", ""))
    ]


# Bug 1: a deadline due between two pulls is lost ------------------------------------------------


async def deadline_between_pulls(
    first_pull_at: float, seconds: float, pause: float, idle: float | None
) -> tuple[list[int], str, float, float, list[float]]:
    """Sleep ``first_pull_at``, then pull a stream of ``seconds`` whose source yields at once and
    then waits 1.5 s for its second item; the consumer sleeps ``pause`` after each item.

    Returns the items, the limit that cut the stream (or ``"no timeout"``), when the consumer
    saw the outcome, the error's ``elapsed`` and when the source closed, all relative to the
    first pull on the loop's clock.
    """
    loop = asyncio.get_running_loop()
    closed: list[float] = []

    async def source() -> AsyncGenerator[int, None]:
        try:
            yield 0
            await asyncio.sleep(1.5)
            yield 1
        finally:
            closed.append(loop.time())

    await asyncio.sleep(first_pull_at)
    start = loop.time()
    items: list[int] = []
    limit, elapsed = "no timeout", math.nan
    try:
        async for item in with_deadline(source(), seconds, idle=idle):
            items.append(item)
            await asyncio.sleep(pause)
    except StreamTimeoutError as exc:
        limit, elapsed = exc.limit, exc.elapsed
    return items, limit, loop.time() - start, elapsed, [t - start for t in closed]


@pytest.mark.parametrize("idle", [None, 0.5])
def test_bug1_a_a_deadline_due_between_pulls_is_kept_on_a_virtual_clock(idle: float | None) -> None:
    """First pull at 0.1 s, ``seconds=0.2``: the deadline is 0.1 + 0.2 = 0.30000000000000004
    on the loop's clock, and the consumer's sleep of 0.2 s after the first item ends on the
    same timer tick, 0.3 (looptime stands on whole microseconds). The watchdog wakes for the
    deadline while no pull is in flight; the next pull starts at 0.3, a hair before the
    deadline, and its source then stalls for 1.5 s. That pull must be cut at the deadline
    (within 1e-6), with the second item never delivered and the source closed once. With
    ``idle=0.5`` that pull's own idle bound (0.8 s) must not be lost either: the stream is
    still cut at the deadline, the nearer bound."""
    outcome: tuple[object, ...] = run_virtual(deadline_between_pulls(0.1, 0.2, 0.2, idle))
    assert outcome == (
        [0],
        "deadline",
        pytest.approx(0.2, abs=1e-6),
        pytest.approx(0.2, abs=1e-6),
        [pytest.approx(0.2, abs=1e-6)],
    )


@pytest.mark.parametrize("idle", [None, 0.5])
def test_bug1_b_a_deadline_due_between_pulls_is_kept_on_a_coarse_clock(idle: float | None) -> None:
    """A loop whose clock resolution is 1 ms (``_clock_resolution = 0.001``: each timer runs
    up to 1 ms early, as on a coarse clock), on virtual time so that it is deterministic. The
    deadline is 0.2004 s, the consumer sleeps 0.2 s between pulls: the watchdog's timer for
    0.2004 runs in the same loop iteration as the consumer's wake-up at 0.2, while no pull is
    in flight, and the next pull reads 0.2 on the clock. That pull, whose source then stalls
    for 1.5 s, must be cut at the deadline (within the loop's resolution of it), the second
    item never delivered, the source closed once."""
    outcome: tuple[object, ...] = run_virtual(
        deadline_between_pulls(0, 0.2004, 0.2, idle), clock_resolution=0.001
    )
    near = pytest.approx(0.2004 - 0.0005, abs=0.0005 + 1e-6)  # from 1 ms early to on time
    assert outcome == ([0], "deadline", near, near, [near])


def test_bug1_c_uvloop_keeps_a_deadline_due_between_pulls() -> None:
    """On uvloop (whose timers work in whole milliseconds) on the real clock: ``seconds=0.2004``,
    an item at once, the consumer sleeping 0.2 s between pulls, then a source that waits 1.5 s.
    In each of 10 runs the stream must be cut by the deadline within 0.15 s of it, and the
    second item never delivered (the old code delivered it at ~1.7 s in most runs)."""
    uvloop = pytest.importorskip("uvloop", reason="uvloop does not support this platform")

    async def once() -> tuple[str, list[int], bool]:
        loop = asyncio.get_running_loop()

        async def source() -> AsyncGenerator[int, None]:
            yield 0
            await asyncio.sleep(1.5)
            yield 1

        start = loop.time()
        items: list[int] = []
        try:
            async for item in with_deadline(source(), 0.2004):
                items.append(item)
                await asyncio.sleep(0.2)
        except StreamTimeoutError as exc:
            took = loop.time() - start
            return exc.limit, items, 0.2004 - 0.002 <= exc.elapsed <= took <= 0.2004 + 0.15
        return "no timeout", items, False

    outcomes = [uvloop.run(once()) for _ in range(10)]
    assert outcomes == [("deadline", [0], True)] * 10


# Bug 2: a cancellation count already above zero turns our timeout into a cancellation -----------


async def stalled_stream_outcome(seconds: float) -> tuple[str, str]:
    """Pull a stream of ``seconds`` over a source that stalls for an hour: what the consumer
    saw (the exception's type) and, for a timeout, its limit."""

    async def stall() -> AsyncGenerator[int, None]:
        await asyncio.sleep(3600)
        yield 0

    try:
        await collect(with_deadline(stall(), seconds))
    except StreamTimeoutError as exc:
        return "StreamTimeoutError", exc.limit
    except BaseException as exc:  # CancelledError, mostly: recorded, not raised
        return type(exc).__name__, ""
    return "no timeout", ""


def test_bug2_a_a_task_already_counting_a_cancellation_still_gets_the_timeout() -> None:
    """A task caught an earlier ``CancelledError`` without ``uncancel()``: its ``cancelling()``
    is 1. ``asyncio.timeout`` in that state still raises ``TimeoutError`` (it compares with the
    count it noted on entry; CPython >= 3.11.3), and so must the stream: ``StreamTimeoutError``
    at its deadline, with ``cancelling()`` still 1 afterwards. And an outside ``Task.cancel()``
    requested in the same loop tick as the stream's cut still wins: the consumer sees
    ``CancelledError``, and that cancellation stays counted (2 = the old one + the new one)."""

    async def main() -> tuple[object, ...]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):  # caught, never uncancel()ed: the count stays 1
            await asyncio.sleep(1)
        before = task.cancelling()
        try:
            async with asyncio.timeout(1):
                await asyncio.sleep(5)
            contrast = "no timeout"
        except BaseException as exc:
            contrast = type(exc).__name__
        after_contrast = task.cancelling()
        stream = await stalled_stream_outcome(2)
        after_stream = task.cancelling()
        # The same state, and an outside cancellation due at the very time of the cut.
        start = loop.time()
        handle = loop.call_at(start + 2, task.cancel)
        race = await stalled_stream_outcome(2)
        handle.cancel()
        after_race = task.cancelling()
        while task.uncancel():
            pass
        return before, contrast, after_contrast, stream, after_stream, race, after_race, loop.time() - start

    before, contrast, after_contrast, stream, after_stream, race, after_race, race_at = run_virtual(main())
    assert (before, after_contrast) == (1, 1)
    if sys.version_info >= (3, 11, 3):  # (before 3.11.3 asyncio.timeout compared with 0 itself)
        assert contrast == "TimeoutError"
    assert (stream, after_stream) == (("StreamTimeoutError", "deadline"), 1)
    assert (race, after_race, race_at) == (("CancelledError", ""), 2, 2)


def test_bug2_b_a_failed_task_group_child_does_not_turn_a_later_timeout_into_a_cancellation() -> None:
    """On CPython 3.11 and 3.12, a ``TaskGroup`` whose child fails, its error handled with
    ``except*``, leaves the parent task's ``cancelling()`` at 1 (a CPython bug, fixed in
    3.13). A stream that times out later in that task must still raise ``StreamTimeoutError``,
    and leave the count as it found it. (On 3.13 and later the count is 0 and the test checks
    only the stream)."""

    async def main() -> tuple[int, tuple[str, str], int]:
        task = asyncio.current_task()
        assert task is not None

        async def fail() -> None:
            raise ValueError("child failed")

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(fail())
        except* ValueError:
            pass
        before = task.cancelling()
        outcome = await stalled_stream_outcome(2)
        return before, outcome, task.cancelling()

    before, outcome, after = run_virtual(main())
    if sys.version_info < (3, 13):
        assert before == 1  # the CPython bug this test is about
    assert (outcome, after) == (("StreamTimeoutError", "deadline"), before)


# Bug 3: a stream moved to another event loop -------------------------------------------------


class Counted:
    """What a source went through: items pulled (started), and closes (its ``finally``)."""

    def __init__(self) -> None:
        self.pulls = 0
        self.closes = 0

    async def source(self) -> AsyncGenerator[int, None]:
        """Item 0 at once; item 1 after an hour (on whichever loop pulls it)."""
        try:
            self.pulls += 1
            yield 0
            self.pulls += 1
            await asyncio.sleep(3600)
            yield 1
        finally:
            self.closes += 1


def error_kind(exc: BaseException) -> str:
    """The name of ``exc``'s type, or ``RuntimeError`` for any subclass of it."""
    return "RuntimeError" if isinstance(exc, RuntimeError) else type(exc).__name__


def test_bug3_a_a_stream_pulled_on_a_second_loop_in_the_same_thread_raises_runtime_error() -> None:
    """A stream first pulled on loop 1 (closed since, without ``shutdown_asyncgens()``, so the
    stream stays open) and then pulled on loop 2: that pull raises ``RuntimeError`` naming the
    loop at once, without pulling from the source or closing it. (The old code went ahead with
    nothing watching the pull: the stall outlived the 1 s deadline until an outer safety
    timeout of 10 s fired)."""
    counted = Counted()
    stream = with_deadline(counted.source(), 1)

    async def first() -> int:
        return await anext(stream)

    loop1 = virtual_time_loop()
    try:
        assert loop1.run_until_complete(first()) == 0
    finally:
        loop1.close()  # no shutdown_asyncgens(): the stream stays open

    async def second() -> tuple[str, str, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with asyncio.timeout(10):  # a safety net: the test cannot hang
                await anext(stream)
        except BaseException as exc:
            return error_kind(exc), str(exc), loop.time() - start
        return "item", "", loop.time() - start

    kind, message, at = run_virtual(second())
    assert (kind, "loop" in message.lower(), at) == ("RuntimeError", True, 0)
    assert (counted.pulls, counted.closes) == (1, 0)


def test_bug3_b_a_stream_pulled_from_another_threads_loop_raises_there_and_leaves_the_first_alone() -> None:
    """Loop A (thread A) pulls one item and then runs a bystander task that is in the middle of
    a step (blocked in ``Event.wait``) while loop B (thread B) pulls from the same stream
    inside its own ``asyncio.timeout(1)``. The pull on B must raise ``RuntimeError`` naming the
    loop at once, with nothing left pending on B's task and the source neither pulled nor
    closed; the bystander on A, released after the stream's 0.3 s deadline, must finish
    undisturbed, and ``aclose()`` on loop A then closes the source, once. (The old code noted
    A's current task, the bystander, as the puller: the watchdog cancelled it, B got
    ``StreamTimeoutError`` for its own ``asyncio.timeout``, and A's ``aclose()`` found the
    stream "already running".) Real clock; every wait is bounded."""
    counted = Counted()
    stream = with_deadline(counted.source(), 0.3)
    busy, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    async def bystander() -> str:
        busy.set()
        release.wait(5)  # a blocking call: this task's step is in progress on loop A meanwhile
        try:
            await asyncio.sleep(0.3)
        except asyncio.CancelledError:
            return "cancelled"
        return "done"

    async def main_a() -> None:
        results["first"] = await anext(stream)
        results["bystander"] = await asyncio.create_task(bystander())
        await stream.aclose()

    async def main_b() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with asyncio.timeout(1):
                await anext(stream)
            outcome = "item"
        except BaseException as exc:
            outcome = f"{error_kind(exc)}: {exc}"
        task = asyncio.current_task()
        assert task is not None
        results["b"] = (outcome, loop.time() - start, task.cancelling(), counted.pulls, counted.closes)

    def run_in_thread(name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> threading.Thread:
        def target() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:
                results[f"error in {name}"] = exc

        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    thread_a = run_in_thread("A", main_a)
    thread_b = None
    try:
        assert busy.wait(5)
        thread_b = run_in_thread("B", main_b)
        time.sleep(0.45)  # keep the bystander's step going until after the stream's deadline
        release.set()
        thread_b.join(5)
    finally:
        release.set()
        thread_a.join(5)
        if thread_b is not None:
            thread_b.join(5)
    assert thread_b is not None
    assert (thread_a.is_alive(), thread_b.is_alive()) == (False, False)
    outcome, took, pending, pulls, closes = results.pop("b", ("(no outcome)", math.nan, -1, -1, -1))
    assert (outcome.split(":")[0], "loop" in outcome.lower(), took < 0.25, pending, pulls, closes) == (
        "RuntimeError",
        True,
        True,
        0,
        1,  # the source untouched by the pull on B: not pulled again,
        0,  # and not closed
    ), outcome
    assert (results, counted.pulls, counted.closes) == ({"first": 0, "bystander": "done"}, 1, 1)


# Bug 4: a clock replaced on the loop instance -----------------------------------------------------


def test_bug4_a_clock_replaced_on_the_loop_instance_is_the_one_the_stream_reads() -> None:
    """A stock asyncio loop whose ``time`` is replaced on the instance (as aiotools' virtual
    clock and ``mock.patch.object(loop, "time", ...)`` do), here one a million seconds ahead of
    the monotonic clock: ``Deadline.after(5).when`` is 5 s after ``loop.time()``, and a stalled
    stream of 0.05 s is cut after 0.05 s on that clock (not at once, not never). Real clock."""
    loop = asyncio.new_event_loop()
    original = loop.time
    loop.time = lambda: original() + 1_000_000  # type: ignore[method-assign]

    async def stall() -> AsyncGenerator[int, None]:
        await asyncio.sleep(3600)
        yield 0

    async def main() -> tuple[float, str, float, float]:
        budget = Deadline.after(5)
        offset = budget.when - (loop.time() + 5)
        start = loop.time()
        try:
            await anext(with_deadline(stall(), 0.05))
        except StreamTimeoutError as exc:
            return offset, exc.limit, exc.elapsed, loop.time() - start
        return offset, "no timeout", math.nan, loop.time() - start

    try:
        offset, limit, elapsed, took = loop.run_until_complete(asyncio.wait_for(main(), 5))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    outcome: tuple[object, ...] = (offset, limit, 0.05 - 1e-3 <= elapsed <= took < 2)
    assert outcome == (
        pytest.approx(0, abs=0.05),
        "deadline",
        True,
    ), f"elapsed {elapsed}, took {took}"


# Bug 5: the source stays open when the first pull fails early ------------------------------------


class AiterFails:
    """An async iterable whose ``__aiter__`` raises; its ``aclose()`` counts."""

    def __init__(self) -> None:
        self.closes = 0

    def __aiter__(self) -> AsyncIterator[int]:
        raise ValueError("no iterator today")

    async def aclose(self) -> None:
        """Count the close."""
        self.closes += 1


@ANYIO
@pytest.mark.parametrize("seconds", [5, None], ids=["limited", "unlimited"])
async def test_bug5_a_a_source_whose_aiter_raises_is_closed(seconds: float | None) -> None:
    """``async for`` over a stream whose source's ``__aiter__`` raises: the error propagates,
    the source's ``aclose()`` has been called exactly once, and nothing of the stream stays
    behind: the source is garbage once the test lets go of it, and on asyncio no timer of the
    library stays armed in the loop. With a limit and without one (a stream with no limit at
    all owns its source just the same)."""
    source = AiterFails()
    ref = weakref.ref(source)
    stream = with_deadline(source, seconds)
    error = "no error"
    try:
        async for _ in stream:
            pass
    except ValueError as exc:
        error = str(exc)
    closes = source.closes
    del source, stream
    gc.collect()
    assert (error, closes) == ("no iterator today", 1)
    assert (ref() is None, armed()) == (True, [])


async def make_deadline() -> Deadline:
    return Deadline.after(5)


async def pull_with(budget: Deadline) -> tuple[str, int, list[str]]:
    """Pull a stream over a class-based source with ``budget`` as its ``seconds``: what the pull
    raised, how often the source was closed, and what stays armed."""
    source = Closable([0, 0])
    try:
        await anext(with_deadline(source, budget))
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    else:
        outcome = "item"
    gc.collect()
    return outcome, len(source.closes), armed()


@pytest.mark.parametrize(("made_on", "used_on"), [("trio", "asyncio"), ("asyncio", "trio")])
def test_bug5_b_a_deadline_of_the_other_backend_fails_the_first_pull_and_closes_the_source(
    made_on: str, used_on: str
) -> None:
    """A ``Deadline`` made under one backend given to a stream pulled under the other: the first
    pull raises ``RuntimeError`` (naming both backends), and the source has been closed exactly
    once, with nothing left armed."""
    budget = anyio.run(make_deadline, **BACKENDS[made_on]())
    outcome, closes, left = anyio.run(pull_with, budget, **BACKENDS[used_on]())
    assert (outcome.split(":")[0], made_on in outcome, used_on in outcome) == ("RuntimeError", True, True)
    assert (closes, left) == (1, [])


class BoomError(Exception):
    """The error a consumer throws in."""


@ANYIO
@pytest.mark.parametrize("seconds", [5, None], ids=["limited", "unlimited"])
@pytest.mark.parametrize("kind", ["class", "started-generator", "fresh-generator"])
async def test_bug5_c_athrow_as_the_first_call_closes_the_source(kind: str, seconds: float | None) -> None:
    """``athrow(BoomError())`` as the very first call on a fresh stream: the error propagates as the
    source's own ``athrow`` would let it (the same object), and the source is closed exactly
    once: a class-based source's ``aclose()`` is called; an async generator already started
    runs its ``finally`` (once) and is finished; one not yet started is finished (there is no
    ``finally`` to run in a body that never started). Nothing stays armed."""
    finals: list[float] = []

    async def generator() -> AsyncGenerator[int, None]:
        try:
            yield 0
            yield 1
        finally:
            finals.append(now())

    boom = BoomError("thrown in")
    closable = Closable([0, 0])
    gen: Any = generator()  # (an async generator: its ag_frame is read below)
    if kind == "started-generator":
        assert await anext(gen) == 0
    stream = with_deadline(closable if kind == "class" else gen, seconds)
    try:
        await stream.athrow(boom)
    except BaseException as exc:
        outcome: object = exc
    else:
        outcome = "no error"
    assert outcome is boom
    if kind == "class":
        assert len(closable.closes) == 1
    else:
        assert (len(finals), gen.ag_frame is None) == (1 if kind == "started-generator" else 0, True)
    assert armed() == []


# Bug 6: a zero limit, on both backends ------------------------------------------------------------


@ANYIO
async def test_bug6_a_a_zero_first_item_limit_cuts_the_first_wait_even_a_sleep_0() -> None:
    """``first_item=0`` and a first pull that only awaits ``sleep(0)`` before yielding: the
    pull is made, but cut at its first wait, as ``asyncio.timeout(0)`` and
    ``trio.fail_after(0)`` cut it: ``StreamTimeoutError("first_item")`` at once on both
    backends, the source closed once, no warning, no cancellation left pending."""
    start = now()
    finals: list[float] = []

    async def source() -> AsyncGenerator[int, None]:
        try:
            await anyio.sleep(0)  # noqa: ASYNC115 (a sleep(0), exactly)
            yield 0
        finally:
            finals.append(now())

    try:
        outcome: object = await collect(with_deadline(source(), None, first_item=0))
    except StreamTimeoutError as exc:
        outcome = (exc.limit, exc.items)
    assert outcome == ("first_item", 0)
    assert (now() - start, finals, cancelling()) == (0, [start], 0)


@ANYIO
@pytest.mark.parametrize("limit", ["first_item", "idle"])
async def test_bug6_b_a_source_that_catches_a_zero_limits_cut_and_yields_is_cut(
    limit: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A zero limit (``first_item=0`` for the first pull, ``idle=0`` for a later one) and a
    source that catches the cut of its ``sleep(0)`` and yields anyway: treated like any source
    that ignores a cut: ``StreamTimeoutError`` for that limit, the late item dropped, the
    source closed once, exactly one WARNING (the new text), on both backends."""
    start = now()
    finals: list[float] = []

    async def source() -> AsyncGenerator[str, None]:
        try:
            if limit == "idle":
                yield "ready"  # a first pull that needs no wait: delivered
            try:
                await anyio.sleep(0)  # noqa: ASYNC115 (a sleep(0), exactly)
            except cancelled():
                pass  # caught: the pull goes on
            yield "late"
        finally:
            finals.append(now())

    items: list[str] = []
    try:
        zero: dict[str, Any] = {limit: 0}
        async for item in with_deadline(source(), None, **zero):
            items.append(item)
        outcome: object = "ended"
    except StreamTimeoutError as exc:
        outcome = (exc.limit, exc.items)
    delivered = ["ready"] if limit == "idle" else []
    assert (outcome, items) == ((limit, len(delivered)), delivered)
    assert (now() - start, finals, cancelling()) == (0, [start], 0)
    assert warnings_of(caplog) == [went_on("async_generator", limit)]


# Bug 7: the warning for a pull that went on past its cut ------------------------------------------

LIMITS: dict[str, dict[str, Any]] = {
    "deadline": {"seconds": 2},
    "first_item": {"seconds": None, "first_item": 2},
    "idle": {"seconds": None, "idle": 2},
}
"""Each limit set to 2 s alone, as ``with_deadline`` keyword arguments."""


async def limit_and_items(stream: AsyncIterator[str]) -> tuple[object, list[str]]:
    """Drain ``stream``: the limit that cut it (``"ended"`` if none did), and the items it gave."""
    items: list[str] = []
    try:
        async for item in stream:
            items.append(item)
    except StreamTimeoutError as exc:
        return exc.limit, items
    return "ended", items


@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_bug7_a_trio_pull_shielded_past_its_limit_is_cut_without_claiming_it_ignored_a_cancellation(
    limit: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On trio, the source does its pull inside a shielded scope (``trio.sleep(5)`` past the
    2 s limit) and then returns an item without another checkpoint: it never saw a
    cancellation. The limit passed during the pull: ``StreamTimeoutError`` for it when the pull
    returns (5 s), the late item dropped, and one WARNING that says the source went on after
    the cut (it caught the cancellation or was shielded from it), not that it "ignored" it."""

    async def main() -> tuple[object, list[str], float]:
        start = trio.current_time()

        async def source() -> AsyncGenerator[str, None]:
            if limit == "idle":
                yield "ready"
            with trio.CancelScope(shield=True):
                await trio.sleep(5)
            yield "late"

        outcome, items = await limit_and_items(with_deadline(source(), **LIMITS[limit]))
        return outcome, items, trio.current_time() - start

    outcome, items, at = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert (outcome, items, at) == (limit, ["ready"] if limit == "idle" else [], 5)
    assert warnings_of(caplog) == [went_on("async_generator", limit)]


@ANYIO
@pytest.mark.parametrize("limit", sorted(LIMITS))
async def test_bug7_b_a_source_that_catches_the_cut_and_yields_gets_the_new_warning(
    limit: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Both backends word the warning the same way for any pull that returned an item after its
    limit cut it: here a source that catches the cancellation of its 10 s wait at the 2 s limit
    and yields. ``StreamTimeoutError`` for that limit at 2 s, the late item dropped, one
    WARNING with the new text."""
    start = now()

    async def source() -> AsyncGenerator[str, None]:
        if limit == "idle":
            yield "ready"
        try:
            await anyio.sleep(10)
        except cancelled():
            pass
        yield "late"

    outcome, items = await limit_and_items(with_deadline(source(), **LIMITS[limit]))
    assert (outcome, items, now() - start) == (limit, ["ready"] if limit == "idle" else [], 2)
    assert warnings_of(caplog) == [went_on("async_generator", limit)]
    assert cancelling() == 0


# Bug 8: GeneratorExit from a pull, and athrow(GeneratorExit) --------------------------------------


class ExitsOnSecondPull:
    """A class-based source: item 0, then ``__anext__`` raises ``GeneratorExit``; counts closes."""

    def __init__(self) -> None:
        self.pulls = 0
        self.closes = 0

    def __aiter__(self) -> ExitsOnSecondPull:
        return self

    async def __anext__(self) -> int:
        self.pulls += 1
        if self.pulls > 1:
            raise GeneratorExit
        return 0

    async def aclose(self) -> None:
        """Count the close."""
        self.closes += 1


class GeneratorSource:
    """An async generator source that counts how often its ``finally`` runs."""

    def __init__(self, exits: bool) -> None:
        self.closes = 0
        self.exits = exits

    async def run(self) -> AsyncGenerator[int, None]:
        """Item 0; then raises ``GeneratorExit`` (``exits``) or yields 1 and 2."""
        try:
            yield 0
            if self.exits:
                raise GeneratorExit
            yield 1
            yield 2
        finally:
            self.closes += 1


def make_source(kind: str, case: str) -> tuple[AsyncIterator[int], Callable[[], int]]:
    """A fresh source of ``kind`` for ``case``, and how to read how often it was closed."""
    if kind == "class":
        if case == "raises":
            exiting = ExitsOnSecondPull()
            return exiting, lambda: exiting.closes
        closable = Closable([0, 0, 0])
        return closable, lambda: len(closable.closes)
    gen = GeneratorSource(exits=case == "raises")
    return gen.run(), lambda: gen.closes


async def pass_through(source: AsyncIterator[int]) -> AsyncGenerator[int, None]:
    async for item in source:
        yield item


async def consume(it: Any, case: str) -> tuple[list[int], str]:
    """``raises``: ``async for`` to the end; ``athrow``: one item, then ``athrow(GeneratorExit)``.
    Returns the items and what the consumer saw at the end (an exception's type name)."""
    items: list[int] = []
    try:
        if case == "raises":
            async for item in it:
                items.append(item)
            return items, "ended"
        items.append(await anext(it))
        items.append(await it.athrow(GeneratorExit))
    except BaseException as exc:  # GeneratorExit among them: recorded, not raised
        return items, type(exc).__name__
    return items, "returned"


@ANYIO
@pytest.mark.parametrize("kind", ["class", "generator"])
@pytest.mark.parametrize("case", ["raises", "athrow"])
async def test_bug8_generator_exit_propagates_as_through_a_pass_through_generator(
    kind: str, case: str
) -> None:
    """A source whose pull raises ``GeneratorExit``, and ``stream.athrow(GeneratorExit)``: the
    consumer sees what it sees through a plain pass-through async generator (``async for x in
    src: yield x``), computed here on a source of the same kind, rather than a quiet end; and
    the stream's source is closed exactly once."""
    plain_source, _ = make_source(kind, case)
    plain = pass_through(plain_source)
    expected = await consume(plain, case)
    await plain.aclose()
    if isinstance(plain_source, AsyncGenerator):
        await plain_source.aclose()
    assert expected[1] == "GeneratorExit"  # (what a pass-through does today)

    source, closes = make_source(kind, case)
    stream = with_deadline(source, 50)
    seen = await consume(stream, case)
    await stream.aclose()
    assert (seen, closes()) == (expected, 1)
    assert cancelling() == 0


# Bug 9: the re-cancel warning and the consumer's context variables --------------------------------

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID")


class ContextSeen(logging.Handler):
    """A handler that notes, for every record, the request id visible where it was logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Note the record's level and the request id visible here."""
        self.seen.append((record.levelname, REQUEST_ID.get(None)))


def test_bug9_the_re_cancel_warning_sees_the_consumers_context() -> None:
    """A source that swallows three cancellations and keeps awaiting makes the asyncio watchdog
    cancel it again every ``close_timeout`` with a WARNING each time. Every record of the
    stream, those warnings included, is emitted where the consumer's context variables are
    visible: a handler reading a request id from a ``ContextVar`` set by the consumer sees it
    on every record (the old code logged the warnings from the timer callback's empty
    context)."""

    async def stubborn() -> AsyncGenerator[int, None]:
        yield 0
        left = 3
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if left == 0:
                    raise
                left -= 1

    async def main() -> str:
        REQUEST_ID.set("request-42")
        try:
            await collect(with_deadline(stubborn(), 5, close_timeout=2))
        except StreamTimeoutError as exc:
            return exc.limit
        return "no timeout"

    handler = ContextSeen()
    logger = logging.getLogger("stream_deadline")
    logger.addHandler(handler)
    try:
        limit = run_virtual(main())
    finally:
        logger.removeHandler(handler)
    assert limit == "deadline"
    assert [level for level, _ in handler.seen].count("WARNING") == 3
    assert handler.seen == [(level, "request-42") for level, _ in handler.seen]


# Found by an independent review of the rebuilt core ------------------------------------------


async def _cleanup_after_the_cut(cleaned: list[float]) -> AsyncGenerator[int, None]:
    """One item, then a stall; after the cut, a cleanup that awaits half a second."""
    try:
        yield 0
        await asyncio.sleep(3600)
        yield 1  # pragma: no cover (never reached)
    finally:
        await asyncio.sleep(0.5)
        cleaned.append(asyncio.get_running_loop().time())


def test_review_an_outside_cancellation_after_the_count_went_down_between_pulls_surfaces() -> None:
    """The consumer's first pull happens while its task carries a cancellation (count 1, taken
    back by an enclosing ``asyncio.timeout`` before the second pull); the second pull is cut by
    ``idle`` and an outside ``task.cancel()`` lands during the source's cleanup. The consumer
    must see that ``CancelledError`` (rule 7), not a timeout: the count is noted at every
    pull, as ``asyncio.timeout`` notes it on entry, not only when the pulling task changes."""
    cleaned: list[float] = []

    async def main() -> str:
        task = asyncio.current_task()
        assert task is not None
        stream = with_deadline(_cleanup_after_the_cut(cleaned), None, idle=1)
        try:
            async with asyncio.timeout(0.1):
                try:
                    await asyncio.sleep(1)
                finally:
                    assert task.cancelling() == 1
                    assert await anext(stream) == 0
        except TimeoutError:
            pass
        assert task.cancelling() == 0
        asyncio.get_running_loop().call_later(1.2, task.cancel)  # during the cleanup
        try:
            await anext(stream)
        except BaseException as exc:
            return type(exc).__name__
        return "item"

    loop = virtual_time_loop()
    try:
        assert loop.run_until_complete(main()) == "CancelledError"
    finally:
        loop.close()


def test_review_a_cancellation_swallowed_between_pulls_still_gives_the_timeout() -> None:
    """The consumer swallows a cancellation between two pulls without ``uncancel()`` (count
    0 -> 1): the second pull, cut by ``idle``, still raises ``StreamTimeoutError``, as
    ``asyncio.timeout`` entered there would raise ``TimeoutError``, and the count stays 1."""

    async def main() -> tuple[str, int]:
        task = asyncio.current_task()
        assert task is not None
        stream = with_deadline(_cleanup_after_the_cut([]), None, idle=1)
        assert await anext(stream) == 0
        asyncio.get_running_loop().call_soon(task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)  # (swallowed: bad practice, but timeouts must cope)
        assert task.cancelling() == 1
        try:
            await anext(stream)
        except BaseException as exc:
            return type(exc).__name__, task.cancelling()
        return "item", task.cancelling()

    loop = virtual_time_loop()
    try:
        assert loop.run_until_complete(main()) == ("StreamTimeoutError", 1)
    finally:
        loop.close()


def test_review_a_zero_idle_cuts_at_the_first_wait_even_when_the_timer_of_an_earlier_pull_runs_late() -> None:
    """``idle=0`` on a clock that moves while the consumer works between pulls (a clock set
    on the loop instance, moved by hand): the second pull returns without waiting, so its
    timer runs during the third pull, which waits at a ``sleep(0)``. That timer must cut the
    third pull at that wait (its bound has passed on the clock), not re-arm a turn later."""

    async def source() -> AsyncGenerator[int, None]:
        yield 0
        yield 1  # no wait
        await asyncio.sleep(0)
        yield 2
        await asyncio.sleep(0)
        yield 3

    now = [100.0]

    async def main() -> list[object]:
        got: list[object] = []
        try:
            async for item in with_deadline(source(), None, idle=0):
                got.append(item)
                now[0] += 0.001  # the consumer's work: the clock moves on, the loop does not turn
        except StreamTimeoutError as exc:
            got.append(exc.limit)
        return got

    loop = asyncio.new_event_loop()
    loop.time = lambda: now[0]  # type: ignore[method-assign]
    try:
        assert loop.run_until_complete(main()) == [0, 1, "idle"]
    finally:
        loop.close()


def test_review_a_pull_from_another_loop_changes_nothing_of_the_stream() -> None:
    """A stream with ``idle`` pulled once on loop 1, then on loop 2 (loop 1 closed): the pull
    on loop 2 raises ``RuntimeError`` before it touches anything, so it neither arms loop 1's
    timer (``Event loop is closed`` before) nor closes the source from the wrong loop."""
    closed: list[str] = []

    async def src() -> AsyncGenerator[int, None]:
        try:
            yield 0
            await asyncio.sleep(3600)
            yield 1  # pragma: no cover (never reached)
        finally:
            closed.append("closed")

    stream = with_deadline(src(), 100, idle=5)
    loop1 = virtual_time_loop()
    try:
        assert loop1.run_until_complete(anext(stream)) == 0
    finally:
        loop1.close()
    loop2 = virtual_time_loop()
    try:
        with pytest.raises(RuntimeError, match="event loop of its first pull"):
            loop2.run_until_complete(anext(stream))
    finally:
        loop2.close()
    assert closed == []


class Forwarding:
    """A class-based source with ``asend``/``athrow`` that counts each call it gets."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.closes = 0

    def __aiter__(self) -> Forwarding:
        return self

    async def __anext__(self) -> int:
        return 0

    def asend(self, value: object) -> Coroutine[Any, Any, int]:
        """Note the call; the item it returns is the next one."""
        self.calls.append("asend")
        return self.__anext__()

    def athrow(self, exc: BaseException) -> Coroutine[Any, Any, int]:
        """Note the call; the source handles the exception and returns its next item."""
        self.calls.append("athrow")
        return self.__anext__()

    async def aclose(self) -> None:
        """Count the close."""
        self.closes += 1


@ANYIO
@pytest.mark.parametrize("kind", ["asend", "athrow"])
async def test_ci_asend_or_athrow_after_the_deadline_asks_nothing_of_the_source(kind: str) -> None:
    """An ``asend``/``athrow`` made once the deadline has passed raises the timeout at once and
    never calls the source's ``asend``/``athrow`` (trio created that call and dropped it
    unawaited: CPython 3.13 warns "coroutine method 'athrow' ... was never awaited"). The
    source is closed once."""
    source = Forwarding()
    stream = with_deadline(source, 1)
    assert await anext(stream) == 0
    await anyio.sleep(2)
    with pytest.raises(StreamTimeoutError) as caught:
        await (stream.asend("v") if kind == "asend" else stream.athrow(KeyError("k")))
    assert (caught.value.limit, caught.value.items, source.calls, source.closes) == ("deadline", 1, [], 1)


@ANYIO
@pytest.mark.parametrize("kind", ["asend", "athrow"])
async def test_ci_asend_or_athrow_within_the_deadline_is_forwarded_once(kind: str) -> None:
    """Within the deadline, the same call reaches the source exactly once."""
    source = Forwarding()
    stream = with_deadline(source, 5)
    assert await anext(stream) == 0
    assert await (stream.asend("v") if kind == "asend" else stream.athrow(KeyError("k"))) == 0
    await stream.aclose()
    assert (source.calls, source.closes) == ([kind], 1)


# Found by the review of issues 14 and 15 ---------------------------------------------------------


def test_review_a_cut_on_a_coarse_clock_is_never_reported_before_its_bound() -> None:
    """A timer run 3 ms early (the loop's clock resolution 5 ms, another timer waking the loop
    just before the bound): the first-item limit of 0.1 s cuts then, as rule 4 says, but
    the error's ``waited`` is not shorter than the limit and the outcome's ``late`` is not
    negative (it was -2.6 ms, ``waited`` 0.097 s)."""

    async def main() -> tuple[float | None, float | None]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.097, lambda: None)  # wakes the loop 3 ms before the bound
        stream = with_deadline(stalled(), None, first_item=0.1)
        with pytest.raises(StreamTimeoutError) as info:
            await anext(stream)
        assert stream.outcome is not None
        return info.value.waited, stream.outcome.late

    waited, late = run_virtual(main(), clock_resolution=0.005)
    assert waited is not None
    assert late is not None
    assert (waited >= 0.1, late >= 0) == (True, True)


async def stalled() -> AsyncGenerator[int, None]:
    await asyncio.sleep(3600)
    yield 1  # pragma: no cover (cut)


def sources_left_for_the_collector(main: Callable[[], Coroutine[Any, Any, None]]) -> list[object]:
    """Run ``main`` on a virtual-time loop with the collector off (warnings muted); return
    the stream sources that only the cycle collector could free afterwards."""
    gc.collect()
    gc.disable()
    logging.disable(logging.WARNING)
    try:
        run_virtual(main())
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return [o for o in gc.garbage if isinstance(o, Source)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        logging.disable(logging.NOTSET)
        gc.enable()


def test_review_a_source_that_goes_on_after_its_cut_leaves_no_reference_cycle() -> None:
    """A source that catches the cut and yields: the stream's error (kept by its outcome)
    has a traceback through the watch's frame, which held the watch and so the source and
    the outcome: a cycle only the collector could free. Now none is left."""

    async def swallows() -> AsyncGenerator[int, None]:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)
        yield 1

    async def main() -> None:
        stream = with_deadline(swallows(), 0.05)
        with pytest.raises(StreamTimeoutError):
            async for _ in stream:
                pass
        del stream

    assert sources_left_for_the_collector(main) == []


@pytest.mark.parametrize("how", ["aclose", "exhausted"])
def test_review_a_close_that_raises_leaves_no_reference_cycle(how: str) -> None:
    """A source whose close raises, the stream closed by ``aclose()`` or exhausted: the close
    error (kept by the outcome) had a traceback through frames holding the source (the
    source's own close, the backend's, ``aclose``), a cycle only the collector could free."""

    class BadClose:
        def __init__(self) -> None:
            self.left = 2

        def __aiter__(self) -> BadClose:
            return self

        async def __anext__(self) -> int:
            self.left -= 1
            if self.left < 0:
                raise StopAsyncIteration
            return self.left

        async def aclose(self) -> None:
            raise ValueError("close failed")

    async def main() -> None:
        stream = with_deadline(BadClose(), 60)
        with pytest.raises(ValueError, match="close failed"):
            if how == "aclose":
                await anext(stream)
                await stream.aclose()
            else:
                async for _ in stream:
                    pass
        del stream

    assert sources_left_for_the_collector(main) == []
