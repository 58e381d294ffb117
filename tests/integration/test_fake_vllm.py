"""The fake vLLM itself: its modes behave as documented and it notices a disconnect at once.

The other integration tests lean on the server's record of each generation; these tests
prove that record is right, above all that the end of a stream whose client went away is
recorded within milliseconds, as vLLM aborts such a request.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from _fake_vllm import ANSWER, ID_HEADER, ServerThread
from _support import new_id

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _request(server: ServerThread, mode: str, request_id: str) -> dict[str, object]:
    return {
        "url": f"{server.base_url}/chat/completions",
        "json": {"model": mode, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        "headers": {ID_HEADER: request_id},
    }


async def test_disconnect_is_recorded_at_once(server: ServerThread) -> None:
    """Closing a babbling response stops the server's generator within 100 ms: no more tokens."""
    request_id = new_id()
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", **_request(server, "babble", request_id)) as r,
    ):
        tokens = 0
        async for line in r.aiter_lines():
            tokens += "tok" in line
            if tokens == 5:
                break
    closed = time.monotonic()
    generation = await server.app.wait_stopped(request_id, within=2)
    assert generation.reason == "disconnected"
    assert generation.stopped is not None
    assert generation.stopped - closed < 0.1
    sent = generation.tokens
    assert 5 <= sent <= 8
    await asyncio.sleep(0.1)
    assert generation.tokens == sent


async def test_finish_sends_a_whole_answer(server: ServerThread) -> None:
    """``finish`` streams the answer, ``finish_reason="stop"`` and ``[DONE]``; the record says finished."""
    request_id = new_id()
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", **_request(server, "finish", request_id)) as r,
    ):
        events = [line.removeprefix("data: ") async for line in r.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "".join(ANSWER)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    generation = await server.app.wait_stopped(request_id, within=2)
    assert generation.reason == "finished"
    assert generation.tokens == len(ANSWER)


async def test_stall_keeps_the_socket_alive_past_a_read_timeout(server: ServerThread) -> None:
    """In a ``stall``, keep-alive comments beat httpx's 1 s read timeout for 1.8 s: 3 tokens, no error."""
    request_id = new_id()
    started = time.monotonic()
    comments = 0
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(1.0)) as client,
        client.stream("POST", **_request(server, "stall", request_id)) as r,
    ):
        async for line in r.aiter_lines():
            comments += line.startswith(":")
            if time.monotonic() - started > 1.8:
                break
    generation = await server.app.wait_stopped(request_id, within=2)
    assert generation.tokens == 3
    assert comments >= 3
    assert generation.reason == "disconnected"
