"""Memorisation of training data, measured with canaries (Carlini et al., 2019, "The Secret Sharer").

A *canary* is a sentence with a random secret, ``prefix + secret``, put into the training text r
times. The secret is a string of ``length`` symbols from an alphabet of K (six digits: K^length =
10^6 candidates, the set R). After training, every candidate s' in R is scored by the model after
the prefix, and the canary's secret s is ranked among them:

    ln P(s' | prefix) = Σ_t ln P(s'_t | prefix, s'_{<t})
    rank(s)           = 1 + |{s' ∈ R : ln P(s' | prefix) > ln P(s | prefix)}|
    exposure(s)       = log2 |R| - log2 rank(s)

A model that learned nothing of the canary ranks it like any other candidate: rank uniform on
1..|R|, expected exposure about 1/ln 2 = 1.44 bits. A model that ranks it first gives it the
whole log2 |R| (19.9 bits for 10^6 candidates). When R is too large to score, Carlini et al.
estimate the exposure from a sample of candidates (a skew-normal distribution fitted to their
scores); here every candidate is scored, and the rank is exact: the
candidates form a tree of K^length leaves, each of the K^(length-1) + .. + K + 1 inner nodes is
one context the model reads (one token at a time, from the cache of its parent, for a model with
``IncrementalDecoding``), and a candidate's score is the sum along its path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from lmlib.lm import IncrementalDecoding, LanguageModel, model_device

DIGITS = tuple("0123456789")


def random_secrets(n: int, length: int = 6, alphabet: Sequence[str] = DIGITS,
                   seed: int = 0) -> list[str]:
    """``n`` different secrets of ``length`` symbols drawn uniformly from ``alphabet``
    (NumPy, seeded; a repeat is drawn again)."""
    if len(set(alphabet)) ** length < n:
        raise ValueError(f"only {len(set(alphabet)) ** length} different secrets of "
                         f"length {length} exist; asked for {n}")
    rng, secrets = np.random.default_rng(seed), []
    while len(secrets) < n:
        secret = "".join(alphabet[i] for i in rng.integers(0, len(alphabet), length))
        if secret not in secrets:
            secrets.append(secret)
    return secrets


def secret_index(secret: Sequence[str], alphabet: Sequence[str] = DIGITS) -> int:
    """The candidate's position in ``candidate_logprobs``' order: the secret read as a
    number in base K = len(alphabet), each symbol's place in the alphabet a digit
    ("000120" -> 120)."""
    position = {a: i for i, a in enumerate(alphabet)}
    unknown = [s for s in secret if s not in position]
    if unknown:
        raise ValueError(f"the secret {''.join(secret)!r} has symbols outside the "
                         f"alphabet: {unknown}")
    index = 0
    for symbol in secret:
        index = index * len(alphabet) + position[symbol]
    return index


@torch.no_grad()
def candidate_logprobs(model: LanguageModel, prefix: Sequence[str], length: int = 6,
                       alphabet: Sequence[str] = DIGITS,
                       max_rows: int = 250) -> torch.Tensor:
    """[K^length] float64: ln P(s | <bos> prefix) of every candidate secret s, in
    ``secret_index`` order. ``prefix`` and ``alphabet`` are tokens of the model's
    vocabulary (for a character model, characters). The model reads at most
    ``max_rows`` contexts at once (memory: a Transformer keeps a cache per row)."""
    vocab = model.vocab
    missing = sorted({a for a in [*prefix, *alphabet] if a not in vocab})
    if missing or len(set(alphabet)) != len(alphabet) or length < 1:
        raise ValueError(
            "candidate_logprobs needs length >= 1, distinct alphabet tokens, and a "
            f"prefix and alphabet in the vocabulary (not in it: {missing}; "
            f"length {length})")
    device = model_device(model)
    symbols = torch.tensor(vocab.encode(list(alphabet)), device=device)  # [K]
    start = [vocab.bos_id, *vocab.encode(list(prefix))]
    context = torch.tensor([start], device=device)  # [1, T0]
    cache = None
    if isinstance(model, IncrementalDecoding):
        logp, cache = model.decode_step(context, None)  # [1, V]
    else:
        logp = model.next_token_logprobs(context)
    first = logp.double()[:, symbols]  # [1, K]: ln P(first symbol | prefix)
    return _expand(model, context, cache, first, symbols, length, max_rows).flatten()


def _expand(model, contexts: torch.Tensor, cache, first: torch.Tensor,
            symbols: torch.Tensor, remaining: int, max_rows: int) -> torch.Tensor:
    """[B, K^remaining]: ln P of every string of ``remaining`` symbols after each of the
    B contexts, given ``first`` [B, K] = ln P(next symbol | context). The children
    (each context + one symbol) are read max_rows // K parents at a time, each from
    its parent's cache when the model has one (one new token a row)."""
    if remaining == 1:
        return first
    n_parents, K = len(contexts), len(symbols)
    step = max(1, max_rows // K)
    parts = []
    for a in range(0, n_parents, step):
        parents = torch.arange(a, min(a + step, n_parents), device=contexts.device)
        rows = parents.repeat_interleave(K)  # [b K]: each parent K times
        appended = symbols.repeat(len(parents))  # [b K]: each child's new symbol
        children = torch.cat([contexts[rows], appended[:, None]], dim=1)  # [b K, T+1]
        if cache is not None:
            parent_cache = model.reorder_cache(cache, rows)
            logp, child_cache = model.decode_step(appended[:, None], parent_cache)
        else:
            logp, child_cache = model.next_token_logprobs(children), None
        deeper = _expand(model, children, child_cache, logp.double()[:, symbols],
                         symbols, remaining - 1, max_rows)  # [b K, K^(remaining-1)]
        # a candidate's score: its first symbol's, plus the rest's after it
        total = first[parents].reshape(-1, 1) + deeper  # [b K, K^(remaining-1)]
        parts.append(total.reshape(len(parents), -1))  # [b, K^remaining]
    return torch.cat(parts)


def rank_of(logprobs: torch.Tensor, index: int) -> int:
    """1 + the number of candidates scored strictly higher than candidate ``index``:
    its place with the candidates sorted most probable first. A tie counts in its
    favour (the best rank it could be given: SciPy's ``rankdata(method="min")``)."""
    return 1 + int((logprobs > logprobs[index]).sum())


def exposure(logprobs: torch.Tensor, index: int) -> float:
    """log2 |R| - log2 rank: the bits of the secret the model gives away
    (from 0, ranked last, to log2 |R|, ranked first)."""
    return math.log2(len(logprobs)) - math.log2(rank_of(logprobs, index))
