"""The course as one PDF (``make pdf``, book/pdf.py), read back with poppler's tools.

The PDF is read with Debian's ``poppler-utils`` (``pdftotext``, ``pdfinfo``, ``pdftohtml -xml``,
``pdfimages``), an independent PDF reader, and compared with the book's sources: every page of
``_toc.yml`` is in it under the title its source gives, no formula is left as TeX, there is an image
for every figure the notebooks saved, the saved widgets are drawn, not printed as their text repr, and
the contents list links every chapter to the page where it starts, with that page's number; no line of
code runs off the page's edge and no widget's tab title is cut short.

Run after ``make pdf``::

    .venv/bin/pytest tests/test_pdf.py

Without the built PDF the tests that read it are skipped, loudly; with ``COURSE_REQUIRE_PDF=1`` (how
``make test`` runs this file after ``make pdf``) that is a failure. The tests of book/pdf.py's own
parts (the Sphinx extension's hooks, its PDF outline reader) need no built PDF.
"""

from __future__ import annotations

import collections
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
import pdf as book_pdf  # noqa: E402 - book/ is a folder of Sphinx extensions, not a package

PDF = Path(os.environ.get("COURSE_PDF", ROOT / "_build" / book_pdf.PDF_NAME)).resolve()
REQUIRED = os.environ.get("COURSE_REQUIRE_PDF", "").strip().lower() in {"1", "true", "yes"}
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
POPPLER = ("pdftotext", "pdfinfo", "pdftohtml", "pdfimages")

#: TeX that MathJax turns into math: none of it may be left in the PDF's text, except where the
#: book shows it as code (counted in the sources' code cells, code blocks and outputs).
RAW_TEX = [r"\(", r"\)", r"\[", r"\]", "$$", r"\frac", r"\sum", r"\log", r"\mathrm", r"\text{", r"\begin{",
           "^{", "_{"]


