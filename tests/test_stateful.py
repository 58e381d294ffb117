"""A hypothesis state machine against a reference model (issue 6, part 2).

The rules drive one stream: pulls (``anext``, ``asend``, ``athrow`` of an exception the
source handles or not), each from a new task; a second pull while one is waiting; ``aclose``;
an outside cancellation of the waiting pull; and clock advances. The stream's ``progress`` is
``None`` or counts a drawn set of item indices: a wait bounded by ``first_item`` or ``idle``
goes on across the items it does not count, through the consumer's holds between pulls, and
a pull that starts after its wait's bound raises at once (semantic 5). Each rule updates a
small reference model and records the step. A state machine's rules are synchronous, so the
real stream is driven in ``teardown``: each recorded run is replayed as one ``anyio.run`` per
backend, on virtual time, and what it observed (every pull's outcome and time, every
``aclose``, the source's close times and received values, and the stream's ``outcome``) must
equal the model's exactly. Hypothesis then shrinks a failing run to its shortest sequence of
steps.

Times never tie: the driver acts at whole seconds + 0.25, items arrive at + 0.75 (delays end
in .5 and start at a pull), limits pass at + 0.5 (every limit ends in .25 and starts at a
driver time: the deadline at the first pull, a wait at the pull that started it, however many
pulls it spans). A wait's bound and the deadline may coincide: the deadline is named.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import anyio
import looptime
import sniffio
import trio.testing
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from stream_deadline import StreamTimeoutError, with_deadline

STALL = math.inf
MAX_ITEMS = 6
quarter = st.integers(1, 8).map(lambda k: k + 0.25)


@dataclass
class Params:
    """The stream's source delays, limits and progress, drawn once per run."""

    delays: list[float]
    seconds: float | None
    first_item: float | None
    idle: float | None
    progress: tuple[bool, ...] | None
    """``None``: every item counts; else item ``i`` counts if ``progress[i]``."""


def with_stall(delays: list[float], stall: int | None) -> list[float]:
    """``delays``, but the item at index ``stall``, if there is one, never comes (only the
    first stall of a source matters)."""
    if stall is not None and stall < len(delays):
        delays[stall] = STALL
    return delays


def some_params(**focus: st.SearchStrategy[Any]) -> st.SearchStrategy[Params]:
    """Params drawn as in general, but for the fields that ``focus`` draws otherwise."""
    drawn: dict[str, st.SearchStrategy[Any]] = {
        "delays": st.builds(
            with_stall,
            st.lists(st.integers(0, 4).map(lambda k: k + 0.5), min_size=1, max_size=MAX_ITEMS),
            st.one_of(st.none(), st.integers(0, MAX_ITEMS - 1)),
        ),
        "seconds": st.one_of(st.none(), st.integers(1, 16).map(lambda k: k + 0.25)),
        "first_item": st.one_of(st.none(), quarter),
        "idle": st.one_of(st.none(), quarter),
        "progress": st.one_of(st.none(), st.tuples(*[st.booleans()] * MAX_ITEMS)),
    }
    return st.builds(Params, **(drawn | focus))


one_in_3 = st.sampled_from([True, False, False])
far = st.one_of(st.none(), st.integers(12, 16).map(lambda k: k + 0.25))
all_params = st.one_of(
    some_params(progress=st.none()),  # every item counts: the behaviour without `progress`
    some_params(),
    # Waits across uncounted items (one item in three counts), with no deadline or a far one:
    # the first wait, bounded by first_item; later waits (the first item counts), by idle.
    some_params(seconds=far, first_item=quarter, progress=st.tuples(*[one_in_3] * MAX_ITEMS)),
    some_params(
        seconds=far,
        first_item=st.none(),
        idle=quarter,
        progress=st.tuples(st.just(True), *[one_in_3] * (MAX_ITEMS - 1)),
    ),
)


@dataclass
class Observed:
    """Everything observable: (step, what, relative time) events, closes, sent values, and
    the stream's outcome (ending, limit, items, progress items, times to the first item and
    to the first counted item)."""

    events: list[tuple[int, str, float]] = field(default_factory=list)
    closed_at: list[float] = field(default_factory=list)
    received: list[object] = field(default_factory=list)
    outcome: tuple[Any, ...] = ()


