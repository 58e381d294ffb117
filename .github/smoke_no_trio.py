"""Smoke test of an install without trio: import, keep a deadline on asyncio, never import trio.

Run by CI's ``no-trio`` job with the package installed from the wheel and nothing else.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import stream_deadline
from stream_deadline import Deadline, StreamTimeoutError, with_deadline

assert importlib.util.find_spec("trio") is None, "this check must run without trio installed"


async def ticks() -> object:
    while True:
        await asyncio.sleep(0.01)
        yield "tick"


async def main() -> None:
    items = 0
    try:
        async for _ in with_deadline(ticks(), 0.2, first_item=1, idle=1):
            items += 1
    except StreamTimeoutError as exc:
        assert exc.limit == "deadline", exc
        assert items > 0, items
    else:
        raise AssertionError("the deadline never passed")
    budget = Deadline.after(5)
    assert 0 < budget.remaining() <= 5
    assert not budget.expired


asyncio.run(main())
assert "trio" not in sys.modules
print(f"stream_deadline {stream_deadline.__version__} works without trio")
