"""Raw httpx Server-Sent Events with a deadline: wrap a generator that owns the
response.

Wrapping ``response.aiter_lines()`` alone is not enough: the stream would close the
lines generator, not the response, and the timeout would surface while the connection is
still open. Instead write an async generator that opens the response itself
(``async with client.stream(...)`` inside) and wrap that: closing it leaves the
``async with``, which closes the response before the timeout reaches you.

It also sets ``idle``: a stall detector, here for a server that stops sending tokens
(but keeps sending keep-alive comments) after three of them.

    python examples/httpx_sse.py
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import httpx
from _fake_vllm import ID_HEADER, FakeVLLM, ServerThread

from stream_deadline import StreamTimeoutError, with_deadline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


async def sse_data(
    client: httpx.AsyncClient, url: str, body: dict[str, object]
) -> AsyncIterator[str]:
    """The ``data:`` payloads of a streaming POST; the generator owns (and closes) the
    response."""
    async with client.stream(
        "POST", url, json=body, headers={ID_HEADER: "example"}
    ) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                yield line.removeprefix("data: ")


async def main(server: ServerThread) -> None:
    """Read a stalling stream with a 10 s deadline and a 0.75 s idle limit."""
    body = {
        "model": "stall",
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        events = with_deadline(
            sse_data(client, f"{server.base_url}/chat/completions", body), 10, idle=0.75
        )
        try:
            async for data in events:
                for choice in json.loads(data)["choices"]:
                    print(choice["delta"].get("content", ""), end="", flush=True)
        except StreamTimeoutError as exc:
            print(
                f"\n\n{exc.limit!r} limit after"
                f" {time.monotonic() - started:.2f} s: {exc}"
            )
    generation = await server.app.wait_stopped("example")
    print(
        f"server: generation {generation.reason}"
        f" after sending {generation.tokens} tokens"
    )


if __name__ == "__main__":
    with ServerThread(FakeVLLM()) as running:
        asyncio.run(main(running))
