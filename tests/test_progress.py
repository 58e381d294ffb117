"""The ready-made ``progress=`` predicates of ``stream_deadline.progress``, against the real
``openai`` and LangChain objects.

The chunks are the JSON that vLLM and the OpenAI API stream, read in every form a user meets
them: the parsed JSON of the SSE ``data:`` line, ``ChatCompletionChunk.model_validate`` of it,
and what the ``openai`` client itself yields when an ``httpx.MockTransport`` serves the line
(built without validation, as in production). The LangChain chunks are what
``langchain-openai``'s ``ChatOpenAI`` makes of the same lines, and content-block chunks in the
shapes that ``langchain-openai`` (Responses API), ``langchain-anthropic`` and LangChain's v1
standard blocks produce. ``openai``, ``httpx`` and ``langchain-openai`` belong to the
``integration`` group: without them those cases are skipped, the rest run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessageChunk
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk

import stream_deadline
from stream_deadline.progress import langchain_chunk, openai_chunk

# --- Chat Completions chunks, as vLLM and the OpenAI API send them --------------------------


def chat(*deltas: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice per delta, as vLLM sends it."""
    return {
        "id": "chatcmpl-7f3a",
        "object": "chat.completion.chunk",
        "created": 1735689600,
        "model": "Qwen/Qwen3-8B",
        "choices": [
            {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            for i, delta in enumerate(deltas)
        ],
    }


USAGE_ONLY: dict[str, Any] = {
    "id": "chatcmpl-7f3a",
    "object": "chat.completion.chunk",
    "created": 1735689600,
    "model": "Qwen/Qwen3-8B",
    "choices": [],
    "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
}

FIRST_TOOL_CALL = {
    "index": 0,
    "id": "chatcmpl-tool-1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": ""},
}

CHAT: dict[str, tuple[dict[str, Any], bool]] = {
    # real output
    "content": (chat({"content": "Hello"}), True),
    "whitespace-content": (chat({"content": "\n\n"}), True),
    "reasoning_content-extra": (chat({"reasoning_content": "Let me think.", "content": None}), True),
    "reasoning-extra": (chat({"reasoning": "Let me think."}), True),
    "tool_calls-first": (chat({"tool_calls": [FIRST_TOOL_CALL]}), True),
    "tool_calls-arguments": (chat({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}), True),
    "function_call": (chat({"function_call": {"name": "get_weather", "arguments": ""}}), True),
    "refusal": (chat({"refusal": "I can't help with that."}), True),
    "audio-transcript": (chat({"audio": {"id": "audio_1", "transcript": "Hello"}}), True),
    "audio-data": (chat({"audio": {"data": "UklGRiQAAABXQVZF"}}), True),
    "content-and-finish": (chat({"content": "."}, finish_reason="stop"), True),
    "second-choice-only": (chat({}, {"content": "Hi"}), True),
    # no output
    "role-only": (chat({"role": "assistant", "content": ""}), False),
    "role-only-openai": (chat({"role": "assistant", "content": "", "refusal": None}), False),
    "empty-delta": (chat({}), False),
    "content-null": (chat({"content": None}), False),
    "finish_reason-only": (chat({}, finish_reason="stop"), False),
    "finish-tool_calls-only": (chat({"content": None}, finish_reason="tool_calls"), False),
    "usage-only": (USAGE_ONLY, False),
    "empty-reasoning": (chat({"content": "", "reasoning_content": ""}), False),
    "empty-tool_calls": (chat({"content": None, "tool_calls": []}), False),
    "nameless-function_call": (chat({"function_call": {"name": "", "arguments": ""}}), False),
    "audio-id-only": (chat({"audio": {"id": "audio_1"}}), False),
    "audio-expiry-only": (chat({"audio": {"expires_at": 1735693200}}), False),
    "encrypted-reasoning_details": (
        chat({"content": "", "reasoning": None, "reasoning_details": [{"type": "reasoning.encrypted"}]}),
        False,
    ),
    "two-empty-choices": (chat({"content": ""}, {"role": "assistant"}), False),
}


