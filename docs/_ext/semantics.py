"""The ``stream-deadline-semantics`` directive: the numbered semantics, read from the docstring.

The list in :func:`stream_deadline.with_deadline`'s docstring is the single source of truth;
this directive renders exactly that list (parsed as reStructuredText, so its roles resolve),
with an anchor ``semantics-N`` on item N for other pages to link to.
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

import stream_deadline

if TYPE_CHECKING:
    from sphinx.application import Sphinx

_START = "Semantics"
_END = "Raises:"


def semantics_text() -> list[str]:
    """The lines of the numbered list in ``with_deadline.__doc__``, dedented."""
    doc = inspect.getdoc(stream_deadline.with_deadline) or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(_START))
        end = next(i for i, line in enumerate(lines) if i > start and line.startswith(_END))
    except StopIteration:
        msg = "with_deadline's docstring has no 'Semantics ... Raises:' section"
        raise RuntimeError(msg) from None
    body = lines[start + 1 : end]
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    if not body or not re.match(r"\d+\. ", body[0]):
        msg = "the Semantics section of with_deadline's docstring must be a numbered list"
        raise RuntimeError(msg)
    return body


class SemanticsDirective(SphinxDirective):
    """Render the numbered semantics of ``with_deadline``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        """Parse the list and anchor each item."""
        container = nodes.container(classes=["stream-deadline-semantics"])
        source = inspect.getsourcefile(stream_deadline.with_deadline) or "with_deadline"
        context = self.env.ref_context
        saved = context.get("py:module")
        context["py:module"] = "stream_deadline"  # the docstring's roles are relative to it
        try:
            lines = StringList(semantics_text(), source=source)
            self.state.nested_parse(lines, self.content_offset, container)
        finally:
            if saved is None:
                context.pop("py:module", None)
            else:
                context["py:module"] = saved
        for number, item in enumerate(container.findall(nodes.list_item), start=1):
            item["ids"].append(f"semantics-{number}")
        return [container]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the extension with Sphinx."""
    app.add_directive("stream-deadline-semantics", SemanticsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
