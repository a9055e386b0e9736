"""Word2Vec: skip-gram and CBOW with negative sampling (Mikolov et al., 2013), trained as word2vec.c and gensim do.

Every word w has two vectors: an input vector u_w (a row of ``syn0``, the word
vector one keeps) and an output vector v_w (a row of ``syn1neg``). Skip-gram
pairs each centre word w with every word c near it and predicts one from the
other; CBOW predicts the centre word from the mean of the words around it.
Instead of a softmax over the whole vocabulary, negative sampling turns each
prediction into K+1 binary ones: the observed pair is "real", and K words
n_1..n_K drawn from a noise distribution P_n are "noise":

    L(w, c) = -ln σ(u_w · v_c) - Σ_k ln σ(-u_w · v_{n_k}),      n_k ~ P_n,  P_n(x) ∝ count(x)^0.75

and the vectors follow plain SGD on L, pair by pair, with a learning rate α
that falls linearly from ``alpha`` to ``min_alpha`` over the words processed.
For CBOW, u is the mean of the context words' input vectors and c the centre word.

What the original tool does, and this module with it:

- a vocabulary of the words seen at least ``min_count`` times; rarer words are
  dropped from the text before windows are formed;
- subsampling: each occurrence of a word with count f among T words is kept
  with probability (sqrt(f / (s T)) + 1) (s T) / f (``sample`` = s), so very
  frequent words are thinned out, again before windows are formed;
- a dynamic window: for each centre, b is drawn uniformly from {0, .., window-1}
  and only words within window - b positions count, so near words weigh more;
  windows never cross a sentence boundary;
- ``syn0`` starts uniform in [-1, 1) / vector_size (gensim 4; word2vec.c
  draws from half that range) and ``syn1neg`` at zero;
- a negative draw that equals the word being predicted is skipped.

Where this differs from the C code, it says so: the updates of ``batch_size``
centre words are computed from the same vectors and then added together
(``index_add_``), like several word2vec.c threads writing at once without
locks; σ is computed exactly, where word2vec.c reads a table and gensim skips
pairs with |u · v| >= 6. In skip-gram, like word2vec.c and gensim, the context
word's input vector u predicts the centre word, the paper's pairs the other way
round (every pair occurs both ways, up to the shrunk windows).

``fast=True`` (skip-gram only) runs the same training in compiled loops
(``lmlib.word2vec_numba``, with Numba): the same subsampling, windows, blocks of
``batch_size`` centres and α, but one pair after the other, as word2vec.c does,
each pair's update being ``skipgram_step`` on a batch of that one pair; noise
words come from the same ``noise_table`` through word2vec.c's own generator.
It is the faster path (benchmarks/results/word2vec.md compares both with gensim).

``Word2Vec`` mirrors ``gensim.models.Word2Vec``'s arguments and its
``KeyedVectors``' look-ups, and ``to_keyed_vectors()`` hands the vectors to
gensim itself, so gensim's evaluations run on them unchanged. ``weat`` probes trained
vectors for an association between two sets of words and two others (e.g. gender and occupations).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse
from scipy.sparse.linalg import svds
from scipy.stats import spearmanr

from lmlib._deps import require
from lmlib.show import progress_bar


@dataclass(frozen=True)
class Word2VecConfig:
    vector_size: int = 100  # d: the size of every word vector
    window: int = 5  # the largest distance between centre and context word
    negative: int = 5  # K: noise words per prediction
    sg: int = 0  # 1: skip-gram, 0: CBOW (gensim's default)
    min_count: int = 5  # words seen fewer times are dropped
    sample: float = 1e-3  # s: subsampling threshold (0: keep every word)
    epochs: int = 5  # passes over the corpus
    alpha: float = 0.025  # learning rate at the start ...
    min_alpha: float = 0.0001  # ... falling linearly to this at the end
    seed: int = 1
    batch_size: int = 256  # centre words whose updates are computed together
    workers: int = 1  # threads training at once (1: reproducible; more: faster, as word2vec.c's threads)
    fast: bool = False  # skip-gram only: compiled pair-by-pair loops (lmlib.word2vec_numba) instead of batches


LOG_EVERY = 20  # the training history records the loss of every 20th batch


# --- the pieces of the algorithm, one function each ----------------------------------------------

def build_vocab(sentences: Sequence[Sequence[str]], min_count: int) -> tuple[list[str], torch.Tensor]:
    """The words seen at least ``min_count`` times, most frequent first (ties: first seen first), and their counts."""
    counts = Counter(w for sentence in sentences for w in sentence)
    kept = [(w, c) for w, c in counts.most_common() if c >= min_count]
    if not kept:
        word, count = counts.most_common(1)[0]
        raise ValueError(
            f"min_count={min_count} removes every word: the most frequent word, {word!r}, occurs {count} times; "
            f"use min_count <= {count}"
        )
    return [w for w, _ in kept], torch.tensor([c for _, c in kept], dtype=torch.int64)


def encode_corpus(
    sentences: Sequence[Sequence[str]], key_to_index: dict[str, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The corpus as one stream of word ids [N] and the sentence number of each [N]; words not kept are left out."""
    ids, sentence_ids = [], []
    for s, sentence in enumerate(sentences):
        kept = [key_to_index[w] for w in sentence if w in key_to_index]
        ids += kept
        sentence_ids += [s] * len(kept)
    return torch.tensor(ids, dtype=torch.int64), torch.tensor(sentence_ids, dtype=torch.int64)


