"""B3: how late a 1 s deadline fires, on the real clock, with 1,000 streams on one loop.

Two kinds of stream, each run as 1,000 concurrent consumers:

* **babbling**: the source yields a chunk every ~10 ms (8-12 ms, fixed per stream) forever;
* **stalled**: the source yields three chunks, then waits forever (an SSE stream kept alive
  by comments that never reach the consumer looks exactly like this from above).

Each is cut by ``with_deadline(source, 1.0)`` and by the blog's check-on-chunk fix. Lateness
is measured on ``time.monotonic()`` from the moment the consumer starts iterating plus 1 s,
to (1) the moment the consumer catches the error and (2) the moment the source's ``finally``
runs. Check-on-chunk cannot cut a stalled stream: it is given ``stall_bound`` seconds, then
the run is cancelled and the streams it did not cut are counted. A third cutter, a plain
``asyncio.timeout`` (``trio.fail_after``) around the consumer's loop, gives the floor: what one
timer per stream achieves on the same loop under the same load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import trio
from common import Backend, check_on_chunk, median, percentile, run_on

from stream_deadline import with_deadline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["CUTTERS", "DEADLINE", "Lateness", "run_b3"]

DEADLINE: Final = 1.0
Kind = Literal["babbling", "stalled"]
Cutter = Literal["with_deadline", "check-on-chunk", "one-task timeout", "one-task timeout + one turn"]
CUTTERS: Final[tuple[Cutter, ...]] = (
    "with_deadline",
    "check-on-chunk",
    "one-task timeout",
    "one-task timeout + one turn",
)
"""``one-task timeout`` is the floor: ``asyncio.timeout`` / ``trio.fail_after`` around the whole
loop in the consumer, correct only because no other task ever pulls; it shows what the event
loop itself achieves with one timer per stream under the same load. ``+ one turn`` (asyncio
and uvloop only) adds the one loop turn that rule 7 costs every cut on asyncio: after its own
cancellation a stream must let a cancellation requested in the same tick land before it may
report a timeout, and an anyio scope delivers such a cancellation one turn later."""


@dataclass(slots=True)
class Lateness:
    """The lateness of one scenario on one backend, in milliseconds (medians over repetitions)."""

    backend: Backend
    kind: Kind
    cutter: Cutter
    streams: int
    cut: int
    """How many of the streams were cut by the deadline (median over repetitions)."""
    error: dict[str, float] = field(default_factory=dict)
    """p50/p99/max lateness of the error in the consumer."""
    source_finally: dict[str, float] = field(default_factory=dict)
    """p50/p99/max lateness of the source's ``finally``; only over the streams that were cut."""
    samples: list[float] = field(default_factory=list)
    """Every error lateness of the last repetition, for the chart."""


class _Record:
    """Real-clock timestamps of one run, indexed by stream."""

    def __init__(self, streams: int) -> None:
        self.start = [0.0] * streams
        self.error: list[float | None] = [None] * streams
        self.fin: list[float | None] = [None] * streams


def _interval(i: int) -> float:
    return 0.008 + 0.004 * ((i * 7919) % 1000) / 1000  # 8-12 ms, spread over the streams


def _source(
    kind: Kind, i: int, rec: _Record, sleep: Callable[[float], Awaitable[None]]
) -> AsyncIterator[int]:
    async def gen() -> AsyncIterator[int]:
        try:
            n = 0
            while kind == "babbling" or n < 3:
                await sleep(_interval(i))
                yield n
                n += 1
            await sleep(3600)  # stalled
        finally:
            rec.fin[i] = time.monotonic()

    return gen()


def _wrap(cutter: Cutter, src: AsyncIterator[int], clock: Callable[[], float]) -> AsyncIterator[int]:
    if cutter == "with_deadline":
        return with_deadline(src, DEADLINE)
    if cutter == "check-on-chunk":
        return check_on_chunk(src, DEADLINE, clock)
    return src


async def _consume(
    stream: AsyncIterator[int], i: int, rec: _Record, scope: Callable[[], AbstractAsyncContextManager[Any]]
) -> None:
    rec.start[i] = time.monotonic()
    try:
        async with scope():
            async for _ in stream:
                pass
    except (TimeoutError, trio.TooSlowError):  # StreamTimeoutError, or the floor's own timeout
        rec.error[i] = time.monotonic()


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


@contextlib.asynccontextmanager
async def _asyncio_timeout_and_turn() -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(DEADLINE):
            yield
    except TimeoutError:
        await asyncio.sleep(0)  # the turn: what a cancellation of the same tick needs to land
        raise


