"""The openai SDK's stream with a deadline:
``with_deadline(await create(stream=True), seconds)``.

``AsyncOpenAI().chat.completions.create(stream=True)`` returns an ``AsyncStream``.
Wrapped in ``with_deadline``, it is closed at the deadline (its ``close()`` closes the
HTTP response), so the server sees the client go away and stops generating. Here the
fake vLLM stalls: after a few tokens it sends only SSE keep-alive comments, so no read
timeout would ever fire.

    python examples/openai_sdk.py
"""

from __future__ import annotations

import asyncio
import time

from _fake_vllm import ID_HEADER, FakeVLLM, ServerThread
from openai import AsyncOpenAI

from stream_deadline import StreamTimeoutError, with_deadline


async def main(server: ServerThread) -> None:
    """Stream from a stalling server with a 1.5 s deadline and show that the response
    was closed."""
    async with AsyncOpenAI(
        base_url=server.base_url, api_key="test", default_headers={ID_HEADER: "example"}
    ) as client:
        started = time.monotonic()
        stream = await client.chat.completions.create(
            model="stall", messages=[{"role": "user", "content": "Hello?"}], stream=True
        )
        try:
            async for chunk in with_deadline(stream, 1.5):
                for choice in chunk.choices:
                    print(choice.delta.content or "", end="", flush=True)
        except StreamTimeoutError as exc:
            print(
                f"\n\n{type(exc).__name__} after"
                f" {time.monotonic() - started:.2f} s: {exc}"
            )
        print(f"response closed: {stream.response.is_closed}")
    generation = await server.app.wait_stopped("example")
    print(
        f"server: generation {generation.reason}"
        f" after {generation.keepalives} keep-alives"
    )


if __name__ == "__main__":
    with ServerThread(FakeVLLM()) as running:
        asyncio.run(main(running))
