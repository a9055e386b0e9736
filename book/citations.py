"""Author-year citations in round brackets, as the chapters' prose writes them.

sphinxcontrib-bibtex's ``author_year`` referencing style puts citations in square brackets,
"Mikolov et al. [2013]"; this local extension registers the same style with round ones, under the
name ``author_year_round`` that ``_config.yml`` selects (``bibtex_reference_style``):
``{cite:p}`` gives "(Gage, 1994)", ``{cite:t}`` "Mikolov et al. (2013)", ``{cite:alp}``
"Gage, 1994" (for inside a parenthesis), and several keys are joined by "; ".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sphinxcontrib.bibtex.plugin
from sphinx.application import Sphinx
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")", sep="; ")


@dataclasses.dataclass
class RoundAuthorYearStyle(AuthorYearReferenceStyle):
    """sphinxcontrib-bibtex's ``author_year`` style with ( ) instead of [ ]."""

    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_textual: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_author: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_label: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_year: BracketStyle = dataclasses.field(default_factory=_round)


sphinxcontrib.bibtex.plugin.register_plugin(
    "sphinxcontrib.bibtex.style.referencing", "author_year_round", RoundAuthorYearStyle
)


def setup(app: Sphinx) -> dict[str, Any]:
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
