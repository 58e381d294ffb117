"""A deadline for any async iterator, kept no matter which task pulls each item."""

from importlib.metadata import version as _version

from ._core import DeadlineStream, Seconds, with_deadline
from ._deadline import Deadline
from ._errors import Limit, StreamTimeoutError

__all__ = [
    "Deadline",
    "DeadlineStream",
    "Limit",
    "Seconds",
    "StreamTimeoutError",
    "__version__",
    "with_deadline",
]

__version__: str = _version("stream-deadline")
