"""A fake vLLM: an OpenAI-compatible chat endpoint that misbehaves on request.

It serves ``POST /v1/chat/completions``, streaming (``stream=True``: Server-Sent Events,
as vLLM does) or not, in one of these modes, chosen per request by the model name
(``model="babble"``) or, failing that, by the ``x-fake-vllm-mode`` header:

``babble``
    a token every ``token_interval`` seconds (20 ms) until ``max_seconds`` pass: a model
    that never stops until it hits its maximum length.
``stall``
    ``stall_after`` tokens, then no token at all, only an SSE comment line
    ``: keep-alive`` every ``keepalive_interval`` seconds (0.5 s), so the socket never
    goes quiet and no read timeout ever fires.
``slow-start``
    the first token only after ``slow_start_delay`` seconds (5 s), then a normal answer.
``queued``
    the role-only first chunk at once (as vLLM sends it when it accepts the request),
    then ``queue_delay`` seconds (5 s) in the queue before the first token, then a
    normal answer.
``slow-headers``
    no response at all, not even the headers, for ``header_delay`` seconds (5 s), then a
    normal answer: a server (or a gateway in front of it) that holds the request.
``reasoning``
    the role chunk, then a ``reasoning_content`` chunk every ``token_interval`` for
    ``reasoning_seconds`` (2 s), then a normal answer in ``content``: a reasoning model.
``tools``
    the role chunk, then a tool call only: a chunk naming the function
    (``get_weather``), its arguments (:data:`TOOL_ARGUMENTS`) in pieces of two
    characters every ``token_interval``, no content, and ``finish_reason="tool_calls"``.
``finish``
    a short normal answer ending with ``finish_reason="stop"`` and ``data: [DONE]``.

A stream ends with a usage chunk (``choices: []``) before ``[DONE]`` when the request
asks for it (``stream_options: {"include_usage": true}``).

Without ``stream`` (or with ``stream`` false) the answer is one ``chat.completion`` JSON
object, sent once the whole generation would have taken place: ``babble`` and ``stall``
after ``max_seconds`` (``finish_reason="length"``, having hit the cap), ``slow-start``,
``queued`` and ``slow-headers`` after their delay, ``reasoning`` after
``reasoning_seconds`` (with the reasoning in ``message.reasoning_content``), ``tools``
and ``finish`` at once. Meanwhile the server watches the connection (every 5 ms), so a
client that gives up is seen as soon as it goes.

Like vLLM, which aborts a request when its client disconnects, the server stops
generating as soon as the client goes away (Starlette's ``StreamingResponse`` listens
for ``http.disconnect`` and cancels the generator; before the response starts, the
server polls for it). For every request it records a :class:`Generation`: when
generation started and stopped, why it stopped and when each piece of output went out,
on the :func:`time.monotonic` clock, which is also what asyncio's ``loop.time()`` reads,
so client and server times compare directly. A request is found by the id the client
sends in the ``x-fake-vllm-id`` header (several requests may share one:
:meth:`FakeVLLM.generations_of`), or by its order.

:class:`ServerThread` runs the app with uvicorn on ``127.0.0.1`` and a free port, in a
background thread with its own event loop::

    with ServerThread(FakeVLLM()) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="test")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self, get_args

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

__all__ = [
    "ANSWER",
    "ID_HEADER",
    "MODES",
    "MODE_HEADER",
    "TOOL_ARGUMENTS",
    "FakeVLLM",
    "Generation",
    "Mode",
    "ServerThread",
]

Mode = Literal[
    "babble",
    "stall",
    "slow-start",
    "queued",
    "slow-headers",
    "reasoning",
    "tools",
    "finish",
]
MODES: tuple[Mode, ...] = get_args(Mode)
Reason = Literal["finished", "disconnected", "length"]

ID_HEADER = "x-fake-vllm-id"
MODE_HEADER = "x-fake-vllm-mode"
ANSWER = ("Hello", ",", " this", " is", " a", " short", " answer", ".")
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = '{"city": "Paris", "unit": "celsius", "days": 3, "hourly": false}'
"""The arguments of the ``tools`` mode's call, sent two characters at a time."""
DISCONNECT_POLL = 0.005
"""Seconds between two checks for a client that went away, before a response starts."""


