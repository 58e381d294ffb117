"""Leaks, load and soak (issue 6, part 3).

Short versions run in the normal suite; ``STREAM_DEADLINE_LONG=1`` (``nox -s soak``) runs the
long ones: 100,000 streams per ending, 10,000 concurrent streams, 1,000,000 items.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import random
import tracemalloc
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio.testing

from stream_deadline import StreamTimeoutError, with_deadline
from support import STALL, Record, scripted, virtual_time_loop
from test_model import Schedule, model, run

LONG = os.environ.get("STREAM_DEADLINE_LONG") == "1"
STREAMS = 100_000 if LONG else 2_000
LOAD = 10_000 if LONG else 1_000
SOAK = 1_000_000 if LONG else 100_000

BACKENDS = {
    "asyncio": lambda: {"backend": "asyncio", "backend_options": {"loop_factory": virtual_time_loop}},
    "trio": lambda: {
        "backend": "trio",
        "backend_options": {"clock": trio.testing.MockClock(autojump_threshold=0)},
    },
}
ENDINGS = {
    "asyncio": ["complete", "timeout", "aclose", "abandoned"],
    "trio": ["complete", "timeout", "aclose"],
}


def live_timers() -> int:
    """Timer handles not cancelled on the running asyncio loop."""
    loop = asyncio.get_running_loop()
    return sum(not h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]


async def one_stream(ending: str) -> None:
    """Run one stream to the given ending."""
    record = Record()
    if ending == "complete":
        stream = with_deadline(scripted([0.5, 0.5], record), 10, idle=5, first_item=5)
        assert [i async for i in stream] == [0, 1]
    elif ending == "timeout":
        stream = with_deadline(scripted([0.5, STALL], record), 2, idle=5)
        with pytest.raises(StreamTimeoutError):
            async for _ in stream:
                pass
    elif ending == "aclose":
        stream = with_deadline(scripted([0.5, 0.5, 0.5], record), 10, idle=5)
        assert await anext(stream) == 0
        await stream.aclose()
    else:  # abandoned: dropped mid-stream without closing, left to the garbage collector
        stream = with_deadline(scripted([0.5, 0.5, 0.5], record), 10, idle=5)
        assert await anext(stream) == 0
        del stream
    if ending != "abandoned":
        assert record.closes == 1


async def batch(ending: str, n: int) -> None:
    for _ in range(n):
        await one_stream(ending)
    gc.collect()
    for _ in range(3):  # let the loop's async-generator finalizers run
        await anyio.lowlevel.checkpoint()


async def leak_check(backend: str, ending: str) -> dict[str, Any]:
    """Warm up, then measure memory and leftovers around STREAMS more streams."""
    await batch(ending, 200)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await batch(ending, STREAMS)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    facts: dict[str, Any] = {"growth": after - before}
    if backend == "asyncio":
        facts["timers"] = live_timers()
        facts["tasks"] = len(asyncio.all_tasks()) - 1
        task = asyncio.current_task()
        assert task is not None
        facts["cancelling"] = task.cancelling()
    facts["deadline"] = anyio.current_effective_deadline()
    return facts


@pytest.mark.parametrize(("backend", "ending"), [(b, e) for b in sorted(BACKENDS) for e in ENDINGS[b]])
def test_streams_leave_nothing_behind(backend: str, ending: str, caplog: pytest.LogCaptureFixture) -> None:
    """After STREAMS streams that complete, time out, are closed early or (asyncio only: trio
    warns about any dropped async generator by design) are abandoned and garbage-collected:
    no live timer handle and no task is left on the loop, no cancel scope is left around the
    consumer, no cancellation is pending, nothing is logged by asyncio ("Task was destroyed",
    "never awaited", exceptions in finalizers), no warning is raised (the suite turns warnings
    and unraisable exceptions into errors), and traced memory grows by less than 64 KiB: it
    does not grow with the number of streams."""
    with caplog.at_level(logging.WARNING):
        facts = anyio.run(leak_check, backend, ending, **BACKENDS[backend]())
    assert [r.getMessage() for r in caplog.records] == []
    assert facts.pop("growth") < 64 * 1024
    expected: dict[str, Any] = {"deadline": math.inf}
    if backend == "asyncio":
        expected |= {"timers": 0, "tasks": 0, "cancelling": 0}
    assert facts == expected


def random_schedule(rng: random.Random) -> Schedule:
    """A schedule drawn like ``test_model.schedules``, from a seeded ``random.Random``."""

    def half() -> float | None:
        return None if rng.random() < 0.4 else rng.randint(0, 12) + 0.5

    delays = [STALL if rng.random() < 0.15 else float(rng.randint(0, 5)) for _ in range(rng.randint(0, 8))]
    return Schedule(
        delays=delays,
        pauses=[rng.randint(0, 4) for _ in range(9)],
        hops=[rng.random() < 0.5 for _ in range(10)],
        wait=rng.randint(0, 3),
        seconds=None if rng.random() < 0.2 else rng.randint(0, 25) + 0.5,
        shared=rng.random() < 0.3,
        first_item=half(),
        idle=half(),
        cancel_at=None if rng.random() < 0.6 else rng.randint(0, 30) + 0.25,
        stop=rng.random() < 0.2,
        progress=None if rng.random() < 0.5 else tuple(rng.random() < 0.6 for _ in delays),
    )


async def load(schedules: list[Schedule], offsets: list[int]) -> tuple[list[Any], float]:
    """Run every schedule concurrently on one loop, each starting ``offsets[i]`` seconds in;
    return the results in order and the virtual time it all took."""
    start = anyio.current_time()
    results: list[Any] = [None] * len(schedules)

    async def one(i: int, s: Schedule) -> None:
        await anyio.sleep(offsets[i])
        results[i] = await run(s)

    async with anyio.create_task_group() as tg:
        for i, s in enumerate(schedules):
            tg.start_soon(one, i, s)
    return results, anyio.current_time() - start


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_many_concurrent_streams_each_end_as_the_model_says(backend: str) -> None:
    """LOAD streams with mixed limits, shared deadlines, pauses, task hops, outside
    cancellations and ``on_timeout``, started at staggered times (0-30 s), run concurrently
    on one loop over more than 60 s of
    virtual time, half of them with ``progress``: every single one ends exactly as
    ``test_model.model`` says (what the consumer saw and when, items and their times, the
    close of the source, the outcome)."""
    rng = random.Random(606)  # noqa: S311 (reproducible schedules)
    schedules: list[Schedule] = []
    while len(schedules) < LOAD:
        s = random_schedule(rng)
        if model(s) is not None:  # (None: a schedule that nothing would ever end)
            schedules.append(s)
    offsets = [rng.randint(0, 30) for _ in schedules]
    results, span = anyio.run(load, schedules, offsets, **BACKENDS[backend]())
    assert span >= 60
    wrong = []
    for s, (actual, same_error) in zip(schedules, results, strict=True):
        expected = model(s)
        assert expected is not None
        nan = math.isnan(actual.closed_at) and math.isnan(expected.closed_at)
        got = (actual.seen, actual.items, nan or actual.closed_at, actual.summary, same_error)
        want = (expected.seen, expected.items, nan or expected.closed_at, expected.summary, True)
        if got != want:
            wrong.append((s, got, want))
    assert wrong[:3] == []


async def soak(n: int, checkpoint: Callable[[], Awaitable[None]]) -> tuple[int, int, int]:
    """Pull ``n`` items through one limited stream; traced memory after 10 % and at the end."""

    async def endless() -> AsyncGenerator[int, None]:
        i = 0
        while True:
            if i % 64 == 0:
                await checkpoint()
            yield i
            i += 1

    stream = with_deadline(endless(), 1e9, idle=60, first_item=60)
    count = 0
    tracemalloc.start()
    try:
        async with stream:
            async for item in stream:
                assert item == count
                count += 1
                if count == n // 10:
                    gc.collect()
                    early = tracemalloc.get_traced_memory()[0]
                if count == n:
                    break
        gc.collect()
        late = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return count, early, late


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_soak_one_stream_many_items_flat_memory(backend: str) -> None:
    """SOAK items through one stream with every limit armed (the watchdog or a cancel scope on
    every pull, a real checkpoint every 64 items): every item arrives in order, and traced
    memory at the end is within 32 KiB of what it was after the first 10 %."""
    checkpoint = asyncio.sleep if backend == "asyncio" else trio.lowlevel.checkpoint

    async def sleep0() -> None:
        await checkpoint(0) if backend == "asyncio" else await checkpoint()  # type: ignore[call-arg]

    count, early, late = anyio.run(soak, SOAK, sleep0, **BACKENDS[backend]())
    assert count == SOAK
    assert late - early < 32 * 1024


def test_a_timed_out_stream_leaves_no_reference_cycle() -> None:
    """On asyncio, 200 streams cut by their deadline leave nothing for the cyclic garbage
    collector: every object of a cut (the error, its traceback's frames, the stream) is freed
    by reference counting. When thousands of streams are cut at once, garbage in cycles
    triggers collections of the whole heap in the middle of the storm."""

    async def stalled() -> AsyncGenerator[int, None]:
        yield 0
        await asyncio.Event().wait()
        yield 1  # pragma: no cover (never reached)

    async def cut_once() -> None:
        with pytest.raises(StreamTimeoutError):
            async for _ in with_deadline(stalled(), 1):
                pass

    async def main() -> int:
        await cut_once()  # (warm-up: what the first cut creates once and keeps)
        gc.collect()
        gc.disable()
        try:
            await asyncio.gather(*(cut_once() for _ in range(200)))
            return gc.collect()
        finally:
            gc.enable()

    loop = virtual_time_loop()
    try:
        assert loop.run_until_complete(main()) == 0
    finally:
        loop.close()
