"""A real ``ChatOpenAI`` with ``with_deadline`` on ``_astream``, against the fake vLLM.

The model is langchain-openai's own, talking through the openai SDK and httpx to a real HTTP
server; only ``_astream`` is wrapped. Three ways in: a chain (``prompt | model``), which
pulls every chunk in a new task, the model's ``astream`` and ``ainvoke`` with
``streaming=True``. In every case the consumer must get the timeout within
``CLIENT_SLACK`` of the deadline and the server must have stopped generating within
``SERVER_SLACK``, because the connection was closed.
"""

from __future__ import annotations

import time
from typing import Literal

import pytest
from _fake_vllm import ANSWER, ServerThread
from _support import (
    DEADLINE,
    DeadlineChat,
    FirstItemChat,
    IdleChat,
    RecordingChat,
    Run,
    StopChat,
    assert_cut_at_deadline,
    assert_tokens_in_order,
    chain_of,
    chat_model,
    consume,
    new_id,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

Entry = Literal["chain", "astream", "ainvoke"]


async def _run(entry: Entry, model: RecordingChat) -> Run:
    if entry == "chain":
        return await consume(chain_of(model).astream({"question": "Tell me everything."}))
    if entry == "astream":
        return await consume(model.astream("Tell me everything."))
    run = Run()
    try:
        message = await model.ainvoke("Tell me everything.")
        run.texts.append(str(message.content))
    except Exception as exc:
        run.error = exc
    run.ended = time.monotonic()
    return run


@pytest.mark.parametrize("entry", ["chain", "astream", "ainvoke"])
@pytest.mark.parametrize("mode", ["babble", "stall"])
async def test_deadline_cuts_the_stream_and_the_generation(
    server: ServerThread, entry: Entry, mode: str
) -> None:
    """Babbling or stalled, the stream is cut at the deadline on the client and on the server.

    The consumer gets ``limit == "deadline"`` within 250 ms of the deadline, the server stops
    generating within 500 ms (keep-alive comments or not), and every token that arrived
    before the deadline was delivered in order, whichever task pulled it.
    """
    request_id = new_id()
    streaming = {"streaming": True} if entry == "ainvoke" else {}  # an explicit False turns streaming off
    async with chat_model(DeadlineChat, server, mode, request_id, **streaming) as model:
        run = await _run(entry, model)
    generation = await server.app.wait_stopped(request_id)
    error = run.timeout
    assert error.limit == "deadline"
    assert error.timeout == DEADLINE
    assert_cut_at_deadline(run, model.first_pull, generation, f"{entry}/{mode}")
    if entry == "ainvoke":
        return  # ainvoke delivers nothing when the stream fails; the stream itself is checked above
    assert_tokens_in_order(run.tokens)
    assert len(run.texts) == error.items
    if mode == "stall":
        assert len(run.tokens) == generation.tokens == 3  # all sent before the stall, all delivered
    else:
        assert len(run.tokens) >= 20
        assert len(run.tokens) >= generation.tokens - 3  # at most a few were still on the wire


async def test_first_item_limit_cuts_a_slow_start(server: ServerThread) -> None:
    """``first_item=1`` cuts a server that is silent for 5 s after about 1 s.

    The chain gets ``limit == "first_item"`` with no item delivered, and the server stopped
    before it generated any token.
    """
    request_id = new_id()
    async with chat_model(FirstItemChat, server, "slow-start", request_id) as model:
        run = await consume(chain_of(model).astream({"question": "Hello?"}))
    generation = await server.app.wait_stopped(request_id)
    error = run.timeout
    assert error.limit == "first_item"
    assert error.items == 0
    assert run.texts == []
    assert_cut_at_deadline(run, model.first_pull, generation, "chain/slow-start first_item")
    assert generation.tokens == 0


async def test_idle_limit_lets_a_steady_stream_run(server: ServerThread) -> None:
    """With only ``idle=0.3``, a steady stream (a token every 20 ms) is never cut.

    It runs for 2 s, far past the idle limit, without a timeout until we stop consuming;
    closing the chain then stops the generation.
    """
    request_id = new_id()
    async with chat_model(IdleChat, server, "babble", request_id) as model:
        run = await consume(chain_of(model).astream({"question": "Go on."}), max_items=100)
    assert run.error is None
    assert_tokens_in_order(run.tokens)
    assert len(run.tokens) == 99  # the first chunk only carries the role
    assert run.ended - model.first_pull > 1.5
    generation = await server.app.wait_stopped(request_id)
    assert generation.reason == "disconnected"


async def test_finish_passes_untouched(server: ServerThread) -> None:
    """A normal answer well within the deadline goes through the chain whole.

    The server records a finished generation, not a disconnect.
    """
    request_id = new_id()
    async with chat_model(DeadlineChat, server, "finish", request_id) as model:
        run = await consume(chain_of(model).astream({"question": "Hello?"}))
    assert run.error is None
    assert run.text == "".join(ANSWER)
    generation = await server.app.wait_stopped(request_id)
    assert generation.reason == "finished"
    assert generation.tokens == len(ANSWER)


async def test_on_timeout_stop_ends_the_chain_quietly(server: ServerThread) -> None:
    """``on_timeout="stop"``: the chain ends quietly at the deadline with the partial answer.

    No error; the answer holds the tokens that arrived, in order; the server stops generating.
    """
    request_id = new_id()
    async with chat_model(StopChat, server, "babble", request_id) as model:
        chain = chain_of(model)
        answer = None
        started = time.monotonic()
        async for chunk in chain.astream({"question": "Tell me everything."}):
            answer = chunk if answer is None else answer + chunk
        run = Run(texts=[str(answer.content)] if answer else [], ended=time.monotonic())
    assert answer is not None
    generation = await server.app.wait_stopped(request_id)
    assert_cut_at_deadline(run, model.first_pull, generation, "chain/babble on_timeout=stop")
    words = str(answer.content).split()
    assert words == [f"tok{n}" for n in range(1, len(words) + 1)]
    assert len(words) >= 20
    assert run.ended - started < DEADLINE + 0.5
