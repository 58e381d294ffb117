"""Every parameter against every kind of bad value (issue 6, part 4; semantic 12).

``test_api.py`` covers the limit parameters against negatives, NaN, booleans, strings, lists
and complex numbers, and a few ``on_timeout``/``close_timeout``/``source`` cases. This table
is the full cross product: every parameter (``source``, ``seconds``, ``first_item``,
``idle``, ``on_timeout``, ``close_timeout``, and the result of a per-call ``seconds``
callable), in both the wrapper and the decorator form, against a wrong type, a negative
number, NaN, both infinities, a boolean, a string, ``None``, zero and a number-like
non-number. Each value either works as documented (infinity means no limit) or fails at
once, before anything is iterated, with the documented error type and a message that names
the parameter.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import anyio
import pytest
import trio.testing

from stream_deadline import DeadlineStream, StreamTimeoutError, with_deadline

OK = "ok"

VALUES: dict[str, object] = {
    "object": object(),
    "list": [5],
    "negative": -1,
    "negative-float": -0.001,
    "NaN": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "True": True,
    "False": False,
    "string": "5",
    "bytes": b"5",
    "None": None,
    "zero": 0,
    "Fraction": Fraction(5, 2),
    "Decimal": Decimal(5),
    "huge": 10**400,  # a real number that no float can hold
    "negative-zero": -0.0,
}

# What each limit-like parameter does with each value: OK, or (error type, text in the message).
LIMIT: dict[str, Any] = {
    "object": (TypeError, "must be a number of seconds or None, not object"),
    "list": (TypeError, "not list"),
    "negative": (ValueError, "must be non-negative, got -1"),
    "negative-float": (ValueError, "must be non-negative"),
    "NaN": (ValueError, "must not be NaN"),
    "inf": OK,
    "-inf": (ValueError, "must be non-negative, got -inf"),
    "True": (TypeError, "booleans are not durations"),
    "False": (TypeError, "booleans are not durations"),
    "string": (TypeError, "write {name}=45, not {name}='45'"),
    "bytes": (TypeError, "not bytes"),
    "None": OK,
    "zero": OK,
    "Fraction": OK,
    "Decimal": (TypeError, "not Decimal"),  # not a numbers.Real: refused, never silently rounded
    "huge": (ValueError, "is too large to be a number of seconds; for no limit, write {name}=math.inf"),
    "negative-zero": OK,  # zero
}
CLOSE_TIMEOUT = LIMIT | {
    "object": (TypeError, "must be a number of seconds, not object"),
    "None": (TypeError, "must be a number of seconds, not NoneType"),
}
ON_TIMEOUT_VALUES = {**VALUES, "raise": "raise", "stop": "stop", "RAISE": "RAISE", "one": 1}
ON_TIMEOUT = dict.fromkeys(ON_TIMEOUT_VALUES, (ValueError, '`on_timeout` must be "raise" or "stop"')) | {
    "raise": OK,
    "stop": OK,
}
SOURCE = {
    "object": (TypeError, "`source` must be an async iterable, not object"),
    "list": (TypeError, "`source` must be an async iterable, but list is a sync iterable"),
    "negative": (TypeError, "`source` must be an async iterable, not int"),
    "negative-float": (TypeError, "`source` must be an async iterable, not float"),
    "NaN": (TypeError, "`source` must be an async iterable, not float"),
    "inf": (TypeError, "`source` must be an async iterable, not float"),
    "-inf": (TypeError, "`source` must be an async iterable, not float"),
    "True": (TypeError, "`source` must be an async iterable, not bool"),
    "False": (TypeError, "`source` must be an async iterable, not bool"),
    "string": (TypeError, "`source` must be an async iterable, but str is a sync iterable"),
    "bytes": (TypeError, "`source` must be an async iterable, but bytes is a sync iterable"),
    "None": (TypeError, "`source` must be an async iterable, not NoneType"),
    "zero": (TypeError, "`source` must be an async iterable, not int"),
    "Fraction": (TypeError, "`source` must be an async iterable, not Fraction"),
    "Decimal": (TypeError, "`source` must be an async iterable, not Decimal"),
    "huge": (TypeError, "`source` must be an async iterable, not int"),
    "negative-zero": (TypeError, "`source` must be an async iterable, not float"),
}


async def agen() -> AsyncGenerator[int, None]:
    await anyio.sleep(10)
    yield 1
    await anyio.sleep(1)


def limit_kwargs(name: str, value: object) -> tuple[object, dict[str, Any]]:
    if name == "seconds":
        return value, {}
    return 100, {name: value}


def check(expected: Any, name: str, make: Callable[[], object]) -> object:
    """Call ``make``: it must return, or raise the expected error naming ``name``."""
    if expected == OK:
        return make()
    error, text = expected
    with pytest.raises(error) as info:
        make()
    message = str(info.value)
    assert f"`{name}`" in message
    assert text.format(name=name) in message
    return None


async def outcome(stream: Any) -> tuple[str, float]:
    """Pull a stream whose one item comes after 10 s and which ends 1 s later: its items or
    its timeout, and when."""
    start = anyio.current_time()
    try:
        items = [item async for item in stream]
    except StreamTimeoutError as exc:
        return f"timeout:{exc.limit}", anyio.current_time() - start
    return f"items:{items}", anyio.current_time() - start


def run(stream: Any) -> tuple[str, float]:
    return anyio.run(
        outcome,
        stream,
        backend="trio",
        backend_options={"clock": trio.testing.MockClock(autojump_threshold=0)},
    )


ROWS = [(name, kind) for name in ("seconds", "first_item", "idle") for kind in VALUES]


@pytest.mark.parametrize(("name", "kind"), ROWS)
@pytest.mark.parametrize("form", ["wrapper", "decorator", "keyword-decorator"])
def test_limit_parameters(name: str, kind: str, form: str) -> None:
    """``seconds``/``first_item``/``idle`` in the wrapper, the positional decorator and the
    keyword decorator (``with_deadline(seconds=...)``): refused at once with the documented
    error naming the parameter, or accepted; an accepted value then behaves as documented
    (``None`` and infinity: no limit, the stream ends at 11 s; zero: the limit passes at
    once, for ``idle`` at the second pull; 2.5: the total and first-item limits pass at
    2.5 s, the idle limit never does)."""
    value = VALUES[kind]
    seconds, kwargs = limit_kwargs(name, value)
    if form == "wrapper":

        def make() -> object:
            return with_deadline(agen(), seconds, **kwargs)
    else:

        def make() -> object:
            decorator = (
                with_deadline(seconds, **kwargs)
                if form == "decorator"
                else with_deadline(seconds=seconds, **kwargs)
            )
            return decorator(agen)()

    stream = check(LIMIT[kind], name, make)
    if stream is None:
        return
    assert isinstance(stream, DeadlineStream)
    limit = {"seconds": "deadline", "first_item": "first_item", "idle": "idle"}[name]
    expected = {
        "inf": ("items:[1]", 11),
        "None": ("items:[1]", 11),
        "zero": (f"timeout:{limit}", 0),
        "negative-zero": (f"timeout:{limit}", 0),
        "Fraction": (f"timeout:{limit}", 2.5),
    }[kind]
    if name == "idle":  # idle does not bound the first pull (10 s), only the second (1 s)
        expected = {"zero": ("timeout:idle", 10), "negative-zero": ("timeout:idle", 10)}.get(
            kind, ("items:[1]", 11)
        )
    assert run(stream) == expected


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_a_per_call_limit_result(kind: str) -> None:
    """The result of a per-call ``seconds`` callable is checked when the decorated function is
    called, with the same errors, naming ``seconds`` and the callable it came from."""

    def limit() -> object:
        return VALUES[kind]

    make_limited = with_deadline(limit)(agen)
    expected = LIMIT[kind]
    if expected != OK:
        error, text = expected
        with pytest.raises(error) as info:
            make_limited()
        message = str(info.value)
        assert message.startswith("`seconds` (returned by "), message
        assert "limit)" in message
        assert text.format(name="seconds") in message
        return
    stream = make_limited()
    assert isinstance(stream, DeadlineStream)
    assert (
        run(stream)[0]
        == {
            "inf": "items:[1]",
            "None": "items:[1]",
            "zero": "timeout:deadline",
            "negative-zero": "timeout:deadline",
            "Fraction": "timeout:deadline",
        }[kind]
    )


@pytest.mark.parametrize("kind", sorted(VALUES))
@pytest.mark.parametrize("form", ["wrapper", "decorator"])
def test_close_timeout(kind: str, form: str) -> None:
    """``close_timeout`` takes a non-negative number; infinity means "wait as long as the
    close takes"; ``None`` is refused (there is no "no close bound" other than infinity)."""

    def make() -> object:
        if form == "wrapper":
            return with_deadline(agen(), 5, close_timeout=VALUES[kind])
        return with_deadline(5, close_timeout=VALUES[kind])

    check(CLOSE_TIMEOUT[kind], "close_timeout", make)


