"""Generated schedules checked against a small reference model of the semantics.

Hypothesis draws item delays (some stall forever), consumer pauses, limits, which pulls run in
a new task, an outside cancellation, ``on_timeout``, and ``progress``: ``None`` (every item
counts) or a predicate that counts a generated set of items (the source yields ``0, 1, ...``
and the predicate reads a generated flag per index). The model says which limit fires, at
which virtual time, which items arrive when, when the source is closed, how long the wait
that passed its limit had lasted (waits span the items ``progress`` does not count, the
consumer's pauses between them included, semantic 5), and the stream's ``outcome``; the real
stream, on asyncio and on trio, must agree exactly.

Event times are whole seconds (the first pull, item arrivals and every later pull: delays,
pauses and the wait before the first pull are whole), limits end in .5 and an outside
cancellation in .25. A wait starts at a pull, so at a whole second, however many pulls it
spans: its bound, like the deadline (from the first pull or, shared, from 0), ends in .5. No
two events that race can coincide, except a wait's bound with the deadline, where the deadline
is named (semantic 4).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from stream_deadline import Deadline, StreamOutcome, StreamTimeoutError, with_deadline
from support import BACKENDS, STALL, Record, pull_in_new_task, scripted

LONG = os.environ.get("STREAM_DEADLINE_LONG") == "1"
MAX_ITEMS = 8
half = st.integers(0, 12).map(lambda k: k + 0.5)


@dataclass(frozen=True)
class Schedule:
    """One generated scenario; ``progress``: ``None``, or which item indices count."""

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
    progress: tuple[bool, ...] | None


def schedules(**focus: st.SearchStrategy[Any]) -> st.SearchStrategy[Schedule]:
    """Schedules drawn as in general, but for the fields that ``focus`` draws otherwise."""
    delay = st.one_of(*[st.integers(0, 5).map(float)] * 3, st.just(STALL))  # a stall in 4
    drawn: dict[str, st.SearchStrategy[Any]] = {
        "delays": st.integers(0, MAX_ITEMS).flatmap(lambda n: st.lists(delay, min_size=n, max_size=n)),
        "pauses": st.lists(st.integers(0, 4), min_size=MAX_ITEMS + 1, max_size=MAX_ITEMS + 1),
        "hops": st.lists(st.booleans(), min_size=MAX_ITEMS + 2, max_size=MAX_ITEMS + 2),
        "wait": st.integers(0, 3),
        "seconds": st.one_of(st.none(), st.integers(0, 25).map(lambda k: k + 0.5)),
        "shared": st.booleans(),
        "first_item": st.one_of(st.none(), half),
        "idle": st.one_of(st.none(), half),
        "cancel_at": st.one_of(st.none(), st.integers(0, 30).map(lambda k: k + 0.25)),
        "stop": st.booleans(),
        "progress": st.none(),
    }
    return st.builds(Schedule, **(drawn | focus))


short = st.one_of(*[st.integers(0, 3).map(float)] * 3, st.just(STALL))
one_in_3 = st.sampled_from([True, False, False])


def across_uncounted(**focus: st.SearchStrategy[Any]) -> st.SearchStrategy[Schedule]:
    """Schedules focused on waits across uncounted items up to their bound (one item in three
    counts): shorter delays, pauses and limits, and nothing cancels."""
    drawn: dict[str, st.SearchStrategy[Any]] = {
        "delays": st.integers(2, MAX_ITEMS).flatmap(lambda n: st.lists(short, min_size=n, max_size=n)),
        "pauses": st.lists(st.integers(0, 3), min_size=MAX_ITEMS + 1, max_size=MAX_ITEMS + 1),
        "seconds": st.one_of(st.none(), st.integers(12, 25).map(lambda k: k + 0.5)),
        "idle": st.integers(0, 6).map(lambda k: k + 0.5),
        "cancel_at": st.none(),
        "progress": st.tuples(*[one_in_3] * MAX_ITEMS),
    }
    return schedules(**(drawn | focus))


all_schedules = st.one_of(
    schedules(progress=st.none()),  # every item counts: the behaviour without `progress`
    schedules(progress=st.tuples(*[st.booleans()] * MAX_ITEMS)),
    across_uncounted(first_item=st.integers(3, 10).map(lambda k: k + 0.5)),  # the first wait
    across_uncounted(  # later waits: the first item counts, and first_item is far or unset
        first_item=st.one_of(st.none(), st.just(20.5)),
        progress=st.tuples(st.just(True), *[one_in_3] * (MAX_ITEMS - 1)),
    ),
)


def counting(flags: Sequence[bool]) -> Callable[[int], bool]:
    """The ``progress`` predicate: item ``i`` counts if ``flags[i]``."""

    def counts(item: int) -> bool:
        return flags[item]

    return counts


COUNTS = counting(()).__qualname__  # how the error names the predicate in `waited_for`

Summary = tuple[str, str | None, int, int, float, float | None, float | None, float | None]
"""The outcome's ending, limit, items, progress_items, elapsed, time_to_first_item,
time_to_first_progress and late."""


@dataclass(frozen=True)
class Expected:
    """What must happen: what the consumer sees (a timeout: limit, time, timeout, elapsed,
    items, waited, waited_for), the delivered items with times, when the source's ``finally``
    runs (NaN if its body never started), and the stream's outcome."""

    seen: tuple[Any, ...]
    items: list[tuple[int, float]]
    closed_at: float
    summary: Summary
    label: str = ""
    """What kind of run the model saw (for ``--hypothesis-show-statistics``); not compared."""


