"""A LangChain chain with a total deadline on the model's stream.

``DeadlineChatOpenAI`` is ``ChatOpenAI`` with ``_astream`` decorated by ``with_deadline``; the
limit is read per call from the model's own ``stream_timeout`` field. The chain
``prompt | model`` pulls every chunk in a new task, which defeats ``asyncio.timeout``; the
deadline here is kept by the stream itself, so it holds, and at the deadline the HTTP
connection is closed, so the server stops generating.

It runs offline against a fake vLLM that babbles forever (``examples/_fake_vllm.py``)::

    python examples/langchain_chain.py
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import openai
from _fake_vllm import ID_HEADER, FakeVLLM, ServerThread
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from stream_deadline import StreamTimeoutError, with_deadline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from langchain_core.outputs import ChatGenerationChunk


class DeadlineChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` whose every stream ends after ``stream_timeout`` seconds, however it is pulled."""

    stream_timeout: float | None = 45.0

    @with_deadline(lambda self, *_args, **_kwargs: self.stream_timeout)
    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk


async def main(server: ServerThread) -> None:
    """Ask the babbling server a question through a chain with a 1.5 s deadline."""
    async with openai.DefaultAsyncHttpxClient() as http:
        model = DeadlineChatOpenAI(
            model="babble",
            base_url=server.base_url,
            api_key="test",  # type: ignore[arg-type]
            stream_timeout=1.5,
            default_headers={ID_HEADER: "example"},
            http_async_client=http,  # ours, closed by `async with`: no unclosed-transport warning at exit
        )
        chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | model
        started = time.monotonic()
        try:
            async for chunk in chain.astream({"question": "Tell me everything."}):
                print(chunk.content, end="", flush=True)
        except StreamTimeoutError as exc:
            print(f"\n\n{type(exc).__name__} after {time.monotonic() - started:.2f} s: {exc}")
    generation = await server.app.wait_stopped("example")
    print(f"server: generation {generation.reason} after sending {generation.tokens} tokens")


if __name__ == "__main__":
    with ServerThread(FakeVLLM()) as running:
        asyncio.run(main(running))
