"""Every check of the project, as nox sessions: ``nox -l`` lists them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2024.10"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint", "typecheck"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def groups(*names: str) -> list[str]:
    return [req for name in names for req in nox.project.dependency_groups(PYPROJECT, name)]


@nox.session
def tests(session: nox.Session) -> None:
    """Run every test (unit and integration) against the installed package."""
    session.install(".", *groups("tests", "integration"))
    session.run("pytest", *session.posargs)


# Under trio.run at the lowest trio that the `trio` extra allows: a limit passes on the mock clock.
TRIO_SMOKE = """
import trio, trio.testing
from stream_deadline import StreamTimeoutError, with_deadline

async def source():
    yield 1
    await trio.sleep(10)
    yield 2

async def main():
    items = []
    try:
        async for item in with_deadline(source(), 5):
            items.append(item)
    except StreamTimeoutError:
        return items, trio.current_time()

got = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
assert got == ([1], 5.0), got
print("stream_deadline works under trio", trio.__version__)
"""


@nox.session(venv_backend="uv", reuse_venv=False)
def tests_lowest(session: nox.Session) -> None:
    """Every test at the lowest versions pyproject.toml allows (uv --resolution lowest-direct).

    First the library alone with its `trio` extra at its lower bound, under trio.run; then the
    test groups at theirs (which raise trio to what anyio needs) and pytest. A lower bound that
    is too low fails here. Integration tests run too: they catch a uvicorn that changes the
    event loop policy of the unit tests that follow.
    """
    lowest = ("--resolution", "lowest-direct")
    session.install(*lowest, ".[trio]")
    session.run("python", "-c", TRIO_SMOKE)
    session.install(*lowest, ".[trio]", *groups("tests", "integration"))
    versions = (
        "import importlib.metadata as m; print(*sorted(f'{d.name}=={d.version}' for d in m.distributions()))"
    )
    session.run("python", "-c", versions)  # the versions tested, for the log
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint and format check."""
    session.install(*groups("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict and pyright strict on src/ and the API checks in tests/typing/."""
    session.install("-e", ".", *groups("typing"))
    session.run("mypy")
    session.run("pyright")


@nox.session
def demo(session: nox.Session) -> None:
    """The incident, replayed offline: a babbling, a stalled and a queued server, naive vs
    with_deadline."""
    session.install(".", *groups("demo"))
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark suite; writes docs/benchmarks.md and its charts."""
    session.install(".", *groups("bench"))
    session.run("python", "benchmarks/run.py", *session.posargs)


# --- docs and build: owned by the documentation work (issue 5) ---------------------------


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML docs with warnings as errors, then run every example in them (doctest).

    The examples that wait run on virtual time (docs/_ext/_virtual_time.py), so this takes
    seconds. Open docs/_build/html/index.html to read the result.
    """
    session.install("-e", ".", *groups("docs"))  # autodoc reads the source as it is now
    build_dir = Path("docs", "_build")
    common = [
        "-W",
        "--keep-going",
        "-n" if "--nitpicky" in session.posargs else "-q",
        "-d",
        str(build_dir / "doctrees"),
    ]
    session.run("sphinx-build", *common, "-E", "-a", "-b", "html", "docs", str(build_dir / "html"))
    session.run("sphinx-build", *common, "-b", "doctest", "docs", str(build_dir / "doctest"))


@nox.session
def build(session: nox.Session) -> None:
    """Build sdist and wheel, check their metadata, then test the wheel as a user installs it.

    The wheel goes into a fresh virtualenv with only the test dependencies; the unit tests
    run from a copy of tests/ in a temporary directory, so ``import stream_deadline`` can only
    find the installed wheel, never src/. Finally pyright checks that the public API of the
    installed package is fully typed.
    """
    session.install(*groups("build"))
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist))
    artifacts = sorted(str(path) for path in dist.iterdir())
    session.run("twine", "check", "--strict", *artifacts)
    (wheel,) = dist.glob("*.whl")

    venv = tmp / "wheel-venv"
    shutil.rmtree(venv, ignore_errors=True)
    session.run("python", "-m", "venv", str(venv))
    python = str(venv / ("Scripts" if sys.platform == "win32" else "bin") / "python")
    requirements = [str(wheel), *groups("tests")]
    if shutil.which("uv"):
        session.run("uv", "pip", "install", "--python", python, *requirements, external=True)
    else:
        session.run(python, "-m", "pip", "install", "--quiet", *requirements, external=True)

    check = tmp / "check"
    shutil.rmtree(check, ignore_errors=True)
    check.mkdir()
    # the unit tests only: integration tests need the servers in examples/ and real clocks
    shutil.copytree("tests", check / "tests", ignore=shutil.ignore_patterns("integration", "__pycache__"))
    shutil.copy("pyproject.toml", check / "pyproject.toml")  # pytest's settings; no src/ here
    with session.chdir(check):
        session.run(
            python,
            "-c",
            "import pathlib, stream_deadline as m; p = pathlib.Path(m.__file__).resolve();"
            " assert 'site-packages' in p.parts, p; print('testing the wheel at', p.parent)",
            external=True,
        )
        session.run(
            python,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(check),
            "-m",
            "not integration",
            "tests",
            *session.posargs,
            external=True,
        )
    # pyright's --verifytypes ignores --pythonpath and reads the first `python` on PATH, which
    # session.run() always makes the session's own: run it with the wheel's venv first instead.
    pyright = [str(Path(session.bin, "pyright")), "--verifytypes", "stream_deadline", "--ignoreexternal"]
    session.log(" ".join(pyright[1:]) + "  (on the wheel's venv)")
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(venv),
        "PATH": os.pathsep.join([str(Path(python).parent), os.environ["PATH"]]),
    }
    if subprocess.run(pyright, env=env, cwd=check, check=False).returncode:  # noqa: S603 (our own tool)
        session.error("the public API of the installed wheel is not fully typed (see pyright above)")


# --- soak: owned by the reliability work (issue 6) ------------------------------------------


@nox.session
def soak(session: nox.Session) -> None:
    """The long reliability runs: 10,000 races per backend, 100,000 streams per ending,
    10,000 concurrent streams, 1,000,000 items through one stream, 10,000 generated schedules
    per backend against the reference model (STREAM_DEADLINE_LONG=1)."""
    session.install(".", *groups("tests"))
    session.run(
        "pytest",
        "tests/test_adversarial.py",
        "tests/test_races.py",
        "tests/test_stateful.py",
        "tests/test_model.py",
        "tests/test_leaks_load.py",
        "tests/test_bad_input.py",
        *session.posargs,
        env={"STREAM_DEADLINE_LONG": "1"},
    )
