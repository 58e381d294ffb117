"""B2: the overhead of ``with_deadline`` on realistic streams, in percent.

Two workloads, each drained plain and through ``with_deadline`` in the same round (the
order alternating between rounds), the overhead being the median over the rounds of
``time with / time without - 1``:

* a source that yields to the event loop once per item (``sleep(0)``), the cheapest real
  stream there is;
* a LangChain chain, ``prompt | model``, where the model is a tiny ``BaseChatModel`` whose
  ``_astream`` yields chunks without any I/O; the deadlined variant decorates ``_astream``
  with ``@with_deadline(lambda self, *a, **k: self.stream_timeout)``, as the README shows.
  LangChain pulls every chunk of a chain in a fresh task, so this also exercises task hopping.

The chain also runs a *control*: the plain chain again, reported as if it were a variant, so
that its "overhead" shows how far the measurement errs by itself. Each workload also runs
through the cheapest wrapper conceivable, as a floor: a pass-through
async generator (``async for x in src: yield x``), which any wrapper that can turn the
source's cancellation into its own error must at least be; that generator with one clock
read per item (a deadline checked at every pull); on asyncio and uvloop that again with the
pulling task noted at the start of each pull and forgotten when its item arrives (what a
watchdog that cancels whichever task is waiting must know), and that again with one timer
armed on the loop for the deadline (what lets it act while the source stalls); on trio,
which cancels through scopes and not tasks, a plain ``trio.CancelScope()`` around each pull
instead, the least any cancel-based limit needs there.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

import trio
import trio.lowlevel
from common import Backend, check_on_chunk, loop_clock, median, pass_through, run_on, task_of
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate

from stream_deadline import StreamTimeoutError, with_deadline

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterator

    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.runnables import Runnable

__all__ = ["Overhead", "run_b2_chain", "run_b2_loop"]

LONG: Final = 60.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Overhead:
    """Plain vs deadlined time per item for one workload and configuration."""

    backend: Backend
    workload: str
    variant: str
    plain_us: float
    """Median time per item without ``with_deadline``, in microseconds."""
    deadlined_us: float
    overhead_pct: float
    """Median over the rounds of the per-round overhead, in percent."""


def _summarise(
    backend: Backend, workload: str, times: dict[str, list[float]], n: int, log: Callable[[str], Any]
) -> list[Overhead]:
    plain = times.pop("plain")
    rows = []
    for variant, ts in times.items():
        row = Overhead(
            backend,
            workload,
            variant,
            median(plain) / n * 1e6,
            median(ts) / n * 1e6,
            (median([t / p for t, p in zip(ts, plain, strict=True)]) - 1) * 100,
        )
        log(
            f"  B2 {backend:8} {workload:22} {variant:14} {row.plain_us:8.2f} -> {row.deadlined_us:8.2f}"
            f" us/item  {row.overhead_pct:+6.2f} %"
        )
        rows.append(row)
    return rows


async def _timed_rounds(
    drains: dict[str, Callable[[], Awaitable[None]]], reps: int
) -> dict[str, list[float]]:
    """Run each drain once per round, alternating the order; seconds per drain."""
    times: dict[str, list[float]] = {name: [] for name in drains}
    order = list(drains)
    for _ in range(reps):
        for name in order:
            gc.collect()
            t0 = time.perf_counter()
            await drains[name]()
            times[name].append(time.perf_counter() - t0)
        order.reverse()
    return times


# --- a source that yields to the event loop once per item ---------------------------------


async def yielding_asyncio(n: int) -> AsyncIterator[int]:
    """``n`` items, each after one trip through the asyncio event loop."""
    for i in range(n):
        await asyncio.sleep(0)
        yield i


async def yielding_trio(n: int) -> AsyncIterator[int]:
    """``n`` items, each after one trip through trio's scheduler."""
    for i in range(n):
        await trio.lowlevel.checkpoint()
        yield i


