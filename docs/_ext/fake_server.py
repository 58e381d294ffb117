"""A fake OpenAI-compatible streaming server for the examples, served in-process by httpx.

Nothing listens on a socket: :func:`fake_llm` returns an :class:`httpx.AsyncClient` whose
transport answers every request with a Server-Sent Events stream of chat-completion chunks,
timed with ``asyncio.sleep``/``anyio.sleep`` so that it runs on the docs' virtual clock. It
prints ``server: connection closed`` when the client closes the response, which is what
makes a real server stop generating.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio
import httpx

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["fake_llm"]


class _Events(httpx.AsyncByteStream):
    def __init__(self, tokens: int | None, every: float, first_after: float, stall_after: int | None) -> None:
        self.tokens = tokens
        self.every = every
        self.first_after = first_after
        self.stall_after = stall_after

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await anyio.sleep(self.first_after)
        n = 0
        while self.tokens is None or n < self.tokens:
            if self.stall_after is not None and n >= self.stall_after:
                while True:  # stalled: the connection stays alive, no token comes
                    await anyio.sleep(0.5)
                    yield b": keep-alive\n\n"
            if n:
                await anyio.sleep(self.every)
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "qwen",
                "choices": [{"index": 0, "delta": {"content": f"word{n} "}, "finish_reason": None}],
            }
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            n += 1
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        print("server: connection closed")  # noqa: T201 (the examples show it)


def fake_llm(
    *, tokens: int | None = None, every: float = 0.1, first_after: float = 0.1, stall_after: int | None = None
) -> httpx.AsyncClient:
    """Return an HTTP client whose every request is answered by a fake model.

    It streams ``tokens`` tokens (``None``: forever), the first after ``first_after`` seconds
    and one every ``every`` seconds after that, and stalls (sending only keep-alive comments)
    after ``stall_after`` of them.
    """

    def answer(request: httpx.Request) -> httpx.Response:
        del request
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_Events(tokens, every, first_after, stall_after),
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://llm.internal:8000")
