"""A LangChain chain whose model carries its limits: async and sync calls end on time.

``ChatVllm`` is ``ChatOpenAI`` with :class:`stream_deadline.langchain.DeadlineMixin` in
front: ``stream_timeout``, ``first_token_timeout`` and ``idle_timeout`` are set once,
where the model is made, and every call path honours them. The chain ``prompt | model``
pulls every chunk in a new task, which defeats ``asyncio.timeout``; the limits here are
kept by the stream itself, so they hold, and at the limit the HTTP connection is closed,
so the server stops generating. The sync ``chain.stream()`` is cut the same way: the
mixin runs the model's async path on a background event loop, where the watch can act
while this thread waits.

It runs offline against a fake vLLM that babbles forever (``examples/_fake_vllm.py``)::

    python examples/langchain_chain.py
"""

from __future__ import annotations

import asyncio
import time

from _fake_vllm import ID_HEADER, FakeVLLM, ServerThread
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from stream_deadline import StreamTimeoutError
from stream_deadline.langchain import DeadlineMixin


class ChatVllm(DeadlineMixin, ChatOpenAI):
    """ChatOpenAI whose every call ends on time."""


def chain_for(server: ServerThread, request_id: str) -> object:
    """``prompt | model``, the model limited to 1.5 s per call (1 s to the first
    token)."""
    model = ChatVllm(
        model="babble",
        base_url=server.base_url,
        api_key="test",  # type: ignore[arg-type]
        stream_timeout=1.5,
        first_token_timeout=1,
        default_headers={ID_HEADER: request_id},
    )
    return ChatPromptTemplate.from_messages([("human", "{question}")]) | model


async def ask_async(server: ServerThread) -> None:
    """Stream the answer with ``astream``."""
    chain = chain_for(server, "async")
    started = time.monotonic()
    try:
        async for chunk in chain.astream(  # type: ignore[attr-defined]
            {"question": "Tell me everything."}
        ):
            print(chunk.content, end="", flush=True)
    except StreamTimeoutError as exc:
        print(
            f"\n\n{type(exc).__name__} after {time.monotonic() - started:.2f} s: {exc}"
        )
    generation = await server.app.wait_stopped("async")
    print(
        f"server: generation {generation.reason}"
        f" after sending {generation.tokens} tokens"
    )


def ask_sync(server: ServerThread) -> None:
    """Stream the answer with the sync ``stream``, as a script or a notebook would."""
    chain = chain_for(server, "sync")
    started = time.monotonic()
    try:
        for chunk in chain.stream(  # type: ignore[attr-defined]
            {"question": "Tell me everything."}
        ):
            print(chunk.content, end="", flush=True)
    except StreamTimeoutError as exc:
        print(
            f"\n\n{type(exc).__name__} after {time.monotonic() - started:.2f} s"
            f" (sync): {exc}"
        )
    generation = asyncio.run(server.app.wait_stopped("sync"))
    print(
        f"server: generation {generation.reason}"
        f" after sending {generation.tokens} tokens"
    )


if __name__ == "__main__":
    with ServerThread(FakeVLLM()) as running:
        asyncio.run(ask_async(running))
        ask_sync(running)
