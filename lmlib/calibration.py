"""Calibration: does a model's confidence match how often it is right?

Each prediction i has a confidence c_i in [0, 1] (for a language model, the probability
of its top choice) and a correctness a_i in {0, 1}. Cut [0, 1] into M bins of equal width,
B_m = ((m - 1)/M, m/M] (the first bin includes 0), and compare within each bin the mean
confidence with the accuracy:

    conf(B_m) = mean_{i ∈ B_m} c_i,    acc(B_m) = mean_{i ∈ B_m} a_i
    ECE = Σ_m (|B_m| / n) |acc(B_m) - conf(B_m)|

(the expected calibration error of Naeini, Cooper and Hauskrecht, 2015, as Guo et al.,
2017, use it). A calibrated model's predictions made with confidence 0.8 are right 80 % of
the time; its ECE is near 0, though not exactly 0 on a finite sample, and it depends on M.
The *reliability diagram* plots acc(B_m) against conf(B_m).

Predictions that share a context (the words of one sentence) are not independent, so
``ece_interval`` resamples whole groups (sentences), not single predictions.
``decision_margins`` says how far a greedy continuation is from a tie at each step: a
continuation printed from a model is the same on another CPU only if no step is near one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lmlib.lm import LanguageModel, encode_batch, model_device
from lmlib.metrics import Interval, _check_bootstrap, _percentiles, _resamples
from lmlib.neural import NeuralLM, log_softmax


@dataclass(frozen=True)
class ReliabilityBins:
    edges: np.ndarray  # [M + 1] bin edges, 0 .. 1
    counts: np.ndarray  # [M] |B_m|
    confidence: np.ndarray  # [M] conf(B_m), NaN where the bin is empty
    accuracy: np.ndarray  # [M] acc(B_m), NaN where the bin is empty


def _check(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(confidence, dtype=np.float64)
    a = np.asarray(correct, dtype=np.float64)
    if c.ndim != 1 or c.shape != a.shape or len(c) == 0:
        raise ValueError("confidence and correct must be 1-D, of one length and not empty; "
                         f"got shapes {c.shape} and {a.shape}")
    if ((c < 0) | (c > 1) | np.isnan(c)).any():
        raise ValueError("confidence must lie in [0, 1]: pass probabilities, not "
                         "log-probabilities or logits")
    if not np.isin(a, (0, 1)).all():
        raise ValueError("correct must hold 0/1 (or True/False) per prediction")
    return c, a


def bin_edges(n_bins: int) -> np.ndarray:
    """[M + 1] edges m / M, each the float nearest it (np.linspace's 0.3 is
    0.30000000000000004, which would put 0.3 itself in the lower bin)."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, not {n_bins!r}")
    return np.arange(n_bins + 1) / n_bins


def bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Each confidence's bin, 0 .. M - 1: bins ((m - 1)/M, m/M], 0 in the first."""
    return np.searchsorted(bin_edges(n_bins)[1:-1], confidence, side="left")


