"""Limits set once on a LangChain chat model, kept on every call path.

::

    from langchain_openai import ChatOpenAI
    from stream_deadline.langchain import DeadlineMixin


    class ChatVllm(DeadlineMixin, ChatOpenAI):
        \"\"\"ChatOpenAI whose every call ends on time.\"\"\"


    model = ChatVllm(model="qwen3", base_url="http://vllm:8000/v1", api_key="EMPTY",
                     stream_timeout=45, first_token_timeout=10, idle_timeout=5)

Needs ``langchain-core`` (``pip install ".[langchain]"`` from a checkout).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from langchain_core.language_models.chat_models import BaseChatModel

from . import _background
from ._core import with_deadline
from .progress import langchain_chunk

if TYPE_CHECKING:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, ChatResult

__all__ = ["DeadlineMixin"]


class DeadlineMixin(BaseChatModel):
    """Put it before a LangChain chat model class to limit every call the model makes.

    ``class ChatVllm(DeadlineMixin, ChatOpenAI): ...`` adds three fields, each ``None`` (no
    limit) by default:

    - ``stream_timeout``: the total, in seconds, of each call;
    - ``first_token_timeout``: seconds to the first real output;
    - ``idle_timeout``: seconds a stall between two real outputs may last.

    Real output is what :func:`stream_deadline.progress.langchain_chunk` counts: content,
    reasoning, tool calls; not the role-only first chunk nor the final usage chunk.

    Every call path honours them, directly and inside chains and LangGraph graphs:
    ``astream``, ``astream_events``, ``ainvoke``/``agenerate`` and ``abatch`` (streaming or
    not), and the sync ``stream``, ``invoke`` and ``batch``. A streaming call is limited by
    :func:`~stream_deadline.with_deadline` with the three limits; a non-streaming one, which
    has no items, by ``stream_timeout`` alone. On a timeout the call raises
    :class:`~stream_deadline.StreamTimeoutError` (LangChain's error callbacks see it) after
    the model's HTTP response is closed, which makes the server stop generating.

    The reasoning an OpenAI-compatible server sends as ``reasoning_content`` (vLLM's reasoning
    parsers, DeepSeek), which ``ChatOpenAI`` drops, is kept in each chunk's
    ``additional_kwargs``: thinking is output, and ``first_token_timeout`` does not cut it.

    The sync paths run the model's async path on a background event loop (one per process,
    in a thread of its own, started at the first sync call), where the watch can cut a read
    that the calling thread is blocked in. So a sync call uses the model's *async* client;
    a model class with no async implementation of its own (no ``_astream``/``_agenerate``)
    is not limited on its sync paths.
    """

    stream_timeout: float | None = None
    """The total limit of each call, in seconds; ``None``: none."""
    first_token_timeout: float | None = None
    """Seconds to the first real output of a streaming call; ``None``: no limit."""
    idle_timeout: float | None = None
    """Seconds between two real outputs of a streaming call; ``None``: no limit."""

    def __init_subclass__(cls, **kwargs: Any) -> None:  # noqa: ANN401 (pydantic's class options)
        """Refuse a class that puts the model class before the mixin: the model's own methods
        would run first, and the mixin would wrap only LangChain's defaults."""
        super().__init_subclass__(**kwargs)
        mro: tuple[type, ...] = cls.__mro__
        mixin = mro.index(DeadlineMixin)
        # A model class implements `_generate` (it is abstract): one above the mixin and none
        # below it means the model class was put first.
        models = [k for k in mro[:mixin] if "_generate" in k.__dict__ and DeadlineMixin not in k.__mro__]
        if models and not any("_generate" in k.__dict__ for k in mro[mixin + 1 : mro.index(BaseChatModel)]):
            raise TypeError(
                f"{cls.__qualname__}: put DeadlineMixin before the model class, as in"
                f" class {cls.__name__}(DeadlineMixin, {_first_model(cls).__name__}); after it, the"
                " model's own methods run unlimited"
            )

    def _should_stream(self, *, async_api: bool, **kwargs: Any) -> bool:  # noqa: ANN401 (LangChain's options)
        """Stream only if the model class itself can: the mixin's own ``_stream`` and
        ``_astream`` would make LangChain believe any model can (and fail on one that only
        implements ``_generate``, which LangChain answers with ``invoke`` instead)."""
        if not (_has_own(self, "_stream") or _has_own(self, "_astream")):
            return False
        return super()._should_stream(async_api=async_api, **kwargs)

    def _convert_chunk_to_generation_chunk(self, chunk: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        """(ChatOpenAI and its kin) Keep the reasoning an OpenAI-compatible server sends.

        vLLM's reasoning parsers and DeepSeek send it as ``reasoning_content`` (OpenRouter as
        ``reasoning``) in each chunk's delta; ``ChatOpenAI`` drops it, so a model that thinks
        for 10 s would look silent and ``first_token_timeout`` would cut it. The mixin keeps
        it in the message's ``additional_kwargs``, as the provider packages (``ChatDeepSeek``)
        do, where :func:`~stream_deadline.progress.langchain_chunk` counts it.
        """
        converted = getattr(super(), "_convert_chunk_to_generation_chunk")(chunk, *args, **kwargs)  # noqa: B009 (absent from BaseChatModel)
        delta = _first_delta(chunk)
        if converted is not None and delta:
            kept: dict[str, Any] = converted.message.additional_kwargs
            for key in _REASONING:
                if delta.get(key) and key not in kept:
                    kept[key] = delta[key]
        return converted

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,  # noqa: ANN401 (the model's own options)
    ) -> AsyncIterator[ChatGenerationChunk]:
        chunks = super()._astream(messages, stop=stop, run_manager=run_manager, **kwargs)
        if self.stream_timeout is self.first_token_timeout is self.idle_timeout is None:
            return chunks
        return with_deadline(
            chunks,
            self.stream_timeout,
            first_item=self.first_token_timeout,
            idle=self.idle_timeout,
            progress=langchain_chunk,
            name=type(self).__qualname__,
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,  # noqa: ANN401 (the model's own options)
    ) -> ChatResult:
        generate = super()._agenerate
        if self.stream_timeout is None:
            return await generate(messages, stop=stop, run_manager=run_manager, **kwargs)

        async def answer() -> AsyncIterator[ChatResult]:  # the whole answer, as the one item
            yield await generate(messages, stop=stop, run_manager=run_manager, **kwargs)

        async with with_deadline(answer(), self.stream_timeout, name=type(self).__qualname__) as result:
            return await anext(result)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,  # noqa: ANN401 (the model's own options)
    ) -> Iterator[ChatGenerationChunk]:
        if self.stream_timeout is self.first_token_timeout is self.idle_timeout is None or not _has_own(
            self, "_astream"
        ):
            yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
            return
        for chunk in _background.iterate(self._astream(messages, stop=stop, **kwargs)):
            if run_manager is not None:  # (as the model's own _stream would)
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,  # noqa: ANN401 (the model's own options)
    ) -> ChatResult:
        if self.stream_timeout is None or not _has_own(self, "_agenerate"):
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)  # type: ignore[safe-super]  # (the model class's own)
        return _background.run(self._agenerate(messages, stop=stop, **kwargs))


_PATHS = ("_astream", "_agenerate", "_stream", "_generate")
_REASONING = ("reasoning_content", "reasoning")


def _first_model(cls: type) -> type:
    """The first base of ``cls`` that is not (built on) the mixin: the model class."""
    return next(base for base in cls.__bases__ if DeadlineMixin not in base.__mro__)


def _first_delta(chunk: Any) -> Mapping[str, Any]:  # noqa: ANN401 (a chunk as the model class parsed it)
    """The delta of the first choice of a chat-completion chunk in its dict form, or ``{}``."""
    try:
        delta: object = chunk["choices"][0]["delta"]
    except (KeyError, IndexError, TypeError):  # (the usage chunk has no choice)
        return {}
    return cast("Mapping[str, Any]", delta) if isinstance(delta, Mapping) else {}


def _has_own(model: DeadlineMixin, name: str) -> bool:
    """Whether the model class below the mixin implements ``name`` itself, rather than
    BaseChatModel's default (which runs the sync method in a thread: no way to cut it)."""
    below = super(DeadlineMixin, model)
    return getattr(below, name).__func__ is not getattr(BaseChatModel, name)
