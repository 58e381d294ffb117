"""``stream_deadline.langchain.DeadlineMixin`` on its async paths, on virtual time, with a chat
model that runs on the loop's clock (the sync paths and a real HTTP server are in
``tests/integration/test_langchain_paths.py``)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate

from stream_deadline import StreamOutcome, StreamTimeoutError
from stream_deadline.instrumentation import set_on_end_hooks
from stream_deadline.langchain import DeadlineMixin
from support import virtual_time_loop

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """LangChain runs on asyncio only: a looptime loop (virtual time)."""
    return "asyncio", {"loop_factory": virtual_time_loop}


now = anyio.current_time
STALL = math.inf


class Scripted(BaseChatModel):
    """A chat model whose stream and answer follow a script, on the event loop's clock.

    ``script``: (delay, chunk) pairs, a chunk being ``"role"`` (LangChain's first empty
    chunk), ``"think"`` (reasoning in ``additional_kwargs``) or text. ``answer_after``: the
    seconds a non-streaming answer takes. ``closed`` records when each stream was closed.
    """

    script: list[tuple[float, str]] = []  # noqa: RUF012 (pydantic copies field defaults)
    answer_after: float = 1
    closed: list[float] = []  # noqa: RUF012

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        raise NotImplementedError  # (the async paths only)

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        try:
            await (anyio.sleep_forever() if self.answer_after == STALL else anyio.sleep(self.answer_after))
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content="answer"))])
        finally:
            self.closed.append(now())

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[ChatGenerationChunk]:
        raise NotImplementedError  # (the async paths only)

    async def _astream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        try:
            for delay, what in self.script:
                await (anyio.sleep_forever() if delay == STALL else anyio.sleep(delay))
                if what == "role":
                    message = AIMessageChunk(content="")
                elif what == "think":
                    message = AIMessageChunk(content="", additional_kwargs={"reasoning_content": "hmm"})
                else:
                    message = AIMessageChunk(content=what)
                chunk = ChatGenerationChunk(message=message)
                if run_manager is not None:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            self.closed.append(now())


class Limited(DeadlineMixin, Scripted):
    """The scripted model with the mixin in front."""


@pytest.fixture
def outcomes() -> Iterator[list[StreamOutcome]]:
    """Every outcome reported while the test runs."""
    seen: list[StreamOutcome] = []
    set_on_end_hooks([seen.append])
    try:
        yield seen
    finally:
        set_on_end_hooks(None)


BABBLE = [(0, "role")] + [(1, f"t{i}") for i in range(100)]
"""The role chunk at once, then a token every second, for 100 s."""
QUEUED = [(0, "role"), (8, "first"), (1, "second")]
"""The role chunk at once, then the first token after 8 s in the queue."""
KEEPALIVE_STALL = [(0, "role"), (1, "a"), (1, "b"), (STALL, "never")]
"""Two tokens, then nothing (a server that only sends keep-alives)."""


async def test_astream_is_cut_at_the_total_limit() -> None:
    """``stream_timeout=3.5`` on a babbling model: ``astream`` ends at 3.5 s with
    ``StreamTimeoutError("deadline")``, and the model's stream is closed then."""
    model = Limited(script=BABBLE, closed=[], stream_timeout=3.5)
    start = now()
    got = []
    with pytest.raises(StreamTimeoutError) as info:
        async for chunk in model.astream("hi"):
            got.append(chunk.content)
    assert (info.value.limit, now() - start, model.closed) == ("deadline", 3.5, [start + 3.5])
    assert got == ["", "t0", "t1", "t2"]


