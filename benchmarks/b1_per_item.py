"""B1: the per-item cost of each approach on a source that never blocks.

Every approach drains the same async generator of ``n`` integers, which never awaits
anything: what is measured is the pure cost of the machinery around each ``__anext__``.
The repetitions interleave the approaches (one of each per round) so that a slow phase of
the shared machine hits them all alike; ratios are taken within a round, then the median.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiostream
import anyio
import trio
import trio_util
from aiter_timeouts import with_timeout
from common import Backend, check_on_chunk, median, pass_through, run_on, task_of

from stream_deadline import StreamTimeoutError, with_deadline

__all__ = ["BASELINE", "SKETCH", "WD_A", "WD_B", "WD_C", "PerItem", "run_b1"]

LONG: Final = 60.0
"""Every limit in B1: long enough never to fire, so only the bookkeeping is measured."""

BASELINE: Final = "pass-through generator"

Drain = Callable[[AsyncIterator[int]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PerItem:
    """The result for one approach on one backend."""

    backend: Backend
    approach: str
    ns_per_item: float
    """Median over the repetitions."""
    ratio: float
    """Median over the repetitions of (this approach / pass-through generator) in the same round."""


async def source(n: int) -> AsyncIterator[int]:
    """A source that never blocks: ``n`` integers, no await."""
    for i in range(n):
        yield i


async def asyncio_timeout_per_pull(src: AsyncIterator[int], seconds: float) -> AsyncIterator[int]:
    """``asyncio.timeout`` around every pull (the only way it bounds pulls made by several tasks)."""
    while True:
        try:
            async with asyncio.timeout(seconds):
                x = await anext(src)
        except StopAsyncIteration:
            return
        yield x


async def anyio_fail_after_per_pull(src: AsyncIterator[int], seconds: float) -> AsyncIterator[int]:
    """``anyio.fail_after`` around every pull."""
    while True:
        try:
            with anyio.fail_after(seconds):
                x = await anext(src)
        except StopAsyncIteration:
            return
        yield x


async def wait_for_per_chunk(src: AsyncIterator[int], seconds: float) -> AsyncIterator[int]:
    """Reproduce the pattern of langchain-openai's ``stream_chunk_timeout``.

    That is ``asyncio.wait_for`` on each ``__anext__``, and ``aclose()`` of the source on the way out.
    """
    try:
        while True:
            try:
                x = await asyncio.wait_for(src.__anext__(), timeout=seconds)
            except StopAsyncIteration:
                return
            yield x
    finally:
        await src.aclose()  # type: ignore[attr-defined]


async def trio_fail_after_per_pull(src: AsyncIterator[int], seconds: float) -> AsyncIterator[int]:
    """``trio.fail_after`` around every pull."""
    while True:
        try:
            with trio.fail_after(seconds):
                x = await anext(src)
        except StopAsyncIteration:
            return
        yield x


async def cancel_scope_per_pull(src: AsyncIterator[int], seconds: float) -> AsyncIterator[int]:
    """A bare ``trio.CancelScope`` with a deadline around every pull: trio's floor."""
    while True:
        try:
            with trio.CancelScope(deadline=trio.current_time() + seconds):
                x = await anext(src)
        except StopAsyncIteration:
            return
        yield x


class CoroutineAnext:
    """A design sketch, not a peer: the per-pull work of ``with_deadline`` (b) in a class whose
    ``__anext__`` is a coroutine, with no async generator per stream.

    It reads the clock, checks the deadline, notes the pulling task for a watchdog, awaits the
    source and counts the item, and nothing else (no watchdog, no cancellation handling): what a
    design without a generator of its own pays per item at least. B4's figures for
    create + close explain why one would want such a design, this row why it is not ours.
    """

    __slots__ = ("_deadline_at", "_items", "_loop", "_puller", "_source", "_started")

    def __init__(self, src: AsyncIterator[int], seconds: float) -> None:
        self._source = src
        self._loop = asyncio.get_running_loop()
        self._deadline_at = time.monotonic() + seconds
        self._items = 0.0
        self._puller: object = None
        self._started = 0.0

    def __aiter__(self) -> CoroutineAnext:
        return self

    async def __anext__(self) -> int:
        t = time.monotonic()
        if t >= self._deadline_at:
            raise StreamTimeoutError("deadline", LONG, t, int(self._items))
        self._started = t
        self._puller = task_of(self._loop)
        item = await self._source.__anext__()
        self._puller = None
        self._items += 1.0
        return item


