"""A point in time on the event loop's clock, shared by several stages."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import final

from ._validate import check_seconds

__all__ = ["Deadline"]


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
    backend: str
    _clock: Callable[[], float]

    def __init__(self) -> None:
        raise TypeError("create a Deadline with Deadline.after(seconds)")

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """Return a deadline ``seconds`` from now on the running event loop's clock.

        ``seconds`` must be a non-negative number; ``math.inf`` gives a deadline that never
        passes. Call it inside async code (asyncio or trio): that is where the clock is.
        """
        from ._backends import current_backend  # noqa: PLC0415 (a cycle otherwise)

        value = check_seconds("seconds", seconds, allow_none=False)
        backend = current_backend("Deadline.after()")
        clock = backend.clock()
        self = object.__new__(cls)
        self._clock = clock
        self.backend = backend.NAME
        self.seconds = math.inf if value is None else value
        self.when = clock() + self.seconds
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