@contextlib.asynccontextmanager
async def _trio_fail_after() -> AsyncIterator[None]:
    with trio.fail_after(DEADLINE):
        yield


def _scope(backend: Backend, cutter: Cutter) -> Callable[[], AbstractAsyncContextManager[Any]]:
    if not cutter.startswith("one-task timeout"):
        return _nothing
    if backend == "trio":
        return _trio_fail_after
    if cutter == "one-task timeout + one turn":
        return _asyncio_timeout_and_turn
    return lambda: asyncio.timeout(DEADLINE)


async def _run_asyncio(backend: Backend, kind: Kind, cutter: Cutter, streams: int, bound: float) -> _Record:
    rec = _Record(streams)
    loop = asyncio.get_running_loop()
    scope = _scope(backend, cutter)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DEADLINE + bound), asyncio.TaskGroup() as tg:
            for i in range(streams):
                stream = _wrap(cutter, _source(kind, i, rec, asyncio.sleep), loop.time)
                tg.create_task(_consume(stream, i, rec, scope))
    await asyncio.sleep(0.05)  # let finalizers of sources left to the GC run
    return rec


async def _run_trio(backend: Backend, kind: Kind, cutter: Cutter, streams: int, bound: float) -> _Record:
    rec = _Record(streams)
    scope = _scope(backend, cutter)
    with trio.move_on_after(DEADLINE + bound):
        async with trio.open_nursery() as nursery:
            for i in range(streams):
                stream = _wrap(cutter, _source(kind, i, rec, trio.sleep), trio.current_time)
                nursery.start_soon(_consume, stream, i, rec, scope)
    await trio.sleep(0.05)
    return rec


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": percentile(values, 100)}


def run_b3(
    backend: Backend, streams: int, reps: int, stall_bound: float, log: Callable[[str], Any] = print
) -> list[Lateness]:
    """Every kind of stream cut by every cutter on ``backend``; one row per scenario."""
    rows = []
    for kind in ("babbling", "stalled"):
        for cutter in CUTTERS:
            if backend == "trio" and cutter.endswith("one turn"):
                continue  # trio's scopes need no turn: a cancellation is delivered at once
            # A run that would surely be cut is bounded short; a stalled check-on-chunk run waits.
            bound = stall_bound if (kind, cutter) == ("stalled", "check-on-chunk") else 2.0
            runs = []
            for _ in range(reps):
                run = _run_trio if backend == "trio" else _run_asyncio
                rec = run_on(backend, lambda r=run, k=kind, c=cutter, b=bound: r(backend, k, c, streams, b))
                runs.append(rec)
            row = _summarise(backend, kind, cutter, streams, runs)
            _log(row, bound, log)
            rows.append(row)
    return rows


def _summarise(backend: Backend, kind: Kind, cutter: Cutter, streams: int, runs: list[_Record]) -> Lateness:
    row = Lateness(backend, kind, cutter, streams, 0)
    cuts, errors, finals = [], [], []
    for rec in runs:
        late_error = [
            (e - s - DEADLINE) * 1e3 for s, e in zip(rec.start, rec.error, strict=True) if e is not None
        ]
        late_fin = [
            (f - s - DEADLINE) * 1e3
            for s, e, f in zip(rec.start, rec.error, rec.fin, strict=True)
            if e is not None and f is not None
        ]
        cuts.append(len(late_error))
        if late_error:
            errors.append(_stats(late_error))
            row.samples = late_error
        if late_fin:
            finals.append(_stats(late_fin))
    row.cut = int(median(cuts))
    if errors:
        row.error = {key: median([e[key] for e in errors]) for key in ("p50", "p99", "max")}
    if finals:
        row.source_finally = {key: median([f[key] for f in finals]) for key in ("p50", "p99", "max")}
    return row


def _log(row: Lateness, bound: float, log: Callable[[str], Any]) -> None:
    def fmt(stats: dict[str, float]) -> str:
        return "  ".join(f"{k} {v:7.2f}" for k, v in stats.items()) if stats else "—"

    head = f"  B3 {row.backend:8} {row.kind:9} {row.cutter:15} cut {row.cut:5}/{row.streams}"
    if not row.cut:
        log(f"{head}  (none cut within {bound:g} s past the deadline)")
    else:
        log(f"{head}  error ms: {fmt(row.error)} | source finally ms: {fmt(row.source_finally)}")
