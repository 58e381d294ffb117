"""How every stream ends: close the source once, then raise what the consumer must see.

Both pull loops (and the pass-through for a stream without limits) end through :func:`end`,
whatever ended them: the source exhausted, a limit passed (:class:`Passed`), an error, a
cancellation, or the stream closed (``GeneratorExit``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from ._errors import Limit
from ._limits import Limits
from ._source import Source, logger

__all__ = ["Backend", "Passed", "end", "pass_through", "warn_went_on"]

T = TypeVar("T")


class Backend(NamedTuple):
    """What the ending needs of an event loop; ``_backends._asyncio`` and ``_trio`` each make one."""

    close: Callable[[Source[Any], float], Awaitable[BaseException | None]]
    """Close the source within ``close_timeout``; log and return what went wrong, if anything."""
    checkpoint: Callable[[], Awaitable[None]]
    """Let the event loop run once: a cancellation pending for this task lands there."""


class Passed(Exception):  # noqa: N818 (flow control inside the pull loops, never seen outside)
    """Raised in a pull loop when a limit has passed: :func:`end` turns it into the
    :class:`~stream_deadline.StreamTimeoutError` once the source is closed."""

    limit: Limit
    elapsed: float
    items: int

    def __init__(self, limit: Limit, elapsed: float, items: int) -> None:
        super().__init__(limit, elapsed, items)
        self.limit = limit
        self.elapsed = elapsed
        self.items = items


def warn_went_on(source: Source[Any], limit: Limit, what: str) -> None:
    """Log that the source went on after ``limit`` cut its pull: it ``what``."""
    logger.warning(
        "the source %s went on after the %s limit cut its pull (it caught the cancellation,"
        " was shielded from it, or its item came in as the limit passed) and %s",
        source.describe(),
        limit,
        what,
    )


async def end(backend: Backend, source: Source[Any], limits: Limits, exc: BaseException | None) -> None:
    """Close the source, then raise what ended the stream; return for a quiet end.

    ``exc`` is what ended it (``None``: the source was exhausted). A close that fails or
    overruns ``close_timeout`` is logged; it is raised when nothing else is (an exhausted
    source) and chained as the cause of a timeout. A limit that passed is raised as
    :class:`~stream_deadline.StreamTimeoutError`, or ends quietly with ``on_timeout="stop"``,
    after one checkpoint: a cancellation from outside that arrived with the timeout wins.
    """
    error: BaseException | None = None
    try:
        problem = await backend.close(source, limits.close_timeout)
        if isinstance(exc, Passed):
            await backend.checkpoint()
            error = limits.error(exc.limit, exc.elapsed, exc.items)
            logger.info("%s%s", error, "; stopping quietly (on_timeout='stop')" if limits.stop else "")
            if not limits.stop:
                raise error from problem
        elif exc is not None:
            raise exc
        elif problem is not None:
            raise problem
    finally:
        exc = problem = error = None  # the traceback holds this frame: no cycle through its locals


async def pass_through(
    backend: Backend, source: Source[T], limits: Limits, first: object
) -> AsyncGenerator[T, Any]:
    """The stream with no limit at all: items pass through; only the ownership of the source
    is kept, and ``asend``/``athrow`` forwarded (``first``: one to make the first pull)."""
    try:
        iterator = source.open()
        pulls = iterator if first is None else source.forward(first)
        while True:
            async for item in pulls:  # the interpreter's own loop: nothing per item but the yield
                sent = yield item
                if sent is not None:
                    pulls = source.forward(sent)
                    break
            else:
                if pulls is iterator:
                    break  # exhausted
                pulls = iterator
    except BaseException as exc:  # noqa: BLE001 (every ending closes the source, then re-raises)
        await end(backend, source, limits, exc)
    else:
        await end(backend, source, limits, None)
