"""The reference in public terms: no private name in a signature, every alias as its type.

- In every signature of an object of ``stream_deadline``, a name listed in
  ``public_names_display`` (conf.py) is shown as what it stands for: a private helper type
  of ``with_deadline``'s overloads spelled out (``_Decorator``), a module constant as its value
  (``DEFAULT_CLOSE_TIMEOUT``). Any other name that starts with ``_`` left in such a signature
  is a warning, so the build (``-W``) fails until it is listed.
- The ``public-alias`` directive documents a type alias of the current module as
  ``Name = <its definition, as written>``, with the docstring written under the definition.
  (autodoc shows the docstring of the alias's runtime type instead, ``types.UnionType``'s,
  because the alias is defined in a private module and only re-exported.)
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.domains.python._annotations import _parse_annotation
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

if TYPE_CHECKING:
    from sphinx.application import Sphinx

logger = logging.getLogger(__name__)

_PACKAGE = "stream_deadline"
_PRIVATE = re.compile(r"(?:^|\.)_(?!_)\w*$")  # `_Name` or `module._Name`, not `__version__`


def _display(app: Sphinx, doctree: nodes.document) -> None:
    """Replace the listed names in the package's signatures; warn about other private ones."""
    display: dict[str, str] = app.config.public_names_display
    env = app.env
    for sig in doctree.findall(addnodes.desc_signature):
        if not str(sig.get("module", "")).startswith(_PACKAGE):
            continue
        where = f"{sig.get('module')}.{sig.get('fullname')}"
        for default in list(sig.findall(nodes.inline)):
            text = default.astext()
            if "default_value" in default["classes"] and text in display:
                default.replace(default[0], nodes.Text(display[text]))
            elif "default_value" in default["classes"] and _PRIVATE.search(text):
                logger.warning("private default %r in the signature of %s", text, where, location=sig)
        for xref in list(sig.findall(addnodes.pending_xref)):
            target = xref["reftarget"]
            name = target.rpartition(".")[2]
            if name in display:
                saved = dict(env.ref_context)
                env.ref_context["py:module"] = xref.get("py:module")
                env.ref_context["py:class"] = xref.get("py:class")
                try:
                    spelled = _parse_annotation(display[name], env)
                finally:
                    env.ref_context.clear()
                    env.ref_context.update(saved)
                xref.replace_self(spelled)
            elif _PRIVATE.search(target):
                logger.warning("private name %r in the signature of %s", target, where, location=sig)


def _definition(module: str, name: str) -> tuple[str, str]:
    """The source text of ``name = ...`` where ``module`` gets ``name`` from, and its docstring."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"cannot find the source of {module}")
    source = Path(spec.origin).read_text(encoding="utf-8")
    body = ast.parse(source).body
    for node in body:  # re-exported: follow `from .x import name` to where it is defined
        if isinstance(node, ast.ImportFrom) and any(alias.name == name for alias in node.names):
            package = module if spec.submodule_search_locations is not None else module.rpartition(".")[0]
            origin = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            return _definition(origin, name)
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign):
            targets, value_node = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value_node = node.targets, node.value
        else:
            continue
        if value_node is not None and [t.id for t in targets if isinstance(t, ast.Name)] == [name]:
            value = ast.get_source_segment(source, value_node) or ""
            after = body[i + 1] if i + 1 < len(body) else None
            if not (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                raise ValueError(f"{module}.{name} has no docstring under its definition")
            return " ".join(value.split()), inspect.cleandoc(after.value.value)
    raise ValueError(f"{name} is not defined in {module}")


class PublicAlias(SphinxDirective):
    """``.. public-alias:: Seconds``: the alias of the current module, as defined, documented."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """Write the ``py:data`` entry and parse it."""
        name = self.arguments[0]
        module = self.env.ref_context.get("py:module")
        if not module:
            raise self.error("public-alias needs a current module (.. module:: or .. currentmodule::)")
        importlib.import_module(module)
        try:
            value, doc = _definition(module, name)
        except ValueError as exc:
            raise self.error(str(exc)) from None
        lines = [f".. py:data:: {name}", f"   :value: {value}", ""]
        lines += [f"   {line}" if line else "" for line in doc.splitlines()]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=f"{module}.{name}"), self.content_offset, container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the setting, the transform and the directive."""
    app.add_config_value("public_names_display", {}, "env", types=[dict])
    app.connect("doctree-read", _display)
    app.add_directive("public-alias", PublicAlias)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
