"""``DeadlineMixin`` on every call path of a real ``ChatOpenAI``, against the fake vLLM over HTTP.

``class ChatVllm(DeadlineMixin, ChatOpenAI)`` with ``stream_timeout=1.5``,
``first_token_timeout=1`` and ``idle_timeout=0.5``, called on each path LangChain offers
(``astream``, ``astream_events``, ``ainvoke``, ``abatch``, ``stream``, ``invoke``, ``batch``;
the four invoke and batch paths with ``streaming=True`` and without), on the model itself
and inside a chain ``prompt | model | StrOutputParser()``, in three scenarios, each of which
only one limit can end:

- ``babble``, a token every 20 ms for ever: the total limit (``deadline``), at 1.5 s;
- ``stall``, three tokens, then only keep-alive comments: ``idle``, 0.5 s after the third;
- ``queued``, the role-only chunk at once, the first token after 5 s: ``first_item`` at 1 s,
  which the role chunk does not satisfy.

A call that does not stream has no items, so only ``stream_timeout`` applies: in every
scenario its answer would take longer than 1.5 s (30 s, 30 s, 5 s), so it ends at the total
limit.

For each case the call raises ``StreamTimeoutError`` with the right ``limit`` between the
moment the limit was due and 250 ms later (due: the call's start plus the limit, or for
``idle`` the server's last token plus 0.5 s), and the server records the disconnect of
every request the call made within 100 ms of the moment that request's own limit was due
(its stream's first pull plus the limit: the two requests of a batch may start some way
apart, each with its own clock). The global hooks get one outcome per request,
``"timeout"`` with that limit, named after the model class.

To keep the run short, the six cases of one path (three scenarios, on the model and in a
chain) run at once, the async ones as tasks on one event loop, the sync ones in threads; the
first test of a path runs them and the rest read the results (:class:`Cuts`). Each case has
a model class of its own, so an outcome tells which case it comes from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import openai
import pytest
from _fake_vllm import ANSWER, TOOL_ARGUMENTS, TOOL_NAME
from _support import EARLY, ChatVllm, new_id, record_lateness, vllm
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from stream_deadline import StreamOutcome, StreamTimeoutError, _background
from stream_deadline.instrumentation import set_on_end_hooks

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _fake_vllm import Generation, ServerThread
    from langchain_core.runnables import Runnable

    from stream_deadline import Limit

pytestmark = pytest.mark.integration

LIMITS = {"stream_timeout": 1.5, "first_token_timeout": 1.0, "idle_timeout": 0.5}
CLIENT_SLACK = 0.25
"""How late the call may raise, after the limit was due."""
SERVER_SLACK = 0.1
"""How late the server may see the client go, after the limit was due."""
QUESTION = "Tell me everything."

Via = Literal["model", "chain"]
Scenario = Literal["babble", "stall", "queued"]
SCENARIOS: tuple[Scenario, ...] = ("babble", "stall", "queued")
STREAMING_LIMIT: dict[Scenario, Limit] = {"babble": "deadline", "stall": "idle", "queued": "first_item"}
Told = tuple[float, StreamOutcome]
"""An outcome and when the hook got it (:func:`time.monotonic`)."""


@dataclass(frozen=True)
class Path:
    """A way to call a model: the method, and whether the call streams."""

    method: str
    streaming: bool | None = None
    """The model's ``streaming`` field: whether ``invoke`` and ``batch`` stream; ``None``: left
    unset (an explicit ``False`` would make the stream methods answer in one piece)."""

    @property
    def sync(self) -> bool:
        """Whether the method is a sync one."""
        return not self.method.startswith("a")

    @property
    def requests(self) -> int:
        """How many requests one call makes: two for the batches (of two inputs)."""
        return 2 if self.method.endswith("batch") else 1

    @property
    def streams(self) -> bool:
        """Whether the call streams: the stream methods always, the others if ``streaming``."""
        return self.streaming is not False

    @property
    def id(self) -> str:
        """The test id."""
        if self.streaming is None:
            return self.method
        return f"{self.method}[{'streaming' if self.streaming else 'not streaming'}]"

    def expected(self, scenario: Scenario) -> Limit:
        """The limit that must end this path in this scenario."""
        return STREAMING_LIMIT[scenario] if self.streams else "deadline"


PATHS = [
    Path("astream"),
    Path("astream_events"),
    Path("ainvoke", streaming=True),
    Path("ainvoke", streaming=False),
    Path("abatch", streaming=True),
    Path("abatch", streaming=False),
    Path("stream"),
    Path("invoke", streaming=True),
    Path("invoke", streaming=False),
    Path("batch", streaming=True),
    Path("batch", streaming=False),
]


async def _call_async(runnable: Runnable[Any, Any], method: str, given: Any) -> None:
    if method == "astream":
        async for _ in runnable.astream(given):
            pass
    elif method == "astream_events":
        async for _ in runnable.astream_events(given, version="v2"):
            pass
    elif method == "ainvoke":
        await runnable.ainvoke(given)
    else:
        await runnable.abatch([given, given])


def _call_sync(runnable: Runnable[Any, Any], method: str, given: Any) -> None:
    if method == "stream":
        for _ in runnable.stream(given):
            pass
    elif method == "invoke":
        runnable.invoke(given)
    else:
        runnable.batch([given, given])


@dataclass
class Case:
    """One call: a path, on the model or in a chain, in a scenario; and what happened."""

    path: Path
    via: Via
    scenario: Scenario
    request_id: str = ""
    model_class: type[ChatVllm] = ChatVllm
    started: float = 0.0
    """When the call was made."""
    raised: float = 0.0
    """When the call raised (or returned)."""
    error: BaseException | None = None
    generations: list[Generation] = field(default_factory=list)
    """The server's record of each request the call made."""
    outcomes: list[Told] = field(default_factory=list)
    """The outcomes the hooks got for this case's model class, with when they got them."""

    def __post_init__(self) -> None:
        label = f"{self.path.method}_{self.path.streaming}_{self.via}_{self.scenario}"
        self.request_id = f"paths-{label}"
        self.model_class = type(f"ChatVllm_{label}", (ChatVllm,), {"__module__": __name__})

    def runnable(self, server: ServerThread, http: Any) -> Runnable[Any, Any]:
        """The model for this case (``streaming`` as the path says), alone or in a chain."""
        streaming = {} if self.path.streaming is None else {"streaming": self.path.streaming}
        model = vllm(self.model_class, server, self.scenario, self.request_id, http, **streaming, **LIMITS)
        if self.via == "model":
            return model
        return ChatPromptTemplate.from_messages([("human", "{question}")]) | model | StrOutputParser()

    @property
    def given(self) -> Any:
        """The input of the call."""
        return QUESTION if self.via == "model" else {"question": QUESTION}

    @property
    def limit(self) -> Limit:
        """The limit that must end this case."""
        return self.path.expected(self.scenario)

    @property
    def seconds(self) -> float:
        """The seconds of the limit that must end this case."""
        return {"deadline": LIMITS["stream_timeout"], "first_item": LIMITS["first_token_timeout"]}.get(
            self.limit, LIMITS["idle_timeout"]
        )

    @property
    def due(self) -> float:
        """When the call's limit was due, as the caller sees it: the call's start plus the limit,
        or for ``idle`` the server's (first) last token plus the idle limit (the client got it
        no earlier)."""
        if self.limit == "idle":
            return min(generation.token_times[-1] for generation in self.generations) + self.seconds
        return self.started + self.seconds

    def request_dues(self) -> list[tuple[Generation, float]]:
        """Each request with the moment its own limit was due: its stream's first pull plus the
        limit (the requests of a batch start one after the other), or for ``idle`` its last
        token plus the idle limit. A first pull is when the hook was told less the outcome's
        ``elapsed``; the n-th stream to start made the n-th request."""
        first_pulls = sorted(told - outcome.elapsed for told, outcome in self.outcomes)
        generations = sorted(self.generations, key=lambda generation: generation.started)
        if self.limit == "idle":
            return [(g, g.token_times[-1] + self.seconds) for g in generations]
        return [(g, pull + self.seconds) for g, pull in zip(generations, first_pulls, strict=True)]

    @property
    def label(self) -> str:
        """The case in the lateness table."""
        return f"{self.path.id} via {self.via}, {self.scenario} -> {self.limit}"