@dataclass
class Generation:
    """What the server did for one request (times on the :func:`time.monotonic`
    clock)."""

    request_id: str
    mode: Mode
    started: float
    """When the request was accepted (its body read) and generation began."""
    streamed: bool = True
    """Whether the client asked for a stream (``stream: true``)."""
    stopped: float | None = None
    """When the generation stopped, or ``None`` while it still runs."""
    reason: Reason | None = None
    """``"finished"`` (answer complete), ``"disconnected"`` (the client went away) or
    ``"length"`` (the server's own cap, ``max_seconds``, was reached)."""
    token_times: list[float] = field(default_factory=list)
    """When each content token was sent."""
    reasoning_times: list[float] = field(default_factory=list)
    """When each ``reasoning_content`` chunk was sent."""
    tool_times: list[float] = field(default_factory=list)
    """When each tool-call chunk (the name, then each piece of the arguments) was
    sent."""
    keepalive_times: list[float] = field(default_factory=list)
    """When each ``: keep-alive`` comment line was sent."""

    @property
    def tokens(self) -> int:
        """How many content tokens were sent."""
        return len(self.token_times)

    @property
    def keepalives(self) -> int:
        """How many ``: keep-alive`` comment lines were sent."""
        return len(self.keepalive_times)

    @property
    def running(self) -> bool:
        """Whether the generation is still running."""
        return self.stopped is None

    def stop(self, reason: Reason) -> None:
        """Record the end of the generation, now."""
        self.reason = reason
        self.stopped = time.monotonic()


