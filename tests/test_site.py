"""The built website as readers get it: offline, complete, checked in a real browser.

Run after a build (``make site-test`` builds it strictly first)::

    .venv/bin/pytest tests/test_site.py

For every page in ``_toc.yml``, headless Chromium (Debian's ``chromium``, driven by
Playwright) loads the page from a local server on 127.0.0.1 with every other host
blocked, and checks: no failed request and no request to another host, no JavaScript
error, every formula typeset by MathJax, every image loaded and described by its alt text, every
saved widget rendered;
chapter pages offer their notebook and say how to run them; axe-core (from npm) finds no
WCAG 2 level A or AA violation once the page has rendered. It saves a screenshot per
page to ``_build/screenshots/``. Without Chromium these tests are skipped, loudly, except
in CI (``CI=true``), where that is a failure. The checks of links and of CDN-free pages
read the HTML files and need no browser.
"""

from __future__ import annotations

import functools
import html.parser
import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
# Chromium, the server and the waits of the PDF printer (book/pdf.py): one browser setup for the site and the PDF
from browser import (  # noqa: E402 - book/ is a folder of Sphinx extensions, not a package
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

SITE = Path(os.environ.get("COURSE_SITE_DIR", ROOT / "_build" / "html")).resolve()
SCREENSHOTS = SITE.parent / "screenshots"
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


#: Console messages of type "error" that are not a fault of the page, with why.
#: (None are expected today; any entry here must say why it is harmless.)
HARMLESS_CONSOLE_ERRORS: list[tuple[str, str]] = []

#: Chapters are the pages under these folders (same as book/offline.py's default).
CHAPTER_DIRS = ("chapters/",)

#: A term the search must find, and a page it must find it on.
SEARCH_TERM = "Transformers"


# ---------------------------------------------------------------------------------------
# What to check: the pages of the table of contents
# ---------------------------------------------------------------------------------------
def _toc_entries(node) -> list[str]:
    """Docnames in a jb-book ``_toc.yml`` subtree, in reading order (globs expanded)."""
    out: list[str] = []
    if isinstance(node, list):
        for item in node:
            out += _toc_entries(item)
    elif isinstance(node, dict):
        if "file" in node:
            out.append(re.sub(r"\.(md|ipynb|rst)$", "", str(node["file"]).lstrip("/")))
        if "glob" in node:
            for path in sorted(ROOT.glob(str(node["glob"]))):
                if path.suffix in {".md", ".ipynb", ".rst"}:
                    out.append(path.relative_to(ROOT).with_suffix("").as_posix())
        for key in ("parts", "chapters", "sections"):
            if key in node:
                out += _toc_entries(node[key])
    return out


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [re.sub(r"\.(md|ipynb|rst)$", "", str(toc["root"]))] + _toc_entries(toc)
    return list(dict.fromkeys(pages))


PAGES = toc_pages()


def html_files() -> list[Path]:
    """The site's pages (``_static/`` holds the theme's Jinja macro files, not pages)."""
    return sorted(p for p in SITE.rglob("*.html") if "_static" not in p.relative_to(SITE).parts)


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        pytest.fail(
            f"No built website at {SITE}: build it first with `make book` "
            "(or `make site-test`, which builds it strictly and then runs these tests).",
            pytrace=False,
        )
    return SITE


# ---------------------------------------------------------------------------------------
# Checks that read the built HTML (no browser needed)
# ---------------------------------------------------------------------------------------
class _Links(html.parser.HTMLParser):
    """Collect ids and the URLs a page links to or loads."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, url)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        for key in ("href", "src"):
            if a.get(key) is not None:
                self.links.append((tag, key, a[key]))


@functools.cache
def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_every_toc_page_was_built(site):
    missing = [p for p in PAGES if not (site / f"{p}.html").is_file()]
    assert not missing, f"pages in _toc.yml with no built HTML: {missing}"


def test_internal_links_resolve(site):
    """Every relative link or resource of every page points at a file (and anchor) that exists."""
    broken = []
    for page in html_files():
        for tag, attr, url in _parse(page).links:
            parts = urlsplit(url)
            if parts.scheme or url.startswith("//") or not url.strip():
                continue
            if parts.path:
                target = (page.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
            else:
                target = page
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: <{tag} {attr}={url!r}> (no such file)")
                continue
            anchor = unquote(parts.fragment)
            if tag == "a" and anchor and target.suffix == ".html" and anchor not in _parse(target).ids:
                broken.append(f"{page.relative_to(site)}: <a href={url!r}> (no #{anchor} there)")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_pages_load_nothing_from_other_hosts(site):
    """No script, stylesheet, image or font comes from a CDN: only links may leave the site."""
    remote = []
    for page in html_files():
        for tag, attr, url in _parse(page).links:
            if tag != "a" and (urlsplit(url).scheme in {"http", "https"} or url.startswith("//")):
                remote.append(f"{page.relative_to(site)}: <{tag} {attr}={url!r}>")
    assert not remote, "pages that would load from the internet:\n" + "\n".join(remote)


def test_offline_assets_are_served_locally(site):
    for asset in (
        "_static/offline/mathjax/tex-chtml.js",
        "_static/offline/mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
        "_static/offline/require.js",
        "_static/offline/html-manager/embed-amd.js",
    ):
        assert (site / asset).is_file(), (
            f"{asset} is missing: the site would need internet for math and widgets. "
            "Run `make book` (it installs them with `npm ci`; it needs Node.js)."
        )


# ---------------------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------------------
def _no_browser(reason: str):
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true: the browser tests must run in CI.", pytrace=False)
    pytest.skip(f"BROWSER TESTS OF THE WEBSITE SKIPPED: {reason}")


@pytest.fixture(scope="session")
def browser(site):
    executable = find_chromium()
    if executable is None:
        _no_browser("no Chromium found (install Debian's package `chromium`, or set $CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the Python package playwright is not installed (`make install`)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def server(site):
    """``http.server`` on 127.0.0.1 (a free port) serving the built site; stopped after."""
    with serve(site) as base:
        yield base


class Visit:
    """A browser tab with every request, failure and console error recorded."""

    def __init__(self, browser, base: str) -> None:
        self.base = base
        self.external: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        self.context.set_default_timeout(30_000)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught exception: {exc}"))
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)

    def _route(self, route):
        if is_local(route.request.url):
            route.continue_()
        else:  # the site must not need another host: block it and record it
            self.external.append(route.request.url)
            route.abort("blockedbyclient")

    def _console(self, msg):
        if msg.type != "error":
            return
        text = msg.text
        if any(re.search(pattern, text) for pattern, _why in HARMLESS_CONSOLE_ERRORS):
            return
        if text.startswith("Failed to load resource"):
            return  # the failed request itself is recorded, with its URL
        self.errors.append(f"console error: {text}")

    def _request_failed(self, request):
        if request.url not in self.external:
            self.failed.append(f"{request.url} ({request.failure})")

    def _response(self, response):
        if response.status >= 400:
            self.failed.append(f"{response.url} (HTTP {response.status})")

    def goto(self, path: str):
        self.page.goto(self.base + path, wait_until="load")
        try:
            self.page.wait_for_load_state("networkidle", timeout=15_000)
        except Exception:  # noqa: BLE001 - a page that keeps polling is judged by the checks below
            pass
        return self.page

    def problems(self) -> list[str]:
        return (
            [f"request to another host: {u}" for u in self.external]
            + [f"failed request: {f}" for f in self.failed]
            + self.errors
        )

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, server):
    v = Visit(browser, server)
    yield v
    v.close()


# JavaScript run in the page ------------------------------------------------------------
IMAGE_ALTS = """() => Array.from(document.querySelectorAll("#main-content img"))
  .map(i => ({src: i.getAttribute("src") || "", alt: i.getAttribute("alt")}))"""

#: What Sphinx writes as an image's alt when the source gives none: the image's path, for a notebook's
#: figure ``../_images/<SHA-256 of the PNG>.png``. A file name, a hash or a path says nothing to a reader.
FILE_NAME_ALT = re.compile(r"(?i)\.(png|svg|jpe?g|gif|webp)$|^[0-9a-f]{16,}$|^\S*/\S*$")


def _shot_name(page: str) -> str:
    return page.replace("/", "__") + ".png"


# ---------------------------------------------------------------------------------------
# Every page of the table of contents
# ---------------------------------------------------------------------------------------
def render(visit, page: str):
    """Open ``page`` and wait until it is what a reader sees: MathJax has typeset it, every image has
    loaded and every saved widget view has rendered. Returns the tab and what went wrong on the way."""
    tab = visit.goto(f"{page}.html")
    problems: list[str] = []

    # math: every formula typeset, no raw TeX left, no MathJax errors
    state = wait_for_mathjax(tab)
    math = tab.evaluate(MATH_REPORT)
    if math["formulas"] and state != "typeset":
        problems.append(f"page has {math['formulas']} formulas but MathJax: {state}")
    problems += [f"formula not typeset: {t!r}" for t in math["untypeset"]]
    problems += [f"raw TeX in the text: {t!r}" for t in math["raw"]]
    problems += [f"MathJax error: {t!r}" for t in math["errors"]]

    # images: every one loaded
    images = load_images(tab)
    problems += [f"image did not load: {src}" for src in images["broken"]]

    # widgets: every saved widget view rendered
    views = tab.locator(SAVED_WIDGET_VIEWS).count()
    if views:
        try:
            tab.wait_for_function(WIDGETS_RENDERED, arg=views, timeout=30_000)
        except Exception:  # noqa: BLE001
            rendered = tab.locator(".widget-subarea .jupyter-widgets").count()
            problems.append(f"{views} saved widget views, but {rendered} rendered")
    return tab, problems


# Accessibility: axe-core, the engine of the browsers' accessibility audits -----------------
#: axe-core from npm (package.json's devDependencies; ``make book`` runs ``npm ci``).
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"

#: The rules run: those of WCAG 2.0 and 2.1, levels A and AA (axe's tags for them).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

AXE_RUN = """async (options) => {
  const result = await axe.run(document, {...options, resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target.join(" "), html: n.html.slice(0, 120),
                              summary: (n.failureSummary || "").replace(/\\s+/g, " ").slice(0, 240)})),
  }));
}"""


def axe_violations(tab, options: dict, label: str = "") -> list[str]:
    """axe-core's violations on the page as it is now (``options``: axe.run's), one readable line per
    failing element: rule, impact, element, what the rule asks and where it is explained, why it fails."""
    if not tab.evaluate("() => typeof window.axe === 'object'"):
        tab.add_script_tag(content=AXE_SCRIPT.read_text(encoding="utf-8"))
    lines = []
    for v in tab.evaluate(AXE_RUN, options):
        for node in v["nodes"]:
            lines.append(
                f"{v['id']} ({v['impact']}){label}: {node['target']}\n      {v['help']}: {v['helpUrl']}"
                f"\n      {node['html']}\n      {node['summary']}"
            )
    return lines


@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(page, visit, site):
    """The page as a reader gets it (``render``: math typeset, images loaded, widgets drawn from their saved
    state), its images described by alt text, a chapter's notebook and exercise offered; then, on the same
    rendered page (one load a page: rendering is most of the time), axe-core finds no WCAG 2.0/2.1 level A
    or AA violation. Among axe's rules: every form control (the widgets' sliders, drop-downs, text boxes)
    and button has an accessible name, text contrasts enough with its background, a scrollable region can
    be reached by keyboard, and every image has alternative text. Text contrast is checked again in the
    theme's dark mode. A screenshot of the page goes to ``_build/screenshots/``."""
    tab, problems = render(visit, page)

    # images: each says what it shows to a reader who cannot see it (a notebook cell's mystnb.image.alt)
    for img in tab.evaluate(IMAGE_ALTS):
        alt = (img["alt"] or "").strip()
        if not alt:
            problems.append(f"image without alt text: {img['src']}")
        elif FILE_NAME_ALT.search(alt) or alt in {img["src"], img["src"].rsplit("/", 1)[-1]}:
            problems.append(f"image whose alt text is a file name: {alt!r}")

    # chapter pages: the notebook to download, how to run it, its exercise
    if page.startswith(CHAPTER_DIRS):
        problems += _check_chapter(tab, page)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / _shot_name(page)), full_page=True)

    problems += visit.problems()
    assert not problems, f"{page}.html:\n  " + "\n  ".join(problems)

    if not AXE_SCRIPT.is_file():
        if IN_CI:
            pytest.fail(f"{AXE_SCRIPT} is missing, and CI=true: run `npm ci` (make book does).", pytrace=False)
        pytest.skip(f"ACCESSIBILITY CHECKS SKIPPED (the page's other checks passed): no "
                    f"{AXE_SCRIPT.relative_to(ROOT)}; run `npm ci` (make book does)")
    violations = axe_violations(tab, {"runOnly": {"type": "tag", "values": AXE_TAGS}})
    # dark mode as the theme's button sets it, with colour transitions off so that axe sees the end colours
    tab.add_style_tag(content="*, *::before, *::after { transition: none !important; }")
    tab.evaluate("() => { document.documentElement.dataset.theme = 'dark'; }")
    violations += axe_violations(tab, {"runOnly": {"type": "rule", "values": ["color-contrast"]}}, " in dark mode")
    assert not violations, (
        f"{page}.html: {len(violations)} element(s) fail WCAG 2 A/AA rules (axe-core):\n  " + "\n  ".join(violations)
    )


