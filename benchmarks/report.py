# ruff: noqa: RUF001  (the multiplication and micro signs are meant: this module writes Markdown for people)
"""Turn the results into ``benchmarks.md`` and its two charts; nothing here measures anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
from b1_per_item import BASELINE, SKETCH, WD_A, WD_B, WD_C, PerItem
from b3_precision import DEADLINE, Lateness
from common import BACKENDS, Settings

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from b2_overhead import Overhead
    from b4_scale import Scale

__all__ = ["Results", "Target", "targets", "write_charts", "write_markdown"]

PER_ITEM_PNG: Final = "images/bench-per-item.png"
LATENESS_PNG: Final = "images/bench-lateness.png"


@dataclass(frozen=True, slots=True)
class Results:
    """Everything one run measured, with how it was run."""

    settings: Settings
    info: dict[str, str]
    command: str
    b1: list[PerItem]
    b2: list[Overhead]
    b3: list[Lateness]
    b4: list[Scale]
    seconds: float
    """How long the run took."""


@dataclass(frozen=True, slots=True)
class Target:
    """One line of the pass/fail table."""

    what: str
    goal: str
    measured: str
    passed: bool


def _b1(results: Results, backend: str, approach: str) -> PerItem | None:
    return next((r for r in results.b1 if r.backend == backend and r.approach == approach), None)


def _b1_targets(results: Results) -> list[Target]:
    out: list[Target] = []
    for backend in ("asyncio", "uvloop"):
        base = _b1(results, backend, BASELINE)
        peer = _b1(results, backend, "asyncio.timeout per pull")
        for variant, limit in ((WD_B, 2.0), (WD_C, 2.5)):
            row = _b1(results, backend, variant)
            if row is None or base is None or peer is None:
                continue
            short = variant.split(" ", 2)[1]
            speedup = peer.ratio / row.ratio
            out += [
                Target(
                    f"B1 {backend}: with_deadline {short} vs pass-through generator",
                    f"≤ {limit:.1f}×",
                    f"{row.ratio:.2f}×",
                    row.ratio <= limit,
                ),
                Target(
                    f"B1 {backend}: with_deadline {short} vs `asyncio.timeout` per pull",
                    "≥ 10× faster",
                    f"{speedup:.1f}× faster",
                    speedup >= 10,
                ),
            ]
    peer = _b1(results, "trio", "trio.fail_after per pull")
    for variant in (WD_B, WD_C):
        row = _b1(results, "trio", variant)
        if row is None or peer is None:
            continue
        ratio = row.ratio / peer.ratio
        short = variant.split(" ", 2)[1]
        what = f"B1 trio: with_deadline {short} vs `trio.fail_after` per pull"
        out.append(Target(what, "≤ 0.8×", f"{ratio:.2f}×", ratio <= 0.8))
    return out


def _b2_b3_targets(results: Results) -> list[Target]:
    out: list[Target] = []
    for o in results.b2:
        if o.variant.startswith("(b)"):
            limit = 1.0 if o.workload.startswith("LangChain") else 3.0
            what = f"B2 {o.backend}: {o.workload}, with_deadline (b)"
            floors = ", ".join(
                f"{f.variant.removeprefix('floor: ')} {f.overhead_pct:+.2f} %"
                for f in results.b2
                if (f.backend, f.workload) == (o.backend, o.workload) and f.variant.startswith("floor")
            )
            measured = f"{o.overhead_pct:+.2f} %" + (f" (floor: {floors})" if floors else "")
            if o.workload.startswith("LangChain"):
                budget = o.plain_us * 10  # 1 % of a chunk, in ns
                measured += f" (1 % of the plain chain's {o.plain_us:.2f} µs per chunk is {budget:.0f} ns)"
            measured += "".join(
                f" (control, the plain chain against itself: {c.overhead_pct:+.2f} %)"
                for c in results.b2
                if (c.backend, c.workload) == (o.backend, o.workload) and c.variant.startswith("control")
            )
            out.append(Target(what, f"≤ {limit:g} %", measured, o.overhead_pct <= limit))
    for lat in results.b3:
        if lat.backend == "asyncio" and lat.cutter == "with_deadline" and lat.error:
            what = f"B3 asyncio: {lat.streams:,} {lat.kind} streams, p99 lateness of the error"
            floors = ", ".join(
                f"{f.cutter} {f.error['p99']:.2f} ms"
                for f in results.b3
                if (f.backend, f.kind) == (lat.backend, lat.kind)
                and f.cutter.startswith("one-task")
                and f.error
            )
            measured = f"{lat.error['p99']:.2f} ms" + (f" (floor: {floors})" if floors else "")
            out.append(Target(what, "≤ 5 ms", measured, lat.error["p99"] <= 5.0))
    return out


def _b4_floors(sc: Scale) -> str:
    names = {"minimal": "a generator + a state object", "skeleton": "the skeleton"}
    return ", ".join(
        f"{names[kind]} {us:.2f} µs ({gc_us:.2f} in collections, {full:g} full)"
        for kind, (us, gc_us, full) in sc.floors.items()
    )


def _b4_targets(results: Results) -> list[Target]:
    out: list[Target] = []
    for sc in results.b4:
        out += [
            Target(
                f"B4 {sc.backend}: memory per stream at {sc.n:,} streams (b)",
                "≤ 1 KiB",
                f"{sc.bytes_b:,.0f} B",
                sc.bytes_b <= 1024,
            ),
            Target(
                f"B4 {sc.backend}: create + close per stream at {sc.n:,} streams",
                "≤ 5 µs",
                f"{sc.create_close_us:.2f} µs ({sc.create_close_nogc_us:.2f} µs GC paused; of the"
                f" {sc.create_close_us:.2f}, {sc.gc_us:.2f} µs in collections,"
                f" {sc.gc_full:g} of them full; floors: {_b4_floors(sc)})",
                sc.create_close_us <= 5.0,
            ),
        ]
    return out


def targets(results: Results) -> list[Target]:
    """Check every target of issue 4 against this run's numbers."""
    return _b1_targets(results) + _b2_b3_targets(results) + _b4_targets(results)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    aligns = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "--:", "c": ":-:"}
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(marks[a] for a in aligns) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _b1_table(results: Results) -> list[str]:
    approaches = list(dict.fromkeys(r.approach for r in results.b1))
    backends = [b for b in BACKENDS if any(r.backend == b for r in results.b1)]
    header = ["approach", *(f"{b} ns/item" for b in backends), *(f"{b} ×" for b in backends)]
    rows = []
    for approach in approaches:
        cells = [_b1(results, b, approach) for b in backends]
        name = f"**{approach}**" if approach.startswith("with_deadline") else approach
        rows.append(
            [
                name,
                *(f"{c.ns_per_item:,.0f}" if c else "—" for c in cells),
                *(f"{c.ratio:.2f}" if c else "—" for c in cells),
            ]
        )
    return _table(header, rows)


