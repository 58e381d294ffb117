"""Sphinx configuration: MyST pages, furo theme, autodoc, and doctests on virtual time."""

from __future__ import annotations

import sys
from pathlib import Path

from stream_deadline import __version__

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
autodoc_type_aliases = {"Seconds": "stream_deadline.Seconds", "Limit": "stream_deadline.Limit"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
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