@pytest.mark.parametrize("kind", sorted(ON_TIMEOUT_VALUES))
@pytest.mark.parametrize("form", ["wrapper", "decorator"])
def test_on_timeout(kind: str, form: str) -> None:
    """``on_timeout`` takes exactly the strings "raise" and "stop": any other value, of any
    type and in any case, is refused with ``ValueError`` naming the parameter."""

    def make() -> object:
        if form == "wrapper":
            return with_deadline(agen(), 5, on_timeout=ON_TIMEOUT_VALUES[kind])
        return with_deadline(5, on_timeout=ON_TIMEOUT_VALUES[kind])

    check(ON_TIMEOUT[kind], "on_timeout", make)


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_source(kind: str) -> None:
    """Anything but an async iterable as ``source`` is refused with ``TypeError`` naming
    ``source`` (a sync iterable, string or bytes included: they are told to use an async one)."""
    check(SOURCE[kind], "source", lambda: with_deadline(VALUES[kind], 5))


@pytest.mark.parametrize("bad", ["seconds", "first_item", "idle", "on_timeout", "close_timeout"])
def test_the_first_bad_parameter_is_named_even_with_a_bad_source(bad: str) -> None:
    """With a bad option and a bad source together, the error names one of them, never
    neither: nothing is half-built."""
    kwargs: dict[str, Any] = {"first_item": None, "idle": None}
    seconds: object = 5
    if bad == "seconds":
        seconds = -1
    elif bad == "on_timeout":
        kwargs["on_timeout"] = "never"
    else:
        kwargs[bad] = -1
    with pytest.raises((TypeError, ValueError)) as info:
        with_deadline(42, seconds, **kwargs)
    assert f"`{bad}`" in str(info.value) or "`source`" in str(info.value)


