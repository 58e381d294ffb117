"""Many streams on one event loop: how late their deadlines fire, and what each stream holds.

Lateness is read on the real clock (``time.monotonic()``): when the consumer caught the timeout,
minus (its first pull + the deadline). The floor cuts the same workload with a timeout bound to
the consumer's task, ``asyncio.timeout`` (``trio.fail_after``) around its whole loop: right only
because one task makes every pull, it is what one timer per stream achieves on the same loop
under the same load.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import statistics
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio
from common import OURS, Row, check_on_chunk, numbers, run_on, stats

from stream_deadline import with_deadline

FLOOR = "floor: one-task timeout"
Source = Callable[[int, list[float]], AsyncIterator[int]]
"""``source(i, closed)``: the source of consumer ``i``, noting in ``closed[i]`` when it closes."""


async def stall(backend: str) -> None:
    """Wait until cancelled."""
    if backend == "trio":
        await trio.sleep_forever()
    else:
        await asyncio.get_running_loop().create_future()


async def chatty(backend: str, kind: str, i: int, closed: list[float]) -> AsyncIterator[int]:
    """Babbling: a chunk every 8-12 ms (fixed per stream), forever. Stalled: three, then silence,
    as a server that hangs while its keep-alives hold the socket open."""
    sleep = trio.sleep if backend == "trio" else asyncio.sleep
    try:
        n = 0
        while kind == "babbling" or n < 3:
            await sleep(0.008 + 0.004 * (i * 7919 % 1000) / 1000)
            yield n
            n += 1
        await stall(backend)
    finally:
        closed[i] = time.monotonic()


async def hung(backend: str, i: int, closed: list[float]) -> AsyncIterator[int]:
    """One item at once, then silence."""
    try:
        yield 0
        await stall(backend)
    finally:
        closed[i] = time.monotonic()


async def pull_all(backend: str, cutter: str, src: AsyncIterator[int], seconds: float) -> None:
    """Drain ``src`` under ``cutter``: with_deadline, check-on-chunk or the floor."""
    if cutter == FLOOR and backend == "trio":
        with trio.fail_after(seconds):
            async for _ in src:
                pass
    elif cutter == FLOOR:
        async with asyncio.timeout(seconds):
            async for _ in src:
                pass
    else:
        async for _ in (with_deadline if cutter == "with_deadline" else check_on_chunk)(src, seconds):
            pass


async def cut_all(backend: str, n: int, source: Source, deadline: float, cutter: str) -> dict[str, Any]:
    """Start ``n`` consumers at once; note when each made its first pull, caught its timeout, and
    saw its source closed. What is not cut 1 s after the last deadline is cancelled, and not counted."""
    start, cut, closed = [0.0] * n, [0.0] * n, [0.0] * n

    async def consume(i: int) -> None:
        src = source(i, closed)
        start[i] = time.monotonic()
        try:
            await pull_all(backend, cutter, src, deadline)
        except (TimeoutError, trio.TooSlowError):  # StreamTimeoutError is a TimeoutError
            cut[i] = time.monotonic()

    bound = deadline + 1 + n / 10_000  # a consumer takes up to ~50 us to start
    if backend == "trio":
        with trio.move_on_after(bound):
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(consume, i)
        await trio.sleep(0.05)  # time for finalizers to close what check-on-chunk left behind
    else:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(bound), asyncio.TaskGroup() as tg:
                for i in range(n):
                    tg.create_task(consume(i))
        await asyncio.sleep(0.05)

    def late(end: list[float]) -> list[float]:  # ms past the deadline, of the streams cut
        return [(e - s - deadline) * 1e3 for s, c, e in zip(start, cut, end, strict=True) if c and e]

    ordered = sorted(late(cut))
    return {
        "backend": backend,
        "n": n,
        "deadline": deadline,
        "cutter": cutter,
        "cut": len(ordered),
        "late": stats(ordered),
        "closed_p99": stats(late(closed))["p99"],
        "spread": max(start) - min(start),
        "cdf": [ordered[k * (len(ordered) - 1) // 200] for k in range(201)] if ordered else [],
    }


def compare(
    backend: str, cut: Callable[[str], Any], cutters: tuple[str, ...], reps: int, **same: str
) -> list[Row]:
    """One row per cutter, ``cut(cutter)`` run ``reps`` times, the cutters taking turns: medians,
    the fewest cut, the widest spread, the last run's quantiles; and ``same``."""
    runs: dict[str, list[dict[str, Any]]] = {cutter: [] for cutter in cutters}
    for _ in range(reps):
        for cutter, done in runs.items():
            done.append(run_on(backend, functools.partial(cut, cutter)))
    return [
        {
            **done[-1],
            **same,
            "cut": min(run["cut"] for run in done),
            "late": {p: statistics.median(run["late"][p] for run in done) for p in ("p50", "p99", "max")},
            "closed_p99": statistics.median(run["closed_p99"] for run in done),
            "spread": max(run["spread"] for run in done),
        }
        for done in runs.values()
    ]


def precision(backend: str, n: int, reps: int) -> list[Row]:
    """``n`` babbling, then ``n`` stalled streams under a 1 s deadline, cut by each cutter."""
    rows = []
    for kind in ("babbling", "stalled"):
        cut = functools.partial(cut_all, backend, n, functools.partial(chatty, backend, kind), 1.0)
        rows += compare(backend, cut, ("with_deadline", "check-on-chunk", FLOOR), reps, kind=kind)
    return rows


def storm(backend: str, n: int, reps: int) -> list[Row]:
    """``n`` streams that all stall at once, under a deadline that passes after all have started."""
    cut = functools.partial(cut_all, backend, n, functools.partial(hung, backend), max(1.0, n / 20_000))
    return compare(backend, cut, ("with_deadline", FLOOR), reps, kind="hung")


def memory(backend: str, n: int) -> list[Row]:
    """Bytes per stream, net of its source: ``n`` streams open, each suspended after one item."""

    async def held(wrap: Callable[[AsyncIterator[int]], AsyncIterator[int]]) -> int:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        streams = [wrap(numbers(2)) for _ in range(n)]
        for stream in streams:
            await anext(stream)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]
        return used

    bare = run_on(backend, functools.partial(held, lambda s: s))
    return [
        {
            "backend": backend,
            "name": name,
            "bytes": (run_on(backend, functools.partial(held, wrap)) - bare) / n,
        }
        for name, wrap in OURS.items()
    ]
