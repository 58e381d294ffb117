"""The incident, replayed offline: a babbling, a stalled and a queued model server,
naive fixes vs ``with_deadline``.

A fake vLLM (``examples/_fake_vllm.py``) runs in-process on 127.0.0.1. A LangChain chain
(``prompt | ChatOpenAI``) asks it a question with a 3 s limit, in three scenarios, each
time side by side with a naive fix run at the same moment:

1. **babble**: the model never stops (a token every 20 ms). Naive fix:
   ``asyncio.timeout`` inside ``_astream``, which never fires in a chain (each chunk is
   pulled in a new task).
2. **stall**: three tokens, then only SSE keep-alive comments. Naive fix: the blog's
   check of the elapsed time on each chunk, which cannot act when no chunk comes.
3. **queued**: the empty role chunk at once (as a gateway sends it), then 8 s in the
   queue before the first token. ``first_token_timeout=3`` (which counts real output
   only) cuts at 3 s; the naive fix, a ``first_item`` limit that counts every chunk, is
   satisfied by the role chunk and never fires.

The demo gives up on a naive stream 3 s after its deadline. It prints the tokens of the
``with_deadline`` stream live, then a timeline per scenario (when the deadline passed,
when the client raised, when the server stopped generating, how many tokens were
generated after the deadline), and draws the timelines to a PNG (``--output``, by
default ``build/demo-timeline.png``; the docs' picture is made with
``--output docs/images/demo-timeline.png``). No GPU, no API key, no model; about 15 s.

    nox -s demo  # or:
    python examples/demo.py [--output PATH] [--deadline SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
from _fake_vllm import ID_HEADER, FakeVLLM, Generation, ServerThread
from langchain_chain import ChatVllm
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from stream_deadline import with_deadline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from langchain_core.outputs import ChatGenerationChunk

GIVE_UP_AFTER = 3.0
"""Seconds past the deadline after which the demo stops waiting for a naive stream."""
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "build" / "demo-timeline.png"


class NaiveTimeoutChatOpenAI(ChatOpenAI):
    """The obvious fix: ``asyncio.timeout`` around the body of ``_astream``."""

    stream_timeout: float | None = 45.0

    async def _astream(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        async with asyncio.timeout(self.stream_timeout):
            async for chunk in super()._astream(*args, **kwargs):
                yield chunk


class CheckOnChunkChatOpenAI(ChatOpenAI):
    """The blog's fix: compare the elapsed time with the limit when each chunk
    arrives."""

    stream_timeout: float = 45.0

    async def _astream(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        start = time.monotonic()
        async for chunk in super()._astream(*args, **kwargs):
            if time.monotonic() - start > self.stream_timeout:
                raise TimeoutError(f"stream exceeded {self.stream_timeout} s")
            yield chunk


FIRST_PULLS: dict[str, float] = {}
"""When each stream was first pulled (when a ``with_deadline`` stream starts its clock),
by request id."""


class FirstItemChatOpenAI(ChatOpenAI):
    """A first-item limit that counts every chunk: no ``progress``."""

    stream_timeout: float = 60.0
    first_token_timeout: float = 10.0

    @with_deadline(
        lambda self, *_a, **_k: self.stream_timeout,
        first_item=lambda self, *_a, **_k: self.first_token_timeout,
    )
    async def _astream(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk


class RecordFirstPull(ChatOpenAI):
    """Notes when the stream is first pulled, then passes everything through."""

    async def _astream(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        FIRST_PULLS[str((self.default_headers or {})[ID_HEADER])] = time.monotonic()
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk


@dataclass
class Outcome:
    """One stream, as the client and the server saw it (times in seconds since its first
    pull)."""

    name: str
    started: float
    raised: float | None = None
    """When the client got an error, or ``None`` if the demo gave up first."""
    gave_up: float | None = None
    generation: Generation | None = None
    chunks: list[float] = field(default_factory=list)

    def since(self, moment: float | None) -> float | None:
        """``moment`` in seconds since the stream started."""
        return None if moment is None else moment - self.started


async def run_chain(  # noqa: PLR0913, PLR0917
    cls: type[ChatOpenAI],
    server: ServerThread,
    mode: str,
    name: str,
    deadline: float,
    limits: dict[str, float] | None = None,
) -> Outcome:
    """Stream one answer through ``prompt | model``; give up ``GIVE_UP_AFTER`` s past
    the deadline.

    The tokens of the ``with_deadline`` stream are printed as they come. ``limits``: the
    model's limit fields (by default ``stream_timeout=deadline``).
    """
    live = name == "with_deadline"
    request_id = f"demo-{mode}-{name}"
    timed = type(f"Timed{cls.__name__}", (RecordFirstPull, cls), {})
    async with openai.DefaultAsyncHttpxClient() as http:
        model = timed(
            model=mode,
            base_url=server.base_url,
            api_key="demo",  # type: ignore[arg-type]
            **(limits or {"stream_timeout": deadline}),
            max_retries=0,
            default_headers={ID_HEADER: request_id},
            http_async_client=http,
        )
        chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | model
        outcome = Outcome(name, time.monotonic())

        async def consume() -> None:
            async for chunk in chain.astream({"question": "Tell me everything."}):
                outcome.chunks.append(time.monotonic())
                if live:
                    print(chunk.content, end="", flush=True)

        # The demo's own bound. A naive stream may swallow one cancellation (on Python
        # 3.11 the asyncio.wait_for that langchain-openai runs per chunk drops one that
        # lands with its chunk), so it is cancelled until it ends.
        task = asyncio.create_task(consume())
        await asyncio.wait({task}, timeout=deadline + GIVE_UP_AFTER)
        if not task.done():
            outcome.gave_up = time.monotonic()
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.05)
        elif isinstance(task.exception(), TimeoutError):
            outcome.raised = time.monotonic()
        else:
            task.result()  # (an error the demo does not expect: shown as it is)
        if live:
            print()
    outcome.generation = await server.app.wait_stopped(request_id)
    outcome.started = FIRST_PULLS[request_id]
    return outcome


def fmt(seconds: float | None, otherwise: str = "never") -> str:
    """Seconds, or ``otherwise``."""
    return otherwise if seconds is None else f"{seconds:5.2f} s"


def timeline(
    title: str, deadline: float, outcomes: list[Outcome], limit: str = "deadline"
) -> None:
    """Print the side-by-side timeline of one scenario (``limit``: the limit's name)."""
    width = 26
    print(f"\n{title}")
    print(f"  {'':34}" + "".join(f"{o.name:>{width}}" for o in outcomes))
    rows: list[tuple[str, list[str]]] = [
        (f"{limit} passed", [fmt(deadline) for _ in outcomes]),
        (
            "client raised",
            [
                fmt(
                    o.since(o.raised),
                    f"never (gave up {fmt(o.since(o.gave_up)).strip()})",
                )
                for o in outcomes
            ],
        ),
        (
            "server stopped generating",
            [
                fmt(o.since(o.generation.stopped if o.generation else None))
                for o in outcomes
            ],
        ),
        (
            "tokens generated",
            [str(o.generation.tokens if o.generation else 0) for o in outcomes],
        ),
        (
            "tokens generated after deadline",
            [str(wasted(o, deadline)) for o in outcomes],
        ),
        (
            "keep-alives after deadline",
            [
                str(
                    sum(t - o.started > deadline for t in o.generation.keepalive_times)
                    if o.generation
                    else 0
                )
                for o in outcomes
            ],
        ),
    ]
    for label, cells in rows:
        print(f"  {label:34}" + "".join(f"{cell:>{width}}" for cell in cells))


def wasted(outcome: Outcome, deadline: float) -> int:
    """Tokens the server generated after the deadline: GPU time for nothing."""
    if outcome.generation is None:
        return 0
    return sum(t - outcome.started > deadline for t in outcome.generation.token_times)


def plot(
    path: Path, deadline: float, scenarios: list[tuple[str, list[Outcome]]]
) -> None:
    """Tokens generated by the server over time, per approach, with the deadline and the
    stops."""
    import matplotlib as mpl  # noqa: PLC0415 (only the demo needs matplotlib)

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    colors = {"with_deadline": "#1b7f3b", "naive": "#c0392b"}
    fig, axes = plt.subplots(
        1, len(scenarios), figsize=(5.6 * len(scenarios), 4.8), layout="constrained"
    )
    for ax, (title, outcomes) in zip(axes, scenarios, strict=True):
        top = 0
        lanes = 0
        # ours drawn on top
        for outcome in sorted(outcomes, key=lambda o: o.name == "with_deadline"):
            generation = outcome.generation
            if generation is None:
                continue
            ours = outcome.name == "with_deadline"
            color = colors["with_deadline" if ours else "naive"]
            times = [0.0] + [t - outcome.started for t in generation.token_times]
            counts = list(range(len(times)))
            top = max(top, counts[-1])
            stop = (generation.stopped or outcome.started) - outcome.started
            ax.step(
                [*times, stop],
                [*counts, counts[-1]],
                where="post",
                color=color,
                lw=3.2 if ours else 2,
                alpha=1 if ours else 0.75,
                label=(
                    f"{outcome.name}: still generating when the demo gave up"
                    f" ({stop:.1f} s)"
                    if outcome.gave_up is not None
                    else f"{outcome.name}: generation stopped at {stop:.2f} s"
                ),
            )
            ax.plot(
                stop, counts[-1], marker="X", ms=12, color=color, mec="black", zorder=5
            )
            keepalives = [t - outcome.started for t in generation.keepalive_times]
            if keepalives:
                lanes += 1
                ax.plot(
                    keepalives,
                    [-0.3 * lanes] * len(keepalives),
                    "|",
                    ms=10,
                    mew=2,
                    color=color,
                )
        span = top * 1.25 + 1
        if lanes:
            ax.text(
                0.05,
                -0.3 * lanes - 0.3,
                "keep-alive comments sent",
                fontsize=8,
                color="dimgray",
            )
            ax.set_ylim(-0.3 * lanes - 0.45, span)
        else:
            ax.set_ylim(-0.05 * span, span)
        ax.axvline(deadline, color="black", ls="--", lw=1.2)
        ax.text(
            deadline + 0.05,
            0.55,
            f"deadline {deadline:g} s",
            fontsize=9,
            transform=ax.get_xaxis_transform(),
        )
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("seconds since the stream's first pull")
        ax.set_ylabel("tokens generated by the server")
        ax.set_yticks([tick for tick in ax.get_yticks() if 0 <= tick <= span])
        ax.set_xlim(0, deadline + GIVE_UP_AFTER + 0.6)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=9)
    fig.suptitle(
        "prompt | ChatOpenAI against a misbehaving vLLM:"
        " when does the server stop generating? (✕ = stop)"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def main(server: ServerThread, deadline: float, output: Path | None) -> None:
    """Run the three scenarios, print the timelines and draw the chart."""
    print(
        f"1) babble: the model never stops. Chain with a {deadline:g} s deadline"
        " (with_deadline), live:\n"
    )
    babble = await asyncio.gather(
        run_chain(ChatVllm, server, "babble", "with_deadline", deadline),
        run_chain(
            NaiveTimeoutChatOpenAI, server, "babble", "naive asyncio.timeout", deadline
        ),
    )
    timeline(
        f"babble, {deadline:g} s deadline (seconds since the stream's first pull)",
        deadline,
        list(babble),
    )

    print(
        "\n2) stall: three tokens, then only keep-alive comments."
        f" Same chain, {deadline:g} s deadline:\n"
    )
    stall = await asyncio.gather(
        run_chain(ChatVllm, server, "stall", "with_deadline", deadline),
        run_chain(
            CheckOnChunkChatOpenAI, server, "stall", "naive check-on-chunk", deadline
        ),
    )
    timeline(
        f"stall, {deadline:g} s deadline (seconds since the stream's first pull)",
        deadline,
        list(stall),
    )
    print(
        "\n3) queued: the role chunk at once, then 8 s in the queue."
        f" first_token_timeout={deadline:g} vs a first_item of {deadline:g} s that"
        " counts every chunk:\n"
    )
    limits = {"stream_timeout": 60.0, "first_token_timeout": deadline}
    queued = await asyncio.gather(
        run_chain(ChatVllm, server, "queued", "with_deadline", deadline, limits),
        run_chain(
            FirstItemChatOpenAI, server, "queued", "naive first_item", deadline, limits
        ),
    )
    timeline(
        f"queued, {deadline:g} s to the first token (seconds since the first pull)",
        deadline,
        list(queued),
        limit="first-token limit",
    )
    print(
        "\nThe naive streams were still open when the demo gave up on them,"
        f" {GIVE_UP_AFTER:g} s past the deadline; a real vLLM would have kept"
        " generating until max_tokens."
    )
    if output is not None:
        plot(
            output,
            deadline,
            [
                ("babble: asyncio.timeout in _astream", list(babble)),
                ("stall: check elapsed on each chunk", list(stall)),
                ("queued: first_item counting the role chunk", list(queued)),
            ],
        )
        print(f"\ntimeline chart written to {output}")


def cli() -> None:
    """Parse the options and run the demo against an in-process fake vLLM."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=3.0,
        help="the chain's deadline in seconds (3)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the PNG timeline",
    )
    parser.add_argument(
        "--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)"
    )
    args = parser.parse_args()
    started = time.monotonic()
    with ServerThread(FakeVLLM(queue_delay=8)) as server:
        asyncio.run(main(server, args.deadline, None if args.no_plot else args.output))
    print(f"demo done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    cli()