# ---------------------------------------------------------------------------------------
# The sources: what the PDF must hold
# ---------------------------------------------------------------------------------------
def _toc_docnames() -> list[str]:
    """Every document of ``_toc.yml`` (root first), read here without book/pdf.py's reader."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if "file" in node:
                names.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key))

    walk(toc)
    return [re.sub(r"\.(md|ipynb)$", "", n) for n in dict.fromkeys(names)]


def _source(docname: str) -> Path:
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{docname}{suffix}").is_file():
            return ROOT / f"{docname}{suffix}"
    raise FileNotFoundError(f"_toc.yml names {docname}, which has no .ipynb or .md source")


def _markdown_and_code(docname: str) -> tuple[str, str]:
    """A document's prose (markdown, code blocks taken out) and its code (cells, code blocks, text outputs)."""
    path = _source(docname)
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        markdown = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        for cell in cells:
            for out in cell.get("outputs", []):
                code.append("".join(out.get("text", "")))
                for mime in ("text/plain", "text/html", "text/markdown"):
                    code.append("".join(out.get("data", {}).get(mime, "")))
    else:
        markdown, code = path.read_text(encoding="utf-8"), []
    fences = re.findall(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1", markdown, re.M | re.S)
    code += [body for _, body in fences]
    code += re.findall(r"`([^`\n]+)`", markdown)
    return markdown, "\n".join(code)


#: Tags of a code cell whose input the book does not show (myst-nb).
HIDDEN_INPUT = {"hide-input", "remove-input", "remove-cell"}


def shown_code_lines(docname: str) -> list[str]:
    """The lines of code the book shows in a document: its code cells' (not those whose input is hidden) and
    its markdown's fenced code blocks (not directives such as ```{note})."""
    path = _source(docname)
    markdown, code = path.read_text(encoding="utf-8"), []
    if path.suffix == ".ipynb":
        cells = json.loads(markdown)["cells"]
        markdown = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        code = ["".join(c["source"]) for c in cells
                if c["cell_type"] == "code" and not HIDDEN_INPUT & set(c["metadata"].get("tags", []))]
    code += [body for _fence, info, body in re.findall(r"^(`{3,}|~{3,})([^\n]*)\n(.*?)^\1", markdown, re.M | re.S)
             if not info.strip().startswith("{")]
    return [line for block in code for line in block.splitlines() if line.strip()]


def title(docname: str) -> str:
    """The document's title as its source writes it (its first ``#`` heading), markup taken out."""
    markdown, _ = _markdown_and_code(docname)
    m = re.search(r"^# (.+)$", markdown, re.M)
    assert m, f"{docname} has no '# title' line"
    return re.sub(r"[*_`]", "", m[1]).strip()


def _norm(text: str) -> str:
    """Text compared: without spaces (an outline entry loses the one where its heading wrapped, a line of
    text the one where it wrapped), case folded, curly apostrophes straight."""
    return re.sub(r"\s+", "", text).replace("\u2019", "'").casefold()


# ---------------------------------------------------------------------------------------
# The built PDF, read by poppler
# ---------------------------------------------------------------------------------------
def _poppler(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=300).stdout


@pytest.fixture(scope="module")
def course_pdf() -> Path:
    if not PDF.is_file():
        message = f"THE COURSE'S PDF IS NOT BUILT ({PDF}): run `make pdf`; its tests were SKIPPED"
        if REQUIRED:
            pytest.fail(f"{message} (COURSE_REQUIRE_PDF=1)", pytrace=False)
        pytest.skip(message)
    missing = [tool for tool in POPPLER if shutil.which(tool) is None]
    if missing:
        message = f"no {', '.join(missing)}: install Debian's poppler-utils to test the course's PDF"
        if REQUIRED or IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(f"TESTS OF THE COURSE'S PDF SKIPPED: {message}")
    return PDF


@pytest.fixture(scope="module")
def pages(course_pdf) -> list[str]:
    """The PDF's text, page by page (``pdftotext``; pages are split at form feeds)."""
    text = _poppler("pdftotext", "-enc", "UTF-8", str(course_pdf), "-")
    return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")


@pytest.fixture(scope="module")
def xml(course_pdf) -> str:
    """``pdftohtml -xml``: the text with its links, and the outline."""
    return _poppler("pdftohtml", "-xml", "-i", "-q", "-stdout", str(course_pdf))


@pytest.fixture(scope="module")
def lines_on_the_page(course_pdf) -> list[str]:
    """The PDF's text as the lines a reader sees: ``pdftotext -bbox``'s words grouped by baseline, left to right,
    without the running header and the page number in the margins. (``pdftotext`` itself reads the comment at
    the end of a wrapped code line as another column and puts it lines later.)"""
    words = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">(.*?)</word>')
    margin = book_pdf.HEADER_FOOTER_MM / 25.4 * 72  # in points
    lines: list[str] = []
    for height, page in re.findall(r'<page width="[\d.]+" height="([\d.]+)">(.*?)</page>',
                                   _poppler("pdftotext", "-bbox", "-enc", "UTF-8", str(course_pdf), "-"), re.S):
        bottom = float(height) - margin
        placed = sorted((float(y0) + float(y1), float(x), html.unescape(text))
                        for x, y0, y1, text in words.findall(page) if margin < float(y0) < float(y1) < bottom)
        rows: list[tuple[float, list[tuple[float, str]]]] = []
        for middle, x, text in placed:  # middle is twice the word's vertical centre: 4 is 2 points
            if rows and middle - rows[-1][0] < 4:
                rows[-1][1].append((x, text))
            else:
                rows.append((middle, [(x, text)]))
        lines += [" ".join(text for _, text in sorted(row)) for _, row in rows]
    return lines


def _outline(xml: str) -> list[tuple[str, int]]:
    """The outline (bookmarks) as poppler reads it: (title, page), in order, every depth."""
    items = re.findall(r'<item page="(\d+)">(.*?)</item>', xml)
    return [(html.unescape(re.sub(r"<[^>]+>", "", t)), int(p)) for p, t in items]


# ---------------------------------------------------------------------------------------
# The tests of the built PDF
# ---------------------------------------------------------------------------------------
def test_page_count_is_sane(course_pdf, pages):
    info = _poppler("pdfinfo", str(course_pdf))
    count = int(re.search(r"^Pages:\s+(\d+)", info, re.M)[1])
    assert count == len(pages) == book_pdf.page_count(course_pdf)
    docs = len(_toc_docnames())
    # each document starts on a new page; the whole book is some hundreds of pages, not thousands
    assert 3 * docs <= count <= 1500, f"{count} pages for {docs} documents"
    assert re.search(r"^Page size:.*\(A4\)", info, re.M), info
    assert re.search(r"^Tagged:\s+yes", info, re.M), "the PDF is not tagged (screen readers need the tags)"


def test_every_title_of_the_toc_is_in_the_text(pages):
    text = _norm(" ".join(pages))
    missing = [f"{d}: {title(d)!r}" for d in _toc_docnames() if _norm(title(d)) not in text]
    assert not missing, "titles not found in the PDF's text:\n  " + "\n  ".join(missing)


def test_no_math_left_as_tex(pages):
    """MathJax typeset every formula: the TeX that marks math is not in the text, except as often as the
    book shows it as code (code cells, their text outputs, code blocks and inline code)."""
    text = "".join(pages)
    code = "\n".join(_markdown_and_code(d)[1] for d in _toc_docnames())
    left = {tex: (text.count(tex), code.count(tex)) for tex in RAW_TEX if text.count(tex) > code.count(tex)}
    where = []
    for tex in left:
        for i, page in enumerate(pages):
            for line in page.splitlines():
                if tex in line:
                    where.append(f"page {i + 1}: {line.strip()[:100]!r}")
    assert not left, (
        "TeX in the PDF's text (times in the text, times in the sources' code): "
        f"{left}\n  " + "\n  ".join(where[:20])
    )
    # and some math was typeset: the notation appendix's formulas are there, as text
    assert "∑" in text or "Σ" in text, "no summation sign anywhere: was any formula typeset?"


def test_outline_has_every_document_in_order(xml, pages):
    """The PDF's bookmarks (Chromium makes them from the headings): every document's title, in the
    order of _toc.yml, each on a page whose text has that title."""
    outline = _outline(xml)
    assert outline, "the PDF has no outline (bookmarks)"
    i, found = 0, []
    for docname in _toc_docnames():
        want = _norm(title(docname))
        j = next((j for j in range(i, len(outline)) if _norm(outline[j][0]) == want), None)
        assert j is not None, f"{docname}: no bookmark {title(docname)!r} after {outline[i - 1] if i else 'the start'}"
        page = outline[j][1]
        assert want in _norm(pages[page - 1]), f"bookmark {title(docname)!r} points to page {page}, not there"
        found.append(page)
        i = j + 1
    assert found == sorted(found) and len(set(found)) == len(found), f"documents' first pages: {found}"


def test_contents_links_and_page_numbers(xml, pages):
    """Page 1 is the contents: a line per document with its title, a link to its first page and that
    page's number, as the outline (read by poppler, not by book/pdf.py) says."""
    assert "contents" in _norm(pages[0])[:100], f"page 1 (under the running header): {pages[0][:200]!r}"
    outline = {_norm(t): p for t, p in reversed(_outline(xml))}  # the first bookmark of each title
    # the contents fill the pages before the root document's
    contents_pages = range(1, outline[_norm(title(_toc_docnames()[0]))])
    assert contents_pages, "the root document starts on page 1: no contents before it"
    layout = _poppler("pdftotext", "-layout", "-enc", "UTF-8", "-l", str(contents_pages[-1]), str(PDF), "-")
    lines = {_norm(m[1]): int(m[2]) for m in re.finditer(r"^\s*(\S.*?)\s+(\d+)\s*$", layout, re.M)}
    wrong = []
    for docname in _toc_docnames():
        want = _norm(title(docname))
        if lines.get(want) != outline.get(want):
            wrong.append(f"{title(docname)!r}: contents says {lines.get(want)}, outline {outline.get(want)}")
    assert not wrong, "contents lines whose page number is not where the document starts:\n  " + "\n  ".join(wrong)
    # the links of the contents pages: pdftohtml writes a link as <a href="...#PAGE">text</a> in each
    # run of text it covers (a title in two fonts, Latin and Chinese, is two runs): join the runs
    links: dict[str, int] = {}
    for number in contents_pages:
        block = re.search(rf'<page number="{number}".*?</page>', xml, re.S)[0]
        runs: list[tuple[int | None, str]] = []
        for text in re.findall(r"<text [^>]*>(.*?)</text>", block):
            link = re.search(r'<a href="[^"#]*#(\d+)">(.*?)</a>', text)
            target, words = (int(link[1]), link[2]) if link else (None, text)
            if runs and target is not None and runs[-1][0] == target:
                runs[-1] = (target, runs[-1][1] + words)
            else:
                runs.append((target, words))
        for target, words in runs:
            if target is not None:
                links[_norm(html.unescape(re.sub(r"<[^>]+>", "", words)))] = target
    unlinked = [title(d) for d in _toc_docnames() if links.get(_norm(title(d))) != outline.get(_norm(title(d)))]
    assert not unlinked, f"contents entries that do not link their document's first page: {unlinked}; links: {links}"


def test_every_figure_is_an_image(course_pdf):
    """The notebooks' saved figures (distinct PNG outputs) and the markdown images are images in the PDF."""
    figures = set()
    for docname in _toc_docnames():
        path = _source(docname)
        if path.suffix == ".ipynb":
            for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
                for out in cell.get("outputs", []):
                    if "image/png" in out.get("data", {}):
                        figures.add("".join(out["data"]["image/png"]))
        figures |= set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", _markdown_and_code(docname)[0]))
    listing = _poppler("pdfimages", "-list", str(course_pdf)).splitlines()[2:]
    images = [line.split() for line in listing if line.strip()]
    # an image with a soft mask (transparency) is listed twice, as "image" and "smask"
    drawn = collections.Counter(cols[2] for cols in images)["image"]
    assert drawn >= len(figures), f"{len(figures)} figures in the sources, {drawn} images in the PDF"


def test_saved_widgets_are_drawn_not_their_text_repr(pages):
    """A widget's saved state is drawn (the widget manager, from the saved state), not printed as the
    text/plain repr the notebook also saved ("VBox(children=(Dropdown(...")."""
    text = "".join(pages)
    reprs = re.findall(r"\b(?:VBox|HBox|Tab|Stack)\(children=", text)
    assert not reprs, f"widgets printed as their text repr: {len(reprs)}"
    # the decoding explorer of "Generating text" (its controls' descriptions) and the attention viewer
    for shown in ("temperature", "top-p", "layer 0", "head 0"):
        assert shown in text, f"{shown!r}, which a saved widget shows, is not in the PDF"


def _letters_and_digits(text: str) -> str:
    return re.sub(r"\W+", "", text)


def test_no_code_line_is_cut_off(lines_on_the_page):
    """Every line of code the book shows is whole in the PDF: one longer than the page wraps onto the next line
    instead of running off the page's (or its box's) right edge. Compared by its letters and digits, so that a
    wrapped line's two halves, on consecutive lines, still match, and punctuation that pdftotext reads otherwise
    (the minus of 1e-5) does not count."""
    text = _letters_and_digits("".join(lines_on_the_page))
    cut = [f"{docname}: {line.strip()[:110]!r}" for docname in _toc_docnames() for line in shown_code_lines(docname)
           if _letters_and_digits(line) not in text]
    assert not cut, f"{len(cut)} code lines not whole in the PDF (cut off at the edge?):\n  " + "\n  ".join(cut[:20])


def test_widget_tab_titles_are_printed_whole(lines_on_the_page):
    """A saved Tab widget's titles are printed in full, side by side as its tab bar shows them, not cut to the
    tab's width ("BPE, English voc…"). (The code that made the widget names them too, but not side by side.)"""
    text = _norm("".join(lines_on_the_page))
    tab_bars = []
    for docname in _toc_docnames():
        path = _source(docname)
        if path.suffix != ".ipynb":
            continue
        widgets = json.loads(path.read_text(encoding="utf-8"))["metadata"].get("widgets", {})
        for model in widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state", {}).values():
            if model.get("model_name") == "TabModel":
                tab_bars.append((docname, model["state"].get("titles", [])))
    assert tab_bars, "no saved Tab widget in the book: this test checks nothing"
    cut = [f"{docname}: {titles}" for docname, titles in tab_bars if _norm("".join(titles)) not in text]
    assert not cut, "tab bars whose titles are not printed whole:\n  " + "\n  ".join(cut)


# ---------------------------------------------------------------------------------------
# book/pdf.py's own parts (no built PDF needed)
# ---------------------------------------------------------------------------------------
def test_toc_parts_reads_every_document_in_order():
    root, parts = book_pdf.toc_parts()
    assert [root] + [d for _, docs in parts for d in docs] == _toc_docnames()
    assert all(caption for caption, _ in parts), parts


def test_pdf_strings_decode():
    assert book_pdf._pdf_string(rb"(Chapter \(A\) \\ x\101)") == "Chapter (A) \\ xA"
    assert book_pdf._pdf_string(b"<FEFF672F8BED8868>") == "术语表"


def test_outline_reader_agrees_with_poppler(course_pdf, xml):
    ours = [(t, p) for _depth, t, p in book_pdf.outline_pages(course_pdf)]
    assert ours == _outline(xml)


def _fake_app(tmp_path: Path, builder: str = "html") -> SimpleNamespace:
    return SimpleNamespace(
        builder=SimpleNamespace(name=builder),
        outdir=str(tmp_path / "_build" / builder),
        config=SimpleNamespace(root_doc="intro"),
        env=SimpleNamespace(nb_metadata={}),
        added=[],
    )


def _context() -> dict:
    return {
        "pathto": lambda name, resource=0: f"../{name}",
        "header_buttons": [{"label": "download-buttons", "type": "group", "buttons": [{"label": "x"}]}],
    }


def test_site_links_the_pdf_only_when_it_is_built(tmp_path):
    app = _fake_app(tmp_path)
    context = _context()
    book_pdf.link_course_pdf(app, "chapters/x", "page.html", context, None)
    assert len(context["header_buttons"][0]["buttons"]) == 1, "linked a PDF that was not built"

    built = tmp_path / "_build" / book_pdf.PDF_NAME
    built.parent.mkdir(parents=True)
    built.write_bytes(b"%PDF-1.4 test")
    book_pdf.link_course_pdf(app, "chapters/x", "page.html", context, None)
    item = context["header_buttons"][0]["buttons"][-1]
    assert item["url"] == f"../{book_pdf.SITE_PDF}" and item["text"] == "course.pdf", item
    book_pdf.copy_course_pdf(app, None)
    assert (Path(app.outdir) / book_pdf.SITE_PDF).read_bytes() == b"%PDF-1.4 test"

    singlehtml = _fake_app(tmp_path, "singlehtml")
    context = _context()
    book_pdf.link_course_pdf(singlehtml, "intro", "page.html", context, None)
    assert len(context["header_buttons"][0]["buttons"]) == 1, "the PDF's own source page links the PDF"


def test_single_page_gets_every_notebooks_widgets(tmp_path):
    """myst-nb adds a notebook's widget state and the manager's scripts to that notebook's page only; on
    the single page (named after the root document) every notebook's are added, the manager once."""
    manager = {"ipywidgets_0": ("require.js", {}), "ipywidgets_1": ("embed-amd.js", {"defer": "defer"})}
    app = _fake_app(tmp_path, "singlehtml")
    app.env.nb_metadata = {
        "chapters/a": {"js_files": {"ipywidgets_state": (None, {"body": "A"}), **manager}},
        "chapters/b": {"js_files": {"ipywidgets_state": (None, {"body": "B"}), **manager}},
        "chapters/c": {},
    }
    app.add_js_file = lambda uri, **kwargs: app.added.append((uri, kwargs))
    book_pdf.add_every_notebooks_widgets(app, "intro", "page.html", {}, None)
    assert (None, {"body": "A"}) in app.added and (None, {"body": "B"}) in app.added
    assert {uri for uri, _ in app.added if uri} == {"require.js", "embed-amd.js"}
    app.added.clear()
    book_pdf.add_every_notebooks_widgets(app, "chapters/a", "page.html", {}, None)
    html_app = _fake_app(tmp_path, "html")
    html_app.add_js_file = app.add_js_file
    book_pdf.add_every_notebooks_widgets(html_app, "intro", "page.html", {}, None)
    assert not app.added, "widgets added to a page other than the single page"
