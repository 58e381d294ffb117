"""Integration tests: a real server (the fake vLLM of ``examples/_fake_vllm.py``) and real clocks.

These tests run on plain asyncio with the real clock, not on the virtual clocks of the unit
tests: the fake server runs in another thread and its timings are real. They share one
server per session; each test tells its requests apart by a request id header.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from stream_deadline.instrumentation import set_on_end_hooks

if TYPE_CHECKING:
    from collections.abc import Iterator

    from stream_deadline import StreamOutcome

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from _fake_vllm import FakeVLLM, ServerThread  # noqa: E402 (needs examples/ on sys.path)
from _support import LATENESS, LATENESS_FILE, lateness_table  # noqa: E402 (ditto)


@pytest.fixture
def anyio_backend() -> str:
    """Plain asyncio on the real clock (overrides the virtual-clock backends of tests/conftest.py)."""
    return "asyncio"


@pytest.fixture(scope="session")
def server() -> Iterator[ServerThread]:
    """The fake vLLM, served by uvicorn on 127.0.0.1 and a free port for the whole session."""
    with ServerThread(FakeVLLM()) as running:
        yield running


@pytest.fixture
def told() -> Iterator[list[tuple[float, StreamOutcome]]]:
    """Every outcome the global hooks get during the test, with when (:func:`time.monotonic`);
    the default hooks are back afterwards."""
    seen: list[tuple[float, StreamOutcome]] = []
    set_on_end_hooks([lambda outcome: seen.append((time.monotonic(), outcome))])
    try:
        yield seen
    finally:
        set_on_end_hooks(None)


@pytest.fixture(scope="session", autouse=True)
def lateness_report() -> Iterator[None]:
    """At the end of the session, the lateness the tests measured: printed (seen with ``-s``)
    and written to :data:`_support.LATENESS_FILE`."""
    yield
    if LATENESS:
        table = lateness_table()
        Path(LATENESS_FILE).write_text(table + "\n", encoding="utf-8")
        print(f"\n\nLateness after the limit was due (also in {LATENESS_FILE}):\n{table}")  # noqa: T201
