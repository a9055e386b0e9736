"""What lmlib shows a reader: its own source, cross-checks as verdicts, and progress bars.

``show_source(kneser_ney)`` displays the function the tests check, highlighted, as
the cell's output, so JupyterLab and the website show the same code and there is one
copy of it (a ``{literalinclude}`` directive is raw text in JupyterLab).

``agreement(ours, theirs, 1e-6)`` prints ``max |difference| ≤ 1e-6: True``. The
difference itself is round-off: its size depends on the BLAS kernels of the CPU that
ran it, so a chapter that printed it would show another number on another machine.
"""

from __future__ import annotations

import inspect
import sys
import textwrap

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


def interactive() -> bool:
    """Whether someone watches: a terminal, or a notebook's kernel."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def progress_bar(total: int, show: bool | None = None, unit: str = "it", initial: int = 0, unit_scale: bool = False):
    """A tqdm bar (None where ``show`` is false; ``show=None``: ``interactive()``)."""
    if not (interactive() if show is None else show):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit=unit, unit_scale=unit_scale, dynamic_ncols=True)
