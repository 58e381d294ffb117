"""The openai SDK recipe of docs/howto/openai.md: ``create()`` inside the limited generator.

``with_deadline(await client.chat.completions.create(..., stream=True), ...)`` starts its
clock only once ``create()`` has returned, that is, once the response headers came: a server
that holds the headers is not bounded by it. The recipe puts ``create()`` inside an async
generator decorated with ``@with_deadline``: the first pull sends the request, so the wait
for the headers is part of the first wait (``first_item``) and of the total budget, and the
watch cuts it like any other wait. ``async with stream`` closes the response however the
iteration ends. Here ``seconds`` is read per call, so a shared :class:`Deadline` can be
passed instead of a number.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest
from _fake_vllm import ANSWER, ID_HEADER
from _support import EARLY, new_id, record_lateness
from openai import AsyncOpenAI

from stream_deadline import Deadline, StreamOutcome, StreamTimeoutError, with_deadline
from stream_deadline.progress import openai_chunk

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from _fake_vllm import Generation, ServerThread
    from openai.types.chat import ChatCompletionChunk

    from stream_deadline import Seconds

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FIRST_ITEM = 1.0
IDLE = 0.5
CLIENT_SLACK = 0.25
"""How late the consumer may get the timeout, after the limit was due."""
SERVER_SLACK = 0.1
"""How late the server may see the client go, after the limit was due."""
MESSAGES: list[Any] = [{"role": "user", "content": "Hello?"}]


@with_deadline(
    lambda client, mode, seconds=45: seconds, first_item=FIRST_ITEM, idle=IDLE, progress=openai_chunk
)
async def chat(client: AsyncOpenAI, mode: str, seconds: Seconds = 45) -> AsyncIterator[ChatCompletionChunk]:
    """The recipe (limits shortened for the tests): one streamed answer, the request included."""
    stream = await client.chat.completions.create(model=mode, messages=MESSAGES, stream=True)
    async with stream:
        async for chunk in stream:
            yield chunk


async def _consume(
    server: ServerThread, mode: str, seconds: Seconds = 45
) -> tuple[float, float, Any, Generation]:
    """Pull ``chat()`` to its end; return when the first pull started, when it raised (or
    ended), what (the error, or the answer), and the server's record."""
    request_id = new_id()
    async with AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=0, default_headers={ID_HEADER: request_id}
    ) as client:
        texts: list[str] = []
        started = time.monotonic()
        try:
            async for chunk in chat(client, mode, seconds):
                texts.extend(choice.delta.content or "" for choice in chunk.choices)
        except StreamTimeoutError as exc:
            return started, time.monotonic(), exc, await server.app.wait_stopped(request_id)
    return started, time.monotonic(), "".join(texts), await server.app.wait_stopped(request_id)


def _check_cut(ended: float, generation: Generation, due: float, label: str) -> None:
    """The consumer got the timeout within 250 ms of ``due`` and the server saw it go within 100 ms."""
    assert generation.stopped is not None
    record_lateness(label, ended - due, generation.stopped - due)
    assert due - EARLY <= ended <= due + CLIENT_SLACK, f"raised {ended - due:+.3f} s after the limit was due"
    assert generation.reason == "disconnected"
    assert due - EARLY <= generation.stopped <= due + SERVER_SLACK, (
        f"the server stopped {generation.stopped - due:+.3f} s after the limit was due"
    )


async def test_the_wait_for_the_response_headers_is_cut_at_first_item(
    server: ServerThread, told: list[tuple[float, StreamOutcome]]
) -> None:
    """A server that holds the response headers for 5 s: the first pull, which sends the
    request, is cut at ``first_item`` (1 s) with nothing delivered, and the server sees the
    client go within 100 ms, before it sent a thing."""
    started, ended, error, generation = await _consume(server, "slow-headers")
    assert isinstance(error, StreamTimeoutError), f"expected StreamTimeoutError, got {error!r}"
    assert (error.limit, error.items) == ("first_item", 0)
    _check_cut(ended, generation, started + FIRST_ITEM, "openai recipe, slow-headers -> first_item")
    assert generation.tokens == 0
    assert [(o.name, o.ending, o.limit) for _, o in told] == [("chat", "timeout", "first_item")]


async def test_the_role_chunk_does_not_count_as_the_first_item(
    server: ServerThread, told: list[tuple[float, StreamOutcome]]
) -> None:
    """A queued request (headers and the role-only chunk at once, the first token after 5 s)
    is cut at ``first_item`` too: ``progress=openai_chunk`` does not count the role chunk."""
    started, ended, error, generation = await _consume(server, "queued")
    assert isinstance(error, StreamTimeoutError), f"expected StreamTimeoutError, got {error!r}"
    assert (error.limit, error.items) == ("first_item", 1)
    _check_cut(ended, generation, started + FIRST_ITEM, "openai recipe, queued -> first_item")
    assert [(o.ending, o.limit, o.items, o.progress_items) for _, o in told] == [
        ("timeout", "first_item", 1, 0)
    ]


async def test_a_shared_deadline_bounds_the_wait_for_the_headers(
    server: ServerThread, told: list[tuple[float, StreamOutcome]]
) -> None:
    """One budget of 1.5 s across two stages: a first stage takes 0.8 s, then the answer's
    request meets a server that holds its headers. The wait is cut at the budget's end
    (``deadline``, before ``first_item`` could pass), and the server sees the client go
    within 100 ms of it."""
    budget = Deadline.after(1.5)
    await asyncio.sleep(0.8)  # retrieval, say
    _, ended, error, generation = await _consume(server, "slow-headers", budget)
    assert isinstance(error, StreamTimeoutError), f"expected StreamTimeoutError, got {error!r}"
    assert (error.limit, error.timeout, error.items) == ("deadline", 1.5, 0)
    _check_cut(ended, generation, budget.when, "openai recipe, shared Deadline, slow-headers -> deadline")
    assert [(o.ending, o.limit) for _, o in told] == [("timeout", "deadline")]


async def test_a_normal_answer_goes_through_whole(server: ServerThread) -> None:
    """Within its limits the recipe changes nothing: the whole answer, and the server finished."""
    _, _, answer, generation = await _consume(server, "finish")
    assert answer == "".join(ANSWER)
    assert generation.reason == "finished"
