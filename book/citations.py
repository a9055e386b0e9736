"""Author-year citations in round brackets, as the chapters' prose writes them.

sphinxcontrib-bibtex's ``author_year`` referencing style puts citations in square brackets,
"Mikolov et al. [2013]"; this local extension registers the same style with round ones, under the
name ``author_year_round`` that ``_config.yml`` selects (``bibtex_reference_style``):
``{cite:p}`` gives "(Gage, 1994)", ``{cite:t}`` "Mikolov et al. (2013)", ``{cite:alp}``
"Gage, 1994" (for inside a parenthesis), and several keys are joined by "; ".

The bibliography's own labels follow suit: the formatting style ``author_year_round`` (the
``:style:`` of appendix/bibliography.md's ``{bibliography}``) is pybtex's ``plain`` (sorted by
author, year and title) with the label a reader saw in the text, "Vaswani et al., 2017", in place
of alpha's "VSP+17".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pybtex.plugin
import sphinxcontrib.bibtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
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


def _surname(person) -> str:
    """"von Werra", "Řehůřek", "OpenAI": the name as the in-text citation prints it."""
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def _author_year(entry) -> str:
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in persons]
    if not names:
        who = entry.fields.get("title", entry.key)
    elif len(names) >= 3 or names[-1] == "others":
        who = f"{names[0]} et al."
    else:
        who = " and ".join(names)
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels as the chapters cite: "Gage, 1994", "Kudo and Richardson, 2018", "Vaswani et al.,
    2017" (three or more authors, or a list that ends in "and others"). Two works that would share
    a label get "a" and "b" in sorted order (sphinxcontrib-bibtex warns on a duplicate label); the
    in-text citation of either stays "Mikolov et al., 2013" and links to its own entry."""

    def format_labels(self, sorted_entries):
        labels = [_author_year(entry) for entry in sorted_entries]
        seen: dict[str, int] = {}
        for label in labels:
            if labels.count(label) == 1:
                yield label
            else:
                seen[label] = seen.get(label, 0) + 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]


class AuthorYearListStyle(PlainStyle):
    """pybtex's plain style (sorted by author, year, title) with author-year labels."""

    default_label_style = AuthorYearLabelStyle


pybtex.plugin.register_plugin("pybtex.style.labels", "author_year_round", AuthorYearLabelStyle)
pybtex.plugin.register_plugin("pybtex.style.formatting", "author_year_round", AuthorYearListStyle)


def setup(app: Sphinx) -> dict[str, Any]:
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