async def test_the_role_chunk_does_not_satisfy_first_token_timeout(outcomes: list[StreamOutcome]) -> None:
    """A queued request (the role chunk at once, the first token after 8 s):
    ``first_token_timeout=3`` cuts at 3 s, reported as a ``first_item`` timeout."""
    model = Limited(script=QUEUED, closed=[], stream_timeout=60, first_token_timeout=3)
    start = now()
    with pytest.raises(StreamTimeoutError) as info:
        await model.ainvoke("hi", config={"callbacks": []}, stream=True)
    assert (info.value.limit, now() - start) == ("first_item", 3)
    assert [(o.name, o.ending, o.limit, o.items) for o in outcomes] == [
        ("Limited", "timeout", "first_item", 1)
    ]


async def test_reasoning_counts_as_real_output() -> None:
    """A reasoning model thinking for 6 s (a reasoning chunk every second) before its first
    token: ``first_token_timeout=3`` and ``idle_timeout=2`` never fire."""
    script = [(0, "role")] + [(1, "think")] * 6 + [(1, "answer")]
    model = Limited(script=script, closed=[], first_token_timeout=3, idle_timeout=2)
    chunks = [chunk async for chunk in model.astream("why?")]
    assert chunks[-2].content == "answer"  # (LangChain adds an empty last chunk)


async def test_a_stall_is_cut_at_the_idle_limit() -> None:
    """Two tokens, then keep-alives only: ``idle_timeout=2`` cuts 2 s after the last token."""
    model = Limited(script=KEEPALIVE_STALL, closed=[], stream_timeout=60, idle_timeout=2)
    start = now()
    with pytest.raises(StreamTimeoutError) as info:
        async for _ in model.astream("hi"):
            pass
    assert (info.value.limit, now() - start) == ("idle", 4)


async def test_ainvoke_without_streaming_gets_the_total_limit(outcomes: list[StreamOutcome]) -> None:
    """A non-streaming ``ainvoke`` whose answer would take 30 s is cut at ``stream_timeout=3``;
    the model's call is cancelled then. ``first_token_timeout`` does not apply: there are no
    items."""
    model = Limited(answer_after=30, closed=[], stream_timeout=3, first_token_timeout=1)
    start = now()
    with pytest.raises(StreamTimeoutError) as info:
        await model.ainvoke("hi")
    assert (info.value.limit, now() - start, model.closed) == ("deadline", 3, [start + 3])
    assert [(o.ending, o.limit) for o in outcomes] == [("timeout", "deadline")]


async def test_ainvoke_in_time_returns_the_answer() -> None:
    """Within the limit, the non-streaming answer comes back as it is."""
    model = Limited(answer_after=2, closed=[], stream_timeout=3)
    assert (await model.ainvoke("hi")).content == "answer"


async def test_abatch_limits_each_call() -> None:
    """``abatch``: each call is limited on its own; one that would take 30 s fails, one of
    2 s answers (``return_exceptions=True``)."""
    slow = Limited(answer_after=30, closed=[], stream_timeout=3)
    fast = Limited(answer_after=2, closed=[], stream_timeout=3)
    start = now()
    results = await slow.abatch(["a", "b"], return_exceptions=True)
    assert [type(r) for r in results] == [StreamTimeoutError, StreamTimeoutError]
    assert now() - start == 3
    assert [r.content for r in await fast.abatch(["a", "b"])] == ["answer", "answer"]  # type: ignore[union-attr]


async def test_a_chain_and_astream_events_are_cut() -> None:
    """Inside ``prompt | model``, ``astream`` and ``astream_events`` are cut at the limit,
    and LangChain's error callback sees the ``StreamTimeoutError``."""
    errors: list[BaseException] = []

    class Errors(AsyncCallbackHandler):
        async def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
            errors.append(error)

    model = Limited(script=BABBLE, closed=[], stream_timeout=3)
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | model
    start = now()
    with pytest.raises(StreamTimeoutError):
        async for _ in chain.astream({"q": "hi"}, config={"callbacks": [Errors()]}):
            pass
    assert now() - start == 3
    assert [type(e) for e in errors] == [StreamTimeoutError]
    start = now()
    with pytest.raises(StreamTimeoutError):
        async for _ in chain.astream_events({"q": "hi"}, version="v2"):
            pass
    assert now() - start == 3


