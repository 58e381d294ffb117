"""The fake vLLM itself: its modes behave as documented and it notices a disconnect at once.

The other integration tests lean on the server's record of each generation; these tests
prove that record is right, above all that the end of a stream whose client went away is
recorded within milliseconds, as vLLM aborts such a request.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from _fake_vllm import ANSWER, ID_HEADER, TOOL_ARGUMENTS, TOOL_NAME, FakeVLLM, ServerThread
from _support import EARLY, new_id

if TYPE_CHECKING:
    from collections.abc import Iterator

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


QUICK = {"queue_delay": 0.5, "header_delay": 0.5, "reasoning_seconds": 0.3, "max_seconds": 5.0}
"""A server whose delays are short, for the tests of its shapes."""


@pytest.fixture(scope="module")
def quick() -> Iterator[ServerThread]:
    """A fake vLLM of its own with short delays (:data:`QUICK`), for this module."""
    with ServerThread(FakeVLLM(**QUICK)) as running:
        yield running


async def _events(
    server: ServerThread, mode: str, request_id: str, **body: object
) -> tuple[float, list[tuple[float, str]]]:
    """Stream one request; return when the headers came and each ``data:`` event with its time."""
    request = _request(server, mode, request_id)
    request["json"] = {**request["json"], **body}  # type: ignore[dict-item]
    sent = time.monotonic()
    async with httpx.AsyncClient() as client, client.stream("POST", **request) as r:
        headers = time.monotonic() - sent
        events = [
            (time.monotonic() - sent, line.removeprefix("data: "))
            async for line in r.aiter_lines()
            if line.startswith("data: ")
        ]
    return headers, events


def _deltas(events: list[tuple[float, str]]) -> list[tuple[float, dict[str, Any]]]:
    """The delta of each chunk event (not the usage chunk nor ``[DONE]``), with its time."""
    chunks = [(at, json.loads(event)) for at, event in events if event != "[DONE]"]
    return [(at, chunk["choices"][0]["delta"]) for at, chunk in chunks if chunk["choices"]]


async def test_queued_sends_the_role_at_once_then_waits(quick: ServerThread) -> None:
    """``queued``: the role-only chunk comes at once, the first token only after ``queue_delay``.

    Then the whole answer and ``[DONE]``; the record says finished.
    """
    request_id = new_id()
    _, events = await _events(quick, "queued", request_id)
    deltas = _deltas(events)
    assert deltas[0][1] == {"role": "assistant", "content": ""}
    assert deltas[0][0] < 0.1
    assert deltas[1][0] >= QUICK["queue_delay"] - EARLY
    assert "".join(delta.get("content", "") for _, delta in deltas) == "".join(ANSWER)
    assert events[-1][1] == "[DONE]"
    generation = await quick.app.wait_stopped(request_id)
    assert generation.reason == "finished"
    assert generation.token_times[0] - generation.started >= QUICK["queue_delay"] - EARLY


async def test_reasoning_thinks_before_it_answers(quick: ServerThread) -> None:
    """``reasoning``: after the role chunk, only ``reasoning_content`` chunks for
    ``reasoning_seconds`` (one every ``token_interval``, none with content), then the answer."""
    request_id = new_id()
    _, events = await _events(quick, "reasoning", request_id)
    deltas = [delta for _, delta in _deltas(events)][1:]  # after the role chunk
    thinking = [delta for delta in deltas if "reasoning_content" in delta]
    assert deltas[: len(thinking)] == thinking  # all the reasoning comes first
    assert all("content" not in delta for delta in thinking)
    assert "".join(delta.get("content", "") for delta in deltas) == "".join(ANSWER)
    generation = await quick.app.wait_stopped(request_id)
    assert len(thinking) == len(generation.reasoning_times) >= 8
    assert generation.reasoning_times[-1] - generation.started >= QUICK["reasoning_seconds"] - EARLY
    assert generation.token_times[0] > generation.reasoning_times[-1]


async def test_tools_answers_with_a_tool_call_only(quick: ServerThread) -> None:
    """``tools``: the call's id and name first, then its arguments in pieces; no content at all;
    ``finish_reason="tool_calls"``; with ``include_usage``, the usage chunk before ``[DONE]``."""
    request_id = new_id()
    _, events = await _events(quick, "tools", request_id, stream_options={"include_usage": True})
    assert events[-1][1] == "[DONE]"
    usage = json.loads(events[-2][1])
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 0
    chunks = [json.loads(event) for _, event in events[:-2]]
    calls = [chunk["choices"][0]["delta"].get("tool_calls") for chunk in chunks[1:-1]]
    assert all(call is not None for call in calls)
    assert calls[0][0]["function"]["name"] == TOOL_NAME
    assert calls[0][0]["id"]
    assert "".join(call[0]["function"]["arguments"] for call in calls) == TOOL_ARGUMENTS
    assert all(not chunk["choices"][0]["delta"].get("content") for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    generation = await quick.app.wait_stopped(request_id)
    assert generation.reason == "finished"
    assert generation.tokens == 0
    assert len(generation.tool_times) == len(calls)


async def test_no_usage_chunk_unless_asked(quick: ServerThread) -> None:
    """Without ``stream_options.include_usage`` every chunk before ``[DONE]`` has a choice."""
    _, events = await _events(quick, "finish", new_id())
    assert all(json.loads(event)["choices"] for _, event in events[:-1])


async def test_slow_headers_holds_the_response_headers(quick: ServerThread) -> None:
    """``slow-headers``: the response headers themselves come only after ``header_delay``."""
    request_id = new_id()
    headers, events = await _events(quick, "slow-headers", request_id)
    assert headers >= QUICK["header_delay"] - EARLY
    assert "".join(delta.get("content", "") for _, delta in _deltas(events)) == "".join(ANSWER)
    generation = await quick.app.wait_stopped(request_id)
    assert generation.reason == "finished"


@pytest.mark.parametrize(
    ("mode", "after", "reason"),
    [("finish", 0.0, "finished"), ("queued", QUICK["queue_delay"], "finished"), ("tools", 0.0, "finished")],
)
async def test_non_streaming_answers_once_complete(
    quick: ServerThread, mode: str, after: float, reason: str
) -> None:
    """Without ``stream``: one ``chat.completion`` JSON, after the mode's delay (at once for
    ``finish`` and ``tools``); a tool call for ``tools``; the record says not streamed."""
    request_id = new_id()
    request = _request(quick, mode, request_id)
    request["json"] = {**request["json"], "stream": False}  # type: ignore[dict-item]
    sent = time.monotonic()
    async with httpx.AsyncClient() as client:
        response = await client.post(**request)  # type: ignore[arg-type]
    took = time.monotonic() - sent
    assert after <= took < after + 0.2
    answer = response.json()
    assert answer["object"] == "chat.completion"
    (choice,) = answer["choices"]
    if mode == "tools":
        assert choice["message"]["content"] is None
        assert choice["message"]["tool_calls"][0]["function"] == {
            "name": TOOL_NAME,
            "arguments": TOOL_ARGUMENTS,
        }
        assert choice["finish_reason"] == "tool_calls"
    else:
        assert choice["message"]["content"] == "".join(ANSWER)
        assert choice["finish_reason"] == "stop"
    generation = await quick.app.wait_stopped(request_id)
    assert (generation.reason, generation.streamed) == (reason, False)


@pytest.mark.parametrize(("mode", "stream"), [("babble", False), ("slow-headers", True)])
async def test_a_client_gone_before_the_headers_is_seen_at_once(
    quick: ServerThread, mode: str, stream: bool
) -> None:
    """A client that gives up while no response has started (a non-streaming ``babble``, which
    would answer after ``max_seconds``; ``slow-headers``) is recorded as disconnected within
    100 ms of closing its connection, with nothing generated."""
    request_id = new_id()
    request = _request(quick, mode, request_id)
    request["json"] = {**request["json"], "stream": stream}  # type: ignore[dict-item]
    async with httpx.AsyncClient() as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await client.post(**request)  # type: ignore[arg-type]
        closed = time.monotonic()
    generation = await quick.app.wait_stopped(request_id, within=2)
    assert generation.reason == "disconnected"
    assert generation.stopped is not None
    assert 0 <= generation.stopped - closed < 0.1
    assert generation.tokens == 0
