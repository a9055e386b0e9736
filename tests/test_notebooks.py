"""Checks of the committed notebooks themselves, beyond nbval's re-execution.

nbval proves that the committed outputs are what the code prints on this machine. These
tests keep out what would differ on another one: a round-off figure (1e-7 on one CPU,
3e-7 on another, since each runs its own BLAS kernels), which must be printed as a verdict
against a tolerance instead (``lmlib.show.agreement``); and what the website cannot show
whole (lmlib source wider than the page); and what a reader with a screen reader cannot see (a figure
without alt text).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted([*ROOT.glob("chapters/*.ipynb"), *ROOT.glob("exercises/*.ipynb")])
CHAPTERS = sorted(ROOT.glob("chapters/*.ipynb"))

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
# A number after one of these is a bound, not a measurement: "≤ 1e-6", "< 1e-12", "below 1e-12",
# "agree to 1e-6", "tolerance 1e-5".
BOUND = re.compile(r"(?:<=?|≤|within|to|below|under|tolerance|tol=?)\s*$")
SMALLEST_SHOWN = 1e-5
WIDEST_SOURCE = 90
LONGEST_ALT = 250
# What MyST-NB falls back to without an alt: the image's file name (a SHA-256 of the PNG), or a path.
FILE_NAME = re.compile(r"(?i)\.(png|svg|jpe?g|gif|webp)$|^[0-9a-f]{16,}$|^\S*/\S*$")

# Numbers one chapter's prose quotes from another chapter's output: (quoting notebook, pattern of the quote in
# its markdown, source notebook, pattern of the figure in its outputs). A re-run that changes the figure fails
# here until the prose says the new one.
QUOTES = [
    ("chapters/ngram_models.ipynb", r"measured (\d\.\d+) characters per word",
     "chapters/text_as_data.ipynb", r"Chinese +characters +[\d,]+ +(\d\.\d+)"),
]


def outputs(path: Path):
    """(cell number from 1, text) of each text output of each code cell, lmlib source left out."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for number, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "".join(data.get("text/markdown", "")).startswith("```python"):
                continue  # show_source: code, whose constants (eps = 1e-6) are not results
            for text in (out.get("text"), data.get("text/plain")):
                if text:
                    yield number, "".join(text)


def round_off_figures(text: str) -> list[str]:
    """Numbers printed in ``text`` whose size is below SMALLEST_SHOWN but not zero, and not a bound."""
    found = []
    for line in text.splitlines():
        for m in NUMBER.finditer(line):
            value = abs(float(m.group()))
            if 0 < value < SMALLEST_SHOWN and not BOUND.search(line[: m.start()]):
                found.append(line.strip())
                break
    return found


def test_the_scan_finds_round_off_and_passes_verdicts():
    assert round_off_figures("max |difference| = 2.4e-07") == ["max |difference| = 2.4e-07"]
    assert round_off_figures("h 9.7e-17, c 1.1e-16\nok 0.25") == ["h 9.7e-17, c 1.1e-16"]
    assert round_off_figures("tiny 0.0000003") == ["tiny 0.0000003"]
    for fine in ["max |difference| ≤ 1e-6: True", "exact: 0.0e+00", "agree to 1e-12: True", "< 1e-12",
                 "within 1e-12: True", "loss 4.6337, p = 0.00012", "step 1e-3", "x1e-9y", "id 123456"]:
        assert round_off_figures(fine) == [], fine


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_committed_output_prints_round_off(path):
    """A number below 1e-5 in an output is round-off (or a value that depends on it): show a verdict."""
    problems = [f"cell {n}: {line}" for n, text in outputs(path) for line in round_off_figures(text)]
    assert not problems, (f"{path.name} prints figures that differ from CPU to CPU; print a verdict such as "
                          "lmlib.show.agreement(a, b, 1e-6) instead:\n  " + "\n  ".join(problems))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_shown_source_fits_the_page(path):
    """What show_source displays is lmlib's code itself: its lines must fit the website's code block."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for number, cell in enumerate(nb["cells"], start=1):
        assert "{literalinclude}" not in "".join(cell["source"]), \
            f"{path.name} cell {number}: a literalinclude is raw text in JupyterLab; call lmlib.show.show_source"
        for out in cell.get("outputs", []):
            code = "".join(out.get("data", {}).get("text/markdown", ""))
            if code.startswith("```python"):
                wide = [line for line in code.splitlines() if len(line) > WIDEST_SOURCE]
                assert not wide, f"{path.name} cell {number} shows lines over {WIDEST_SOURCE} characters: {wide}"