class Cuts:
    """Runs the six cases of a path at once, the first time one of them is asked for."""

    def __init__(self, server: ServerThread, outcomes: list[Told]) -> None:
        self.server = server
        self.outcomes = outcomes
        self.done: dict[Path, dict[tuple[Via, Scenario], Case]] = {}

    def get(self, path: Path, via: Via, scenario: Scenario) -> Case:
        """The case, run (with the rest of its path) if it has not been yet."""
        if path not in self.done:
            cases = [Case(path, v, s) for v in ("model", "chain") for s in SCENARIOS]
            self.outcomes.clear()
            if path.sync:
                self._run_all_sync(cases)
            else:
                asyncio.run(self._run_all_async(cases))
            for case in cases:
                name = case.model_class.__qualname__
                case.outcomes = [(told, outcome) for told, outcome in self.outcomes if outcome.name == name]
            self.done[path] = {(case.via, case.scenario): case for case in cases}
        return self.done[path][via, scenario]

    async def _run_all_async(self, cases: list[Case]) -> None:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(openai.DefaultAsyncHttpxClient()) for _ in cases]
            # every model is made before any call starts: making one takes milliseconds of CPU
            runnables = [case.runnable(self.server, http) for case, http in zip(cases, clients, strict=True)]
            await asyncio.gather(*(self._run_async(c, r) for c, r in zip(cases, runnables, strict=True)))

    async def _run_async(self, case: Case, runnable: Runnable[Any, Any]) -> None:
        case.started = time.monotonic()
        try:
            await _call_async(runnable, case.path.method, case.given)
        except Exception as exc:
            case.error = exc
        case.raised = time.monotonic()
        case.generations = await self.server.app.wait_all_stopped(case.request_id, case.path.requests)

    def _run_all_sync(self, cases: list[Case]) -> None:
        clients = [openai.DefaultAsyncHttpxClient() for _ in cases]  # used on the mixin's background loop
        try:
            runnables = [case.runnable(self.server, http) for case, http in zip(cases, clients, strict=True)]
            with ThreadPoolExecutor(len(cases)) as pool:
                list(pool.map(self._run_sync, cases, runnables))
        finally:
            for http in clients:
                _background.run(http.aclose())

    def _run_sync(self, case: Case, runnable: Runnable[Any, Any]) -> None:
        case.started = time.monotonic()
        try:
            _call_sync(runnable, case.path.method, case.given)
        except Exception as exc:
            case.error = exc
        case.raised = time.monotonic()
        case.generations = self.server.app.wait_all_stopped_sync(case.request_id, case.path.requests)


