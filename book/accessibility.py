"""The course website for every reader, including those with a screen reader or a keyboard only.

A local Sphinx extension, loaded by ``_config.yml`` (``sphinx: local_extensions``). It fixes what
axe-core (the engine of the browsers' accessibility audits; ``tests/test_site.py`` runs its WCAG 2
level A and AA rules over every page) finds in the HTML that the theme, docutils and the Jupyter
widgets manager write:

1. ``course-a11y.js`` on every page names what has no name or a wrong one: the handles of the
   widgets' sliders (by the widget's description), the search button (by its visible text) and the
   colour mode button (by the mode it shows).
2. ``course-a11y.css`` on every page gives the titles of a widget Tab's hidden tabs enough contrast.
3. A bibliography entry is a list item (``role="listitem"``), not ``role="doc-biblioentry"``,
   which docutils writes but DPUB-ARIA 1.1 deprecated: screen readers need not know it, and inside
   docutils' ``role="list"`` wrapper an entry that is no list item breaks the list.
4. The ``<summary>`` of a code cell that a chapter hides (myst-nb's ``hide-input``) is named by what
   it shows, "Show code cell source", not by myst-nb's ``aria-label="Toggle hidden content"``, which
   a reader who sees the words and says them to voice control would not find (WCAG 2.5.3).
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

STATIC_DIR = Path(__file__).parent / "static"


class CitationListItemMixin:
    """Write each citation (a bibliography entry) with ``role="listitem"``: docutils' HTML writer
    wraps consecutive citations in ``<div role="list">`` and marks each ``role="doc-biblioentry"``."""

    def visit_citation(self, node) -> None:
        super().visit_citation(node)  # type: ignore[misc]
        self.body[-1] = self.body[-1].replace('role="doc-biblioentry"', 'role="listitem"')  # type: ignore[attr-defined]


def configure(app: Sphinx, config: Any) -> None:
    """``config-inited``: serve the static files and add them to every page."""
    if str(STATIC_DIR) not in map(str, config.html_static_path):
        config.html_static_path = [*config.html_static_path, str(STATIC_DIR)]
    app.add_js_file("course-a11y.js")
    app.add_css_file("course-a11y.css")


def add_translator_mixin(app: Sphinx) -> None:
    """``builder-inited``: put the mixin in front of the HTML translator the builder will use (after
    the theme has put its own there, as pydata-sphinx-theme does)."""
    if app.builder.format != "html":
        return
    translators = dict(app.registry.translators)
    if not translators:
        translators = {app.builder.name: app.builder.default_translator_class}
    for name, translator in translators.items():
        if issubclass(translator, CitationListItemMixin):
            continue
        mixed = types.new_class(translator.__name__, (CitationListItemMixin, translator), {})
        app.set_translator(name, mixed, override=True)


#: What myst-nb writes as a hidden code cell's summary, and what this extension writes instead.
HIDDEN_CELL_SUMMARY = ('<summary aria-label="Toggle hidden content">\n', "<summary>\n")


def name_hidden_cells_by_their_prompt(app: Sphinx) -> None:
    """``builder-inited``: wrap myst-nb's HTML visitor of a hidden cell (every extension has registered
    its nodes by then) so that its ``<summary>`` takes its name from its visible text."""
    handlers = app.registry.translation_handlers.get("html", {})
    if "HideCodeCellNode" not in handlers:
        return
    from myst_nb.sphinx_ import HideCodeCellNode

    visit, depart = handlers["HideCodeCellNode"]

    def visit_named_by_prompt(self, node) -> None:
        start = len(self.body)
        visit(self, node)
        self.body[start:] = [part.replace(*HIDDEN_CELL_SUMMARY) for part in self.body[start:]]

    app.add_node(HideCodeCellNode, override=True, html=(visit_named_by_prompt, depart))


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", configure)
    app.connect("builder-inited", add_translator_mixin, priority=900)
    app.connect("builder-inited", name_hidden_cells_by_their_prompt, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