def completion(text: str, finish_reason: str | None = None) -> dict[str, Any]:
    """A legacy ``text_completion`` chunk, as vLLM streams it (``finish_reason`` null on all
    but the last)."""
    return {
        "id": "cmpl-9b1c",
        "object": "text_completion",
        "created": 1735689600,
        "model": "Qwen/Qwen3-8B",
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
    }


COMPLETION: dict[str, tuple[dict[str, Any], bool]] = {
    "text": (completion("Hello"), True),
    "whitespace-text": (completion(" "), True),
    "text-and-finish": (completion(".", "stop"), True),
    "empty-text": (completion(""), False),
    "finish-only": (completion("", "length"), False),
    "usage-only": ({**completion(""), "choices": [], "usage": USAGE_ONLY["usage"]}, False),
}


# --- the forms a chunk reaches a predicate in ----------------------------------------------


@contextmanager
def sse_client(*payloads: dict[str, Any]) -> Iterator[Any]:
    """An ``openai.OpenAI`` client whose server streams ``payloads`` as SSE ``data:`` lines."""
    httpx = pytest.importorskip("httpx")
    openai = pytest.importorskip("openai")
    body = "".join(f"data: {json.dumps(payload)}\n\n" for payload in payloads) + "data: [DONE]\n\n"

    def serve(request: Any) -> Any:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())

    with httpx.Client(transport=httpx.MockTransport(serve)) as http:
        yield openai.OpenAI(api_key="sk-test", base_url="http://llm.test/v1", http_client=http)


def as_json(payload: dict[str, Any], kind: str) -> object:
    return json.loads(json.dumps(payload))


def as_validated(payload: dict[str, Any], kind: str) -> object:
    types = pytest.importorskip("openai.types")
    model = types.chat.ChatCompletionChunk if kind == "chat" else types.Completion
    return model.model_validate(payload)


def from_sdk_stream(payload: dict[str, Any], kind: str) -> object:
    with sse_client(payload) as client:
        if kind == "chat":
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        else:
            stream = client.completions.create(model="m", prompt="hi", stream=True)
        (item,) = list(stream)
    assert type(item).__module__.startswith("openai.types")
    return item


