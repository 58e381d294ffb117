"""Run the benchmark suite and write ``docs/benchmarks.md`` with its charts.

Usage::

    nox -s bench                  # the full run (under ten minutes), writes docs/
    nox -s bench -- --quick       # a smoke run; writes to a temporary directory
    python benchmarks/run.py --only B1,B3 --docs /tmp/bench

Nothing here belongs to the unit tests.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from b1_per_item import run_b1
from b2_overhead import run_b2_chain, run_b2_loop
from b3_precision import run_b3
from b4_scale import run_b4
from common import ASYNCIO_BACKENDS, BACKENDS, Settings, machine_info
from report import Results, targets, write_charts, write_markdown

REPO = Path(__file__).resolve().parent.parent
ALL = ("B1", "B2", "B3", "B4")


_LOG_TO: list[TextIO] = [sys.stdout]
"""Where progress goes: standard output, or standard error in a section's own interpreter
(whose standard output carries its results back)."""


def _log(message: str) -> None:
    out = _LOG_TO[0]
    out.write(message + "\n")
    out.flush()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer items and repetitions: a smoke run")
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="where to write benchmarks.md and images/ (default: docs/ for a full run,"
        " a temporary directory for --quick)",
    )
    parser.add_argument("--only", default=",".join(ALL), help="a comma-separated subset of B1,B2,B3,B4")
    parser.add_argument("--section", choices=ALL, help=argparse.SUPPRESS)  # (run by main(), below)
    return parser.parse_args(argv)


def _run_section(section: str, settings: Settings) -> list[Any]:
    """Run one of B1-B4 here and return its rows."""
    logging.getLogger("stream_deadline").setLevel(logging.ERROR)  # B3 cuts thousands of streams
    if section == "B1":
        _log("B1 per-item cost (ns/item, x pass-through generator)")
        return [
            row for backend in BACKENDS for row in run_b1(backend, settings.b1_items, settings.b1_reps, _log)
        ]
    if section == "B2":
        _log("B2 overhead on realistic streams")
        rows = [
            row
            for backend in BACKENDS
            for row in run_b2_loop(backend, settings.b2_items, settings.b2_reps, _log)
        ]
        return rows + run_b2_chain("asyncio", settings.b2_chain_chunks, settings.b2_chain_reps, _log)
    if section == "B3":
        _log("B3 precision: lateness past a 1 s deadline")
        return [
            row
            for backend in BACKENDS
            for row in run_b3(backend, settings.b3_streams, settings.b3_reps, settings.b3_stall_bound, _log)
        ]
    _log("B4 scale")
    return [
        run_b4(backend, n, settings.b4_reps, _log) for backend in ASYNCIO_BACKENDS for n in settings.b4_sizes
    ]


def _in_fresh_interpreter(section: str, quick: bool) -> list[Any]:
    """Run one of B1-B4 in a new Python process, as pyperf runs each benchmark: what an earlier
    section left on the heap (or fragmented in it) then slows no later one. Its progress shows
    as it goes; its rows come back pickled on its standard output."""
    command = [sys.executable, __file__, "--section", section, *(["--quick"] if quick else [])]
    done = subprocess.run(command, stdout=subprocess.PIPE, check=True)  # noqa: S603 (our own script)
    rows: list[Any] = pickle.loads(done.stdout)  # noqa: S301 (written by the process just run)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks, print the results, write the report."""
    args = _parse(argv)
    settings = Settings.quick() if args.quick else Settings.full()
    only = {part.strip().upper() for part in args.only.split(",")}
    unknown = only - set(ALL)
    if unknown:
        _log(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        return 2
    docs = args.docs or (
        Path(tempfile.gettempdir()) / "stream-deadline-bench" if args.quick else REPO / "docs"
    )
    if args.section:  # one section, in the interpreter _in_fresh_interpreter() started for it
        _LOG_TO[0] = sys.stderr
        sys.stdout.buffer.write(pickle.dumps(_run_section(args.section, settings)))
        return 0

    info = machine_info()
    _log(f"stream_deadline benchmarks, {settings.name} run")
    for key, value in info.items():
        _log(f"  {key:16} {value}")

    started = time.perf_counter()
    b1, b2, b3, b4 = (
        _in_fresh_interpreter(section, args.quick) if section in only else [] for section in ALL
    )

    command = "nox -s bench" + (" -- --quick" if args.quick else "")
    if only != set(ALL):
        command += (" -- " if not args.quick else " ") + f"--only {','.join(sorted(only))}"
    results = Results(settings, info, command, b1, b2, b3, b4, time.perf_counter() - started)

    _log("Targets")
    for target in targets(results):
        _log(
            f"  {'pass' if target.passed else 'FAIL'}  {target.what}: {target.measured} (goal {target.goal})"
        )
    write_markdown(results, docs / "benchmarks.md")
    write_charts(results, docs)
    _log(f"wrote {docs / 'benchmarks.md'} and its charts in {results.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
