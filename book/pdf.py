"""The whole course as one PDF, offline: the single-page build of the book printed by headless Chromium.

``make pdf`` builds the book with Jupyter Book's ``singlehtml`` builder (every page of ``_toc.yml``
in one HTML file, with the site's offline MathJax and widget manager) and then runs this file::

    .venv/bin/python book/pdf.py _build/singlehtml _build/pdf/course.pdf

which opens that page in Debian's ``chromium`` (driven by Playwright, every request that leaves
127.0.0.1 blocked), waits until it is what a reader sees (MathJax has typeset every formula, every
image has loaded, every saved widget has rendered from its saved state), adds a contents list with
links and page numbers, hides the website's navigation and prints it: A4, a page number in every
footer, the PDF's outline (bookmarks) made from the headings. It fails, naming what went wrong, if a
formula stayed raw TeX, an image or a widget did not render, or the page asked another host for
anything. No LaTeX, nothing downloaded. How Chromium is started, served the page and waited on is
book/browser.py's, which tests/test_site.py uses for the website too.

The page numbers of the contents come from a first print: its outline says on which page each
heading landed (:func:`outline_pages`, a small reader of the PDFs Chromium writes); the numbers fill
space the contents already reserves, so the second print has the same pages.

The file is also a local Sphinx extension (``_config.yml``, ``sphinx: local_extensions``):

1. In the ``singlehtml`` build, the one page gets the saved widget state of every notebook and the
   widget manager's scripts (myst-nb adds them per page, so the single page, named after the root
   document, would get none and the widgets would not render).
2. In the ``html`` build, when ``_build/pdf/course.pdf`` exists, it is copied to the site
   (``_static/course.pdf``) and every page's download menu links it ("course.pdf").
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from browser import (  # book/browser.py: book/ is on sys.path, as for every local extension of the book
    CHROMIUM_ARGS,
    MATH_REPORT,
    SAVED_WIDGET_VIEWS,
    WIDGETS_RENDERED,
    find_chromium,
    is_local,
    load_images,
    serve,
    wait_for_mathjax,
)

ROOT = Path(__file__).resolve().parents[1]

#: Where the PDF goes, relative to the book's build folder (``_build``).
PDF_NAME = Path("pdf") / "course.pdf"

#: Where the site serves it, relative to its root.
SITE_PDF = "_static/course.pdf"


# ---------------------------------------------------------------------------------------
# 1 and 2. The Sphinx extension
# ---------------------------------------------------------------------------------------


def add_every_notebooks_widgets(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """``html-page-context`` of the ``singlehtml`` builder: the one page gets every notebook's widget state
    and the widget manager's scripts, which myst-nb adds only to the page of the notebook itself."""
    if app.builder.name != "singlehtml" or pagename != app.config.root_doc:
        return
    metadata = getattr(app.env, "nb_metadata", {})
    for docname in sorted(metadata):
        if docname == pagename:
            continue  # myst-nb adds the root document's own
        for uri, kwargs in metadata[docname].get("js_files", {}).values():
            app.add_js_file(uri, **kwargs)


def _built_pdf(app: Any) -> Path:
    return Path(app.outdir).parent / PDF_NAME