def markdown(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


@pytest.mark.parametrize("quoting, quote, source, figure", QUOTES, ids=lambda x: str(x)[:40])
def test_prose_quotes_the_output_of_another_chapter(quoting, quote, source, figure):
    quoted = re.findall(quote, markdown(ROOT / quoting))
    printed = [m for _, text in outputs(ROOT / source) for m in re.findall(figure, text)]
    assert quoted and len(printed) == 1, (quoted, printed)
    assert set(quoted) == set(printed), f"{quoting} quotes {quoted}, but {source} prints {printed[0]}"


# In prose a round-off figure is written in LaTeX, "$2 \times 10^{-14}$": a measured mantissa times a small power
# of ten. A bare power ("$\varepsilon = 10^{-8}$", "to within $10^{-12}$") is a constant or a bound.
PROSE_FIGURE = re.compile(r"\d(?:\.\d+)?\s*\\times\s*10\^\{?-(\d+)\}?")
# "agrees to $2 \times 10^{-14}$" reads as a measurement, so prose takes only the strict bounds.
PROSE_BOUND = re.compile(r"(?:<=?|≤|\\le|\\leq|\\lt|within|below|under)\s*$")


def prose_round_off(text: str) -> list[str]:
    """Figures ``m \\times 10^{-k}`` with 10^-k below SMALLEST_SHOWN in ``text``, unless a bound comes before."""
    found = []
    for m in PROSE_FIGURE.finditer(text):
        before = text[max(0, m.start() - 20): m.start()].replace("$", "")
        if 10.0 ** -int(m.group(1)) < SMALLEST_SHOWN and not PROSE_BOUND.search(before):
            found.append(text[max(0, m.start() - 40): m.end()].replace("\n", " "))
    return found


def test_the_prose_scan_finds_quoted_round_off():
    assert prose_round_off(r"agrees to $2 \times 10^{-14}$, float64 rounding") != []
    assert prose_round_off(r"agree within $5 \times 10^{-7}$ and below $2 \times 10^{-6}$") == []
    assert prose_round_off(r"the difference is $1.4 \times 10^{-7}$ here") != []
    assert prose_round_off(r"with $\varepsilon = 10^{-8}$; a rate of $4.7 \times 10^{-4}$") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_prose_quotes_round_off(path):
    """Prose that quotes a round-off figure goes stale on the next CPU, as an output would."""
    problems = prose_round_off(markdown(path))
    assert not problems, f"{path.name} quotes round-off in its prose; state the bound instead: {problems}"


def image_cells(path: Path):
    """(cell number from 1, cell) of each code cell with an image among its outputs."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for number, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] == "code" and any(
            mime.startswith("image/") for out in cell.get("outputs", []) for mime in out.get("data", {})
        ):
            yield number, cell


def test_the_file_name_scan_finds_what_mystnb_writes_without_an_alt():
    for name in ["../_images/5b26668decf585f9db9915163a146715b55f2c87a4d8f76e7f0c99d548ce84ca.png",
                 "5b26668decf585f9db9915163a146715", "figure.PNG", "plot.svg", "figures/rnn_unrolled"]:
        assert FILE_NAME.search(name), name
    for alt in ["Bar chart of the share of unseen n-grams by order: 8.0 % of unigrams, 98.9 % of 5-grams.",
                "Loss against step; it falls to 1/2 of its start."]:
        assert not FILE_NAME.search(alt), alt


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_figure_has_alt_text(path):
    """A figure's alt text is all a screen reader says of it. MyST-NB takes it from the cell's metadata,
    ``{"mystnb": {"image": {"alt": "..."}}}``; without one the website's <img> gets the file name, a hash."""
    problems = []
    for number, cell in image_cells(path):
        alt = str(cell["metadata"].get("mystnb", {}).get("image", {}).get("alt", "")).strip()
        if not alt:
            problems.append(f"cell {number}: no alt text")
        elif FILE_NAME.search(alt):
            problems.append(f"cell {number}: the alt text is a file name, {alt!r}")
        elif len(alt) > LONGEST_ALT:
            problems.append(f"cell {number}: the alt text has {len(alt)} characters (at most {LONGEST_ALT})")
    assert not problems, (
        f"{path.name}: give each figure an alt text in its cell's metadata, "
        '{"mystnb": {"image": {"alt": "what is plotted against what, and what it shows"}}}:\n  '
        + "\n  ".join(problems))
