"""Ready-made ``progress=`` predicates for LLM streams: which items are real output.

A stream from a model server delivers more than output: a first chunk that only names the
role, chunks with empty deltas, a chunk with only a finish reason, a final chunk with only
token usage. Given as ``progress=``, these predicates return ``True`` only for an item that
carries output, so that only such an item satisfies the first-item limit or ends an idle
wait; every item is still delivered.

- :func:`openai_chunk` reads the chunks of the OpenAI Chat Completions and legacy Completions
  streams (the ``openai`` package's objects, or the parsed JSON of each SSE ``data:`` line),
  as OpenAI, vLLM, DeepSeek, OpenRouter and other compatible servers send them.
- :func:`langchain_chunk` reads LangChain's ``AIMessageChunk`` (any message chunk) and
  ``ChatGenerationChunk``.

Both are duck-typed: they read attributes and mapping keys and import neither ``openai`` nor
LangChain. A missing field, a ``None`` and a value of another type read as "no output": they
do not raise, and an item of neither shape is ``False``.

What counts, in both: a *non-empty string* has at least one character (whitespace counts);
a *content block* counts when it is a non-empty string, or a mapping with a non-empty string
(or a list holding a block that counts) under ``text``, ``reasoning``, ``thinking``,
``refusal`` or ``summary``, or a mapping whose ``type`` is a tool or media block: ``image``,
``image_url``, ``audio``, ``video``, ``file``, or a type that ends in ``_call``,
``_call_chunk``, ``_use`` or ``_result`` (``tool_call``, ``tool_call_chunk``, ``tool_use``,
``server_tool_call``, ``function_call``, ``web_search_call``, ...). A block with only an id,
an index, a signature or encrypted reasoning does not count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Sized
from typing import Final, cast

__all__ = ["langchain_chunk", "openai_chunk"]

_NOT_A_MODEL: Final[dict[str, object]] = {}  # compared by identity: not a pydantic model
_BLOCK_TEXT_KEYS: Final = ("text", "reasoning", "thinking", "refusal", "summary")
_MEDIA_BLOCK_TYPES: Final = frozenset({"image", "image_url", "audio", "video", "file"})
_TOOL_BLOCK_SUFFIXES: Final = ("_call", "_call_chunk", "_use", "_result")


def openai_chunk(item: object, /) -> bool:
    """Whether a Chat Completions or legacy Completions stream chunk carries model output.

    ``item`` is an ``openai`` ``ChatCompletionChunk`` or ``Completion`` object, or its dict
    form (the parsed JSON of an SSE ``data:`` line). It counts when any of its ``choices``
    does. A Chat Completions choice counts when its ``delta`` has any of:

    - a ``content`` that is a non-empty string (or a list holding a content block that counts);
    - a non-empty ``reasoning_content`` or ``reasoning`` (the reasoning text that vLLM,
      DeepSeek and OpenRouter add; on the ``openai`` objects these are extra fields);
    - a non-empty ``refusal``;
    - a non-empty ``tool_calls`` list;
    - a ``function_call`` with a non-empty ``name`` or ``arguments``;
    - an ``audio`` with non-empty ``data`` or ``transcript``.

    A legacy Completions choice (one without a ``delta``) counts when its ``text`` is a
    non-empty string.

    So the role-only first chunk (``{"role": "assistant", "content": ""}``), an empty delta,
    ``content: null``, a chunk with only a ``finish_reason``, a delta whose only reasoning is
    in ``reasoning_details`` (OpenRouter's encrypted reasoning), and the usage-only final chunk
    (``choices: []``) do not count. Neither does anything without a list of ``choices``: a
    Responses API event, a raw SSE line, ``None``.
    """
    choices = _field(item, "choices")
    if not isinstance(choices, (list, tuple)):
        return False
    for choice in cast("Sequence[object]", choices):
        delta = _field(choice, "delta")
        if delta is None:
            text = _field(choice, "text")
            if isinstance(text, str) and text != "":
                return True
        elif _delta_has_output(delta):
            return True
    return False


def langchain_chunk(item: object, /) -> bool:
    """Whether a LangChain message chunk carries model output.

    ``item`` is an ``AIMessageChunk`` (or any message chunk or message) or a
    ``ChatGenerationChunk``, whose ``message`` is read. It counts when it has any of:

    - a ``content`` that is a non-empty string, or a list holding a content block that
      counts: a non-empty string, a ``text``, ``reasoning`` or ``thinking`` block with
      non-empty text (``{"type": "text", "text": "hi"}``), a ``tool_call_chunk`` or
      ``tool_use`` block, an ``image`` block, ...;
    - a non-empty ``tool_call_chunks``, ``tool_calls`` or ``invalid_tool_calls`` list;
    - in ``additional_kwargs``: a ``reasoning_content`` or ``reasoning`` that is a non-empty
      string or a content block that counts (or a list holding one), a non-empty
      ``tool_calls`` list, or a ``function_call`` with a non-empty ``name`` or ``arguments``.

    So an empty chunk, the role-only first chunk that ``langchain-openai`` makes (content
    ``""``), and a chunk with only ``response_metadata``, ``usage_metadata`` (the final usage
    chunk) or ``chunk_position`` do not count. Neither does anything that has neither a
    ``content`` nor a ``message``.

    ``langchain-openai``'s ``ChatOpenAI`` keeps only the content, tool calls and function call
    of the first choice of a Chat Completions chunk: the reasoning text that vLLM, DeepSeek
    and OpenRouter send, a refusal and audio arrive there as empty chunks, which do not count.
    The provider's own LangChain package (``ChatDeepSeek``, ``ChatOpenRouter``, ...) keeps the
    reasoning.
    """
    content = _field(item, "content")
    if content is None:
        item = _field(item, "message")
        if item is None:
            return False
        content = _field(item, "content")
    if isinstance(content, str):
        if content != "":
            return True
    elif _carries(content):
        return True
    return _message_has_other_output(item)


def _message_has_other_output(message: object) -> bool:
    """Whether a LangChain message carries output other than its ``content``."""
    if (
        _is_filled(_field(message, "tool_call_chunks"))
        or _is_filled(_field(message, "tool_calls"))
        or _is_filled(_field(message, "invalid_tool_calls"))
    ):
        return True
    kwargs = _field(message, "additional_kwargs")
    if kwargs is None or not isinstance(kwargs, Mapping):
        return False
    extra = cast("Mapping[str, object]", kwargs)
    if not extra:
        return False
    return (
        _carries(extra.get("reasoning_content"))
        or _carries(extra.get("reasoning"))
        or _is_filled(extra.get("tool_calls"))
        or _names_a_call(extra.get("function_call"))
    )


def _delta_has_output(delta: object) -> bool:
    """Whether a Chat Completions ``delta`` carries output (see :func:`openai_chunk`)."""
    content = _field(delta, "content")
    if isinstance(content, str):
        if content != "":
            return True
    elif _carries(content):
        return True
    if (
        _carries(_field(delta, "reasoning_content"))
        or _carries(_field(delta, "reasoning"))
        or _carries(_field(delta, "refusal"))
        or _is_filled(_field(delta, "tool_calls"))
        or _names_a_call(_field(delta, "function_call"))
    ):
        return True
    audio = _field(delta, "audio")
    return audio is not None and (_is_text(_field(audio, "data")) or _is_text(_field(audio, "transcript")))


def _field(obj: object, name: str) -> object:
    """``obj[name]`` of a mapping, else ``obj.name``; ``None`` when there is no such field.

    A pydantic model (the ``openai`` and LangChain objects) keeps its fields in ``__dict__``
    and its extra fields in ``__pydantic_extra__``: both are read directly, because a missing
    attribute of a model costs an ``AttributeError`` raised inside its ``__getattr__``, some
    microseconds. So a property of a model is not read; no field read here is one.
    """
    if isinstance(obj, dict):
        return cast("dict[str, object]", obj).get(name)
    fields: Mapping[str, object] | None = getattr(obj, "__dict__", None)
    if fields is not None and name in fields:
        return fields[name]
    extra: dict[str, object] | None = getattr(obj, "__pydantic_extra__", _NOT_A_MODEL)
    if extra is not _NOT_A_MODEL:  # a pydantic model: None, or a dict of its extra fields
        return None if extra is None else extra.get(name)
    if isinstance(obj, Mapping):
        return cast("Mapping[str, object]", obj).get(name)
    return getattr(obj, name, None)


def _carries(value: object) -> bool:
    """Whether ``value`` is a non-empty string, a content block that counts, or a list holding one."""
    if value is None:
        return False
    if isinstance(value, str):
        return value != ""
    # Loops, not any(): a generator that any() leaves early is closed with a GeneratorExit.
    if isinstance(value, (list, tuple)):
        for block in cast("Sequence[object]", value):  # noqa: SIM110
            if _carries(block):
                return True
        return False
    return isinstance(value, Mapping) and _block_counts(cast("Mapping[str, object]", value))


def _block_counts(block: Mapping[str, object]) -> bool:
    """Whether a content block (a mapping) counts: see the module's docstring."""
    kind = block.get("type")
    if isinstance(kind, str) and (kind in _MEDIA_BLOCK_TYPES or kind.endswith(_TOOL_BLOCK_SUFFIXES)):
        return True
    for key in _BLOCK_TEXT_KEYS:  # noqa: SIM110
        if _carries(block.get(key)):
            return True
    return False


def _is_filled(value: object) -> bool:
    """Whether ``value`` is a non-empty list or tuple."""
    return isinstance(value, (list, tuple)) and len(cast("Sized", value)) > 0


def _is_text(value: object) -> bool:
    """Whether ``value`` is a non-empty string."""
    return isinstance(value, str) and value != ""


def _names_a_call(value: object) -> bool:
    """Whether a ``function_call`` has a non-empty ``name`` or ``arguments``."""
    return value is not None and (_is_text(_field(value, "name")) or _is_text(_field(value, "arguments")))
