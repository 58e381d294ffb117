"""Outside cancellations racing the stream's own limit (issue 6, part 2).

Each trial schedules an outside cancellation just before, exactly at, or just after the loop
time at which the stream's limit passes, by one of several mechanisms (an anyio scope
cancelled by a sibling, a scope deadline, ``anyio.fail_after``, and the native
``asyncio.timeout`` / ``Task.cancel`` / ``trio.fail_at`` / ``trio.move_on_at``), with the pull
in the consumer's task or in a new one, and a source whose close takes some time. The
expected outcome is exact: a cancellation that reached the live consumer always surfaces as
a cancellation (semantic 7), and a ``StreamTimeoutError`` is reported only when our limit
passed first and no outside cancellation is pending; after it, the outside cancellation still
arrives at its own time. ``STREAM_DEADLINE_LONG=1`` runs 10,000 trials per backend instead of
500.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from stream_deadline import StreamTimeoutError, with_deadline
from support import BACKENDS, pull_in_new_task

LONG = os.environ.get("STREAM_DEADLINE_LONG") == "1"
TRIALS = 10_000 if LONG else 500

MECHANISMS = {
    "asyncio": ["scope-cancel", "scope-deadline", "fail_after", "asyncio.timeout", "task.cancel"],
    "trio": ["scope-cancel", "scope-deadline", "fail_after", "trio.fail_at", "trio.move_on_at"],
}


@dataclass(frozen=True)
class Trial:
    """One race: the stream's limit and the outside cancellation ``offset`` seconds after it."""

    mechanism: str
    limit: str  # which limit is the nearest: "deadline", "first_item" or "idle"
    items: int  # items delivered (1 s apart) before the stall
    offset: float  # when the outside cancellation comes, relative to our limit
    close_delay: float  # how long the source's aclose() takes
    close_timeout: float
    hop: bool  # pull every item in a new task

    @property
    def limit_at(self) -> float:
        """Our limit's time, relative to the first pull (limits end in .5, items at whole seconds)."""
        return {"deadline": 7.5, "first_item": 2.5, "idle": self.items + 2.5}[self.limit]

    def expected(self) -> tuple[str, float, float]:
        """What the consumer must see first, and the earliest and latest time it may see it.

        A close of the source always follows the end of the stream, also after an outside
        cancellation; the consumer sees the outcome when the close is done (trio shields it)
        or, on asyncio, where the close is not shielded, as soon as the outside cancellation
        cuts it short (level-triggered anyio scopes do; a single ``Task.cancel`` may not).
        """
        cut = self.limit_at
        closing = min(self.close_delay, self.close_timeout)
        cancel = cut + self.offset
        if cancel <= cut:  # before or at our limit: the cancellation wins, even in the same tick
            return "cancelled", cancel, cancel + closing
        if cancel <= cut + closing:  # it reaches the consumer during the close
            return "cancelled", cancel, cut + closing
        return "timeout", cut + closing, cut + closing


def draw(rng: random.Random, backend: str) -> Trial:
    limit = rng.choice(["deadline", "first_item", "idle"])
    offset = rng.choice([-1e-3, 0.0, 0.0, 1e-3, rng.randint(-500, 500) / 1000, rng.randint(1, 3000) / 1000])
    return Trial(
        mechanism=rng.choice(MECHANISMS[backend]),
        limit=limit,
        items=0 if limit == "first_item" else rng.randint(0 if limit == "deadline" else 1, 4),
        offset=offset,
        close_delay=rng.choice([0, 0, 0.25, 1, 3]),
        close_timeout=rng.choice([0.5, 2]),
        hop=rng.random() < 0.5,
    )


class Source:
    """Items 1 s apart, then a stall; ``aclose()`` takes ``close_delay`` seconds."""

    def __init__(self, items: int, close_delay: float) -> None:
        self.items = items
        self.index = 0
        self.close_delay = close_delay
        self.closes = 0

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> int:
        await (anyio.sleep(1) if self.index < self.items else anyio.sleep_forever())
        self.index += 1
        return self.index - 1

    async def aclose(self) -> None:
        """Count the close, then take ``close_delay`` seconds."""
        self.closes += 1
        if self.close_delay:
            await anyio.sleep(self.close_delay)


def outside(
    mechanism: str, at: float
) -> tuple[AbstractContextManager[Any], Callable[[], bool], type[BaseException] | None]:
    """A context manager that cancels the consumer at loop time ``at``, how to tell afterwards
    that it did, and the exception it raises out of itself (None: it swallows its cancellation)."""
    if mechanism in ("scope-cancel", "scope-deadline"):
        scope = anyio.CancelScope(deadline=at if mechanism == "scope-deadline" else math.inf)
        return scope, lambda: scope.cancelled_caught, None
    if mechanism == "fail_after":
        return anyio.fail_after(at - anyio.current_time()), lambda: True, TimeoutError
    if mechanism == "asyncio.timeout":
        return asyncio.timeout_at(at), lambda: True, TimeoutError
    if mechanism == "trio.fail_at":
        return trio.fail_at(at), lambda: True, trio.TooSlowError
    if mechanism == "trio.move_on_at":
        trio_scope = trio.move_on_at(at)
        return trio_scope, lambda: trio_scope.cancelled_caught, None
    assert mechanism == "task.cancel"
    return nullcontext(), lambda: True, asyncio.CancelledError