def _bin_sums(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> np.ndarray:
    """[3, M]: per bin, the count, the sum of the confidences, the number right."""
    b = bin_index(confidence, n_bins)
    return np.stack([np.bincount(b, minlength=n_bins),
                     np.bincount(b, confidence, n_bins),
                     np.bincount(b, correct, n_bins)]).astype(np.float64)


def _ece_from_sums(sums: np.ndarray) -> float:
    # Σ_m (|B_m| / n) |acc_m - conf_m| = Σ_m |right_m - Σ_{B_m} c| / n
    counts, confidence, right = sums
    return float(np.abs(right - confidence).sum() / counts.sum())


def expected_calibration_error(confidence, correct, n_bins: int = 10) -> float:
    """ECE = Σ_m (|B_m| / n) |acc(B_m) - conf(B_m)| over M = ``n_bins`` equal bins."""
    c, a = _check(confidence, correct)
    return _ece_from_sums(_bin_sums(c, a, n_bins))


def reliability_bins(confidence, correct, n_bins: int = 10) -> ReliabilityBins:
    """Per bin: how many predictions, their mean confidence, their accuracy (the
    points of a reliability diagram)."""
    c, a = _check(confidence, correct)
    counts, conf, right = _bin_sums(c, a, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ReliabilityBins(bin_edges(n_bins), counts.astype(np.int64), conf / counts,
                               right / counts)


def ece_interval(confidence, correct, groups, n_bins: int = 10, *, n_resamples: int = 1000,
                 confidence_level: float = 0.95, seed: int = 0) -> Interval:
    """The ECE with a percentile bootstrap interval that resamples whole groups (e.g.
    sentences; ``groups`` labels each prediction's group) with replacement.

    The resamples are ``lmlib.metrics.bootstrap_interval``'s over the groups (in order of
    first appearance) with the same seed; each is computed from per-group bin sums, so a
    thousand resamples of tens of thousands of predictions take a moment.
    """
    c, a = _check(confidence, correct)
    labels = np.asarray(groups)
    if labels.shape != c.shape:
        raise ValueError(f"groups must give one label per prediction: {labels.shape} vs {c.shape}")
    group = _groups_in_order(labels)
    n_groups = int(group.max()) + 1
    _check_bootstrap(n_groups, n_resamples, confidence_level)
    per_group = np.zeros((n_groups, 3, n_bins))  # [G, 3, M]: each group's bin sums
    b = bin_index(c, n_bins)
    for row, values in enumerate((np.ones_like(c), c, a)):
        np.add.at(per_group, (group, row, b), values)
    flat = per_group.reshape(n_groups, 3 * n_bins)
    estimates = [_ece_from_sums((np.bincount(idx, minlength=n_groups) @ flat).reshape(3, n_bins))
                 for idx in _resamples(n_groups, n_resamples, seed)]
    return Interval(_ece_from_sums(per_group.sum(0)), *_percentiles(estimates, confidence_level),
                    confidence_level)


def _groups_in_order(labels: np.ndarray) -> np.ndarray:
    """Each item's group number, groups numbered 0, 1, .. in order of first appearance."""
    _, first, group = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[group.reshape(-1)]


@dataclass(frozen=True)
class NextTokenPredictions:
    confidence: np.ndarray  # [n] P(top choice | context), float64
    predicted: np.ndarray  # [n] the top choice's id (ties: the lowest id)
    target: np.ndarray  # [n] the token that came next in the text
    sentence: np.ndarray  # [n] which sentence each prediction is in (0, 1, ..)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.target


@torch.no_grad()
def next_token_predictions(model: NeuralLM, sentences: Sequence[Sequence[str]],
                           among: Sequence[str] | None = None,
                           batch_size: int = 64) -> NextTokenPredictions:
    """The model's top choice and its probability at every predicted position of the
    sentences (each word and ``<eos>``, as perplexity counts them), in order.

    ``among``: choose among these tokens only, their probabilities renormalised to sum
    to 1 (a cloze question that says what kind of word is missing: "which year?")."""
    vocab = model.vocab
    device = model_device(model)
    allowed = None
    if among is not None:
        unknown = [t for t in among if t not in vocab]
        if unknown or not among:
            raise ValueError(f"among must name tokens of the vocabulary; not in it: {unknown[:5]}")
        # ascending ids: a tie goes to the lowest id, as over the whole vocabulary
        allowed = torch.tensor(sorted(set(vocab.encode(list(among)))), device=device)  # [K]
    parts = []
    for a in range(0, len(sentences), batch_size):
        ids = encode_batch(vocab, sentences[a : a + batch_size]).to(device)  # [B, T]
        target = ids[:, 1:]  # [B, T-1]
        keep = target != vocab.pad_id  # the n positions with a token to predict
        # the output layer only where there is a token to predict: [n, V], not [B, T-1, V]
        logits = model.logits(model.scoring_hidden_states(ids[:, :-1])[keep])  # [n, V]
        if allowed is not None:  # a softmax over `among` only
            logits = logits[:, allowed]  # [n, K]
        best, choice = log_softmax(logits).max(dim=-1)  # [n]: ln P(top choice), its column
        predicted = choice if allowed is None else allowed[choice]
        sentence = torch.arange(a, a + len(ids), device=device)[:, None].expand_as(target)[keep]
        parts.append([x.cpu() for x in (best.double().exp(), predicted, target[keep], sentence)])
    return NextTokenPredictions(*(torch.cat(c).numpy() for c in zip(*parts, strict=True)))


@torch.no_grad()
def decision_margins(model: LanguageModel, prompt: Sequence[str],
                     continuation: Sequence[str]) -> list[float]:
    """At each step of a continuation of ``prompt``: ln P(first choice) - ln P(second
    choice) of the next-token distribution (nats). A margin near 0 is a near-tie, which
    round-off on another CPU could turn the other way."""
    vocab = model.vocab
    ids = [vocab.bos_id, *vocab.encode([*prompt, *continuation])]
    margins = []
    for t in range(len(continuation)):
        context = torch.tensor([ids[: len(ids) - len(continuation) + t]],
                               device=model_device(model))
        top = model.next_token_logprobs(context)[0].double().topk(2).values
        margins.append(float(top[0] - top[1]))
    return margins
