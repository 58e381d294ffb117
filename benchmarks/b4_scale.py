"""B4: many concurrent deadlined streams on one event loop.

For ``n`` streams at once (10,000 and 100,000 in the full run):

* **memory per stream**: :mod:`tracemalloc`'s traced memory with ``n`` streams open and
  suspended between two items (the watchdog armed), minus the same with ``n`` bare sources
  in the same state, divided by ``n``;
* **time to create and to close**: ``with_deadline()`` itself, the first pull (which starts
  the clock and arms the watchdog) and ``aclose()``, each net of what the bare source costs
  for the same step, per stream; once as is, once with the garbage collector paused (with
  100,000 streams alive, the collections that allocation triggers are a large share);
* **lateness**: ``n`` consumer tasks on stalled sources, all cut by their deadline; p50/p99/max
  of (error caught - (start + deadline)). The deadline grows with ``n`` (1 s per 25,000
  streams, at least 1 s) so that every consumer has started before the first one is due; a
  plain ``asyncio.timeout`` around each consumer's loop on the same loop gives the floor.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from common import Backend, median, pass_through, percentile, run_on

from stream_deadline import StreamTimeoutError, with_deadline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["Scale", "run_b4"]

LONG: Final = 3600.0


@dataclass(slots=True)
class Scale:
    """The results for ``n`` streams on one backend."""

    backend: Backend
    n: int
    bytes_b: float = 0.0
    """Memory per stream, ``with_deadline(src, seconds)``."""
    bytes_c: float = 0.0
    """Memory per stream with all three limits."""
    create_us: float = 0.0
    """``with_deadline()`` per stream, microseconds."""
    first_pull_us: float = 0.0
    """The first pull, net of the bare source's first pull."""
    close_us: float = 0.0
    """``aclose()`` between two items, net of the bare source's ``aclose()``."""
    create_close_nogc_us: float = 0.0
    """The three together with the garbage collector paused: the library's own share."""
    gc_us: float = 0.0
    """Of the three together (collector running), the time spent in collections, per stream."""
    gc_full: float = 0.0
    """How many full (generation 2) collections ran meanwhile."""
    floors: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """The same three for each floor, ``"minimal"`` (``_minimal``) and ``"skeleton"``
    (``_Skeleton``): microseconds, of which in collections, and how many full ones."""
    deadline: float = 0.0
    lateness: dict[str, float] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)

    @property
    def create_close_us(self) -> float:
        """Everything a stream costs on top of its source: create, first pull, close."""
        return self.create_us + self.first_pull_us + self.close_us


async def stalled(forever: asyncio.Future[None]) -> AsyncIterator[int]:
    """One item, then a wait that never ends (until cancelled)."""
    yield 0
    await forever


def _sources(n: int) -> list[AsyncIterator[int]]:
    loop = asyncio.get_running_loop()
    return [stalled(loop.create_future()) for _ in range(n)]


async def _memory(n: int, wrap: Callable[[AsyncIterator[int]], AsyncIterator[int]]) -> int:
    """Traced bytes held by ``n`` wrapped sources, each suspended after its first item."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        streams = [wrap(src) for src in _sources(n)]
        for stream in streams:
            await anext(stream)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    for stream in streams:
        await stream.aclose()  # type: ignore[attr-defined]
    return held


class _Collections:
    """Time spent in garbage collections while registered, and how many were full ones."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.full += info["generation"] == 2  # (2: the oldest generation)


class _SkeletonState:
    """What a timer must reach to cut a pull: the deadline, the pulling task, the source."""

    __slots__ = ("deadline_at", "puller", "source")


class _Skeleton:
    """The floor of create + close: the objects a deadlined stream holds, and none of the work.

    Per stream: this object (the handle the user holds, with an ``aclose()`` and a ``__anext__``
    of its own), a pass-through async generator (the per-item path that B1 needs; asyncio keeps
    a weak reference to every async generator it runs), a state object for the timer to reach
    (not the handle itself: the generator refers to that state, and a timer holding the handle
    would keep an abandoned stream's generator from being finalized, and its source open), and
    one entry in a heap of timers. No checks, no clock read per pull, no cancellation handling,
    and the entry is left behind at close.
    """

    __slots__ = ("_gen", "_state")

    def __init__(self, source: AsyncIterator[int], timers: list[tuple[float, _SkeletonState]]) -> None:
        state = self._state = _SkeletonState()
        state.source = source
        state.puller = None
        state.deadline_at = time.monotonic() + LONG
        heapq.heappush(timers, (state.deadline_at, state))
        self._gen = pass_through(source)

    def __anext__(self) -> Awaitable[int]:
        return self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()
        await self._state.source.aclose()  # type: ignore[attr-defined]


def _minimal(source: AsyncIterator[int]) -> AsyncIterator[int]:
    """The least any limit holds per stream: a pass-through generator that owns its source, and
    one object besides it (something for a timer to reach: an async generator takes no
    attributes). No handle, no timer entry, no work; what the user holds is the generator."""
    state = _SkeletonState()
    state.source = source
    state.puller = None
    state.deadline_at = LONG
    return _owning(source, state)


async def _owning(source: AsyncIterator[int], state: _SkeletonState) -> AsyncIterator[int]:
    try:
        async for item in source:
            yield item
    finally:
        await state.source.aclose()  # type: ignore[attr-defined]