def _fmt(stats: dict[str, float]) -> list[str]:
    return [f"{stats[k]:.2f}" if stats else "—" for k in ("p50", "p99", "max")]


def write_markdown(results: Results, path: Path) -> None:
    """Write the report: machine, targets, the four benchmarks, how to reproduce."""
    s = results.settings
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/run.py: do not edit by hand, run it again. -->",
        "",
        (
            f"Generated by `benchmarks/run.py` on {results.info['date']}"
            f" ({s.name} run, {results.seconds:.0f} s)."
            " Every number below comes from that run; each is the median of several repetitions, and"
            " every ratio compares two figures measured in the same round of the same run. Each of"
            " B1-B4 runs in a fresh interpreter of its own (as pyperf runs each benchmark), so that"
            " none measures what an earlier one left on the heap."
        ),
        "",
        "Reproduce with:",
        "",
        "```console",
        f"$ {results.command}",
        "```",
        "",
        "(`nox -s bench -- --quick` is a smoke run of a couple of minutes, written to a temp directory.)",
        "",
        "## Machine",
        "",
        *_table(["", ""], [[k, f"`{v}`"] for k, v in results.info.items()], "ll"),
        "",
        "The machine is shared and small (2 cores, a virtual machine): absolute numbers move from run to run",
        "by 10-20 %; the ratios, taken within one round, move less.",
        "",
        "## Targets",
        "",
        *_table(
            ["target", "goal", "measured", "result"],
            [[t.what, t.goal, t.measured, "pass" if t.passed else "**FAIL**"] for t in targets(results)],
            "lrrc",
        ),
        "",
        "## B1: per-item cost",
        "",
        (
            f"A source that never blocks (an async generator of {s.b1_items:,} integers, no await) is drained"
            f" through each approach; {s.b1_reps} rounds, the approaches interleaved within a round. ×"
            f" is the cost relative to the {BASELINE} (`async for x in src: yield x`) in the same round."
            " Every limit is 60 s, so nothing fires: this is the bookkeeping alone."
        ),
        "",
        (
            f"- {WD_A}: `with_deadline(src, None)`; {WD_B}: `with_deadline(src, 60)`;"
            f" {WD_C}: `with_deadline(src, 60, first_item=60, idle=60)`."
        ),
        (
            "- wait_for per chunk (langchain-openai): `await asyncio.wait_for(it.__anext__(), timeout)` in a"
            " loop with `aclose()` on exit, the pattern of langchain-openai's `stream_chunk_timeout`."
        ),
        "- aiter-timeouts `with_timeout(src, 60, 60)`: a total and a per-step timeout.",
        (
            f"- {SKETCH} (asyncio and uvloop): not a peer but a design sketch, the per-pull work of"
            f" {WD_B} (read the clock, check the deadline, note the pulling task, count the item) in a"
            " class whose `__anext__` is a coroutine, with no async generator per stream and no"
            " watchdog. Such a design would save B4 the generator and the weak reference asyncio keeps"
            " to it; this row is what it costs per item (`CoroutineAnext` in `benchmarks/b1_per_item.py`)."
        ),
        "",
        *_b1_table(results),
        "",
        f"![per-item cost by approach and backend]({PER_ITEM_PNG})",
        "",
        "## B2: overhead on realistic streams",
        "",
        (
            "Each workload drained without and with `with_deadline`, alternating round by round,"
            f" {s.b2_reps} rounds for the loop-yielding source and {s.b2_chain_reps} for the chain; the"
            " overhead is the median over the rounds of (with / without - 1). The loop-yielding source"
            f" awaits `sleep(0)` before each of its {s.b2_items:,} items. The chain is"
            " `ChatPromptTemplate | model` streamed with `chain.astream()`,"
            f" {s.b2_chain_chunks:,} chunks, the"
            " model a minimal `BaseChatModel` whose `_astream` is decorated with"
            " `@with_deadline(lambda self, *a, **k: self.stream_timeout)` (LangChain pulls every chunk of a"
            " chain in a fresh task). The *floor* rows wrap the same workload in the cheapest wrapper"
            " conceivable: a pass-through async generator (`async for x in src: yield x`; in the chain,"
            " what the model's `_astream` returns), which any"
            " wrapper able to turn the source's cancellation into its own error must at least be;"
            " *+ a clock read per item* is that layer reading the loop's clock and comparing it with a"
            " deadline once per item, the least any deadline checked at every pull does (semantic 3);"
            " *+ the clock and the pulling task per pull* (asyncio and uvloop) also notes, at the start of"
            " each pull, the task"
            " that makes it, and forgets it when the item arrives: the least a watchdog that cancels"
            " whichever task is waiting must know (semantic 4), with no timer, closing or error"
            " handling; *+ those and a timer armed for the deadline* (asyncio and uvloop) adds one"
            " `loop.call_at()` handle for the deadline, armed when the stream starts and cancelled when"
            " it ends, which a limit on the loop's own clock (semantic 1) needs to act while the"
            " source stalls (semantic 4: nothing else runs then), and which costs every turn of the"
            " loop a look at the loop's timer queue (the"
            " chain takes two turns per chunk; the plain chain has no timer at all);"
            " and on trio a plain `trio.CancelScope()` around each pull, the least any"
            " cancellation-based limit"
            " needs there (trio cancels only through scopes, and none may stay open across a `yield`)."
            " The chain's *control* row is the plain chain measured again as if it were a variant: its"
            " overhead, which should be zero, is how far the measurement errs by itself."
        ),
        "",
        *_table(
            ["backend", "workload", "wrapped in", "without µs/item", "with µs/item", "overhead"],
            [
                [
                    o.backend,
                    o.workload,
                    o.variant,
                    f"{o.plain_us:.2f}",
                    f"{o.deadlined_us:.2f}",
                    f"{o.overhead_pct:+.2f} %",
                ]
                for o in results.b2
            ],
            "lllrrr",
        ),
        "",
        "## B3: precision with 1,000 streams",
        "",
        (
            f"{s.b3_streams:,} concurrent consumers, a {DEADLINE:g} s deadline, {s.b3_reps} repetition(s)."
            " *Babbling*: the source yields every 8-12 ms forever. *Stalled*: three chunks, then silence."
            " Lateness (ms, real clock) = when the consumer caught the error, or when the source's `finally`"
            " ran, minus (the consumer's start + 1 s). *one-task timeout* is `asyncio.timeout(1)`"
            " (`trio.fail_after(1)`) around the consumer's whole loop: correct only when a single task pulls,"
            " it is the floor, what one timer per stream achieves on the same loop under the same load."
            " *+ one turn* (asyncio and uvloop) adds `await asyncio.sleep(0)` before the error is raised:"
            " the loop turn that semantic 7 costs every cut on asyncio (a cancellation requested in the"
            " same tick must be let land first, and an anyio scope delivers it one turn later)."
            f" Check-on-chunk is given {s.b3_stall_bound:g} s past the deadline on the stalled streams."
        ),
        "",
        *_table(
            [
                "backend",
                "streams",
                "cut by",
                "cut",
                "error p50",
                "error p99",
                "error max",
                "source `finally` p50",
                "p99",
                "max",
            ],
            [
                [
                    lat.backend,
                    lat.kind,
                    f"**{lat.cutter}**" if lat.cutter == "with_deadline" else lat.cutter,
                    f"{lat.cut:,}/{lat.streams:,}"
                    + ("" if lat.cut else f" (none in {s.b3_stall_bound:g} s)"),
                    *_fmt(lat.error),
                    *_fmt(lat.source_finally),
                ]
                for lat in results.b3
            ],
            "lllrrrrrrr",
        ),
        "",
        (
            "Check-on-chunk leaves the source to the garbage collector; with CPython's reference counting and"
            " the event loop's async-generator finalizer hook its `finally` still runs soon after, as above,"
            " but on another interpreter or with a reference cycle it may not run at all."
        ),
        "",
        f"![lateness distributions]({LATENESS_PNG})",
        "",
        "## B4: scale",
        "",
        (
            "Streams open at once on one loop. Memory: tracemalloc, streams suspended between two items with"
            " the watchdog armed, minus the bare sources in the same state. Create = `with_deadline()`, first"
            " pull = starting the clock and arming the watchdog, close = `aclose()` between items;"
            " each net of"
            " the bare source's own cost for the same step. *In collections*: the time the garbage"
            " collector ran during the three (median, per stream; `gc.callbacks`), and how many of those"
            " runs were full collections, which traverse every object alive. The *skeleton* is the floor"
            " of the three: per stream a handle object, a pass-through async generator (the per-item"
            " path B1 needs; asyncio keeps a weak reference to each), a state object for the timer to"
            " reach (the timer must not hold the handle: that would keep an abandoned stream's"
            " generator from being finalized and its source open) and one entry in a heap of timers;"
            " no checks, no clock per pull, no cancellation handling (`_Skeleton` in"
            " `benchmarks/b4_scale.py`). *Generator + state* is the least any limit can hold: the"
            " user holds a pass-through generator that closes its source, and it refers to one other"
            " object, for a timer to reach (an async generator takes no attributes); no handle, no"
            " timer entry, no work (`_minimal`). Both are measured in the same rounds, with the"
            " collector running."
            " Lateness: every consumer on a stalled source, cut"
            " by its deadline (1 s per 25,000 streams, at least 1 s, so that all have started); the floor is"
            " `asyncio.timeout` around each consumer's loop."
        ),
        "",
        *_table(
            [
                "backend",
                "streams",
                "bytes/stream (b)",
                "bytes/stream (c)",
                "create µs",
                "first pull µs",
                "close µs",
                "total µs",
                "total, GC paused",
                "in collections µs (full ones)",
                "floors µs: generator + state / skeleton",
                "deadline",
                "lateness p50 / p99 / max ms",
                "floor p99 ms",
            ],
            [
                [
                    sc.backend,
                    f"{sc.n:,}",
                    f"{sc.bytes_b:,.0f}",
                    f"{sc.bytes_c:,.0f}",
                    f"{sc.create_us:.2f}",
                    f"{sc.first_pull_us:.2f}",
                    f"{sc.close_us:.2f}",
                    f"{sc.create_close_us:.2f}",
                    f"{sc.create_close_nogc_us:.2f}",
                    f"{sc.gc_us:.2f} ({sc.gc_full:g})",
                    " / ".join(f"{us:.2f}" for us, _, _ in (sc.floors["minimal"], sc.floors["skeleton"])),
                    f"{sc.deadline:g} s",
                    " / ".join(f"{sc.lateness[k]:.1f}" for k in ("p50", "p99", "max")),
                    f"{sc.floor['p99']:.1f}",
                ]
                for sc in results.b4
            ],
            "lrrrrrrrrrrrrr",
        ),
        "",
        "## Method",
        "",
        (
            "- The suite lives in `benchmarks/` (one module per benchmark, `report.py` for this page)"
            " and is not part of the unit tests."
        ),
        "- Times are `time.perf_counter()` around whole drains; lateness uses `time.monotonic()`.",
        "- A full garbage collection runs before every timed drain; the collector stays on while timing.",
        "- uvloop runs in `asyncio.Runner(loop_factory=uvloop.new_event_loop)`; trio in `trio.run`.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


