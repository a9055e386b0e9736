"""Plots and widgets the chapters use.

Zipf's law says the r-th most frequent word of a corpus has frequency

    f(r) ≈ C / r^s,   so   log f(r) ≈ log C - s log r,

a straight line of slope -s on log-log axes, with s close to 1 for natural
language. ``zipf_exponent`` estimates s by least squares on that line.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from lmlib._deps import require


def rank_frequency(tokens: Iterable[str]) -> np.ndarray:
    """Token counts sorted from most to least frequent (rank 1 first)."""
    return np.array(sorted(Counter(tokens).values(), reverse=True), dtype=np.int64)


def zipf_exponent(freqs: np.ndarray, min_rank: int = 10, max_rank: int = 10_000) -> float:
    """Least-squares slope s of log f(r) = log C - s log r over ranks [min_rank, max_rank].

    The head (a few function words) and the tail (the many words seen once, all
    tied at frequency 1) bend away from the line, so the fit uses the middle.
    """
    if len(freqs) < min_rank + 2:
        raise ValueError(f"need at least {min_rank + 2} distinct tokens to fit Zipf's law, got {len(freqs)}")
    ranks = np.arange(1, len(freqs) + 1)
    keep = (ranks >= min_rank) & (ranks <= max_rank)
    slope, _ = np.polyfit(np.log(ranks[keep]), np.log(freqs[keep]), 1)
    return float(-slope)


def zipf_summary(freqs: np.ndarray, top: int = 100) -> dict[str, float]:
    """Zipf exponent, the share of the vocabulary seen once, and the share of the text the ``top`` words make."""
    return {
        "s": zipf_exponent(freqs),
        "seen once (% of vocabulary)": 100 * float((freqs == 1).sum()) / len(freqs),
        f"top {top} words (% of text)": 100 * float(freqs[:top].sum()) / float(freqs.sum()),
    }


def plot_zipf(ax, freqs: np.ndarray, label: str) -> None:
    """Rank-frequency curve on log-log axes, with the fitted Zipf line."""
    ranks = np.arange(1, len(freqs) + 1)
    s = zipf_exponent(freqs)
    ax.loglog(ranks, freqs, label=f"{label} (s = {s:.2f})")
    ax.set_xlabel("rank r (1 = most frequent)")
    ax.set_ylabel("frequency f(r) (count)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()


def tokens_html(tokens: list[str]) -> str:
    """Tokens as alternating coloured boxes, so token boundaries are visible."""
    colours = ("#dbeafe", "#fde68a", "#bbf7d0", "#fbcfe8")
    boxes = (
        f'<span style="background:{colours[i % len(colours)]};padding:1px 2px;margin:1px;'
        f'border-radius:3px;white-space:pre">{html.escape(t)}</span>'
        for i, t in enumerate(tokens)
    )
    return f'<div style="line-height:2">{"".join(boxes)}</div><p>{len(tokens)} tokens</p>'


def token_tabs(text: str, tokenizers: dict[str, Callable[[str], list[str]]]):
    """One tab per tokenizer showing how it cuts ``text``.

    Everything the widget shows is in its saved state, so it works on the
    static website too (switching tabs needs no running kernel).
    """
    widgets = require("ipywidgets")
    names = list(tokenizers)
    tabs = widgets.Tab(children=[widgets.HTML(tokens_html(tokenizers[n](text))) for n in names])
    for i, name in enumerate(names):
        tabs.set_title(i, name)
    return tabs
