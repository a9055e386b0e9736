"""The course website as readers get it: offline-complete, and every chapter says how to run it.

A local Sphinx extension, loaded by ``_config.yml`` (``sphinx: local_extensions``). It

1. serves the browser assets a Jupyter Book page would load from CDNs from the site's own
   ``_static/offline/`` folder instead: MathJax 3 (TeX to CommonHTML, its fonts, the TeX
   extensions it autoloads, its menu and accessibility parts), require.js and the Jupyter
   widgets HTML manager (which renders the widget state saved in a notebook). The files come
   from ``node_modules/`` (``package.json`` + ``package-lock.json``; ``make book`` runs
   ``npm ci``) and are copied at the end of every build, so an incremental build cannot leave
   them out. Without ``node_modules/`` the build still succeeds and pages use the CDNs
   (math then needs internet); the build log says so.
2. adds ``course-offline.js`` to every page: MathJax 2's ``MathJax.Hub.Queue`` on top of
   MathJax 3 (the widget manager calls it) and a plain message on the "Live code" button
   when thebe cannot be reached; and ``course-require-config.js`` to widget pages, which
   tells require.js where the widget manager's files (its fonts) are.
3. writes jupyter-book 1.0.4's thebe configuration script once per page instead of twice
   (twice is a "redeclaration of const THEBE_JS_URL" error in every browser console).
4. puts a "Run this chapter" note at the top of every chapter page: download the notebook,
   run it locally, and the chapter's exercise (from the notebook metadata
   ``course.exercise``, else the exercise page named like the chapter).
5. provides the ``course-benchmarks`` directive: the tables ``make bench`` wrote to
   ``benchmarks/results/*.md`` (or one file of them; ``:exclude:`` leaves files out), or a line
   saying there are none yet.
6. takes the repository URL for the launch buttons from ``$COURSE_REPOSITORY_URL`` when set
   (the GitHub Pages workflow sets it), over the placeholder in ``_config.yml``.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

#: Where the copied assets live, relative to the site's ``_static/``.
OFFLINE_DIR = "offline"

#: What is copied from ``node_modules/`` (source, destination under ``_static/offline/``).
#: A source ending in "/" is a folder copied whole; a glob copies the matching files.
#: Only what the pages use: the full MathJax tree is 24 MB, this is about 3.5 MB.
ASSETS: list[tuple[str, str]] = [
    # MathJax 3: the TeX-to-CommonHTML component (it includes the menu and assistive MathML)
    ("mathjax/es5/tex-chtml.js", "mathjax/tex-chtml.js"),
    ("mathjax/es5/output/chtml/fonts/woff-v2/", "mathjax/output/chtml/fonts/woff-v2/"),
    # TeX packages loaded on first use (\boldsymbol, \color, \cancel, mhchem, ...)
    ("mathjax/es5/input/tex/extensions/", "mathjax/input/tex/extensions/"),
    # what the MathJax menu loads when a reader turns on an accessibility option
    ("mathjax/es5/ui/", "mathjax/ui/"),
    ("mathjax/es5/a11y/", "mathjax/a11y/"),
    ("mathjax/es5/sre/mathmaps/base.json", "mathjax/sre/mathmaps/base.json"),
    ("mathjax/es5/sre/mathmaps/en.json", "mathjax/sre/mathmaps/en.json"),
    ("mathjax/LICENSE", "mathjax/LICENSE"),
    # require.js, which the widget manager's AMD bundle needs (its licence is in its header)
    ("requirejs/require.js", "require.js"),
    # the widget manager, with the Font Awesome fonts its CSS refers to (the formats
    # browsers use; .eot and .svg fonts are for browsers long gone)
    ("@jupyter-widgets/html-manager/dist/embed-amd.js", "html-manager/embed-amd.js"),
    ("@jupyter-widgets/html-manager/dist/*.woff2", "html-manager/"),
    ("@jupyter-widgets/html-manager/dist/*.woff", "html-manager/"),
]

#: The files that must be there for the site to be served offline.
REQUIRED = [
    "mathjax/es5/tex-chtml.js",
    "requirejs/require.js",
    "@jupyter-widgets/html-manager/dist/embed-amd.js",
]

STATIC_DIR = Path(__file__).parent / "static"
NO_NODE_MODULES = (
    "offline assets: {} has no {}; pages load MathJax and the widget manager from CDNs, "
    "so math needs internet. Install Node.js (npm) and run `make book` to serve them locally."
)


# ---------------------------------------------------------------------------------------
# 1. offline assets
# ---------------------------------------------------------------------------------------
def _node_modules(app: Sphinx) -> Path:
    return Path(app.config.course_node_modules or Path(app.confdir) / "node_modules")


def _have_assets(app: Sphinx) -> bool:
    root = _node_modules(app)
    missing = [p for p in REQUIRED if not (root / p).is_file()]
    if missing:
        logger.info(NO_NODE_MODULES.format(root, missing[0]))
        return False
    return True


def configure(app: Sphinx, config: Any) -> None:
    """``config-inited``: point MathJax and the widget scripts at the local copies."""
    config.html_static_path = [*config.html_static_path, str(STATIC_DIR)]
    app.add_js_file("course-offline.js", priority=200)

    repo_url = os.environ.get("COURSE_REPOSITORY_URL", "").strip()
    if repo_url:
        config.html_theme_options = {**config.html_theme_options, "repository_url": repo_url}
        if isinstance(config.thebe_config, dict):
            config.thebe_config = {**config.thebe_config, "repository_url": repo_url}

    app.course_offline = _have_assets(app)  # type: ignore[attr-defined]
    if not app.course_offline:  # type: ignore[attr-defined]
        return
    config.mathjax_path = f"{OFFLINE_DIR}/mathjax/tex-chtml.js"
    # myst-nb adds these scripts to the pages that have saved widget state, in this order.
    config.nb_ipywidgets_js = {
        f"{OFFLINE_DIR}/require.js": {},
        "course-require-config.js": {},
        f"{OFFLINE_DIR}/html-manager/embed-amd.js": {
            # Widget modules outside ipywidgets' own would be looked up here (and fail
            # visibly, as a local 404) instead of on a CDN: the course uses only ipywidgets.
            "data-jupyter-widgets-cdn": "_static/offline/widget-modules/",
            "data-jupyter-widgets-cdn-only": "true",
        },
    }


def _copy(src: Path, dst: Path) -> int:
    """Copy one file if it changed; return its size."""
    size = src.stat().st_size
    if not (dst.is_file() and dst.stat().st_size == size and dst.stat().st_mtime >= src.stat().st_mtime):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return size


def copy_assets(app: Sphinx, exception: Exception | None) -> None:
    """``build-finished``: copy the assets into ``_static/offline/`` (every build)."""
    if exception or app.builder.format != "html" or not getattr(app, "course_offline", False):
        return
    root = _node_modules(app)
    out = Path(app.outdir) / "_static" / OFFLINE_DIR
    total = 0
    for src, dst in ASSETS:
        if src.endswith("/"):
            for f in sorted((root / src).rglob("*")):
                if f.is_file():
                    total += _copy(f, out / dst / f.relative_to(root / src))
        elif "*" in src:
            parent = PurePosixPath(src).parent
            for f in sorted((root / parent).glob(PurePosixPath(src).name)):
                total += _copy(f, out / dst / f.name)
        else:
            total += _copy(root / src, out / dst)
    logger.info(f"offline assets: {total / 1e6:.1f} MB copied to {out}")


# ---------------------------------------------------------------------------------------
# 3. thebe configuration written once
# ---------------------------------------------------------------------------------------
def dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree):
    """``html-page-context``: drop inline scripts whose body repeats an earlier one."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[str] = set()
    kept = []
    for js in scripts:
        body = getattr(js, "attributes", {}).get("body")
        if body:
            if body in seen:
                continue
            seen.add(body)
        kept.append(js)
    scripts[:] = kept


