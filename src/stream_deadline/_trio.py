"""The trio backend: one cancel scope per pull, with the pull's bound as its deadline.

Trio cancels through scopes only, so each pull runs in a fresh :class:`trio.CancelScope` whose
deadline is the pull's bound: the cheapest correct use of cancel scopes, and no scope is ever
open across a ``yield``. A scope that caught the cancellation turns it into
:class:`~stream_deadline.StreamTimeoutError`; if an enclosing scope is cancelled as well, the
consumer sees ``trio.Cancelled`` instead.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Final, TypeVar

import trio

from ._engine import Limits, ending, forward_send, forward_throw
from ._errors import Limit, StreamTimeoutError
from ._source import Source, close_failed, close_overran, logger

__all__ = ["NAME", "clock", "close", "limited_stream"]

NAME: Final = "trio"
T = TypeVar("T")
_inf: Final = math.inf


def clock() -> Callable[[], float]:
    """Trio's clock (a ``MockClock`` when the run uses one)."""
    return trio.current_time


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


async def limited_stream(source: Source[T], limits: Limits) -> AsyncGenerator[T, Any]:
    """Pull ``source`` under ``limits``; see :func:`~stream_deadline.with_deadline`."""
    now = trio.current_time
    started = now()
    deadline_at = limits.deadline_at(started, NAME)
    first_item, idle = limits.first_item, limits.idle
    iterator = source.open()
    pull_next = iterator.__anext__
    pull: Callable[[], Awaitable[T]] | None = None  # set by asend()/athrow() for one pull
    items = 0
    expired: StreamTimeoutError | None = None
    try:
        while True:
            t = now()
            if t >= deadline_at:
                expired = limits.error("deadline", t - started, items)
                raise expired  # noqa: TRY301 (handled by `ending` below, like every end)
            span = idle if items else first_item
            limit: Limit
            if span is not None and t + span < deadline_at:
                bound, limit = t + span, ("idle" if items else "first_item")
            else:
                bound, limit = deadline_at, "deadline"
            scope = trio.CancelScope(deadline=bound)
            try:
                with scope:
                    if pull is None:
                        item = await pull_next()
                    else:
                        item = await pull()
                        pull = None
            except StopAsyncIteration:
                if not (scope.cancel_called and bound > t):
                    break
                # the source swallowed trio.Cancelled and ended: the limit still passed
            # A scope whose deadline had passed on entry (a zero limit) is cancelled at once,
            # but a pull that completes without a checkpoint delivers its item, as on asyncio.
            if scope.cancelled_caught or (scope.cancel_called and bound > t):
                if not scope.cancelled_caught:  # the source swallowed trio.Cancelled and went on
                    logger.warning("the source %s ignored the cancellation of its pull", source.describe())
                expired = limits.error(limit, now() - started, items)
                raise expired  # noqa: TRY301
            items += 1
            try:
                sent = yield item  # pyright: ignore[reportPossiblyUnboundVariable, reportReturnType] (bound: a cancel raised above)
            except GeneratorExit:
                raise
            except BaseException as thrown:  # noqa: BLE001 (athrow(): forwarded to the source)
                pull = forward_throw(iterator, thrown)
            else:
                if sent is not None:
                    pull = forward_send(iterator, sent)
    except BaseException as exc:  # noqa: BLE001 (every ending closes the source, then re-raises)
        error = await ending(close, source, limits, exc, expired)
        if expired is not None:
            # A cancellation of an enclosing scope in the same instant wins over the timeout:
            # a full checkpoint lets any task woken together with this one act first.
            await trio.lowlevel.checkpoint()
        if error is not None:
            try:
                raise error  # the stream's own error, or `exc` itself, re-raised
            finally:
                error = expired = None  # no reference cycle frame -> error -> traceback -> frame
        return
    error = await ending(close, source, limits, None, None)
    if error is not None:
        raise error
