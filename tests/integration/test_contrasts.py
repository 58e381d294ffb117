"""The fixes that do not work, measured, so that what the docs say about them stays true.

* ``asyncio.timeout`` inside ``_astream`` works when the model's own ``astream`` is iterated
  (with langchain-openai's per-chunk ``wait_for`` turned off: see that test), but in a chain
  (``prompt | model``, which pulls each chunk in a new task) it never fires.
* The blog's fix, checking the elapsed time each time a chunk arrives, cuts a babbling
  stream but cannot act during a stall with keep-alive comments.

The tests that expect an overrun bound it themselves: they watch the stream for
``DEADLINE + OVERRUN`` seconds, check that it is still running and the server still
generating, then cancel the consumer.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING

import pytest
from _support import (
    CLIENT_SLACK,
    DEADLINE,
    CheckOnChunkChat,
    NaiveTimeoutChat,
    RecordingChat,
    Run,
    chain_of,
    chat_model,
    consume,
    new_id,
    timing,
)

if TYPE_CHECKING:
    from _fake_vllm import Generation, ServerThread

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

OVERRUN = 1.5
"""How long past the deadline an overrunning stream is watched before the test stops it."""


async def _watch_overrun(server: ServerThread, model: RecordingChat, request_id: str, label: str) -> Run:
    """Consume the chain in a task; past ``DEADLINE + OVERRUN`` check it is still going, then stop it.

    Returns what the consumer saw until then. Fails if the stream ended by itself, or the
    server stopped generating, before that moment.
    """
    run = Run()
    started = asyncio.Event()

    async def consumer() -> None:
        async for chunk in chain_of(model).astream({"question": "Tell me everything."}):
            run.texts.append(str(chunk.content))
            started.set()

    task = asyncio.create_task(consumer())
    await started.wait()
    due = model.first_pull + DEADLINE
    await asyncio.sleep(due + OVERRUN - time.monotonic())
    generation = server.app.generation(request_id)
    still_running = not task.done()
    server_running = generation.running
    tokens_then, keepalives_then = generation.tokens, generation.keepalives
    task.cancel()
    outcome = await asyncio.gather(task, return_exceptions=True)
    run.ended = time.monotonic()
    stopped = await server.app.wait_stopped(request_id)
    timing.info(
        "%s: still running %.1f s after the deadline (%d tokens, %d keep-alives sent by then);"
        " the test cancelled it, server stopped %+.1f ms after that",
        label,
        OVERRUN,
        tokens_then,
        keepalives_then,
        ((stopped.stopped or 0.0) - run.ended) * 1000,
    )
    assert still_running, f"the stream ended by itself: {outcome[0]!r}"
    assert server_running
    run.error = outcome[0] if isinstance(outcome[0], BaseException) else None
    return run


async def test_asyncio_timeout_in_astream_never_fires_in_a_chain(server: ServerThread) -> None:
    """``asyncio.timeout`` inside ``_astream``, in a chain: 1.5 s past the deadline the stream still runs.

    The server is still generating and tokens still reach the consumer long after the
    deadline: the timeout cancelled the task that pulled the first chunk, long finished.
    """
    request_id = new_id()
    async with chat_model(NaiveTimeoutChat, server, "babble", request_id) as model:
        run = await _watch_overrun(server, model, request_id, "naive asyncio.timeout, chain/babble")
    assert len(run.tokens) > (DEADLINE + OVERRUN - 0.5) / 0.02  # far more than fit in the deadline


async def test_asyncio_timeout_in_astream_works_without_a_chain(server: ServerThread) -> None:
    """The same ``asyncio.timeout`` does fire when the model's own ``astream`` is iterated in one task.

    This is why the bug hides in tests that call the model directly. It holds only while
    nothing under the timeout drops its cancellation: langchain-openai's ``stream_chunk_timeout``
    (on by default) pulls each chunk through ``asyncio.wait_for``, which on Python 3.11 drops a
    cancellation that lands in the same turn of the loop as a chunk (CPython gh-86296); with a
    chunk every 20 ms that happens now and then, and the stream then runs to its end. So it is
    turned off here on 3.11; ``test_adversarial.py`` shows that race on virtual time, and that
    ``with_deadline`` is cut anyway.
    """
    request_id = new_id()
    racy = sys.version_info < (3, 12) and "stream_chunk_timeout" in NaiveTimeoutChat.model_fields
    no_wait_for = {"stream_chunk_timeout": None} if racy else {}
    async with chat_model(NaiveTimeoutChat, server, "babble", request_id, **no_wait_for) as model:
        run = await consume(model.astream("Tell me everything."))
    _log_cut(run, model, await server.app.wait_stopped(request_id), "naive asyncio.timeout, astream/babble")


async def test_check_on_chunk_cuts_a_babbling_chain(server: ServerThread) -> None:
    """The blog's check-on-chunk fix ends a babbling chain at the first chunk after the deadline.

    With a chunk every 20 ms that is right after the deadline, which is why the fix looked
    sufficient.
    """
    request_id = new_id()
    async with chat_model(CheckOnChunkChat, server, "babble", request_id) as model:
        run = await consume(chain_of(model).astream({"question": "Tell me everything."}))
    _log_cut(run, model, await server.app.wait_stopped(request_id), "check-on-chunk, chain/babble")


async def test_check_on_chunk_overruns_a_stall(server: ServerThread) -> None:
    """The check-on-chunk fix cannot act in a stall: 1.5 s past the deadline the chain still waits.

    No chunk arrives, so nothing checks the time, while keep-alive comments keep the socket
    (and the server's request) alive.
    """
    request_id = new_id()
    async with chat_model(CheckOnChunkChat, server, "stall", request_id) as model:
        run = await _watch_overrun(server, model, request_id, "check-on-chunk, chain/stall")
    assert len(run.tokens) == 3
    generation = server.app.generation(request_id)
    assert generation.keepalives >= (DEADLINE + OVERRUN) / server.app.keepalive_interval - 2


def _log_cut(run: Run, model: RecordingChat, generation: Generation, label: str) -> None:
    """Assert a plain ``TimeoutError`` came within ``CLIENT_SLACK`` and the server then stopped."""
    due = model.first_pull + DEADLINE
    assert generation.stopped is not None
    timing.info(
        "%s: client ended %+.1f ms, server stopped %+.1f ms after the deadline",
        label,
        (run.ended - due) * 1000,
        (generation.stopped - due) * 1000,
    )
    assert isinstance(run.error, TimeoutError)
    assert run.ended - due < CLIENT_SLACK
    assert generation.reason == "disconnected"
