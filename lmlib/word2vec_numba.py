"""Word2Vec's skip-gram training loop compiled with Numba: the fast path of ``lmlib.word2vec`` (``fast=True``).

The same algorithm as ``lmlib.word2vec``'s batched PyTorch steps, run pair by pair
as word2vec.c and gensim run it, in compiled loops instead of tensor operations:
for each kept centre word c and each word j of its shrunk window (same sentence),
the context word's input vector u = syn0[j] predicts c against K noise words,

    g_0 = (1 - σ(u · v_c)) α,   g_k = (0 - σ(u · v_{n_k})) α    (g = -α ∂L/∂(u · v), as ``sgns_gradients``)
    syn0[j] += Σ_k g_k v_k,      v_k += g_k u                    (k = 0: the centre word, 1..K: the noise words)

with every g and every v read before any of them is written: one pair's update
is exactly ``skipgram_step`` on a batch of that one pair. The pairs follow each
other (each sees the updates of the ones before it), and with several threads
the blocks of centres are shared out and the vectors updated without locks
("Hogwild"), as word2vec.c's and gensim's threads do.

The noise words are drawn inside the loop from ``noise_table`` with word2vec.c's
linear congruential generator, x <- 25214903917 x + 11 (mod 2^64), slot
(x >> 16) mod |table|: each block of centres starts from its own seed, so the
draws do not depend on which thread runs the block. Subsampling, the shrunk
windows and the seeds come from ``Word2Vec``'s PyTorch generator, as on the
batched path.

Numba compiles these functions on their first call (a few seconds) and caches
the machine code next to this file (``cache=True``), so later processes load it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

MULTIPLIER, INCREMENT = np.uint64(25214903917), np.uint64(11)  # word2vec.c's next_random
SHIFT = np.uint64(16)


@numba.njit(cache=True, inline="always")
def draw_noise(state: np.uint64, table: np.ndarray) -> tuple[np.uint64, int]:
    """One noise word: word2vec.c's generator step x <- 25214903917 x + 11 (mod 2^64), then slot
    (x >> 16) mod |table|; returns the new state and the word."""
    state = state * MULTIPLIER + INCREMENT
    return state, table[(state >> SHIFT) % np.uint64(len(table))]


@numba.njit(cache=True)
def noise_draws(table: np.ndarray, seed: int, count: int) -> np.ndarray:
    """The first ``count`` noise words of a block of ``skipgram_epoch`` whose seed is ``seed``; [count] int64."""
    state, out = np.uint64(seed), np.empty(count, dtype=np.int64)
    for i in range(count):
        state, out[i] = draw_noise(state, table)
    return out


@numba.njit(cache=True, inline="always")
def log_sigmoid(x: float) -> float:
    """ln σ(x) without overflow: min(x, 0) - ln(1 + e^-|x|)."""
    return min(x, 0.0) - math.log1p(math.exp(-abs(x)))


@numba.njit(cache=True, fastmath=True, inline="always")
def pair_update(syn0, syn1neg, word, target, negatives, alpha, errors, work, with_loss) -> float:
    """``skipgram_step`` for one pair: syn0[word] predicts ``target`` against ``negatives`` [K]; its loss
    (0.0 unless ``with_loss``). ``errors`` [K + 1] and ``work`` [d] are scratch space."""
    K, d = len(negatives), syn0.shape[1]
    loss = 0.0
    for k in range(K + 1):  # g_k, from the vectors before the update
        out = target if k == 0 else negatives[k - 1]
        if k > 0 and out == target:  # a noise word that is the target is skipped, as in word2vec.c
            errors[k] = 0.0
            continue
        f = np.float32(0.0)
        for i in range(d):
            f += syn0[word, i] * syn1neg[out, i]
        label = 1.0 if k == 0 else 0.0
        errors[k] = (label - 1.0 / (1.0 + math.exp(-f))) * alpha
        if with_loss:
            loss -= log_sigmoid(f if k == 0 else -f)
    work[:] = 0.0
    for k in range(K + 1):  # -α ∂L/∂u = Σ_k g_k v_k, from the v before their update
        out = target if k == 0 else negatives[k - 1]
        for i in range(d):
            work[i] += errors[k] * syn1neg[out, i]
    for k in range(K + 1):  # v_k += g_k u
        out = target if k == 0 else negatives[k - 1]
        for i in range(d):
            syn1neg[out, i] += errors[k] * syn0[word, i]
    for i in range(d):
        syn0[word, i] += work[i]
    return loss


@numba.njit(cache=True, parallel=True, nogil=True, fastmath=True)
def skipgram_epoch(syn0, syn1neg, ids, sents, spans, table, negative, block_size, alphas, seeds, log_every):
    """One epoch of skip-gram over the kept words ``ids`` [n] (sentence numbers ``sents``, windows ``spans``).

    Centres come in blocks of ``block_size``; block b trains with α = ``alphas[b]``,
    draws its noise words from ``seeds[b]``, and its pairs come in ``skipgram_pairs``'
    order: centre by centre, context words left to right. Returns, per block, the
    summed loss of its pairs (blocks b with b % ``log_every`` == 0; NaN for the
    others) and its number of pairs.
    """
    n, d = len(ids), syn0.shape[1]
    blocks = len(alphas)
    losses, pairs = np.full(blocks, np.nan), np.zeros(blocks, dtype=np.int64)
    for b in numba.prange(blocks):
        negatives = np.empty(negative, dtype=np.int64)
        errors, work = np.empty(negative + 1, dtype=np.float32), np.empty(d, dtype=np.float32)
        state, alpha, with_loss = np.uint64(seeds[b]), np.float32(alphas[b]), b % log_every == 0
        loss, count = 0.0, 0
        for c in range(b * block_size, min(n, (b + 1) * block_size)):
            for j in range(max(0, c - spans[c]), min(n, c + spans[c] + 1)):
                if j == c or sents[j] != sents[c]:
                    continue
                for k in range(negative):
                    state, negatives[k] = draw_noise(state, table)
                # word2vec.c's order, as on the batched path: the context word predicts the centre word
                loss += pair_update(syn0, syn1neg, ids[j], ids[c], negatives, alpha, errors, work, with_loss)
                count += 1
        pairs[b] = count
        if with_loss:
            losses[b] = loss
    return losses, pairs
