"""How a stream ended, told once: :class:`StreamOutcome`, the hooks that receive it, the
logging hook they start with, and the library's logger."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple

from ._errors import Limit

__all__ = [
    "Ending",
    "LoggingHook",
    "OnEnd",
    "StreamOutcome",
    "Tally",
    "get_on_end_hooks",
    "logger",
    "report",
    "set_on_end_hooks",
]

logger = logging.getLogger("stream_deadline")
"""Every message of the library goes through this logger."""

Ending = Literal["exhausted", "timeout", "error", "cancelled", "closed", "abandoned"]
"""How a stream ended: its source ran out; a limit passed; an error or an outside cancellation
reached the consumer; it was closed (``aclose()``, ``async with``); or it was finalized
without being closed (garbage-collected, or closed by the event loop's shutdown)."""


class StreamOutcome(NamedTuple):
    """How one stream ended: what :attr:`DeadlineStream.outcome` holds once it has, and what
    the ``on_end`` hooks receive. Times are seconds on the event loop's clock. Immutable;
    ``outcome._asdict()`` gives its fields as a dict (for a log line or span attributes).

    Attributes:
        name: the stream's ``name`` (by default the decorated function's qualified name, or
            the source's type name).
        ending: ``"exhausted"``, ``"timeout"``, ``"error"``, ``"cancelled"``, ``"closed"`` or
            ``"abandoned"`` (see :data:`Ending`).
        limit: for a timeout, the limit that passed: ``"deadline"``, ``"first_item"`` or
            ``"idle"``; otherwise ``None``.
        error: the exception the consumer saw, if any (``None`` for a timeout with
            ``on_timeout="stop"``).
        items: items delivered.
        progress_items: items delivered that ``progress`` counted (all of them without one).
        elapsed: from the first pull to the end (when the consumer was told).
        time_to_first_item: from the first pull to the first item, or ``None``.
        time_to_first_progress: from the first pull to the first item ``progress`` counted,
            or ``None``.
        late: for a timeout, from the moment the limit passed to the moment the consumer was
            told (closing the source included); otherwise ``None``.
        close_seconds: how long closing the source took, or ``None`` if this stream did not
            close it: nothing was left to close (an async generator that ended by itself,
            as one does when its cut pull's cancellation ran through it).
        close_error: what closing the source raised (or the ``TimeoutError`` of a close that
            overran ``close_timeout``), or ``None``.
    """

    name: str
    ending: Ending
    limit: Limit | None = None
    error: BaseException | None = None
    items: int = 0
    progress_items: int = 0
    elapsed: float = 0.0
    time_to_first_item: float | None = None
    time_to_first_progress: float | None = None
    late: float | None = None
    close_seconds: float | None = None
    close_error: BaseException | None = None


class Tally(NamedTuple):
    """What a pull loop counted, handed to the ending once: times on the loop's clock."""

    clock: Callable[[], float]
    started: float
    items: int
    progress_items: int
    first_item_at: float | None
    first_progress_at: float | None


OnEnd = Callable[[StreamOutcome], object]
"""A hook: called with the :class:`~stream_deadline.StreamOutcome` of every stream once it has
ended."""


class LoggingHook:
    """The hook installed by default: logs each timeout at ``INFO`` (the error's text, or with
    ``on_timeout="stop"`` a line that says so) and every other ending at ``DEBUG``, through
    the ``stream_deadline`` logger."""

    def __call__(self, outcome: StreamOutcome) -> None:
        if outcome.ending == "timeout":
            if outcome.error is not None:
                logger.info("%s", outcome.error)
            else:
                logger.info(
                    "stream %s timed out: the %s limit passed %.3f s after the first pull, with %d"
                    " item(s) delivered; stopping quietly (on_timeout='stop')",
                    outcome.name,
                    outcome.limit,
                    outcome.elapsed,
                    outcome.items,
                )
        elif outcome.ending in ("error", "abandoned"):
            logger.debug("stream %s ended: %s (%r)", outcome.name, outcome.ending, outcome.error)
        else:
            logger.debug("stream %s ended: %s", outcome.name, outcome.ending)

    def __repr__(self) -> str:
        return "LoggingHook()"


_DEFAULT_HOOKS: tuple[OnEnd, ...] = (LoggingHook(),)
_hooks: tuple[OnEnd, ...] = _DEFAULT_HOOKS


def set_on_end_hooks(hooks: Iterable[OnEnd] | None) -> None:
    """Call ``hooks`` with the outcome of every stream that ends from now on, in this order.

    ``None`` restores the default (a :class:`LoggingHook`); an empty list calls nothing,
    logging included. Each hook is called once per stream, after its source was closed and
    before the consumer is told; an exception in a hook is logged, never raised.
    """
    global _hooks  # noqa: PLW0603 (one process-wide setting, replaced whole)
    if hooks is None:
        _hooks = _DEFAULT_HOOKS
        return
    chosen = tuple(hooks)
    for hook in chosen:
        if not callable(hook):
            raise TypeError(
                f"set_on_end_hooks() takes callables that receive a StreamOutcome, not"
                f" {type(hook).__name__} {hook!r}"
            )
    _hooks = chosen


def get_on_end_hooks() -> tuple[OnEnd, ...]:
    """The hooks every stream's outcome goes to (see :func:`set_on_end_hooks`)."""
    return _hooks


def report(outcome: StreamOutcome, on_end: OnEnd | None) -> None:
    """Give ``outcome`` to the stream's ``on_end``, then to every global hook; log, never
    raise, what one of them raises."""
    for hook in _hooks if on_end is None else (on_end, *_hooks):
        try:
            hook(outcome)
        except Exception:
            logger.exception("the on_end hook %r failed on the outcome of stream %s", hook, outcome.name)