async def scope_per_pull(source: AsyncIterator[T]) -> AsyncIterator[T]:
    """The floor of any cancel-based limit on trio: a plain cancel scope around each pull."""
    pull = source.__anext__
    while True:
        with trio.CancelScope():
            try:
                item = await pull()
            except StopAsyncIteration:
                return
        yield item


FLOOR: Final = "floor: pass-through generator"
CLOCK_FLOOR: Final = "floor: + a clock read per item"
TASK_FLOOR: Final = "floor: + the clock and the pulling task per pull"
TIMER_FLOOR: Final = "floor: + those and a timer armed for the deadline"
CONTROL: Final = "control: plain again"
"""The plain chain measured as a variant of itself: how far the measurement errs on its own."""
TRIO_FLOOR: Final = "floor: CancelScope per pull"


class _Pull:
    """What a watchdog must know about the pull in flight: which task waits in it."""

    __slots__ = ("task",)

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None

    def cancel(self) -> None:
        """What the deadline's timer would do: cancel the task waiting in the pull, if any."""
        if self.task is not None:
            self.task.cancel()


async def clock_and_task(
    source: AsyncIterator[T], seconds: float, *, timer: bool = False
) -> AsyncIterator[T]:
    """The floor of a deadline that keeps rules 3 and 4 on asyncio (trio cancels through scopes,
    not tasks): at the start of each pull the loop's clock is read and compared (the check) and
    the pulling task noted (whom a watchdog cancels); when the item arrives the task is
    forgotten. No closing, no error handling.

    With ``timer``, also one timer on the loop, armed for the deadline while the stream is open
    and cancelled when it ends: a limit on the loop's own clock (rule 1) that acts while the
    source stalls (rule 4) needs one, since nothing else runs then. (Any timer in the loop's
    queue costs each turn of the loop a look at it.) It never fires here.
    """
    loop = asyncio.get_running_loop()
    clock = loop_clock(loop)
    pull = _Pull()
    start = clock()
    handle = loop.call_at(loop.time() + seconds, pull.cancel) if timer else None
    try:
        pull.task = task_of(loop)
        async for item in source:
            pull.task = None
            yield item
            if clock() - start > seconds:
                raise StreamTimeoutError("deadline", seconds, clock() - start, 0)
            pull.task = task_of(loop)
    finally:
        if handle is not None:
            handle.cancel()


Wrap: TypeAlias = Callable[[AsyncIterator[Any]], AsyncIterator[Any]]


def floors(backend: Backend) -> dict[str, Wrap]:
    """The floors on ``backend``, by row name (called in its running loop, whose clock they read)."""
    clock = trio.current_time if backend == "trio" else loop_clock(asyncio.get_running_loop())
    wraps: dict[str, Wrap] = {
        FLOOR: pass_through,
        CLOCK_FLOOR: lambda s: check_on_chunk(s, LONG, clock),
    }
    if backend == "trio":
        wraps[TRIO_FLOOR] = scope_per_pull
    else:
        wraps[TASK_FLOOR] = lambda s: clock_and_task(s, LONG)
        wraps[TIMER_FLOOR] = lambda s: clock_and_task(s, LONG, timer=True)
    return wraps


def run_b2_loop(backend: Backend, n: int, reps: int, log: Callable[[str], Any] = print) -> list[Overhead]:
    """The loop-yielding source, plain, through the floors and through ``with_deadline`` (b), (c)."""
    make = yielding_trio if backend == "trio" else yielding_asyncio

    async def drain(wrap: Wrap, items: int) -> None:
        async for _ in wrap(make(items)):
            pass

    def drains(items: int) -> dict[str, Callable[[], Awaitable[None]]]:
        wraps: dict[str, Wrap] = {
            "plain": lambda s: s,
            **floors(backend),
            "(b) deadline": lambda s: with_deadline(s, LONG),
            "(c) all limits": lambda s: with_deadline(s, LONG, first_item=LONG, idle=LONG),
        }
        return {name: functools.partial(drain, wrap, items) for name, wrap in wraps.items()}

    async def main() -> dict[str, list[float]]:
        await _timed_rounds(drains(min(n, 1_000)), 1)  # warm-up
        return await _timed_rounds(drains(n), reps)

    return _summarise(backend, "loop-yielding source", run_on(backend, main), n, log)


