"""The engine's shared part: the limits, how a stream ends, and ``asend``/``athrow`` forwarding.

The backends (``_asyncio``, ``_trio``) each hold one generator that pulls under limits; they
share everything here, and a generator with no limit at all needs no backend-specific pull.
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from ._deadline import Deadline
from ._errors import Limit, StreamTimeoutError
from ._source import Source, logger

__all__ = [
    "Closer",
    "Limits",
    "Once",
    "ending",
    "forward_send",
    "forward_throw",
    "unlimited_stream",
    "verdict",
]

T = TypeVar("T")

Closer: TypeAlias = Callable[[Source[Any], float], Awaitable[BaseException | None]]
"""A backend's ``close(source, close_timeout)``: closes within the bound, returns the problem."""


@dataclass(slots=True)
class Limits:
    """The validated limits of one stream; ``None`` means "no such limit". Never changed
    once made (not ``frozen``: a frozen dataclass costs a few hundred ns more to create, on
    every ``with_deadline()`` call)."""

    seconds: float | None
    """The total budget in seconds (for a shared Deadline, the seconds it was created with)."""
    deadline: Deadline | None
    """A shared deadline that fixes the end in advance, or ``None``: the budget starts at the first pull."""
    first_item: float | None
    idle: float | None
    stop: bool
    """``on_timeout="stop"``: end quietly instead of raising."""
    close_timeout: float
    unlimited: bool = field(init=False, repr=False, compare=False)
    """Whether no limit at all is set: the stream then only passes items through."""

    def __post_init__(self) -> None:
        self.unlimited = self.seconds is None and self.first_item is None and self.idle is None

    def deadline_at(self, started: float, backend: str) -> float:
        """The total deadline on the loop's clock for a stream first pulled at ``started``
        on ``backend`` (``"asyncio"`` or ``"trio"``)."""
        if self.deadline is not None:
            if self.deadline.backend != backend:
                raise RuntimeError(
                    f"`seconds` is a Deadline made on {self.deadline.backend}, but the stream runs"
                    f" on {backend}: create the Deadline in the same event loop"
                )
            return self.deadline.when
        return math.inf if self.seconds is None else started + self.seconds

    def error(self, limit: Limit, elapsed: float, items: float) -> StreamTimeoutError:
        """The error for ``limit`` passing ``elapsed`` seconds after the first pull, with
        ``items`` delivered (a whole number; the asyncio backend counts in a float)."""
        timeout = (
            self.seconds if limit == "deadline" else self.first_item if limit == "first_item" else self.idle
        )
        return StreamTimeoutError(limit, math.inf if timeout is None else timeout, elapsed, int(items))


def forward_send(iterator: AsyncIterator[Any], value: object) -> Callable[[], Awaitable[Any]]:
    """The next pull after ``asend(value)``: the source's own ``asend``."""
    asend = getattr(iterator, "asend", None)
    if asend is None:
        raise TypeError(
            f"asend(): the source {type(iterator).__qualname__} is not an async generator"
            " and cannot receive values; use asend(None) or anext()"
        )
    return functools.partial(asend, value)


def forward_throw(iterator: AsyncIterator[Any], exc: BaseException) -> Callable[[], Awaitable[Any]]:
    """The next pull after ``athrow(exc)``: the source's own ``athrow``, or ``exc`` raised here
    when the source has none (as in a generator that does not catch it)."""
    athrow = getattr(iterator, "athrow", None)
    if athrow is None:
        raise exc
    return functools.partial(athrow, exc)


async def ending(
    close: Closer,
    source: Source[Any],
    limits: Limits,
    exc: BaseException | None,
    expired: StreamTimeoutError | None,
) -> BaseException | None:
    """Close the source after the stream ended; return what the consumer must see, if anything.

    ``exc`` is what ended the stream (``None``: the source was exhausted) and ``expired`` the
    stream's own timeout, if one fired. A close that fails or overruns ``close_timeout`` is
    logged by ``close``; it surfaces when nothing else does (normal end, ``aclose()``)
    and is chained as the cause of a timeout.
    """
    if isinstance(exc, GeneratorExit):
        # The generator closed directly (by the loop's finalizer, say): close the source and
        # leave any problem for the stream to raise. (Closed by DeadlineStream.aclose(), a
        # generator stops at its `yield` without coming here: see `Source.closing_outside`.)
        source.close_error = await close(source, limits.close_timeout)
        return None
    return verdict(limits, exc, expired, await close(source, limits.close_timeout))


def verdict(
    limits: Limits,
    exc: BaseException | None,
    expired: StreamTimeoutError | None,
    problem: BaseException | None,
) -> BaseException | None:
    """What the consumer must see once the source is closed: see :func:`ending`, of which this
    is the part after the close (``problem``: what closing went wrong with, if anything).

    A backend may call it directly when there is nothing to close (``Source.settled()``),
    unless the stream ends with ``GeneratorExit``.
    """
    if exc is None:
        return problem
    if expired is not None and exc is expired:
        if problem is not None:
            exc.__cause__ = problem
        logger.info("%s%s", exc, "; stopping quietly (on_timeout='stop')" if limits.stop else "")
        return None if limits.stop else exc
    return exc


class Once(AsyncIterator[T]):
    """One forwarded ``asend``/``athrow``, as an iterator of at most one item."""

    __slots__ = ("_pull",)

    def __init__(self, pull: Callable[[], Awaitable[T]]) -> None:
        self._pull: Callable[[], Awaitable[T]] | None = pull

    async def __anext__(self) -> T:
        pull, self._pull = self._pull, None
        if pull is None:
            raise StopAsyncIteration
        return await pull()


async def unlimited_stream(close: Closer, source: Source[T], limits: Limits) -> AsyncGenerator[T, Any]:
    """No limit at all: pass items through, keeping only the ownership of the source.

    It pulls with the interpreter's own ``async for``; an ``asend``/``athrow`` is forwarded as
    a one-item iterator pulled next, after which the source's own iteration resumes.
    """
    iterator = source.open()
    pulls: AsyncIterator[T] = iterator
    forward: AsyncIterator[T] | None = None
    try:
        while True:
            async for item in pulls:
                try:
                    sent = yield item
                except GeneratorExit:
                    if source.closing_outside:
                        return
                    raise
                except BaseException as thrown:  # noqa: BLE001 (athrow(): forwarded to the source)
                    forward = Once(forward_throw(iterator, thrown))
                else:
                    if sent is not None:
                        forward = Once(forward_send(iterator, sent))
                if forward is not None:
                    break
            else:
                if pulls is iterator:
                    break  # the source is exhausted
            pulls, forward = (iterator, None) if forward is None else (forward, None)
    except BaseException as exc:  # noqa: BLE001 (every ending closes the source, then re-raises)
        error = await ending(close, source, limits, exc, None)
        if error is not None:
            try:
                raise error  # `exc` itself, or the close's error on aclose()
            finally:
                error = None  # no reference cycle frame -> error -> traceback -> frame
        return
    error = await ending(close, source, limits, None, None)
    if error is not None:
        raise error
