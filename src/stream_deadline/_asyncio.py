"""The asyncio backend (uvloop included): one lazily re-armed timer per stream.

Per pull the hot path reads the clock, checks the deadline and notes which task is pulling;
it never creates a timer, and it pulls with the interpreter's own ``async for``. A single
timer handle, the watchdog, is armed at the first pull for the nearest time any pull could be
due and re-arms itself when it wakes early. When it finds the pulling task past its bound, it
cancels that task; the pull turns that cancellation into
:class:`~stream_deadline.StreamTimeoutError` only when it was ours and no other cancellation
is pending (``Task.uncancel()``), as :func:`asyncio.timeout` does.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import math
import sys
import time
import weakref
from _weakref import _remove_dead_weakref  # type: ignore[attr-defined]  # pyright: ignore[reportUnknownVariableType, reportAttributeAccessIssue]  # (WeakValueDictionary's atomic removal)
from asyncio import CancelledError
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from threading import get_ident
from typing import Any, Final, TypeVar

from ._engine import Limits, Once, ending, forward_send, forward_throw, verdict
from ._errors import Limit, StreamTimeoutError
from ._source import Source, close_failed, close_overran, logger, start

__all__ = ["NAME", "clock", "close", "limited_stream", "task_of"]

NAME: Final = "asyncio"
T = TypeVar("T")
_inf: Final = math.inf
_neg_inf: Final = -math.inf
_CANCELLED_FOR: Final[dict[str, str]] = {
    limit: f"stream_deadline: the {limit} limit passed" for limit in ("deadline", "first_item", "idle")
}
"""The message of the watchdog's cancellation, by limit."""
_EAGER_IDLE: Final = 0.001
"""An ``idle`` limit below this (zero included) is armed by each pull itself: looking ahead
for it, the watchdog would wake on nearly every turn of the loop while no pull is in flight."""


task_of: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]
if sys.version_info >= (3, 12):
    task_of = asyncio.current_task  # implemented in C
else:  # 3.11's current_task() is a Python function around this lookup, which costs a third
    task_of = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]  # noqa: SLF001


def clock() -> Callable[[], float]:
    """The running loop's clock; :func:`time.monotonic` itself where ``loop.time()`` is just that."""
    return _clock_of(asyncio.get_running_loop())


