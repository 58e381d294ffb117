"""What a stream is allowed: its :class:`Limits`, the shared :class:`Deadline`, and the input
checks that refuse bad values at once, naming the parameter and the fix."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from numbers import Real
from typing import Any, NamedTuple, final

from ._errors import Limit, StreamTimeoutError
from ._outcome import OnEnd
from ._running import BackendName, current_clock

__all__ = ["Deadline", "Limits", "check_close_timeout", "check_on_timeout", "check_seconds"]


@final
class Deadline:
    """A fixed point in time on the running event loop's clock: one budget for several stages.

    Create it inside async code with :meth:`after`; pass it as ``seconds`` to
    :func:`~stream_deadline.with_deadline`, and give what is left of it to other stages::

        budget = Deadline.after(60)
        docs = await retrieve(query, timeout=budget.remaining())
        async for chunk in with_deadline(llm_stream, budget):
            ...

    A stream given a ``Deadline`` does not start its own clock at the first pull: it ends at
    :attr:`when`, whenever it starts. The clock is the one :func:`anyio.current_time` reads:
    ``loop.time()`` on asyncio, :func:`trio.current_time` on trio, so virtual clocks work.

    Attributes:
        when: the deadline, in seconds on the event loop's clock.
        seconds: the seconds it was created with (what a timeout reports as its ``timeout``).
    """

    __slots__ = ("_clock", "backend", "seconds", "when")

    when: float
    seconds: float
    backend: BackendName
    _clock: Callable[[], float]

    def __init__(self) -> None:
        raise TypeError("create a Deadline with Deadline.after(seconds)")

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """Return a deadline ``seconds`` from now on the running event loop's clock.

        ``seconds`` must be a non-negative number; ``math.inf`` gives a deadline that never
        passes. Call it inside async code (asyncio or trio): that is where the clock is.
        """
        value = check_seconds("seconds", seconds, allow_none=False)
        self = object.__new__(cls)
        self.backend, self._clock = current_clock("Deadline.after()")
        self.seconds = math.inf if value is None else value
        self.when = self._clock() + self.seconds
        return self

    def remaining(self) -> float:
        """Seconds left until the deadline; ``0.0`` once it has passed, never negative."""
        return max(0.0, self.when - self._clock())

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self._clock() >= self.when

    def __repr__(self) -> str:
        return f"<Deadline of {self.seconds:g} s, {self.remaining():.3f} s left ({self.backend})>"


class Limits(NamedTuple):
    """The checked limits of one stream (``None`` means "no such limit"), what counts as
    progress, and who is told how it ended."""

    seconds: float | None
    """The total budget (for a shared Deadline, the seconds it was created with)."""
    deadline: Deadline | None
    """A shared deadline that fixes the end in advance; ``None``: the budget starts at the first pull."""
    first_item: float | None
    idle: float | None
    stop: bool
    """``on_timeout="stop"``: end quietly instead of raising."""
    close_timeout: float
    progress: Callable[[Any], object] | None = None
    """Which items end a wait (``first_item``, ``idle``); ``None``: every item."""
    on_end: OnEnd | None = None
    """The stream's own hook, called with its outcome before the global hooks."""

    @property
    def unlimited(self) -> bool:
        """Whether no limit at all is set: the stream then only passes items through."""
        return self.seconds is None and self.first_item is None and self.idle is None

    def deadline_at(self, started: float, backend: BackendName) -> float:
        """The total deadline on the loop's clock, for a stream first pulled at ``started``."""
        if self.deadline is not None:
            if self.deadline.backend != backend:
                raise RuntimeError(
                    f"`seconds` is a Deadline made on {self.deadline.backend}, but the stream runs"
                    f" on {backend}: create the Deadline in the same event loop"
                )
            return self.deadline.when
        return math.inf if self.seconds is None else started + self.seconds

    def error(self, limit: Limit, elapsed: float, items: int, waited: float) -> StreamTimeoutError:
        """The error for ``limit`` passing ``elapsed`` seconds after the first pull, when the
        wait it bounds had lasted ``waited`` seconds."""
        if limit == "deadline":
            return StreamTimeoutError(
                limit, math.inf if self.seconds is None else self.seconds, elapsed, items
            )
        first = limit == "first_item"
        if self.progress is None:
            waited_for = "the first item" if first else "the next item"
        else:
            counts = getattr(self.progress, "__qualname__", None) or repr(self.progress)
            waited_for = f"{'a first' if first else 'an'} item that {counts} counts"
        timeout = self.first_item if first else self.idle
        assert timeout is not None  # noqa: S101 (only a limit that is set passes)
        return StreamTimeoutError(limit, timeout, elapsed, items, waited, waited_for)

    def __repr__(self) -> str:
        shown = [f"{name}={value!r}" for name, value in self._asdict().items() if name != "deadline"]
        return f"Limits({', '.join(shown)})"


def check_seconds(name: str, value: object, *, allow_none: bool = True, origin: str = "") -> float | None:
    """Return ``value`` as float seconds, ``None`` for no limit (``None`` or infinity).

    Raises :class:`TypeError` for anything but a real number (booleans and strings included)
    and :class:`ValueError` for NaN or a negative number, naming the parameter ``name``;
    ``origin`` says where the value came from when the user did not write it directly.
    """
    if value is None and allow_none:
        return None
    where = f"`{name}`{origin}"
    if isinstance(value, bool) or not isinstance(value, Real):
        expected = "a number of seconds" + (" or None" if allow_none else "")
        if isinstance(value, str):
            hint = f"; write {name}=45, not {name}='45'"
        elif isinstance(value, timedelta):
            hint = f"; pass a number of seconds: {name}=<your timedelta>.total_seconds()"
        elif isinstance(value, bool):
            hint = "; booleans are not durations"
        else:
            hint = ""
        raise TypeError(f"{where} must be {expected}, not {type(value).__name__} {value!r}{hint}")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(
            f"{where} is too large to be a number of seconds; for no limit, write"
            f" {name}=math.inf" + (" or None" if allow_none else "")
        ) from None
    if math.isnan(seconds):
        raise ValueError(f"{where} must not be NaN")
    if seconds < 0:
        raise ValueError(f"{where} must be non-negative, got {value!r}")
    if math.isinf(seconds) and allow_none:
        return None
    return seconds or 0.0  # (-0.0 as 0.0: messages say "0 s")


def check_on_timeout(value: object) -> bool:
    """Return whether ``on_timeout`` asks to stop quietly; reject anything but the two words."""
    if isinstance(value, str) and value in ("raise", "stop"):
        return value == "stop"
    raise ValueError(f'`on_timeout` must be "raise" or "stop", not {value!r}')


def check_close_timeout(value: object) -> float:
    """Return ``close_timeout`` as float seconds; infinity means "wait as long as the close takes"."""
    seconds = check_seconds("close_timeout", value, allow_none=False)
    return math.inf if seconds is None else seconds