@pytest.fixture(scope="module")
def cuts(server: ServerThread) -> Iterator[Cuts]:
    """The cases, run a path at a time, with a hook recording every outcome meanwhile."""
    outcomes: list[Told] = []
    set_on_end_hooks([lambda outcome: outcomes.append((time.monotonic(), outcome))])
    try:
        yield Cuts(server, outcomes)
    finally:
        set_on_end_hooks(None)


parametrize_cases = pytest.mark.parametrize(
    ("path", "via", "scenario"),
    [(path, via, scenario) for path in PATHS for via in ("model", "chain") for scenario in SCENARIOS],
    ids=[
        f"{path.id}-{via}-{scenario}"
        for path in PATHS
        for via in ("model", "chain")
        for scenario in SCENARIOS
    ],
)


@parametrize_cases
def test_the_call_is_cut_at_its_limit_and_the_server_stops(
    cuts: Cuts, path: Path, via: Via, scenario: Scenario
) -> None:
    """The call raises ``StreamTimeoutError`` with the one limit this scenario allows, between
    the moment it was due and 250 ms later; the server sees every request of the call
    disconnected between the moment that request's limit was due and 100 ms later (the
    response was closed)."""
    case = cuts.get(path, via, scenario)
    assert isinstance(case.error, StreamTimeoutError), f"expected StreamTimeoutError, got {case.error!r}"
    assert case.error.limit == case.limit
    assert len(case.generations) == len(case.outcomes) == path.requests
    dues = case.request_dues()
    client = case.raised - case.due
    server = max((generation.stopped or math.inf) - due for generation, due in dues)
    record_lateness(case.label, client, server)
    # (a timer may run up to the clock's resolution early: EARLY)
    assert -EARLY <= client <= CLIENT_SLACK, f"raised {client:+.3f} s after the limit was due"
    for generation, due in dues:
        assert generation.reason == "disconnected"
        assert generation.stopped is not None
        assert due - EARLY <= generation.stopped <= due + SERVER_SLACK, (
            f"the server stopped {generation.stopped - due:+.3f} s after the request's limit was due"
        )