async def source(delays: list[float], seen: Observed, t0: float) -> AsyncGenerator[int, object]:
    """Item ``i`` after ``delays[i]``; records sent values and handled ``KeyError``s; a
    thrown ``ValueError`` ends it."""
    try:
        i = 0
        while i < len(delays):
            await (anyio.sleep_forever() if delays[i] == STALL else anyio.sleep(delays[i]))
            try:
                sent = yield i
                seen.received.append(sent)
            except KeyError:
                seen.received.append("KeyError")
            i += 1
    finally:
        seen.closed_at.append(anyio.current_time() - t0)


async def settle() -> None:
    """Let every task run until all wait, without moving the clock (anyio's
    ``wait_all_tasks_blocked`` sleeps 0.1 s at a time on asyncio, which looptime counts)."""
    if sniffio.current_async_library() == "trio":
        await trio.testing.wait_all_tasks_blocked()
    else:
        for _ in range(50):
            await asyncio.sleep(0)


async def replay(params: Params, steps: list[tuple[str, Any]]) -> Observed:
    """Drive the real stream through ``steps``; return what was observed."""
    seen = Observed()
    t0 = anyio.current_time()
    now = anyio.current_time
    flags = params.progress
    stream = with_deadline(
        source(params.delays, seen, t0),
        params.seconds,
        first_item=params.first_item,
        idle=params.idle,
        progress=None if flags is None else lambda item: flags[item],
    )
    scopes: dict[int, anyio.CancelScope] = {}

    async def pull(step: int, kind: str) -> None:
        with anyio.CancelScope() as scope:
            scopes[step] = scope
            try:
                if kind == "next":
                    item = await anext(stream)
                elif kind == "send":
                    item = await stream.asend(f"v{step}")
                else:
                    item = await stream.athrow(KeyError("k") if kind == "throw-key" else ValueError("v"))
                seen.events.append((step, f"item {item}", now() - t0))
            except StreamTimeoutError as exc:
                seen.events.append((step, f"timeout {exc.limit} {exc.items}", now() - t0))
            except StopAsyncIteration:
                seen.events.append((step, "end", now() - t0))
            except (RuntimeError, ValueError) as exc:
                seen.events.append((step, type(exc).__name__, now() - t0))
        if scope.cancelled_caught:
            seen.events.append((step, "cancelled", now() - t0))

    await anyio.sleep(0.25)
    async with anyio.create_task_group() as tg:
        for step, (what, arg) in enumerate(steps):
            if what == "pull":
                tg.start_soon(pull, step, arg)
            elif what == "advance":
                await anyio.sleep(arg)
            elif what == "cancel":
                scopes[arg].cancel()  # the waiting pull, started at step `arg`
            elif what == "aclose":
                try:
                    await stream.aclose()
                    seen.events.append((step, "closed", now() - t0))
                except RuntimeError:
                    seen.events.append((step, "RuntimeError", now() - t0))
            await settle()
        result = Observed(list(seen.events), list(seen.closed_at), list(seen.received))
        tg.cancel_scope.cancel()  # a pull still waiting at the end is not part of the run
    with anyio.CancelScope(shield=True):
        await stream.aclose()
    o = stream.outcome
    assert o is not None
    result.outcome = (
        o.ending,
        o.limit,
        o.items,
        o.progress_items,
        o.time_to_first_item,
        o.time_to_first_progress,
    )
    return result


def virtual_time_loop() -> asyncio.AbstractEventLoop:
    """As ``conftest.virtual_time_loop`` (which, collected after tests/integration, the name
    ``conftest`` may not resolve to here)."""
    return looptime.patch_event_loop(asyncio.new_event_loop())


BACKENDS = {
    "asyncio": lambda: {"backend": "asyncio", "backend_options": {"loop_factory": virtual_time_loop}},
    "trio": lambda: {
        "backend": "trio",
        "backend_options": {"clock": trio.testing.MockClock(autojump_threshold=0)},
    },
}


