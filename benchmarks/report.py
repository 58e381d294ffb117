"""Write ``benchmarks.md`` (from the template ``page.md``) and its charts; nothing here measures."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
from common import BACKENDS, Row

PAGE = Path(__file__).with_name("page.md")


def colour(name: str) -> str:
    """Blue for with_deadline, grey for references and floors, green for the blog's fix, orange for peers."""
    if name.startswith("with_deadline"):
        return "#1f77b4"
    if name.startswith(("floor", "bare", "pass-through")):
        return "#7f7f7f"
    return "#2ca02c" if name.startswith("check-on-chunk") else "#ff7f0e"


def table(header: list[str], rows: list[list[Any]], left: int) -> str:
    """A Markdown table: the first ``left`` columns left-aligned, the others (numbers) right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * left + "--:|" * (len(header) - left)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def _bold(name: str) -> str:
    return f"**{name}**" if name.startswith("with_deadline") else name


def lateness(rows: list[Row]) -> str:
    """The lateness table: p50, p99 and max, and the source's close at p99, in ms."""
    late = ["p50 ms", "p99 ms", "max ms", "source closed p99 ms"]
    out = []
    for r in rows:
        values = [r["late"]["p50"], r["late"]["p99"], r["late"]["max"], r["closed_p99"]]
        cut = f"{r['cut']:,}"
        out.append([r["backend"], r["kind"], _bold(r["cutter"]), f"{r['n']:,}", f"{r['deadline']:g} s", cut])
        out[-1] += ["—" if math.isnan(value) else f"{value:.1f}" for value in values]
    return table(["backend", "source", "cut by", "streams", "deadline", "cut", *late], out, 3)


def tables(results: dict[str, list[Row]]) -> dict[str, str]:
    """Every table of the page, by its name in ``page.md``."""
    per_item = results.get("per-item", [])
    backends = [b for b in BACKENDS if any(r["backend"] == b for r in per_item)]
    cell = {(r["backend"], r["name"]): r for r in per_item}
    return {
        "per_item_table": table(
            ["approach", *(f"{b} ns/item" for b in backends), *(f"{b} ×" for b in backends)],
            [
                [_bold(name)]
                + [f"{cell[b, name]['ns']:,.0f}" if (b, name) in cell else "—" for b in backends]
                + [f"{cell[b, name]['ratio']:.2f}" if (b, name) in cell else "—" for b in backends]
                for name in dict.fromkeys(r["name"] for r in per_item)
            ],
            1,
        ),
        "workloads_table": table(
            ["workload", "backend", "wrapped in", "µs/item", "overhead"],
            [
                [
                    r["workload"],
                    r["backend"],
                    _bold(r["name"]),
                    f"{r['ns'] / 1e3:.2f}",
                    f"{r['ratio'] * 100 - 100:+.1f} %",
                ]
                for r in results.get("workloads", [])
            ],
            3,
        ),
        "precision_table": lateness(results.get("precision", [])),
        "storm_table": lateness(results.get("storm", [])),
        "memory_table": table(
            ["backend", "stream", "bytes per stream"],
            [[r["backend"], _bold(r["name"]), f"{r['bytes']:,.0f}"] for r in results.get("memory", [])],
            2,
        ),
    }


def bars(ax: Any, rows: list[Row]) -> None:  # noqa: ANN401
    """Nanoseconds per item, one bar per approach, on a log scale."""
    ax.barh([r["name"] for r in rows], [r["ns"] for r in rows], color=[colour(r["name"]) for r in rows])
    for i, r in enumerate(rows):
        ax.text(r["ns"] * 1.1, i, f"{r['ns']:,.0f}", va="center", fontsize=7)
    ax.invert_yaxis()
    ax.set(xscale="log", xlim=(10, max(r["ns"] for r in rows) * 5), xlabel="ns per item (log scale)")
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)


def quantiles(ax: Any, rows: list[Row]) -> None:  # noqa: ANN401
    """Lateness, one line of quantiles per row: dashed for stalled sources, or for uvloop."""
    for r in rows:
        second = r["backend"] if r["kind"] == "hung" else r["kind"]
        xs = r["cdf"] or [math.nan]  # a cutter that cut nothing shows in the legend only
        style = "--" if second in ("stalled", "uvloop") else "-"
        ax.plot(
            xs,
            [k / 200 for k in range(len(xs))],
            color=colour(r["cutter"]),
            ls=style,
            label=f"{r['cutter']}, {second}",
        )
    ax.axhline(0.99, color="black", linewidth=0.5, linestyle=":")
    ax.set(xlabel="ms past the deadline (real clock)", ylabel="fraction of streams cut")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def chart(path: Path, title: str, rows: list[Row], by: str, draw: Callable[[Any, list[Row]], None]) -> None:
    """One panel per value of ``row[by]``, each drawn by ``draw(axes, its rows)``."""
    panels = {key: [r for r in rows if r[by] == key] for key in dict.fromkeys(r[by] for r in rows)}
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8), squeeze=False)
    for ax, (key, mine) in zip(axes[0], panels.items(), strict=True):
        draw(ax, mine)
        ax.set_title(f"{key:,} streams" if isinstance(key, int) else key)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(docs: Path, results: dict[str, list[Row]], context: dict[str, Any]) -> None:
    """Write ``benchmarks.md`` and ``images/bench-*.png`` under ``docs`` for the sections measured;
    ``context`` holds the run's sizes, ``date``, ``command``, ``minutes`` and ``machine``."""
    if rows := results.get("per-item"):
        chart(
            docs / "images/bench-per-item.png",
            "Per-item cost, a source that never blocks",
            rows,
            "backend",
            bars,
        )
    if rows := results.get("precision"):
        title = f"{context['streams']:,} streams, a 1 s deadline"
        chart(docs / "images/bench-lateness.png", title, rows, "backend", quantiles)
    if rows := results.get("storm"):
        chart(
            docs / "images/bench-storm.png",
            "A storm of cuts: every stream stalls at once",
            rows,
            "n",
            quantiles,
        )

    machine = table(["", ""], [[key, f"`{value}`"] for key, value in context["machine"].items()], 2)
    chunks = re.split(r"<!-- section: ([\w-]+) -->\n", PAGE.read_text(encoding="utf-8"))
    sections = zip(chunks[1::2], chunks[2::2], strict=True)
    kept = [chunks[0], *(text for name, text in sections if name == "method" or results.get(name))]
    page = "".join(kept).format(**context, **tables(results), machine_table=machine)
    (docs / "benchmarks.md").write_text(page, encoding="utf-8")
