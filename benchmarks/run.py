"""Run the benchmarks, print each target with pass or FAIL, write ``docs/benchmarks.md``.

    python benchmarks/run.py                    # everything (~8 min on 2 cores); writes docs/
    python benchmarks/run.py --quick            # fewer items and rounds (~1 min), to a temp directory
    python benchmarks/run.py --section storm    # some sections, comma-separated, to a temp directory

Each section runs in a fresh interpreter, so that none measures what an earlier one left on
the heap; its rows come back as JSON on the last line of its standard output.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from common import BACKENDS, Row, find
from streams import FLOOR

SECTIONS = ("per-item", "workloads", "precision", "storm", "memory")
# fmt: off
SIZES = {                          # full run, --quick
    "items":        (50_000, 10_000),     # per item: items per drain
    "rounds":       (9, 3),               # per item: rounds
    "loop_items":   (20_000, 5_000),      # workloads: items from the loop-yielding source
    "loop_rounds":  (15, 5),
    "chunks":       (5_000, 300),         # workloads: chunks through the LangChain chain
    "chain_rounds": (101, 9),
    "streams":      (1_000, 1_000),       # precision: concurrent streams
    "reps":         (3, 1),               # precision and storm: runs of each cutter
    "storm":        ((10_000, 100_000), (10_000,)),  # storm: concurrent streams
    "memory":       (10_000, 2_000),      # memory: open streams
}
# fmt: on
PACKAGES = ("stream-deadline", "anyio", "trio", "uvloop", "aiostream", "trio-util", "aiter-timeouts")
PACKAGES += ("langchain-core",)
REPO = Path(__file__).resolve().parent.parent
TEMP = Path(tempfile.gettempdir()) / "stream-deadline-bench"
say = functools.partial(print, flush=True)


def run_section(section: str, size: dict[str, Any]) -> list[Row]:
    """Measure one section, here; it imports only what it measures (modules fill the heap)."""
    logging.getLogger("stream_deadline").setLevel(logging.ERROR)  # thousands of cuts are logged
    if section == "per-item":
        from per_item import per_item  # noqa: PLC0415

        return [row for b in BACKENDS for row in per_item(b, size["items"], size["rounds"])]
    if section == "workloads":
        from workloads import chain, loop_source  # noqa: PLC0415

        rows = [r for b in BACKENDS for r in loop_source(b, size["loop_items"], size["loop_rounds"])]
        return rows + chain(size["chunks"], size["chain_rounds"])
    from streams import memory, precision, storm  # noqa: PLC0415

    if section == "precision":
        return [row for b in BACKENDS for row in precision(b, size["streams"], size["reps"])]
    if section == "storm":
        return [
            row for n in size["storm"] for b in ("asyncio", "uvloop") for row in storm(b, n, size["reps"])
        ]
    return [row for b in BACKENDS for row in memory(b, size["memory"])]


def in_child(section: str, quick: bool) -> list[Row] | None:
    """Run one section in a fresh interpreter: its rows, or ``None`` if it failed (its error shows)
    or took over 15 minutes."""
    command = [sys.executable, __file__, "--child", section, *(["--quick"] if quick else [])]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False, timeout=900)  # noqa: S603
    except subprocess.TimeoutExpired:
        return None
    return None if done.returncode else json.loads(done.stdout.splitlines()[-1])


def targets(results: dict[str, list[Row]]) -> list[tuple[str, str, bool]]:
    """Each target the results can be checked against: (what, measured, passed)."""
    out = []
    per_item = results.get("per-item", [])
    for r in per_item:
        config = r["name"].removeprefix("with_deadline: ")
        if config not in ("deadline", "all three limits", "deadline, progress"):
            continue
        if r["backend"] == "trio":
            x = r["ratio"] / find(per_item, backend="trio", name="trio.fail_after per pull")["ratio"]
            out.append((f"per item, trio, {config}: ≤ 0.8× trio.fail_after per pull", f"{x:.2f}×", x <= 0.8))
        else:
            goal = 2.0 if config == "deadline" else 2.5  # (progress=bool: its own cost, ~40 ns, included)
            what = f"per item, {r['backend']}, {config}: ≤ {goal}× a pass-through generator"
            out.append((what, f"{r['ratio']:.2f}×", r["ratio"] <= goal))
    for r in results.get("workloads", []):
        if r["name"] == "with_deadline: deadline" and r["backend"] != "trio":
            same = {"backend": r["backend"], "workload": r["workload"], "name": "pass-through generator"}
            floor = find(results["workloads"], **same)["ratio"]
            goal = 1 if r["workload"].startswith("LangChain") else 3
            what = f"{r['workload']}, {r['backend']}: ≤ {goal} points over a pass-through generator"
            measured = f"{r['ratio'] * 100 - 100:+.1f} % vs {floor * 100 - 100:+.1f} %"
            out.append((what, measured, (r["ratio"] - floor) * 100 <= goal))
    for section in ("precision", "storm"):
        for r in results.get(section, []):
            if r["cutter"] != "with_deadline":
                continue
            floor = find(results[section], backend=r["backend"], n=r["n"], kind=r["kind"], cutter=FLOOR)
            slack = 5 if r["n"] <= 10_000 else 20
            goal = 3 * floor["late"]["p99"] + slack
            what = f"{section}, {r['kind']}, {r['n']:,} streams, {r['backend']}: p99 ≤ 3× floor + {slack} ms"
            measured = f"{r['late']['p99']:.1f} ms (goal {goal:.1f}), {r['cut']:,} cut, first pulls"
            measured += f" over {r['spread']:.2f} s of the {r['deadline']:g} s"
            out.append((what, measured, r["late"]["p99"] <= goal and r["cut"] == r["n"]))
    for r in results.get("memory", []):
        what = f"memory per stream, {r['backend']}, {r['name'].removeprefix('with_deadline: ')}: ≤ 1.5 KiB"
        out.append((what, f"{r['bytes']:,.0f} B", r["bytes"] <= 1.5 * 1024))
    return out


def machine() -> dict[str, str]:
    """What the numbers were measured on, and which commit they measure."""
    ram = _proc("/proc/meminfo", "MemTotal").removesuffix(" kB")
    git = ["git", "-C", str(REPO), "describe", "--always", "--dirty"]
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{_proc('/proc/cpuinfo', 'model name')}, {os.cpu_count()} logical CPUs",
        "memory": f"{int(ram) / 2**20:.1f} GiB" if ram.isdigit() else "unknown",
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "commit": subprocess.run(git, capture_output=True, text=True, check=False).stdout.strip(),  # noqa: S603
    }
    for name in PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "not installed"
    return info


def _proc(path: str, key: str) -> str:
    """The value of ``key`` in a file such as ``/proc/cpuinfo``, or ``"unknown"``."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(key)), "unknown")


