"""Sources and consumers that the tests share: scripted, observable, backend-neutral."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import looptime
import trio.testing


def virtual_time_loop() -> asyncio.AbstractEventLoop:
    """A new asyncio loop whose clock starts at 0 and jumps to the next timer when idle."""
    return looptime.patch_event_loop(asyncio.new_event_loop())


BACKENDS: dict[str, Callable[[], dict[str, Any]]] = {
    "asyncio": lambda: {"backend": "asyncio", "backend_options": {"loop_factory": virtual_time_loop}},
    "trio": lambda: {
        "backend": "trio",
        "backend_options": {"clock": trio.testing.MockClock(autojump_threshold=0)},
    },
}
"""``anyio.run`` keyword arguments for each backend on a fresh virtual clock."""


STALL = math.inf
"""A delay that never ends: the source stalls at that item."""


@dataclass
class Record:
    """What a scripted source went through, with virtual times."""

    started_at: float | None = None
    pulls: int = 0
    yielded: list[int] = field(default_factory=list)
    closed_at: list[float] = field(default_factory=list)
    cancelled_at: list[float] = field(default_factory=list)

    @property
    def closes(self) -> int:
        """How many times the source's ``finally`` ran."""
        return len(self.closed_at)


async def scripted(delays: Sequence[float], record: Record) -> AsyncGenerator[int, None]:
    """Yield ``0, 1, ...``: item ``i`` after waiting ``delays[i]`` seconds (``STALL``: forever)."""
    record.started_at = anyio.current_time()
    try:
        for i, delay in enumerate(delays):
            record.pulls += 1
            try:
                if delay == STALL:
                    await anyio.sleep_forever()
                else:
                    await anyio.sleep(delay)
            except anyio.get_cancelled_exc_class():
                record.cancelled_at.append(anyio.current_time())
                raise
            record.yielded.append(i)
            yield i
    finally:
        record.closed_at.append(anyio.current_time())


async def keepalive_stall(items: int, record: Record) -> AsyncGenerator[int, None]:
    """Yield ``items`` items one second apart, then keep busy forever without yielding.

    Like an SSE stream whose server sends only ``: keep-alive`` comments: bytes (here,
    wake-ups every 0.5 s) keep arriving, but no item does.
    """
    record.started_at = anyio.current_time()
    try:
        for i in range(items):
            await anyio.sleep(1)
            record.yielded.append(i)
            yield i
        while True:  # noqa: ASYNC110 (each wake-up is a keep-alive comment: read, parsed, dropped)
            await anyio.sleep(0.5)
    finally:
        record.closed_at.append(anyio.current_time())


async def collect(stream: AsyncIterator[int], pause: float = 0) -> list[int]:
    """Pull every item in this task, sleeping ``pause`` seconds after each."""
    items = []
    async for item in stream:
        items.append(item)
        if pause:
            await anyio.sleep(pause)
    return items


async def pull_in_new_task(stream: AsyncIterator[Any]) -> Any:
    """Pull one item in a new task (a task group child), as LangChain pulls every chunk.

    Returns the item; re-raises what the pull raised (unwrapped from the task group).
    """
    outcome: list[Any] = []

    async def pull() -> None:
        try:
            outcome.append(("ok", await anext(stream)))
        except Exception as exc:
            outcome.append(("error", exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(pull)
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


class Closable:
    """A class-based async iterator (not a generator): item ``i`` after ``delays[i]`` seconds.

    ``close_with`` names its close method: ``"aclose"``, ``"async-close"`` (``async def
    close()``, as the openai SDK's ``AsyncStream``), ``"sync-close"`` or ``"none"``; the close
    waits ``close_delay`` seconds (``STALL``: forever) and then raises ``close_error``.
    """

    def __init__(
        self,
        delays: list[float],
        *,
        close_with: str = "aclose",
        close_delay: float = 0,
        close_error: BaseException | None = None,
    ) -> None:
        self.delays = delays
        self.index = 0
        self.closes: list[float] = []
        self.close_delay = close_delay
        self.close_error = close_error
        if close_with == "aclose":
            self.aclose = self._async_close
        elif close_with == "async-close":
            self.close = self._async_close
        elif close_with == "sync-close":
            self.close = self._sync_close
        else:
            assert close_with == "none"

    def __aiter__(self) -> Closable:
        return self

    async def __anext__(self) -> int:
        if self.index >= len(self.delays):
            raise StopAsyncIteration
        delay = self.delays[self.index]
        await (anyio.sleep_forever() if delay == STALL else anyio.sleep(delay))
        self.index += 1
        return self.index - 1

    async def _async_close(self) -> None:
        self.closes.append(anyio.current_time())
        if self.close_delay:
            await (anyio.sleep_forever() if self.close_delay == STALL else anyio.sleep(self.close_delay))
        if self.close_error is not None:
            raise self.close_error

    def _sync_close(self) -> None:
        self.closes.append(anyio.current_time())
        if self.close_error is not None:
            raise self.close_error
