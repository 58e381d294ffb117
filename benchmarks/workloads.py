"""Realistic workloads: what ``with_deadline`` adds to a stream that does some work per item.

* A loop-yielding source: every item comes after one trip through the event loop
  (``asyncio.sleep(0)``, ``trio.lowlevel.checkpoint()``), the cheapest real stream there is.
* A LangChain chain, ``prompt | model``, streamed with ``chain.astream()``; the model streams
  its chunks without any I/O. LangChain pulls every chunk of a chain in a fresh task.

Each is drained plain and through each wrapper in the same round; ``ratio`` is the median over
the rounds of the wrapped time over the plain one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

import trio
from common import LONG, OURS, Row, drain, measure, pass_through
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from per_item import Wrap, scope_per_pull

from stream_deadline import with_deadline

PROMPT = ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "{question}")])


async def loop_yielding(n: int, *, on_trio: bool) -> AsyncIterator[int]:
    """``n`` items, each after one trip through the event loop."""
    for i in range(n):
        if on_trio:
            await trio.lowlevel.checkpoint()
        else:
            await asyncio.sleep(0)
        yield i


def chunk(i: int) -> ChatGenerationChunk:
    """The ``i``-th chunk a model streams: one word."""
    return ChatGenerationChunk(message=AIMessageChunk(content=f"w{i} "))


class Model(BaseChatModel):
    """A chat model that streams ``chunks`` one-word chunks without any I/O."""

    chunks: int = 100
    stream_timeout: float = LONG

    @property
    def _llm_type(self) -> str:
        return "benchmark"

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:  # noqa: ANN401
        raise NotImplementedError  # only streamed

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:  # noqa: ANN401, ARG002
        for i in range(self.chunks):
            yield chunk(i)


class PassThroughModel(Model):
    """The same model with its chunks passed through one more generator: the floor."""

    def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:  # type: ignore[override]  # noqa: ANN401
        return pass_through(super()._astream(*args, **kwargs))


class DeadlineModel(Model):
    """The same model, its ``_astream`` decorated as the README shows."""

    @with_deadline(lambda self, *_args, **_kwargs: self.stream_timeout)
    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:  # noqa: ANN401, ARG002
        for i in range(self.chunks):
            yield chunk(i)


def loop_source(backend: str, items: int, rounds: int) -> list[Row]:
    """The loop-yielding source, plain and wrapped."""
    on_trio = backend == "trio"
    wraps: dict[str, Wrap] = {
        "plain": lambda s: s,
        "pass-through generator": pass_through,
        **({"trio.CancelScope per pull": scope_per_pull(trio.CancelScope)} if on_trio else {}),
        **OURS,
    }
    drains = {
        name: lambda n, w=wrap: drain(w(loop_yielding(n, on_trio=on_trio))) for name, wrap in wraps.items()
    }
    return measure(backend, drains, items, rounds, workload="loop-yielding source")


async def drain_chain(model: type[Model], n: int) -> None:
    """Stream ``prompt | model`` with ``n`` chunks to its end."""
    count = 0
    async for _ in (PROMPT | model(chunks=n)).astream({"question": "why?"}):
        count += 1
    if count < n:
        raise AssertionError(f"{model.__name__} streamed {count} chunks, not {n}")


def chain(chunks: int, rounds: int) -> list[Row]:
    """``prompt | model`` streamed with ``chain.astream()`` on asyncio, plain and wrapped."""
    models = {
        "plain": Model,
        "pass-through generator": PassThroughModel,
        "with_deadline: deadline": DeadlineModel,
    }
    drains = {name: functools.partial(drain_chain, model) for name, model in models.items()}
    return measure("asyncio", drains, chunks, rounds, workload="LangChain chain")