async def one_trial(trial: Trial) -> tuple[str, float, list[Any]]:
    """Run one race; return the first outcome the consumer saw, when, and notes that must be empty."""
    now = anyio.current_time
    start = now()
    cancel_at = start + trial.limit_at + trial.offset
    source = Source(trial.items, trial.close_delay)
    stream = with_deadline(
        source,
        7.5,
        first_item=2.5 if trial.limit == "first_item" else None,
        idle=2.5 if trial.limit == "idle" else None,
        close_timeout=trial.close_timeout,
    )
    cm, caught, raises = outside(trial.mechanism, cancel_at)
    outcome: list[tuple[str, float]] = []
    problems: list[Any] = []
    handle = None
    if trial.mechanism == "task.cancel":
        task = asyncio.current_task()
        assert task is not None
        handle = asyncio.get_running_loop().call_at(cancel_at, task.cancel)
    try:
        async with _as_async(cm):
            if trial.mechanism == "scope-cancel":
                async with anyio.create_task_group() as tg:

                    async def canceller() -> None:
                        await anyio.sleep_until(cancel_at)
                        cm.cancel()

                    tg.start_soon(canceller)
                    await consume(stream, trial, outcome, now, start)
            else:
                await consume(stream, trial, outcome, now, start)
    except BaseException as exc:
        if raises is None or not isinstance(exc, raises) or isinstance(exc, StreamTimeoutError):
            raise
        if trial.mechanism == "task.cancel":
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
    else:
        if raises is not None:
            problems.append(("no exception out of", trial.mechanism))
        if not caught():
            problems.append("the outside cancellation was lost")
    if handle is not None:
        handle.cancel()
    if not outcome:
        outcome.append(("cancelled", now() - start))
    if outcome[0][0] == "timeout" and not math.isclose(
        now(), cancel_at, abs_tol=2e-6
    ):  # looptime: 1 µs steps
        problems.append(("after the timeout, the outside cancellation arrived at", now() - start))
    if source.closes != 1:
        problems.append(("closes", source.closes))
    if trial.mechanism in ("task.cancel", "asyncio.timeout", "fail_after") and asyncio_running():
        task = asyncio.current_task()
        assert task is not None
        if task.cancelling():
            problems.append(("cancellations left pending", task.cancelling()))
    kind, at = outcome[0]
    return kind, at, problems


def asyncio_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def consume(
    stream: Any, trial: Trial, outcome: list[tuple[str, float]], now: Callable[[], float], start: float
) -> None:
    """Pull until the stream ends; after a timeout, wait for the outside cancellation."""
    it = aiter(stream)
    try:
        for _ in range(trial.items + 1):
            await (pull_in_new_task(it) if trial.hop else anext(it))
    except StreamTimeoutError:
        outcome.append(("timeout", now() - start))
    except anyio.get_cancelled_exc_class():
        outcome.append(("cancelled", now() - start))
        raise
    else:  # pragma: no cover (the source stalls: the loop always ends in an exception)
        outcome.append(("items", now() - start))
    await anyio.sleep_forever()  # the outside cancellation must still come, at its time


async def many(
    backend: str, seed: int
) -> list[tuple[Trial, tuple[str, float, float], tuple[str, float, list[Any]]]]:
    """Run the trials one after another on one loop; return the mismatches."""
    rng = random.Random(seed)  # noqa: S311 (reproducible trials, not cryptography)
    mismatches = []
    for _ in range(TRIALS):
        trial = draw(rng, backend)
        kind, at, problems = await one_trial(trial)
        want_kind, earliest, latest = trial.expected()
        if kind != want_kind or problems or not earliest - 2e-6 <= at <= latest + 2e-6:
            mismatches.append((trial, (want_kind, earliest, latest), (kind, at, problems)))
    return mismatches


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_outside_cancellation_racing_our_limit(backend: str) -> None:
    """TRIALS randomized races per backend (seeded, so reproducible): an outside cancellation
    before or at our limit's loop time is seen as a cancellation at its time; one during the
    close of the source after our limit is still seen as a cancellation; one later lets the
    timeout through at the limit (plus the close) and then still arrives at its own time. The
    source is closed exactly once every time, and on asyncio no cancellation stays pending."""
    mismatches = anyio.run(many, backend, 20240606, **BACKENDS[backend]())
    assert mismatches[:5] == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("mechanism", ["native", "fail_after"])
