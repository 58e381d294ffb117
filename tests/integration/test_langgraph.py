"""A LangGraph graph whose node calls a limited model: the model's limits hold inside the graph.

The graph is a ``StateGraph`` over ``MessagesState`` with one node that awaits
``model.ainvoke(state["messages"])`` (``streaming=True``), where ``model`` is
``ChatVllm(DeadlineMixin, ChatOpenAI)`` with ``stream_timeout=1.5``,
``first_token_timeout=1`` and ``idle_timeout=0.5``, talking to the fake vLLM. The graph is
driven with ``graph.astream(..., stream_mode="messages")``, which hands out the model's
tokens as they come.

LangGraph 1.2 also limits a node: ``add_node(..., timeout=TimeoutPolicy(run_timeout=...,
idle_timeout=...))`` runs the node in a task of its own and cancels it when a limit passes,
raising ``NodeTimeoutError``. The two compose: the shorter limit fires first. A model limit
shorter than the node's raises ``StreamTimeoutError`` out of the graph; a node limit shorter
than the model's cancels the node, and the cancellation closes the model's stream, so the
connection is closed then too (the outcome is ``"cancelled"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openai
import pytest
from _support import EARLY, ChatVllm, assert_tokens_in_order, new_id, record_lateness, vllm
from langgraph.errors import NodeTimeoutError
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import TimeoutPolicy

from stream_deadline import StreamOutcome, StreamTimeoutError

if TYPE_CHECKING:
    from _fake_vllm import Generation, ServerThread
    from langgraph.graph.state import CompiledStateGraph

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

LIMITS = {"stream_timeout": 1.5, "first_token_timeout": 1.0, "idle_timeout": 0.5}
CLIENT_SLACK = 0.25
"""How late the graph may raise, after the limit was due."""
SERVER_SLACK = 0.1
"""How late the server may see the client go, after the limit was due."""


def graph_of(model: ChatVllm, timeout: TimeoutPolicy | None = None) -> CompiledStateGraph[Any]:
    """START -> "model" -> END; the node answers with the model's reply (node policy ``timeout``)."""

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model, timeout=timeout)
    builder.add_edge(START, "model")
    builder.add_edge("model", END)
    return builder.compile()


@dataclass
class GraphRun:
    """What the graph's consumer saw and what the server did."""

    started: float = 0.0
    raised: float = 0.0
    error: BaseException | None = None
    tokens: list[str] = field(default_factory=list)
    """The texts of the message chunks streamed (``stream_mode="messages"``)."""
    generation: Generation | None = None


async def _run(server: ServerThread, mode: str, timeout: TimeoutPolicy | None = None) -> GraphRun:
    """Run the graph once against ``mode``, recording what happened."""
    request_id = new_id()
    run = GraphRun()
    async with openai.DefaultAsyncHttpxClient() as http:
        graph = graph_of(vllm(ChatVllm, server, mode, request_id, http, streaming=True, **LIMITS), timeout)
        run.started = time.monotonic()
        try:
            async for message, _metadata in graph.astream(
                {"messages": [("human", "Tell me everything.")]}, stream_mode="messages"
            ):
                run.tokens.append(str(message.content))  # type: ignore[attr-defined]
        except Exception as exc:
            run.error = exc
        run.raised = time.monotonic()
    run.generation = await server.app.wait_stopped(request_id)
    return run


def _check_cut(run: GraphRun, due: float, own_due: float, label: str) -> None:
    """The graph raised within ``CLIENT_SLACK`` of ``due`` (as the caller sees it), and the
    server saw the disconnect within ``SERVER_SLACK`` of ``own_due``, when the limit was due
    by the stream's (or the node's) own clock."""
    generation = run.generation
    assert generation is not None
    assert generation.stopped is not None
    record_lateness(label, run.raised - due, generation.stopped - own_due)
    assert due - EARLY <= run.raised <= due + CLIENT_SLACK, (
        f"raised {run.raised - due:+.3f} s after the limit was due"
    )
    assert generation.reason == "disconnected"
    assert own_due - EARLY <= generation.stopped <= own_due + SERVER_SLACK, (
        f"the server stopped {generation.stopped - own_due:+.3f} s after the limit was due"
    )