FORMS: dict[str, Callable[[dict[str, Any], str], object]] = {
    "json": as_json,
    "model_validate": as_validated,
    "sdk-stream": from_sdk_stream,
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
@pytest.mark.parametrize(("payload", "expected"), CHAT.values(), ids=CHAT.keys())
def test_openai_chat_chunk(
    form: Callable[[dict[str, Any], str], object], payload: dict[str, Any], expected: bool
) -> None:
    """A Chat Completions chunk counts exactly when a choice's delta carries output (content,
    reasoning in the extra fields vLLM/DeepSeek/OpenRouter add, tool or function calls, a
    refusal, audio data or transcript), the same in the JSON, validated and SDK-built forms."""
    assert openai_chunk(form(payload, "chat")) is expected


@pytest.mark.parametrize("form", [as_json, from_sdk_stream], ids=["json", "sdk-stream"])
@pytest.mark.parametrize(("payload", "expected"), COMPLETION.values(), ids=COMPLETION.keys())
def test_openai_completion_chunk(
    form: Callable[[dict[str, Any], str], object], payload: dict[str, Any], expected: bool
) -> None:
    """A legacy Completions chunk counts exactly when a choice has non-empty ``text``; a chunk
    with a null ``finish_reason`` fails ``Completion.model_validate``, so the SDK-built form
    is the real one."""
    assert openai_chunk(form(payload, "completion")) is expected


def test_extra_reasoning_fields_are_attributes_of_the_openai_delta() -> None:
    """The openai models allow extra fields: vLLM's ``reasoning_content`` is reachable as an
    attribute and in ``model_extra`` (what the predicate relies on), not a declared field."""
    chunk = as_validated(chat({"reasoning_content": "Let me think."}), "chat")
    delta = chunk.choices[0].delta  # type: ignore[attr-defined]
    assert "reasoning_content" not in type(delta).model_fields
    assert delta.reasoning_content == "Let me think."
    assert delta.model_extra == {"reasoning_content": "Let me think."}


def test_a_responses_api_event_does_not_count() -> None:
    """``openai_chunk`` reads Chat Completions and Completions only: a Responses API text delta
    has no ``choices`` and is False, as documented."""
    responses = pytest.importorskip("openai.types.responses")
    event = responses.ResponseTextDeltaEvent.model_validate(
        {
            "type": "response.output_text.delta",
            "delta": "Hello",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "sequence_number": 3,
            "logprobs": [],
        }
    )
    assert openai_chunk(event) is False


ODD_OPENAI: dict[str, tuple[object, bool]] = {
    "None": (None, False),
    "int": (5, False),
    "raw-sse-line": ('data: {"choices": [{"delta": {"content": "Hi"}}]}', False),
    "bytes": (b'{"choices": []}', False),
    "object": (object(), False),
    "choices-None": ({"choices": None}, False),
    "choices-str": ({"choices": "Hello"}, False),
    "choices-dict": ({"choices": {"0": {"delta": {"content": "Hi"}}}}, False),
    "choice-None": ({"choices": [None]}, False),
    "choice-str": ({"choices": ["Hello"]}, False),
    "delta-str": ({"choices": [{"delta": "Hello"}]}, False),
    "delta-None-no-text": ({"choices": [{"delta": None}]}, False),
    "text-int": ({"choices": [{"text": 5}]}, False),
    "content-int": ({"choices": [{"delta": {"content": 5}}]}, False),
    "fields-of-wrong-types": (
        {"choices": [{"delta": {"tool_calls": "x", "function_call": "f", "audio": "x", "refusal": 1}}]},
        False,
    ),
    "content-parts": ({"choices": [{"delta": {"content": [{"type": "text", "text": "Hi"}]}}]}, True),
    "empty-content-parts": ({"choices": [{"delta": {"content": [{"type": "text", "text": ""}]}}]}, False),
    "plain-objects": (SimpleNamespace(choices=(SimpleNamespace(delta=SimpleNamespace(content="Hi")),)), True),
    "plain-objects-empty": (SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace())]), False),
}


@pytest.mark.parametrize(("item", "expected"), ODD_OPENAI.values(), ids=ODD_OPENAI.keys())
def test_openai_chunk_on_unexpected_shapes(item: object, expected: bool) -> None:
    """Anything without a list of choices is False, a missing, None or mistyped field reads as
    no output without raising, and plain objects with the same attributes are read too."""
    assert openai_chunk(item) is expected


class PropertyDelta:
    """A delta whose fields are properties, not instance attributes."""

    @property
    def content(self) -> str:
        """The text of the delta."""
        return "Hi"


def test_openai_chunk_reads_properties_of_plain_objects() -> None:
    """Duck typing reaches properties of an object that is not a pydantic model."""
    assert openai_chunk({"choices": [{"delta": PropertyDelta()}]}) is True


# --- LangChain chunks ------------------------------------------------------------------------

USAGE = {"input_tokens": 12, "output_tokens": 40, "total_tokens": 52}