def model(s: Schedule) -> Expected | None:
    """The reference model; ``None`` for a schedule that nothing would ever end."""
    start = float(s.wait)  # the first pull
    cancel = math.inf if s.cancel_at is None else s.cancel_at
    deadline = math.inf if s.seconds is None else s.seconds if s.shared else start + s.seconds
    delivered: list[tuple[int, float]] = []
    progressed: list[float] = []  # arrival times of the items that count
    across = 0  # items delivered, not counted, in the wait going on

    def summary(ending: str, at: float, limit: str | None = None, late: float | None = None) -> Summary:
        return (
            ending,
            limit,
            len(delivered),
            len(progressed),
            at - start,
            delivered[0][1] - start if delivered else None,
            progressed[0] - start if progressed else None,
            late,
        )

    def timeout(limit: str, at: float, bound: float, wait_start: float, closed_at: float) -> Expected:
        summed = summary("timeout", at, limit, at - bound)
        how = ", found at a pull" if at > bound else ""
        if limit != "deadline" and across:
            how += f", its wait across {min(across, 2)}{'+' if across > 2 else ''} uncounted item(s)"
        label = f"{limit} timeout{how}"
        if s.stop:
            return Expected(("end", at), delivered, closed_at, summed, label)
        configured = {"deadline": s.seconds, "first_item": s.first_item, "idle": s.idle}[limit]
        if limit == "deadline":
            waited, waited_for = None, ""
        elif s.progress is None:
            waited, waited_for = (
                at - wait_start,
                "the first item" if limit == "first_item" else "the next item",
            )
        else:
            what = "a first item" if limit == "first_item" else "an item"
            waited, waited_for = at - wait_start, f"{what} that {COUNTS} counts"
        seen = ("timeout", limit, at, configured, at - start, len(delivered), waited, waited_for)
        return Expected(seen, delivered, closed_at, summed, label)

    if cancel < start:  # cancelled before the first pull: the source's body never ran
        return Expected(("cancelled", cancel), [], math.nan, summary("closed", start))
    t = start
    wait_start: float | None = None  # when the wait going on started; None: none goes on
    for i in range(len(s.delays) + 1):
        if cancel < t:  # cancelled while holding an item: `async with` closes the stream
            return Expected(("cancelled", cancel), delivered, cancel, summary("closed", cancel))
        if t >= deadline:  # checked first, without pulling (so the first pull never starts it)
            return timeout("deadline", t, deadline, t, t if i else math.nan)
        if wait_start is None:
            wait_start = t  # a wait starts with this pull
        first = not progressed
        span = s.first_item if first else s.idle
        bound, limit = deadline, "deadline"
        if span is not None and wait_start + span < bound:
            bound, limit = wait_start + span, ("first_item" if first else "idle")
        if bound < t:  # the wait passed its bound while the consumer held an item: check first
            return timeout(limit, t, bound, wait_start, t)
        if i == len(s.delays):  # the source is exhausted: this pull ends the stream
            return Expected(("end", t), delivered, t, summary("exhausted", t))
        arrival = t + s.delays[i]
        if min(arrival, bound, cancel) == math.inf:
            return None
        if cancel < min(arrival, bound):
            return Expected(("cancelled", cancel), delivered, cancel, summary("cancelled", cancel))
        if bound < arrival:
            return timeout(limit, bound, bound, wait_start, bound)
        delivered.append((i, arrival))
        if s.progress is None or s.progress[i]:
            progressed.append(arrival)
            wait_start, across = None, 0  # the wait is over
        else:
            across += 1
        t = arrival + s.pauses[i]
    raise AssertionError("unreachable")  # pragma: no cover


