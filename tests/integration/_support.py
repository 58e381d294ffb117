"""Shared pieces of the integration tests: chat models with and without a deadline, and timing.

The hand-made models subclass :class:`RecordingChat`, a real ``ChatOpenAI`` that notes when
its ``_astream`` body starts, that is, the first pull of the stream, which is when a
``with_deadline`` stream starts its clock. :class:`ChatVllm` is the library's own way:
``DeadlineMixin`` in front of ``ChatOpenAI``. All times are :func:`time.monotonic`, the clock
of asyncio's default loop and of the fake server. :data:`LATENESS` collects the lateness the
tests measure, for the table the session prints at its end.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import openai
from _fake_vllm import ID_HEADER
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from pydantic import PrivateAttr

from stream_deadline import StreamTimeoutError, with_deadline
from stream_deadline.langchain import DeadlineMixin

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from _fake_vllm import Generation, ServerThread
    from langchain_core.messages import BaseMessageChunk
    from langchain_core.outputs import ChatGenerationChunk
    from langchain_core.runnables import Runnable

DEADLINE = 1.0
"""The total limit used by the tests, in seconds."""
CLIENT_SLACK = 0.25
"""How late the consumer may see the timeout, after the deadline."""
SERVER_SLACK = 0.5
"""How late the server may stop generating, after the deadline."""

M = TypeVar("M", bound="RecordingChat")

timing = logging.getLogger("integration.timing")
"""Measured lateness, logged at INFO: see it with ``pytest tests/integration --log-cli-level=INFO``."""

LATENESS: dict[str, tuple[float, float]] = {}
"""Per case: how late the client raised and how late the server stopped, in seconds after the
moment the limit was due; printed (and written to :data:`LATENESS_FILE`) at the end of the
session."""
LATENESS_FILE = "/tmp/stream_deadline_lateness.md"  # noqa: S108 (a report for the reader, not a secret)


def record_lateness(label: str, client: float, server: float) -> None:
    """Note how late the client raised and the server stopped, after the limit was due."""
    LATENESS[label] = (client, server)
    timing.info(
        "%s: client %+.1f ms, server %+.1f ms after the limit was due", label, client * 1e3, server * 1e3
    )


def lateness_table() -> str:
    """:data:`LATENESS` as a Markdown table, in milliseconds."""
    rows = [
        f"| {label} | {client * 1e3:+.1f} | {server * 1e3:+.1f} |"
        for label, (client, server) in LATENESS.items()
    ]
    return "\n".join(
        ["| case | client raised (ms late) | server stopped (ms late) |", "|---|---:|---:|", *rows]
    )


class ChatVllm(DeadlineMixin, ChatOpenAI):
    """``ChatOpenAI`` with limits set once on the model: the library's ``DeadlineMixin``."""


def vllm(
    cls: type[ChatVllm], server: ServerThread, mode: str, request_id: str, http: Any, **fields: Any
) -> ChatVllm:
    """A model of class ``cls`` talking to ``server`` in ``mode`` through the async client ``http``."""
    return cls(
        model=mode,
        base_url=server.base_url,
        api_key="test",  # type: ignore[arg-type]
        max_retries=0,
        default_headers={ID_HEADER: request_id},
        http_async_client=http,
        **fields,
    )


class RecordingChat(ChatOpenAI):
    """``ChatOpenAI`` that records when each of its streams was first pulled."""

    stream_timeout: float | None = DEADLINE
    _first_pulls: list[float] = PrivateAttr(default_factory=list)

    @property
    def first_pull(self) -> float:
        """When the last stream's body started (its first pull)."""
        return self._first_pulls[-1]

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        self._first_pulls.append(time.monotonic())
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk


class DeadlineChat(RecordingChat):
    """The fix: ``_astream`` under ``with_deadline``, the limit read per call from the model."""

    @with_deadline(lambda self, *_a, **_k: self.stream_timeout)
    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk


class StopChat(RecordingChat):
    """Like :class:`DeadlineChat`, but the stream ends quietly at the deadline."""

    @with_deadline(lambda self, *_a, **_k: self.stream_timeout, on_timeout="stop")
    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk


class FirstItemChat(RecordingChat):
    """A generous total limit, but the first chunk must come within one second."""

    stream_timeout: float | None = 30.0

    @with_deadline(lambda self, *_a, **_k: self.stream_timeout, first_item=1.0)
    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk


class IdleChat(RecordingChat):
    """No total limit, only a stall detector: each later chunk must come within 0.3 s."""

    @with_deadline(None, idle=0.3)
    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk


class NaiveTimeoutChat(RecordingChat):
    """The obvious fix that fails in a chain: ``asyncio.timeout`` around the body of ``_astream``."""

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async with asyncio.timeout(self.stream_timeout):
            async for chunk in super()._astream(*args, **kwargs):
                yield chunk


class CheckOnChunkChat(RecordingChat):
    """The blog's fix: compare the elapsed time with the limit each time a chunk arrives."""

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        start = time.monotonic()
        limit = self.stream_timeout if self.stream_timeout is not None else float("inf")
        async for chunk in super()._astream(*args, **kwargs):
            if time.monotonic() - start > limit:
                raise TimeoutError(f"stream exceeded {limit} s")
            yield chunk


EARLY = 0.005
"""Seconds a server-side sleep may end before its time, as measured on ``time.monotonic``:
asyncio runs a timer up to its clock's resolution early, uvloop counts whole milliseconds."""


def new_id() -> str:
    """A fresh request id for the ``x-fake-vllm-id`` header."""
    return f"test-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def chat_model(
    cls: type[M], server: ServerThread, mode: str, request_id: str, **fields: Any
) -> AsyncIterator[M]:
    """A model of class ``cls`` talking to ``server`` in ``mode``, with its own HTTP client.

    The client is closed on exit, so no pooled connection outlives the test's event loop.
    """
    async with openai.DefaultAsyncHttpxClient() as http:
        yield cls(
            model=mode,
            base_url=server.base_url,
            api_key="test",  # type: ignore[arg-type]
            max_retries=0,
            default_headers={ID_HEADER: request_id},
            http_async_client=http,
            **fields,
        )


def chain_of(model: RecordingChat) -> Runnable[dict[str, str], BaseMessageChunk]:
    """``prompt | model``: a chain, which pulls every chunk of the model in a new task."""
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    return prompt | model  # type: ignore[return-value]


@dataclass
class Run:
    """What a consumer saw: the texts of the chunks, when it ended and how."""

    texts: list[str] = field(default_factory=list)
    error: BaseException | None = None
    ended: float = 0.0

    @property
    def tokens(self) -> list[str]:
        """The babble tokens received (``" tok1"``, ``" tok2"``...), in order."""
        return [text for text in self.texts if text.startswith(" tok")]

    @property
    def text(self) -> str:
        """The whole answer received."""
        return "".join(self.texts)

    @property
    def timeout(self) -> StreamTimeoutError:
        """The :class:`StreamTimeoutError` the consumer got (fails if it got anything else)."""
        assert isinstance(self.error, StreamTimeoutError), f"expected StreamTimeoutError, got {self.error!r}"
        return self.error


async def consume(stream: AsyncIterator[Any], *, max_items: int | None = None) -> Run:
    """Iterate ``stream`` (closing it at the end), recording chunk texts and how it ended.

    With ``max_items``, stop after that many items: the bound for streams that never end.
    """
    run = Run()
    try:
        async for item in stream:
            run.texts.append(_text(item))
            if max_items is not None and len(run.texts) >= max_items:
                break
    except Exception as exc:
        run.error = exc
    finally:
        run.ended = time.monotonic()
        aclose: Callable[[], Any] | None = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    return run


def _text(item: Any) -> str:
    content = getattr(item, "content", None)
    if isinstance(content, str):
        return content
    choices = getattr(item, "choices", None)
    if choices is not None:  # an openai ChatCompletionChunk
        return "".join(choice.delta.content or "" for choice in choices)
    return str(item)


def assert_tokens_in_order(tokens: list[str]) -> None:
    """The babble tokens received are `` tok1`` ... `` tokN``: none lost, none duplicated."""
    assert tokens == [f" tok{n}" for n in range(1, len(tokens) + 1)]


def assert_cut_at_deadline(run: Run, first_pull: float, generation: Generation, label: str) -> None:
    """The consumer saw the end, and the server stopped, soon after the deadline (first pull + DEADLINE)."""
    due = first_pull + DEADLINE
    timing.info(
        "%s: client ended %+.1f ms, server stopped %+.1f ms after the deadline; %d tokens sent",
        label,
        (run.ended - due) * 1000,
        ((generation.stopped or float("nan")) - due) * 1000,
        generation.tokens,
    )
    assert due - 0.01 <= run.ended <= due + CLIENT_SLACK, (
        f"client raised {run.ended - due:+.3f} s after the deadline"
    )
    assert generation.reason == "disconnected"
    assert generation.stopped is not None
    assert generation.stopped <= due + SERVER_SLACK, (
        f"server stopped {generation.stopped - due:+.3f} s after the deadline"
    )
