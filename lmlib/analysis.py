"""Measurements the chapters plot, numbers in and numbers out (the plots are ``lmlib.course.viz``):
text statistics, activations and optimiser paths, principal components, a model's next tokens.

Zipf's law says the r-th most frequent word of a corpus has frequency

    f(r) ≈ C / r^s,   so   log f(r) ≈ log C - s log r,

a straight line of slope -s on log-log axes, with s close to 1 for natural
language. ``zipf_exponent`` estimates s by least squares on that line. Heaps'
law says a text of n tokens has V(n) ≈ K n^beta distinct ones (``heaps_exponent``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from lmlib._deps import require

# --- text statistics (chapter "Text as data") ----------------------------------------------------

def rank_frequency(tokens: Iterable[str]) -> np.ndarray:
    """Token counts sorted from most to least frequent (rank 1 first)."""
    return np.array(sorted(Counter(tokens).values(), reverse=True), dtype=np.int64)


def zipf_exponent(freqs: np.ndarray, min_rank: int = 10, max_rank: int = 10_000) -> float:
    """Least-squares slope s of log f(r) = log C - s log r
    over ranks [min_rank, max_rank].

    The head (a few function words) and the tail (the many words seen once, all
    tied at frequency 1) bend away from the line, so the fit uses the middle.
    """
    return zipf_fit(freqs, min_rank, max_rank)[0]


def zipf_fit(
    freqs: np.ndarray, min_rank: int = 10, max_rank: int = 10_000
) -> tuple[float, float]:
    """(s, log C) of the least-squares line log f(r) = log C - s log r
    over ranks [min_rank, max_rank]."""
    if len(freqs) < min_rank + 2:
        raise ValueError(
            f"need at least {min_rank + 2} distinct tokens to fit Zipf's law, "
            f"got {len(freqs)}"
        )
    ranks = np.arange(1, len(freqs) + 1)
    keep = (ranks >= min_rank) & (ranks <= max_rank)
    slope, log_c = np.polyfit(np.log(ranks[keep]), np.log(freqs[keep]), 1)
    return float(-slope), float(log_c)


def zipf_summary(freqs: np.ndarray, top: int = 100) -> dict[str, float]:
    """Zipf exponent, the share of the vocabulary seen once, and the share of the text the ``top`` words make."""
    return {
        "s": zipf_exponent(freqs),
        "seen once (% of vocabulary)": 100 * float((freqs == 1).sum()) / len(freqs),
        f"top {top} words (% of text)": 100 * float(freqs[:top].sum()) / float(freqs.sum()),
    }


def vocabulary_growth(tokens: Iterable[str], points: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Heaps' law data: V(n), the number of distinct tokens among the first n, at ``points`` values of n.

    The n are spaced evenly on a log scale from 1 to the number of tokens, so
    a log-log plot shows every decade alike.
    """
    tokens = list(tokens)
    if not tokens:
        raise ValueError("no tokens: vocabulary growth needs a non-empty token stream")
    wanted = np.unique(np.geomspace(1, len(tokens), points).round().astype(np.int64))
    seen: set[str] = set()
    sizes, k = [], 0
    for i, tok in enumerate(tokens, start=1):
        seen.add(tok)
        if i == wanted[k]:
            sizes.append(len(seen))
            k += 1
    return wanted, np.array(sizes, dtype=np.int64)


def heaps_exponent(
    n: np.ndarray, sizes: np.ndarray, min_tokens: int = 1_000
) -> tuple[float, float]:
    """Heaps' law V(n) = K n^beta, fitted by least squares on log V = log K + beta log n.

    Only n >= ``min_tokens`` is fitted: over the first few hundred tokens
    almost every token is new, and V(n) ≈ n says nothing about the law.
    Returns (K, beta).
    """
    keep = np.asarray(n) >= min_tokens
    if keep.sum() < 2:
        raise ValueError(
            f"need at least 2 points with n >= {min_tokens} to fit Heaps' law, "
            f"got {keep.sum()}"
        )
    beta, log_k = np.polyfit(
        np.log(np.asarray(n)[keep]), np.log(np.asarray(sizes)[keep]), 1
    )
    return float(np.exp(log_k)), float(beta)