def subsample_keep_prob(counts: torch.Tensor, sample: float) -> torch.Tensor:
    """The probability of keeping each occurrence of a word, word2vec.c's formula; [V] counts -> [V].

        P_keep(w) = min(1, (sqrt(f(w) / (s T)) + 1) · s T / f(w))

    with f(w) the word's count, T the number of words kept by ``min_count`` and
    s = ``sample``. Words with at most (3 + √5)/2 s T ≈ 2.6 s T occurrences are
    always kept; a word with count f >> s T is kept about sqrt(s T / f) of the
    time. ``sample=0`` keeps all.
    """
    if sample == 0:
        return torch.ones(len(counts))
    threshold = sample * counts.sum().double()  # s T
    f = counts.double()
    return ((torch.sqrt(f / threshold) + 1) * threshold / f).clamp(max=1.0).float()


def negative_sampling_table(counts: torch.Tensor, exponent: float = 0.75) -> torch.Tensor:
    """The noise distribution P_n(w) = count(w)^0.75 / Σ_w' count(w')^0.75;
    [V] counts -> [V] probabilities.

    The power 0.75 flattens the unigram distribution: rare words are drawn more
    often than their frequency, frequent ones less.
    """
    weights = counts.double() ** exponent
    return (weights / weights.sum()).float()


def noise_table(probs: torch.Tensor, size: int = 10**7) -> torch.Tensor:
    """word2vec.c's unigram table [size]: word w fills about P_n(w) · size slots, so a uniform slot draws from P_n.

    word2vec.c uses 10^8 slots; 10^7 (40 MB) puts every word of the course's
    vocabularies within a fraction of a percent of P_n.
    """
    ends = (probs.double().cumsum(0) / probs.sum() * size).round().long()  # [V] last slot + 1 of each word
    slots = torch.diff(ends, prepend=ends.new_zeros(1))  # [V]
    return torch.repeat_interleave(torch.arange(len(probs), dtype=torch.int32), slots)