def _check_chapter(tab, page: str) -> list[str]:
    if not (SITE / "_sources" / f"{page}.ipynb").is_file():
        return [f"a chapter is a notebook, but {page} has no .ipynb source in _sources/"]
    problems = []
    note = tab.locator(".course-run-locally")
    if note.count() != 1:
        return [f"expected one 'Run this chapter yourself' note, found {note.count()}"]
    # both the theme's download button and the note's link give the notebook, offline
    hrefs = tab.eval_on_selector_all(
        "a.course-download-notebook, .dropdown-download-buttons a[href$='.ipynb']",
        "els => els.map(e => e.href)",
    )
    if len(hrefs) < 2:
        problems.append(f"download links to the .ipynb: expected the note's and the theme's, got {hrefs}")
    for href in set(hrefs):
        response = tab.request.get(href)
        if not response.ok:
            problems.append(f"notebook download {href}: HTTP {response.status}")
            continue
        try:
            cells = json.loads(response.body())["cells"]
        except (ValueError, KeyError):
            problems.append(f"notebook download {href} is not a notebook")
        else:
            if not cells:
                problems.append(f"notebook download {href} has no cells")
    # the exercise: a link that works, or a plain statement that there is none
    exercise = tab.locator(".course-run-locally .course-exercise")
    links = exercise.locator("a").evaluate_all("els => els.map(e => e.href)")
    for href in links:
        if not tab.request.get(href).ok:
            problems.append(f"exercise link {href} is broken")
    if not links and "no graded exercise" not in exercise.inner_text():
        problems.append("the note neither links an exercise nor says there is none")
    stem = page.rsplit("/", 1)[-1]
    exercises = [p for p in PAGES if p.startswith("exercises/") and p.rsplit("/", 1)[-1] == stem]
    if exercises and not links:
        problems.append(f"the book has the exercise {exercises[0]}, but the chapter does not link it")
    return problems


