"""Pages that other tools write (``benchmarks.md`` by ``nox -s bench``) are optional.

A toctree line written as ``optional:NAME`` becomes ``NAME`` when ``NAME.md`` exists and is
dropped otherwise, so a fresh checkout builds with ``-W`` before the benchmarks have run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinx.application import Sphinx

_OPTIONAL = re.compile(r"^optional:(?P<name>[\w/.-]+)[ \t]*$", re.MULTILINE)


def _resolve(app: Sphinx, docname: str, source: list[str]) -> None:
    del docname  # every page is treated alike
    srcdir = Path(app.srcdir)

    def keep_if_present(match: re.Match[str]) -> str:
        name = match["name"]
        return name if (srcdir / f"{name}.md").exists() else ""

    source[0] = _OPTIONAL.sub(keep_if_present, source[0])


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the extension with Sphinx."""
    app.connect("source-read", _resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
