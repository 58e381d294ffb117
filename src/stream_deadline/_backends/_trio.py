"""The trio backend: a cancel scope per pull, with the pull's bound as its deadline.

Trio cancels through scopes only, so each pull runs in a fresh :class:`trio.CancelScope`,
never open across a ``yield`` (PEP 789), as :func:`trio.fail_after` would bound it. A scope
that caught the cancellation turns it into a timeout; if an enclosing scope is cancelled as
well, trio lets that one's cancellation through instead.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from typing import Any, Final, TypeVar

import trio

from .._ending import Backend, Passed, end, warn_went_on
from .._errors import Limit
from .._limits import Limits
from .._outcome import Tally
from .._source import Source, close_failed, close_overran

__all__ = ["BACKEND", "stream"]

T = TypeVar("T")


async def stream(source: Source[T], limits: Limits, first: object) -> AsyncGenerator[T, Any]:
    """Pull ``source`` under ``limits`` (``first``: a forwarded first pull); see
    :func:`~stream_deadline.with_deadline`."""
    now = trio.current_time
    progress = limits.progress
    items = progressed = 0
    first_at = first_progress_at = None
    closing = False
    started = now()
    try:
        deadline = limits.deadline_at(started, "trio")
        pull_next = source.open().__anext__
        sent = first
        span = limits.first_item  # the limit of the wait going on
        span_limit: Limit = "first_item"
        wait_started = started
        ongoing = False  # the wait goes on across the yield: the last item was not progress
        while True:
            t = now()
            if t >= deadline:
                raise Passed("deadline", t, deadline, wait_started)
            if not ongoing:
                wait_started = t
            limit: Limit
            if span is not None and wait_started + span < deadline:
                bound, limit = wait_started + span, span_limit
            else:
                bound, limit = deadline, "deadline"
            if ongoing and bound <= t:  # passed while the consumer held an item that was not progress
                raise Passed(limit, t, bound, wait_started)
            # A bound already passed (a zero limit) is set once the scope is entered: entered
            # with it, trio cancels the scope at once; given it inside, only when the pull
            # waits. So `cancel_called` says whether the pull waited past its bound, and one
            # that returns without waiting delivers its item, as on asyncio.
            scope = trio.CancelScope(deadline=bound if bound > t else math.inf)
            try:
                with scope:
                    if bound <= t:
                        scope.deadline = bound
                    # (asend/athrow is forwarded only now, once the checks above let the pull go)
                    item = await (pull_next() if sent is None else source.forward(sent).__anext__())
            except StopAsyncIteration:
                if scope.cancel_called:
                    warn_went_on(source, limit, "ended")
                    raise Passed(limit, now(), bound, wait_started) from None
                break  # exhausted
            if scope.cancel_called:  # cut: the pull was cancelled at its bound
                if not scope.cancelled_caught:
                    warn_went_on(source, limit, "returned an item; the item is dropped")
                raise Passed(limit, now(), bound, wait_started)
            ongoing = progress is not None and not progress(item)  # pyright: ignore[reportPossiblyUnboundVariable] (bound: a cut raised above)
            if not items:
                first_at = now()
            items += 1
            if not ongoing:
                if not progressed:
                    first_progress_at = now()
                    span, span_limit = limits.idle, "idle"  # the first wait is over
                progressed += 1
            try:
                sent = yield item  # pyright: ignore[reportPossiblyUnboundVariable, reportReturnType] (bound: a cut raised above)
            except GeneratorExit:
                closing = True
                raise
    except BaseException as exc:  # noqa: BLE001 (every ending closes the source, then re-raises)
        tally = Tally(now, started, items, progressed, first_at, first_progress_at)
        try:
            await end(BACKEND, source, limits, exc, tally, closing=closing)
        finally:  # the error's traceback holds this frame, and the source the outcome: no cycle
            source = None  # type: ignore[assignment]
    else:
        tally = Tally(now, started, items, progressed, first_at, first_progress_at)
        try:
            await end(BACKEND, source, limits, None, tally)
        finally:  # (a close error's traceback holds this frame: as above)
            source = None  # type: ignore[assignment]


async def close(source: Source[Any], close_timeout: float) -> BaseException | None:
    """Close ``source`` within ``close_timeout`` seconds, shielded from outside cancellation
    (which is delivered at the consumer's next checkpoint); log and return what went wrong."""
    if source.settled():
        return None
    error = None
    with trio.CancelScope(deadline=trio.current_time() + close_timeout, shield=True) as scope:
        error = await source.close()
    if scope.cancelled_caught:
        return close_overran(source, close_timeout)
    try:
        return None if error is None else close_failed(source, error)
    finally:  # (the error's traceback reaches this frame through `f_back`: no cycle via its locals)
        del source, error


BACKEND: Final = Backend(close, trio.lowlevel.checkpoint, trio.Cancelled)
