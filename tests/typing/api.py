"""Static checks of the public API's types: mypy and pyright read this file; nothing runs it.

Each ``assert_type`` states what a type checker must infer for users' code.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, assert_type

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from opentelemetry.metrics import MeterProvider
from prometheus_client import CollectorRegistry

from stream_deadline import (
    Deadline,
    DeadlineStream,
    Ending,
    Limit,
    StreamOutcome,
    StreamTimeoutError,
    with_deadline,
)
from stream_deadline.instrumentation import (
    LoggingHook,
    OnEnd,
    OpenTelemetryHook,
    PrometheusHook,
    set_on_end_hooks,
)
from stream_deadline.langchain import DeadlineMixin
from stream_deadline.progress import langchain_chunk, openai_chunk


async def numbers() -> AsyncGenerator[int, None]:
    yield 1


async def chunks() -> AsyncGenerator[dict[str, object], None]:
    yield {"choices": []}


class Model:
    """The seed's pattern: a method whose limit comes from the instance."""

    stream_timeout: float | None = None

    @with_deadline(lambda self, *args, **kwargs: self.stream_timeout)
    async def astream(self, prompt: str, *, n: int = 1) -> AsyncIterator[str]:
        """Stream a prompt back."""
        yield prompt * n


@with_deadline(45, first_item=10, idle=5, on_timeout="stop", close_timeout=1)
async def tokens(prompt: str) -> AsyncGenerator[str, None]:
    yield prompt


@with_deadline(seconds=None, idle=5)
async def stalls() -> AsyncGenerator[bytes, None]:
    yield b""


async def wrapper_form() -> None:
    # The wrapper keeps the item type of any async iterable.
    assert_type(with_deadline(numbers(), 45), DeadlineStream[int])
    assert_type(with_deadline(numbers(), None, idle=5), DeadlineStream[int])
    assert_type(with_deadline(numbers(), Deadline.after(60)), DeadlineStream[int])
    stream = with_deadline(numbers(), 45)
    async for item in stream:
        assert_type(item, int)
    assert_type(await anext(stream), int)
    assert_type(await stream.asend(None), int)
    assert_type(await stream.aclose(), None)
    async with with_deadline(numbers(), 1) as entered:
        assert_type(entered, DeadlineStream[int])
    # It is an AsyncGenerator and an AsyncIterator, so it fits where those are expected.
    generator: AsyncGenerator[int, Any] = stream
    iterator: AsyncIterator[int] = stream
    del generator, iterator


async def decorator_form() -> None:
    # The decorator keeps the parameters and turns the result into a DeadlineStream.
    assert_type(tokens("hi"), DeadlineStream[str])
    assert_type(stalls(), DeadlineStream[bytes])
    assert_type(Model().astream("hi", n=2), DeadlineStream[str])
    tokens(42)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


@with_deadline(lambda: 30)
async def fixed() -> AsyncGenerator[int, None]:
    yield 1


def limit_of(prompt: str) -> float:
    return len(prompt) / 10


@with_deadline(limit_of)
async def scaled(prompt: str) -> AsyncGenerator[str, None]:
    yield prompt


def per_call_limits() -> None:
    assert_type(fixed(), DeadlineStream[int])
    assert_type(scaled("hi"), DeadlineStream[str])


def errors_and_deadlines(error: StreamTimeoutError, budget: Deadline) -> None:
    assert_type(error.limit, Limit)
    assert_type(error.timeout, float)
    assert_type(error.elapsed, float)
    assert_type(error.items, int)
    assert_type(budget.remaining(), float)
    assert_type(budget.expired, bool)
    assert_type(budget.when, float)
    timeout: TimeoutError = error
    del timeout


def misuse() -> None:
    with_deadline(numbers(), "45")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    with_deadline(numbers(), 45, on_timeout="ignore")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


def hooks(registry: CollectorRegistry, meter_provider: MeterProvider) -> None:
    # The ready-made hooks take their library's own types and fit where hooks are expected.
    set_on_end_hooks([LoggingHook(), PrometheusHook(), PrometheusHook(registry, "app"), OpenTelemetryHook()])
    set_on_end_hooks([OpenTelemetryHook(meter_provider)])
    with_deadline(numbers(), 45, on_end=PrometheusHook(registry))
    hook: OnEnd = OpenTelemetryHook()
    del hook
    PrometheusHook(namespace=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def progress_and_outcome(stream: DeadlineStream[int]) -> None:
    # `progress` is checked against the item type in the wrapper form.
    def even(item: int) -> bool:
        return item % 2 == 0

    assert_type(with_deadline(numbers(), 45, first_item=10, progress=even, name="n"), DeadlineStream[int])
    assert_type(with_deadline(chunks(), 45, progress=openai_chunk), DeadlineStream[dict[str, object]])
    with_deadline(numbers(), 45, progress=str.isdigit)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert_type(stream.outcome, StreamOutcome | None)
    assert_type(stream.name, str)
    outcome = stream.outcome
    if outcome is not None:
        assert_type(outcome.ending, Ending)
        assert_type(outcome.limit, Limit | None)
        assert_type(outcome.late, float | None)


class Timeouts:
    """A model with a per-call first-item limit."""

    first_token_timeout: float | None = 10


@with_deadline(45, first_item=lambda self, *a, **k: self.first_token_timeout, progress=langchain_chunk)
async def per_call_first_item(self: Timeouts) -> AsyncGenerator[str, None]:
    yield "x"


def per_call_spans(model: Timeouts) -> None:
    assert_type(per_call_first_item(model), DeadlineStream[str])


def mixin() -> None:
    class Limited(DeadlineMixin, FakeListChatModel):
        pass

    model = Limited(responses=["a"], stream_timeout=45, first_token_timeout=None)
    assert_type(model.stream_timeout, float | None)
    assert_type(model.idle_timeout, float | None)
