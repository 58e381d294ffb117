"""A fake vLLM: an OpenAI-compatible streaming chat endpoint that misbehaves on request.

It serves ``POST /v1/chat/completions`` with ``stream=True`` (Server-Sent Events, as vLLM
does), in one of four modes, chosen per request by the model name (``model="babble"``) or,
failing that, by the ``x-fake-vllm-mode`` header:

``babble``
    a token every ``token_interval`` seconds (20 ms) until ``max_seconds`` pass: a model that
    never stops until it hits its maximum length.
``stall``
    ``stall_after`` tokens, then no token at all, only an SSE comment line ``: keep-alive``
    every ``keepalive_interval`` seconds (0.5 s), so the socket never goes quiet and no read
    timeout ever fires.
``slow-start``
    the first token only after ``slow_start_delay`` seconds (5 s), then a normal answer.
``finish``
    a short normal answer ending with ``finish_reason="stop"`` and ``data: [DONE]``.

Like vLLM, which aborts a request when its client disconnects, the server stops generating
as soon as the client goes away (Starlette's ``StreamingResponse`` listens for
``http.disconnect`` and cancels the generator). For every request it records a
:class:`Generation`: when generation started and stopped, why it stopped and when each token
went out, on the :func:`time.monotonic` clock, which is also what asyncio's ``loop.time()``
reads, so client and server times compare directly. A request is found by the id the client
sends in the ``x-fake-vllm-id`` header, or by its order.

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
from typing import TYPE_CHECKING, Any, Literal, Self

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

__all__ = ["ID_HEADER", "MODES", "MODE_HEADER", "FakeVLLM", "Generation", "Mode", "ServerThread"]

Mode = Literal["babble", "stall", "slow-start", "finish"]
MODES: tuple[Mode, ...] = ("babble", "stall", "slow-start", "finish")
Reason = Literal["finished", "disconnected", "length"]

ID_HEADER = "x-fake-vllm-id"
MODE_HEADER = "x-fake-vllm-mode"
ANSWER = ("Hello", ",", " this", " is", " a", " short", " answer", ".")


@dataclass
class Generation:
    """What the server did for one request (times on the :func:`time.monotonic` clock)."""

    request_id: str
    mode: Mode
    started: float
    """When the generator started (the request was accepted and streaming began)."""
    stopped: float | None = None
    """When the generator stopped, or ``None`` while it still runs."""
    reason: Reason | None = None
    """``"finished"`` (answer complete), ``"disconnected"`` (the client went away) or
    ``"length"`` (the server's own cap, ``max_seconds``, was reached)."""
    token_times: list[float] = field(default_factory=list)
    """When each token was sent."""
    keepalive_times: list[float] = field(default_factory=list)
    """When each ``: keep-alive`` comment line was sent."""

    @property
    def tokens(self) -> int:
        """How many tokens were sent."""
        return len(self.token_times)

    @property
    def keepalives(self) -> int:
        """How many ``: keep-alive`` comment lines were sent."""
        return len(self.keepalive_times)

    @property
    def running(self) -> bool:
        """Whether the generator is still running."""
        return self.stopped is None


class FakeVLLM:
    """The ASGI app (a Starlette app) and the record of every generation it ran.

    Args:
        token_interval: seconds between two tokens.
        keepalive_interval: seconds between two keep-alive comments in ``stall`` mode.
        stall_after: tokens sent in ``stall`` mode before the stall.
        slow_start_delay: seconds before the first token in ``slow-start`` mode.
        max_seconds: the server's own cap on every generation (its "maximum length").
    """

    def __init__(
        self,
        *,
        token_interval: float = 0.02,
        keepalive_interval: float = 0.5,
        stall_after: int = 3,
        slow_start_delay: float = 5.0,
        max_seconds: float = 30.0,
    ) -> None:
        self.token_interval = token_interval
        self.keepalive_interval = keepalive_interval
        self.stall_after = stall_after
        self.slow_start_delay = slow_start_delay
        self.max_seconds = max_seconds
        self.generations: list[Generation] = []
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def generation(self, request_id: str) -> Generation:
        """The record of the request sent with ``x-fake-vllm-id: request_id``."""
        with self._lock:
            for generation in self.generations:
                if generation.request_id == request_id:
                    return generation
        raise LookupError(f"the server saw no request with id {request_id!r}")

    async def wait_stopped(self, request_id: str, within: float = 5.0) -> Generation:
        """Wait (on asyncio) until the request's generation stops; return its record.

        Raises :class:`TimeoutError` if it is still running after ``within`` seconds.
        """
        give_up = time.monotonic() + within
        while True:
            try:
                generation = self.generation(request_id)
            except LookupError:
                if time.monotonic() >= give_up:
                    raise
            else:
                if not generation.running:
                    return generation
                if time.monotonic() >= give_up:
                    raise TimeoutError(f"request {request_id!r} still generating after {within:g} s")
            await asyncio.sleep(0.005)

    async def _chat(self, request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        model = str(body.get("model", ""))
        mode = model if model in MODES else request.headers.get(MODE_HEADER, "finish")
        if mode not in MODES:
            return JSONResponse({"error": {"message": f"unknown mode {mode!r}"}}, status_code=400)
        if not body.get("stream"):
            return JSONResponse({"error": {"message": "this server only streams"}}, status_code=400)
        request_id = request.headers.get(ID_HEADER) or f"req-{next(self._counter)}"
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        generation = Generation(request_id, mode, time.monotonic())  # type: ignore[arg-type]
        with self._lock:
            self.generations.append(generation)
        return _ClosingStream(self._generate(generation, model, usage=usage), media_type="text/event-stream")

    async def _generate(self, generation: Generation, model: str, *, usage: bool) -> AsyncIterator[str]:
        reason: Reason = "disconnected"  # unless the loop below ends by itself
        cap = generation.started + self.max_seconds
        chunk = _Chunks(model, generation.request_id)
        try:
            if generation.mode == "slow-start":
                await asyncio.sleep(self.slow_start_delay)  # nothing at all, not even the role
            yield chunk.data({"role": "assistant", "content": ""})
            if generation.mode in {"babble", "stall"}:
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
                reason = "length"
                yield chunk.data({}, finish_reason="length")
            else:
                for n, token in enumerate(ANSWER):
                    if n:
                        await asyncio.sleep(self.token_interval)
                    generation.token_times.append(time.monotonic())
                    yield chunk.data({"content": token})
                reason = "finished"
                yield chunk.data({}, finish_reason="stop")
            if usage:
                yield chunk.usage(generation.tokens)
            yield "data: [DONE]\n\n"
        finally:
            generation.reason = reason
            generation.stopped = time.monotonic()


class _ClosingStream(StreamingResponse):
    """A ``StreamingResponse`` that closes its generator as soon as the response ends.

    When the client disconnects, Starlette cancels the task sending the body; the generator
    may then be suspended at a ``yield`` rather than in a ``sleep``, and would only be
    finalized by the garbage collector. Closing it here runs its ``finally`` at once.
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

    def data(self, delta: dict[str, str], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._event({"choices": [choice]})

    def usage(self, tokens: int) -> str:
        usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens}
        return self._event({"choices": [], "usage": usage})

    def _event(self, fields: dict[str, Any]) -> str:
        payload = {"id": self.id, "object": "chat.completion.chunk", "created": 0, "model": self.model}
        return f"data: {json.dumps(payload | fields)}\n\n"


class ServerThread:
    """Serve an ASGI app with uvicorn on ``127.0.0.1`` and a free port, in a background thread.

    Use it as a context manager: entering returns once the server accepts connections;
    leaving stops it (open streams get ``shutdown_timeout`` seconds to end) and joins the
    thread.
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
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="fake-vllm", daemon=True
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
