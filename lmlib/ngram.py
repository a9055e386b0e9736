"""N-gram language models: counts, MLE, add-k, linear interpolation, (modified) Kneser-Ney, ARPA export.

An n-gram model makes the Markov assumption: a word depends only on the n-1
words before it, its context (history) h,

    P(w_1 .. w_m) = prod_{i=1}^{m+1} P(w_i | h_i),   h_i = w_{i-n+1} .. w_{i-1},

where each sentence is padded as ``<s> w_1 .. w_m </s>``. As in ARPA files and
KenLM, there is ONE ``<s>`` of context before the first word (so the first
words have shorter contexts), ``</s>`` is predicted and counted, and ``<s>`` is
never predicted. With c(h w) the count of the n-gram ``h w`` in the padded
training text, c(h .) = sum_v c(h v), and V the set of tokens the model can
predict (the words, ``</s>`` and ``<unk>``; never ``<s>``):

    MLE          P(w | h) = c(h w) / c(h .)
    add-k        P(w | h) = (c(h w) + k) / (c(h .) + k |V|)          (k = 1: Laplace)
    Jelinek-Mercer  P(w | h) = lambda_0 / |V| + sum_{i=1}^{n} lambda_i P_MLE(w | h_i),  sum_i lambda_i = 1,
    Kneser-Ney   P(w | h) = max(a(h w) - D, 0) / a(h .) + gamma(h) P(w | h'),
                 gamma(h) = D N1+(h .) / a(h .),        P(w | no context') = 1 / |V|,

with h' the context without its oldest word, N1+(h .) the number of distinct
words seen after h, and a() the *adjusted* count: the raw count c() for the
highest order and for n-grams that start with ``<s>`` (nothing can precede
them), otherwise the *continuation count* N1+(. h w) = |{x : c(x h w) > 0}|,
the number of distinct words seen before ``h w``. The discount is
D = n1 / (n1 + 2 n2), with n_r the number of n-grams of that order whose
adjusted count is r. *Modified* Kneser-Ney (Chen & Goodman 1998) has three
discounts, D1 for a = 1, D2 for a = 2 and D3+ for a >= 3,

    Y = n1 / (n1 + 2 n2),  D1 = 1 - 2Y n2/n1,  D2 = 2 - 3Y n3/n2,  D3+ = 3 - 4Y n4/n3,
    gamma(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / a(h .).

Interpolated Kneser-Ney is also a *backoff* model: for a word w never seen
after h, P(w | h) = gamma(h) P(w | h'). That is what an ARPA file stores:
log10 P of every seen n-gram and log10 gamma(h) as the backoff weight of h.

MLE gives probability 0 to anything unseen (log-probability -inf, perplexity
inf). When the whole context h was never seen, c(h .) = 0 and the MLE is 0/0;
it then uses the longest part of h that was seen. Add-k needs no such rule:
its formula gives the uniform 1/|V| for an unseen context, with no back-off.

Jelinek-Mercer (linear interpolation) mixes the MLEs of every order, h_i being
the last i-1 words of h (h_1 is empty), with that same rule for an h_i never
seen, and the uniform 1/|V| as an order 0 so that nothing gets probability 0.
The weights lambda are fixed numbers, tuned on held-out text by EM
(``NGramLM.tune_lambdas``).

Each smoothing is one class with its fit, its score and its next-token distribution
(``MLE``, ``AddK``, ``JelinekMercer``, ``KneserNey``); ``NGramLM`` counts the n-grams,
finds those of a text, and holds the one its ``smoothing`` names in ``SMOOTHERS``.

Counting is vectorised with numpy: an n-gram is stored as the pair (index of
its context among the (n-1)-grams, word id) packed into one int64 key, so one
``np.unique`` per order counts a corpus and one ``np.searchsorted`` looks up a
whole batch of queries.

Scoring has a fast path beside the protocol's: ``NGramLM.token_logprobs`` and
``sentence_logprobs`` encode a whole text as one stream (no padding, no torch)
and find its n-grams in hash tables (``NGramHash``, one or two probes a key
where a binary search takes ~19), then score them with the same smoothing code,
so they give the very numbers ``lmlib.lm.token_logprobs`` gives.

torch is imported only by the methods that return tensors (the protocol's), so
fitting and scoring with the fast path never load it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from lmlib.tokenize import BOS, EOS, PAD, SPECIALS, UNK, Vocab

if TYPE_CHECKING:  # the protocol's methods import torch when called: importing lmlib.ngram does not
    import torch

# Discounts for an order whose count-of-counts cannot give valid ones (tiny corpora): KenLM's
# --discount_fallback values for modified Kneser-Ney, the textbook D = 0.75 for Kneser-Ney.
FALLBACK_DISCOUNTS = {"kneser_ney": (0.75, 0.75, 0.75), "modified_kneser_ney": (0.5, 1.0, 1.5)}
# The padding tokens a caller may write in a context, and the names ARPA files use.
SENTENCE_START, SENTENCE_END = "<s>", "</s>"
ARPA_NAMES = {BOS: SENTENCE_START, EOS: SENTENCE_END, UNK: "<unk>"}


# --- the idea in ten lines -----------------------------------------------------------------------

def bigram_mle_dict(sentences: Iterable[Sequence[str]]) -> dict[str, dict[str, float]]:
    """The bigram MLE with plain dicts: ``p[v][w]`` = P(w | v) = c(v w) / c(v .).

    Each sentence is padded as ``<s> w_1 .. w_m </s>``. ``NGramLM(2, "mle")`` computes
    the same numbers with numpy, for any order, and scores batches of sentences.
    """
    counts: dict[str, Counter] = {}  # counts[v][w] = c(v w)
    for sentence in sentences:
        padded = [SENTENCE_START, *sentence, SENTENCE_END]
        for v, w in zip(padded[:-1], padded[1:], strict=True):
            counts.setdefault(v, Counter())[w] += 1
    return {
        v: {w: c / after.total() for w, c in after.items()}
        for v, after in counts.items()
    }


@dataclass
class NGramTable:
    """The distinct n-grams of one order k, each written as (context h, word w).

    Sorted by ``key = context * vocab_size + word``: a lookup is a binary search
    and the n-grams that share a context are one contiguous slice. The unigram
    table is dense (one entry per vocabulary id, count 0 if unseen) under the
    single empty context, index 0.
    """

    vocab_size: int
    keys: np.ndarray  # [G] int64, sorted
    context: np.ndarray  # [G] index of h among the (k-1)-grams
    word: np.ndarray  # [G] vocabulary id of w
    suffix: np.ndarray  # [G] index of the (k-1)-gram h' w: the n-gram without its oldest word
    count: np.ndarray  # [G] c(h w)
    starts_with_bos: np.ndarray  # [G] bool
    # Set by the smoothing:
    logp: np.ndarray | None = None  # [G] ln P(w | h)
    log_unseen: np.ndarray | None = None  # [G_{k-1}] per context h, for a word never seen after h:
    #   Kneser-Ney ln gamma(h) (the lower order's weight), add-k ln P(w | h), MLE -inf
    context_seen: np.ndarray | None = None  # [G_{k-1}] bool: c(h .) > 0

    def lookup(self, context: np.ndarray, word: np.ndarray) -> np.ndarray:
        """Index of each n-gram (context[i], word[i]); -1 where absent or context[i] is -1."""
        keys = context * self.vocab_size + word
        if len(self.keys) == 0:  # e.g. no trigrams in a corpus of one-word sentences
            return np.full(keys.shape, -1)
        at = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return np.where((context >= 0) & (self.keys[at] == keys), at, -1)

    def children(self, context: int) -> slice:
        """The n-grams whose context is ``context``: the words seen after it."""
        lo, hi = np.searchsorted(self.keys, [context * self.vocab_size, (context + 1) * self.vocab_size])
        return slice(int(lo), int(hi))


class NGramHash:
    """A hash table over the keys of one ``NGramTable``: ``lookup`` gives the same indices as the
    table's binary search, in one or two probes a key instead of log2(G) (~19) dependent reads.

    Open addressing with linear probing: key ``context * vocab_size + word`` belongs in slot
    hash(key) (Fibonacci hashing: the top bits of key * 2^64/phi), or, if another key took that
    slot, in the first free slot after it. There are M >= 2G slots (a power of two), so at least
    half are free and a search, which walks from the key's slot to the key or to a free slot,
    is short.
    """

    GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd: spreads nearby keys apart
    PROBES = 4  # slots a lookup probes before it binary-searches the (few) keys left

    def __init__(self, table: NGramTable):
        self.table, self.vocab_size = table, table.vocab_size
        self.bits = max(1, (2 * len(table.keys) - 1).bit_length())  # M = 2^bits >= 2G slots
        self.mask = (1 << self.bits) - 1
        self.slot_key = np.full(self.mask + 1, -1, dtype=np.int64)  # [M] the key in each slot, -1: free
        self.slot_index = np.full(self.mask + 1, -1, dtype=np.int64)  # [M] its index in the table
        # Insert every key at once: each round, the keys whose slot is free bid for it, one bid per slot
        # wins (whichever numpy writes last), and the others move on to the next slot.
        pending, slot = np.arange(len(table.keys)), self._slot(table.keys)
        while len(pending):
            free = self.slot_key[slot] == -1
            self.slot_index[slot[free]] = pending[free]
            won = free.copy()
            won[free] = self.slot_index[slot[free]] == pending[free]
            self.slot_key[slot[won]] = table.keys[pending[won]]
            pending, slot = pending[~won], (slot[~won] + 1) & self.mask

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        """[K] each key's own slot: the top ``bits`` bits of key * GOLDEN (mod 2^64)."""
        return ((keys.astype(np.uint64) * self.GOLDEN) >> np.uint64(64 - self.bits)).astype(np.int64)

    def lookup(self, context: np.ndarray, word: np.ndarray) -> np.ndarray:
        """Index of each n-gram (context[i], word[i]); -1 where absent or context[i] is -1
        (``NGramTable.lookup``'s answer)."""
        index = np.full(len(context), -1, dtype=np.int64)
        todo = np.flatnonzero(context >= 0)  # [K] the queries still searched for, and their keys
        keys = context[todo] * self.vocab_size + word[todo]
        slot = self._slot(keys)
        for _ in range(self.PROBES):  # each round probes one slot for every key still searched for
            stored = self.slot_key[slot]
            found = np.flatnonzero(stored == keys)
            index[todo[found]] = self.slot_index[slot[found]]
            further = np.flatnonzero((stored != keys) & (stored != -1))  # another key sits here: next slot
            todo, keys, slot = todo[further], keys[further], (slot[further] + 1) & self.mask
        # The few keys still searched for (in runs of full slots): a binary search costs them less than
        # the many short rounds the last of them would take.
        index[todo] = self.table.lookup(context[todo], word[todo])
        return index