# ---------------------------------------------------------------------------------------
# Site-wide features
# ---------------------------------------------------------------------------------------
def test_search_finds_a_known_term(visit, site):
    tab = visit.goto(f"search.html?q={SEARCH_TERM}")
    results = tab.locator("#search-results ul.search li")
    results.first.wait_for(timeout=30_000)
    hrefs = results.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    root = PAGES[0]
    assert any(h.split("#")[0].split("?")[0].endswith(f"{root}.html") for h in hrefs), (
        f"searching {SEARCH_TERM!r} did not find the root page {root}: {hrefs}"
    )
    assert not visit.problems(), "\n".join(visit.problems())


def test_benchmarks_page_shows_the_latest_results(visit, site):
    page = next((p for p in PAGES if p.endswith("benchmarks")), None)
    assert page, "no benchmarks page in _toc.yml (the Appendix should have one)"
    tab = visit.goto(f"{page}.html")
    results = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    if results:
        tables = tab.locator("article table").count()
        assert tables >= len(results), f"{len(results)} results files but {tables} tables shown"
    else:
        assert tab.locator(".course-no-benchmarks").count() == 1


def test_launch_buttons_are_harmless_offline(visit, site):
    """Binder/Colab links stay for online readers; Live code says it needs internet."""
    chapter = next((p for p in PAGES if p.startswith(CHAPTER_DIRS)), None)
    if chapter is None:
        pytest.skip("no chapter page yet")
    tab = visit.goto(f"{chapter}.html")
    if tab.locator(".btn-launch-thebe").count() == 0:
        pytest.skip("no Live code button (launch_buttons.thebe is off)")
    tab.evaluate("() => initThebeSBT()")  # what the launch menu's "Live Code" item does
    tab.wait_for_function(
        "() => /needs an internet connection/.test(document.querySelector('.thebe-launch-button').textContent)",
        timeout=15_000,
    )
    # the only request that left the site is thebe's, and it was blocked (offline)
    assert visit.external and all("thebe" in u for u in visit.external), visit.external
    assert not visit.failed and not visit.errors, visit.failed + visit.errors


