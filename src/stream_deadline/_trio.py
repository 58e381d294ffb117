"""The trio backend: a cancel scope per pull, given its deadline only when the pull nears it.

Trio cancels through scopes only, so each pull runs in a fresh :class:`trio.CancelScope`, never
open across a ``yield``. Registering a deadline with trio's run loop costs more than the rest of
the pull together, so a scope is entered without one, and one system task per trio run, the
watchdog, hands a pull its bound as the scope's deadline :data:`NEAR` seconds before the bound,
if the pull is still in flight then. A pull that starts within :data:`NEAR` of its bound gets the
deadline at once. Either way trio itself cancels the pull at exactly its bound, in the same pass
as every other deadline of that instant: ties resolve as they would with a deadline on every
scope. Each pull makes sure a look is due in time (a push onto the watchdog's queue only when
none is); the watchdog exits as soon as no stream is left, and when the run ends it hands every
pull in flight its deadline. A scope that caught the cancellation turns it into
:class:`~stream_deadline.StreamTimeoutError`; if an enclosing scope is cancelled as well, the
consumer sees ``trio.Cancelled`` instead.
"""

from __future__ import annotations

import heapq
import itertools
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

NEAR: Final = 0.01
"""Seconds before a pull's bound at which the watchdog gives its scope the deadline; a pull
starting this close to its bound, or closer, gets it at once."""


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


class _Watched:
    """What the watchdog must know of one stream: the pull in flight, if any, and its bound."""

    __slots__ = ("looks_at", "pull", "pull_bound")

    def __init__(self) -> None:
        self.pull: trio.CancelScope | None = None  # the scope of the pull in flight, if any
        self.pull_bound = _inf  # when that pull is due
        self.looks_at = _inf  # when the watchdog looks at this stream next (inf: never)

    def look(self, when: float) -> float:
        """At ``when``: give the pull in flight its bound as its scope's deadline if the bound
        is :data:`NEAR` away or less; return when to look again (``inf``: no need)."""
        scope = self.pull
        if scope is None or scope.deadline != _inf:
            return _inf  # between pulls (the next pull arms its own look), or handed over
        hand_at = self.pull_bound - NEAR
        if hand_at <= when:
            scope.deadline = self.pull_bound
            return _inf
        return hand_at


class _Watchdog:
    """The run's one watchdog task and the streams it watches, in the order it looks at them.

    Invariant: a pull in a scope without a deadline has a look due no later than ``NEAR``
    before its bound (the consumer arms it when the pull starts, if none is due by then).
    """

    def __init__(self) -> None:
        self.queue: list[tuple[float, int, _Watched]] = []
        self.order = itertools.count()  # ties in the queue: first come, first served
        self.watched = 0  # streams being watched
        self.sleep: trio.CancelScope | None = None  # the task's sleep, while it sleeps
        self.closed = False  # the task is gone (the run is ending): scopes take their deadlines

    def watch(self) -> None:
        """Count a stream in (at its first pull that needs the watchdog)."""
        self.watched += 1

    def arm(self, watched: _Watched, when: float) -> None:
        """Look at ``watched`` at ``when`` (never, for ``inf``), instead of when it was due."""
        watched.looks_at = when
        if when < _inf:
            queue = self.queue
            heapq.heappush(queue, (when, next(self.order), watched))
            if len(queue) > 2 * self.watched + 64:  # mostly stale entries: keep the live ones
                self.queue = queue = [entry for entry in queue if entry[2].looks_at == entry[0]]
                heapq.heapify(queue)
            if self.sleep is not None and when < self.sleep.deadline:
                self.sleep.deadline = when

    def forget(self, watched: _Watched) -> None:
        """Stop watching a stream that ended; with none left, the task exits."""
        watched.looks_at = _inf
        self.watched -= 1
        if not self.watched:
            self.queue.clear()
            if self.sleep is not None:
                self.sleep.cancel()

    async def run(self) -> None:
        """Sleep until the next look is due, look at every due stream, repeat; end when no
        stream is left to watch. Cancelled (the run is ending), hand every pull in flight its
        deadline and stay behind as a closed watchdog, so that later pulls take theirs too."""
        try:
            while self.watched:
                with trio.CancelScope(deadline=self.queue[0][0] if self.queue else _inf) as self.sleep:
                    await trio.sleep_forever()
                self.sleep = None
                now = trio.current_time()
                queue = self.queue
                while queue and queue[0][0] <= now:
                    when, _, watched = heapq.heappop(queue)
                    if watched.looks_at == when:  # else stale: re-armed since, or forgotten
                        self.arm(watched, watched.look(now))
                        queue = self.queue  # arm() may have compacted it
        except BaseException:
            self.closed = True
            for _, _, watched in self.queue:
                if watched.pull is not None and watched.pull.deadline == _inf:
                    watched.pull.deadline = watched.pull_bound
            self.queue.clear()
            raise
        finally:
            self.sleep = None
            if not self.closed and _WATCHDOG.get() is self:
                _WATCHDOG.set(None)


_WATCHDOG: Final[trio.lowlevel.RunVar[_Watchdog | None]] = trio.lowlevel.RunVar(
    "stream_deadline_watchdog", default=None
)


def _watchdog() -> _Watchdog:
    """The run's watchdog, its task started if none is running (closed if none can start)."""
    watchdog = _WATCHDOG.get()
    if watchdog is None:
        watchdog = _Watchdog()
        try:
            trio.lowlevel.spawn_system_task(watchdog.run, name="stream_deadline watchdog")
        except RuntimeError:  # the run is ending (an async generator finalized at its end)
            watchdog.closed = True
        _WATCHDOG.set(watchdog)
    return watchdog


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
    watched = _Watched()
    watchdog: _Watchdog | None = None  # started at the first pull that needs it
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
            watched.pull_bound = bound
            hand_at = bound - NEAR  # when the scope must get its deadline, at the latest
            if hand_at <= t:  # near (or zero): trio's own deadline from the start
                watched.pull = scope = trio.CancelScope(deadline=bound)
            else:
                watched.pull = scope = trio.CancelScope()
                if watchdog is None:
                    watchdog = _watchdog()
                    watchdog.watch()
                if watchdog.closed:
                    scope.deadline = bound
                elif watched.looks_at > hand_at:  # no look due in time: arm one
                    watchdog.arm(watched, hand_at)
            try:
                with scope:
                    if pull is None:
                        item = await pull_next()
                    else:
                        item = await pull()
                        pull = None
            except StopAsyncIteration:
                watched.pull = None
                if not (scope.cancel_called and bound > t):
                    break
                # the source swallowed trio.Cancelled and ended: the limit still passed
            watched.pull = None
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
                if source.closing_outside:
                    if watchdog is not None:
                        watchdog.forget(watched)
                    return
                raise
            except BaseException as thrown:  # noqa: BLE001 (athrow(): forwarded to the source)
                pull = forward_throw(iterator, thrown)
            else:
                if sent is not None:
                    pull = forward_send(iterator, sent)
    except BaseException as exc:  # noqa: BLE001 (every ending closes the source, then re-raises)
        watched.pull = None
        if watchdog is not None:
            watchdog.forget(watched)
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
    if watchdog is not None:
        watchdog.forget(watched)
    error = await ending(close, source, limits, None, None)
    if error is not None:
        raise error