class FakeVLLM:
    """The ASGI app (a Starlette app) and the record of every generation it ran.

    Args:
        token_interval: seconds between two tokens (and two reasoning or tool-call
            chunks).
        keepalive_interval: seconds between two keep-alive comments in ``stall`` mode.
        stall_after: tokens sent in ``stall`` mode before the stall.
        slow_start_delay: seconds before the first token in ``slow-start`` mode.
        queue_delay: seconds between the role chunk and the first token in ``queued``
            mode.
        header_delay: seconds before the response headers in ``slow-headers`` mode.
        reasoning_seconds: seconds of reasoning chunks before the answer in
            ``reasoning`` mode.
        max_seconds: the server's own cap on every generation (its "maximum length").
    """

    def __init__(  # noqa: PLR0913 (one knob per misbehaviour)
        self,
        *,
        token_interval: float = 0.02,
        keepalive_interval: float = 0.5,
        stall_after: int = 3,
        slow_start_delay: float = 5.0,
        queue_delay: float = 5.0,
        header_delay: float = 5.0,
        reasoning_seconds: float = 2.0,
        max_seconds: float = 30.0,
    ) -> None:
        self.token_interval = token_interval
        self.keepalive_interval = keepalive_interval
        self.stall_after = stall_after
        self.slow_start_delay = slow_start_delay
        self.queue_delay = queue_delay
        self.header_delay = header_delay
        self.reasoning_seconds = reasoning_seconds
        self.max_seconds = max_seconds
        self.generations: list[Generation] = []
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def generations_of(self, request_id: str) -> list[Generation]:
        """The records of every request sent with ``x-fake-vllm-id: request_id``, in
        order."""
        with self._lock:
            return [
                generation
                for generation in self.generations
                if generation.request_id == request_id
            ]

    def generation(self, request_id: str) -> Generation:
        """The record of the (first) request sent with
        ``x-fake-vllm-id: request_id``."""
        found = self.generations_of(request_id)
        if not found:
            raise LookupError(f"the server saw no request with id {request_id!r}")
        return found[0]

    async def wait_stopped(self, request_id: str, within: float = 5.0) -> Generation:
        """Wait (on asyncio) until the request's generation stops; return its record.

        Raises :class:`TimeoutError` if it is still running after ``within`` seconds.
        """
        (generation,) = await self.wait_all_stopped(request_id, 1, within=within)
        return generation

    async def wait_all_stopped(
        self, request_id: str, count: int, within: float = 5.0
    ) -> list[Generation]:
        """Wait (on asyncio) until ``count`` requests with this id have come and
        stopped.

        Raises :class:`TimeoutError` if they have not after ``within`` seconds.
        """
        give_up = time.monotonic() + within
        while True:
            found = self.generations_of(request_id)
            if len(found) >= count and not any(
                generation.running for generation in found
            ):
                return found
            if time.monotonic() >= give_up:
                raise TimeoutError(
                    f"request {request_id!r}: {len(found)} of {count} seen,"
                    f" {sum(g.running for g in found)} still generating"
                    f" after {within:g} s"
                )
            await asyncio.sleep(0.005)

    def wait_all_stopped_sync(
        self, request_id: str, count: int, within: float = 5.0
    ) -> list[Generation]:
        """:meth:`wait_all_stopped` for a thread with no event loop."""
        return asyncio.run(self.wait_all_stopped(request_id, count, within=within))

    async def _chat(self, request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        model = str(body.get("model", ""))
        mode = model if model in MODES else request.headers.get(MODE_HEADER, "finish")
        if mode not in MODES:
            return JSONResponse(
                {"error": {"message": f"unknown mode {mode!r}"}}, status_code=400
            )
        request_id = request.headers.get(ID_HEADER) or f"req-{next(self._counter)}"
        streamed = bool(body.get("stream"))
        generation = Generation(
            request_id,
            mode,  # type: ignore[arg-type]
            time.monotonic(),
            streamed=streamed,
        )
        with self._lock:
            self.generations.append(generation)
        if not streamed:
            return await self._answer(request, generation, model)
        if mode == "slow-headers" and not await _wait_unless_gone(
            request, self.header_delay
        ):
            generation.stop("disconnected")
            return Response(status_code=499)  # nobody reads it
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return _ClosingStream(
            self._generate(generation, model, usage=usage),
            media_type="text/event-stream",
        )

    async def _answer(
        self, request: Request, generation: Generation, model: str
    ) -> Response:
        """The non-streaming answer: one ``chat.completion``, once it would be
        complete."""
        capped = generation.mode in {"babble", "stall"}
        delay = {
            "babble": self.max_seconds,
            "stall": self.max_seconds,
            "slow-start": self.slow_start_delay,
            "queued": self.queue_delay,
            "slow-headers": self.header_delay,
            "reasoning": self.reasoning_seconds,
        }.get(generation.mode, 0.0)
        if not await _wait_unless_gone(request, delay):
            generation.stop("disconnected")
            return Response(status_code=499)  # nobody reads it
        message: dict[str, Any] = {"role": "assistant", "content": "".join(ANSWER)}
        finish_reason = "length" if capped else "stop"
        if capped:
            message["content"] = "".join(f" tok{n}" for n in range(1, 51))
        elif generation.mode == "reasoning":
            message["reasoning_content"] = "Let me think. The user greets me."
        elif generation.mode == "tools":
            message["content"] = None
            message["tool_calls"] = [
                _tool_call(generation.request_id, TOOL_NAME, TOOL_ARGUMENTS)
            ]
            finish_reason = "tool_calls"
        generation.stop("length" if capped else "finished")
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        return JSONResponse(
            {
                "id": f"chatcmpl-{generation.request_id}",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [choice],
                "usage": {
                    "prompt_tokens": 5,
                    "completion_tokens": 50,
                    "total_tokens": 55,
                },
            }
        )

    async def _generate(
        self, generation: Generation, model: str, *, usage: bool
    ) -> AsyncIterator[str]:
        reason: Reason = "disconnected"  # unless the code below ends by itself
        chunk = _Chunks(model, generation.request_id)
        capped = generation.mode in {"babble", "stall"}
        try:
            if generation.mode == "slow-start":
                # nothing at all, not even the role
                await asyncio.sleep(self.slow_start_delay)
            yield chunk.data({"role": "assistant", "content": ""})
            if generation.mode == "queued":
                await asyncio.sleep(self.queue_delay)  # accepted, waiting for a slot
            elif generation.mode == "reasoning":
                async for event in self._reasoning(generation, chunk):
                    yield event
            if capped:
                body = self._tokens_until_cap(generation, chunk)
            elif generation.mode == "tools":
                body = self._tool_call(generation, chunk)
            else:
                body = self._answer_tokens(generation, chunk)
            async for event in body:
                yield event
            reason = "length" if capped else "finished"
            finish_reason = (
                "length"
                if capped
                else "tool_calls"
                if generation.mode == "tools"
                else "stop"
            )
            yield chunk.data({}, finish_reason=finish_reason)
            if usage:
                yield chunk.usage(generation.tokens)
            yield "data: [DONE]\n\n"
        finally:
            generation.stop(reason)

    async def _reasoning(
        self, generation: Generation, chunk: _Chunks
    ) -> AsyncIterator[str]:
        """A ``reasoning_content`` chunk every ``token_interval`` for
        ``reasoning_seconds``."""
        thinking_until = time.monotonic() + self.reasoning_seconds
        n = 0
        while time.monotonic() < thinking_until:
            await asyncio.sleep(self.token_interval)
            n += 1
            generation.reasoning_times.append(time.monotonic())
            yield chunk.data({"reasoning_content": f" thought{n}"})

    async def _tokens_until_cap(
        self, generation: Generation, chunk: _Chunks
    ) -> AsyncIterator[str]:
        """``babble``: a token every ``token_interval``; ``stall``: a few, then
        keep-alives."""
        cap = generation.started + self.max_seconds
        n = 0
        while time.monotonic() < cap:
            if generation.mode == "stall" and n >= self.stall_after:
                await asyncio.sleep(self.keepalive_interval)
                generation.keepalive_times.append(time.monotonic())
                yield ": keep-alive\n\n"
                continue
            if n:
                await asyncio.sleep(self.token_interval)
            n += 1
            generation.token_times.append(time.monotonic())
            yield chunk.data({"content": f" tok{n}"})

    async def _tool_call(
        self, generation: Generation, chunk: _Chunks
    ) -> AsyncIterator[str]:
        """The function's name, then its arguments two characters at a time; no
        content."""
        generation.tool_times.append(time.monotonic())
        yield chunk.data(
            {
                "tool_calls": [
                    {"index": 0, **_tool_call(generation.request_id, TOOL_NAME, "")}
                ]
            }
        )
        for start in range(0, len(TOOL_ARGUMENTS), 2):
            await asyncio.sleep(self.token_interval)
            piece = {
                "index": 0,
                "function": {"arguments": TOOL_ARGUMENTS[start : start + 2]},
            }
            generation.tool_times.append(time.monotonic())
            yield chunk.data({"tool_calls": [piece]})

    async def _answer_tokens(
        self, generation: Generation, chunk: _Chunks
    ) -> AsyncIterator[str]:
        """The short normal answer, a token every ``token_interval``."""
        for n, token in enumerate(ANSWER):
            if n:
                await asyncio.sleep(self.token_interval)
            generation.token_times.append(time.monotonic())
            yield chunk.data({"content": token})


async def _wait_unless_gone(request: Request, seconds: float) -> bool:
    """Wait ``seconds``, watching the connection; ``False`` as soon as the client has
    gone."""
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        if await request.is_disconnected():
            return False
        await asyncio.sleep(min(DISCONNECT_POLL, left))
    return not await request.is_disconnected()


def _tool_call(request_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": f"call-{request_id}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


class _ClosingStream(StreamingResponse):
    """A ``StreamingResponse`` that closes its generator as soon as the response ends.

    When the client disconnects, Starlette cancels the task sending the body; the
    generator may then be suspended at a ``yield`` rather than in a ``sleep``, and would
    only be finalized by the garbage collector. Closing it here runs its ``finally`` at
    once.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


class _Chunks:
    """Server-sent ``chat.completion.chunk`` events for one response."""

    def __init__(self, model: str, request_id: str) -> None:
        self.model = model
        self.id = f"chatcmpl-{request_id}"

    def data(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        return self._event({"choices": [choice]})

    def usage(self, tokens: int) -> str:
        usage = {
            "prompt_tokens": 5,
            "completion_tokens": tokens,
            "total_tokens": 5 + tokens,
        }
        return self._event({"choices": [], "usage": usage})

    def _event(self, fields: dict[str, Any]) -> str:
        payload = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
        }
        return f"data: {json.dumps(payload | fields)}\n\n"


class ServerThread:
    """Serve an ASGI app with uvicorn on ``127.0.0.1`` and a free port, in a background
    thread.

    Use it as a context manager: entering returns once the server accepts connections;
    leaving stops it (open streams get ``shutdown_timeout`` seconds to end) and joins
    the thread.
    """

    def __init__(self, app: FakeVLLM, *, shutdown_timeout: float = 2.0) -> None:
        self.app = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            http="h11",
            ws="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=shutdown_timeout,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="fake-vllm",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        give_up = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > give_up:
                self._stop()
                raise RuntimeError("the fake vLLM server did not start")
            time.sleep(0.005)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5):
            pass  # it accepts connections
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._sock.close()