def test_site_reads_from_files_without_a_server(browser, site):
    """Opened straight from _build/html (file://), a chapter shows its math and images."""
    chapter = next((p for p in PAGES if p.startswith(CHAPTER_DIRS)), PAGES[0])
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.goto((site / f"{chapter}.html").as_uri(), wait_until="load")
        assert wait_for_mathjax(tab) in {"typeset", "no MathJax"}
        math = tab.evaluate(MATH_REPORT)
        assert not math["untypeset"] and not math["raw"], math
        assert not load_images(tab)["broken"]
        views = tab.locator(SAVED_WIDGET_VIEWS).count()
        if views:
            tab.wait_for_function(WIDGETS_RENDERED, arg=views, timeout=30_000)
        assert not errors, errors
    finally:
        context.close()


def open_with_widgets(visit, site, page: str):
    """The built page, once its saved widget views have rendered (skipped if the page is not in the book yet)."""
    if page not in PAGES and not (site / f"{page}.html").is_file():
        pytest.skip(f"{page} is not in _toc.yml (nor built) yet")
    tab = visit.goto(f"{page}.html")
    views = tab.locator(SAVED_WIDGET_VIEWS).count()
    assert views >= 1, "the chapter has no saved widget view"
    tab.wait_for_function(WIDGETS_RENDERED, arg=views, timeout=30_000)
    return tab


