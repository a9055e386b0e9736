"""Plots and widgets the chapters use; what they plot is measured in ``lmlib.analysis``.

Each function draws on a matplotlib ``ax`` (or axes) it is given, or returns an ipywidgets
widget whose saved state the website shows.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

import numpy as np

from lmlib._deps import require
from lmlib.analysis import activation_curves, heaps_exponent, next_token_table, zipf_fit

# --- the first chapter ("What is a language model") -----------------------------------------------


def plot_timeline(ax, events: list[tuple[int, str, str, str]], colours: dict[str, str], title: str = "",
                  xlabel: str = "year") -> None:
    """One row per event ``(year, who, what, kind)``, top to bottom: a dot at its year in the colour of
    its kind, labelled on the side with more room, and a legend of the kinds above the axes."""
    from matplotlib.lines import Line2D

    years = [year for year, _, _, _ in events]
    start, end = min(years) - 8, max(years) + 3
    for row, (year, who, what, kind) in enumerate(events):
        ax.plot(year, row, "o", color=colours[kind], ms=7)
        right = year - start < end - year  # early events have room on the right, the rest on the left
        ax.annotate(f"{year}  {who}: {what}", (year, row), xytext=(7 if right else -7, 0), textcoords="offset points",
                    va="center", fontsize=9, ha="left" if right else "right")
    ax.set(xlim=(start, end), ylim=(len(events) - 0.5, -0.5), yticks=[], xlabel=xlabel)
    ax.set_title(title, pad=28)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=[Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in colours.items()],
              loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(colours), frameon=False, fontsize=9)


# Label offsets (points) that keep the published models' names apart, and a smaller, darker marker per
# family drawn on top, which keeps two models at almost the same (N, D) apart (LLaMA-65B and Chinchilla).
_SCALE_LABEL_OFFSETS = {"GPT-3": (-30, -12), "LLaMA-33B": (-52, 6), "LLaMA-65B": (-4, 7), "Chinchilla": (6, -12),
                        "LLaMA-7B": (-22, 6), "LLaMA-13B": (-12, -13)}
_SCALE_FAMILY_MARKERS = {"LLaMA": {"marker": "^", "color": "#7f1d1d", "s": 28, "zorder": 4}}


def plot_compute_scale(ax, course: list[dict], published: list[dict], tokens_per_parameter: float = 20) -> None:
    """Models by parameters N (x) and training tokens D (y), log-log, over grey lines of equal compute
    C = 6ND a factor of 100 apart and the dashed line D = 20 N (Hoffmann et al., 2022).

    ``course``: dicts with ``model``, ``N``, ``D`` and ``unit`` ("characters" draws a hollow dot: its D
    counts characters). ``published``: dicts with ``model``, ``N`` and ``D``; ``D`` None draws a tick on
    the N axis. LLaMA models are small dark triangles, the other published models squares.
    """
    x_range, y_range = (1e5, 2e12), (1e6, 1e13)
    ax.set(xscale="log", yscale="log", xlim=x_range, ylim=y_range, xlabel="N, parameters",
           ylabel="D, training tokens", title="How large: parameters, training tokens and compute")
    n_grid = np.logspace(5, 12.3, 50)
    for exponent in range(14, 26, 2):  # lines of equal compute C = 6ND
        compute = 10.0**exponent
        ax.plot(n_grid, compute / (6 * n_grid), color="gray", lw=0.6, alpha=0.5)
        n_top = compute / (6 * y_range[1])  # where the line meets the top of the plot, or else the left side
        n, d = (n_top, y_range[1] / 1.6) if n_top > 1.5e5 else (1.15e5, compute / (6 * 1.15e5))
        slope = np.subtract(*ax.transData.transform([(10, 1), (1, 10)]))  # the lines' direction on screen
        ax.text(n, d, f"$10^{{{exponent}}}$ FLOPs", fontsize=8, color="gray", va="top",
                rotation=np.degrees(np.arctan2(slope[1], slope[0])), rotation_mode="anchor")
    ax.plot(n_grid, tokens_per_parameter * n_grid, "--", color="#059669", lw=1,
            label=f"D = {tokens_per_parameter:g} N (Hoffmann et al., 2022)")
    blue = "#2563eb"
    for characters, label in [(False, "this course, words and word pieces"),
                              (True, "this course, characters (D counts characters)")]:
        group = [m for m in course if (m["unit"] == "characters") == characters]
        ax.scatter([m["N"] for m in group], [m["D"] for m in group], zorder=3, label=label, color=blue,
                   facecolors="white" if characters else blue)
    ax.annotate("this course", (course[0]["N"], course[0]["D"]), xytext=(2.5e6, 4e7), fontsize=9, color=blue,
                arrowprops={"arrowstyle": "-", "color": blue, "lw": 0.6})
    with_d = [m for m in published if m["D"] is not None]
    for m in with_d:
        style = _SCALE_FAMILY_MARKERS.get(m["model"].split("-")[0], {"marker": "s", "color": "#dc2626", "zorder": 3})
        label = "published models (N and D from their papers)" if m is with_d[0] else None
        ax.scatter(m["N"], m["D"], **style, label=label)
        ax.annotate(m["model"], (m["N"], m["D"]), xytext=_SCALE_LABEL_OFFSETS.get(m["model"], (5, 4)),
                    textcoords="offset points", fontsize=8)
    for m in published:
        if m["D"] is None:  # no D: a tick on the N axis
            ax.axvline(m["N"], ymax=0.05, color="#dc2626", lw=1.5)
            ax.text(m["N"], 2.2e6, f" {m['model']}\n (D not given)", fontsize=8, color="#dc2626", va="bottom")
    ax.grid(alpha=0.2, which="major")
    ax.legend(loc="center right", fontsize=8)


def plot_zipf(ax, freqs: np.ndarray, label: str, min_rank: int = 10, max_rank: int = 10_000) -> None:
    """Rank-frequency curve on log-log axes, with the fitted Zipf line (dashed) over the ranks it fits."""
    ranks = np.arange(1, len(freqs) + 1)
    s, log_c = zipf_fit(freqs, min_rank, max_rank)
    (curve,) = ax.loglog(ranks, freqs, label=f"{label} (s = {s:.2f})")
    fitted = ranks[(ranks >= min_rank) & (ranks <= max_rank)]
    ax.loglog(fitted, np.exp(log_c) * fitted**-s, "--", color=curve.get_color(), linewidth=1)
    ax.set_xlabel("rank r (1 = most frequent)")
    ax.set_ylabel("frequency f(r) (count)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()


def tokens_html(tokens: list[str]) -> str:
    """Tokens as alternating coloured boxes, so token boundaries are visible.

    A box keeps its token's spaces (``white-space:pre``), so no line may break inside it; the
    ``<wbr>`` between boxes lets the line break between tokens, so the text wraps to the page's
    width instead of running off a narrow screen in a region that scrolls.
    """
    colours = ("#dbeafe", "#fde68a", "#bbf7d0", "#fbcfe8")
    boxes = (
        f'<span style="background:{colours[i % len(colours)]};padding:1px 2px;margin:1px;'
        f'border-radius:3px;white-space:pre">{html.escape(t)}</span>'
        for i, t in enumerate(tokens)
    )
    return f'<div style="line-height:2">{"<wbr>".join(boxes)}</div><p>{len(tokens)} tokens</p>'


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


def plot_unseen_fractions(ax, unseen: dict[int, float]) -> None:
    """Bars: the share of n-grams never seen in training, per order n (from ``NGramLM.unseen_fraction``)."""
    orders = list(unseen)
    bars = ax.bar(orders, [100 * f for f in unseen.values()])
    ax.bar_label(bars, labels=[f"{100 * f:.1f}%" for f in unseen.values()])
    ax.set_xticks(orders)
    ax.set_ylim(0, 110)
    ax.set_xlabel("n (order of the n-gram)")
    ax.set_ylabel("never seen in training (% of n-grams)")
    ax.set_title("Sparsity: n-grams never seen in training")


def plot_perplexity_by_order(axes, rows: list[dict], zoom: str = "Kneser-Ney") -> None:
    """Perplexity against the order n, one line per row of ``lmlib.ngram.perplexity_by_order``.

    ``axes``: one Axes, or two. The first shows every row on a log scale; the second, a
    linear close-up of the smoothings whose name contains ``zoom``, from n = 2 on.
    Infinite perplexities are left out of the lines, and the legend says from which n.
    """
    main, close = (axes, None) if not isinstance(axes, (list, tuple, np.ndarray)) else tuple(axes)[:2]
    names = list(dict.fromkeys(r["smoothing"] for r in rows))
    splits = list(dict.fromkeys(r["split"] for r in rows))
    styles = ["-o", "--s", ":^", "-.v"]
    for row in rows:
        orders = sorted(int(key[2:]) for key in row if key.startswith("n="))
        ppl = {n: row[f"n={n}"] for n in orders}
        finite = [n for n in orders if np.isfinite(ppl[n])]
        label = f"{row['smoothing']}, {row['split']}"
        if len(finite) < len(orders):
            note = f"infinite for n >= {min(n for n in orders if n not in finite)}"
            label += f" ({note})"
            if finite and row["split"] == splits[0]:  # the points may hide under other lines: point at them
                main.annotate(f"{row['smoothing']}: {note}", xy=(finite[-1], ppl[finite[-1]]), xytext=(10, 50),
                              textcoords="offset points", arrowprops={"arrowstyle": "->"}, fontsize=8,
                              bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7"})
        style = {"color": f"C{names.index(row['smoothing']) % 10}"}
        fmt = styles[splits.index(row["split"]) % len(styles)]
        main.plot(finite, [ppl[n] for n in finite], fmt, label=label, **style)
        if close is not None and zoom in row["smoothing"]:
            near = [n for n in finite if n >= 2]
            close.plot(near, [ppl[n] for n in near], fmt, label=label, **style)
    all_orders = sorted({int(k[2:]) for r in rows for k in r if k.startswith("n=")})
    main.set(yscale="log", xticks=all_orders, xlabel="order n",
             ylabel="perplexity per token (log scale)", title="Perplexity against the order")
    main.legend(fontsize=7)
    if close is not None:
        close.set(xticks=[n for n in all_orders if n >= 2], xlabel="order n", ylabel="perplexity per token",
                  title=f"Close-up: {zoom} models, n >= 2")
        close.legend(fontsize=7)


def plot_heaps(ax, n: np.ndarray, sizes: np.ndarray, label: str, min_tokens: int = 1_000) -> None:
    """Vocabulary size against corpus size on log-log axes, with the fitted Heaps line over n >= min_tokens."""
    k, beta = heaps_exponent(n, sizes, min_tokens)
    line = ax.loglog(n, sizes, "o", markersize=3, label=f"{label}")[0]
    fitted = n[n >= min_tokens]
    ax.loglog(fitted, k * fitted.astype(float) ** beta, "-", color=line.get_color(),
              label=f"fit: V = {k:.3g} n^{beta:.3f}")
    ax.set_xlabel("n, tokens read (count)")
    ax.set_ylabel("V(n), distinct tokens (count)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()


# --- neural networks: activations and optimisers -------------------------------------------------


def plot_activations(axes, x) -> None:
    """Activations (left) and their derivatives (right) on shared x."""
    for name, (y, dy) in activation_curves(x).items():
        axes[0].plot(x, y, label=name)
        axes[1].plot(x, dy, label=name)
    for ax, title in zip(axes, ("f(z)", "f'(z)"), strict=True):
        ax.set_xlabel("z, pre-activation")
        ax.set_ylabel(title)
        ax.axhline(0, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
        ax.legend()


def plot_optimizer_paths(ax, loss: Callable, paths: dict[str, np.ndarray], extent=(-2.5, 2.5, -1.5, 1.5)) -> None:
    """Contours of a 2-D loss with each optimizer's path from the same start."""
    torch = require("torch")
    x0, x1, y0, y1 = extent
    xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    grid = torch.tensor(np.stack([xs, ys]), dtype=torch.float64)
    values = loss(grid).numpy()
    levels = np.geomspace(max(values.min(), 1e-3), values.max(), 15)  # even in log(loss): the floor shows too
    ax.contour(xs, ys, values, levels=levels, colors="0.7", linewidths=0.6)
    for name, path in paths.items():
        ax.plot(path[:, 0], path[:, 1], ".-", markersize=3, lw=1, label=name)
    ax.plot(*next(iter(paths.values()))[0], "k*", markersize=10, label="start")
    minimum = np.unravel_index(values.argmin(), values.shape)
    ax.plot(xs[minimum], ys[minimum], "kx", markersize=8, label="minimum")
    ax.set_xlabel("parameter 1")
    ax.set_ylabel("parameter 2")
    ax.legend()