class NGramLM:
    """An n-gram language model of any order >= 1 (implements ``lmlib.lm.LanguageModel``).

    Example: ``NGramLM(3).fit([["the", "cat", "sat"], ["the", "dog"]]).logprob("cat", ["<s>", "the"])``
    is ln P(cat | <s> the) under a trigram Kneser-Ney model.

    ``min_count``: training words seen fewer times become ``<unk>``, so the model
    learns how often unknown words occur. ``k``: the add-k constant. ``lambdas``: the
    Jelinek-Mercer weights (lambda_0 .. lambda_n, uniform first), equal by default;
    ``tune_lambdas`` sets them by EM on held-out text.

    The model counts, and finds the n-grams of a text in its tables; ``self.smoother``
    (``MLE``, ``AddK``, ``JelinekMercer`` or ``KneserNey``) turns the counts into probabilities.
    """

    def __init__(
        self,
        order: int,
        smoothing: str = "kneser_ney",
        k: float | None = None,
        min_count: int = 1,
        lambdas: Sequence[float] | None = None,
    ):
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"order must be an integer >= 1 (1 = unigram, 2 = bigram, ...), got {order!r}")
        if smoothing not in SMOOTHERS:
            raise ValueError(f"unknown smoothing {smoothing!r}; use one of: {', '.join(SMOOTHINGS)}")
        if k is not None and smoothing != "add_k":
            raise ValueError(f"k is the add-k constant; it does not apply to smoothing={smoothing!r}")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        if lambdas is not None and smoothing != "jelinek_mercer":
            raise ValueError(f"lambdas are the Jelinek-Mercer weights; they do not apply to smoothing={smoothing!r}")
        self.order, self.smoothing, self.min_count = int(order), smoothing, min_count
        self.smoother: Smoother = SMOOTHERS[smoothing](self.order, k, lambdas)
        self.vocab: Vocab | None = None
        self.tables: dict[int, NGramTable] = {}  # order -> its n-grams
        self._hashes: tuple[dict, dict[int, NGramHash]] = ({}, {})  # (the tables they index, order -> hash)

    def __repr__(self) -> str:
        k = f", k={self.k}" if self.k is not None else ""
        lambdas = f", lambdas={tuple(round(x, 4) for x in self.lambdas)}" if self.lambdas is not None else ""
        fitted = f", |V|={self.n_predictable}" if self.vocab is not None else ", not fitted"
        return f"NGramLM(order={self.order}, smoothing={self.smoothing!r}{k}{lambdas}{fitted})"

    # --- training ------------------------------------------------------------------------------

    def fit(self, sentences: Iterable[Sequence[str]]) -> NGramLM:
        """Count the n-grams of the sentences (token lists, without padding) and
        smooth them.
        """
        sentences = _check_sentences(sentences)
        counts = Counter(chain.from_iterable(sentences))
        _check_no_padding(counts)
        # a Counter is read as its counts
        self.vocab = Vocab(counts, min_count=self.min_count)
        ids, pos = _pad_and_encode(self.vocab, sentences)
        self.tables = count_ngrams(ids, pos, self.order, len(self.vocab))
        self.smoother.fit(self.tables, self.n_predictable)
        return self

    @property
    def n_predictable(self) -> int:
        """|V|: the tokens the model can predict (all but ``<pad>`` and ``<s>``)."""
        return len(self._fitted()) - 2

    # What a smoothing learns or is given, read through the model (None or {} where it has none).

    @property
    def k(self) -> float | None:
        """The add-k constant."""
        return getattr(self.smoother, "k", None)

    @property
    def lambdas(self) -> tuple[float, ...] | None:
        """Jelinek-Mercer's weights: (lambda_0 for the uniform, lambda_1 .. lambda_n)."""
        return getattr(self.smoother, "lambdas", None)

    @property
    def discounts(self) -> dict[int, tuple[float, float, float]]:
        """Kneser-Ney's discounts: order -> (D1, D2, D3+), set by ``fit``."""
        return getattr(self.smoother, "discounts", {})

    # --- the LanguageModel protocol ------------------------------------------------------------

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] rows ``<bos> w_1 .. w_n <eos> <pad>..`` -> [B, T-1], entry t-1 = ln P(ids[t] | ids[:t])."""
        import torch

        self._fitted()
        rows = _as_rows(ids, self.vocab.bos_id)  # [B, T]
        pos = _positions(rows, self.vocab.bos_id)  # [B, T]
        logp = self._score(rows.reshape(-1), pos.reshape(-1)).reshape(rows.shape)
        return torch.from_numpy(logp[:, 1:])

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        """[B, T] contexts (rows start with ``<bos>``) -> [B, V] ln P(next token | context)."""
        import torch

        self._fitted()
        rows = _as_rows(contexts, self.vocab.bos_id)
        pos = _positions(rows, self.vocab.bos_id)
        # The next token depends on the last order - 1 tokens only (their positions say where the
        # sentence starts): reading just the last `order` keeps a long generation linear in its length.
        rows, pos = rows[:, -self.order :], pos[:, -self.order :]
        return torch.from_numpy(self._distributions(rows, pos))

    # --- conveniences --------------------------------------------------------------------------

    def logprob(self, word: str, context: Sequence[str] = ()) -> float:
        """ln P(word | context). Write ``<s>`` in the context for a sentence start: ("<s>", "the").

        Only the last n-1 tokens of the context count, and none before its last ``<s>``; a
        context without ``<s>`` is the middle of a sentence.
        """
        vocab = self._fitted()
        if isinstance(context, str):
            raise TypeError(f"context must be a sequence of tokens, e.g. ('<s>', 'the'), not the str {context!r}")
        ids = np.array([_token_id(vocab, t) for t in [*context, word]], dtype=np.int64)
        starts = np.flatnonzero(ids[:-1] == vocab.bos_id)
        ids = ids[max(starts[-1] if len(starts) else 0, len(ids) - self.order) :]
        return float(self._score(ids, np.arange(len(ids)))[-1])

    def perplexity(self, sentences: Sequence[Sequence[str]]) -> float:
        """Perplexity per predicted token (words and ``</s>``), via ``lmlib.lm.perplexity``."""
        from lmlib import lm  # the seam, and torch with it, only when a model is scored through it

        self._fitted()
        return lm.perplexity(self, sentences, batch_size=256)

    def predict_next(self, prefix: Sequence[str] = (), k: int = 5) -> list[tuple[str, float]]:
        """The k most likely next tokens after a sentence prefix, with their probabilities (autocomplete)."""
        import torch

        vocab = self._fitted()
        ids = torch.tensor([[vocab.bos_id, *vocab.encode(prefix)]])
        probs = self.next_token_logprobs(ids)[0].exp()  # [V]
        top = torch.topk(probs, min(k, self.n_predictable))
        return [(vocab.itos[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]

    def unseen_fraction(self, sentences: Sequence[Sequence[str]]) -> dict[int, float]:
        """For each order k: the fraction of the k-grams of ``sentences`` never seen in training.

        A k-gram ends at each predicted token that has k-1 tokens before it in its
        padded sentence; k = 1 gives the out-of-vocabulary rate.
        """
        vocab = self._fitted()
        ids, pos = _pad_and_encode(vocab, _check_sentences(sentences))
        grams = self._gram_indices(ids, pos)
        fractions = {}
        for k in range(1, self.order + 1):
            gram = grams[k][pos >= max(k - 1, 1)]  # the k-grams that end at a predicted token
            unseen = (gram < 0) | (self.tables[k].count[gram.clip(min=0)] == 0)
            fractions[k] = float(unseen.mean())
        return fractions

    def tune_lambdas(self, sentences: Sequence[Sequence[str]], iterations: int = 1000) -> tuple[float, ...]:
        """Set the Jelinek-Mercer weights to those that make held-out ``sentences`` most likely (EM).

        Tune on a validation text, never on the test text: the weights would then be fitted to
        the very text that is supposed to measure the model.
        """
        vocab = self._fitted()
        if not isinstance(self.smoother, JelinekMercer):
            raise ValueError(f"tune_lambdas tunes Jelinek-Mercer weights; this model uses {self.smoothing!r}")
        ids, pos = _pad_and_encode(vocab, _check_sentences(sentences))
        probs = self.smoother.mle_by_order(*self._lookup_ngrams(ids, pos))  # [N, n+1]
        self.smoother.lambdas = em_interpolation_weights(probs[pos > 0], iterations)  # predicted tokens only
        return self.smoother.lambdas

    # --- the fast path: a whole text at once, hashed lookups -------------------------------------

    def token_logprobs(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """[N] ln P of every predicted token of the sentences (words and ``</s>``), sentence after
        sentence: the numbers ``lmlib.lm.token_logprobs(model, sentences)`` gives, as a numpy array.

        The fast path: the sentences become one stream of ids (no padding, no tensors), its
        n-grams are found in hash tables (``NGramHash``, built on the first call), and the
        smoothing scores them with the code the protocol's path uses.
        """
        logp, starts = self._stream_logprobs(sentences)
        return np.delete(logp, starts)  # each sentence's <s> is context only

    def sentence_logprobs(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """[S] ln P of each sentence, its ``</s>`` included (what KenLM's ``score`` gives, in log10)."""
        logp, starts = self._stream_logprobs(sentences)
        logp[starts] = 0.0  # each sentence's <s> is context only
        return np.add.reduceat(logp, starts)

    def _stream_logprobs(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """[N] ln P of each token of the sentences as one stream ``<s> w .. </s> <s> ..`` (-inf at
        each ``<s>``), scored through the hash tables; [S] where each sentence starts."""
        vocab = self._fitted()
        ids, starts = _encode_stream(vocab, _check_sentences(sentences))
        # Positions as the protocol counts them, from the last <bos>, so that a "<bos>" written in a
        # sentence restarts it on both paths.
        return self._score(ids, _positions(ids[None], vocab.bos_id)[0], hashed=True), starts

    def _hash_tables(self) -> dict[int, NGramHash]:
        """order -> ``NGramHash`` of its table, built on first use (``fit`` makes new tables, hence new hashes)."""
        indexed, hashes = self._hashes
        if indexed is not self.tables:
            hashes = {k: NGramHash(table) for k, table in self.tables.items()}
            self._hashes = (self.tables, hashes)
        return hashes

    # --- scoring -------------------------------------------------------------------------------

    def _gram_indices(self, ids: np.ndarray, pos: np.ndarray, hashed: bool = False) -> list[np.ndarray]:
        """grams[k][t]: index of the k-gram ending at t; -1 if unseen or reaching back past ``pos``.

        ``ids`` [N] is a stream of sentences, ``pos`` [N] how many tokens of its sentence
        precede each token (``<s>`` at 0). grams[0] is the empty context, index 0.
        ``hashed``: look the n-grams up in hash tables (same answers, fewer memory reads).
        [B, T] rows of ``ids`` and ``pos`` are read each on its own (not with ``hashed``).
        """
        tables = self._hash_tables() if hashed else self.tables
        grams = [np.zeros(ids.shape, dtype=np.int64)]
        for k in range(1, self.order + 1):
            grams.append(tables[k].lookup(_context_of_order(grams, k, pos), ids))
        return grams

    def _lookup_ngrams(self, ids: np.ndarray, pos: np.ndarray,
                       hashed: bool = False) -> tuple[Grams, Contexts, np.ndarray]:
        """What a smoothing scores a stream of sentences from: ``grams`` (see ``_gram_indices``),
        contexts[k] [N] the index of each k-gram's context (-1 if unseen), and ``longest`` [N]
        the highest order whose n-gram fits in the sentence at t.
        """
        grams = self._gram_indices(ids, pos, hashed)
        contexts = {k: _context_of_order(grams, k, pos) for k in range(1, self.order + 1)}
        return grams, contexts, np.minimum(self.order, pos + 1)

    def _score(self, ids: np.ndarray, pos: np.ndarray, hashed: bool = False) -> np.ndarray:
        """[N] ln P(ids[t] | its context) for a stream of sentences; -inf where the target is <s> or <pad>."""
        with np.errstate(divide="ignore"):
            logp = self.smoother.score(*self._lookup_ngrams(ids, pos, hashed))
        logp[(ids == self.vocab.pad_id) | (ids == self.vocab.bos_id)] = -np.inf  # never predicted
        return logp

    def _distributions(self, ids: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """[B, V] ln P(w | context) for every w, after each context row of ``ids`` [B, T] (positions
        ``pos``); the rows' n-grams are looked up together, a table search per order for all rows."""
        grams = [gram[:, -1].tolist() for gram in self._gram_indices(ids, pos)]  # [B] each: ending each row
        dists = []
        for b, last in enumerate(pos[:, -1].tolist()):
            longest = min(self.order, last + 2)  # the highest order usable for the next token
            # contexts[k]: the next token's order-k context, the (k-1)-gram ending the row; -1 if unseen
            contexts = {k: 0 if k == 1 else grams[k - 1][b] for k in range(1, longest + 1)}
            dists.append(self.smoother.distribution(contexts))
        dist = np.stack(dists)
        dist[:, [self.vocab.pad_id, self.vocab.bos_id]] = -np.inf
        return dist

    # --- export --------------------------------------------------------------------------------

    def to_arpa(self, path: str | Path) -> Path:
        """Write the model as an ARPA file (log10 probabilities, log10 backoff weights), e.g. for kenlm."""
        vocab = self._fitted()
        if not isinstance(self.smoother, KneserNey):
            raise ValueError(
                "to_arpa writes the backoff form (log10 P of each seen n-gram, log10 gamma(h) of each "
                f"history) that lmlib keeps for Kneser-Ney only, not for {self.smoothing!r}; "
                "use smoothing='kneser_ney' or 'modified_kneser_ney'"
            )
        names = _arpa_names(vocab)
        log10 = 1 / math.log(10)
        lines = {}  # order -> its lines "log10 P <tab> w_1 .. w_k [<tab> log10 gamma]"
        gram_names = [""]  # the empty context
        for k, table in self.tables.items():
            gram_names = [
                f"{gram_names[c]} {names[w]}".lstrip() for c, w in zip(table.context, table.word, strict=True)
            ]
            logp10 = table.logp * log10
            logp10[table.word == vocab.bos_id] = -99.0  # ARPA's "never": <s> is not predicted
            higher = self.tables.get(k + 1)  # where this order's n-grams are contexts
            bow10 = np.full(len(logp10), np.nan) if higher is None else np.where(
                higher.context_seen, higher.log_unseen * log10, np.nan
            )
            keep = table.word != vocab.pad_id
            lines[k] = [
                f"{p:.8f}\t{name}" + ("" if math.isnan(bow) else f"\t{bow:.8f}")
                for name, p, bow, kept in zip(gram_names, logp10.tolist(), bow10.tolist(), keep.tolist(), strict=True)
                if kept
            ]
        path = Path(path)
        with path.open("w", encoding="utf-8") as f:
            f.write("\\data\\\n" + "".join(f"ngram {k}={len(ls)}\n" for k, ls in lines.items()))
            for k, ls in lines.items():
                f.write(f"\n\\{k}-grams:\n" + "\n".join(ls) + "\n")
            f.write("\n\\end\\\n")
        return path

    def _fitted(self) -> Vocab:
        if self.vocab is None:
            raise RuntimeError("this NGramLM is not trained yet: call model.fit(sentences) first")
        return self.vocab


# --- counting ------------------------------------------------------------------------------------

def count_ngrams(
    ids: np.ndarray, pos: np.ndarray, order: int, vocab_size: int
) -> dict[int, NGramTable]:
    """Count every k-gram (k = 1..order) of a stream of padded sentences.

    ``ids`` [N]: ``<s> w .. </s> <s> w ..`` as vocabulary ids; ``pos`` [N]: each
    token's position in its sentence. A k-gram ends at each t with pos[t] >= k-1
    (it stays inside the sentence); the unigram ``<s>`` is context only and not
    counted. Each k-gram is keyed by the index of its context (the (k-1)-gram
    before it) times vocab_size plus its word, so ``np.unique`` counts them all.
    """
    words = np.arange(vocab_size)
    tables = {1: NGramTable(
        vocab_size=vocab_size, keys=words,
        context=np.zeros(vocab_size, dtype=np.int64), word=words,
        suffix=np.zeros(vocab_size, dtype=np.int64),
        count=np.bincount(ids[pos > 0], minlength=vocab_size),
        starts_with_bos=words == Vocab.bos_id,
    )}
    # index of the (k-1)-gram ending at each position; unigram index = word id
    gram = ids.astype(np.int64)
    for k in range(2, order + 1):
        if len(tables[k - 1].keys) * vocab_size >= 2**62:
            raise OverflowError(
                f"too many {k - 1}-grams to pack {k}-gram keys into int64"
            )
        # positions where a k-gram ends inside its sentence
        at = np.flatnonzero(pos >= k - 1)
        keys, first, inverse, count = np.unique(
            gram[at - 1] * vocab_size + ids[at],
            return_index=True, return_inverse=True, return_counts=True,
        )
        tables[k] = NGramTable(
            vocab_size=vocab_size, keys=keys,
            context=keys // vocab_size, word=keys % vocab_size,
            suffix=gram[at[first]], count=count,
            starts_with_bos=pos[at[first]] == k - 1,
        )
        gram = np.full(len(ids), -1, dtype=np.int64)
        gram[at] = inverse
    return tables


def continuation_counts(tables: dict[int, NGramTable], k: int) -> np.ndarray:
    """N1+(. g) for every k-gram g: how many distinct words precede g,
    i.e. (k+1)-grams ending in g.
    """
    return np.bincount(tables[k + 1].suffix, minlength=len(tables[k].keys))


def adjusted_counts(tables: dict[int, NGramTable], k: int) -> np.ndarray:
    """Kneser-Ney's a(g): raw counts at the highest order and for n-grams starting
    with <s>, else continuation.
    """
    table = tables[k]
    if k == max(tables):
        return table.count
    return np.where(table.starts_with_bos, table.count, continuation_counts(tables, k))


# --- smoothing -----------------------------------------------------------------------------------

def _context_totals(table: NGramTable, n_contexts: int, weights: np.ndarray) -> np.ndarray:
    return np.bincount(table.context, weights=weights, minlength=n_contexts).astype(float)  # [G_{k-1}]


def _n_contexts(tables: dict[int, NGramTable], k: int) -> int:
    return 1 if k == 1 else len(tables[k - 1].keys)


def mle(tables: dict[int, NGramTable]) -> None:
    """P(w | h) = c(h w) / c(h .) for every stored n-gram; unseen words get -inf."""
    for k, table in tables.items():
        total = _context_totals(table, _n_contexts(tables, k), table.count)
        with np.errstate(divide="ignore", invalid="ignore"):
            table.logp = np.log(table.count / total[table.context])
        table.log_unseen = np.full(len(total), -np.inf)
        table.context_seen = total > 0


def add_k(tables: dict[int, NGramTable], k_add: float, n_predictable: int) -> None:
    """P(w | h) = (c(h w) + k) / (c(h .) + k |V|);
    a word unseen after h gets k / (c(h .) + k |V|).
    """
    for k, table in tables.items():
        total = _context_totals(table, _n_contexts(tables, k), table.count)
        denominator = total + k_add * n_predictable
        table.logp = np.log((table.count + k_add) / denominator[table.context])
        table.log_unseen = np.log(k_add / denominator)
        table.context_seen = total > 0


def em_interpolation_weights(
    probs: np.ndarray, iterations: int = 1000, tol: float = 1e-8
) -> tuple[float, ...]:
    """The weights lambda that maximise sum_t ln sum_i lambda_i p_ti on held-out
    tokens, by EM.

    ``probs`` [N, m]: p_ti, the probability that component i (the uniform, then the MLE of
    each order) gives held-out token t. From equal weights, each step gives each component
    its share of the tokens, as a posterior:

        r_ti = lambda_i p_ti / sum_j lambda_j p_tj,        lambda_i <- (1/N) sum_t r_ti,

    a step that never lowers the held-out likelihood (Dempster, Laird & Rubin 1977).
    """
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.size == 0:
        raise ValueError(
            "probs must be [tokens, components] with at least one of each, "
            f"got shape {probs.shape}"
        )
    if not (probs.max(axis=1) > 0).all():
        raise ValueError(
            "a held-out token has probability 0 under every component; "
            "include the uniform one"
        )
    lambdas = np.full(probs.shape[1], 1 / probs.shape[1])  # [m]
    for _ in range(iterations):
        mixture = probs @ lambdas  # [N] P(w_t) under the current weights
        # [m] = (1/N) sum_t r_ti, without r's [N, m]
        updated = lambdas * (probs.T @ (1 / mixture)) / len(probs)
        converged = np.abs(updated - lambdas).max() < tol
        lambdas = updated
        if converged:
            break
    return tuple(float(x) for x in lambdas)


def kn_discounts(adjusted: np.ndarray, modified: bool) -> tuple[float, float, float]:
    """(D1, D2, D3+) from the count-of-counts n_r of one order's adjusted counts
    (Chen & Goodman).

    Plain Kneser-Ney uses one D = n1 / (n1 + 2 n2) for every count. Falls back to
    ``FALLBACK_DISCOUNTS`` when the counts cannot give 0 < D_r <= r (tiny corpora).
    """
    # n[r], r = 1..4
    n = np.bincount(adjusted[adjusted > 0].clip(max=5), minlength=6).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = n[1] / (n[1] + 2 * n[2])
        if modified:
            d = (
                1 - 2 * y * n[2] / n[1],
                2 - 3 * y * n[3] / n[2],
                3 - 4 * y * n[4] / n[3],
            )
        else:
            d = (y, y, y)
    if all(math.isfinite(x) and 0 < x <= r for r, x in enumerate(d, start=1)):
        return tuple(float(x) for x in d)
    return FALLBACK_DISCOUNTS["modified_kneser_ney" if modified else "kneser_ney"]


def kneser_ney(
    tables: dict[int, NGramTable], n_predictable: int, modified: bool
) -> dict[int, tuple]:
    """Interpolated (modified) Kneser-Ney, from the unigrams up; returns the discounts
    per order.

    P(w | h) = (a(h w) - D(a)) / a(h .) + gamma(h) P(w | h'),
    gamma(h) = sum of the discounts / a(h .).
    The unigrams interpolate with the uniform 1/|V|, so every predictable token has P > 0.
    """
    discounts = {}
    for k, table in tables.items():
        a = adjusted_counts(tables, k)
        d_r = kn_discounts(a, modified)
        # [G] the discount of each n-gram
        d = np.where(a > 0, np.array([0.0, *d_r])[a.clip(max=3)], 0.0)
        total = _context_totals(table, _n_contexts(tables, k), a)
        seen = total > 0
        gamma = np.divide(
            _context_totals(table, len(total), d), total,
            out=np.ones_like(total), where=seen,
        )
        if k == 1:
            lower = np.full(len(a), 1 / n_predictable)
            lower[[Vocab.pad_id, Vocab.bos_id]] = 0.0  # never predicted
        else:
            lower = np.exp(tables[k - 1].logp)[table.suffix]
        with np.errstate(divide="ignore", invalid="ignore"):
            p = (
                np.where(seen[table.context], (a - d) / total[table.context], 0.0)
                + gamma[table.context] * lower
            )
            table.logp = np.log(p)
        table.log_unseen = np.log(gamma)
        table.context_seen = seen
        discounts[k] = d_r
    return discounts


# --- the smoothings: each one's fit, score and next-token distribution -------------------------
#
# ``NGramLM`` finds the n-grams; a smoothing turns their counts into probabilities. Its
# ``score`` gets, for a stream of N tokens, grams[k] [N] (index of the k-gram ending at t),
# contexts[k] [N] (index of that k-gram's context h) and longest [N] (the highest order that
# fits at t), indices -1 where unseen; its ``distribution`` gets the index of each order's
# context of the next token, {k: h}.

Grams = list[np.ndarray]  # grams[k] [N]: index of the k-gram ending at each position (-1: unseen)
Contexts = dict[int, np.ndarray]  # contexts[k] [N]: index of that k-gram's context h (-1: unseen)


class Smoother(Protocol):
    """What ``NGramLM`` asks of a smoothing (``MLE``, ``AddK``, ``JelinekMercer``, ``KneserNey``)."""

    def fit(self, tables: dict[int, NGramTable], n_predictable: int) -> None:
        """Set every table's logp, log_unseen and context_seen from its counts."""
        ...

    def score(self, grams: Grams, contexts: Contexts, longest: np.ndarray) -> np.ndarray:
        """[N] ln P(w_t | h_t) for each token of a stream of sentences."""
        ...

    def distribution(self, contexts: dict[int, int]) -> np.ndarray:
        """[V] ln P(w | h) for every w in the vocabulary, after one context."""
        ...


class MLE:
    """P(w | h) = c(h w) / c(h .), with h the longest context seen in training."""

    def fit(self, tables: dict[int, NGramTable], n_predictable: int) -> None:
        self.tables = tables
        mle(tables)

    def score(self, grams: Grams, contexts: Contexts, longest: np.ndarray) -> np.ndarray:
        """The longest context seen in training decides; a word never seen after it gets ln 0 = -inf."""
        logp, done = np.full(len(longest), -np.inf), np.zeros(len(longest), dtype=bool)
        for k in reversed(self.tables):
            table, gram, h = self.tables[k], grams[k], contexts[k]
            here = ~done & (longest >= k) & (h >= 0)
            here[here] = table.context_seen[h[here]]
            seen = here & (gram >= 0)
            logp[seen] = table.logp[gram[seen]]
            done |= here
        return logp

    def distribution(self, contexts: dict[int, int]) -> np.ndarray:
        k = max(k for k, h in contexts.items() if h >= 0 and self.tables[k].context_seen[h])
        table, rows = self.tables[k], self.tables[k].children(contexts[k])
        dist = np.full(table.vocab_size, -np.inf)
        dist[table.word[rows]] = table.logp[rows]
        return dist


class AddK:
    """P(w | h) = (c(h w) + k) / (c(h .) + k |V|), with h the full context (k = 1: Laplace)."""

    def __init__(self, k: float = 1.0):
        if not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0):
            raise ValueError(f"k must be a number > 0 for add-k smoothing (k=1 is Laplace), got {k!r}")
        self.k = k

    def fit(self, tables: dict[int, NGramTable], n_predictable: int) -> None:
        self.tables, self.n_predictable = tables, n_predictable
        add_k(tables, self.k, n_predictable)

    def score(self, grams: Grams, contexts: Contexts, longest: np.ndarray) -> np.ndarray:
        """The full context h always: (c(h w) + k) / (c(h .) + k|V|), which is 1/|V| if h was never seen."""
        logp = np.full(len(longest), -math.log(self.n_predictable))
        for k, table in self.tables.items():
            gram, h = grams[k], contexts[k]
            seen_context = (longest == k) & (h >= 0)
            logp[seen_context] = table.log_unseen[h[seen_context]]
            seen = (longest == k) & (gram >= 0)
            logp[seen] = table.logp[gram[seen]]
        return logp

    def distribution(self, contexts: dict[int, int]) -> np.ndarray:
        k = max(contexts)
        h, table = contexts[k], self.tables[k]
        dist = np.full(table.vocab_size, table.log_unseen[h] if h >= 0 else -math.log(self.n_predictable))
        if h >= 0:
            rows = table.children(h)
            dist[table.word[rows]] = table.logp[rows]
        return dist


class JelinekMercer:
    """P(w | h) = lambda_0 / |V| + sum_{i=1}^{n} lambda_i P_MLE(w | h_i), sum_i lambda_i = 1.

    Needs no table of its own: it mixes the MLEs of every order when it scores.
    """

    def __init__(self, order: int, lambdas: Sequence[float] | None = None):
        equal = np.full(order + 1, 1 / (order + 1))
        self.order = order
        # (lambda_0 uniform, lambda_1 .. lambda_n); NGramLM.tune_lambdas sets them by EM
        self.lambdas = _check_lambdas(equal if lambdas is None else lambdas, order)
        self.mle = MLE()

    def fit(self, tables: dict[int, NGramTable], n_predictable: int) -> None:
        self.n_predictable = n_predictable
        self.mle.fit(tables, n_predictable)

    def score(self, grams: Grams, contexts: Contexts, longest: np.ndarray) -> np.ndarray:
        """ln of lambda_0 / |V| + sum_i lambda_i P_MLE(w | h_i):
        one weighted sum per token.
        """
        return np.log(
            self.mle_by_order(grams, contexts, longest) @ np.array(self.lambdas)
        )

    def mle_by_order(self, grams: Grams, contexts: Contexts,
                     longest: np.ndarray) -> np.ndarray:
        """[N, n+1]: column 0 the uniform 1/|V|;
        column i the MLE of order i, P_MLE(w | h_i).
        """
        columns = [np.full(len(longest), 1 / self.n_predictable)]
        for i in range(1, self.order + 1):
            with np.errstate(divide="ignore"):
                columns.append(
                    np.exp(self.mle.score(grams, contexts, np.minimum(longest, i)))
                )
        return np.stack(columns, axis=1)

    def distribution(self, contexts: dict[int, int]) -> np.ndarray:
        dist = np.full(self.mle.tables[1].vocab_size, self.lambdas[0] / self.n_predictable)
        for i in range(1, self.order + 1):
            mle_i = self.mle.distribution({k: h for k, h in contexts.items() if k <= i})
            dist += self.lambdas[i] * np.exp(mle_i)
        with np.errstate(divide="ignore"):
            return np.log(dist)


class KneserNey:
    """Interpolated Kneser-Ney, modified (three discounts) if ``modified`` (see ``kneser_ney``):

        P(w | h) = max(a(h w) - D, 0) / a(h .) + gamma(h) P(w | h'),

    kept in its backoff form, ln P of every seen n-gram and ln gamma(h) of every context,
    which is what ARPA files store.
    """

    def __init__(self, modified: bool = False):
        self.modified = modified
        self.discounts: dict[int, tuple[float, float, float]] = {}  # order -> (D1, D2, D3+)

    def fit(self, tables: dict[int, NGramTable], n_predictable: int) -> None:
        self.tables = tables
        self.discounts = kneser_ney(tables, n_predictable, self.modified)

    def score(self, grams: Grams, contexts: Contexts, longest: np.ndarray) -> np.ndarray:
        """Backoff form: ln P of the longest n-gram seen,
        plus ln gamma(h) for each longer context h seen.
        """
        logp, done = np.zeros(len(longest)), np.zeros(len(longest), dtype=bool)
        for k in reversed(self.tables):
            table, gram, h = self.tables[k], grams[k], contexts[k]
            active = ~done & (longest >= k)
            hit = active & (gram >= 0)
            logp[hit] += table.logp[gram[hit]]
            # h seen but never followed by this word: pay gamma(h)
            backoff = active & ~hit & (h >= 0)
            logp[backoff] += table.log_unseen[h[backoff]]
            done |= hit
        return logp

    def distribution(self, contexts: dict[int, int]) -> np.ndarray:
        dist = self.tables[1].logp.copy()
        for k, h in contexts.items():
            table = self.tables[k]
            if k > 1 and h >= 0 and table.context_seen[h]:
                dist += table.log_unseen[h]  # every word gets gamma(h) P(w | h') ...
                rows = table.children(h)
                dist[table.word[rows]] = table.logp[rows]  # ... but the words seen after h their own P
        return dist


# The one place a smoothing's name is read: name -> its smoothing, from NGramLM's
# (order, k, lambdas), which NGramLM.__init__ has checked apply to it.
SMOOTHERS: dict[str, Callable[[int, float | None, Sequence[float] | None], Smoother]] = {
    "mle": lambda order, k, lambdas: MLE(),
    "add_k": lambda order, k, lambdas: AddK(1.0 if k is None else k),
    "jelinek_mercer": lambda order, k, lambdas: JelinekMercer(order, lambdas),
    "kneser_ney": lambda order, k, lambdas: KneserNey(modified=False),
    "modified_kneser_ney": lambda order, k, lambdas: KneserNey(modified=True),
}
SMOOTHINGS = tuple(SMOOTHERS)


# --- helpers -------------------------------------------------------------------------------------

def _context_of_order(grams: list[np.ndarray], k: int, pos: np.ndarray) -> np.ndarray:
    """[N] (or [B, T], along each row) the context of the k-gram ending at each t: the (k-1)-gram
    ending at t-1, or -1."""
    previous = grams[k - 1]
    first = np.full((*previous.shape[:-1], 1), 0 if k == 1 else -1)
    context = np.concatenate([first, previous[..., :-1]], axis=-1)
    return np.where(pos >= k - 1, context, -1)  # -1: the k-gram would reach past the sentence start


def _check_lambdas(lambdas: Sequence[float], order: int) -> tuple[float, ...]:
    weights = np.asarray(lambdas, dtype=float)
    if weights.shape != (order + 1,) or not np.isfinite(weights).all() or (weights < 0).any() \
            or abs(weights.sum() - 1) > 1e-6:
        raise ValueError(
            f"lambdas must be order + 1 = {order + 1} weights >= 0 that sum to 1 (lambda_0 for the uniform "
            f"1/|V|, then one per order 1..{order}), got {weights.tolist()}"
        )
    return tuple(float(x) for x in weights / weights.sum())


def _check_sentences(sentences: Iterable[Sequence[str]]) -> list[list[str]]:
    if isinstance(sentences, str):
        raise TypeError("sentences must be a list of token lists, e.g. [['the', 'cat'], ...], not a str")
    sentences = [s if isinstance(s, (list, str)) else list(s) for s in sentences]  # lists as they are: no copies
    if not sentences:
        raise ValueError("no sentences: pass at least one list of tokens")
    for i, s in enumerate(sentences):
        if isinstance(s, str):
            raise TypeError(f"sentence {i} is the str {s[:30]!r}; pass token lists, e.g. word_tokenize(text)")
    return sentences


def _check_no_padding(counts: Counter) -> None:
    padding = sorted(t for t in (SENTENCE_START, SENTENCE_END, BOS, EOS, PAD) if t in counts)
    if padding:
        raise ValueError(
            f"the sentences contain the padding tokens {padding}; pass them without padding, "
            "NGramLM adds <s> and </s> itself"
        )


def _pad_and_encode(vocab: Vocab, sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """[N] ids of ``<s> w .. </s>`` for each sentence in turn, and [N] each token's position in its sentence."""
    tokens = [t for s in sentences for t in (BOS, *s, EOS)]
    ids = np.array(list(map(vocab.stoi.get, tokens, repeat(vocab.unk_id))), dtype=np.int64)
    lengths = np.array([len(s) + 2 for s in sentences])
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(len(ids)) - np.repeat(starts, lengths)
    return ids, pos


def _encode_stream(vocab: Vocab, sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """[N] ids of ``<s> w .. </s>`` for each sentence in turn (``_pad_and_encode``'s), and [S] where each
    sentence starts; the words are looked up in one pass, the padding is placed by numpy."""
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences)) + 2  # [S]
    ends = np.cumsum(lengths)
    starts = ends - lengths
    ids = np.full(ends[-1], vocab.bos_id, dtype=np.int64)
    ids[ends - 1] = vocab.eos_id
    words = np.ones(len(ids), dtype=bool)
    words[starts], words[ends - 1] = False, False
    tokens = chain.from_iterable(sentences)
    ids[words] = np.fromiter(map(vocab.stoi.get, tokens, repeat(vocab.unk_id)), dtype=np.int64,
                             count=len(ids) - 2 * len(sentences))
    return ids, starts


def _as_rows(ids: torch.Tensor, bos_id: int) -> np.ndarray:
    if hasattr(ids, "detach"):  # a torch tensor, perhaps on a GPU
        ids = ids.detach().cpu()
    rows = np.asarray(ids, dtype=np.int64)
    if rows.ndim != 2 or rows.shape[1] == 0:
        raise ValueError(f"expected token ids of shape [B, T] with T >= 1, got shape {rows.shape}")
    if (rows[:, 0] != bos_id).any():
        raise ValueError("every row must start with <bos> (lmlib.lm.encode_batch builds such rows)")
    return rows


def _positions(rows: np.ndarray, bos_id: int) -> np.ndarray:
    """[B, T] each token's distance from the last <bos> at or before it."""
    t = np.arange(rows.shape[1])
    last_bos = np.maximum.accumulate(np.where(rows == bos_id, t, 0), axis=1)
    return t - last_bos


def _arpa_names(vocab: Vocab) -> list[str]:
    """Each vocabulary entry as ARPA writes it (<s>, </s>, <unk>); tokens must be free of whitespace."""
    reserved = set(ARPA_NAMES.values())
    bad = [t for t in vocab.itos[len(SPECIALS) :] if not t or t in reserved or any(c.isspace() for c in t)]
    if bad:
        raise ValueError(
            f"ARPA separates tokens by whitespace, so a token cannot be empty, contain whitespace or be "
            f"<s>, </s>, <unk>; found {bad[:5]!r}. Tokenize without spaces "
            "(e.g. char_tokenize(text, keep_spaces=False)) or replace them (e.g. by '_')."
        )
    return [ARPA_NAMES.get(t, t) for t in vocab.itos]


def _token_id(vocab: Vocab, token: str) -> int:
    token = {SENTENCE_START: BOS, SENTENCE_END: EOS}.get(token, token)
    return vocab.stoi.get(token, vocab.unk_id)


# --- experiments ---------------------------------------------------------------------------------

def perplexity_by_order(
    train: Sequence[Sequence[str]],
    evals: dict[str, Sequence[Sequence[str]]],
    orders: Sequence[int],
    smoothings: dict[str, dict],
    min_count: int = 1,
    tune_on: Sequence[Sequence[str]] | None = None,
) -> list[dict]:
    """Perplexity of one model per (smoothing, order), trained on ``train``, on each text of ``evals``.

    ``smoothings`` maps a name to ``NGramLM`` options, e.g. ``{"add-k": {"smoothing": "add_k", "k": 0.01}}``.
    A Jelinek-Mercer model without ``lambdas`` in its options gets them tuned on ``tune_on``
    (a validation text).
    Returns one row per smoothing and evaluation text, ``{"smoothing", "split", "n=1", "n=2", ...}``,
    ready for ``lmlib.data.format_table`` and ``lmlib.course.viz.plot_perplexity_by_order``.
    """
    if not orders or not evals or not smoothings:
        raise ValueError("perplexity_by_order needs at least one order, one evaluation text and one smoothing")
    rows = {(name, split): {"smoothing": name, "split": split} for name in smoothings for split in evals}
    for name, options in smoothings.items():
        for n in orders:
            model = NGramLM(n, min_count=min_count, **options).fit(train)
            if model.smoothing == "jelinek_mercer" and "lambdas" not in options:
                if tune_on is None:
                    raise ValueError(f"{name!r} is Jelinek-Mercer: pass tune_on=validation sentences to tune "
                                     "its lambdas, or give lambdas= in its options")
                model.tune_lambdas(tune_on)
            for split, sentences in evals.items():
                rows[name, split][f"n={n}"] = model.perplexity(sentences)
    return list(rows.values())