class StreamMachine(RuleBasedStateMachine):
    """Proves that any sequence of pulls from new tasks, second pulls, asend/athrow, aclose,
    outside cancellations and clock advances gives, on both backends, exactly the outcomes,
    times, source closes, forwarded values and stream outcome of this reference model, with
    and without ``progress`` (waits across the items it does not count)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[str, Any]] = []
        self.expected = Observed()
        self.t = 0.25
        self.state = "fresh"  # fresh, idle (suspended between pulls), pulling, done
        self.deadline = math.inf
        self.items = 0  # delivered
        self.index = 0  # the source's next item
        self.source_started = False
        self.pending: tuple[int, float, float, str] | None = None  # step, arrival, bound, limit
        self.wait_start: float | None = None  # when the wait going on started; None: none goes on
        self.progress_items = 0  # delivered, counted as progress
        self.across = 0  # items delivered, not counted, in the wait going on
        self.started_at = math.nan  # the first pull
        self.first_item_at: float | None = None
        self.first_progress_at: float | None = None
        self.ending: tuple[str, str | None] | None = None  # (ending, limit) once ended
        self.patience = 0  # aclose and cancel are enabled from this step on

    @initialize(params=all_params, patience=st.integers(0, 20))
    def setup(self, params: Params, patience: int) -> None:
        """Draw the source, the limits, which items count as progress, and from which step on
        the stream may be ended from outside (``aclose``, ``cancel``): enabled throughout,
        one of them ends most runs before a limit passes."""
        self.params = params
        self.patience = patience
        event("progress=None" if params.progress is None else "progress counts some items")

    # model helpers

    def finish(self, step: int, what: str, at: float, ending: str, limit: str | None = None) -> None:
        """The stream ends (``ending``, for a timeout ``limit``): step ``step`` sees ``what`` at
        ``at``; the source closes then."""
        self.expected.events.append((step, what, at))
        if self.source_started and not self.expected.closed_at:
            self.expected.closed_at.append(at)
        self.state = "done"
        self.pending = None
        if self.ending is None:  # (an aclose() after the end changes nothing)
            self.ending = (ending, limit)

    def timeout(self, step: int, limit: str, at: float) -> None:
        """``limit`` passed: step ``step`` sees it at ``at``."""
        how = " found at a pull" if self.pending is None else ""
        if limit != "deadline" and self.across:
            how += (
                f", its wait across {min(self.across, 2)}{'+' if self.across > 2 else ''} uncounted item(s)"
            )
        event(f"{limit} timeout{how}")
        self.finish(step, f"timeout {limit} {self.items}", at, "timeout", limit)

    def start_pull(self, step: int, kind: str) -> None:
        """A pull starts now: check first, forward asend/athrow, bound the pull."""
        p, t = self.params, self.t
        if self.state == "done":
            self.expected.events.append((step, "end", t))
            return
        if self.state == "fresh":
            self.deadline = math.inf if p.seconds is None else t + p.seconds
            self.started_at = t
        if t >= self.deadline:
            self.timeout(step, "deadline", t)
            return
        first = self.progress_items == 0
        span = p.first_item if first else p.idle
        if self.wait_start is None:
            self.wait_start = t  # a wait starts with this pull
        elif span is not None:
            event(f"a pull within a {'first' if first else 'later'} wait, across uncounted items")
        bound, limit = self.deadline, "deadline"
        if span is not None and self.wait_start + span < bound:
            bound, limit = self.wait_start + span, ("first_item" if first else "idle")
        if bound <= t:  # the wait passed its bound while the consumer held an uncounted item
            self.timeout(step, limit, t)
            return
        if kind == "send":
            self.expected.received.append(f"v{step}")
        elif kind == "throw-key":
            self.expected.received.append("KeyError")
        elif kind == "throw-value":
            self.finish(step, "ValueError", t, "error")
            return
        elif self.state == "idle":
            self.expected.received.append(None)
        if self.state != "fresh":
            self.index += 1
        self.source_started = True
        if self.index >= len(p.delays):
            self.finish(step, "end", t, "exhausted")
            return
        self.pending = (step, t + p.delays[self.index], bound, limit)
        self.state = "pulling"

    # rules

    @precondition(lambda self: self.state != "pulling")
    @rule(kind=st.sampled_from(["next", "next", "send", "throw-key", "throw-value"]))
    def pull(self, kind: str) -> None:
        """Pull (anext, asend or athrow) in a new task."""
        if kind != "next" and self.state != "idle":
            kind = "next"  # asend/athrow need a suspended source
        self.steps.append(("pull", kind))
        self.start_pull(len(self.steps) - 1, kind)

    @precondition(lambda self: self.state != "pulling")
    @rule(kind=st.sampled_from(["next", "next", "send", "throw-key", "throw-value"]))
    def pull_again(self, kind: str) -> None:
        """As ``pull``: each run leaves out some rules (swarm testing), and with two, a run
        seldom leaves out pulling."""
        self.pull(kind)

    @precondition(lambda self: self.state == "pulling")
    @rule()
    def second_pull(self) -> None:
        """Pull while another task waits in a pull: ``RuntimeError`` at once (semantic 10)."""
        self.steps.append(("pull", "next"))
        self.expected.events.append((len(self.steps) - 1, "RuntimeError", self.t))

    @rule(dt=st.integers(1, 4))
    def advance(self, dt: int) -> None:
        """Let ``dt`` seconds pass: the waiting pull gets its item or its limit passes."""
        self.steps.append(("advance", dt))
        end = self.t + dt
        if self.pending is not None:
            step, arrival, bound, limit = self.pending
            if bound < arrival and bound <= end:
                self.timeout(step, limit, bound)
            elif arrival <= end:
                self.expected.events.append((step, f"item {self.index}", arrival))
                self.items += 1
                if self.first_item_at is None:
                    self.first_item_at = arrival
                progress = self.params.progress
                if progress is None or progress[self.index]:
                    self.progress_items += 1
                    if self.first_progress_at is None:
                        self.first_progress_at = arrival
                    self.wait_start, self.across = None, 0  # the wait is over
                else:
                    self.across += 1
                self.pending = None
                self.state = "idle"
        self.t = end

    @precondition(lambda self: self.pending is not None and min(self.pending[1:3]) < math.inf)
    @rule()
    def advance_past_event(self) -> None:
        """Let time pass just beyond the waiting pull's next event, its item or its limit (an
        ``advance`` drawn to reach one: items, and waits across several, are then common)."""
        assert self.pending is not None
        self.advance(math.ceil(min(self.pending[1:3]) - self.t))

    @precondition(lambda self: self.state == "pulling" and len(self.steps) >= self.patience)
    @rule()
    def cancel(self) -> None:
        """Cancel the waiting pull from outside: it sees the cancellation (semantic 7)."""
        assert self.pending is not None
        self.steps.append(("cancel", self.pending[0]))
        self.finish(self.pending[0], "cancelled", self.t, "cancelled")

    @precondition(lambda self: len(self.steps) >= self.patience)
    @rule()
    def aclose(self) -> None:
        """Close the stream: refused while a pull waits, otherwise closes the source once."""
        self.steps.append(("aclose", None))
        step = len(self.steps) - 1
        if self.state == "pulling":
            self.expected.events.append((step, "RuntimeError", self.t))
        else:
            self.finish(step, "closed", self.t, "closed")

    def teardown(self) -> None:
        """Replay the run on asyncio and on trio; each must match the model exactly."""
        if not hasattr(self, "params"):
            return
        expected = self.expected
        expected.events.sort()
        # A run that has not ended ends in the replay's teardown: a waiting pull is cancelled,
        # else the stream is closed.
        ending, limit = self.ending or (("cancelled" if self.state == "pulling" else "closed"), None)
        expected.outcome = (
            ending,
            limit,
            self.items,
            self.progress_items,
            None if self.first_item_at is None else self.first_item_at - self.started_at,
            None if self.first_progress_at is None else self.first_progress_at - self.started_at,
        )
        for name, options in BACKENDS.items():
            seen = anyio.run(replay, self.params, self.steps, **options())
            seen.events.sort()
            assert (seen.events, seen.closed_at, seen.received, seen.outcome) == (
                expected.events,
                expected.closed_at,
                expected.received,
                expected.outcome,
            ), f"{name}: {self.params} {self.steps}"


StreamMachine.TestCase.settings = settings(
    max_examples=3000 if os.environ.get("STREAM_DEADLINE_LONG") == "1" else 500,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_stream_machine = StreamMachine.TestCase
