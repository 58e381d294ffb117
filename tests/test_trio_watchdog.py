"""The trio backend's watchdog task: the cases where a deadline-less scope could be left uncut.

Each pull on trio enters a ``trio.CancelScope`` without a deadline; a system task, the
watchdog, gives it its bound as the deadline shortly before the bound. These tests pin down
what must hold whatever the order in which trio runs the tasks woken together (it varies from
run to run, so several runs are made with different seeds). Found by an independent review.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator

import pytest
import trio
import trio.testing

from stream_deadline import StreamTimeoutError, with_deadline


async def stalled_after(items: int) -> AsyncGenerator[int, None]:
    """``items`` items at once, then a wait that never ends."""
    for i in range(items):
        yield i
    await trio.sleep_forever()
    yield items  # pragma: no cover (never reached)


def run(main: object, seed: int = 0) -> object:
    """``trio.run(main)`` on a virtual clock, with trio's task order seeded."""
    random.seed(seed)  # trio shuffles the tasks of a batch with the random module
    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


async def cut_time(stream: object, pulls: int) -> tuple[str, float]:
    """Pull ``pulls`` times; the limit that cut the stream and when (or fail after 100 s)."""
    start = trio.current_time()
    with trio.move_on_after(100):
        try:
            for _ in range(pulls):
                await anext(stream)  # type: ignore[call-overload]
        except StreamTimeoutError as exc:
            return exc.limit, trio.current_time() - start
    return "not cut", trio.current_time() - start


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"seconds": None, "first_item": 1, "idle": 0.005}, ("first_item", 1)),
        ({"seconds": 2, "idle": 0.005}, ("deadline", 2)),
        ({"seconds": 2, "idle": 0.0101}, ("deadline", 2)),
    ],
)
def test_an_idle_limit_within_the_watchdogs_margin_does_not_unguard_the_first_pull(
    limits: dict[str, float | None], expected: tuple[str, float]
) -> None:
    """An ``idle`` limit of about the watchdog's margin (10 ms) or less does not leave the
    first pull, bounded by ``first_item`` or the deadline, without a watchdog: it is cut at
    exactly its bound."""
    seconds = limits.pop("seconds")

    async def main() -> tuple[str, float]:
        async with with_deadline(stalled_after(0), seconds, **limits) as stream:
            return await cut_time(stream, 1)

    assert run(main) == expected


@pytest.mark.parametrize("seed", range(12))
def test_a_pull_starting_when_the_watchdog_looks_is_still_cut(seed: int) -> None:
    """A pull that starts at the very instant the watchdog takes its last look before the
    deadline (0.29 s of a 0.3 s deadline, where ``0.3 - 0.01 == 0.29`` but
    ``0.3 - 0.29 > 0.01`` in floating point) is cut at 0.3 s, whichever task trio runs first."""

    async def main() -> tuple[str, float]:
        async with with_deadline(stalled_after(1), 0.3) as stream:
            await anext(stream)
            await trio.sleep(0.29)
            limit, _ = await cut_time(stream, 1)
            return limit, trio.current_time()

    limit, at = run(main, seed)  # type: ignore[misc]
    assert (limit, at) == ("deadline", pytest.approx(0.3, abs=1e-9))


@pytest.mark.parametrize("first_pull_in_main", [True, False])
def test_a_stream_pulled_after_the_main_task_ended_is_still_cut(first_pull_in_main: bool) -> None:
    """When the main task returns, trio cancels its system tasks, the watchdog among them. A
    stream still pulled by a shielded system task (a graceful drain) is cut at its deadline all
    the same, whether its pull started before or after that."""
    log: list[tuple[str, float]] = []

    async def drain(stream: AsyncGenerator[int, None]) -> None:
        with trio.CancelScope(shield=True):
            try:
                async for _ in stream:
                    pass
            except StreamTimeoutError as exc:
                log.append((exc.limit, trio.current_time()))

    async def main() -> None:
        stream = with_deadline(stalled_after(1), 1)
        if first_pull_in_main:
            await anext(stream)
        trio.lowlevel.spawn_system_task(drain, stream)
        await trio.lowlevel.checkpoint()

    run(main)
    assert log == [("deadline", 1)]