@pytest.mark.parametrize(
    ("bad", "equal_good"), [(True, 1), (False, 0), (Decimal(5), 5), (Decimal("2.5"), 2.5)]
)
@pytest.mark.parametrize("options", [{}, {"idle": 1.0, "on_timeout": "stop"}])
def test_a_bad_value_equal_to_a_good_one_seen_before_is_still_refused(
    bad: object, equal_good: float, options: dict[str, Any]
) -> None:
    """Streams with the same limits share them, looked up by value; a value that compares
    (and hashes) equal to an accepted one but has a refused type (a boolean, a Decimal) is
    still refused, after the accepted one was used with the same options."""
    assert bad == equal_good
    assert hash(bad) == hash(equal_good)
    with_deadline(agen(), equal_good, **options)  # accepted, and now shared
    with pytest.raises(TypeError, match="`seconds`"):
        with_deadline(agen(), bad, **options)


def test_on_timeout_raise_spelt_by_another_string_object_is_the_default() -> None:
    """``on_timeout`` is compared by value: a "raise" that is not the default's string object
    (built at run time) is accepted and means raising, like the default."""
    spelt = "".join(["rai", "se"])  # noqa: FLY002 (a string object made at run time)
    assert spelt == "raise"
    stream = with_deadline(agen(), 5, on_timeout=spelt)
    assert stream._limits.stop is False  # (white-box: what the option became)


@pytest.mark.parametrize("name", ["seconds", "first_item", "idle", "close_timeout"])
def test_negative_zero_is_zero(name: str) -> None:
    """``-0.0`` is zero: the limit it makes is ``+0.0``, so a timeout never reports "-0 s",
    not even for a later ``0`` that shares the limits made for it."""
    seconds, kwargs = limit_kwargs(name, -0.0)
    stream = with_deadline(agen(), seconds, **kwargs)
    limits = stream._limits
    value = limits.close_timeout if name == "close_timeout" else getattr(limits, name)
    assert value == 0.0
    assert math.copysign(1.0, value) == 1.0
    if name == "seconds":
        again = with_deadline(agen(), 0)
        assert math.copysign(1.0, again._limits.seconds or 1.0) == 1.0
        with pytest.raises(StreamTimeoutError, match=r"deadline of 0 s") as info:
            run_raw(again)
        assert math.copysign(1.0, info.value.timeout) == 1.0


def run_raw(stream: Any) -> list[int]:
    """Drain ``stream`` on trio's virtual clock; its error propagates."""

    async def drain() -> list[int]:
        return [item async for item in stream]

    return trio.run(drain, clock=trio.testing.MockClock(autojump_threshold=0))