async def test_no_limit_adds_nothing(outcomes: list[StreamOutcome]) -> None:
    """With all three limits ``None`` the model's own stream is used as it is: no stream of
    the library is made (no outcome is reported)."""
    model = Limited(script=[(0, "role"), (1, "a")], closed=[])
    assert [c.content async for c in model.astream("hi")][:2] == ["", "a"]
    assert (await model.ainvoke("hi")).content == "answer"
    assert outcomes == []


def test_the_fields_are_pydantic_fields_with_none_defaults() -> None:
    """The three fields are model fields (validated, serialized), ``None`` by default."""
    model = Limited(stream_timeout=45, first_token_timeout=10)
    assert (model.stream_timeout, model.first_token_timeout, model.idle_timeout) == (45, 10, None)
    assert {"stream_timeout", "first_token_timeout", "idle_timeout"} <= set(Limited.model_fields)
    with pytest.raises(ValueError, match="stream_timeout"):
        Limited(stream_timeout="soon")


async def test_a_class_above_the_mixin_that_passes_through_is_accepted() -> None:
    """A mixin of the user's that wraps ``_astream`` and calls ``super()`` may come first: the
    limits still hold under it."""

    class Traced(Scripted):
        seen: list[str] = []  # noqa: RUF012

        async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
            async for chunk in super()._astream(*args, **kwargs):
                self.seen.append(chunk.text)
                yield chunk

    class TracedLimited(Traced, Limited):
        pass

    model = TracedLimited(script=BABBLE, closed=[], seen=[], stream_timeout=2.5)
    start = now()
    with pytest.raises(StreamTimeoutError):
        async for _ in model.astream("hi"):
            pass
    assert (now() - start, model.seen) == (2.5, ["", "t0", "t1"])


def test_the_mixin_after_the_model_class_is_refused() -> None:
    """``class Wrong(Scripted, DeadlineMixin)`` would leave every call unlimited: refused at
    class creation, with the order to write."""
    with pytest.raises(
        TypeError, match=r"put DeadlineMixin before the model class.*Wrong\(DeadlineMixin, Scripted\)"
    ):

        class Wrong(Scripted, DeadlineMixin):
            pass


class AnswersOnly(BaseChatModel):
    """A model that implements only ``_generate``: LangChain streams it by invoking it."""

    @property
    def _llm_type(self) -> str:
        return "answers-only"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="hello"))])


def test_a_model_that_cannot_stream_still_streams_by_invoking() -> None:
    """The mixin's own ``_stream``/``_astream`` do not make LangChain believe a model that
    only implements ``_generate`` can stream: ``stream`` and ``astream`` fall back to the
    answer, with or without limits (they raised ``NotImplementedError``). (On a plain loop:
    LangChain answers in the loop's default executor, whose shutdown a virtual clock would
    time out)."""

    class Limited(DeadlineMixin, AnswersOnly):
        pass

    async def chunks(model: Limited) -> list[Any]:
        return [chunk.content async for chunk in model.astream("hi")]

    for model in (Limited(), Limited(stream_timeout=5)):
        assert [chunk.content for chunk in model.stream("hi")] == ["hello"]
        assert asyncio.run(chunks(model)) == ["hello"]


def test_a_pass_through_class_above_the_mixin_over_a_model_without_stream_is_accepted() -> None:
    """``class M(Tracing, DeadlineMixin, AnswersOnly)``: the model class is below the mixin,
    so the class is valid (it was refused, naming ``Tracing`` as the model)."""

    class Tracing(BaseChatModel):
        def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
            yield from super()._stream(*args, **kwargs)

    class M(Tracing, DeadlineMixin, AnswersOnly):
        pass

    assert M(stream_timeout=5).invoke("hi").content == "hello"
