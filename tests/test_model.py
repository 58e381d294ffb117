"""Generated schedules checked against a small reference model of the semantics.

Hypothesis draws item delays (some stall forever), consumer pauses, limits, which pulls run in
a new task, an outside cancellation, and ``on_timeout``; the model says which limit fires, at
which virtual time, which items arrive when, and when the source is closed; the real stream,
on asyncio and on trio, must agree exactly. Event times are whole seconds, limits end in .5
and an outside cancellation in .25, so no two events that race can coincide, except a limit
with the deadline, where the deadline is named (semantic 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stream_deadline import Deadline, StreamTimeoutError, with_deadline
from support import BACKENDS, STALL, Record, pull_in_new_task, scripted

half = st.integers(0, 12).map(lambda k: k + 0.5)


@dataclass(frozen=True)
class Schedule:
    """One generated scenario."""

    delays: list[float]
    pauses: list[int]
    hops: list[bool]
    wait: int
    seconds: float | None
    shared: bool
    first_item: float | None
    idle: float | None
    cancel_at: float | None
    stop: bool


schedules = st.builds(
    Schedule,
    delays=st.lists(st.one_of(st.integers(0, 5).map(float), st.just(STALL)), max_size=8),
    pauses=st.lists(st.integers(0, 4), min_size=9, max_size=9),
    hops=st.lists(st.booleans(), min_size=10, max_size=10),
    wait=st.integers(0, 3),
    seconds=st.one_of(st.none(), st.integers(0, 25).map(lambda k: k + 0.5)),
    shared=st.booleans(),
    first_item=st.one_of(st.none(), half),
    idle=st.one_of(st.none(), half),
    cancel_at=st.one_of(st.none(), st.integers(0, 30).map(lambda k: k + 0.25)),
    stop=st.booleans(),
)


def model(s: Schedule) -> tuple[tuple[Any, ...], list[tuple[int, float]], float]:
    """What must happen: (outcome, delivered items with times, when the source's ``finally``
    runs, NaN if its body never started)."""
    t = float(s.wait)
    cancel = math.inf if s.cancel_at is None else s.cancel_at
    if cancel < t:  # cancelled before the first pull: the source's body never ran
        return ("cancelled", cancel), [], math.nan
    deadline = math.inf if s.seconds is None else s.seconds if s.shared else t + s.seconds
    delivered: list[tuple[int, float]] = []
    for i in range(len(s.delays) + 1):
        if cancel < t:
            return ("cancelled", cancel), delivered, cancel
        if t >= deadline:  # checked first, without pulling (so the first pull never starts it)
            return timeout(s, "deadline", t, len(delivered)), delivered, t if i else math.nan
        if i == len(s.delays):
            return ("end", t), delivered, t
        span = s.first_item if i == 0 else s.idle
        bound, limit = deadline, "deadline"
        if span is not None and t + span < bound:
            bound, limit = t + span, ("idle" if i else "first_item")
        arrival = t + s.delays[i]
        if min(arrival, bound, cancel) == math.inf:
            return ("forever",), delivered, math.inf  # nothing would ever end it: not generated
        if cancel < min(arrival, bound):
            return ("cancelled", cancel), delivered, cancel
        if bound < arrival:
            return timeout(s, limit, bound, len(delivered)), delivered, bound
        delivered.append((i, arrival))
        t = arrival + s.pauses[i]
    raise AssertionError("unreachable")  # pragma: no cover


def timeout(s: Schedule, limit: str, at: float, items: int) -> tuple[Any, ...]:
    if s.stop:
        return ("end", at)
    configured = {"deadline": s.seconds, "first_item": s.first_item, "idle": s.idle}[limit]
    return ("timeout", limit, at, configured, at - s.wait, items)


async def run(s: Schedule) -> tuple[tuple[Any, ...], list[tuple[int, float]], list[float]]:
    """Drive the real stream through the schedule; return what happened."""
    now = anyio.current_time
    start = now()
    record = Record()
    seconds: Any = Deadline.after(s.seconds) if s.shared and s.seconds is not None else s.seconds
    stream = with_deadline(
        scripted(s.delays, record),
        seconds,
        first_item=s.first_item,
        idle=s.idle,
        on_timeout="stop" if s.stop else "raise",
    )
    delivered: list[tuple[int, float]] = []
    outcome: tuple[Any, ...] = ()
    with anyio.CancelScope(deadline=start + (math.inf if s.cancel_at is None else s.cancel_at)) as scope:
        try:
            async with stream:
                await anyio.sleep(s.wait)
                it = aiter(stream)
                for i in range(len(s.delays) + 1):
                    try:
                        item = await (pull_in_new_task(it) if s.hops[i] else anext(it))
                    except StopAsyncIteration:
                        outcome = ("end", now() - start)
                        break
                    delivered.append((item, now() - start))
                    await anyio.sleep(s.pauses[i])
        except StreamTimeoutError as exc:
            outcome = ("timeout", exc.limit, now() - start, exc.timeout, exc.elapsed, exc.items)
    if scope.cancelled_caught:
        outcome = ("cancelled", now() - start)
    return outcome, delivered, [t - start for t in record.closed_at]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=schedules)
def test_generated_schedules_match_the_model(backend: str, s: Schedule) -> None:
    """For every generated schedule, on each backend: the same outcome (which limit, at which
    virtual time, with which timeout, elapsed and item count; or a normal end; or the outside
    cancellation), the same items at the same times in order, and the source closed exactly
    once at the model's time (semantics 2-9 together)."""
    expected_outcome, expected_items, closed_at = model(s)
    assume(expected_outcome != ("forever",))
    outcome, items, closes = anyio.run(run, s, **BACKENDS[backend]())
    assert outcome == expected_outcome
    assert items == expected_items
    assert closes == ([] if math.isnan(closed_at) else [closed_at])
