"""Sphinx configuration: MyST pages, furo theme, autodoc, and doctests on virtual time."""

from __future__ import annotations

import sys
from pathlib import Path

from stream_deadline import __version__, _core

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "stream_deadline"
author = "The stream_deadline developers"
copyright = "the stream_deadline developers"  # noqa: A001 (Sphinx's name)
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "semantics",  # docs/_ext/semantics.py: the numbered semantics, read from the docstring
    "optional_pages",  # docs/_ext/optional_pages.py: pages other tools generate
    "public_names",  # docs/_ext/public_names.py: signatures in public terms; the type aliases
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# -- MyST ---------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
myst_heading_anchors = 3

# -- autodoc ------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# The public aliases as annotations name them (with `from __future__ import annotations`):
# shown by name, linked to their entries.
autodoc_type_aliases = {
    "Seconds": "stream_deadline.Seconds",
    "Limit": "stream_deadline.Limit",
    "Ending": "stream_deadline.Ending",
}
# What the private names in with_deadline's overloads stand for (docs/_ext/public_names.py).
public_names_display = {
    "PerCall": "Callable[..., Seconds]",
    "PerCallSpan": "Callable[..., float | None]",
    "_Decorator": "Callable[[Callable[P, AsyncIterator[T]]], Callable[P, DeadlineStream[T]]]",
    "DEFAULT_CLOSE_TIMEOUT": repr(_core.DEFAULT_CLOSE_TIMEOUT),
}
python_use_unqualified_type_names = True
# Type variables have no entry of their own (`nox -s docs -- --nitpicky` lists what is left).
_TYPE_VARS = ("T", "P", "stream_deadline._core.T", "stream_deadline._stream.T_co")
nitpick_ignore = [("py:class", name) for name in _TYPE_VARS]
python_maximum_signature_line_length = 88  # longer signatures: one parameter a line
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = False  # Attributes: as attribute entries, each a link target
napoleon_use_rtype = False

# -- doctest: every example runs, on virtual time ----------------------------------------
# `asyncio.run` (and anything else that makes a loop with asyncio.new_event_loop(), such as
# anyio.run) gets a looptime loop, and `trio.run` a MockClock(autojump_threshold=0): when every
# task waits, the clock jumps to the next timer. A 45 s timeout takes no real time and the
# times printed are exact. The examples themselves are written as they would be in real code.
doctest_global_setup = """
import _virtual_time
_virtual_time.install()
"""
doctest_global_cleanup = """
import _virtual_time
_virtual_time.uninstall()
"""
doctest_test_doctest_blocks = "default"
trim_doctest_flags = True

# -- HTML ---------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"stream_deadline {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "source_repository": "https://github.com/stream-deadline/stream-deadline/",
    "source_branch": "main",
    "source_directory": "docs/",
}
pygments_style = "friendly"
pygments_dark_style = "monokai"