def link_course_pdf(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """``html-page-context`` (after sphinx-book-theme's header buttons): a "course.pdf" item in the
    page's download menu, if ``make pdf`` has built the PDF."""
    if app.builder.name != "html" or not _built_pdf(app).is_file():
        return
    for button in context.get("header_buttons", []):
        if button.get("label") == "download-buttons":
            button["buttons"].append(
                {
                    "type": "link",
                    "url": context["pathto"](SITE_PDF, 1),
                    "text": "course.pdf",
                    "tooltip": "Download the whole course as one PDF",
                    "icon": "fas fa-book",
                    "label": "download-course-pdf-button",
                }
            )


def copy_course_pdf(app: Any, exception: Exception | None) -> None:
    """``build-finished``: copy the built PDF into the site, beside the links to it."""
    if exception or app.builder.name != "html" or not _built_pdf(app).is_file():
        return
    target = Path(app.outdir) / SITE_PDF
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(_built_pdf(app), target)


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", add_every_notebooks_widgets)
    app.connect("html-page-context", link_course_pdf, priority=510)  # the theme's buttons come at 501
    app.connect("build-finished", copy_course_pdf)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


# ---------------------------------------------------------------------------------------
# The book's structure: _toc.yml
# ---------------------------------------------------------------------------------------
def toc_parts(toc_file: Path = ROOT / "_toc.yml") -> tuple[str, list[tuple[str, list[str]]]]:
    """The root document and the book's parts, each ``(caption, [docname, ...])``, in reading order."""
    import yaml

    toc = yaml.safe_load(toc_file.read_text(encoding="utf-8"))

    def docname(entry: dict) -> str:
        return re.sub(r"\.(md|ipynb|rst)$", "", str(entry["file"]).lstrip("/"))

    def files(entries: list) -> list[str]:
        out = []
        for entry in entries or []:
            if "file" in entry:
                out.append(docname(entry))
            out += files(entry.get("sections", []))
        return out

    parts = [(str(p.get("caption", "")), files(p.get("chapters", []))) for p in toc.get("parts", [])]
    if not parts and "chapters" in toc:
        parts = [("", files(toc["chapters"]))]
    return docname({"file": toc["root"]}), parts


# ---------------------------------------------------------------------------------------
# Reading the outline of a PDF that Chromium (Skia) wrote
# ---------------------------------------------------------------------------------------
_OBJ = re.compile(rb"(\d+) 0 obj\s*(.*?)endobj", re.S)


def _pdf_string(raw: bytes) -> str:
    """A PDF string, literal ``(...)`` or hex ``<...>``, as text (UTF-16 with its BOM, or PDFDocEncoding)."""
    if raw.startswith(b"<"):
        data = bytes.fromhex(raw[1:-1].decode("ascii"))
    else:
        body = raw[1:-1]
        data = re.sub(
            rb"\\([nrtbf()\\]|[0-7]{1,3})",
            lambda m: bytes([int(m[1], 8)]) if m[1][:1].isdigit() else {
                b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}.get(m[1], m[1]),
            body,
        )
    if data.startswith(b"\xfe\xff"):
        return data[2:].decode("utf-16-be")
    return data.decode("latin-1")


def outline_pages(pdf: Path) -> list[tuple[int, str, int]]:
    """The PDF's outline as ``(depth, title, page)`` (pages from 1), in order: what a PDF reader's
    bookmarks show. For the PDFs Chromium writes (objects not compressed into object streams)."""
    data = pdf.read_bytes()
    objects = {int(m[1]): m[2] for m in _OBJ.finditer(data)}
    if not objects:
        raise ValueError(f"{pdf}: no PDF objects found (not a PDF Chromium wrote?)")

    def ref(body: bytes, key: bytes) -> int | None:
        m = re.search(rb"/" + key + rb"\s+(\d+) 0 R", body)
        return int(m[1]) if m else None

    # pages in order: walk the page tree from the catalog
    catalog = next(body for body in objects.values() if re.search(rb"/Type\s*/Catalog", body))
    pages: list[int] = []

    def walk(num: int) -> None:
        body = objects[num]
        kids = re.search(rb"/Kids\s*\[([^\]]*)\]", body)
        if kids and re.search(rb"/Type\s*/Pages\b", body):
            for kid in re.findall(rb"(\d+) 0 R", kids[1]):
                walk(int(kid))
        else:
            pages.append(num)

    walk(ref(catalog, b"Pages"))
    page_index = {num: i + 1 for i, num in enumerate(pages)}

    out: list[tuple[int, str, int]] = []

    def items(first: int | None, depth: int) -> None:
        while first is not None:
            body = objects[first]
            title = re.search(rb"/Title\s*(\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>)", body, re.S)
            dest = re.search(rb"/Dest\s*\[\s*(\d+) 0 R", body)
            out.append((depth, _pdf_string(title[1]) if title else "", page_index.get(int(dest[1]), 0) if dest else 0))
            items(ref(body, b"First"), depth + 1)
            first = ref(body, b"Next")

    outlines = ref(catalog, b"Outlines")
    if outlines is not None:
        items(ref(objects[outlines], b"First"), 0)
    return out


def page_count(pdf: Path) -> int:
    """Pages of a PDF Chromium wrote (its page tree's /Count)."""
    counts = [int(c) for c in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", pdf.read_bytes(), re.S)]
    if not counts:
        counts = [int(c) for c in re.findall(rb"/Count\s+(\d+)\s*/Kids", pdf.read_bytes())]
    return max(counts, default=0)


# ---------------------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------------------
#: Print styles: the page without the website around it; code, outputs and widgets' tab titles whole, not
#: cut at a scroll box's or a tab's edge (tests/test_pdf.py checks both); each chapter on a new page.
PRINT_CSS = """
@page { size: A4; }
html, body { background: white !important; }
.bd-header, .bd-header-article, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-footer,
.bd-footer-article, .bd-footer-content, .prev-next-area, .header-article-items, .search-button-field,
.skip-link, .headerlink, .copybtn, .toggle-button, .bd-header-announcement, .primary-toggle,
.secondary-toggle, #pst-back-to-top, .sidebar-toggle, .theme-switch-button, .course-run-locally,
#jb-print-docs-body, #jb-print-toc {
  display: none !important;
}
/* sphinx-book-theme prints a page's title in #jb-print-docs-body and hides the article's first h1:
   on the single page that would hide every chapter's title */
.bd-main .bd-content .bd-article h1:first-of-type { display: block !important; }
/* and it keeps tables on one page, which leaves pages half empty before a long one */
.bd-main .bd-content table { break-inside: auto !important; }
/* the theme's flex boxes grow to their widest content (a wide table) and are centred, which pushes the
   text off the page's left edge: plain blocks, the page's width */
body, .bd-main, .bd-main .bd-content, .bd-main .bd-content .bd-article-container, .bd-page-width, .bd-container,
.bd-container__inner, .bd-article, article.bd-article { display: block !important; min-width: 0 !important;
  max-width: 100% !important; width: auto !important; padding: 0 !important; margin: 0 !important;
  overflow: visible !important; }
table { max-width: 100%; }
td, th { white-space: normal !important; overflow-wrap: anywhere; }
/* a code line longer than the page wraps (at a space, else anywhere) instead of running off the page's edge */
pre, .highlight pre, .output pre, .cell_output pre { white-space: pre-wrap !important; overflow-wrap: anywhere;
  overflow: visible !important; max-height: none !important; }
/* a widget's tab titles whole, not cut to the tab's width with an ellipsis; tabs wrap to a second row */
.jupyter-widget-tab > .lm-TabBar .lm-TabBar-content { flex-wrap: wrap; }
.jupyter-widget-tab > .lm-TabBar .lm-TabBar-tab { flex: 0 0 auto !important; max-width: none !important; }
.jupyter-widget-tab .lm-TabBar-tabLabel { overflow: visible !important; text-overflow: clip !important; }
.cell_output, .output, .cell_output .output, div.output_area, .jp-OutputArea, .table-wrapper,
.pst-scrollable-table-container, .widget-subarea { max-height: none !important; overflow: visible !important; }
img, figure, svg, .cell_output img, mjx-container[display="true"] { break-inside: avoid; max-width: 100% !important; }
tr, pre, .highlight { break-inside: avoid-page; }
h1, h2, h3, h4 { break-after: avoid-page; }
.course-pdf-chapter-start { break-before: page; }
#course-pdf-contents { break-after: page; font-size: 0.95em; }
#course-pdf-contents .course-pdf-contents-title { font-size: 2em; font-weight: bold; margin: 0 0 1em; }
#course-pdf-contents .course-pdf-part { font-size: 1.15em; font-weight: bold; margin: 1.2em 0 0.3em;
  break-after: avoid-page; }
#course-pdf-contents ol { list-style: none; margin: 0; padding: 0; }
#course-pdf-contents li { display: flex; align-items: baseline; gap: 0.4em; margin: 0.15em 0; }
#course-pdf-contents li .dots { flex: 1; border-bottom: 1px dotted #888; }
#course-pdf-contents li .page { width: 4ch; text-align: right; font-variant-numeric: tabular-nums; }
"""

#: Build the contents: a list per part of the book, each chapter a link to where it starts (the
#: first block after the ``<span id="document-DOCNAME">`` the singlehtml builder writes before each
#: document), with room for its page number. Each document after the root starts on a new page.
#: Returns the documents found, with their titles, and those missing.
ADD_CONTENTS = """([root, parts]) => {
  const anchor = name => document.getElementById("document-" + name);
  // the first block of a document: after its anchor; the root document has none, it starts the article
  const blockOf = name => {
    const start = anchor(name);
    if (!start) return name === root ? document.querySelector("article section, main section") : null;
    let el = start.nextElementSibling;
    while (el && !/^(SECTION|H1|H2|H3)$/.test(el.tagName)) el = el.nextElementSibling;
    return el;
  };
  const titleOf = name => {
    const el = blockOf(name);
    const h = el && (/^H/.test(el.tagName) ? el : el.querySelector("h1, h2, h3"));
    if (!h) return null;
    const copy = h.cloneNode(true);
    copy.querySelectorAll(".headerlink").forEach(e => e.remove());
    return {block: el, text: copy.textContent.replace(/\\s+/g, " ").trim()};
  };
  const nav = document.createElement("nav");
  nav.id = "course-pdf-contents";
  nav.setAttribute("aria-label", "Contents");
  const head = document.createElement("p");
  head.className = "course-pdf-contents-title";
  head.textContent = "Contents";
  nav.append(head);
  const found = [];
  const missing = [];
  const entry = (list, name) => {
    const t = titleOf(name);
    if (!t) { missing.push(name); return; }
    const li = document.createElement("li");
    const a = document.createElement("a");
    // to the chapter's first block, not the empty <span> before it (which may end the previous page)
    if (!t.block.id) t.block.id = "course-pdf-" + name.replace(/[^A-Za-z0-9_-]/g, "-");
    a.href = "#" + t.block.id;
    a.textContent = t.text;
    const dots = document.createElement("span");
    dots.className = "dots";
    const page = document.createElement("span");
    page.className = "page";
    page.dataset.docname = name;
    li.append(a, dots, page);
    list.append(li);
    found.push([name, t.text]);
    if (name !== root) t.block.classList.add("course-pdf-chapter-start");
  };
  const first = document.createElement("ol");
  nav.append(first);
  entry(first, root);
  for (const [caption, names] of parts) {
    if (caption) {  // not a heading: it would be a bookmark pointing at the contents
      const p = document.createElement("p");
      p.className = "course-pdf-part";
      p.textContent = caption;
      nav.append(p);
    }
    const list = document.createElement("ol");
    nav.append(list);
    for (const name of names) entry(list, name);
  }
  // the contents go before the root document's title
  const start = blockOf(root);
  if (start) start.parentElement.insertBefore(nav, start);
  return {found, missing};
}"""

#: Shrink what is wider than the printed page (a long display formula, a wide table), which the website
#: scrolls sideways and a page would cut off: each such block is zoomed to its parent's width. Run with
#: the print styles on, at the printed page's width. Returns how many blocks were shrunk.
FIT_WIDE = """() => {
  const W = document.documentElement.clientWidth;
  const blocks = new Set();
  for (const el of document.querySelectorAll("article *")) {
    const r = el.getBoundingClientRect();
    if (!(r.width > 0 && (r.right > W + 1 || r.x < -1)) || el.closest("mjx-assistive-mml")) continue;
    blocks.add(el.closest("mjx-container, table, .output, .widget-subarea, pre, figure") || el);
  }
  let n = 0;
  for (const el of blocks) {
    const avail = Math.min(W, el.parentElement.getBoundingClientRect().right) - el.getBoundingClientRect().x;
    const need = Math.max(el.scrollWidth, el.getBoundingClientRect().width);
    if (need > avail + 1 && avail > 0) { el.style.zoom = Math.max(0.4, avail / need).toFixed(3); n++; }
  }
  return n;
}"""

#: Fill in the page numbers (docname -> page) of the contents.
SET_PAGES = """(pages) => {
  for (const el of document.querySelectorAll("#course-pdf-contents .page"))
    el.textContent = pages[el.dataset.docname] ?? "";
}"""

#: The print's scale (a website's 16 px text prints at 9.6 pt), its side margins, and its top and bottom
#: margins, which hold the running header and the page number.
SCALE = 0.8
MARGIN_MM = 14
HEADER_FOOTER_MM = 16

HEADER = (
    '<div style="font-size:7pt;width:100%;margin:0 12mm;color:#666;font-family:sans-serif;">'
    '<span class="title"></span></div>'
)
FOOTER = (
    '<div style="font-size:8pt;width:100%;text-align:center;color:#444;font-family:sans-serif;">'
    '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
)


#: Requests that may fail, with why: the theme's search loads the search index, which the singlehtml
#: builder does not write (a printed page has no search box).
HARMLESS_FAILURES = ("/searchindex.js",)


class PrintError(RuntimeError):
    """The page did not render as a reader would see it, so it was not printed."""


@dataclass
class PrintReport:
    """What ``print_pdf`` did: the PDF, its pages, and what the page held."""

    pdf: Path
    pages: int
    formulas: int
    images: int
    widgets: int
    shrunk: int = 0  # blocks zoomed to fit the page's width
    chapters: list[tuple[str, str]] = field(default_factory=list)  # (docname, title)
    seconds: dict[str, float] = field(default_factory=dict)


def _single_page(site: Path, root_doc: str) -> str:
    for name in (f"{root_doc}.html", "index.html"):
        if (site / name).is_file():
            return name
    raise FileNotFoundError(
        f"{site} has no {root_doc}.html: build the single-page book first "
        "(jupyter-book build . --builder singlehtml, which `make pdf` runs)"
    )


def print_pdf(site: Path, out: Path, *, chromium: str | None = None, page_numbers: bool = True) -> PrintReport:
    """Print the single-page build in ``site`` (``_build/singlehtml``) to ``out``; raise :class:`PrintError`
    if a formula, an image or a widget did not render, or the page needed another host."""
    from playwright.sync_api import sync_playwright

    executable = chromium or find_chromium()
    if executable is None:
        raise PrintError("no Chromium found: install Debian's package `chromium` (or set $CHROMIUM)")
    root_doc, parts = toc_parts()
    page_file = _single_page(site, root_doc)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()

    external: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        if is_local(r.request.url):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort("blockedbyclient")

    out.parent.mkdir(parents=True, exist_ok=True)
    with serve(site) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        context = browser.new_context(
            viewport={"width": 900, "height": 1200}, color_scheme="light", service_workers="block"
        )
        context.set_default_timeout(300_000)
        context.route("**/*", route)
        tab = context.new_page()
        tab.on("pageerror", lambda exc: errors.append(f"uncaught exception: {exc}"))
        tab.on("requestfailed", lambda req: req.url in external or failed.append(f"{req.url} ({req.failure})"))
        tab.on("response", lambda resp: resp.status < 400 or failed.append(f"{resp.url} (HTTP {resp.status})"))
        tab.goto(base + page_file, wait_until="load")
        tab.evaluate("() => { document.documentElement.dataset.theme = 'light'; }")
        state = wait_for_mathjax(tab)
        seconds["load and typeset"] = time.perf_counter() - t0

        math = tab.evaluate(MATH_REPORT)
        images = load_images(tab)
        views = tab.locator(SAVED_WIDGET_VIEWS).count()
        if views:
            try:
                tab.wait_for_function(WIDGETS_RENDERED, arg=views, timeout=120_000)
            except Exception:  # noqa: BLE001 - reported below with the count
                rendered = tab.locator(".widget-subarea .jupyter-widgets").count()
                errors.append(f"{views} saved widget views, but {rendered} rendered")
        problems = []
        if math["formulas"] and state != "typeset":
            problems.append(f"the page has {math['formulas']} formulas but MathJax: {state}")
        problems += [f"formula not typeset: {t!r}" for t in math["untypeset"]]
        problems += [f"raw TeX in the text: {t!r}" for t in math["raw"]]
        problems += [f"MathJax error: {t!r}" for t in math["errors"]]
        problems += [f"image did not load: {src}" for src in images["broken"]]
        problems += [f"request to another host (blocked): {u}" for u in external]
        failed = [f for f in failed if not urlsplit(f.split()[0]).path.endswith(HARMLESS_FAILURES)]
        problems += [f"failed request: {f}" for f in failed]
        problems += errors
        if problems:
            raise PrintError(f"{site / page_file} did not render:\n  " + "\n  ".join(problems))

        contents = tab.evaluate(ADD_CONTENTS, [root_doc, parts])
        if contents["missing"]:
            raise PrintError(f"documents of _toc.yml not found in {site / page_file}: {contents['missing']}")
        tab.add_style_tag(content=PRINT_CSS)
        tab.emulate_media(media="print")
        # the printed page's width in CSS pixels: A4 less the side margins, at the print's scale
        tab.set_viewport_size({"width": round((210 - 2 * MARGIN_MM) / 25.4 * 96 / SCALE), "height": 1200})
        tab.evaluate("() => document.fonts.ready.then(() => true)")
        shrunk = tab.evaluate(FIT_WIDE)
        seconds["checks and contents"] = time.perf_counter() - t0 - sum(seconds.values())

        options = dict(
            format="A4",
            margin={"top": f"{HEADER_FOOTER_MM}mm", "bottom": f"{HEADER_FOOTER_MM}mm", "left": f"{MARGIN_MM}mm",
                    "right": f"{MARGIN_MM}mm"},
            scale=SCALE,
            print_background=True,
            display_header_footer=True,
            header_template=HEADER,
            footer_template=FOOTER,
            outline=True,
            tagged=True,
        )
        tab.pdf(path=str(out), **options)
        seconds["print"] = time.perf_counter() - t0 - sum(seconds.values())
        if page_numbers:
            tab.evaluate(SET_PAGES, chapter_pages(out, contents["found"]))
            tab.pdf(path=str(out), **options)
            seconds["print with page numbers"] = time.perf_counter() - t0 - sum(seconds.values())
        browser.close()
    return PrintReport(
        pdf=out,
        pages=page_count(out),
        formulas=math["formulas"],
        images=images["count"],
        widgets=views,
        shrunk=shrunk,
        chapters=[tuple(c) for c in contents["found"]],
        seconds=seconds,
    )


def _norm(text: str) -> str:
    """A title compared: without spaces (an outline entry loses the one where its heading wrapped), case
    folded, curly apostrophes straight, without a heading's link sign (# or ¶)."""
    return re.sub(r"\s+", "", text).replace("\u2019", "'").removesuffix("#").removesuffix("¶").casefold()


def chapter_pages(pdf: Path, chapters: list[tuple[str, str]]) -> dict[str, int]:
    """The page each chapter starts on (docname -> page), from the PDF's outline: the chapters' titles
    in reading order, each the first outline entry after the previous one's with that title."""
    outline = outline_pages(pdf)
    pages: dict[str, int] = {}
    i = 0
    for docname, title in chapters:
        for j in range(i, len(outline)):
            if _norm(outline[j][1]) == _norm(title):
                pages[docname] = outline[j][2]
                i = j + 1
                break
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the singlehtml build (_build/singlehtml)")
    parser.add_argument("out", type=Path, help="the PDF to write (_build/pdf/course.pdf)")
    parser.add_argument("--no-page-numbers", action="store_true", help="print once; the contents has links only")
    args = parser.parse_args(argv)
    try:
        report = print_pdf(args.site, args.out, page_numbers=not args.no_page_numbers)
    except (PrintError, FileNotFoundError) as exc:
        print(f"book/pdf.py: {exc}", file=sys.stderr)
        return 1
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    print(
        f"Wrote {report.pdf}: {report.pages} pages, {len(report.chapters)} documents, "
        f"{report.formulas} formulas, {report.images} images, {report.widgets} widgets, "
        f"{report.shrunk} wide blocks shrunk to the page's width ({timing})."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