# ---------------------------------------------------------------------------------------
# 4. "Run this chapter" note
# ---------------------------------------------------------------------------------------
def _is_chapter(app: Sphinx, docname: str) -> bool:
    """A chapter is a notebook under one of ``course_chapter_dirs``."""
    in_dir = any(docname.startswith(d.rstrip("/") + "/") for d in app.config.course_chapter_dirs)
    return in_dir and str(app.env.doc2path(docname)).endswith(".ipynb")


def _find_exercise(app: Sphinx, docname: str) -> str | None:
    """The docname of the chapter's exercise, or None."""
    course = app.env.metadata.get(docname, {}).get("course") or {}
    if isinstance(course, str):  # myst-nb passes notebook metadata on as JSON text
        try:
            course = json.loads(course)
        except ValueError:
            course = {}
    if isinstance(course, dict) and course.get("exercise"):
        target = posixpath.normpath(str(course["exercise"]).lstrip("/"))
        target = posixpath.splitext(target)[0] if target.endswith((".ipynb", ".md")) else target
        if target not in app.env.found_docs:
            logger.warning(
                f"{docname}: notebook metadata course.exercise names {target!r}, which is not a page of the book",
                location=docname,
            )
            return None
        return target
    stem = posixpath.basename(docname)
    candidates = sorted(
        d
        for d in app.env.found_docs
        if d.split("/")[0] in app.config.course_exercise_dirs
        and (posixpath.basename(d) == stem or f"/{stem}/" in f"/{d}/")
    )
    # prefer the student notebook over a teacher's or solution page of the same name
    candidates.sort(key=lambda d: ("student" not in d, "teacher" in d or "solution" in d, len(d)))
    return candidates[0] if candidates else None


