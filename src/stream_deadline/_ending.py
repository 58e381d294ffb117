"""How every stream ends: close the source once, then raise what the consumer must see.

Both pull loops (and the pass-through for a stream without limits) end through :func:`end`,
whatever ended them: the source exhausted, a limit passed (:class:`Passed`), an error, a
cancellation, or the stream closed (``GeneratorExit``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from ._errors import Limit, StreamTimeoutError
from ._limits import Limits
from ._outcome import Ending, StreamOutcome, Tally, logger, report
from ._source import Source

__all__ = ["Backend", "Passed", "close", "end", "pass_through", "report_end", "warn_went_on"]

T = TypeVar("T")


class Backend(NamedTuple):
    """What the ending needs of an event loop; ``_backends._asyncio`` and ``_trio`` each make one."""

    close: Callable[[Source[Any], float], Awaitable[BaseException | None]]
    """Close the source within ``close_timeout``; log and return what went wrong, if anything."""
    checkpoint: Callable[[], Awaitable[None]]
    """Let the event loop run once: a cancellation pending for this task lands there."""
    cancelled: type[BaseException]
    """What an outside cancellation raises in the consumer."""


class Passed(Exception):  # noqa: N818 (flow control inside the pull loops, never seen outside)
    """Raised in a pull loop when a limit has passed: :func:`end` turns it into the
    :class:`~stream_deadline.StreamTimeoutError` once the source is closed.

    ``at`` is when the loop found it passed, ``bound`` when it passed, ``wait_started`` when
    the wait it bounds began (all on the loop's clock).
    """

    limit: Limit
    at: float
    bound: float
    wait_started: float

    def __init__(self, limit: Limit, at: float, bound: float, wait_started: float) -> None:
        super().__init__(limit, at, bound, wait_started)
        self.limit = limit
        self.at = at
        self.bound = bound
        self.wait_started = wait_started


def warn_went_on(source: Source[Any], limit: Limit, what: str) -> None:
    """Log that the source went on after ``limit`` cut its pull: it ``what``."""
    logger.warning(
        "the source %s went on after the %s limit cut its pull (it caught the cancellation,"
        " was shielded from it, or its item came in as the limit passed) and %s",
        source.describe(),
        limit,
        what,
    )


async def close(backend: Backend, source: Source[Any], limits: Limits, clock: Callable[[], float]) -> None:
    """Close the source, if anything is left to close, and note on it how that went."""
    if source.settled():
        return
    started = clock()
    source.close_error = await backend.close(source, limits.close_timeout)
    source.close_seconds = clock() - started
    # The close error's traceback reaches this frame (through `f_back`, on CPython 3.12+),
    # and the source keeps the error: no cycle through this frame's locals.
    del source


async def end(  # noqa: PLR0913 (what the loop knows at its end)
    backend: Backend,
    source: Source[Any],
    limits: Limits,
    exc: BaseException | None,
    tally: Tally,
    *,
    closing: bool = False,
) -> None:
    """Close the source, report the outcome, then raise what ended the stream; return for a
    quiet end.

    ``exc`` is what ended it (``None``: the source was exhausted); ``closing``: it is the
    ``GeneratorExit`` thrown in at the stream's ``yield`` (by ``aclose()``, or by the event
    loop finalizing a stream nobody closed). A close that fails or overruns
    ``close_timeout`` is logged; it is raised when nothing else is (an exhausted source) and
    chained as the cause of a timeout. A limit that passed is raised as
    :class:`~stream_deadline.StreamTimeoutError`, or ends quietly with ``on_timeout="stop"``,
    after one checkpoint: a cancellation from outside that arrived with the timeout wins.
    """
    closed_by_consumer = closing and source.closed  # (DeadlineStream.aclose() closes the source first)
    timeout: StreamTimeoutError | None = None
    told: BaseException | None  # what the consumer is told
    try:
        await close(backend, source, limits, tally.clock)
        if isinstance(exc, Passed):
            await backend.checkpoint()
            timeout = limits.error(exc.limit, exc.at - tally.started, tally.items, exc.at - exc.wait_started)
            timeout.__cause__ = source.close_error  # (as `raise ... from`: the Passed is not shown)
            told = None if limits.stop else timeout
        else:
            told = exc if exc is not None else source.close_error
    except BaseException as raised:  # noqa: BLE001 (an outside cancellation during the close or the checkpoint)
        told = raised
    try:
        ending: Ending
        if timeout is not None and (told is None or told is timeout):
            ending = "timeout"
        elif told is None:
            ending = "exhausted"
        elif isinstance(told, backend.cancelled):
            ending = "cancelled"
        elif closing and told is exc:
            ending = "closed" if closed_by_consumer else "abandoned"
        else:
            ending = "error"
        shown = None if ending in ("closed", "abandoned") else told  # (a GeneratorExit is not seen)
        report_end(source, limits, tally, ending, shown, passed=exc if ending == "timeout" else None)  # type: ignore[arg-type]
        if told is not None:
            raise told
    finally:
        # The traceback holds this frame, and the outcome (kept on the source) the error: no
        # cycle through its locals.
        exc = told = shown = timeout = source = None  # type: ignore[assignment]


def report_end(  # noqa: PLR0913 (the facts of an ending)
    source: Source[Any],
    limits: Limits,
    tally: Tally,
    ending: Ending,
    error: BaseException | None,
    *,
    passed: Passed | None = None,
) -> None:
    """Make the stream's :class:`StreamOutcome`, keep it on ``source`` and give it to the hooks
    (``error``: what the consumer is told; ``passed``: the limit of a timeout); only the
    first time: a stream ends once."""
    if source.outcome is not None:
        return
    now = tally.clock()
    started = tally.started
    outcome = StreamOutcome(
        name=source.name,
        ending=ending,
        limit=None if passed is None else passed.limit,
        error=error,
        items=tally.items,
        progress_items=tally.progress_items,
        elapsed=now - started,
        time_to_first_item=None if tally.first_item_at is None else tally.first_item_at - started,
        time_to_first_progress=None if tally.first_progress_at is None else tally.first_progress_at - started,
        late=None if passed is None else max(0.0, now - passed.bound),  # (timers may run early)
        close_seconds=source.close_seconds,
        close_error=source.close_error,
    )
    source.outcome = outcome
    report(outcome, limits.on_end)


async def pass_through(  # noqa: C901, PLR0912 (the pass-through loop, counting for the outcome)
    backend: Backend, source: Source[T], limits: Limits, first: object, clock: Callable[[], float]
) -> AsyncGenerator[T, Any]:
    """The stream with no limit at all: items pass through; only the ownership of the source
    is kept, ``asend``/``athrow`` forwarded (``first``: one to make the first pull), and the
    items counted for the outcome."""
    started = clock()
    first_at = first_progress_at = None
    items = progressed = 0
    progress = limits.progress
    closing = False

    def tally() -> Tally:
        if progress is None:
            return Tally(clock, started, items, items, first_at, first_at)
        return Tally(clock, started, items, progressed, first_at, first_progress_at)

    try:
        iterator = source.open()
        pulls = iterator if first is None else source.forward(first)
        while True:
            async for item in pulls:  # the interpreter's own loop: nothing per item but the count
                if progress is not None and progress(item):
                    if not progressed:
                        first_progress_at = clock()
                    progressed += 1
                if not items:
                    first_at = clock()
                items += 1
                try:
                    sent = yield item
                except GeneratorExit:
                    closing = True
                    raise
                if sent is not None:
                    pulls = source.forward(sent)
                    break
            else:
                if pulls is iterator:
                    break  # exhausted
                pulls = iterator
    except BaseException as exc:  # noqa: BLE001 (every ending closes the source, then re-raises)
        try:
            await end(backend, source, limits, exc, tally(), closing=closing)
        finally:  # the error's traceback holds this frame, and the source the outcome: no cycle
            source = None  # type: ignore[assignment]
    else:
        try:
            await end(backend, source, limits, None, tally())
        finally:  # (a close error's traceback holds this frame: as above)
            source = None  # type: ignore[assignment]
