"""Every check of the project, as nox sessions: ``nox -l`` lists them."""

from __future__ import annotations

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


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint and format check."""
    session.install(*groups("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict and pyright strict on src/ and the API checks in tests/typing/."""
    session.install("-e", ".", *groups("typing"))
    session.run("mypy")
    session.run("pyright")


@nox.session
def demo(session: nox.Session) -> None:
    """The incident, replayed offline: a babbling and a stalled server, naive vs with_deadline."""
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
    """Build the documentation with warnings as errors and run every code example in it."""
    session.install(".", *groups("docs"))
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def build(session: nox.Session) -> None:
    """Build sdist and wheel, check their metadata, and test the installed wheel."""
    session.install(*groups("build"))
    session.run("python", "-m", "build", "--outdir", "dist")
    session.run("twine", "check", "--strict", "dist/*")
