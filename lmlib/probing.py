"""Probing: what can a linear classifier read from a Transformer's hidden states, layer by layer?

A *probe* is a simple classifier (here multinomial logistic regression, scikit-learn's) trained to
predict a property of each token, part of speech say, from the vector x^(l)_t that layer l of a
frozen model gives token t. High accuracy says the property is linearly decodable there; it does
not say the model uses it. A probe can also score well by memorising each token type's usual label,
which says little about the model. Hewitt and Liang (2019) separate the two with a *control task*:
give every token type a random label, drawn once per type from the empirical distribution of the
real labels, and train the same probe on it. Only memorising types helps there, so

    selectivity(l) = accuracy(l, real labels) - accuracy(l, control labels)

is how much the probe's accuracy at layer l depends on the property rather than on memorising types.

Layer 0 is the token embeddings (the input to the first block, positions added where the model
adds them), layer l the residual stream after block l (before the final norm).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np
import torch

from lmlib.lm import model_device
from lmlib.metrics import Interval, _check_bootstrap, _percentiles, _resamples
from lmlib.transformer import GPT

SENTENCE_END = frozenset("。！？")


def coarse_tag(tag: str) -> str:
    """The PKU tag's first letter, lower case: its main class (nr, ns, nt, Ng -> n; vn, vd, Vg -> v)."""
    return tag[0].lower()


def tagged_sentences(paragraphs: Sequence[Sequence[tuple[str, str]]],
                     max_chars: int = 127) -> list[tuple[list[str], list[str]]]:
    """People's Daily (word, tag) paragraphs -> sentences as (characters, each character's coarse tag):
    a character's part of speech is its word's. A sentence ends after a word 。！？; sentences longer
    than ``max_chars`` are left out (a model reading at most max_chars + 1 tokens with ``<bos>``)."""
    sentences = []
    for paragraph in paragraphs:
        chars: list[str] = []
        tags: list[str] = []
        for word, tag in paragraph:
            chars += list(word)
            tags += [coarse_tag(tag)] * len(word)
            if word in SENTENCE_END:
                sentences.append((chars, tags))
                chars, tags = [], []
        if chars:
            sentences.append((chars, tags))
    return [(c, t) for c, t in sentences if 0 < len(c) <= max_chars]


@torch.no_grad()
def layer_states(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    """[B, T] ids (T <= block_size) -> [L + 1, B, T, d_model]: each token's vector after
    the embeddings (layer 0) and after each of the L blocks, read with forward hooks
    while the model reads ``ids`` as it always does."""
    states: list[torch.Tensor] = []
    hooks = [model.drop.register_forward_hook(  # embeddings (+ positions) -> dropout
        lambda module, inputs, out: states.append(out))]
    hooks += [block.register_forward_hook(  # a block returns (x, its keys and values)
        lambda module, inputs, out: states.append(out[0])) for block in model.blocks]
    try:
        model.eval()
        model.hidden_states(ids)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(states)


def token_states(model: GPT, sentences: Sequence[Sequence[str]],
                 batch_size: int = 64) -> np.ndarray:
    """[L + 1, N, d_model] float64: ``layer_states`` of every token of the sentences (each
    read from ``<bos>``, alone in its row; ``<bos>`` itself left out), N = all their
    tokens, sentence after sentence."""
    from lmlib.lm import encode_batch

    rows = []
    for a in range(0, len(sentences), batch_size):
        batch = sentences[a : a + batch_size]
        ids = encode_batch(model.vocab, batch, eos=False).to(model_device(model))  # [B, T]
        states = layer_states(model, ids)  # [L + 1, B, T, d]
        rows += [states[:, i, 1 : len(s) + 1] for i, s in enumerate(batch)]
    return torch.cat(rows, dim=1).double().cpu().numpy()


def control_labels(types: Sequence[Hashable], labels: Sequence[Hashable],
                   seed: int = 0) -> dict:
    """Hewitt and Liang's control task: each distinct type (in order of first
    appearance) gets one label, drawn independently from the empirical distribution
    of ``labels`` (NumPy, seeded). Every occurrence of a type, in training and test
    data alike, then carries its type's label."""
    if len(types) != len(labels) or not types:
        raise ValueError("types and labels must be one per token and not empty: "
                         f"{len(types)} vs {len(labels)}")
    counts = Counter(labels)
    values = sorted(counts, key=str)
    p = np.array([counts[v] for v in values], dtype=np.float64) / len(labels)
    distinct = list(dict.fromkeys(types))
    drawn = np.random.default_rng(seed).choice(len(values), size=len(distinct), p=p)
    return {t: values[i] for t, i in zip(distinct, drawn, strict=True)}


def fit_probe(features: np.ndarray, labels: Sequence[Hashable], C: float = 0.1,
              max_iter: int = 300, tol: float = 1e-3):
    """A linear probe: the features standardised, then multinomial logistic regression
    (L2 penalty of strength 1/C), fitted with scikit-learn's Newton-CG solver to
    tolerance ``tol`` (a few Newton steps where L-BFGS takes dozens; on the risks
    chapter's probes, accuracies within 0.002 of a fully converged fit's). Returns the fitted
    pipeline: ``probe.predict(features)``. A smaller C is a simpler probe, which
    memorises less (Hewitt and Liang's point: selectivity depends on it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features must be [n, d] with one label per row: {features.shape} "
                         f"and {len(labels)} labels")
    probe = LogisticRegression(C=C, solver="newton-cg", max_iter=max_iter, tol=tol)
    return make_pipeline(StandardScaler(), probe).fit(features, list(labels))


def grouped_mean_interval(values: Sequence[float], groups: Sequence[Hashable], *, n_resamples: int = 1000,
                          confidence: float = 0.95, seed: int = 0) -> Interval:
    """The mean of per-token ``values`` with a percentile bootstrap interval that resamples whole groups
    (sentences) with replacement: each resample's mean is Σ values / Σ tokens over the groups drawn.
    The resamples are ``lmlib.metrics.bootstrap_interval``'s over the groups in order of first appearance."""
    v, labels = np.asarray(values, dtype=np.float64), np.asarray(groups)
    if v.ndim != 1 or labels.shape != v.shape:
        raise ValueError(f"values and groups must be 1-D and of one length: {v.shape} vs {labels.shape}")
    _, first, group = np.unique(labels, return_index=True, return_inverse=True)
    group = np.argsort(np.argsort(first))[group]  # numbered in order of first appearance
    n_groups = int(group.max()) + 1 if len(group) else 0
    _check_bootstrap(n_groups, n_resamples, confidence)
    sums, sizes = np.bincount(group, v, n_groups), np.bincount(group, minlength=n_groups)
    means = [(w @ sums) / (w @ sizes) for w in (np.bincount(idx, minlength=n_groups)
                                               for idx in _resamples(n_groups, n_resamples, seed))]
    return Interval(float(v.mean()), *_percentiles(means, confidence), confidence)