async def run(s: Schedule) -> tuple[Expected, bool]:
    """Drive the real stream through the schedule; return what happened, and whether the
    outcome's ``error`` is the timeout the consumer saw (for a raised timeout)."""
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
        progress=None if s.progress is None else counting(s.progress),
    )
    delivered: list[tuple[int, float]] = []
    seen: tuple[Any, ...] = ()
    error: BaseException | None = None
    with anyio.CancelScope(deadline=start + (math.inf if s.cancel_at is None else s.cancel_at)) as scope:
        try:
            async with stream:
                await anyio.sleep(s.wait)
                it = aiter(stream)
                for i in range(len(s.delays) + 1):
                    try:
                        item = await (pull_in_new_task(it) if s.hops[i] else anext(it))
                    except StopAsyncIteration:
                        seen = ("end", now() - start)
                        break
                    delivered.append((item, now() - start))
                    await anyio.sleep(s.pauses[i])
        except StreamTimeoutError as exc:
            error = exc
            elapsed = now() - start
            seen = (
                "timeout",
                exc.limit,
                elapsed,
                exc.timeout,
                exc.elapsed,
                exc.items,
                exc.waited,
                exc.waited_for,
            )
    if scope.cancelled_caught:
        seen = ("cancelled", now() - start)
    o: StreamOutcome | None = stream.outcome
    assert o is not None
    summary: Summary = (
        o.ending,
        o.limit,
        o.items,
        o.progress_items,
        o.elapsed,
        o.time_to_first_item,
        o.time_to_first_progress,
        o.late,
    )
    closed_at = record.closed_at[0] - start if len(record.closed_at) == 1 else math.nan
    if len(record.closed_at) > 1:
        closed_at = -1.0  # closed twice: matches no model
    return Expected(seen, delivered, closed_at, summary), error is None or o.error is error


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@settings(max_examples=10_000 if LONG else 1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=all_schedules)
def test_generated_schedules_match_the_model(backend: str, s: Schedule) -> None:
    """For every generated schedule, on each backend: the same result (which limit, at which
    virtual time, with which timeout, elapsed, item count, and for ``first_item``/``idle`` how
    long its wait had lasted and what it waited for; or a normal end; or the outside
    cancellation), the same items at the same times in order, the source closed exactly once
    at the model's time, and the same ``outcome`` (ending, limit, items, progress items,
    elapsed, times to the first item and to the first counted item, lateness), with the
    timeout the consumer saw as its ``error`` (semantics 2-9, 14, with and without
    ``progress``)."""
    expected = model(s)
    assume(expected is not None)
    event(expected.label or expected.summary[0])
    event("progress=None" if s.progress is None else "progress counts some items")
    actual, same_error = anyio.run(run, s, **BACKENDS[backend]())
    assert actual.seen == expected.seen
    assert actual.items == expected.items
    assert actual.closed_at == expected.closed_at or (
        math.isnan(actual.closed_at) and math.isnan(expected.closed_at)
    )
    assert actual.summary == expected.summary
    assert same_error
