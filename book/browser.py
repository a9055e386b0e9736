"""Chromium, as book/pdf.py (which prints the course) and tests/test_site.py (which tests the website) drive it.

Both open a build of the book in Debian's headless ``chromium`` (through Playwright), served by
``http.server`` on 127.0.0.1, with every request to another host blocked, and both wait until a page is
what a reader sees before they judge it: MathJax has typeset every formula, every image has loaded,
every saved widget view has rendered. This module is what they share: how Chromium is found and
started, the server, which requests stay, and the JavaScript that waits and reports.

Not a Sphinx extension; book/ is on ``sys.path`` for both (Sphinx's ``local_extensions``, the tests'
``sys.path`` entry, ``python book/pdf.py``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: Chromium's options (no sandbox inside containers, no GPU, no background requests to Google's services).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """Debian's Chromium (or $CHROMIUM)."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def is_local(url: str) -> bool:
    """A request the page may make: to the server on 127.0.0.1, or data the page holds itself."""
    return url.startswith(("data:", "blob:")) or urlsplit(url).hostname in {"127.0.0.1", "localhost"}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # a line per request would bury pytest's and make's output
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` with ``http.server`` on 127.0.0.1, on a free port, in a thread; yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# ---------------------------------------------------------------------------------------
# Waiting until the page is what a reader sees
# ---------------------------------------------------------------------------------------

#: How long MathJax may take to start (to load its script and set ``MathJax.startup.promise``) before
#: the page is judged without it. MathJax loads asynchronously, after the page's HTML is parsed: on the
#: single page of the whole book (``make pdf``), on two busy cores, that is far longer than on one
#: page of the website. A page whose MathJax starts never waits for the bound, so one bound, the single
#: page's, serves both; only a page whose MathJax never starts waits it out (and fails).
MATHJAX_START_S = 20

#: How long one image may take to load before it is reported as broken. The images come from the
#: server on 127.0.0.1, so only an image that never loads meets it.
IMAGE_LOAD_S = 20

_WAIT_FOR_MATHJAX = """async (ms) => {
  if (!window.MathJax) return "no MathJax";
  const started = () => MathJax.startup && MathJax.startup.promise;
  for (const end = Date.now() + ms; Date.now() < end && !started(); )
    await new Promise(r => setTimeout(r, 50));
  if (!started()) return "MathJax never started";
  await MathJax.startup.promise;
  return "typeset";
}"""


def wait_for_mathjax(tab: Any) -> str:
    """Wait until MathJax has typeset the page: "typeset", "no MathJax" or "MathJax never started"."""
    return tab.evaluate(_WAIT_FOR_MATHJAX, MATHJAX_START_S * 1000)


#: What MathJax left undone: formulas not typeset, its errors, TeX delimiters left in the text.
MATH_REPORT = """() => {
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight";
  const raw = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    if (/\\\\\\(|\\\\\\[|\\$\\$/.test(n.textContent)) raw.push(n.textContent.trim().slice(0, 80));
  }
  const maths = Array.from(document.querySelectorAll(".math"));
  return {
    formulas: maths.length,
    untypeset: maths.filter(e => !e.querySelector("mjx-container")).map(e => e.textContent.trim().slice(0, 80)),
    errors: Array.from(document.querySelectorAll("mjx-merror, [data-mjx-error]"))
              .map(e => e.getAttribute("data-mjx-error") || e.textContent.slice(0, 80)),
    raw,
  };
}"""

_IMAGES_REPORT = """async (ms) => {
  const imgs = Array.from(document.images);
  for (const img of imgs) {
    img.loading = "eager";
    if (!img.complete)
      await Promise.race([img.decode().catch(() => {}), new Promise(r => setTimeout(r, ms))]);
  }
  await document.fonts.ready;
  return {
    count: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src),
  };
}"""


def load_images(tab: Any) -> dict[str, Any]:
    """Load every image of the page (lazy ones too) and its fonts: ``{"count": n, "broken": [src, ...]}``."""
    return tab.evaluate(_IMAGES_REPORT, IMAGE_LOAD_S * 1000)


#: How many widget views the notebooks saved on the page.
SAVED_WIDGET_VIEWS = 'script[type="application/vnd.jupyter.widget-view+json"]'

#: True once the page's ``n`` saved widget views have rendered (for ``tab.wait_for_function``).
WIDGETS_RENDERED = """(n) => {
  const areas = Array.from(document.querySelectorAll(".widget-subarea"));
  return areas.length >= n && areas.every(a => a.querySelector(".jupyter-widgets")
                                               && a.getBoundingClientRect().height > 0);
}"""