def add_run_note(app: Sphinx, doctree: nodes.document) -> None:
    """``doctree-read``: insert the note under the title of every chapter page."""
    docname = app.env.docname
    if not _is_chapter(app, docname):
        return
    source = Path(app.env.doc2path(docname))
    relsource = source.relative_to(app.srcdir).as_posix()
    page_dir = posixpath.dirname(docname)
    download = posixpath.relpath(f"_sources/{relsource}", page_dir or ".")

    note = nodes.admonition(classes=["tip", "course-run-locally"])
    note += nodes.title(text="Run this chapter yourself")
    para = nodes.paragraph()
    para += nodes.Text("This page is the notebook ")
    para += nodes.literal(text=relsource)
    para += nodes.Text(" with its outputs. ")
    para += nodes.reference("", "Download the notebook", refuri=download, classes=["course-download-notebook"])
    para += nodes.Text(
        " (or use the download button at the top of the page), or run it from a clone of the course repository, where "
    )
    para += nodes.literal(text="make install")
    para += nodes.Text(" sets up the pinned environment and ")
    para += nodes.literal(text="make lab")
    para += nodes.Text(
        " opens the chapters in JupyterLab. It runs top to bottom in about a minute on a "
        "laptop CPU, with no internet, and prints the numbers shown here."
    )
    note += para

    exercise = _find_exercise(app, docname)
    para = nodes.paragraph(classes=["course-exercise"])
    if exercise:
        from sphinx import addnodes

        para += nodes.Text("Exercise: ")
        xref = addnodes.pending_xref(
            "",
            refdomain="std",
            reftype="doc",
            reftarget="/" + exercise,
            refexplicit=False,
            refdoc=docname,
        )
        xref += nodes.inline("", exercise, classes=["xref", "std", "std-doc"])
        para += xref
        para += nodes.Text(" (auto-graded: the check cells tell you what passes).")
    else:
        para += nodes.Text("This chapter has no graded exercise.")
    note += para

    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        doctree.insert(0, note)
        return
    title = next((i for i, c in enumerate(section.children) if isinstance(c, nodes.title)), -1)
    section.insert(title + 1, note)


# ---------------------------------------------------------------------------------------
# 5. benchmarks
# ---------------------------------------------------------------------------------------
class BenchmarksDirective(SphinxDirective):
    """Render every ``benchmarks/results/*.md`` (the tables ``make bench`` writes), or the one file the
    argument names; ``:exclude:`` leaves out files of the folder that the page shows elsewhere."""

    has_content = False
    optional_arguments = 1  # the results folder, or one results file, relative to the book root
    option_spec = {"exclude": directives.unchanged}  # file names, separated by spaces

    def run(self) -> list[nodes.Node]:
        target = Path(self.env.srcdir) / (self.arguments[0] if self.arguments else "benchmarks/results")
        self.env.note_dependency(str(target))
        excluded = set(self.options.get("exclude", "").split())
        if target.is_file():
            files = [target]
        else:
            files = sorted(f for f in target.glob("*.md") if f.name not in excluded) if target.is_dir() else []
        if not files:
            para = nodes.paragraph(classes=["course-no-benchmarks"])
            para += nodes.Text("No benchmark results yet: run ")
            para += nodes.literal(text="make bench")
            para += nodes.Text(" to produce them.")
            return [para]
        renderer = getattr(self.state, "_renderer", None)
        if renderer is None:  # not MyST: fall back to a plain listing
            return [nodes.paragraph(text=f"{f.name}") for f in files]
        for f in files:
            self.env.note_dependency(str(f))
            renderer.nested_render_text(f.read_text(encoding="utf-8"), self.lineno, heading_offset=1)
        return []


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("course_node_modules", "", "env")
    app.add_config_value("course_chapter_dirs", ["chapters"], "env")
    app.add_config_value("course_exercise_dirs", ["exercises"], "env")
    app.connect("config-inited", configure, priority=900)
    app.connect("build-finished", copy_assets)
    app.connect("html-page-context", dedupe_scripts, priority=1000)
    app.connect("doctree-read", add_run_note)
    app.add_directive("course-benchmarks", BenchmarksDirective)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