# --- neural networks: activations and optimisers -------------------------------------------------

ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "ReLU": "relu", "GELU": "gelu"}


def activation_curves(x, names=tuple(ACTIVATIONS)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each activation: its values and its derivative at ``x``, the derivative taken by autograd."""
    torch = require("torch")
    curves = {}
    for name in names:
        t = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
        y = getattr(torch.nn.functional, ACTIVATIONS[name])(t)
        (grad,) = torch.autograd.grad(y.sum(), t)
        curves[name] = (y.detach().numpy(), grad.numpy())
    return curves


def optimizer_paths(loss: Callable, start: tuple[float, float], optimizers: dict[str, tuple[type, dict]],
                    steps: int) -> dict[str, np.ndarray]:
    """Run each torch optimizer (class, kwargs) from ``start`` on a 2-D ``loss(p)``; [steps + 1, 2] points each."""
    torch = require("torch")
    paths = {}
    for name, (optimizer_class, kwargs) in optimizers.items():
        p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        optimizer = optimizer_class([p], **kwargs)
        points = [p.detach().clone()]
        for _ in range(steps):
            optimizer.zero_grad()
            loss(p).backward()
            optimizer.step()
            points.append(p.detach().clone())
        paths[name] = torch.stack(points).numpy()
    return paths


# --- word vectors (chapter "Word embeddings") ----------------------------------------------------

def pca_2d(vectors) -> tuple[np.ndarray, np.ndarray]:
    """[n, d] vectors -> ([n, 2] their coordinates on the first two principal
    components, [2] the share of the variance each keeps). PCA as the SVD of the
    centred vectors X - mean = U S V^T: the components are the first rows of V^T,
    the variances S^2 / n; each component's sign is set so that its largest entry is
    positive (an SVD's signs are arbitrary, so the map would flip from one library
    version to another)."""
    import torch

    X = torch.as_tensor(vectors, dtype=torch.float64)
    centred = X - X.mean(0)
    _, S, Vh = torch.linalg.svd(centred, full_matrices=False)
    Vh = Vh * torch.sign(Vh.gather(1, Vh.abs().argmax(1, keepdim=True)))
    explained = S**2 / (S**2).sum()
    return (centred @ Vh[:2].T).numpy(), explained[:2].numpy()


# --- decoding (chapter "Generating text") --------------------------------------------------------

def next_token_table(model, prompt: list[str], chain: list, rows: int = 12) -> list[tuple[str, float, float]]:
    """The ``rows`` most probable next tokens after ``prompt``: (token, model probability, probability after
    the processors in ``chain``, i.e. what sampling draws from)."""
    import torch

    from lmlib.generate import sampling_distribution
    from lmlib.lm import model_device

    ids = torch.tensor([[model.vocab.bos_id, *model.vocab.encode(prompt)]], device=model_device(model))
    with torch.no_grad():
        logp = model.next_token_logprobs(ids).double()  # [1, V]
    q = sampling_distribution(logp, ids, chain)[0]
    top = logp[0].topk(rows).indices.tolist()
    return [(model.vocab.itos[i], float(logp[0, i].exp()), float(q[i])) for i in top]


# --- error analysis (chapter "Classification and sentiment") -------------------------------------

def most_confidently_wrong(probability, labels, k: int) -> list[int]:
    """The k misclassified examples with the most confidence in the wrong class, most confident
    first (ties: the lower index first): a fixed rule for which errors to read.

    ``probability`` [N]: each example's P(class 1); ``labels`` [N]: 0 or 1. An example is
    misclassified when it gets more than 1/2 for the class it does not have."""
    p, y = np.asarray(probability, dtype=np.float64), np.asarray(labels)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"need one probability per label, got shapes {p.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all() or ((p < 0) | (p > 1)).any():
        raise ValueError("labels must be 0 or 1 and probabilities P(class 1) in [0, 1]")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    wrong_class = np.where(y == 1, 1 - p, p)  # the probability given to the other class
    wrong = np.flatnonzero(wrong_class > 0.5)
    return sorted(wrong.tolist(), key=lambda i: (-wrong_class[i], i))[:k]