def plot_training_curve(ax, history: dict, label: str = "") -> None:
    """Train loss (per logged mini-batch) and validation loss against tokens seen, from ``lmlib.train``'s history."""
    tokens = dict(zip(history["step"], history["tokens"], strict=True))
    ax.plot(np.array(history["tokens"]) / 1e6, history["train_loss"], lw=0.8, alpha=0.6,
            label=f"{label} train (one mini-batch)".strip())
    ax.plot([tokens[s] / 1e6 for s in history["eval_step"]], history["valid_loss"], "o-",
            label=f"{label} validation".strip())
    ax.set_xlabel("predicted tokens seen (millions)")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend()


# --- fine-tuning (chapter "Fine-tuning") ----------------------------------------------------------------


def plot_learning_curve(ax, summary: list[dict], ways: Iterable[str]) -> None:
    """Accuracy against the number of labels (log scale), one line per way, error bars of one standard
    deviation over the seeds; ``summary`` is ``finetune_runs.mean_and_std(rows, ("labels", "way"), ...)``."""
    for way in ways:
        rows = sorted((r for r in summary if r["way"] == way), key=lambda r: r["labels"])
        ax.errorbar([r["labels"] for r in rows], [r["mean"] for r in rows], yerr=[r["std"] for r in rows],
                    marker="o", capsize=3, label=way)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training examples (log scale)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend()


