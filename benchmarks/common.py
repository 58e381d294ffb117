"""What every benchmark shares: the backends, the settings, timing and percentile helpers."""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import trio
import uvloop

from stream_deadline import StreamTimeoutError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Sequence

__all__ = [
    "ASYNCIO_BACKENDS",
    "BACKENDS",
    "LIBRARIES",
    "Backend",
    "Settings",
    "check_on_chunk",
    "loop_clock",
    "machine_info",
    "median",
    "pass_through",
    "percentile",
    "run_on",
    "task_of",
]

T = TypeVar("T")

Backend = Literal["asyncio", "uvloop", "trio"]
BACKENDS: Final[tuple[Backend, ...]] = ("asyncio", "uvloop", "trio")
ASYNCIO_BACKENDS: Final[tuple[Backend, ...]] = ("asyncio", "uvloop")

LIBRARIES: Final = (
    "stream-deadline",
    "anyio",
    "trio",
    "uvloop",
    "aiostream",
    "trio-util",
    "aiter-timeouts",
    "langchain-core",
    "langchain-openai",
    "matplotlib",
)
"""The distributions whose versions the report prints."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The sizes of one run: ``full`` for the published numbers, ``quick`` for a smoke run."""

    name: str
    b1_items: int
    b1_reps: int
    b2_items: int
    b2_chain_chunks: int
    b2_reps: int
    b2_chain_reps: int
    """More rounds than the loop-yielding source: a 1 % goal on a noisy machine needs them."""
    b3_streams: int
    b3_reps: int
    b3_stall_bound: float
    """How long check-on-chunk is given to cut a stalled stream before we stop waiting."""
    b4_sizes: tuple[int, ...]
    b4_reps: int

    @classmethod
    def full(cls) -> Settings:
        """The published run (under ten minutes on two cores)."""
        return cls("full", 100_000, 7, 20_000, 5_000, 15, 101, 1_000, 3, 3.0, (10_000, 100_000), 3)

    @classmethod
    def quick(cls) -> Settings:
        """A smoke run: every benchmark, fewer items and repetitions."""
        return cls("quick", 20_000, 3, 5_000, 300, 5, 5, 1_000, 1, 2.0, (1_000, 10_000), 1)


if sys.version_info >= (3, 12):
    task_of: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None] = asyncio.current_task  # in C
else:  # 3.11's current_task() is Python around this lookup
    task_of = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]  # noqa: SLF001
"""The current task of a loop, looked up as cheaply as ``with_deadline`` does."""


def loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """The clock ``with_deadline`` reads on ``loop``: ``time.monotonic`` where ``loop.time()``
    is just that (asyncio's own loops), else ``loop.time`` (uvloop's)."""
    return time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time


async def pass_through(source: AsyncIterator[T]) -> AsyncIterator[T]:
    """The cheapest wrapper one can write: one more async generator layer."""
    async for item in source:
        yield item


async def check_on_chunk(
    source: AsyncIterator[T], seconds: float, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[T]:
    """The blog's fix: note the start on ``clock``, compare the elapsed time whenever a chunk
    arrives (one clock read and one comparison per item: the least a deadline checked at every
    pull does)."""
    start = clock()
    async for item in source:
        if clock() - start > seconds:
            raise StreamTimeoutError("deadline", seconds, clock() - start, 0)
        yield item


def run_on(backend: Backend, func: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``func()`` to completion in a fresh event loop of ``backend``."""
    gc.collect()
    if backend == "trio":
        return trio.run(func)
    factory = uvloop.new_event_loop if backend == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(func())


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile of ``values`` by the nearest-rank method (``100`` is the max)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats drifting
    return ordered[min(len(ordered), int(rank)) - 1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """Machine, OS, Python and library versions, and the date: printed with every result."""
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu_model()}, {os.cpu_count()} logical CPUs, {_memory()} RAM",
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
    }
    info.update({dist: _version(dist) for dist in LIBRARIES})
    return info
