"""references.bib, the one bibliography: it parses, its keys are sorted and unique, and every
{cite} in the book names one of them; every {ref} names a section label. The strict book build
fails on a missing key or label too, but only after minutes, and a BibTeX syntax error there reads
as a crash of sphinxcontrib-bibtex."""

from __future__ import annotations

import re
from pathlib import Path

import pybtex.database

ROOT = Path(__file__).resolve().parent.parent
BIB = ROOT / "references.bib"
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]*)`")
REF = re.compile(r"\{ref\}`(?:[^`<]*<([^`>]+)>|([^`<]+))`")
LABEL = re.compile(r'^\s*"?\(([\w-]+)\)=', re.M)


def pages() -> list[Path]:
    return sorted([*ROOT.glob("chapters/*.ipynb"), *ROOT.glob("appendix/*.md"), *ROOT.glob("exercises/*.md"),
                   ROOT / "intro.md"])


def cited_keys(text: str) -> set[str]:
    return {key.strip() for keys in CITE.findall(text) for key in keys.split(",")}


def test_the_bibliography_parses_with_sorted_unique_keys():
    text = BIB.read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\{([^,]+),", text, re.M)
    assert len(keys) == len(set(keys)), f"keys used twice: {sorted(k for k in set(keys) if keys.count(k) > 1)}"
    assert keys == sorted(keys), "keep references.bib sorted by key"
    parsed = pybtex.database.parse_file(BIB)  # raises on a missing brace, naming the line
    assert set(parsed.entries) == set(keys)


def test_every_citation_names_an_entry():
    keys = set(pybtex.database.parse_file(BIB).entries)
    missing = {f"{page.relative_to(ROOT)}: {key}" for page in pages()
               for key in cited_keys(page.read_text(encoding="utf-8")) - keys}
    assert not missing, f"cited but not in references.bib: {sorted(missing)}"


def test_the_citation_scan_reads_every_form():
    assert cited_keys("{cite:t}`a2020x` and {cite:p}`b2021y, c2022z` {cite}`d`") == {"a2020x", "b2021y", "c2022z", "d"}


def test_every_cross_reference_names_a_label():
    """A {ref} to a section label that a chapter's rewrite dropped fails the strict build after minutes."""
    texts = {page: page.read_text(encoding="utf-8") for page in pages()}
    labels = {label for text in texts.values() for label in LABEL.findall(text)}
    missing = {f"{page.relative_to(ROOT)}: {a or b}" for page, text in texts.items()
               for a, b in REF.findall(text) if (a or b).strip() not in labels}
    assert not missing, f"{{ref}} to a label no page defines (add `(label)=` above its section): {sorted(missing)}"
    assert REF.findall("{ref}`x-y` and {ref}`the text <a-b>`") == [("", "x-y"), ("a-b", "")]
