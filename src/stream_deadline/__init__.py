"""A deadline for any async iterator, kept no matter which task pulls each item."""

from importlib.metadata import version as _version

from ._core import Seconds, with_deadline
from ._errors import Limit, StreamTimeoutError
from ._limits import Deadline
from ._outcome import Ending, StreamOutcome
from ._stream import DeadlineStream

__all__ = [
    "Deadline",
    "DeadlineStream",
    "Ending",
    "Limit",
    "Seconds",
    "StreamOutcome",
    "StreamTimeoutError",
    "__version__",
    "with_deadline",
]

__version__: str = _version("stream-deadline")
