"""Checks of user input: fail at once, name the parameter, say how to fix it."""

from __future__ import annotations

import math
from numbers import Real

__all__ = ["check_close_timeout", "check_on_timeout", "check_seconds"]


def check_seconds(name: str, value: object, *, allow_none: bool = True, origin: str = "") -> float | None:
    """Return ``value`` as float seconds, ``None`` for no limit (``None`` or infinity).

    Raises :class:`TypeError` for anything but a real number (booleans and strings included)
    and :class:`ValueError` for NaN or a negative number, naming the parameter ``name``;
    ``origin`` says where the value came from when the user did not write it directly.
    """
    if value is None and allow_none:
        return None
    if type(value) is float or type(value) is int:  # the common case, checked without the ABC
        seconds = _float(value, name, origin, allow_none)
        if 0 <= seconds < math.inf:
            return seconds or 0.0  # (-0.0 as 0.0: messages say "0 s")
    where = f"`{name}`{origin}"
    if isinstance(value, bool) or not isinstance(value, Real):
        expected = "a number of seconds" + (" or None" if allow_none else "")
        if isinstance(value, str):
            hint = f"; write {name}=45, not {name}='45'"
        elif isinstance(value, bool):
            hint = "; booleans are not durations"
        else:
            hint = ""
        raise TypeError(f"{where} must be {expected}, not {type(value).__name__} {value!r}{hint}")
    seconds = _float(value, name, origin, allow_none)
    if math.isnan(seconds):
        raise ValueError(f"{where} must not be NaN")
    if seconds < 0:
        raise ValueError(f"{where} must be non-negative, got {value!r}")
    if math.isinf(seconds) and allow_none:
        return None
    return seconds or 0.0


def _float(value: object, name: str, origin: str, allow_none: bool) -> float:
    """``float(value)``; a number too large for a float is refused naming the parameter."""
    try:
        return float(value)  # type: ignore[arg-type]  # (a real number by now)
    except OverflowError:
        raise ValueError(
            f"`{name}`{origin} is too large to be a number of seconds; for no limit, write"
            f" {name}=math.inf" + (" or None" if allow_none else "")
        ) from None


def check_on_timeout(value: object) -> bool:
    """Return whether ``on_timeout`` asks to stop quietly; reject anything but the two words."""
    if value == "raise" and isinstance(value, str):
        return False
    if value == "stop" and isinstance(value, str):
        return True
    raise ValueError(f'`on_timeout` must be "raise" or "stop", not {value!r}')


def check_close_timeout(value: object) -> float:
    """Return ``close_timeout`` as float seconds; infinity means "wait as long as the close takes"."""
    if type(value) is float and value >= 0:  # (the common case; NaN fails)
        return value or 0.0  # (-0.0 as 0.0)
    seconds = check_seconds("close_timeout", value, allow_none=False)
    return math.inf if seconds is None else seconds