def draw_negatives(table: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Word ids drawn from the noise distribution: uniform slots of the ``noise_table``; int64 ids of ``shape``."""
    slots = torch.randint(len(table), (torch.Size(shape).numel(),), generator=generator)
    return table.index_select(0, slots).long().view(shape)


def window_positions(
    sentence_ids: torch.Tensor, centers: torch.Tensor, spans: torch.Tensor, window: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions around each centre and which of them are in its window.

    ``centers`` [B] are positions in the stream, ``spans`` [B] their shrunk
    windows window - b. Returns ``where`` [B, 2 window], the positions
    centre-window .. centre+window without the centre (clamped into the
    stream), and ``valid`` [B, 2 window]: inside the stream, at most ``spans``
    away and in the same sentence.
    """
    offsets = torch.cat([torch.arange(-window, 0), torch.arange(1, window + 1)])  # [2w]
    where = centers[:, None] + offsets  # [B, 2w]
    inside = (where >= 0) & (where < len(sentence_ids))
    where = where.clamp(0, len(sentence_ids) - 1)
    valid = (
        inside
        & (offsets.abs() <= spans[:, None])
        & (sentence_ids[where] == sentence_ids[centers, None])
    )
    return where, valid


def skipgram_pairs(
    ids: torch.Tensor, sentence_ids: torch.Tensor, centers: torch.Tensor,
    spans: torch.Tensor, window: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Skip-gram's training pairs for a batch of centres: (centre word, context word)
    ids, [P] and [P].

    Every word within its centre's shrunk window ``spans`` and sentence is a
    context word; the pairs come in text order, centre by centre, left to right.
    """
    where, valid = window_positions(sentence_ids, centers, spans, window)  # [B, 2w]
    center_words = ids[centers, None].expand_as(where)
    return center_words[valid], ids[where][valid]


def sgns_loss(
    center_vecs: torch.Tensor, context_vecs: torch.Tensor, negative_vecs: torch.Tensor,
    negative_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Skip-gram negative-sampling loss of each pair: [P, d], [P, d], [P, K, d] -> [P].

        L = -ln σ(u · v_c) - Σ_k ln σ(-u · v_{n_k})

    u: the input vector (skip-gram: one word of the pair, the centre word in
    the paper's notation, the context word in word2vec.c's and ``Word2Vec``'s
    order; CBOW: the mean of the context words'), v_c: the output vector of the
    word to predict, v_{n_k}: the output vectors of the K noise words.
    ``negative_mask`` [P, K] (bool) leaves out the noise words it marks False.
    """
    positive = F.logsigmoid((center_vecs * context_vecs).sum(-1))  # [P]
    negative = F.logsigmoid(-(negative_vecs * center_vecs[:, None, :]).sum(-1))  # [P, K]
    if negative_mask is not None:
        negative = negative * negative_mask
    return -positive - negative.sum(-1)


def sgns_gradients(
    center_vecs: torch.Tensor, context_vecs: torch.Tensor, negative_vecs: torch.Tensor,
    negative_mask: torch.Tensor | None = None, scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of ``sgns_loss`` by hand (σ'(x) = σ(x)(1 - σ(x)) makes them short):

        ∂L/∂u       = (σ(u · v_c) - 1) v_c + Σ_k σ(u · v_{n_k}) v_{n_k}      [P, d]
        ∂L/∂v_c     = (σ(u · v_c) - 1) u                                      [P, d]
        ∂L/∂v_{n_k} = σ(u · v_{n_k}) u                                        [P, K, d]

    The coefficient of each term is the prediction's error: the predicted
    probability that the pair is real minus its label (1 for the pair, 0 for
    noise). All three come multiplied by ``scale``: SGD passes scale = -α and
    gets its updates without another pass over the [P, K, d] tensor
    (word2vec.c's g = (label - σ) α).
    """
    error_pos = (torch.sigmoid((center_vecs * context_vecs).sum(-1)) - 1) * scale  # [P]
    # [P, K]
    error_neg = torch.sigmoid((negative_vecs * center_vecs[:, None, :]).sum(-1)) * scale
    if negative_mask is not None:
        error_neg = error_neg * negative_mask
    grad_center = (
        error_pos[:, None] * context_vecs
        + torch.bmm(error_neg[:, None, :], negative_vecs).squeeze(1)
    )
    grad_context = error_pos[:, None] * center_vecs
    grad_negative = error_neg[:, :, None] * center_vecs[:, None, :]
    return grad_center, grad_context, grad_negative


def sgd_step(
    syn1neg: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, alpha: float
) -> torch.Tensor:
    """One SGD step on ``sgns_loss`` for P predictions, word2vec.c style; returns the update -α ∂L/∂u [P, d].

    ``inputs`` [P, d] are the input vectors u (rows of ``syn0``, or CBOW's
    means), ``targets`` [P] and ``negatives`` [P, K] the ids of the words to
    predict and of the noise words. The output vectors are updated in place,
    v <- v - α ∂L/∂v, with ``index_add_``: a word that occurs several times in
    the batch gets the sum of its updates. The caller adds the returned update
    to the rows of ``syn0`` that u came from.
    """
    P, K = negatives.shape
    mask = negatives != targets[:, None]  # a noise word that is the target is skipped, as in word2vec.c
    context_vecs = syn1neg.index_select(0, targets)  # [P, d]
    negative_vecs = syn1neg.index_select(0, negatives.flatten()).view(P, K, syn1neg.shape[1])  # [P, K, d]
    update_in, update_target, update_negative = sgns_gradients(inputs, context_vecs, negative_vecs, mask, -alpha)
    syn1neg.index_add_(0, targets, update_target)
    syn1neg.index_add_(0, negatives.flatten(), update_negative.flatten(0, 1))
    return update_in


def skipgram_step(syn0, syn1neg, inputs, targets, negatives, alpha: float) -> None:
    """Skip-gram: for each pair, u = syn0[input word] predicts the target word;
    u <- u - α ∂L/∂u.

    ``inputs``, ``targets`` [P] and ``negatives`` [P, K] are word ids. Called,
    as word2vec.c does, with the context word as input and the centre word as
    target.
    """
    update = sgd_step(syn1neg, syn0.index_select(0, inputs), targets, negatives, alpha)
    syn0.index_add_(0, inputs, update)


def cbow_step(syn0, syn1neg, contexts, valid, centers, negatives, alpha: float) -> None:
    """CBOW: u = the mean of the context words' rows of syn0 [B, d] predicts the centre
    word.

    ``contexts`` [B, 2w] are word ids, ``valid`` [B, 2w] which of them are in
    the window. As in word2vec.c (and gensim's ``cbow_mean=1``), every context
    word gets the whole update -α ∂L/∂u, not a share of it.
    """
    inputs = cbow_inputs(syn0, contexts, valid)  # [B, d]
    update = sgd_step(syn1neg, inputs, centers, negatives, alpha)  # [B, d]
    rows = valid.nonzero()[:, 0]  # for each context word in a window, its centre's row
    syn0.index_add_(0, contexts[valid], update.index_select(0, rows))


def cbow_inputs(syn0: torch.Tensor, contexts: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
    """CBOW's input vectors: the mean of the rows of syn0 of the context words marked
    ``valid``; [B, 2w] -> [B, d]."""
    B, W = contexts.shape
    mask = valid.float()[:, :, None]  # [B, 2w, 1]
    rows = syn0.index_select(0, contexts.flatten()).view(B, W, syn0.shape[1])  # [B,2w,d]
    return (rows * mask).sum(1) / mask.sum(1)


def linear_alpha(config: Word2VecConfig, words_done: int, words_total: int) -> float:
    """α after ``words_done`` of ``words_total`` words: alpha - (alpha - min_alpha) · done / total."""
    return config.alpha - (config.alpha - config.min_alpha) * words_done / words_total


# --- the model -----------------------------------------------------------------------------------

class Word2Vec:
    """Word vectors trained by skip-gram (``sg=1``) or CBOW (``sg=0``) with negative sampling.

    The arguments and their defaults are gensim's (``gensim.models.Word2Vec``),
    except ``batch_size``, the number of centre words whose updates are
    computed at once (gensim's threads take 10,000 words a job, but update the
    vectors pair by pair), and ``workers``, 1 by default (gensim's: 3) so that
    a seed gives the same vectors every time (with ``fast=True`` too). ``fast``:
    skip-gram in compiled loops (``lmlib.word2vec_numba``), pair by pair. Typical use::

        model = Word2Vec(vector_size=100, window=5, sg=1, min_count=5, seed=0).fit(sentences)
        model.most_similar("king", topn=5)
        model.most_similar(positive=["king", "woman"], negative=["man"])   # the analogy king - man + woman
        kv = model.to_keyed_vectors()   # a gensim KeyedVectors: evaluate_word_pairs, evaluate_word_analogies, ...

    After ``fit``: ``index_to_key`` (words, most frequent first),
    ``key_to_index``, ``counts`` [V], ``vectors`` [V, d] (``syn0``),
    ``syn1neg`` [V, d] and ``history``: corpus words processed before, mean
    loss per prediction at, and α of every 20th batch (``LOG_EVERY``); training
    seconds and words per second.
    """

    def __init__(
        self, vector_size: int = 100, window: int = 5, negative: int = 5, sg: int = 0, min_count: int = 5,
        sample: float = 1e-3, epochs: int = 5, alpha: float = 0.025, min_alpha: float = 0.0001, seed: int = 1,
        batch_size: int = 256, workers: int = 1, fast: bool = False,
    ):
        self.config = _check_config(Word2VecConfig(
            vector_size=vector_size, window=window, negative=negative, sg=sg, min_count=min_count, sample=sample,
            epochs=epochs, alpha=alpha, min_alpha=min_alpha, seed=seed, batch_size=batch_size,
            workers=workers, fast=fast,
        ))
        self.index_to_key: list[str] = []
        self.key_to_index: dict[str, int] = {}
        self.counts = torch.zeros(0, dtype=torch.int64)
        self.vectors = self.syn1neg = None
        self.history: dict = {}

    def __repr__(self) -> str:
        kind = "skip-gram" if self.config.sg else "CBOW"
        return f"Word2Vec({kind}, {len(self.index_to_key):,} words x {self.config.vector_size} dims)"

    # --- training --------------------------------------------------------------------------------

    def fit(self, sentences: Iterable[Sequence[str]], progress: bool | None = None) -> Word2Vec:
        """Build the vocabulary from ``sentences`` (lists of tokens) and train; returns the model.

        ``progress``: a tqdm bar counting words, with words/second; by default
        on in a terminal or notebook.
        """
        c = self.config
        sentences = _check_sentences(sentences)
        self.index_to_key, self.counts = build_vocab(sentences, c.min_count)
        self.key_to_index = {w: i for i, w in enumerate(self.index_to_key)}
        stream, sentence_ids = encode_corpus(sentences, self.key_to_index)  # [N], [N]
        keep_prob = subsample_keep_prob(self.counts, c.sample)[stream]  # [N]
        table = noise_table(negative_sampling_table(self.counts))  # [10^7] word ids

        generator = torch.Generator().manual_seed(c.seed)
        V, total = len(self.index_to_key), c.epochs * len(stream)
        self.vectors = (torch.rand(V, c.vector_size, generator=generator) * 2 - 1) / c.vector_size  # syn0, as gensim
        self.syn1neg = torch.zeros(V, c.vector_size)
        self.history = {"words": [], "loss": [], "alpha": []}
        bar, threads = progress_bar(total, progress, unit="word", unit_scale=True), torch.get_num_threads()
        torch.set_num_threads(1)  # the ops of one batch are too small to share out: each worker thread uses one core
        start = time.perf_counter()
        try:
            self._train_epochs(stream, sentence_ids, keep_prob, total, table, generator, bar)
        finally:
            torch.set_num_threads(threads)
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        self.history |= {"seconds": seconds, "words_per_second": total / seconds}
        return self

    def _train_epochs(self, stream, sentence_ids, keep_prob, total: int, table, generator, bar) -> None:
        """Each epoch: subsample, shrink the windows, then train on the kept words batch by batch."""
        c, N = self.config, len(stream)
        for epoch in range(c.epochs):
            kept = torch.rand(N, generator=generator) < keep_prob  # subsampling, drawn afresh each epoch
            spans = c.window - torch.randint(0, c.window, (int(kept.sum()),), generator=generator)  # dynamic window
            # words_before[i]: words of the corpus (all epochs) before kept word i; drives α and the bar
            words_before = torch.cat([kept.nonzero()[:, 0], torch.tensor([N])]) + epoch * N  # [n + 1]
            train = self._train_epoch_fast if c.fast else self._train_epoch
            train(stream[kept], sentence_ids[kept], spans, words_before, total, table, generator, bar)

    def _train_epoch(self, ids, sents, spans, words_before, total: int, table, generator, bar) -> None:
        """One pass over the kept words ``ids`` [n] (sentence numbers ``sents``, windows ``spans``), batch by batch."""
        c, lock = self.config, threading.Lock()

        def train(first: int, gen: torch.Generator) -> None:
            last = min(first + c.batch_size, len(ids))
            centers = torch.arange(first, last)  # [B] positions in ids
            done = int(words_before[first])
            alpha = linear_alpha(c, done, total)
            log = first // c.batch_size % LOG_EVERY == 0
            loss = self._train_batch(ids, sents, centers, spans[centers], alpha, table, gen, log)
            with lock:
                if loss is not None:
                    self.history["words"].append(done)
                    self.history["loss"].append(loss)
                    self.history["alpha"].append(alpha)
                if bar is not None:
                    bar.update(int(words_before[last]) - done)

        _run_batches(train, range(0, len(ids), c.batch_size), c.workers, generator)

    def _train_epoch_fast(self, ids, sents, spans, words_before, total: int, table, generator, bar) -> None:
        """``_train_epoch`` in compiled loops (``fast=True``): the same blocks of ``batch_size`` centres, their α
        and history, but pair after pair within a block (``lmlib.word2vec_numba``)."""
        c, numba = self.config, require("numba")
        from lmlib import word2vec_numba as kernels
        firsts = torch.arange(0, len(ids), c.batch_size)  # [blocks] the first centre of each block
        alphas = linear_alpha(c, words_before[firsts].double(), total)  # [blocks]
        seeds = torch.randint(2**62, (len(firsts),), generator=generator)  # [blocks] each block's noise draws
        threads = numba.get_num_threads()
        numba.set_num_threads(min(c.workers, numba.config.NUMBA_NUM_THREADS))
        try:
            losses, pairs = kernels.skipgram_epoch(
                self.vectors.numpy(), self.syn1neg.numpy(), ids.numpy(), sents.numpy(), spans.numpy(),
                table.numpy(), c.negative, c.batch_size, alphas.numpy(), seeds.numpy(), LOG_EVERY)
        finally:
            numba.set_num_threads(threads)
        logged = (torch.arange(len(firsts)) % LOG_EVERY == 0) & torch.from_numpy(pairs > 0)  # as _train_epoch
        self.history["words"] += words_before[firsts][logged].tolist()
        self.history["loss"] += (torch.from_numpy(losses) / torch.from_numpy(pairs))[logged].tolist()
        self.history["alpha"] += alphas[logged].tolist()
        if bar is not None:
            bar.update(int(words_before[-1] - words_before[0]))

    def _train_batch(self, ids, sents, centers, spans, alpha: float, table, generator, log: bool) -> float | None:
        """One SGD step for a batch of centre positions; with ``log``, the mean loss per prediction before it."""
        c, syn0, syn1neg = self.config, self.vectors, self.syn1neg
        loss = None
        if c.sg:
            center_words, context_words = skipgram_pairs(ids, sents, centers, spans, c.window)  # [P], [P]
            if len(center_words) == 0:  # every centre alone in its sentence: nothing to learn from
                return None
            negatives = draw_negatives(table, (len(center_words), c.negative), generator)  # [P, K]
            # word2vec.c's order: the context word's input vector predicts the centre word (same pairs as the
            # paper's centre -> context; with batched updates it also tracks gensim's results more closely)
            if log:
                loss = _mean_loss(syn0[context_words], syn1neg, center_words, negatives)
            skipgram_step(syn0, syn1neg, context_words, center_words, negatives, alpha)
        else:
            where, valid = window_positions(sents, centers, spans, c.window)  # [B, 2w]
            has_context = valid.any(1)  # a centre alone in its sentence has nothing to predict it from
            contexts, valid, center_words = ids[where[has_context]], valid[has_context], ids[centers[has_context]]
            if len(center_words) == 0:
                return None
            negatives = draw_negatives(table, (len(center_words), c.negative), generator)  # [B, K]
            if log:
                loss = _mean_loss(cbow_inputs(syn0, contexts, valid), syn1neg, center_words, negatives)
            cbow_step(syn0, syn1neg, contexts, valid, center_words, negatives, alpha)
        return loss

    # --- look-ups (gensim KeyedVectors style) -------------------------------------------------------

    def __contains__(self, word: str) -> bool:
        return word in self.key_to_index

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __getitem__(self, word: str) -> torch.Tensor:
        """The vector of ``word`` [d]."""
        return self._vectors()[self._index(word)]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words' vectors: u_a · u_b / (|u_a| |u_b|)."""
        unit = self._unit_vectors()
        return float(unit[self._index(a)] @ unit[self._index(b)])

    def most_similar(
        self, positive: str | Sequence[str] = (), negative: Sequence[str] = (), topn: int = 10
    ) -> list[tuple[str, float]]:
        """The ``topn`` words nearest by cosine similarity, as ``gensim``'s ``KeyedVectors.most_similar``.

        ``most_similar("king")``: the neighbours of a word.
        ``most_similar(positive=["king", "woman"], negative=["man"])``: the words
        nearest to the normalised sum of the positive words' unit vectors minus
        the negative ones' (the analogy man : king :: woman : ?). The query words
        themselves are left out.
        """
        positive = [positive] if isinstance(positive, str) else list(positive)
        negative = [negative] if isinstance(negative, str) else list(negative)
        if not positive and not negative:
            raise ValueError("most_similar needs a word: most_similar('king') or most_similar(positive=[...])")
        unit = self._unit_vectors()  # [V, d]
        query_ids = [self._index(w) for w in positive + negative]
        signs = torch.tensor([1.0] * len(positive) + [-1.0] * len(negative))
        query = F.normalize((signs[:, None] * unit[query_ids]).sum(0), dim=0)  # [d]
        scores = unit @ query  # [V]
        scores[query_ids] = -float("inf")
        top = torch.topk(scores, min(topn, len(scores) - len(set(query_ids))))
        return [(self.index_to_key[i], float(s)) for s, i in zip(top.values, top.indices.tolist(), strict=True)]

    def to_keyed_vectors(self):
        """The vectors as a real ``gensim.models.KeyedVectors``, word counts included.

        gensim's own ``most_similar``, ``evaluate_word_pairs``,
        ``evaluate_word_analogies`` and ``save_word2vec_format`` then work on
        lmlib's vectors.
        """
        keyedvectors = require("gensim.models.keyedvectors")
        vectors = self._vectors()
        kv = keyedvectors.KeyedVectors(vector_size=vectors.shape[1], count=0)
        kv.add_vectors(self.index_to_key, vectors.numpy())
        kv.allocate_vecattrs(["count"], [int])
        kv.expandos["count"][:] = self.counts.numpy()
        return kv

    # --- saving ----------------------------------------------------------------------------------

    def save(self, path: str | Path, half: bool = False) -> Path:
        """Save the configuration, vocabulary, counts and word vectors (float16 with ``half``: half the size).

        The output vectors ``syn1neg`` are not saved: the word vectors are what
        one uses, and training always starts afresh.
        """
        vectors = self._vectors()
        path = Path(path)
        torch.save({
            "config": asdict(self.config), "index_to_key": self.index_to_key, "counts": self.counts,
            "vectors": vectors.half() if half else vectors, "history": self.history,
        }, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Word2Vec:
        """A model saved by ``save``, ready for look-ups."""
        state = torch.load(path, weights_only=True)
        model = cls(**state["config"])
        model.index_to_key, model.counts = list(state["index_to_key"]), state["counts"]
        model.key_to_index = {w: i for i, w in enumerate(model.index_to_key)}
        model.vectors, model.history = state["vectors"].float(), state["history"]
        return model

    # --- helpers ---------------------------------------------------------------------------------

    def _vectors(self) -> torch.Tensor:
        if self.vectors is None:
            raise RuntimeError("this Word2Vec has no vectors yet: call fit(sentences) first, or Word2Vec.load(path)")
        return self.vectors

    def _unit_vectors(self) -> torch.Tensor:
        return F.normalize(self._vectors(), dim=1)

    def _index(self, word: str) -> int:
        self._vectors()
        if word not in self.key_to_index:
            raise KeyError(
                f"{word!r} is not in the vocabulary: it occurs fewer than min_count={self.config.min_count} times "
                f"in the training sentences (or not at all); pick another word or train with a lower min_count"
            )
        return self.key_to_index[word]


def _mean_loss(inputs, syn1neg, targets, negatives) -> float:
    """The mean ``sgns_loss`` of a batch of predictions, for the training history."""
    mask = negatives != targets[:, None]
    return float(sgns_loss(inputs, syn1neg[targets], syn1neg[negatives], mask).mean())


def _run_batches(train: Callable[[int, torch.Generator], None], firsts: range, workers: int,
                 generator: torch.Generator) -> None:
    """Call ``train(first, generator)`` for every batch, in order, or from ``workers`` threads at once.

    With several workers the threads take the next batch as they finish one
    and update the shared vectors without locks ("Hogwild"), as word2vec.c's
    and gensim's threads do. Each draws from its own generator, and the order
    of the updates depends on timing, so the result is no longer reproducible
    bit for bit. Each thread runs PyTorch on one core.
    """
    if workers == 1:
        for first in firsts:
            train(first, generator)
        return
    seeds = torch.randint(2**62, (workers,), generator=generator).tolist()
    pending, lock = iter(firsts), threading.Lock()

    def work(seed: int) -> None:
        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(seed)
        while True:
            with lock:
                first = next(pending, None)
            if first is None:
                return
            train(first, gen)

    with ThreadPoolExecutor(workers) as pool:
        for job in [pool.submit(work, seed) for seed in seeds]:
            job.result()


# --- a count-based baseline: PPMI and truncated SVD (Levy, Goldberg and Dagan, 2015) ----------------

def cooccurrence_counts(stream: np.ndarray, sentence_ids: np.ndarray, vocab_size: int,
                        window: int) -> sparse.csr_matrix:
    """#(w, c): how often word c occurs within ``window`` positions of word w, in the same
    sentence; [N] word ids and [N] sentence numbers -> [V, V] (symmetric, sparse).

    Every pair at distance 1 .. ``window`` counts once each way, whatever the distance (no
    shrunk windows, no subsampling: the plain counts of the window Word2Vec reads).
    """
    rows, cols = [], []
    for distance in range(1, window + 1):
        same = sentence_ids[distance:] == sentence_ids[:-distance]  # within one sentence
        left, right = stream[:-distance][same], stream[distance:][same]
        rows += [left, right]
        cols += [right, left]
    rows, cols = np.concatenate(rows), np.concatenate(cols)  # [pairs]
    ones = np.ones(len(rows), dtype=np.float64)
    # a pair seen k times is k entries of rows and cols: converting to CSR adds them up
    shape = (vocab_size, vocab_size)
    return sparse.coo_matrix((ones, (rows, cols)), shape=shape).tocsr()


def ppmi_matrix(counts: sparse.spmatrix,
                context_power: float = 0.75) -> sparse.csr_matrix:
    """Positive pointwise mutual information of a [V, V] co-occurrence matrix; [V, V].

        PPMI(w, c) = max(0, ln P(w, c) / (P(w) P_α(c)))
        P(w, c) = #(w, c) / D,  P(w) = #(w, ·) / D,  P_α(c) = #(·, c)^α / Σ_c' #(·, c')^α

    with D = Σ #(w, c) and α = ``context_power``. α = 0.75, the power of Word2Vec's
    noise distribution P_n, keeps rare contexts from getting huge PMI values (Levy et
    al.'s context-distribution smoothing); α = 1 is plain PMI. A pair never seen has
    PMI = -inf and PPMI = 0: the matrix stays sparse.
    """
    counts = sparse.coo_matrix(counts, dtype=np.float64)
    counts.sum_duplicates()
    total = counts.sum()  # D
    p_word = np.asarray(counts.sum(1)).ravel() / total  # [V] P(w)
    smoothed = np.asarray(counts.sum(0)).ravel() ** context_power
    p_context = smoothed / smoothed.sum()  # [V] P_α(c)
    w, c = counts.row, counts.col  # the pairs seen: only these can have PMI > 0
    pmi = np.log(counts.data / total / (p_word[w] * p_context[c]))
    keep = pmi > 0
    return sparse.csr_matrix((pmi[keep], (w[keep], c[keep])), shape=counts.shape)


def ppmi_svd_vectors(
    sentences: Iterable[Sequence[str]], window: int = 5, dim: int = 50,
    min_count: int = 5, context_power: float = 0.75, eigenvalue_power: float = 0.5,
) -> tuple[list[str], np.ndarray]:
    """Count-based word vectors: the PPMI matrix of the words within ``window`` of each
    other, cut to ``dim`` dimensions by a truncated SVD. Returns the words (most
    frequent first) and their vectors [V, dim].

        PPMI ≈ U_d Σ_d V_d^T  (the d largest singular values);   word vectors U_d Σ_d^p

    with p = ``eigenvalue_power``: 0.5, Levy et al.'s recommendation, shares Σ between
    words and contexts, as Word2Vec's u and v share the dot product. The vocabulary is
    ``build_vocab``'s (``Word2Vec``'s for the same ``min_count``), and rarer words leave
    the text before windows are formed. Each singular vector's sign is set so that its
    largest entry is positive: the same vectors on every run.
    """
    for name, value in {"window": window, "dim": dim, "min_count": min_count}.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    sentences = _check_sentences(sentences)
    words, _ = build_vocab(sentences, min_count)
    if dim >= len(words):
        raise ValueError(f"dim={dim} must be below the vocabulary size, {len(words)} "
                         f"words with min_count={min_count}")
    ids, sentence_ids = encode_corpus(sentences, {w: i for i, w in enumerate(words)})
    counts = cooccurrence_counts(ids.numpy(), sentence_ids.numpy(), len(words), window)
    ppmi = ppmi_matrix(counts, context_power)  # [V, V]
    start = np.full(len(words), len(words) ** -0.5)  # fixed Lanczos start: no random draw
    # PROPACK (Lanczos bidiagonalisation): exact to round-off, and faster than ARPACK here
    U, S, _ = svds(ppmi, k=dim, solver="propack", v0=start)  # [V, d], [d], in any order
    order = np.argsort(-S)
    U, S = U[:, order], S[order]
    U = U * np.sign(U[np.abs(U).argmax(0), np.arange(dim)])  # an SVD's signs are free
    return words, (U * S**eigenvalue_power).astype(np.float32)


# --- comparing two sets of vectors on human similarity judgements -----------------------------------

@dataclass(frozen=True)
class PairedComparison:
    difference: float  # Spearman(a) - Spearman(b) on the pairs both score
    low: float  # the 95 % paired-bootstrap interval of the difference
    high: float
    pairs: int  # the pairs scored: both words known to both sets of vectors


def compare_on_word_pairs(vectors_a, vectors_b, pairs: Sequence[tuple[str, str, float]],
                          resamples: int = 2000, seed: int = 0) -> PairedComparison:
    """Spearman's correlation of cos(u_a, u_b) with the human scores, for two sets of vectors, and a paired
    bootstrap of its difference: the pairs are resampled with replacement, the same resample for both.

    Both correlations come from the same pairs, so their errors are correlated: the interval of the
    difference is narrower than the standard error of either alone suggests, or wider, and only a paired
    resample measures it. Words are looked up lower-cased, as gensim's ``evaluate_word_pairs`` does;
    a pair is kept when both of its words are known to both sets of vectors.
    """
    kept = [(a.lower(), b.lower(), score) for a, b, score in pairs
            if all(w.lower() in v for w in (a, b) for v in (vectors_a, vectors_b))]
    if len(kept) < 3:
        raise ValueError(f"only {len(kept)} of the {len(pairs)} pairs have both words in both vocabularies; "
                         "a correlation needs at least 3")
    human = np.array([score for _, _, score in kept])
    cosines = [np.array([float(_unit_vector(v, a) @ _unit_vector(v, b)) for a, b, _ in kept])
               for v in (vectors_a, vectors_b)]

    def difference(rows: np.ndarray) -> float:
        return spearmanr(cosines[0][rows], human[rows])[0] - spearmanr(cosines[1][rows], human[rows])[0]

    rng = np.random.default_rng(seed)
    resampled = [difference(rng.integers(0, len(kept), len(kept))) for _ in range(resamples)]
    low, high = np.percentile(resampled, [2.5, 97.5])
    return PairedComparison(float(difference(np.arange(len(kept)))), float(low), float(high), len(kept))


# --- probing the vectors: WEAT (Caliskan, Bryson and Narayanan, 2017) --------------------------------

@dataclass(frozen=True)
class WEATResult:
    effect_size: float  # d: how far apart X and Y lie on the A-B axis, in standard deviations of s(w, A, B)
    p_value: float  # one-sided: the share of equal-size re-partitions of X ∪ Y with a statistic >= the observed one
    statistic: float  # S(X, Y, A, B)
    partitions: int  # how many re-partitions p_value compares with
    exact: bool  # True: every re-partition; False: ``permutations`` random ones


def word_association(vectors, words: Sequence[str], attributes_a: Sequence[str],
                     attributes_b: Sequence[str]) -> torch.Tensor:
    """s(w, A, B) = mean_{a ∈ A} cos(w, a) - mean_{b ∈ B} cos(w, b) for each word w; [n] (float64).

    Positive: w is nearer the A words than the B words. ``vectors``: anything
    with ``vectors[word]`` and ``word in vectors`` (a ``Word2Vec``, a gensim
    ``KeyedVectors``, a dict of vectors).
    """
    unit = {w: _unit_vector(vectors, w) for w in _known(vectors, [*words, *attributes_a, *attributes_b])}
    A = torch.stack([unit[a] for a in attributes_a])  # [|A|, d]
    B = torch.stack([unit[b] for b in attributes_b])  # [|B|, d]
    W = torch.stack([unit[w] for w in words])  # [n, d]
    return (W @ A.T).mean(1) - (W @ B.T).mean(1)


def weat(vectors, targets_x: Sequence[str], targets_y: Sequence[str], attributes_a: Sequence[str],
         attributes_b: Sequence[str], permutations: int = 100_000, seed: int = 0) -> WEATResult:
    """The Word Embedding Association Test: are the X words nearer A (and the Y words nearer B) than chance?

        S(X, Y, A, B) = Σ_{x ∈ X} s(x, A, B) - Σ_{y ∈ Y} s(y, A, B)
        d = (mean_{x ∈ X} s(x, A, B) - mean_{y ∈ Y} s(y, A, B)) / std_{w ∈ X ∪ Y} s(w, A, B)

    with s from ``word_association`` and the sample standard deviation (n - 1).
    The p-value is one-sided: the share of the ways to split X ∪ Y into sets of
    |X| and |Y| words whose S is at least the observed S (the observed split
    included). When there are at most ``permutations`` ways, all are counted
    (``exact``); otherwise ``permutations`` random splits, drawn with ``seed``,
    and p = (1 + count) / (1 + permutations). A small p says the association
    is unlikely under random labels *of these words*; it says nothing about
    other words, and with a few dozen occurrences per word it is noisy.
    """
    for name, group in [("targets_x", targets_x), ("targets_y", targets_y), ("attributes_a", attributes_a),
                        ("attributes_b", attributes_b)]:
        if len(group) == 0:
            raise ValueError(f"{name} is empty: WEAT needs at least one word in each of X, Y, A and B")
    for (name1, g1), (name2, g2) in [(("targets_x", targets_x), ("targets_y", targets_y)),
                                     (("attributes_a", attributes_a), ("attributes_b", attributes_b))]:
        if set(g1) & set(g2):
            raise ValueError(f"{name1} and {name2} share words {sorted(set(g1) & set(g2))}: the two sets must differ")
    s = word_association(vectors, [*targets_x, *targets_y], attributes_a, attributes_b)  # [n]
    n, k = len(s), len(targets_x)
    if n < 3:
        raise ValueError("WEAT needs at least 3 target words in X and Y together (a standard deviation of s)")
    observed = float(s[:k].sum() - s[k:].sum())
    effect = float((s[:k].mean() - s[k:].mean()) / s.std())
    total = math.comb(n, k)
    if total <= permutations:  # every split: X' = the words at positions ``chosen``
        chosen = torch.tensor(list(itertools.combinations(range(n), k)), dtype=torch.int64)  # [total, k]
        exact = True
    else:
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.rand(permutations, n, generator=generator).argsort(1)[:, :k]  # [permutations, k]
        exact = False
    split_statistics = 2 * s[chosen].sum(1) - s.sum()  # Σ_X' s - Σ_Y' s = 2 Σ_X' s - Σ s
    at_least = int((split_statistics >= observed - 1e-12).sum())  # 1e-12: the observed split counts itself
    p = at_least / total if exact else (1 + at_least) / (1 + permutations)
    return WEATResult(effect_size=effect, p_value=p, statistic=observed, partitions=len(chosen), exact=exact)


def _known(vectors, words: Sequence[str]) -> list[str]:
    missing = [w for w in dict.fromkeys(words) if w not in vectors]
    if missing:
        raise KeyError(f"not in the vocabulary: {', '.join(map(repr, missing))}; leave these words out of the sets "
                       f"(or train with a lower min_count)")
    return list(dict.fromkeys(words))


def _unit_vector(vectors, word: str) -> torch.Tensor:
    v = vectors[word]  # a tensor (lmlib), a read-only NumPy array (gensim) or anything array-like
    v = v.detach().double() if isinstance(v, torch.Tensor) else torch.tensor(np.asarray(v, dtype=np.float64))
    return v / v.norm()


# --- a text as one vector: the mean of its word vectors --------------------------------------------

def average_vectors(texts: Sequence[Sequence[str]], vectors) -> np.ndarray:
    """[N, d]: each text (a list of words) as the mean of the vectors of its words that
    ``vectors`` knows (a ``Word2Vec`` or gensim ``KeyedVectors``); zeros if it knows none.

        x(text) = (1 / |K|) sum_{w in K} u_w,   K: the text's known words, with repeats

    Word order is lost, as in a bag of words, but words unseen in the labelled examples
    still count, through the vectors of the words they resemble."""
    index = vectors.key_to_index
    table = np.asarray(vectors.vectors, dtype=np.float32)  # [V, d]
    if isinstance(texts, str) or any(isinstance(t, str) for t in texts):
        raise TypeError("texts must be lists of words: [word_tokenize(t) for t in texts]")
    out = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
    for row, words in enumerate(texts):
        known = [index[w] for w in words if w in index]
        if known:
            out[row] = table[known].mean(axis=0)
    return out


# --- checks --------------------------------------------------------------------------------------

def _check_config(c: Word2VecConfig) -> Word2VecConfig:
    positive = {"vector_size": c.vector_size, "window": c.window, "epochs": c.epochs, "batch_size": c.batch_size,
                "min_count": c.min_count, "workers": c.workers}
    for name, value in positive.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(c.negative, int) or c.negative <= 0:
        raise ValueError(f"negative must be a positive integer (lmlib trains with negative sampling only, "
                         f"no hierarchical softmax), got {c.negative!r}")
    if c.sg not in (0, 1):
        raise ValueError(f"sg must be 1 (skip-gram) or 0 (CBOW), got {c.sg!r}")
    if c.fast and not c.sg:
        raise ValueError("fast=True trains skip-gram only (sg=1); CBOW trains on the batched path (fast=False)")
    if not 0 <= c.sample < 1:
        raise ValueError(f"sample must be in [0, 1) (e.g. 1e-3; 0 turns subsampling off), got {c.sample!r}")
    if not 0 <= c.min_alpha <= c.alpha:
        raise ValueError(f"need 0 <= min_alpha <= alpha, got alpha={c.alpha!r}, min_alpha={c.min_alpha!r}")
    return c


def _check_sentences(sentences: Iterable[Sequence[str]]) -> list[Sequence[str]]:
    """The sentences as a list (a generator is read once), after checking they are lists of string tokens."""
    if isinstance(sentences, str):
        raise TypeError("sentences must be a list of token lists, got one string; split it into sentences and "
                        "tokenize them first, e.g. [word_tokenize(s, lowercase=True) for s in split_sentences(text)] "
                        "with lmlib.tokenize")
    sentences = list(sentences)
    for i, sentence in enumerate(sentences):
        if isinstance(sentence, str):
            raise TypeError(f"sentence {i} is a string ({sentence[:40]!r}), not a list of tokens; tokenize the "
                            f"sentences first, e.g. [lmlib.tokenize.word_tokenize(s, lowercase=True) for s in texts]")
        if not all(isinstance(w, str) for w in sentence):
            raise TypeError(f"sentence {i} holds a token that is not a string: {sentence[:5]!r}")
    if not any(len(s) for s in sentences):
        raise ValueError("the corpus is empty: sentences holds no tokens")
    return sentences
