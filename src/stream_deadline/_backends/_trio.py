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
from .._source import Source, close_failed, close_overran

__all__ = ["BACKEND", "stream"]

T = TypeVar("T")


async def stream(source: Source[T], limits: Limits, first: object) -> AsyncGenerator[T, Any]:
    """Pull ``source`` under ``limits`` (``first``: a forwarded first pull); see
    :func:`~stream_deadline.with_deadline`."""
    now = trio.current_time
    items = 0
    try:
        started = now()
        deadline = limits.deadline_at(started, "trio")
        pull_next = source.open().__anext__
        sent = first
        idle = limits.idle
        span = limits.first_item
        span_limit: Limit = "first_item"
        while True:
            t = now()
            if t >= deadline:
                raise Passed("deadline", t - started, items)
            limit: Limit
            if span is not None and t + span < deadline:
                bound, limit = t + span, span_limit
            else:
                bound, limit = deadline, "deadline"
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
                    raise Passed(limit, now() - started, items) from None
                break  # exhausted
            if scope.cancel_called:  # cut: the pull was cancelled at its bound
                if not scope.cancelled_caught:
                    warn_went_on(source, limit, "returned an item; the item is dropped")
                raise Passed(limit, now() - started, items)
            items += 1
            sent = yield item  # pyright: ignore[reportPossiblyUnboundVariable, reportReturnType] (bound: a cut raised above)
            span, span_limit = idle, "idle"  # from the second pull on
    except BaseException as exc:  # noqa: BLE001 (every ending closes the source, then re-raises)
        await end(BACKEND, source, limits, exc)
    else:
        await end(BACKEND, source, limits, None)


async def close(source: Source[Any], close_timeout: float) -> BaseException | None:
    """Close ``source`` within ``close_timeout`` seconds, shielded from outside cancellation
    (which is delivered at the consumer's next checkpoint); log and return what went wrong."""
    if source.settled():
        return None
    with trio.CancelScope(deadline=trio.current_time() + close_timeout, shield=True) as scope:
        try:
            await source.close()
        except Exception as exc:  # noqa: BLE001 (returned to the caller, which raises or chains it)
            return close_failed(source, exc)
    return close_overran(source, close_timeout) if scope.cancelled_caught else None


BACKEND: Final = Backend(close, trio.lowlevel.checkpoint)
