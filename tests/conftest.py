"""Every async test runs on asyncio and on trio, both on virtual time.

asyncio runs on a ``looptime`` loop and trio with ``MockClock(autojump_threshold=0)``: when
every task waits, the clock jumps to the next timer, so timing assertions are exact and no
test sleeps for real.
"""

from __future__ import annotations

import asyncio
from typing import Any

import looptime
import pytest
import trio.testing


def virtual_time_loop() -> asyncio.AbstractEventLoop:
    """A new asyncio loop whose clock starts at 0 and jumps to the next timer when idle."""
    return looptime.patch_event_loop(asyncio.new_event_loop())


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Both backends on virtual time (a fresh clock per test)."""
    if request.param == "asyncio":
        return "asyncio", {"loop_factory": virtual_time_loop}
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}
