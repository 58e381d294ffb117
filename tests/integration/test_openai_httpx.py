"""``with_deadline`` on the openai SDK's ``AsyncStream`` and on raw httpx SSE lines.

The stream closes what it wraps by duck typing: the SDK's ``AsyncStream`` has a coroutine
``close()`` (and ``aclose()``), which closes its HTTP response. For raw httpx the tests show
which object to wrap: closing the ``aiter_lines()`` generator does not close the response,
while an async generator that owns the response (``async with client.stream(...)`` inside)
does.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from _fake_vllm import ID_HEADER
from _support import (
    CLIENT_SLACK,
    DEADLINE,
    Run,
    assert_cut_at_deadline,
    assert_tokens_in_order,
    new_id,
)
from openai import AsyncOpenAI

from stream_deadline import StreamTimeoutError, with_deadline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from _fake_vllm import ServerThread

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SLOW_CONSUMER = 0.15
"""Seconds a slow consumer spends on each item."""
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me everything."}]


@pytest.mark.parametrize("mode", ["babble", "stall"])
async def test_openai_async_stream_is_closed_at_the_deadline(server: ServerThread, mode: str) -> None:
    """``with_deadline(await create(stream=True), 1)`` closes the SDK's response at the deadline.

    The response is already closed when the consumer gets the timeout, the server records the
    disconnect within 500 ms of the deadline, and the tokens that arrived were delivered.
    """
    request_id = new_id()
    async with AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=0, default_headers={ID_HEADER: request_id}
    ) as client:
        stream = await client.chat.completions.create(model=mode, messages=MESSAGES, stream=True)
        run = Run()
        first_pull = time.monotonic()
        try:
            async for chunk in with_deadline(stream, DEADLINE):
                run.texts.append("".join(choice.delta.content or "" for choice in chunk.choices))
        except StreamTimeoutError as exc:
            run.error = exc
            run.ended = time.monotonic()
            closed_when_raised = stream.response.is_closed
    assert run.timeout.limit == "deadline"
    assert closed_when_raised
    generation = await server.app.wait_stopped(request_id)
    assert_cut_at_deadline(run, first_pull, generation, f"openai-sdk/{mode}")
    assert_tokens_in_order(run.tokens)
    assert len(run.tokens) >= (3 if mode == "stall" else 20)


async def test_httpx_closing_aiter_lines_alone_leaves_the_response_open(server: ServerThread) -> None:
    """Wrapping ``response.aiter_lines()``: the timeout surfaces with the response still open.

    The consumer here is slow (0.15 s per line), so the deadline is found between two pulls.
    The stream closes what it owns, the lines generator, and raises: at that moment the
    response is not closed and the server is still generating. What drops the connection
    afterwards is either the garbage collector finalizing httpx's inner generators (asyncio's
    async-generator hooks, a loop iteration later) or leaving ``async with client.stream(...)``;
    neither is the stream's doing. Wrap a generator that owns the response instead: see the
    next test.
    """
    request_id = new_id()
    async with httpx.AsyncClient() as client:
        async with client.stream(**_request(server, "babble", request_id)) as response:
            first_pull = time.monotonic()
            lines = with_deadline(response.aiter_lines(), DEADLINE)
            with pytest.raises(StreamTimeoutError):
                await _consume_slowly(lines)
            raised = time.monotonic()
            assert not response.is_closed
            assert server.app.generation(request_id).running
            assert raised - (first_pull + DEADLINE) < SLOW_CONSUMER + CLIENT_SLACK
        assert response.is_closed
    generation = await server.app.wait_stopped(request_id)
    assert generation.reason == "disconnected"
    assert generation.stopped is not None
    assert generation.stopped > raised


async def _consume_slowly(stream: AsyncIterator[str]) -> None:
    async for _line in stream:
        await asyncio.sleep(SLOW_CONSUMER)


@pytest.mark.parametrize(("mode", "consumer"), [("babble", "fast"), ("stall", "fast"), ("babble", "slow")])
async def test_httpx_generator_owning_the_response_closes_it(
    server: ServerThread, mode: str, consumer: str
) -> None:
    """Wrapping an async generator that holds ``async with client.stream(...)`` closes the response.

    When the consumer gets the timeout, the response is closed already (the generator's
    ``async with`` has exited before the error surfaced) and the server stops generating
    within 100 ms of that, whether the server babbles or stalls behind keep-alive comments,
    and whether the deadline passes during a pull (fast consumer: within 250 ms of the
    deadline) or between two pulls (a consumer that takes 0.15 s per item: at its next pull).
    """
    request_id = new_id()
    responses: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        responses.append(response)

    pause = SLOW_CONSUMER if consumer == "slow" else 0.0
    async with httpx.AsyncClient(event_hooks={"response": [keep]}) as client:
        run = Run()
        first_pull = time.monotonic()
        try:
            async for data in with_deadline(_sse_data(client, server, mode, request_id), DEADLINE):
                run.texts.append(data)
                if pause:
                    await asyncio.sleep(pause)
        except StreamTimeoutError as exc:
            run.error = exc
            run.ended = time.monotonic()
            closed_when_raised = responses[0].is_closed
    assert run.timeout.limit == "deadline"
    assert closed_when_raised
    generation = await server.app.wait_stopped(request_id)
    assert generation.reason == "disconnected"
    assert generation.stopped is not None
    assert generation.stopped - run.ended < 0.1
    if consumer == "fast":
        assert_cut_at_deadline(run, first_pull, generation, f"httpx-generator/{mode}")
        assert len(run.texts) >= (4 if mode == "stall" else 20)
    else:
        assert run.ended - (first_pull + DEADLINE) < SLOW_CONSUMER + CLIENT_SLACK


async def _sse_data(
    client: httpx.AsyncClient, server: ServerThread, mode: str, request_id: str
) -> AsyncIterator[str]:
    """The ``data:`` payloads of one streaming request; the generator owns the response."""
    async with client.stream(**_request(server, mode, request_id)) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                yield line.removeprefix("data: ")


def _request(server: ServerThread, mode: str, request_id: str) -> dict[str, Any]:
    return {
        "method": "POST",
        "url": f"{server.base_url}/chat/completions",
        "json": {"model": mode, "stream": True, "messages": MESSAGES},
        "headers": {ID_HEADER: request_id},
    }
