"""The asyncio backend on uvloop, whose clock (``loop.time()``, in C) the stream must use.

uvloop has no virtual clock, so these few tests run on the real clock with short limits and
assert outcomes, not exact times; the exact timing semantics are proven on virtual time in
``test_semantics.py`` and ``test_model.py``.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import AsyncGenerator

import pytest

from stream_deadline import Deadline, StreamTimeoutError, with_deadline

uvloop = pytest.importorskip("uvloop", reason="uvloop does not support this platform")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")


def run(coro_fn: object) -> object:
    return uvloop.run(coro_fn())  # type: ignore[operator]


async def source(delays: list[float], closed: list[float]) -> AsyncGenerator[int, None]:
    try:
        for i, delay in enumerate(delays):
            await asyncio.sleep(delay)
            yield i
    finally:
        closed.append(asyncio.get_running_loop().time())


def test_uvloop_cuts_a_stall_on_its_own_clock() -> None:
    """Two items, then a stall: on uvloop the pull is cut by the deadline, after both items,
    with the source closed before the error arrives; the elapsed time is the loop's."""

    async def main() -> tuple[list[int], StreamTimeoutError, list[float], float]:
        closed: list[float] = []
        items: list[int] = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async for item in with_deadline(source([0.01, 0.01, 60], closed), 0.2):
                items.append(item)
        except StreamTimeoutError as exc:
            return items, exc, closed, loop.time() - start
        raise AssertionError("no timeout")

    items, error, closed, took = run(main)  # type: ignore[misc]
    assert items == [0, 1]
    assert (error.limit, error.items) == ("deadline", 2)
    assert len(closed) == 1
    assert 0.2 - 1e-6 <= error.elapsed <= took < 5  # float rounding of loop times, no more


def test_uvloop_idle_with_a_task_per_pull() -> None:
    """Every pull in a new task, as LangChain does: ``idle`` cuts the stalled pull on uvloop."""

    async def main() -> StreamTimeoutError:
        it = aiter(with_deadline(source([0.01, 60], []), None, idle=0.1))
        assert await asyncio.create_task(anext(it), context=contextvars.copy_context()) == 0
        try:
            await asyncio.create_task(anext(it), context=contextvars.copy_context())
        except StreamTimeoutError as exc:
            return exc
        raise AssertionError("no timeout")

    error = run(main)
    assert isinstance(error, StreamTimeoutError)
    assert error.limit == "idle"


def test_uvloop_deadline_object() -> None:
    """``Deadline.after`` on uvloop reads the same clock as the loop's timers."""

    async def main() -> tuple[float, bool]:
        budget = Deadline.after(0.05)
        await asyncio.sleep(0.1)
        return budget.remaining(), budget.expired

    assert run(main) == (0.0, True)