def _dues(run: GraphRun, told: list[tuple[float, StreamOutcome]], limit: str) -> tuple[float, float]:
    """When ``limit`` was due as the caller sees it (the graph's start plus the limit; for
    ``idle``, the server's last token plus the idle limit) and by the stream's own clock (its
    first pull, when the hook was told less the outcome's ``elapsed``, plus the limit)."""
    assert run.generation is not None
    if limit == "idle":
        due = run.generation.token_times[-1] + LIMITS["idle_timeout"]
        return due, due
    seconds = LIMITS["stream_timeout"] if limit == "deadline" else LIMITS["first_token_timeout"]
    ((when, outcome),) = told
    return run.started + seconds, when - outcome.elapsed + seconds


@pytest.mark.parametrize(
    ("mode", "limit"), [("babble", "deadline"), ("stall", "idle"), ("queued", "first_item")]
)
async def test_the_models_limit_cuts_the_graph(
    server: ServerThread, told: list[tuple[float, StreamOutcome]], mode: str, limit: str
) -> None:
    """Babbling, stalled behind keep-alives or queued (the role chunk at once, nothing else),
    the model inside the graph is cut by the one limit the scenario allows:
    ``StreamTimeoutError`` comes out of ``graph.astream`` within 250 ms of the moment the
    limit was due, and the server sees the disconnect within 100 ms. The tokens that came
    before were streamed out of the graph, in order; one outcome reached the hooks."""
    run = await _run(server, mode)
    assert isinstance(run.error, StreamTimeoutError), f"expected StreamTimeoutError, got {run.error!r}"
    assert run.error.limit == limit
    assert [(o.name, o.ending, o.limit) for _, o in told] == [("ChatVllm", "timeout", limit)]
    due, own_due = _dues(run, told, limit)
    _check_cut(run, due, own_due, f"LangGraph node ainvoke, {mode} -> {limit}")
    tokens = [token for token in run.tokens if token]
    assert_tokens_in_order(tokens)
    assert len(tokens) >= {"babble": 20, "stall": 3, "queued": 0}[mode]


@pytest.mark.parametrize(
    ("mode", "policy", "limit"),
    [
        ("babble", TimeoutPolicy(run_timeout=3.0), "deadline"),
        ("stall", TimeoutPolicy(idle_timeout=1.0), "idle"),
        ("babble", TimeoutPolicy(idle_timeout=0.3), "deadline"),
    ],
    ids=[
        "run_timeout=3 > stream_timeout",
        "idle_timeout=1 > idle_timeout",
        "idle_timeout=0.3, tokens flowing",
    ],
)
async def test_a_longer_node_timeout_lets_the_models_limit_fire_first(
    server: ServerThread,
    told: list[tuple[float, StreamOutcome]],
    mode: str,
    policy: TimeoutPolicy,
    limit: str,
) -> None:
    """A node ``TimeoutPolicy`` longer than the model's limit changes nothing: the model's
    limit fires first, ``StreamTimeoutError`` (not ``NodeTimeoutError``) comes out of the
    graph on time, and the server sees the disconnect within 100 ms. A node idle limit shorter
    than the model's total limit does not fire while tokens flow: each one is a callback
    event, which refreshes it (``refresh_on="auto"``)."""
    run = await _run(server, mode, policy)
    assert isinstance(run.error, StreamTimeoutError), f"expected StreamTimeoutError, got {run.error!r}"
    assert run.error.limit == limit
    assert [(o.ending, o.limit) for _, o in told] == [("timeout", limit)]
    due, own_due = _dues(run, told, limit)
    node = f"run_timeout={policy.run_timeout}, idle_timeout={policy.idle_timeout}"
    _check_cut(run, due, own_due, f"LangGraph node with {node}, {mode} -> {limit}")


async def test_a_shorter_node_timeout_cancels_the_model_and_closes_the_connection(
    server: ServerThread, told: list[tuple[float, StreamOutcome]]
) -> None:
    """A node ``run_timeout=0.5``, shorter than the model's limits, fires first:
    ``NodeTimeoutError`` comes out of the graph within 250 ms of 0.5 s, and the cancellation
    of the node closes the model's stream (its outcome is ``"cancelled"``, not a timeout), so
    the server sees the disconnect within 100 ms of the node's limit too."""
    run = await _run(server, "babble", TimeoutPolicy(run_timeout=0.5))
    assert isinstance(run.error, NodeTimeoutError), f"expected NodeTimeoutError, got {run.error!r}"
    assert (run.error.kind, run.error.timeout) == ("run", 0.5)
    assert [(o.ending, o.limit) for _, o in told] == [("cancelled", None)]
    due = run.started + 0.5  # (the node starts a little later: later than this, never earlier)
    _check_cut(run, due, due, "LangGraph node run_timeout=0.5 < model's limits -> NodeTimeoutError")