def _clock_of(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    return time.monotonic if type(loop).time is _STOCK_TIME else loop.time


_STOCK_TIME: Final = asyncio.BaseEventLoop.time


async def close(source: Source[Any], close_timeout: float) -> BaseException | None:
    """Close ``source`` within ``close_timeout`` seconds; log and return what went wrong.

    An outside cancellation arriving during the close propagates.
    """
    if source.settled():
        return None
    try:
        rest = start(source.close())
        if rest is None:  # closed without waiting: no timer needed
            return None
    except Exception as exc:  # noqa: BLE001 (returned to the caller, which raises or chains it)
        return close_failed(source, exc)
    scope = asyncio.timeout(None if close_timeout == _inf else close_timeout)
    try:
        async with scope:
            await rest
    except Exception as exc:  # noqa: BLE001 (returned to the caller, which raises or chains it)
        if isinstance(exc, TimeoutError) and scope.expired():
            return close_overran(source, close_timeout)
        return close_failed(source, exc)
    return None


class _Alarms:
    """The watchdogs of one event loop, in one queue behind one timer handle.

    Arming a watchdog is a push onto the queue (no timer handle per stream, which would also
    be ordered by a Python-level ``__lt__`` in the loop's own heap); the one handle is armed
    for the queue's earliest entry. Entries of watchdogs re-armed or stopped since are skipped
    when they come up, and dropped wholesale once they outnumber the live ones. With no live
    watchdog left, the handle is cancelled and the loop forgotten.
    """

    __slots__ = ("__weakref__", "at", "clock", "context", "handle", "live", "loop", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: a loop closed with streams still open (no shutdown_asyncgens) is then garbage
        # together with everything here, which its timer handle and its tasks keep.
        self.loop = weakref.ref(loop)
        self.clock = _clock_of(loop)  # one bound method for all the loop's streams (uvloop's)
        # The callback's own empty context: it needs no context variables, and a context
        # shared with another loop's alarms could not be entered by both threads at once.
        self.context = contextvars.Context()
        self.queue: list[tuple[float, _Watchdog]] = []
        self.live = 0  # watchdogs armed
        self.handle: asyncio.Handle | None = None
        self.at = _inf  # when the handle runs
        key = id(loop)
        # Unregistered when closed, or, collected unclosed (its loop gone), by the callback.
        _ALARMS[key] = weakref.ref(self, functools.partial(_unregister, key))

    def arm(self, watchdog: _Watchdog, when: float) -> None:
        """Wake ``watchdog`` at ``when``, instead of whenever it was to wake before."""
        if watchdog.alarm_at == when:
            return  # (its entry is in the queue already)
        if watchdog.alarm_at == _inf:
            self.live += 1
        watchdog.alarm_at = when
        heapq.heappush(self.queue, (when, watchdog))
        if when < self.at:
            self.schedule(when)
        elif len(self.queue) > 2 * self.live + 64:  # (a stream re-arming on every pull, say)
            self.compact()

    def disarm(self, watchdog: _Watchdog) -> None:
        """Do not wake ``watchdog`` any more."""
        if watchdog.alarm_at < _inf:
            watchdog.alarm_at = _inf
            self.live -= 1
            if not self.live:
                self.close()
            elif len(self.queue) > 2 * self.live + 64:
                self.compact()

    def compact(self) -> None:
        """Drop the entries of watchdogs re-armed or stopped since they were queued."""
        self.queue = [entry for entry in self.queue if entry[1].alarm_at == entry[0]]
        heapq.heapify(self.queue)

    def schedule(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.at = when
        loop = self.loop()
        if loop is not None:  # (a loop gone with streams still open: nothing left to wake)
            self.handle = loop.call_at(when, self.fire, context=self.context)

    def fire(self) -> None:
        """The handle's callback: wake every watchdog that is due, then re-arm the handle."""
        at = self.at
        self.handle, self.at = None, _inf
        loop = self.loop()
        # The armed time counts as reached, even on a clock that reads a little earlier (a
        # virtual or coarse clock standing on its tick); later when the loop runs behind.
        now = at if loop is None else max(at, loop.time())
        queue = self.queue
        due: list[_Watchdog] = []
        while queue and queue[0][0] <= now:
            when, watchdog = heapq.heappop(queue)
            if watchdog.alarm_at == when:  # else re-armed or stopped since
                watchdog.alarm_at = _inf
                self.live -= 1
                due.append(watchdog)
        for watchdog in due:  # after the loop above: what they re-arm for now waits a turn
            watchdog.wake(now)
        queue = self.queue  # (re-arming may have compacted it into a new list)
        while queue and queue[0][1].alarm_at != queue[0][0]:
            heapq.heappop(queue)
        if queue:
            self.schedule(queue[0][0])
        elif not self.live:
            self.close()

    def close(self) -> None:
        """No watchdog left: cancel the handle, forget the loop."""
        if self.handle is not None:
            self.handle.cancel()
        self.handle, self.at = None, _inf
        self.queue.clear()
        loop = self.loop()
        if loop is not None:  # (a live loop: its id is its own)
            entry = _ALARMS.get(id(loop))
            if entry is not None and entry() is self:
                del _ALARMS[id(loop)]


_ALARMS: Final[dict[int, weakref.ref[_Alarms]]] = {}
"""Each loop's alarms, by ``id(loop)``, weakly: they are held only by the loop's streams and
timer handle. (A plain dict of references: a ``WeakValueDictionary`` lookup runs Python code.)"""


def _alarms(loop: asyncio.AbstractEventLoop) -> _Alarms:
    ref = _ALARMS.get(id(loop))
    alarms = None if ref is None else ref()
    if alarms is None or alarms.loop() is not loop:  # (none yet, or a dead loop's id reused)
        alarms = _Alarms(loop)  # (which registers itself)
    return alarms


def _unregister(
    key: int,
    _ref: object,
    registry: dict[int, Any] = _ALARMS,
    remove: Callable[..., None] = _remove_dead_weakref,
) -> None:
    """Delete the entry ``key`` of alarms just collected, in one atomic step, and only while it is dead.

    Another thread may have registered a new loop under the same id since. (The registry and the
    removal are bound as defaults: this may run at interpreter exit, when module globals are gone.)
    """
    remove(registry, key)


class _Watchdog:
    """What the loop's alarms must know of one stream and of its pull in flight.

    The generator notes each pull's task here, and its start when an ``idle`` limit times it
    (the first pull's start is the stream's); :meth:`wake` runs at the armed time.
    """

    __slots__ = (
        "alarm_at",
        "alarms",
        "deadline_at",
        "fired",
        "later",
        "limits",
        "pull_started",
        "puller",
        "source",
    )

    def __init__(self, alarms: _Alarms, source: Source[Any], limits: Limits) -> None:
        """Start the stream's clock (its first pull starts now) and arm for the first bound."""
        started = alarms.clock()
        deadline_at = limits.deadline_at(started, NAME)
        self.alarms = alarms
        self.source: Source[Any] | None = source  # None once stopped (its entry may linger)
        self.deadline_at = deadline_at
        self.limits = limits
        self.puller: asyncio.Task[Any] | None = None  # the task waiting in a pull, if any
        self.pull_started = started
        self.later = False  # whether the pull in flight is a later one (not the first)
        # The limit for which the puller was cancelled, how many of those cancellations are
        # not yet taken back, and the task (one slot for the three: memory per stream counts).
        self.fired: tuple[Limit, int, asyncio.Task[Any]] | None = None
        self.alarm_at = _inf  # when the alarms wake this watchdog (inf: never)
        first = deadline_at
        if limits.first_item is not None and started + limits.first_item < first:
            first = started + limits.first_item
        if limits.idle is not None and limits.idle >= _EAGER_IDLE and started + limits.idle < first:
            first = started + limits.idle
        if first < _inf:
            alarms.arm(self, first)

    def __lt__(self, other: _Watchdog) -> bool:
        """Queue entries of the same time are equal, whichever watchdog they hold."""
        return False

    def arm_by(self, when: float) -> None:
        """Make sure to wake by ``when`` (or by the deadline, if sooner): an alarm due earlier
        stays, as it re-arms for the pull in flight when it wakes."""
        when = min(when, self.deadline_at)
        if when < self.alarm_at:
            self.alarms.arm(self, when)

    def wake(self, when: float) -> None:
        """Run at ``when``: cancel the puller if its pull is due; otherwise re-arm for the
        earliest moment any pull, this one or a later one, could be due. Once fired, cancel
        again every ``close_timeout`` while the pull still does not end (a source whose cleanup
        awaits after the first cancellation)."""
        puller = self.puller
        limits = self.limits
        if self.fired is not None:
            fired, strikes, _ = self.fired
            if puller is not None:
                logger.warning(
                    "the source %s did not stop within close_timeout=%g s of its pull being"
                    " cancelled; cancelling it again",
                    self.describe(),
                    limits.close_timeout,
                )
                self.fired = (fired, strikes + 1, puller)
                puller.cancel(_CANCELLED_FOR[fired])
                self.alarms.arm(self, when + limits.close_timeout)
            return
        limit: Limit
        bound, limit = self.deadline_at, "deadline"
        if puller is not None:
            span = limits.idle if self.later else limits.first_item
            if span is not None and self.pull_started + span < bound:
                bound, limit = self.pull_started + span, ("idle" if self.later else "first_item")
            if bound <= when:
                self.fired = (limit, 1, puller)
                puller.cancel(_CANCELLED_FOR[limit])
                if limits.close_timeout < _inf:
                    self.alarms.arm(self, when + limits.close_timeout)
                return
        if limits.idle is not None and limits.idle >= _EAGER_IDLE and when + limits.idle < bound:
            bound = when + limits.idle  # a pull starting now could be due no sooner
        if when < bound < _inf:
            self.alarms.arm(self, bound)

    def ours(self) -> bool:
        """Whether the cancellation of the task the watchdog cancelled was its alone: take its
        cancellations back (``Task.uncancel()``) and say whether none from elsewhere is pending."""
        if self.fired is None:
            return False
        fired, strikes, task = self.fired
        pending = task.cancelling()
        if strikes:
            for _ in range(strikes):
                pending = task.uncancel()
            self.fired = (fired, 0, task)  # taken back: a second call changes nothing
        return pending == 0

    def ignored(self) -> CancelledError:
        """Log that the source swallowed the cancellation of its pull; return a cancellation
        to raise in its place (and no pull is in flight any more)."""
        self.puller = None
        logger.warning("the source %s ignored the cancellation of its pull", self.describe())
        return CancelledError()

    def describe(self) -> str:
        """Name the source for log messages."""
        return "(closed)" if self.source is None else self.source.describe()

    def stop(self) -> None:
        """Disarm: the stream has ended. Let go of the source too: the queue entry may stay
        behind until its time comes or the queue is compacted."""
        self.puller = None
        self.source = None
        self.alarms.disarm(self)


async def limited_stream(
    source: Source[T], limits: Limits, loop: asyncio.AbstractEventLoop | None = None, thread: int = 0
) -> AsyncGenerator[T, Any]:
    """Pull ``source`` under ``limits``; see :func:`~stream_deadline.with_deadline`.

    ``loop`` is the loop that ran in thread ``thread`` when the generator was made: taken as
    the running loop only if it is still running a task in this thread (only one loop runs in
    a thread), which costs less than asking for the running loop again; otherwise (the stream
    was made in one loop and is iterated in another) the running loop is asked for.
    """
    if loop is None or thread != get_ident() or task_of(loop) is None:
        loop = asyncio.get_running_loop()
    del thread  # (an int object this frame would otherwise hold: memory per stream counts)
    watchdog = _Watchdog(_alarms(loop), source, limits)
    now = watchdog.alarms.clock
    started, deadline_at = watchdog.pull_started, watchdog.deadline_at
    # Each later pull checks the clock against `check_at`: minus infinity at first, so that
    # the first later pull tells the watchdog that `idle` bounds the pulls from now on; then
    # the deadline, or minus infinity still with an idle limit, so that every pull notes its
    # start for the watchdog (and, when the limit is too small to look ahead for, arms it).
    # Without one, a later pull's start is never read: the hot path does not store it.
    check_at = _neg_inf
    items = 0.0  # delivered; a float, which counts faster than an int (the float free list)
    expired: StreamTimeoutError | None = None
    pulls: AsyncIterator[T] = source.open()  # the source's iterator, or a forwarded pull
    forward: AsyncIterator[T] | None = None  # a forwarded asend()/athrow(), pulled next
    try:
        if started >= deadline_at:  # a zero budget, or a shared Deadline already past
            expired = limits.error("deadline", 0.0, 0)
            raise expired  # noqa: TRY301 (handled by `ending` below, like every end)
        watchdog.puller = task_of(loop)
        try:
            while True:
                # Each pull happens in the `async for` header: the hot path is the loop body.
                async for item in pulls:
                    watchdog.puller = None
                    if watchdog.fired is not None:  # the source swallowed our cancellation, went on
                        raise watchdog.ignored()
                    items += 1.0
                    try:
                        sent = yield item
                    except GeneratorExit:
                        if source.closing_outside:
                            watchdog.stop()
                            return
                        raise
                    except BaseException as thrown:  # noqa: BLE001 (athrow(): forwarded to the source)
                        forward = Once(forward_throw(source.open(), thrown))
                    else:
                        if sent is not None:
                            forward = Once(forward_send(source.open(), sent))
                    # The consumer's next __anext__ (or asend/athrow) starts here.
                    t = now()
                    if t >= check_at:
                        if t >= deadline_at:
                            expired = limits.error("deadline", t - started, items)
                            raise expired
                        if limits.idle is None:
                            check_at = deadline_at
                        else:
                            watchdog.pull_started = t
                            if limits.idle < _EAGER_IDLE:
                                watchdog.arm_by(t + limits.idle)
                        watchdog.later = True
                    watchdog.puller = task_of(loop)
                    if forward is not None:
                        break
                else:
                    if watchdog.fired is not None:  # the source swallowed our cancellation and ended
                        raise watchdog.ignored()
                    if pulls is source.iterator:
                        break  # the source is exhausted
                pulls, forward = (source.open(), None) if forward is None else (forward, None)
        except CancelledError:
            if not watchdog.ours():  # not ours, or another one is pending
                if watchdog.fired is not None and watchdog.puller is None:  # ignored(): ours stands in
                    # The source swallowed the other cancellation too, or it is still on its
                    # way (an anyio scope delivers a turn later): let it land as itself, so
                    # that its scope knows it. If it does not come, this one stands in for it.
                    watchdog.stop()  # (no second cancellation meanwhile)
                    await asyncio.sleep(0)
                raise
        if watchdog.fired is not None:  # cut by the watchdog (its CancelledError is gone by now)
            # A cancellation requested in the same tick as ours but not yet delivered (anyio's
            # scopes deliver on the next loop iteration) wins over the timeout: let it land
            # before anything is built (with thousands of streams cut at once, what each
            # holds across this turn of the loop adds up to collections).
            watchdog.stop()
            await asyncio.sleep(0)
            expired = limits.error(watchdog.fired[0], now() - started, items)
            raise expired  # noqa: TRY301 (handled by `ending` below, like every end)
    except BaseException as exc:  # noqa: BLE001 (every ending closes the source, then re-raises)
        watchdog.stop()
        if watchdog.fired is not None:
            # The source turned our cancellation into another error: that error propagates, as
            # with asyncio.timeout, but the cancellation is taken back all the same.
            watchdog.ours()
        if not isinstance(exc, GeneratorExit) and source.settled():  # (after a cut, mostly)
            error = verdict(limits, exc, expired, None)  # nothing to close: no need to wait
        else:
            error = await ending(close, source, limits, exc, expired)
        if expired is not None and watchdog.fired is None:
            # Found by the pull's own check: as above, let a cancellation of this same tick land.
            await asyncio.sleep(0)
        if error is not None:
            try:
                raise error  # the stream's own error, or `exc` itself, re-raised
            finally:
                # The traceback holds this frame: drop the frame's references to the error,
                # or every cut leaves a reference cycle to the garbage collector.
                error = expired = None
        return
    watchdog.stop()
    error = await ending(close, source, limits, None, None)
    if error is not None:
        raise error