def plot_adaptation(axes, rows: list[dict], columns: tuple[str, str] = ("news test bpc", "wiki test bpc")) -> None:
    """Two panels against training steps (log scale): each kind of run as a line, the model before any
    adaptation as a dashed level; ``rows`` are ``finetune_runs.domain_adaptation``'s."""
    before = next(r for r in rows if r["steps"] == 0)
    kinds = dict.fromkeys((r["kind"], r["lr"]) for r in rows if r["steps"] > 0)
    for ax, column in zip(axes, columns, strict=True):
        for kind, lr in kinds:
            runs = sorted((r for r in rows if (r["kind"], r["lr"]) == (kind, lr)), key=lambda r: r["steps"])
            ax.plot([r["steps"] for r in runs], [r[column] for r in runs], "o-", label=f"{kind}, lr {lr:g}")
        ax.axhline(before[column], color="grey", ls="--", label=before["kind"])
        ax.set_xscale("log")
        ax.set_xlabel("training steps on news (log scale)")
        ax.set_ylabel(f"{column.removesuffix(' bpc')} (bits per character)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")


# --- word vectors (chapter "Word embeddings") -----------------------------------------------------


def plot_word_groups(ax, xy: np.ndarray, groups: dict[str, list[str]], explained: np.ndarray,
                     fontsize: float = 8) -> None:
    """Scatter ``xy`` [n, 2] (rows in the order of the groups' words), one colour per group, each point labelled.

    Labels that would cover one another, a point or the legend are pushed apart as the renderer
    measures them: each step moves every overlapping pair of labels half their overlap apart,
    along the axis where they overlap least, until none overlap (deterministic: no random
    jitter), inside the axes. A label that had to move gets a thin line back to its point.
    """
    from matplotlib.text import Text

    start, labels = 0, []
    for name, words in groups.items():
        points = xy[start : start + len(words)]
        colour = ax.scatter(*points.T, label=name, s=18).get_facecolor()[0]
        for (x, y), w in zip(points, words, strict=True):
            labels.append(ax.annotate(
                w, (x, y), fontsize=fontsize, xytext=(3, 3), textcoords="offset points",
                arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.6, "shrinkA": 0, "shrinkB": 2}))
        start += len(words)
    ax.set_xlabel(f"first principal component ({explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"second principal component ({explained[1]:.0%})")
    ax.margins(0.12)  # room for labels pushed outwards
    ax.set(xlim=ax.get_xlim(), ylim=ax.get_ylim())  # frozen: the pixel positions below must stay valid
    legend = ax.legend()

    # Every box as [x0, y0, x1, y1] in pixels: the labels move, the points and the legend do not.
    renderer = ax.figure.canvas.get_renderer()
    for label in labels:
        label.get_window_extent(renderer)  # places the label for the renderer
    boxes = np.array([Text.get_window_extent(label).extents for label in labels])  # [n, 4]
    dots = ax.transData.transform(xy)  # [n, 2]
    fixed = np.vstack([np.hstack([dots - 3, dots + 3]), legend.get_window_extent(renderer).extents])  # [n + 1, 4]
    frame = ax.get_window_extent(renderer).extents
    n, pad = len(labels), 1.0  # pad: the least gap, in pixels, between two labels
    shift = np.zeros((n, 2))  # [n, 2] how far each label has moved, in pixels

    def overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[len(a), len(b)] overlaps of the boxes along x and along y (positive: they overlap)."""
        x = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + pad
        y = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + pad
        return x, y

    def away(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        """+1 where box a's centre lies beyond box b's along ``axis``, else -1 (ties: the later label moves up)."""
        gap = (a[:, None, axis] + a[:, None, axis + 2]) - (b[None, :, axis] + b[None, :, axis + 2])
        later = np.arange(len(a))[:, None] > np.arange(len(b))[None, :]
        return np.where(gap == 0, np.where(later, 1.0, -1.0), np.sign(gap))

    for _ in range(2000):
        current = boxes + np.tile(shift, 2)
        push = np.zeros((n, 2))
        for others, share in [(current, 0.5), (fixed, 1.0)]:  # a pair of labels each moves half the way
            ox, oy = overlaps(current, others)
            hit = (ox > 0) & (oy > 0)
            if others is current:
                np.fill_diagonal(hit, False)
            sideways = ox < oy
            push[:, 0] += np.where(hit & sideways, share * ox * away(current, others, 0), 0).sum(1)
            push[:, 1] += np.where(hit & ~sideways, share * oy * away(current, others, 1), 0).sum(1)
        if not push.any():
            break
        shift += np.clip(push, -3, 3)  # small steps: a label in a crowd is pushed from several sides
        current = boxes + np.tile(shift, 2)
        shift[:, 0] += np.maximum(frame[0] - current[:, 0], 0) - np.maximum(current[:, 2] - frame[2], 0)
        shift[:, 1] += np.maximum(frame[1] - current[:, 1], 0) - np.maximum(current[:, 3] - frame[3], 0)
    points_per_pixel = 72 / ax.figure.dpi
    for label, (dx, dy) in zip(labels, shift, strict=True):
        label.xyann = (3 + dx * points_per_pixel, 3 + dy * points_per_pixel)
        label.arrow_patch.set_visible(bool(np.hypot(dx, dy) > 4))  # a line only where the label left its point


# --- decoding (chapter "Generating text") ---------------------------------------------------------


def plot_next_token_bars(ax, table: list[tuple[str, float, float]], title: str = "", processed: bool = True) -> None:
    """Horizontal bars from ``next_token_table``: the model's probability, and (``processed``) the one
    after the processors beside it."""
    tokens = [t for t, _, _ in table][::-1]
    y = np.arange(len(tokens))
    if not processed:
        ax.barh(y, [p for _, p, _ in table][::-1], height=0.6, color="#2563eb")
    else:
        ax.barh(y + 0.2, [p for _, p, _ in table][::-1], height=0.4, color="#9ca3af", label="model P")
        ax.barh(y - 0.2, [q for _, _, q in table][::-1], height=0.4, color="#2563eb", label="after the processors")
        ax.legend(loc="lower right")
    ax.set_yticks(y, tokens)
    ax.set_xlabel("probability of the next token")
    ax.set_title(title)


def next_token_html(table: list[tuple[str, float, float]]) -> str:
    """``next_token_table`` as HTML bars (grey: the model; blue: after the processors; struck out: filtered)."""
    scale = max(max(p, q) for _, p, q in table) or 1.0
    lines = []
    for token, p, q in table:
        name = html.escape(token) if q > 0 else f"<s>{html.escape(token)}</s>"
        lines.append(
            f'<tr><td style="text-align:right;padding-right:6px;font-family:monospace">{name}</td>'
            f'<td style="width:320px"><div style="background:#9ca3af;height:7px;width:{300 * p / scale:.1f}px"></div>'
            f'<div style="background:#2563eb;height:7px;width:{300 * q / scale:.1f}px"></div></td>'
            f'<td style="font-family:monospace">{p:.3f} → {q:.3f}</td></tr>')
    return f'<table style="border-collapse:collapse;line-height:1.1">{"".join(lines)}</table>'


def decoding_explorer(models: dict, prompt: list[str], temperature: float = 1.0, top_k: int = 0,
                      top_p: float = 1.0, min_p: float = 0.0, suppress: tuple[str, ...] = ("<unk>",),
                      seed: int = 0, rows: int = 12):
    """Pick a model, type a prompt, set temperature, top-k (0: off), top-p and min-p (0: off): see the
    next-token distribution before and after the processors (``suppress``-ed tokens always filtered),
    and one sample drawn with those settings.

    Moving the controls needs a running kernel; the website shows the saved state (the first model,
    ``prompt`` and the settings passed here).
    """
    import torch

    from lmlib import generate

    widgets = require("ipywidgets")
    style = {"description_width": "90px"}
    model_box = widgets.Dropdown(options=list(models), description="model", style=style)
    prompt_box = widgets.Text(value=" ".join(prompt), description="prompt", style=style)
    t_slider = widgets.FloatSlider(value=temperature, min=0.05, max=2.0, step=0.05, description="temperature",
                                   style=style)
    k_slider = widgets.IntSlider(value=top_k, min=0, max=50, description="top-k (0: off)", style=style)
    p_slider = widgets.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top-p", style=style)
    m_slider = widgets.FloatSlider(value=min_p, min=0.0, max=0.5, step=0.01, description="min-p (0: off)",
                                   style=style)
    view = widgets.HTML()

    def show(_=None) -> None:
        model = models[model_box.value]
        words = prompt_box.value.split()
        unknown = [w for w in words if w not in model.vocab.stoi]
        settings = dict(temperature=t_slider.value, top_k=k_slider.value or None, top_p=p_slider.value,
                        min_p=m_slider.value or None)
        chain = generate.processors(**settings, suppress=model.vocab.encode(suppress))
        table = next_token_table(model, words, chain, rows)
        [sampled] = generate.sample(model, [w if w in model.vocab.stoi else "<unk>" for w in words], 25,
                                    generator=torch.Generator().manual_seed(seed), suppress=suppress, **settings)
        note = f"<p>not in the vocabulary, read as &lt;unk&gt;: {html.escape(' '.join(unknown))}</p>" if unknown else ""
        view.value = (f"{note}{next_token_html(table)}<p><b>a sample</b> (seed {seed}): "
                      f"<i>{html.escape(' '.join([*words, *sampled.tokens]))}</i>"
                      f"{'' if sampled.finished else ' …'}</p>")

    for control in (model_box, prompt_box, t_slider, k_slider, p_slider, m_slider):
        control.observe(show, names="value")
    show()
    return widgets.VBox([model_box, prompt_box, t_slider, k_slider, p_slider, m_slider, view])


# --- word vectors (chapter "Word embeddings: Word2Vec") --------------------------------------------


def neighbours_html(neighbours: list[tuple[str, float]]) -> str:
    """``most_similar``'s (word, cosine similarity) pairs as HTML bars, longest for the nearest."""
    lines = []
    for word, similarity in neighbours:
        width = 240 * max(similarity, 0.0)
        lines.append(
            f'<tr><td style="text-align:right;padding-right:6px;font-family:monospace">{html.escape(word)}</td>'
            f'<td style="width:250px"><div style="background:#2563eb;height:9px;width:{width:.1f}px"></div></td>'
            f'<td style="font-family:monospace">{similarity:.3f}</td></tr>')
    return (f'<table style="border-collapse:collapse;line-height:1.15"><tr><th>neighbour</th>'
            f'<th style="text-align:left">cosine similarity</th><th></th></tr>{"".join(lines)}</table>')


def neighbour_explorer(models: dict, words: dict[str, list[str]], topn: int = 10):
    """Nearest neighbours by cosine similarity: one tab per model (``Word2Vec`` or gensim ``KeyedVectors``).

    In each tab, a drop-down of that model's ``words`` (first: the word shown first) picks a word and shows its
    ``topn`` neighbours. Those lists are computed here and switched in the browser (the drop-down is
    ``jslink``-ed to a ``Stack`` of views), so picking works on the website, from the saved widget state,
    with no kernel. The text box below it looks up any other word, which needs a running notebook.
    """
    widgets = require("ipywidgets")
    unknown = {name: [w for w in ws if w not in models[name]] for name, ws in words.items()}
    if any(unknown.values()):
        raise KeyError(f"words not in their model's vocabulary: {unknown}; pick words the model kept")
    tabs = []
    for name, model in models.items():
        picked = words[name]
        picker = widgets.Dropdown(options=picked, value=picked[0], description="word",
                                  style={"description_width": "50px"})
        stack = widgets.Stack([widgets.HTML(neighbours_html(model.most_similar(w, topn=topn))) for w in picked],
                              selected_index=0)
        widgets.jslink((picker, "index"), (stack, "selected_index"))
        typed = widgets.Text(placeholder="any word (needs a running notebook)", description="or type",
                             continuous_update=False, style={"description_width": "50px"},
                             layout=widgets.Layout(width="400px"))
        typed_view = widgets.HTML()

        def look_up(change, model=model, view=typed_view) -> None:
            word = change["new"].strip()
            if not word:
                view.value = ""
            elif word in model:
                view.value = f"<p><b>{html.escape(word)}</b></p>{neighbours_html(model.most_similar(word, topn=topn))}"
            else:
                view.value = f"<p><i>{html.escape(word)}</i> is not in this model's vocabulary</p>"

        typed.observe(look_up, names="value")
        tabs.append(widgets.VBox([picker, stack, typed, typed_view]))
    tab = widgets.Tab(children=tabs)
    for i, name in enumerate(models):
        tab.set_title(i, name)
    return tab


_ATTENTION_STYLE = (
    "<style>table.attention-map{border-collapse:collapse;font-size:12px}"
    "table.attention-map td{padding:0;width:20px;height:20px}"
    "table.attention-map th{font-weight:normal;padding:0 4px;text-align:right}"
    "table.attention-map tr:first-child th{writing-mode:vertical-rl;padding:2px}</style>"
)


def attention_html(weights, tokens: list[str]) -> str:
    """One head's attention weights [T, T] as an HTML heat map: row i is query token i, column j key token j,
    the darker the cell the larger the weight (hover for its value; a weight of exactly 0, a masked key, is a
    blank cell). Compact markup (unquoted attributes, one shared style): a viewer holds one map per sentence,
    layer and head."""
    weights = np.asarray(weights)
    head = "".join(f"<th>{html.escape(t)}</th>" for t in tokens)
    rows = []
    for token, row in zip(tokens, weights, strict=True):
        cells = "".join("<td></td>" if w == 0 else  # a masked key: white, like weight 0
                        f"<td title={w:.2f} style=background:hsl(215,80%,{100 - 60 * w:.0f}%)></td>" for w in row)
        rows.append(f"<tr><th>{html.escape(token)}</th>{cells}</tr>")
    return f"{_ATTENTION_STYLE}<table class=attention-map><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def attention_viewer(maps: dict[str, tuple[list[str], object]]):
    """Attention maps to browse by sentence, layer and head. ``maps``: label -> (tokens, weights
    [n_layers, h, T, T]), e.g. from ``lmlib.transformer.attention_weights``.

    Every map is rendered here and the three drop-downs are ``jslink``-ed to nested ``Stack`` s of them, so
    the viewer works on the website, from the saved widget state, with no kernel.
    """
    widgets = require("ipywidgets")
    n_layers, n_heads = np.asarray(next(iter(maps.values()))[1]).shape[:2]
    style = {"description_width": "70px"}
    sentence = widgets.Dropdown(options=list(maps), value=next(iter(maps)), description="sentence", style=style,
                                layout=widgets.Layout(width="600px"))
    layer = widgets.Dropdown(options=[(f"layer {i + 1}", i) for i in range(n_layers)], value=0,
                             description="layer", style=style)
    head = widgets.Dropdown(options=[(f"head {i + 1}", i) for i in range(n_heads)], value=0,
                            description="head", style=style)
    by_sentence = []
    for tokens, weights in maps.values():
        weights = np.asarray(weights)
        by_layer = []
        for i in range(n_layers):
            heads = widgets.Stack([widgets.HTML(attention_html(weights[i, j], tokens)) for j in range(n_heads)],
                                  selected_index=0)
            widgets.jslink((head, "index"), (heads, "selected_index"))
            by_layer.append(heads)
        layers = widgets.Stack(by_layer, selected_index=0)
        widgets.jslink((layer, "index"), (layers, "selected_index"))
        by_sentence.append(layers)
    sentences = widgets.Stack(by_sentence, selected_index=0)
    widgets.jslink((sentence, "index"), (sentences, "selected_index"))
    return widgets.VBox([sentence, widgets.HBox([layer, head]), sentences])


# --- the assistant chapter: a chat box -------------------------------------------------------------


_CHAT_BUBBLE = ("display:inline-block;max-width:80%;padding:4px 10px;border-radius:10px;white-space:pre-wrap;"
                "margin:2px 0")


def chat_html(entries: list[tuple[str, str]]) -> str:
    """A chat as HTML, from ``(kind, text)`` entries: the user's messages on the right, the assistant's on the left,
    and the chat's notes (``kind`` "note": turns dropped, a reset) in grey between them."""
    rows = []
    for kind, text in entries:
        if kind == "note":
            rows.append(f'<div style="color:#4b5563;font-style:italic;font-size:90%">[{html.escape(text)}]</div>')
            continue
        if kind not in ("user", "assistant"):
            raise ValueError(f"a chat entry is a user's or assistant's message or a note, got the kind {kind!r}")
        side, colour = ("right", "#dbeafe") if kind == "user" else ("left", "#f3f4f6")
        rows.append(f'<div style="text-align:{side}"><span style="{_CHAT_BUBBLE};background:{colour}" '
                    f'title="{kind}">{html.escape(text)}</span></div>')
    # its own colours, so that the text contrasts enough in the website's light and dark themes alike (WCAG AA);
    # focusable, so that a keyboard can scroll it (tests/test_site.py checks both with axe-core)
    return (f'<div role="log" aria-label="chat history" tabindex="0" style="max-height:360px;overflow-y:auto;'
            f'border:1px solid #e5e7eb;border-radius:6px;padding:6px;background:#ffffff;color:#111827;'
            f'font-family:system-ui,sans-serif">{"".join(rows) or "<i>no messages yet</i>"}</div>')


def chat_box(chat, script: Iterable[str] = ()):
    """A chat box on a ``lmlib.course.chat_cli.Chat``: the history, a text field, Send and Reset.

    Each answer appears token by token as the model decodes it (in a running notebook), and the chat keeps within
    the model's window as the terminal chat does, saying which turns it dropped. ``script``: messages sent as the
    box is made, so the box's saved state, which the website shows, is a transcript of them (the same on every
    run: greedy answers, or samples from the chat's seed). Sending more needs a running kernel.
    """
    from lmlib.course.chat_cli import FORGOTTEN

    widgets = require("ipywidgets")
    history = widgets.HTML(chat_html([]))
    field = widgets.Text(placeholder="a message (Enter sends; needs a running notebook)", continuous_update=False,
                         layout=widgets.Layout(width="60%"))
    send = widgets.Button(description="Send", layout=widgets.Layout(width="80px"))  # the theme's colours: AA contrast
    reset = widgets.Button(description="Reset", tooltip="forget the chat", layout=widgets.Layout(width="80px"))
    entries: list[tuple[str, str]] = []

    def say(text: str) -> None:
        text = text.strip()
        if not text:
            return
        try:
            answer = chat.ask(text)
        except ValueError as e:  # a message too long for the window, or with a chat token in it
            entries.append(("note", str(e)))
            history.value = chat_html(entries)
            return
        entries.extend(("note", note) for note in answer.notes_before())
        entries.append(("user", text))
        written = ""
        for piece in answer:  # the answer so far, with a cursor, as it is decoded
            written += piece
            history.value = chat_html([*entries, ("assistant", written + "\u258d")])
        entries.append(("assistant", answer.text))
        entries.extend(("note", note) for note in answer.notes_after())
        history.value = chat_html(entries)

    def send_field(_=None) -> None:
        text = field.value
        field.value = ""  # (observed again: an empty message sends nothing)
        say(text)

    def forget(_=None) -> None:
        chat.reset()
        entries.append(("note", FORGOTTEN))
        history.value = chat_html(entries)

    field.observe(send_field, names="value")  # Enter (the value is sent to the kernel on Enter or leaving the field)
    send.on_click(send_field)
    reset.on_click(forget)
    for text in script:
        say(text)
    return widgets.VBox([history, widgets.HBox([field, send, reset])])
