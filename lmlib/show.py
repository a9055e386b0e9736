"""What lmlib shows a reader: its own source, cross-checks as verdicts, figures that
print the same on any CPU, and progress bars.

``show_source(kneser_ney)`` displays the function the tests check, highlighted, as
the cell's output, so JupyterLab and the website show the same code and there is one
copy of it (a ``{literalinclude}`` directive is raw text in JupyterLab).

``agreement(ours, theirs, 1e-6)`` prints ``max |difference| ≤ 1e-6: True``. The
difference itself is round-off: its size depends on the BLAS kernels of the CPU that
ran it, so a chapter that printed it would show another number on another machine.

``probability(3.95e-6)`` writes ``3.95×10⁻⁶``, as one writes it by hand, and
``prints_stably(values, show)`` checks that round-off cannot change a printed figure:
no value lies so near a rounding tie that a move of a few 1e-6 would print another digit.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from collections.abc import Callable, Iterable

import numpy as np


class Source:
    """Python source as a code block: Markdown for JupyterLab and the website, text elsewhere."""

    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.text}\n```"

    def __repr__(self) -> str:
        return self.text


def show_source(*objects) -> Source:
    """The source of each function, class or method, in order, as one code block."""
    return Source("\n\n\n".join(textwrap.dedent(inspect.getsource(obj)).rstrip() for obj in objects))


def max_abs_difference(a, b) -> float:
    """max |a - b| over two tensors, arrays or numbers of one shape; equal infinities differ by 0."""
    a, b = (np.asarray(x.detach().cpu().double() if hasattr(x, "detach") else x, dtype=float)
            for x in (a, b))
    if a.shape != b.shape:
        raise ValueError(f"cannot compare shapes {a.shape} and {b.shape}")
    with np.errstate(invalid="ignore"):  # -inf - -inf is nan; equal entries count as 0 anyway
        return float(np.where(a == b, 0.0, np.abs(a - b)).max(initial=0.0))


def agreement(a, b, tol: float) -> str:
    """'max |difference| ≤ 1e-6: True': the verdict, which holds on any CPU, not the round-off."""
    return f"max |difference| ≤ {tol:.0e}: {max_abs_difference(a, b) <= tol}".replace("e-0", "e-")


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def probability(p: float) -> str:
    """p to 3 significant digits: 0.174 from 0.01 up, 3.95×10⁻⁶ below, as one writes it by hand."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a probability is between 0 and 1, got {p!r}; pass exp(log_p), not log_p")
    if p == 0.0 or float(f"{p:.3g}") >= 0.01:
        return f"{p:.3g}"
    mantissa, exponent = f"{p:.2e}".split("e")
    return f"{mantissa}×10{str(int(exponent)).translate(SUPERSCRIPT)}"


def prints_stably(values: Iterable[float], show: Callable[[float], str], margin: float = 2e-5) -> bool:
    """Whether ``show(v)`` prints the same as ``show(v ± margin)`` for every value: no printed
    figure is near a rounding tie, so round-off (a few 1e-6 in a log-probability, from one
    CPU's kernels to another's) cannot change what a chapter prints. Pass log-probabilities
    with ``show=lambda x: probability(math.exp(x))``: the margin is then relative."""
    return all(show(v - margin) == show(v) == show(v + margin) for v in values)


def interactive() -> bool:
    """Whether someone watches: a terminal, or a notebook's kernel."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def progress_bar(total: int, show: bool | None = None, unit: str = "it", initial: int = 0, unit_scale: bool = False):
    """A tqdm bar (None where ``show`` is false; ``show=None``: ``interactive()``)."""
    if not (interactive() if show is None else show):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit=unit, unit_scale=unit_scale, dynamic_ncols=True)
