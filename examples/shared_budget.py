"""One time budget across several stages: a ``Deadline`` for retrieval plus generation.

A request has 2.5 s in total. Retrieval (simulated here) uses part of it under
``asyncio.timeout(budget.remaining())``; the answer is then streamed with
``with_deadline(stream, budget)``, which ends the stream when the *same* budget runs
out, not 2.5 s after the stream started. The fake vLLM babbles, so the budget is what
ends it.

    python examples/shared_budget.py
"""

from __future__ import annotations

import asyncio
import time

from _fake_vllm import ID_HEADER, FakeVLLM, ServerThread
from openai import AsyncOpenAI

from stream_deadline import Deadline, StreamTimeoutError, with_deadline


async def retrieve(question: str) -> list[str]:
    """Stand-in for a vector search that takes 0.8 s."""
    await asyncio.sleep(0.8)
    return [f"a document about {question}"]


async def main(server: ServerThread) -> None:
    """Answer one question within a 2.5 s budget shared by retrieval and generation."""
    started = time.monotonic()
    budget = Deadline.after(2.5)
    async with asyncio.timeout(budget.remaining()):
        documents = await retrieve("deadlines")
    print(
        f"retrieval done after {time.monotonic() - started:.2f} s;"
        f" {budget.remaining():.2f} s left"
    )

    async with AsyncOpenAI(
        base_url=server.base_url, api_key="test", default_headers={ID_HEADER: "example"}
    ) as client:
        stream = await client.chat.completions.create(
            model="babble",
            messages=[{"role": "user", "content": f"Use {documents}"}],
            stream=True,
        )
        tokens = 0
        try:
            async for chunk in with_deadline(stream, budget):
                tokens += sum(1 for choice in chunk.choices if choice.delta.content)
        except StreamTimeoutError as exc:
            print(f"generation cut after {tokens} tokens: {exc}")
    print(f"whole request: {time.monotonic() - started:.2f} s of a 2.5 s budget")
    generation = await server.app.wait_stopped("example")
    print(f"server: generation {generation.reason}")


if __name__ == "__main__":
    with ServerThread(FakeVLLM()) as running:
        asyncio.run(main(running))