SKETCH: Final = "sketch: coroutine __anext__, no generator"


def _over(wrap: Callable[[AsyncIterator[int]], AsyncIterator[int]]) -> Drain:
    async def drain(src: AsyncIterator[int]) -> None:
        async for _ in wrap(src):
            pass

    return drain


async def _bare(src: AsyncIterator[int]) -> None:
    async for _ in src:
        pass


async def _aiostream(src: AsyncIterator[int]) -> None:
    async with aiostream.stream.timeout(src, LONG).stream() as streamer:
        async for _ in streamer:
            pass


WD_A: Final = "with_deadline (a) no limits"
WD_B: Final = "with_deadline (b) deadline"
WD_C: Final = "with_deadline (c) deadline+first_item+idle"

_WITH_DEADLINE: Final[dict[str, Drain]] = {
    WD_A: _over(lambda s: with_deadline(s, None)),
    WD_B: _over(lambda s: with_deadline(s, LONG)),
    WD_C: _over(lambda s: with_deadline(s, LONG, first_item=LONG, idle=LONG)),
}

ASYNCIO_APPROACHES: Final[dict[str, Drain]] = {
    "bare async generator": _bare,
    BASELINE: _over(pass_through),
    "check-on-chunk (blog fix)": _over(lambda s: check_on_chunk(s, LONG)),
    "asyncio.timeout per pull": _over(lambda s: asyncio_timeout_per_pull(s, LONG)),
    "anyio.fail_after per pull": _over(lambda s: anyio_fail_after_per_pull(s, LONG)),
    "aiostream stream.timeout": _aiostream,
    "wait_for per chunk (langchain-openai)": _over(lambda s: wait_for_per_chunk(s, LONG)),
    "aiter-timeouts with_timeout": _over(lambda s: with_timeout(s, LONG, LONG)),
    SKETCH: _over(lambda s: CoroutineAnext(s, LONG)),
    **_WITH_DEADLINE,
}

TRIO_APPROACHES: Final[dict[str, Drain]] = {
    "bare async generator": _bare,
    BASELINE: _over(pass_through),
    "check-on-chunk (blog fix)": _over(lambda s: check_on_chunk(s, LONG, trio.current_time)),
    "trio.fail_after per pull": _over(lambda s: trio_fail_after_per_pull(s, LONG)),
    "trio.CancelScope per pull": _over(lambda s: cancel_scope_per_pull(s, LONG)),
    "trio-util iter_fail_after": _over(lambda s: trio_util.iter_fail_after(LONG, s)),
    "anyio.fail_after per pull": _over(lambda s: anyio_fail_after_per_pull(s, LONG)),
    **_WITH_DEADLINE,
}


async def _rounds(approaches: dict[str, Drain], n: int, reps: int) -> dict[str, list[float]]:
    """Drain ``n`` items through every approach, ``reps`` rounds; seconds per drain."""
    times: dict[str, list[float]] = {name: [] for name in approaches}
    for _ in range(reps):
        for name, drain in approaches.items():
            src = source(n)
            gc.collect()
            t0 = time.perf_counter()
            await drain(src)
            times[name].append(time.perf_counter() - t0)
    return times


def run_b1(backend: Backend, n: int, reps: int, log: Callable[[str], Any] = print) -> list[PerItem]:
    """Measure every approach of ``backend``; one row per approach."""
    approaches = TRIO_APPROACHES if backend == "trio" else ASYNCIO_APPROACHES

    async def main() -> dict[str, list[float]]:
        await _rounds(approaches, min(n, 2_000), 1)  # warm-up: imports, caches
        return await _rounds(approaches, n, reps)

    times = run_on(backend, main)
    base = times[BASELINE]
    rows = []
    for name, ts in times.items():
        row = PerItem(
            backend,
            name,
            median(ts) / n * 1e9,
            median([t / b for t, b in zip(ts, base, strict=True)]),
        )
        log(f"  B1 {backend:8} {name:44} {row.ns_per_item:9.0f} ns/item  {row.ratio:6.2f}x")
        rows.append(row)
    return rows
