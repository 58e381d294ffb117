"""What the benchmarks share: the backends, timed rounds, the two simplest wrappers, statistics."""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
import time
from typing import TYPE_CHECKING, Any, TypeVar

import trio
import uvloop

from stream_deadline import StreamTimeoutError, with_deadline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence

T = TypeVar("T")
Row = dict[str, Any]
"""One result, as it travels from a section's interpreter to the report (JSON)."""

BACKENDS = ("asyncio", "uvloop", "trio")
LONG = 60.0
"""A limit that never fires: what is measured is the bookkeeping alone."""
OURS = {  # the two configurations of with_deadline every section measures
    "with_deadline: deadline": lambda s: with_deadline(s, LONG),
    "with_deadline: all three limits": lambda s: with_deadline(s, LONG, first_item=LONG, idle=LONG),
}


def run_on(backend: str, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` in a fresh event loop of ``backend``, after a full garbage collection."""
    gc.collect()
    if backend == "trio":
        return trio.run(main)
    factory = uvloop.new_event_loop if backend == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


async def numbers(n: int) -> AsyncIterator[int]:
    """A source that never blocks: ``n`` integers, no await."""
    for i in range(n):
        yield i


async def pass_through(source: AsyncIterator[T]) -> AsyncIterator[T]:
    """The cheapest wrapper there is, and the reference of every per-item ratio."""
    async for item in source:
        yield item


async def check_on_chunk(source: AsyncIterator[T], seconds: float) -> AsyncIterator[T]:
    """The blog's fix: compare the elapsed time whenever a chunk arrives (it cannot cut a stall)."""
    start = time.monotonic()
    async for item in source:
        if time.monotonic() - start > seconds:
            raise StreamTimeoutError("deadline", seconds, time.monotonic() - start, 0)
        yield item


async def drain(stream: AsyncIterator[object]) -> None:
    """Pull every item of ``stream``."""
    async for _ in stream:
        pass


def measure(
    backend: str, drains: dict[str, Callable[[int], Awaitable[object]]], n: int, rounds: int, **same: object
) -> list[Row]:
    """Time ``drain(n)`` for each of ``drains`` once per round, after a short warm-up, in a fresh
    loop of ``backend``; the order reverses every round, so that a slow phase of the shared
    machine hits every drain alike. The time is this process's CPU time: what the machine gives
    to other processes meanwhile is not counted. One row per drain: the median ns per item, and
    ``ratio``, the median over the rounds of its time over that of the first drain (the reference)."""

    async def timed_rounds() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {name: [] for name in drains}
        for warm_up in drains.values():
            await warm_up(min(n, 100))
        order = list(drains)
        for _ in range(rounds):
            for name in order:
                gc.collect()
                start = time.process_time()
                await drains[name](n)
                times[name].append((time.process_time() - start) / n)
            order.reverse()
        return times

    times = run_on(backend, timed_rounds)
    reference = times[next(iter(drains))]
    rows = []
    for name, ts in times.items():
        ratio = statistics.median(t / r for t, r in zip(ts, reference, strict=True))
        rows.append(
            {**same, "backend": backend, "name": name, "ns": statistics.median(ts) * 1e9, "ratio": ratio}
        )
    return rows


def find(rows: Sequence[Row], **match: object) -> Row:
    """The first of ``rows`` with those values."""
    return next(row for row in rows if all(row[key] == value for key, value in match.items()))


def stats(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of ``values`` (nearest rank; NaN when there are none)."""
    ordered = sorted(values) or [math.nan]

    def rank(q: float) -> float:
        return ordered[math.ceil(len(ordered) * q) - 1]

    return {"p50": rank(0.5), "p99": rank(0.99), "max": ordered[-1]}