async def _timings(
    n: int, collections: _Collections | None = None, *, floor: str = ""
) -> tuple[float, float, float]:
    """Per stream, seconds: ``with_deadline()`` (or a ``floor``: ``"skeleton"``, ``"minimal"``),
    first pull (net), ``aclose()`` (net); the collections that ran meanwhile go to ``collections``."""
    bare = _sources(n)
    gc.collect()
    t0 = time.perf_counter()
    for src in bare:
        await anext(src)
    t1 = time.perf_counter()
    for src in bare:
        await src.aclose()  # type: ignore[attr-defined]
    t2 = time.perf_counter()
    bare_pull, bare_close = t1 - t0, t2 - t1
    del bare

    sources = _sources(n)
    timers: list[tuple[float, _SkeletonState]] = []
    gc.collect()
    if collections is not None:
        gc.callbacks.append(collections)
    try:
        t0 = time.perf_counter()
        if floor == "skeleton":
            streams: list[Any] = [_Skeleton(src, timers) for src in sources]
        elif floor == "minimal":
            streams = [_minimal(src) for src in sources]
        else:
            streams = [with_deadline(src, LONG) for src in sources]
        t1 = time.perf_counter()
        for stream in streams:
            await anext(stream)
        t2 = time.perf_counter()
        for stream in streams:
            await stream.aclose()
        t3 = time.perf_counter()
    finally:
        if collections is not None:
            gc.callbacks.remove(collections)
    return (t1 - t0) / n, (t2 - t1 - bare_pull) / n, (t3 - t2 - bare_close) / n


async def _lateness(n: int, deadline: float, *, floor: bool) -> list[float]:
    """Lateness in ms of ``n`` consumers on stalled sources, all cut by their deadline.

    The cutter is ``with_deadline`` or, for the floor, ``asyncio.timeout`` around the consumer's loop.
    """
    late: list[float] = []

    async def consume(src: AsyncIterator[int]) -> None:
        start = time.monotonic()
        try:
            if floor:
                async with asyncio.timeout(deadline):
                    async for _ in src:
                        pass
            else:
                async for _ in with_deadline(src, deadline):
                    pass
        except TimeoutError:  # StreamTimeoutError included
            late.append((time.monotonic() - start - deadline) * 1e3)

    async with asyncio.TaskGroup() as tg:
        for src in _sources(n):
            tg.create_task(consume(src))
    if len(late) != n:
        raise AssertionError(f"{n - len(late)} of {n} streams were not cut")
    return late


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": percentile(values, 100)}


def _median_stats(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: median([r[key] for r in runs]) for key in ("p50", "p99", "max")}


def run_b4(backend: Backend, n: int, reps: int, log: Callable[[str], Any] = print) -> Scale:
    """Measure ``n`` concurrent streams on ``backend`` (asyncio or uvloop)."""
    row = Scale(backend, n, deadline=max(1.0, n / 25_000))
    base = run_on(backend, lambda: _memory(n, lambda s: s))
    row.bytes_b = (run_on(backend, lambda: _memory(n, lambda s: with_deadline(s, LONG))) - base) / n
    row.bytes_c = (
        run_on(backend, lambda: _memory(n, lambda s: with_deadline(s, LONG, first_item=LONG, idle=LONG)))
        - base
    ) / n
    kinds = ("", "skeleton", "minimal")
    collected: dict[str, list[_Collections]] = {kind: [] for kind in kinds}
    timings: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in kinds}
    for _ in range(reps):  # alternating, round by round
        for kind in kinds:
            c = _Collections()
            timings[kind].append(run_on(backend, lambda c=c, kind=kind: _timings(n, c, floor=kind)))
            collected[kind].append(c)
    ours = timings[""]
    row.create_us, row.first_pull_us, row.close_us = (median([t[k] for t in ours]) * 1e6 for k in range(3))
    row.gc_us = median([c.seconds for c in collected[""]]) / n * 1e6
    row.gc_full = median([c.full for c in collected[""]])
    for kind in kinds[1:]:
        row.floors[kind] = (
            median([sum(t) for t in timings[kind]]) * 1e6,
            median([c.seconds for c in collected[kind]]) / n * 1e6,
            median([c.full for c in collected[kind]]),
        )
    paused = []
    for _ in range(reps):
        gc.disable()
        try:
            paused.append(sum(run_on(backend, lambda: _timings(n))) * 1e6)
        finally:
            gc.enable()
    row.create_close_nogc_us = median(paused)
    runs, floors = [], []
    for _ in range(reps):
        runs.append(_stats(run_on(backend, lambda: _lateness(n, row.deadline, floor=False))))
        floors.append(_stats(run_on(backend, lambda: _lateness(n, row.deadline, floor=True))))
    row.lateness, row.floor = _median_stats(runs), _median_stats(floors)
    log(
        f"  B4 {backend:8} n={n:<7} mem {row.bytes_b:6.0f} B (b) {row.bytes_c:6.0f} B (c) | create"
        f" {row.create_us:5.2f} + first pull {row.first_pull_us:5.2f} + close {row.close_us:5.2f}"
        f" = {row.create_close_us:5.2f} us ({row.create_close_nogc_us:5.2f} without GC; collections"
        f" {row.gc_us:.2f} us, {row.gc_full:g} full; floors:"
        + "".join(
            f" {k} {us:.2f} us ({gc_us:.2f} in collections, {full:g} full)"
            for k, (us, gc_us, full) in row.floors.items()
        )
        + ")"
        f" | lateness ms p50 {row.lateness['p50']:.1f} p99 {row.lateness['p99']:.1f}"
        f" max {row.lateness['max']:.1f}"
        f" (floor p99 {row.floor['p99']:.1f})"
    )
    return row


_ = StreamTimeoutError  # documented above as caught through TimeoutError
