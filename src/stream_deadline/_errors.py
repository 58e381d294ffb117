"""The error raised when a stream runs out of time."""

from __future__ import annotations

from typing import Literal

__all__ = ["Limit", "StreamTimeoutError"]

Limit = Literal["deadline", "first_item", "idle"]
"""The name of the limit that passed: the total deadline, the first-item limit or the idle limit."""

_WHAT: dict[str, str] = {
    "deadline": "the total deadline",
    "first_item": "the first-item limit",
    "idle": "the idle limit",
}


class StreamTimeoutError(TimeoutError):
    """A limit of a :func:`~stream_deadline.with_deadline` stream passed.

    It subclasses the built-in :class:`TimeoutError`, so ``except TimeoutError`` and
    ``except asyncio.TimeoutError`` catch it too. By the time it reaches you, the source has
    been closed: its ``finally`` blocks have run and its connection is released.

    Attributes:
        limit: which limit passed: ``"deadline"`` (the total budget), ``"first_item"`` (no
            first item in time) or ``"idle"`` (no next item in time).
        timeout: the seconds configured for that limit (for a shared
            :class:`~stream_deadline.Deadline`, the seconds it was created with).
        elapsed: seconds from the first pull to the moment the limit fired, on the event
            loop's clock.
        items: how many items the stream delivered before the limit fired.
        waited: for ``first_item`` and ``idle``, how long the wait that passed the limit had
            lasted (it may span several items that ``progress`` did not count); else ``None``.
        waited_for: what that wait waited for: ``"the first item"``, ``"the next item"``, or,
            with ``progress``, an item it counts (``"a first item that openai_chunk counts"``).
    """

    limit: Limit
    timeout: float
    elapsed: float
    items: int
    waited: float | None
    waited_for: str

    def __init__(  # noqa: PLR0913, PLR0917 (the facts of a timeout, positional as the first four)
        self,
        limit: Limit,
        timeout: float,
        elapsed: float,
        items: int,
        waited: float | None = None,
        waited_for: str = "",
    ) -> None:
        super().__init__()  # (positional arguments would be read as an OSError's errno and strerror)
        self.limit = limit
        self.timeout = timeout
        self.elapsed = elapsed
        self.items = items
        self.waited = waited
        self.waited_for = waited_for

    def __str__(self) -> str:
        # Formatted when read, not when raised: 1.5 us of the ~17 us a cut costs in a storm
        # of 10,000 cuts (benchmarks/streams.py, uvloop).
        wait = "" if self.waited is None else f": waited {self.waited:.3f} s for {self.waited_for},"
        return (
            f"stream timed out: {_WHAT[self.limit]} of {self.timeout:g} s ({self.limit}) passed{wait}"
            f" {self.elapsed:.3f} s after the first pull, with {self.items}"
            f" item{'' if self.items == 1 else 's'} delivered"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(limit={self.limit!r}, timeout={self.timeout!r},"
            f" elapsed={self.elapsed!r}, items={self.items!r}"
            + ("" if self.waited is None else f", waited={self.waited!r}, waited_for={self.waited_for!r}")
            + ")"
        )

    def __reduce__(
        self,
    ) -> tuple[type[StreamTimeoutError], tuple[Limit, float, float, int, float | None, str]]:
        return type(self), (self.limit, self.timeout, self.elapsed, self.items, self.waited, self.waited_for)