def main() -> int:
    """Run the sections asked for, print the targets, write the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer items and rounds: a smoke run")
    parser.add_argument("--section", default=",".join(SECTIONS), help=f"some of {','.join(SECTIONS)}")
    parser.add_argument("--docs", type=Path, help="where to write benchmarks.md and images/")
    parser.add_argument("--child", choices=SECTIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = {key: value[args.quick] for key, value in SIZES.items()}
    if args.child:
        print(json.dumps(run_section(args.child, size)))  # the last line is for the parent
        return 0
    sections = args.section.split(",")
    if not set(sections) <= set(SECTIONS):
        parser.error(f"--section takes some of {','.join(SECTIONS)}")
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    command += f" --section {args.section}" if len(sections) < len(SECTIONS) else ""

    info = machine()
    say(f"{command}\n" + "".join(f"  {key}: {value}\n" for key, value in info.items()))
    started, results, failed = time.perf_counter(), {}, []
    for section in sections:
        t0 = time.perf_counter()
        rows = in_child(section, args.quick)
        say(f"{section}: {'FAILED' if rows is None else 'done'} in {time.perf_counter() - t0:.0f} s")
        results[section] = rows or []
        failed += [section] if rows is None else []
    minutes = (time.perf_counter() - started) / 60

    checked = targets(results)
    say("\nTargets")
    for what, measured, passed in checked:
        say(f"  {'pass' if passed else 'FAIL'}  {what}: {measured}")
    passes = sum(passed for *_, passed in checked)
    say(f"{passes} of {len(checked)} targets pass; sections failed: {', '.join(failed) or 'none'}")

    import report  # noqa: PLC0415 (matplotlib: only the parent draws)

    # Only a complete run replaces the published page.
    docs = args.docs or (REPO / "docs" if command.endswith("run.py") and not failed else TEMP)
    context = {**size, "date": info.pop("date"), "machine": info, "command": command, "minutes": minutes}
    report.write(docs, results, context)
    say(f"wrote {docs / 'benchmarks.md'} and its charts in {minutes:.1f} min")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