LANGCHAIN: dict[str, tuple[object, bool]] = {
    # real output
    "str-content": (AIMessageChunk(content="Hello"), True),
    "whitespace-content": (AIMessageChunk(content="\n"), True),
    "str-in-list": (AIMessageChunk(content=["Hello"]), True),
    "text-block": (AIMessageChunk(content=[{"type": "text", "text": "Hello", "index": 0}]), True),
    "v1-reasoning-block": (
        AIMessageChunk(content=[{"type": "reasoning", "reasoning": "Let me think."}]),
        True,
    ),
    "anthropic-thinking-block": (
        AIMessageChunk(content=[{"type": "thinking", "thinking": "Let me think.", "index": 0}]),
        True,
    ),
    "responses-reasoning-summary": (
        AIMessageChunk(
            content=[
                {
                    "type": "reasoning",
                    "summary": [{"index": 0, "type": "summary_text", "text": "**Planning**"}],
                    "index": 0,
                }
            ]
        ),
        True,
    ),
    "mistral-thinking-parts": (
        AIMessageChunk(content=[{"type": "thinking", "thinking": [{"type": "text", "text": "Hmm"}]}]),
        True,
    ),
    "refusal-block": (AIMessageChunk(content=[{"type": "refusal", "refusal": "I can't."}]), True),
    "anthropic-tool_use-block": (
        AIMessageChunk(
            content=[{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}, "index": 1}]
        ),
        True,
    ),
    "v1-tool_call_chunk-block": (
        AIMessageChunk(
            content=[{"type": "tool_call_chunk", "name": "f", "args": "", "id": "c1", "index": 0}]
        ),
        True,
    ),
    "server_tool_call-block": (
        AIMessageChunk(
            content=[{"type": "server_tool_call", "name": "web_search", "args": {}, "id": "ws_1"}]
        ),
        True,
    ),
    "image-block": (
        AIMessageChunk(content=[{"type": "image", "base64": "iVBORw0K", "mime_type": "image/png"}]),
        True,
    ),
    "audio-block": (
        AIMessageChunk(content=[{"type": "audio", "base64": "UklGRg==", "mime_type": "audio/wav"}]),
        True,
    ),
    "tool_call_chunks": (
        AIMessageChunk(
            content="", tool_call_chunks=[tool_call_chunk(name="get_weather", args="", id="c1", index=0)]
        ),
        True,
    ),
    "tool_call_chunks-arguments": (
        AIMessageChunk(
            content="", tool_call_chunks=[tool_call_chunk(name=None, args='{"ci', id=None, index=0)]
        ),
        True,
    ),
    "whole-message-tool_calls": (
        AIMessage(content="", tool_calls=[tool_call(name="f", args={}, id="c1")]),
        True,
    ),
    "whole-message-invalid_tool_calls": (
        AIMessage(
            content="", invalid_tool_calls=[invalid_tool_call(name="f", args="{", id="c1", error="bad JSON")]
        ),
        True,
    ),
    "kwargs-reasoning_content": (
        AIMessageChunk(content="", additional_kwargs={"reasoning_content": "Let me think."}),
        True,
    ),
    "kwargs-reasoning-str": (
        AIMessageChunk(content="", additional_kwargs={"reasoning": "Let me think."}),
        True,
    ),
    "kwargs-reasoning-responses": (
        AIMessageChunk(
            content="",
            additional_kwargs={
                "reasoning": {
                    "id": "rs_1",
                    "type": "reasoning",
                    "summary": [{"index": 0, "type": "summary_text", "text": "Plan"}],
                }
            },
        ),
        True,
    ),
    "kwargs-function_call": (
        AIMessageChunk(
            content="", additional_kwargs={"function_call": {"name": "get_weather", "arguments": ""}}
        ),
        True,
    ),
    "kwargs-tool_calls": (
        AIMessageChunk(content="", additional_kwargs={"tool_calls": [FIRST_TOOL_CALL]}),
        True,
    ),
    "generation-chunk": (ChatGenerationChunk(message=AIMessageChunk(content="Hello")), True),
    "generation-chunk-tool_call_chunks": (
        ChatGenerationChunk(
            message=AIMessageChunk(content="", tool_call_chunks=[tool_call_chunk(args="{", index=0)])
        ),
        True,
    ),
    # no output
    "empty": (AIMessageChunk(content=""), False),
    "role-only-langchain-openai": (
        AIMessageChunk(content="", id="lc_run--1", response_metadata={"model_provider": "openai"}),
        False,
    ),
    "finish-only": (
        AIMessageChunk(content="", response_metadata={"finish_reason": "stop", "model_name": "m"}),
        False,
    ),
    "usage-only": (AIMessageChunk(content="", usage_metadata=USAGE), False),  # type: ignore[arg-type]
    "last-chunk": (AIMessageChunk(content="", chunk_position="last"), False),
    "empty-list": (AIMessageChunk(content=[]), False),
    "empty-text-block": (AIMessageChunk(content=[{"type": "text", "text": "", "index": 0}]), False),
    "annotations-only-text-block": (
        AIMessageChunk(content=[{"type": "text", "text": "", "annotations": [{"type": "url_citation"}]}]),
        False,
    ),
    "reasoning-item-added": (
        AIMessageChunk(content=[{"type": "reasoning", "id": "rs_1", "summary": [], "index": 0}]),
        False,
    ),
    "reasoning-summary-part-added": (
        AIMessageChunk(
            content=[
                {
                    "type": "reasoning",
                    "summary": [{"index": 0, "type": "summary_text", "text": ""}],
                    "index": 0,
                }
            ]
        ),
        False,
    ),
    "encrypted-reasoning-block": (
        AIMessageChunk(
            content=[{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"}]
        ),
        False,
    ),
    "anthropic-signature-only": (
        AIMessageChunk(content=[{"type": "thinking", "signature": "EqQBCkYIARgC", "index": 0}]),
        False,
    ),
    "empty-string-in-list": (AIMessageChunk(content=[""]), False),
    "kwargs-empty-reasoning_content": (
        AIMessageChunk(content="", additional_kwargs={"reasoning_content": ""}),
        False,
    ),
    "kwargs-nameless-function_call": (
        AIMessageChunk(content="", additional_kwargs={"function_call": {"name": "", "arguments": ""}}),
        False,
    ),
    "kwargs-empty-tool_calls": (AIMessageChunk(content="", additional_kwargs={"tool_calls": []}), False),
    "kwargs-other": (AIMessageChunk(content="", additional_kwargs={"__openai_role__": "developer"}), False),
    "human-chunk-empty": (HumanMessageChunk(content=""), False),
    "generation-chunk-empty": (
        ChatGenerationChunk(message=AIMessageChunk(content=""), generation_info={"finish_reason": "stop"}),
        False,
    ),
    # neither shape
    "None": (None, False),
    "str-item": ("Hello", False),
    "openai-json": (chat({"content": "Hello"}), False),
    "plain-object": (SimpleNamespace(content="Hello"), True),
    "plain-generation": (SimpleNamespace(message=SimpleNamespace(content="Hello")), True),
    "message-None": (SimpleNamespace(message=None), False),
    "content-int": (SimpleNamespace(content=5, tool_call_chunks="x", additional_kwargs=[1]), False),
}


@pytest.mark.parametrize(("item", "expected"), LANGCHAIN.values(), ids=LANGCHAIN.keys())
def test_langchain_chunk(item: object, expected: bool) -> None:
    """A LangChain chunk counts exactly when its content, tool calls or the reasoning and calls
    in ``additional_kwargs`` carry output; metadata-only, empty and id/signature/encrypted-only
    chunks do not, and other shapes are False without raising."""
    assert langchain_chunk(item) is expected


# Through langchain-openai: what ChatOpenAI makes of each Chat Completions line. It keeps only
# the first choice's content, tool_calls and function_call: reasoning, refusal and audio are
# dropped (its documented scope), so those chunks arrive empty and do not count.
THROUGH_CHAT_OPENAI: dict[str, bool] = {
    "content": True,
    "whitespace-content": True,
    "tool_calls-first": True,
    "tool_calls-arguments": True,
    "function_call": True,
    "content-and-finish": True,
    "reasoning_content-extra": False,
    "reasoning-extra": False,
    "refusal": False,
    "audio-transcript": False,
    "second-choice-only": False,
    "role-only": False,
    "role-only-openai": False,
    "empty-delta": False,
    "content-null": False,
    "finish_reason-only": False,
    "usage-only": False,
}


def chat_openai_stream(
    payload: dict[str, Any], generation_chunks: bool
) -> list[BaseMessage | ChatGenerationChunk]:
    """What ``ChatOpenAI`` yields for one streamed line: its public ``stream`` (message chunks)
    or its ``_stream`` (the ``ChatGenerationChunk`` objects its callbacks see)."""
    langchain_openai = pytest.importorskip("langchain_openai")
    httpx = pytest.importorskip("httpx")
    body = f"data: {json.dumps(payload)}\n\ndata: [DONE]\n\n".encode()

    def serve(request: Any) -> Any:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with httpx.Client(transport=httpx.MockTransport(serve)) as http:
        llm = langchain_openai.ChatOpenAI(
            model="m", api_key="sk-test", base_url="http://llm.test/v1", http_client=http, stream_usage=True
        )
        if generation_chunks:
            return list(llm._stream([AIMessage(content="hi")]))
        return list(llm.stream("hi"))


@pytest.mark.parametrize("generation_chunks", [False, True], ids=["AIMessageChunk", "ChatGenerationChunk"])
@pytest.mark.parametrize(("name", "expected"), THROUGH_CHAT_OPENAI.items(), ids=THROUGH_CHAT_OPENAI.keys())
def test_langchain_chunk_through_chat_openai(name: str, expected: bool, generation_chunks: bool) -> None:
    """The chunks langchain-openai really makes from each Chat Completions line: the one it
    makes from the line counts as documented, and the closing ``chunk_position="last"``
    chunk that ``stream`` adds does not."""
    payload, _ = CHAT[name]
    chunks = chat_openai_stream(payload, generation_chunks)
    assert chunks, "ChatOpenAI yielded nothing"
    if generation_chunks:
        assert all(isinstance(chunk, ChatGenerationChunk) for chunk in chunks)
    else:
        assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    assert [langchain_chunk(chunk) for chunk in chunks] == [expected] + [False] * (len(chunks) - 1)


# --- cost and imports --------------------------------------------------------------------------


def exceptions_raised(predicate: Callable[[object], bool], item: object) -> list[str]:
    """The exceptions raised (and caught) inside Python code while ``predicate(item)`` runs."""
    seen: list[str] = []

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "exception":
            seen.append(f"{arg[0].__name__} in {frame.f_code.co_qualname}")
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        predicate(item)
    finally:
        sys.settrace(previous)
    return seen


@pytest.mark.parametrize("form", [as_validated, from_sdk_stream], ids=["model_validate", "sdk-stream"])
@pytest.mark.parametrize("payload", [payload for payload, _ in CHAT.values()], ids=CHAT.keys())
def test_openai_chunk_raises_nothing_inside(
    form: Callable[[dict[str, Any], str], object], payload: dict[str, Any]
) -> None:
    """On the openai models, no field is read through an ``AttributeError``: pydantic's
    ``__getattr__`` raises one for every field a model lacks (some microseconds each), and
    most deltas lack most of the fields read (the extra reasoning ones above all)."""
    assert exceptions_raised(openai_chunk, form(payload, "chat")) == []


@pytest.mark.parametrize(("item", "expected"), LANGCHAIN.values(), ids=LANGCHAIN.keys())
def test_langchain_chunk_raises_nothing_inside(item: object, expected: bool) -> None:
    """On the LangChain models, no field is read through an ``AttributeError``: not the
    ``message`` an ``AIMessageChunk`` lacks, nor the ``content`` a ``ChatGenerationChunk``
    lacks, nor the tool-call fields a ``HumanMessageChunk`` lacks."""
    assert exceptions_raised(langchain_chunk, item) == []


def test_importing_the_module_imports_neither_openai_nor_langchain() -> None:
    """``import stream_deadline.progress`` loads no openai, LangChain or pydantic module: the
    predicates are duck-typed, and a user of one library does not pay for the others."""
    src = Path(stream_deadline.__file__).parent.parent
    code = (
        "import sys, stream_deadline.progress as p\n"
        f"assert p.__file__ == {stream_deadline.progress.__file__!r}, p.__file__\n"
        "roots = {'openai', 'langchain', 'langchain_core', 'langchain_openai', 'pydantic', 'httpx'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in roots))\n"
    )
    result = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_public_names() -> None:
    """The module exports exactly the two predicates, and the package root does not."""
    assert stream_deadline.progress.__all__ == ["langchain_chunk", "openai_chunk"]
    assert not hasattr(stream_deadline, "openai_chunk")
    assert "progress" not in stream_deadline.__all__