# --- a LangChain chain ------------------------------------------------------------------------


class FakeStreamingModel(BaseChatModel):
    """A chat model that streams ``chunks`` one-word chunks without any I/O."""

    chunks: int = 100
    stream_timeout: float = LONG

    @property
    def _llm_type(self) -> str:
        return "fake-streaming"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,  # noqa: ANN401 (BaseChatModel's signature)
    ) -> ChatResult:
        raise NotImplementedError  # only streamed here

    def _chunks(self) -> Iterator[ChatGenerationChunk]:
        for i in range(self.chunks):
            yield ChatGenerationChunk(message=AIMessageChunk(content=f"w{i} "))

    async def _astream(  # BaseChatModel._astream's signature; the arguments are not used
        self,
        messages: list[BaseMessage],  # noqa: ARG002
        stop: list[str] | None = None,  # noqa: ARG002
        run_manager: AsyncCallbackManagerForLLMRun | None = None,  # noqa: ARG002
        **kwargs: Any,  # noqa: ANN401, ARG002
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks():
            yield chunk


class FloorModel(FakeStreamingModel):
    """The same model with its chunks passed through ``floor``, one of :func:`floors`.

    Its ``_astream`` returns that layer (one layer, as the decorated model's returns the
    stream), rather than being an async generator itself (which would make two).
    """

    floor: Wrap

    def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:  # type: ignore[override]  # noqa: ANN401
        return self.floor(super()._astream(*args, **kwargs))


class DeadlinedStreamingModel(FakeStreamingModel):
    """The same model with its ``_astream`` under ``with_deadline(self.stream_timeout)``."""

    @with_deadline(lambda self, *_args, **_kwargs: self.stream_timeout)
    async def _astream(  # BaseChatModel._astream's signature; the arguments are not used
        self,
        messages: list[BaseMessage],  # noqa: ARG002
        stop: list[str] | None = None,  # noqa: ARG002
        run_manager: AsyncCallbackManagerForLLMRun | None = None,  # noqa: ARG002
        **kwargs: Any,  # noqa: ANN401, ARG002
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks():
            yield chunk


PROMPT: Final = ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "{question}")])


def run_b2_chain(backend: Backend, n: int, reps: int, log: Callable[[str], Any] = print) -> list[Overhead]:
    """``prompt | model`` streamed with ``chain.astream``, plain and with ``with_deadline`` (b)."""

    def drains(chunks: int) -> dict[str, Callable[[], Awaitable[None]]]:
        models: dict[str, BaseChatModel] = {
            "plain": FakeStreamingModel(chunks=chunks),
            CONTROL: FakeStreamingModel(chunks=chunks),  # the same, measured as if it were a variant
            **{name: FloorModel(chunks=chunks, floor=wrap) for name, wrap in floors(backend).items()},
            "(b) deadline": DeadlinedStreamingModel(chunks=chunks),
        }

        async def drain(chain: Runnable[dict[str, str], BaseMessage]) -> None:
            count = 0
            async for _ in chain.astream({"question": "why?"}):
                count += 1
            if count < chunks:
                raise AssertionError(f"the chain streamed {count} chunks, not {chunks}")

        return {name: functools.partial(drain, PROMPT | model) for name, model in models.items()}

    async def main() -> dict[str, list[float]]:
        await _timed_rounds(drains(min(n, 100)), 2)  # warm-up
        return await _timed_rounds(drains(n), reps)

    return _summarise(backend, "LangChain prompt|model", run_on(backend, main), n, log)