def test_neighbour_explorer_switches_words_without_a_kernel(visit, site):
    """The word-embeddings chapter's explorer, from its saved widget state: picking another word in the
    drop-down shows that word's neighbours (the drop-down is jslink-ed to a Stack of precomputed views)."""
    tab = open_with_widgets(visit, site, "chapters/word_embeddings")
    picker = tab.locator(".widget-dropdown select").first
    shown = tab.locator(".widget-subarea .widget-html-content table").first  # the English tab's visible view
    first = shown.inner_text()
    assert "june" in first, f"expected january's neighbours (months) first, got {first[:200]!r}"
    picker.select_option(label="three")
    tab.wait_for_function(
        """() => { const t = document.querySelector('.widget-subarea .widget-html-content table');
                   return t && !t.innerText.includes('june'); }""", timeout=10_000)
    after = tab.locator(".widget-subarea .widget-html-content table").first.inner_text()
    assert "four" in after, f"after picking 'three', expected its neighbours (numbers), got {after[:200]!r}"
    assert not visit.problems(), "\n".join(visit.problems())


def test_decoding_explorer_controls_are_named_by_their_descriptions(visit, site):
    """The generating-text chapter's decoding explorer, from its saved widget state: in the browser's
    accessibility tree (what a screen reader reads), each slider is named by the description beside it
    (book/static/course-a11y.js; ipywidgets names only the label), and so are the drop-down and text box."""
    tab = open_with_widgets(visit, site, "chapters/generating_text")
    for role, name in [("combobox", "model"), ("textbox", "prompt"), ("slider", "temperature"),
                       ("slider", "top-k (0: off)"), ("slider", "top-p"), ("slider", "min-p (0: off)")]:
        assert tab.get_by_role(role, name=name, exact=True).count() == 1, f"no {role} named {name!r}"
    assert not visit.problems(), "\n".join(visit.problems())


def test_colour_mode_button_names_the_mode_it_shows(visit, site):
    """The theme's colour mode button is named by the mode its icon shows, and a click changes both."""
    tab = visit.goto(f"{PAGES[0]}.html")
    button = tab.get_by_role("button", name=re.compile("^Color mode: ")).first
    names = []
    for _ in range(3):
        name = button.get_attribute("aria-label")
        shown = button.locator(".theme-switch").evaluate_all(
            "els => els.filter(e => e.getBoundingClientRect().width > 0).map(e => e.textContent.trim())")
        assert len(shown) == 1 and name == f"Color mode: {shown[0]}", (name, shown)
        names.append(name)
        button.click()
        tab.wait_for_function("n => document.querySelector('.theme-switch-button').ariaLabel !== n", arg=name)
    assert len(set(names)) == 3, names


def test_attention_viewer_switches_sentence_layer_and_head_without_a_kernel(visit, site):
    """The Transformer chapter's attention-map viewer, from its saved widget state: each of its three
    drop-downs (sentence, layer, head; jslink-ed to nested Stacks of precomputed maps) changes the map shown."""
    tab = open_with_widgets(visit, site, "chapters/transformer")
    sentence, layer, head = (tab.locator(".widget-dropdown select").nth(i) for i in range(3))
    shown = "() => [...document.querySelectorAll('table.attention-map')].find(t => t.offsetParent !== null).outerHTML"
    first = tab.evaluate(shown)
    assert first.count("<td") >= 9 * 9 and "&lt;bos&gt;" in first, first[:300]
    second_sentence = sentence.locator("option").nth(1).inner_text()
    sentence.select_option(index=1)
    after_sentence = tab.evaluate(shown)
    longest_word = max(second_sentence.split(), key=len)
    assert after_sentence != first and longest_word in after_sentence, (second_sentence, after_sentence[:300])
    layer.select_option(label="layer 3")
    after_layer = tab.evaluate(shown)
    assert after_layer != after_sentence and after_layer.count("<td") == after_sentence.count("<td")
    head.select_option(label="head 2")
    after_head = tab.evaluate(shown)
    assert after_head != after_layer and after_head.count("<td") == after_layer.count("<td")
    assert not visit.problems(), "\n".join(visit.problems())
