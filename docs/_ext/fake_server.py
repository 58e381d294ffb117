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


def _chunk(delta: dict[str, str]) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "qwen",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


class _Events(httpx.AsyncByteStream):
    def __init__(  # noqa: PLR0913, PLR0917
        self,
        tokens: int | None,
        every: float,
        first_after: float,
        stall_after: int | None,
        role_at_once: bool,
        reasoning: int,
    ) -> None:
        self.tokens = tokens
        self.every = every
        self.first_after = first_after
        self.stall_after = stall_after
        self.role_at_once = role_at_once
        self.reasoning = reasoning

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.role_at_once:  # as a gateway does: the role chunk at once, whatever the queue
            yield _chunk({"role": "assistant", "content": ""})
        await anyio.sleep(self.first_after)
        for i in range(self.reasoning):  # a reasoning model thinks before it answers
            if i:
                await anyio.sleep(self.every)
            yield _chunk({"reasoning_content": f"thought{i} "})
        n = 0
        while self.tokens is None or n < self.tokens:
            if self.stall_after is not None and n >= self.stall_after:
                while True:  # stalled: the connection stays alive, no token comes
                    await anyio.sleep(0.5)
                    yield b": keep-alive\n\n"
            if n or self.reasoning:
                await anyio.sleep(self.every)
            yield _chunk({"content": f"word{n} "})
            n += 1
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        print("server: connection closed")  # noqa: T201 (the examples show it)


def fake_llm(  # noqa: PLR0913
    *,
    tokens: int | None = None,
    every: float = 0.1,
    first_after: float = 0.1,
    stall_after: int | None = None,
    role_at_once: bool = False,
    reasoning: int = 0,
    headers_after: float = 0.0,
) -> httpx.AsyncClient:
    """Return an HTTP client whose every request is answered by a fake model.

    It streams ``tokens`` tokens (``None``: forever), the first after ``first_after`` seconds
    and one every ``every`` seconds after that, and stalls (sending only keep-alive comments)
    after ``stall_after`` of them. ``role_at_once``: a role-only chunk comes first, at once
    (as a gateway sends it); ``reasoning``: that many ``reasoning_content`` chunks come
    before the tokens, the first after ``first_after``. ``headers_after``: the response (its
    status and headers) comes that many seconds after the request, as from a server that
    queues it; ``first_after`` counts from then.
    """

    async def answer(request: httpx.Request) -> httpx.Response:
        del request
        if headers_after:
            await anyio.sleep(headers_after)
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_Events(tokens, every, first_after, stall_after, role_at_once, reasoning),
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://llm.internal:8000")
