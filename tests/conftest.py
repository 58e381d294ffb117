"""Every async test runs on asyncio and on trio, both on virtual time.

asyncio runs on a ``looptime`` loop and trio with ``MockClock(autojump_threshold=0)``: when
every task waits, the clock jumps to the next timer, so timing assertions are exact and no
test sleeps for real.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing

from support import virtual_time_loop


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Both backends on virtual time (a fresh clock per test)."""
    if request.param == "asyncio":
        return "asyncio", {"loop_factory": virtual_time_loop}
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}
