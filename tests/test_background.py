"""The background event loop that the sync paths of ``stream_deadline.langchain`` run on
(``stream_deadline._background``): one loop per process, from any thread, whether or not the
calling thread runs a loop of its own, gone at exit. No timing is asserted here: the limits it
carries are proven on a real server in ``tests/integration/``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator

import pytest

from stream_deadline import StreamTimeoutError, with_deadline
from stream_deadline._background import iterate, run


async def numbers(n: int, closed: list[str]) -> AsyncGenerator[int, None]:
    try:
        for i in range(n):
            await asyncio.sleep(0)
            yield i
    finally:
        closed.append(threading.current_thread().name)


def test_run_returns_the_result_from_one_loop_in_its_own_thread() -> None:
    """``run`` blocks for the coroutine's result; every call runs on the same loop, in a
    thread that is not the caller's."""

    async def where() -> tuple[int, str]:
        return id(asyncio.get_running_loop()), threading.current_thread().name

    first, second = run(where()), run(where())
    assert first == second
    assert first[1] == "stream_deadline background loop"


def test_run_raises_what_the_coroutine_raised() -> None:
    """An exception in the coroutine reaches the caller as itself."""

    async def fail() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError, match="k"):
        run(fail())


def test_iterate_hands_over_every_item_and_closes_the_stream_on_the_loop() -> None:
    """Every item in order, then the stream's ``finally`` runs on the background loop."""
    closed: list[str] = []
    assert list(iterate(numbers(5, closed))) == [0, 1, 2, 3, 4]
    assert closed == ["stream_deadline background loop"]


def test_iterate_closes_the_stream_when_the_caller_stops_early() -> None:
    """Leaving the loop early (``break``, then the iterator is closed) closes the async stream."""
    closed: list[str] = []
    items = iterate(numbers(100, closed))
    for item in items:
        if item == 2:
            break
    items.close()
    assert closed == ["stream_deadline background loop"]


def test_a_limit_cuts_a_stream_iterated_from_sync_code() -> None:
    """A ``with_deadline`` stream iterated through ``iterate`` is cut by its watch on the
    background loop while this thread waits: the ``StreamTimeoutError`` reaches it."""

    async def stall() -> AsyncGenerator[int, None]:
        yield 0
        await asyncio.Event().wait()
        yield 1  # pragma: no cover (cut)

    got: list[int] = []
    with pytest.raises(StreamTimeoutError) as info:
        got.extend(iterate(with_deadline(stall(), None, idle=0.05)))
    assert (got, info.value.limit) == ([0], "idle")


def test_it_works_where_the_calling_thread_runs_an_event_loop() -> None:
    """Sync code called from inside a running loop (a Jupyter cell) can still use it: the
    background loop is another loop, in another thread."""

    async def cell() -> list[int]:
        return list(iterate(numbers(3, [])))

    assert asyncio.run(cell()) == [0, 1, 2]


def test_many_threads_at_once() -> None:
    """Eight threads iterating at once each get their own items, all from the one loop."""
    results: dict[int, list[int]] = {}

    def work(k: int) -> None:
        results[k] = [k * 1000 + i for i in iterate(numbers(50, []))]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {k: [k * 1000 + i for i in range(50)] for k in range(8)}


def test_the_loop_does_not_outlive_the_process() -> None:
    """A process that used the background loop exits at once, with the loop stopped and its
    streams closed (at exit, a stream left suspended is finalized on its loop)."""
    code = (
        "import asyncio, threading\n"
        "from stream_deadline._background import iterate\n"
        "async def gen():\n"
        "    try:\n"
        "        yield 1\n"
        "        await asyncio.sleep(3600)\n"
        "    finally:\n"
        "        print('closed', flush=True)\n"
        "items = iterate(gen())\n"
        "print(next(items), flush=True)\n"
        "print(sorted(t.name for t in threading.enumerate()), flush=True)\n"
    )
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)  # noqa: S603
    lines = done.stdout.splitlines()
    assert lines[:2] == ["1", "['MainThread', 'stream_deadline background loop']"]
    assert "closed" in lines[2:]
    assert done.stderr == ""


def run_script(code: str) -> list[str]:
    """Run ``code`` in a new interpreter; return what it printed, line by line."""
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    return done.stdout.splitlines()


SOURCE = (
    "import asyncio, os, signal, threading, time\n"
    "from stream_deadline import with_deadline\n"
    "from stream_deadline._background import iterate\n"
    "async def source():\n"
    "    try:\n"
    "        yield 1\n"
    "        await asyncio.sleep(30)\n"
    "        yield 2\n"
    "    finally:\n"
    "        await asyncio.sleep(0.05)\n"
    "        print('source closed', flush=True)\n"
)


def test_ctrl_c_while_waiting_for_an_item_propagates_after_the_stream_closed() -> None:
    """``KeyboardInterrupt`` in the thread waiting for the next item: the pull is cancelled
    and has finished (the source's awaiting cleanup ran) before the interruption reaches the
    caller, as itself (it came out as "aclose(): another task is pulling")."""
    code = SOURCE + (
        "threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "try:\n"
        "    for item in iterate(with_deadline(source(), 60)):\n"
        "        print('item', item, flush=True)\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt', flush=True)\n"
    )
    assert run_script(code) == ["item 1", "source closed", "KeyboardInterrupt"]


def test_at_exit_a_stream_in_flight_on_the_loop_is_closed() -> None:
    """A daemon thread mid-iteration when the interpreter exits: the loop's shutdown cancels
    the pull and closes the stream's source (it was left "already running")."""
    code = SOURCE + (
        "def worker():\n"
        "    for item in iterate(with_deadline(source(), 60)):\n"
        "        print('item', item, flush=True)\n"
        "threading.Thread(target=worker, daemon=True).start()\n"
        "time.sleep(0.3)\n"
        "print('exit', flush=True)\n"
    )
    assert run_script(code) == ["item 1", "exit", "source closed"]