_COLOURS: Final = {"with_deadline": "#1f77b4", "baseline": "#7f7f7f", "peer": "#ff7f0e", "fix": "#2ca02c"}


def _colour(approach: str) -> str:
    if approach.startswith("with_deadline"):
        return _COLOURS["with_deadline"]
    if approach in (BASELINE, "bare async generator"):
        return _COLOURS["baseline"]
    if approach.startswith("check-on-chunk"):
        return _COLOURS["fix"]
    return _COLOURS["peer"]


def _per_item_chart(results: Results, path: Path) -> None:
    backends = [b for b in BACKENDS if any(r.backend == b for r in results.b1)]
    fig, axes = plt.subplots(1, len(backends), figsize=(6 * len(backends), 5.5), sharex=True)
    for ax, backend in zip(axes, backends, strict=True):
        rows = [r for r in results.b1 if r.backend == backend]
        names = [r.approach for r in rows]
        values = [r.ns_per_item for r in rows]
        y = range(len(rows))
        ax.barh(y, values, color=[_colour(n) for n in names])
        ax.set_yticks(list(y), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_title(backend)
        ax.set_xlabel("ns per item (log scale)")
        for yi, v in zip(y, values, strict=True):
            ax.text(v * 1.08, yi, f"{v:,.0f}", va="center", fontsize=7)
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[0].set_xlim(20, max(r.ns_per_item for r in results.b1) * 4)
    fig.suptitle(
        f"B1: per-item cost on a source that never blocks ({results.settings.b1_items:,} items,"
        f" median of {results.settings.b1_reps}) — blue: with_deadline, orange: peers, green: blog fix",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_STYLES: Final = {
    ("babbling", "with_deadline"): ("#1f77b4", "-"),
    ("stalled", "with_deadline"): ("#1f77b4", "--"),
    ("babbling", "check-on-chunk"): ("#2ca02c", "-"),
    ("stalled", "check-on-chunk"): ("#2ca02c", "--"),
    ("babbling", "one-task timeout"): ("#7f7f7f", "-"),
    ("stalled", "one-task timeout"): ("#7f7f7f", "--"),
    ("babbling", "one-task timeout + one turn"): ("#9467bd", "-"),
    ("stalled", "one-task timeout + one turn"): ("#9467bd", "--"),
}


def _lateness_chart(results: Results, path: Path) -> None:
    backends = [b for b in BACKENDS if any(r.backend == b for r in results.b3)]
    fig, axes = plt.subplots(1, len(backends), figsize=(5.5 * len(backends), 4.5), sharey=True)
    for ax, backend in zip(axes, backends, strict=True):
        top = max((max(r.samples) for r in results.b3 if r.backend == backend and r.samples), default=1.0)
        for lat in (r for r in results.b3 if r.backend == backend):
            colour, style = _STYLES[lat.kind, lat.cutter]
            label = f"{lat.cutter}, {lat.kind}"
            if not lat.samples:
                ax.plot([], [], color=colour, linestyle=style, label=f"{label}: never cut")
                continue
            xs = sorted(lat.samples)
            ys = [(i + 1) / lat.streams for i in range(len(xs))]
            ax.step(xs, ys, where="post", color=colour, linestyle=style, label=label)
        if backend == "asyncio":
            ax.axvline(5.0, color="red", linewidth=0.8, linestyle=":", label="target p99 ≤ 5 ms")
        ax.axhline(0.99, color="black", linewidth=0.5, linestyle=":")
        ax.set_xlim(0, top * 1.05)
        ax.set_title(backend)
        ax.set_xlabel("lateness of the error past the deadline (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("fraction of streams cut")
    fig.suptitle(
        f"B3: {results.settings.b3_streams:,} concurrent streams, {DEADLINE:g} s deadline"
        " (CDF of one repetition; dotted line: p99)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_charts(results: Results, docs: Path) -> None:
    """Write both PNG charts under ``docs/images``."""
    (docs / "images").mkdir(parents=True, exist_ok=True)
    if results.b1:
        _per_item_chart(results, docs / PER_ITEM_PNG)
    if results.b3:
        _lateness_chart(results, docs / LATENESS_PNG)