@parametrize_cases
def test_the_hooks_get_one_timeout_per_request(cuts: Cuts, path: Path, via: Via, scenario: Scenario) -> None:
    """The global hooks got one outcome per request of the call, named after the model class
    (streaming or not), ending ``"timeout"`` with the call's limit and its error. In the
    ``queued`` scenario the role chunk was delivered but did not count as progress."""
    case = cuts.get(path, via, scenario)
    outcomes = [outcome for _, outcome in case.outcomes]
    assert [(o.ending, o.limit) for o in outcomes] == [("timeout", case.limit)] * path.requests
    assert all(isinstance(o.error, StreamTimeoutError) for o in outcomes)
    if path.streams and scenario == "queued":
        assert [(o.items, o.progress_items) for o in outcomes] == [(1, 0)] * path.requests
    if not path.streams:
        assert [o.items for o in outcomes] == [0] * path.requests  # the answer never came


OUTPUT_LIMITS = {"stream_timeout": 5.0, "first_token_timeout": 0.3, "idle_timeout": 0.2}
"""Limits under which a stream that keeps producing reasoning or tool calls must run to its end:
the first content comes after 2 s of reasoning, or never (a tool call)."""


async def _stream_to_the_end(cls: type[ChatVllm], server: ServerThread, mode: str) -> tuple[Any, Generation]:
    """Stream one answer with :data:`OUTPUT_LIMITS`; return the whole message and the server's record."""
    request_id = new_id()
    async with openai.DefaultAsyncHttpxClient() as http:
        model = vllm(cls, server, mode, request_id, http, **OUTPUT_LIMITS)
        message = None
        async for chunk in model.astream(QUESTION):
            message = chunk if message is None else message + chunk
    return message, await server.app.wait_stopped(request_id)


@pytest.mark.anyio
async def test_a_reasoning_model_is_not_cut_while_it_reasons(server: ServerThread) -> None:
    """A reasoning model (2 s of ``reasoning_content`` chunks, one every 20 ms, then the answer)
    streams to its end under ``first_token_timeout=0.3`` and ``idle_timeout=0.2``: reasoning is
    output. ``ChatOpenAI`` alone drops ``reasoning_content``; the mixin keeps it in each
    chunk's ``additional_kwargs``, where it is counted, and the message carries it."""
    message, generation = await _stream_to_the_end(ChatVllm, server, "reasoning")
    assert message is not None
    assert message.additional_kwargs.get("reasoning_content")
    assert message is not None
    assert message.content == "".join(ANSWER)
    assert generation.reason == "finished"
    assert generation.token_times[0] - generation.started >= 2.0 - EARLY  # the first content came late


@pytest.mark.anyio
async def test_a_tool_call_only_answer_is_not_cut(server: ServerThread) -> None:
    """A tool-call-only answer (no content at all; the call's arguments in pieces for about
    0.7 s) streams to its end under ``first_token_timeout=0.3`` and ``idle_timeout=0.2``: tool
    call chunks are output. The whole call arrives, parsed."""
    message, generation = await _stream_to_the_end(ChatVllm, server, "tools")
    assert message is not None
    assert message.content == ""
    assert [(call["name"], call["args"]) for call in message.tool_calls] == [
        (TOOL_NAME, json.loads(TOOL_ARGUMENTS))
    ]
    assert generation.reason == "finished"
    assert generation.tool_times[-1] - generation.started > OUTPUT_LIMITS["first_token_timeout"] * 2