@pytest.mark.parametrize("hop", [False, True])
def test_an_enclosing_timeout_expiring_together_with_ours(backend: str, mechanism: str, hop: bool) -> None:
    """An enclosing ``asyncio.timeout`` / ``trio.fail_after`` / ``anyio.fail_after`` of 5 s
    around a stream whose deadline is 5 s: the enclosing timeout's own error surfaces (a plain
    ``TimeoutError`` or ``trio.TooSlowError``), never ``StreamTimeoutError``, at 5 s."""

    async def main() -> tuple[type[BaseException], float]:
        start = anyio.current_time()
        source = Source(2, 0)
        stream = with_deadline(source, 5)
        cm: AbstractContextManager[Any]
        if mechanism == "fail_after":
            cm = anyio.fail_after(5)
        elif backend == "trio":
            cm = trio.fail_after(5)
        else:
            cm = asyncio.timeout(5)
        try:
            async with _as_async(cm):
                async for _ in aiter(stream) if not hop else _hopping(stream):
                    pass
        except BaseException as exc:
            assert source.closes == 1
            if backend == "asyncio":
                task = asyncio.current_task()
                assert task is not None
                assert task.cancelling() == 0
            return type(exc), anyio.current_time() - start
        raise AssertionError("no timeout")

    kind, at = anyio.run(main, **BACKENDS[backend]())
    assert (kind, at) == (
        trio.TooSlowError if backend == "trio" and mechanism == "native" else TimeoutError,
        5,
    )


class _as_async:  # noqa: N801 (used like a function)
    """``async with`` over a sync or async context manager (asyncio.timeout is async)."""

    def __init__(self, cm: Any) -> None:
        self.cm = cm

    async def __aenter__(self) -> Any:
        if hasattr(self.cm, "__aenter__"):
            return await self.cm.__aenter__()
        return self.cm.__enter__()

    async def __aexit__(self, *exc: object) -> bool:
        if hasattr(self.cm, "__aexit__"):
            return bool(await self.cm.__aexit__(*exc))
        return bool(self.cm.__exit__(*exc))


async def _hopping(stream: Any) -> Any:
    it = aiter(stream)
    while True:
        try:
            yield await pull_in_new_task(it)
        except StopAsyncIteration:
            return


async def _swallowing(ends: bool) -> AsyncIterator[str]:
    """Waits 10 s; swallows the cancellation of that wait, then ends or yields and waits again."""
    try:
        await anyio.sleep(10)
        yield "slept"
    except anyio.get_cancelled_exc_class():
        if ends:
            return
        yield "swallowed"
        await anyio.sleep(10)


_ENCLOSING = {
    "asyncio": ["move_on_after", "fail_after", "asyncio.timeout"],
    "trio": ["move_on_after", "fail_after", "trio.move_on_after", "trio.fail_after"],
}


@pytest.mark.parametrize(("backend", "enclosing"), [(b, e) for b in sorted(BACKENDS) for e in _ENCLOSING[b]])
@pytest.mark.parametrize("ends", [False, True], ids=["goes-on", "ends"])
@pytest.mark.parametrize("scope_first", [True, False], ids=["scope-first", "stream-first"])
@pytest.mark.parametrize("close_timeout", [5, 0])
def test_a_source_swallowing_the_cancellation_of_a_scope_expiring_with_ours(
    backend: str, enclosing: str, ends: bool, scope_first: bool, close_timeout: float
) -> None:
    """An enclosing scope of 5 s around a 5 s stream whose source swallows the cancellation of
    its pull (and then ends, or yields and waits on): the scope still sees its own cancellation
    (``move_on_after`` ends quietly, ``fail_after`` raises its timeout), never a bare
    ``CancelledError``, at 5 s, and on asyncio no cancellation stays pending; with a
    ``close_timeout`` of 5 s or of zero (no second cancellation while the scope's lands). The
    stand-in cancellation the stream raised used to escape anyio's scopes, which deliver a
    turn later."""

    def scope() -> AbstractContextManager[Any]:
        if enclosing == "move_on_after":
            return anyio.move_on_after(5)
        if enclosing == "fail_after":
            return anyio.fail_after(5)
        if enclosing == "trio.move_on_after":
            return trio.move_on_after(5)
        return trio.fail_after(5)

    async def main() -> tuple[str, float, int]:
        start = anyio.current_time()
        try:
            if scope_first:
                cm: Any = asyncio.timeout(5) if enclosing == "asyncio.timeout" else scope()
                stream = with_deadline(_swallowing(ends), 5, close_timeout=close_timeout)
            else:
                stream = with_deadline(_swallowing(ends), 5, close_timeout=close_timeout)
                cm = asyncio.timeout(5) if enclosing == "asyncio.timeout" else scope()
            async with _as_async(cm):
                async for _ in stream:
                    pass
            outcome = "ended quietly"
        except BaseException as exc:
            outcome = type(exc).__name__
        pending = asyncio.current_task().cancelling() if backend == "asyncio" else 0  # type: ignore[union-attr]
        return outcome, anyio.current_time() - start, pending

    expected = {
        "move_on_after": "ended quietly",
        "trio.move_on_after": "ended quietly",
        "fail_after": "TimeoutError",
        "asyncio.timeout": "TimeoutError",
        "trio.fail_after": "TooSlowError",
    }[enclosing]
    assert anyio.run(main, **BACKENDS[backend]()) == (expected, 5, 0)
