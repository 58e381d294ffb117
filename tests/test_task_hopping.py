"""Consumers that pull every item in a new task, as LangChain does: the reason this library
exists. A real ``langchain_core`` chain is driven on virtual time."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from pydantic import ConfigDict

from stream_deadline import StreamTimeoutError, with_deadline
from support import STALL, Record, pull_in_new_task, scripted, virtual_time_loop

pytestmark = pytest.mark.anyio

asyncio_only = pytest.mark.parametrize("anyio_backend", [("asyncio", {"loop_factory": virtual_time_loop})])


async def pull_like_langchain(it: AsyncIterator[Any]) -> Any:
    """Pull one item the way ``langchain_core`` does: a new task with a copied context."""
    return await asyncio.create_task(anext(it), context=contextvars.copy_context())


@asyncio_only
@pytest.mark.parametrize(
    ("limits", "expected"), [({"seconds": 10}, ("deadline", 10)), ({"seconds": None, "idle": 3}, ("idle", 5))]
)
async def test_asyncio_task_per_pull(limits: dict[str, Any], expected: tuple[str, float]) -> None:
    """Every ``__anext__`` in a fresh ``asyncio`` task: the stalled pull's task is the one
    cancelled, at exactly the bound, and the consumer task is left uncancelled."""
    start = anyio.current_time()
    record = Record()
    it = aiter(with_deadline(scripted([1, 1, STALL], record), limits.pop("seconds"), **limits))
    assert [await pull_like_langchain(it), await pull_like_langchain(it)] == [0, 1]
    with pytest.raises(StreamTimeoutError) as info:
        await pull_like_langchain(it)
    assert (info.value.limit, anyio.current_time() - start) == expected
    assert record.closed_at == [start + expected[1]]
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_task_group_per_pull_with_items_in_between() -> None:
    """On both backends, a task-group child per pull: items keep flowing across task hops until
    the deadline cuts the pull in flight."""
    start = anyio.current_time()
    it = aiter(with_deadline(scripted([1] * 5 + [STALL], Record()), 8))
    delivered = [await pull_in_new_task(it) for _ in range(5)]
    with pytest.raises(StreamTimeoutError) as info:
        await pull_in_new_task(it)
    assert delivered == [0, 1, 2, 3, 4]
    assert (anyio.current_time() - start, info.value.items) == (8, 5)


class ScriptedChat(BaseChatModel):
    """A chat model whose ``_astream`` is a scripted source under ``with_deadline``, with the
    limit taken from the instance per call: the seed's ``ChatVllm`` pattern."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    delays: list[float]
    record: Record
    stream_timeout: float | None = None

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError

    async def _chunks(self) -> AsyncIterator[ChatGenerationChunk]:
        """The scripted tokens, as chat chunks."""
        async for i in scripted(self.delays, self.record):
            yield ChatGenerationChunk(message=AIMessageChunk(content=f"t{i} "))

    @with_deadline(lambda self, *args, **kwargs: self.stream_timeout)
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in self._chunks():
            yield chunk


class NaiveChat(ScriptedChat):
    """The first fix people try: ``asyncio.timeout`` inside ``_astream``."""

    @property
    def _llm_type(self) -> str:
        return "naive"

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async with asyncio.timeout(self.stream_timeout):
            async for chunk in self._chunks():
                yield chunk


def chain_of(model: BaseChatModel) -> Any:
    return ChatPromptTemplate.from_messages([("human", "{question}")]) | model


async def drain(stream: AsyncIterator[Any]) -> list[str]:
    """The tokens of a chat stream (LangChain ends it with an empty closing chunk: skipped)."""
    return [str(chunk.content) async for chunk in stream if chunk.content]


@asyncio_only
async def test_langchain_chain_is_cut_at_the_deadline() -> None:
    """``prompt | model`` with ``chain.astream``: LangChain pulls each chunk in a new task, and
    the stream still ends at exactly the instance's ``stream_timeout``, with every token that
    came before it, and the source closed at that instant."""
    start = anyio.current_time()
    record = Record()
    model = ScriptedChat(delays=[1] * 100, record=record, stream_timeout=4.5)
    tokens: list[str] = []
    with pytest.raises(StreamTimeoutError) as info:
        async for chunk in chain_of(model).astream({"question": "hi"}):
            tokens.append(str(chunk.content))
    assert anyio.current_time() == start + 4.5
    assert "".join(tokens) == "t0 t1 t2 t3 "
    assert (info.value.limit, info.value.items) == ("deadline", 4)
    assert record.closed_at == [start + 4.5]


@asyncio_only
async def test_langchain_chain_is_cut_during_a_stall() -> None:
    """Two tokens, then a stall: the chain's pull in flight is cancelled at the deadline."""
    start = anyio.current_time()
    model = ScriptedChat(delays=[1, 1, STALL], record=Record(), stream_timeout=10)
    with pytest.raises(StreamTimeoutError):
        await drain(chain_of(model).astream({"question": "hi"}))
    assert anyio.current_time() == start + 10


@asyncio_only
async def test_langchain_chain_without_a_limit_is_untouched() -> None:
    """``stream_timeout=None``: the chain streams every token and ends normally."""
    model = ScriptedChat(delays=[1, 1, 1], record=Record(), stream_timeout=None)
    assert await drain(chain_of(model).astream({"question": "hi"})) == ["t0 ", "t1 ", "t2 "]


@asyncio_only
async def test_asyncio_timeout_inside_astream_never_fires_in_a_chain() -> None:
    """The reason for the library, proven: ``asyncio.timeout(3)`` inside ``_astream`` is bound
    to the task that pulled the first chunk; in a chain that task is long finished when the
    timeout expires, so a 20-token, 20-second answer streams to the end."""
    start = anyio.current_time()
    model = NaiveChat(delays=[1] * 20, record=Record(), stream_timeout=3)
    tokens = await drain(chain_of(model).astream({"question": "hi"}))
    assert len(tokens) == 20
    assert anyio.current_time() == start + 20


@asyncio_only
async def test_asyncio_timeout_inside_astream_fires_when_one_task_pulls() -> None:
    """The control: the same naive model iterated directly, all pulls in one task, does time
    out at 3 s, so the chain case above fails only because of the task hops."""
    start = anyio.current_time()
    model = NaiveChat(delays=[1] * 20, record=Record(), stream_timeout=3)
    with pytest.raises(TimeoutError):
        await drain(model.astream("hi"))
    assert anyio.current_time() == start + 3
