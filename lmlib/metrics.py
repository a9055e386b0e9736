"""The metrics of the application chapters, written from their formulas: BLEU and chrF
(translation), ROUGE (summarization), accuracy, macro-F1 and the confusion matrix
(classification), hit@k and MRR (retrieval), bootstrap confidence intervals for all of them, and
Wilson's interval for a share of successes (code generation's parse rate).

Each is tested equal to the library the field reports with (``tests/test_metrics.py``):
sacrebleu, rouge-score, scikit-learn, scipy. Tokenization is borrowed where the field fixes it
(sacrebleu's "13a" and "zh" tokenizers for BLEU, nltk's Porter stemmer for ROUGE); the
counting is written out here.

BLEU (Papineni et al., 2002) over a corpus of hypotheses h with references R(h):

    p_n  = sum_h sum_{g in n-grams(h)} min(count_h(g), max_{r in R(h)} count_r(g))
           / sum_h sum_{g in n-grams(h)} count_h(g)                     (clipped, modified precision)
    BP   = 1 if c > r else exp(1 - r / c)                               (brevity penalty)
    BLEU = BP * exp( (1/N) sum_{n=1}^{N} log p_n ),   N = 4

where c is the hypotheses' total length in tokens and r the sum, over hypotheses, of the
length of the reference closest in length (the shorter one on a tie).

chrF (Popović, 2015) is an F-score on character n-grams (whitespace removed), n = 1..6;
chrF++ adds word unigrams and bigrams. With P and R the precision and recall averaged over
the orders:

    chrF_beta = (1 + beta^2) P R / (beta^2 P + R),   beta = 2 (recall weighs 2x precision)

ROUGE-N (Lin, 2004) is n-gram overlap with precision over the hypothesis and recall over the
reference; ROUGE-L replaces the overlap by the length of the longest common subsequence.

Scores are on the scales their libraries print: BLEU and chrF in 0..100, ROUGE, accuracy, F1,
hit@k and MRR in 0..1.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from statistics import NormalDist
from typing import Any

import numpy as np

from lmlib._deps import require

# sacrebleu's tokenizers that need nothing more installed and never download
BLEU_TOKENIZERS = ("13a", "zh", "intl", "char", "none")
SMOOTHING = {"exp": None, "none": None, "floor": 0.1, "add-k": 1}  # method -> sacrebleu's default value


# --- checking the inputs -------------------------------------------------------------------------

def _check_texts(texts: Any, name: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}: "
                        f"wrap a single sentence as [sentence]")
    if len(texts) == 0:
        raise ValueError(f"{name} is empty: a corpus-level score needs at least one sentence")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] is a {type(text).__name__}, not a string: pass detokenized text "
                            f"(' '.join(tokens) for a list of tokens)")
    return list(texts)


def _check_references(references: Any, n_hypotheses: int) -> list[list[str]]:
    """One entry per hypothesis: a reference string, or a non-empty list of reference strings."""
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(f"references must be a list with one entry per hypothesis, got {type(references).__name__}")
    if len(references) != n_hypotheses:
        raise ValueError(
            f"{n_hypotheses} hypotheses but {len(references)} references: give one entry per hypothesis "
            f"(a string, or a list of strings for several references). sacrebleu takes the transpose, a list "
            f"of reference streams: convert its streams with [list(refs) for refs in zip(*streams)]")
    reference_sets = []
    for i, refs in enumerate(references):
        refs = [refs] if isinstance(refs, str) else refs
        if not isinstance(refs, Sequence) or not all(isinstance(r, str) for r in refs):
            raise TypeError(f"references[{i}] must be a string or a list of strings, got {refs!r:.80}")
        if len(refs) == 0:
            raise ValueError(f"references[{i}] is an empty list: each hypothesis needs at least one reference")
        reference_sets.append(list(refs))
    return reference_sets


# --- n-grams: the counting every overlap metric shares -------------------------------------------

def ngram_counts(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    """How often each n-gram (n consecutive tokens) occurs: ``["a", "b", "a", "b"]``, 2 ->
    {("a", "b"): 2, ("b", "a"): 1}. A sequence shorter than n has none."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def clipped_matches(hypothesis: Counter, references: Sequence[Counter]) -> int:
    """sum_g min(count_hyp(g), max_r count_r(g)): each hypothesis n-gram is credited at most as
    often as it occurs in a single reference, so "the the the the" cannot score on one "the"."""
    return sum(min(count, max(ref[gram] for ref in references)) for gram, count in hypothesis.items())


# --- BLEU ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BLEUStats:
    """BLEU's sufficient statistics: they add up over sentences, and the score is a function of
    their sums (so a bootstrap resamples sentences' statistics, and never tokenizes again)."""

    matches: tuple[int, ...]  # clipped n-gram matches, n = 1..N
    totals: tuple[int, ...]  # hypothesis n-grams, n = 1..N
    hyp_len: int  # hypothesis tokens
    ref_len: int  # tokens of the reference closest in length

    @staticmethod
    def total(stats: Sequence[BLEUStats]) -> BLEUStats:
        """The corpus's statistics: each field summed over the sentences."""
        return BLEUStats(matches=tuple(map(sum, zip(*(s.matches for s in stats), strict=True))),
                         totals=tuple(map(sum, zip(*(s.totals for s in stats), strict=True))),
                         hyp_len=sum(s.hyp_len for s in stats), ref_len=sum(s.ref_len for s in stats))


@dataclass(frozen=True)
class BLEUScore:
    score: float  # 0..100
    precisions: tuple[float, ...]  # p_n in percent (after smoothing), n = 1..N
    brevity_penalty: float
    hyp_len: int  # c
    ref_len: int  # r
    matches: tuple[int, ...]
    totals: tuple[int, ...]


@cache
def _sacrebleu_tokenizer(name: str) -> Callable[[str], str]:
    if name not in BLEU_TOKENIZERS:
        raise ValueError(f"tokenize must be one of {BLEU_TOKENIZERS}, not {name!r} "
                         f"('13a' for English and most languages, 'zh' for Chinese)")
    return require("sacrebleu").BLEU(tokenize=name).tokenizer


def bleu_tokenize(text: str, tokenize: str = "13a") -> list[str]:
    """BLEU's tokens: sacrebleu's tokenizer ("13a" splits punctuation off words, as WMT's
    mteval-v13a.pl; "zh" also makes every Chinese character a token), then split on spaces."""
    return _sacrebleu_tokenizer(tokenize)(text.rstrip()).split()


def closest_ref_length(hyp_len: int, ref_lens: Sequence[int]) -> int:
    """The reference length closest to the hypothesis's; the shorter one on a tie."""
    return min(ref_lens, key=lambda ref_len: (abs(ref_len - hyp_len), ref_len))


def brevity_penalty(hyp_len: int, ref_len: int) -> float:
    """BP = 1 if c >= r else exp(1 - r/c): precision alone would reward saying little; 0 for c = 0."""
    if hyp_len >= ref_len:
        return 1.0
    return math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0


def sentence_bleu_stats(hypothesis: Sequence[str], references: Sequence[Sequence[str]],
                        max_order: int = 4) -> BLEUStats:
    """Clipped matches, n-gram totals and lengths of one tokenized hypothesis against its references."""
    ref_counts = [[ngram_counts(ref, n) for ref in references] for n in range(1, max_order + 1)]
    hyp_counts = [ngram_counts(hypothesis, n) for n in range(1, max_order + 1)]
    return BLEUStats(
        matches=tuple(clipped_matches(hyp, refs) for hyp, refs in zip(hyp_counts, ref_counts, strict=True)),
        totals=tuple(sum(hyp.values()) for hyp in hyp_counts),
        hyp_len=len(hypothesis),
        ref_len=closest_ref_length(len(hypothesis), [len(ref) for ref in references]),
    )


def bleu_stats(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], *,
               tokenize: str = "13a", max_order: int = 4) -> list[BLEUStats]:
    """Each sentence's ``BLEUStats``. ``references[i]`` is the reference of ``hypotheses[i]``, or a
    list of its references."""
    if not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"max_order must be a positive integer (BLEU's is 4), not {max_order!r}")
    hypotheses = _check_texts(hypotheses, "hypotheses")
    reference_sets = _check_references(references, len(hypotheses))
    return [sentence_bleu_stats(bleu_tokenize(hyp, tokenize), [bleu_tokenize(r, tokenize) for r in refs], max_order)
            for hyp, refs in zip(hypotheses, reference_sets, strict=True)]


def modified_precisions(matches: Sequence[int], totals: Sequence[int], smooth: str = "exp",
                        smooth_value: float | None = None) -> list[float]:
    """p_n = matches_n / totals_n in percent, n = 1..N, with sacrebleu's smoothing of a zero
    (Chen & Cherry, 2014) where an order has no match:

    - "none": p_n = 0, so BLEU = 0;
    - "exp" (sacrebleu's default, NIST's mteval): the k-th order without a match gets
      p_n = 1 / (2^k totals_n);
    - "floor": p_n = smooth_value / totals_n (default 0.1);
    - "add-k": matches_n and totals_n both get smooth_value added for n >= 2 (default 1).

    An order with no hypothesis n-gram at all (every sentence shorter than n) has p_n = 0, and
    so has every order when not even a unigram matches: nothing to smooth.
    """
    if smooth not in SMOOTHING:
        raise ValueError(f"smooth must be one of {sorted(SMOOTHING)}, not {smooth!r}")
    value = SMOOTHING[smooth] if smooth_value is None else smooth_value
    if not any(matches):
        return [0.0] * len(matches)
    precisions, zero_orders = [], 0
    for n, (match, total) in enumerate(zip(matches, totals, strict=True), start=1):
        if smooth == "add-k" and n > 1:
            match, total = match + value, total + value
        if total == 0:
            precisions.append(0.0)
        elif match > 0:
            precisions.append(100 * match / total)
        elif smooth == "exp":
            zero_orders += 1
            precisions.append(100 / (2 ** zero_orders * total))
        elif smooth == "floor":
            precisions.append(100 * value / total)
        else:
            precisions.append(0.0)
    return precisions


def bleu_score(stats: Sequence[BLEUStats], smooth: str = "exp", smooth_value: float | None = None) -> BLEUScore:
    """Corpus BLEU from the sentences' statistics: sum them, then BP * geometric mean of the p_n."""
    if not stats:
        raise ValueError("no sentence statistics: BLEU of an empty corpus is undefined")
    total = BLEUStats.total(stats)
    precisions = modified_precisions(total.matches, total.totals, smooth, smooth_value)
    bp = brevity_penalty(total.hyp_len, total.ref_len)
    if min(precisions) == 0:
        score = 0.0  # a geometric mean with a zero factor
    else:
        score = bp * math.exp(sum(math.log(p) for p in precisions) / len(precisions))
    return BLEUScore(score, tuple(precisions), bp, total.hyp_len, total.ref_len, total.matches, total.totals)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], *, tokenize: str = "13a",
                smooth: str = "exp", smooth_value: float | None = None, max_order: int = 4) -> BLEUScore:
    """Corpus BLEU, equal to ``sacrebleu.corpus_bleu``. ``references[i]`` is the reference of
    ``hypotheses[i]``, or a list of its references (sacrebleu takes the transpose: streams).
    ``tokenize="zh"`` for Chinese."""
    return bleu_score(bleu_stats(hypotheses, references, tokenize=tokenize, max_order=max_order),
                      smooth, smooth_value)


# --- chrF ----------------------------------------------------------------------------------------

_PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def chrf_words(text: str) -> list[str]:
    """chrF++'s words: split on spaces, and one punctuation mark at a word's end (else at its start)
    becomes a word of its own, as Popović's chrF++.py and sacrebleu do: "(hi)" -> "(hi", ")"."""
    words = []
    for word in text.split():
        if len(word) > 1 and word[-1] in _PUNCTUATION:
            words += [word[:-1], word[-1]]
        elif len(word) > 1 and word[0] in _PUNCTUATION:
            words += [word[0], word[1:]]
        else:
            words.append(word)
    return words


def chrf_ngrams(text: str, char_order: int = 6, word_order: int = 0) -> list[Counter]:
    """Character n-grams of the text without its whitespace (n = 1..char_order), then word
    n-grams (n = 1..word_order)."""
    chars = list("".join(text.split()))
    words = chrf_words(text) if word_order else []
    return ([ngram_counts(chars, n) for n in range(1, char_order + 1)]
            + [ngram_counts(words, n) for n in range(1, word_order + 1)])


@dataclass(frozen=True)
class ChrFStats:
    """Per order (character orders, then word orders): hypothesis n-grams, reference n-grams,
    matches. Like ``BLEUStats``, they add up over sentences."""

    hyp: tuple[int, ...]
    ref: tuple[int, ...]
    matches: tuple[int, ...]

    @staticmethod
    def total(stats: Sequence[ChrFStats]) -> ChrFStats:
        """The corpus's counts: each field summed over the sentences."""
        return ChrFStats(hyp=tuple(map(sum, zip(*(s.hyp for s in stats), strict=True))),
                         ref=tuple(map(sum, zip(*(s.ref for s in stats), strict=True))),
                         matches=tuple(map(sum, zip(*(s.matches for s in stats), strict=True))))


@dataclass(frozen=True)
class ChrFScore:
    score: float  # 0..100
    precision: float  # P, averaged over the orders, in percent
    recall: float  # R, likewise
    beta: float


def chrf_from_counts(stats: ChrFStats, beta: float = 2) -> tuple[float, float, float]:
    """(chrF, P, R) in percent. P and R average the orders that have n-grams on both sides
    (sacrebleu's "effective order"); chrF = (1 + beta^2) P R / (beta^2 P + R)."""
    precisions, recalls = [], []
    for n_hyp, n_ref, n_match in zip(stats.hyp, stats.ref, stats.matches, strict=True):
        if n_hyp > 0 and n_ref > 0:
            precisions.append(n_match / n_hyp)
            recalls.append(n_match / n_ref)
    if not precisions:
        return 0.0, 0.0, 0.0
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p + r == 0:
        return 0.0, 0.0, 0.0
    return 100 * (1 + beta ** 2) * p * r / (beta ** 2 * p + r), 100 * p, 100 * r


def sentence_chrf_stats(hypothesis: str, references: Sequence[str], char_order: int = 6, word_order: int = 0,
                        beta: float = 2) -> ChrFStats:
    """One sentence's counts against the reference that gives it the best chrF (the first on a tie).

    An order the reference has no n-gram of counts no hypothesis n-grams either, so that
    order drops out of the averages instead of counting as precision 0."""
    if not references:
        raise ValueError("no references: each hypothesis needs at least one")
    hyp_grams = chrf_ngrams(hypothesis, char_order, word_order)
    best, best_f = None, -1.0
    for reference in references:
        ref_grams = chrf_ngrams(reference, char_order, word_order)
        stats = ChrFStats(
            hyp=tuple(sum(hyp.values()) if ref else 0 for hyp, ref in zip(hyp_grams, ref_grams, strict=True)),
            ref=tuple(sum(ref.values()) for ref in ref_grams),
            matches=tuple(clipped_matches(hyp, [ref]) for hyp, ref in zip(hyp_grams, ref_grams, strict=True)),
        )
        f = chrf_from_counts(stats, beta)[0]
        if f > best_f:
            best, best_f = stats, f
    return best


def chrf_stats(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], *, char_order: int = 6,
               word_order: int = 0, beta: float = 2) -> list[ChrFStats]:
    """Each sentence's ``ChrFStats``; ``references`` as for ``corpus_bleu``."""
    if char_order < 0 or word_order < 0 or char_order + word_order == 0:
        raise ValueError(f"need char_order, word_order >= 0 and at least one order, got {char_order}, {word_order} "
                         f"(chrF: 6, 0; chrF++: 6, 2)")
    hypotheses = _check_texts(hypotheses, "hypotheses")
    reference_sets = _check_references(references, len(hypotheses))
    return [sentence_chrf_stats(hyp, refs, char_order, word_order, beta)
            for hyp, refs in zip(hypotheses, reference_sets, strict=True)]


def chrf_score(stats: Sequence[ChrFStats], beta: float = 2) -> ChrFScore:
    """Corpus chrF from the sentences' counts: sum them over the corpus, then the F-score."""
    if not stats:
        raise ValueError("no sentence statistics: chrF of an empty corpus is undefined")
    score, p, r = chrf_from_counts(ChrFStats.total(stats), beta)
    return ChrFScore(score, p, r, beta)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], *, char_order: int = 6,
                word_order: int = 0, beta: float = 2) -> ChrFScore:
    """Corpus chrF (word_order=2: chrF++), equal to ``sacrebleu.corpus_chrf``; ``references`` as for
    ``corpus_bleu``."""
    return chrf_score(chrf_stats(hypotheses, references, char_order=char_order, word_order=word_order, beta=beta),
                      beta)


# --- ROUGE ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RougeScore:
    precision: float  # overlap / hypothesis length
    recall: float  # overlap / reference length
    fmeasure: float  # 2 P R / (P + R)


@cache
def _porter_stemmer() -> Any:
    return require("nltk.stem.porter").PorterStemmer()


@cache
def _stem(word: str) -> str:
    """A word's Porter stem, remembered: a corpus repeats its words, and stemming is slow in Python."""
    return _porter_stemmer().stem(word)


def rouge_tokenize(text: str, use_stemmer: bool = False) -> list[str]:
    """rouge-score's English tokens: lower case, every run of characters other than [a-z0-9] is a
    space (so accented letters, Chinese and punctuation are dropped), optionally the Porter stem
    of each word longer than three letters."""
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    if use_stemmer:
        words = [_stem(w) if len(w) > 3 else w for w in words]
    return [w for w in words if re.fullmatch(r"[a-z0-9]+", w)]  # as rouge-score: a stem must still be a word


def chinese_characters(text: str) -> list[str]:
    """ROUGE's tokens for Chinese: every letter or digit character is a token (punctuation and
    spaces are dropped, as the English tokenizer drops them). rouge-score's own tokenizer would
    drop every Chinese character; character tokens need no segmenter, whose errors would count
    as the summary's. Latin letters are lower-cased and become one token each too."""
    return [c for c in text.lower() if c.isalnum()]


def rouge_n(hypothesis: Sequence[str], reference: Sequence[str], n: int) -> RougeScore:
    """ROUGE-N: overlap = sum_g min(count_hyp(g), count_ref(g)) over n-grams g;
    P = overlap / |hyp n-grams|, R = overlap / |ref n-grams| (0 when there are none)."""
    hyp, ref = ngram_counts(hypothesis, n), ngram_counts(reference, n)
    overlap = clipped_matches(hyp, [ref])
    return _prf(overlap / max(sum(hyp.values()), 1), overlap / max(sum(ref.values()), 1))


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of the longest common subsequence (in order, gaps allowed) of a and b,
    by dynamic programming:
    L[i][j] = L[i-1][j-1] + 1 if a_i = b_j else max(L[i-1][j], L[i][j-1]).
    Keeps two rows of the table: O(|a| |b|) time, O(|b|) memory."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            diagonal, up, left = previous[j - 1], previous[j], current[j - 1]
            current.append(diagonal + 1 if x == y else max(up, left))
        previous = current
    return previous[-1]


def rouge_l(hypothesis: Sequence[str], reference: Sequence[str]) -> RougeScore:
    """ROUGE-L: P = LCS / |hyp|, R = LCS / |ref| (all 0 if either is empty)."""
    if not hypothesis or not reference:
        return RougeScore(0.0, 0.0, 0.0)
    lcs = lcs_length(reference, hypothesis)
    return _prf(lcs / len(hypothesis), lcs / len(reference))


def _prf(precision: float, recall: float) -> RougeScore:
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return RougeScore(precision, recall, f)


def rouge(hypothesis: str, reference: str, *, use_stemmer: bool = False, lang: str = "en") -> dict[str, RougeScore]:
    """ROUGE-1, ROUGE-2 and ROUGE-L of one summary against one reference, equal to rouge-score's
    ``RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=...).score(reference, hypothesis)``
    (note rouge-score's order: target first). ``lang="zh"`` scores Chinese characters
    (``chinese_characters``)."""
    if not isinstance(hypothesis, str) or not isinstance(reference, str):
        raise TypeError(f"rouge scores one hypothesis string against one reference string, got "
                        f"{type(hypothesis).__name__} and {type(reference).__name__}: loop over a corpus's pairs")
    if lang == "en":
        hyp, ref = rouge_tokenize(hypothesis, use_stemmer), rouge_tokenize(reference, use_stemmer)
    elif lang == "zh":
        if use_stemmer:
            raise ValueError("use_stemmer is the English Porter stemmer: Chinese characters have no suffixes to strip")
        hyp, ref = chinese_characters(hypothesis), chinese_characters(reference)
    else:
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
    return {"rouge1": rouge_n(hyp, ref, 1), "rouge2": rouge_n(hyp, ref, 2), "rougeL": rouge_l(hyp, ref)}


# --- classification ------------------------------------------------------------------------------

def _check_pairs(gold: Sequence[Hashable], predicted: Sequence[Hashable]) -> None:
    for name, seq in (("gold", gold), ("predicted", predicted)):
        if isinstance(seq, str) or not isinstance(seq, Sequence | np.ndarray):
            raise TypeError(f"{name} must be a list of labels, got {type(seq).__name__}")
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions: give one prediction per item")
    if len(gold) == 0:
        raise ValueError("no items: a classification metric needs at least one gold label and its prediction")


def _label_set(gold: Sequence[Hashable], predicted: Sequence[Hashable],
               labels: Sequence[Hashable] | None) -> list[Hashable]:
    """The stated labels, each gold and predicted label checked against them; by default the
    sorted labels seen (as scikit-learn)."""
    _check_pairs(gold, predicted)
    if labels is None:
        try:
            return sorted(set(gold) | set(predicted))
        except TypeError as e:
            raise ValueError("the labels mix types that do not sort (e.g. str and int): pass labels=[...] in the "
                             "order you want the rows of the confusion matrix") from e
    labels = list(labels)
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be a non-empty list without repeats, got {labels!r}")
    known = set(labels)
    for name, seq in (("gold", gold), ("predicted", predicted)):
        for i, label in enumerate(seq):
            if label not in known:
                raise ValueError(f"{name}[{i}] is {label!r}, which is not in labels {labels!r}: add it to labels, "
                                 f"or map it to one of them")
    return labels


def accuracy(gold: Sequence[Hashable], predicted: Sequence[Hashable],
             labels: Sequence[Hashable] | None = None) -> float:
    """The share of items whose prediction equals the gold label (``labels``, if given, are checked)."""
    if labels is None:
        _check_pairs(gold, predicted)
    else:
        _label_set(gold, predicted, labels)
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def confusion_matrix(gold: Sequence[Hashable], predicted: Sequence[Hashable],
                     labels: Sequence[Hashable] | None = None) -> np.ndarray:
    """C[i, j] = how many items of gold label labels[i] were predicted labels[j] (rows: gold, as
    scikit-learn). ``labels`` defaults to the sorted labels seen."""
    labels = _label_set(gold, predicted, labels)
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, predicted, strict=True):
        matrix[index[g], index[p]] += 1
    return matrix


def f1_per_label(gold: Sequence[Hashable], predicted: Sequence[Hashable],
                 labels: Sequence[Hashable] | None = None) -> dict[Hashable, float]:
    """F1 = 2 TP / (2 TP + FP + FN) of each label, read off the confusion matrix: TP its diagonal
    cell, FN the rest of its row, FP the rest of its column. A label never seen nor predicted
    has F1 = 0 (scikit-learn's default, with a warning there)."""
    labels = _label_set(gold, predicted, labels)
    matrix = confusion_matrix(gold, predicted, labels)
    tp = np.diag(matrix)
    fn = matrix.sum(axis=1) - tp
    fp = matrix.sum(axis=0) - tp
    denominators = 2 * tp + fp + fn
    return {label: float(2 * t / d) if d else 0.0 for label, t, d in zip(labels, tp, denominators, strict=True)}


def macro_f1(gold: Sequence[Hashable], predicted: Sequence[Hashable],
             labels: Sequence[Hashable] | None = None) -> float:
    """The unweighted mean of the labels' F1: a rare label counts as much as a frequent one."""
    per_label = f1_per_label(gold, predicted, labels)
    return sum(per_label.values()) / len(per_label)


# --- ranking -------------------------------------------------------------------------------------

def _check_rankings(rankings: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]]) -> None:
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings but {len(relevant)} relevant sets: give one of each per query")
    if len(rankings) == 0:
        raise ValueError("no queries: a ranking metric needs at least one ranking and its relevant set")
    for i, (ranking, rel) in enumerate(zip(rankings, relevant, strict=True)):
        if isinstance(ranking, str) or not isinstance(ranking, Sequence):
            raise TypeError(f"rankings[{i}] must be a list of candidate ids, best first, got {ranking!r:.80}")
        if isinstance(rel, str) or not isinstance(rel, Collection):
            raise TypeError(f"relevant[{i}] must be a set of ids, got {rel!r:.80}: wrap a single id as {{id}}")
        if len(rel) == 0:
            raise ValueError(f"relevant[{i}] is empty: a query with no relevant item cannot be scored; drop it")
        if len(set(ranking)) != len(ranking):
            twice = next(c for c, k in Counter(ranking).items() if k > 1)
            raise ValueError(f"rankings[{i}] lists {twice!r} more than once: a ranking orders distinct candidates")


def hits_at_k(rankings: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]], k: int) -> float:
    """hit@k: the share of queries with a relevant id among the first k ranked."""
    _check_rankings(rankings, relevant)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, not {k!r}")
    hits = [any(candidate in rel for candidate in ranking[:k]) for ranking, rel in zip(rankings, relevant, strict=True)]
    return sum(hits) / len(hits)


def reciprocal_rank(ranking: Sequence[Hashable], relevant: Collection[Hashable]) -> float:
    """1 / (the rank of the first relevant id), ranks counted from 1; 0 if none is ranked."""
    return next((1 / rank for rank, c in enumerate(ranking, start=1) if c in relevant), 0.0)


def mean_reciprocal_rank(rankings: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]]) -> float:
    """MRR = (1/Q) sum_q 1 / rank_q, rank_q of query q's first relevant id (1/rank_q = 0 if unranked)."""
    _check_rankings(rankings, relevant)
    return sum(reciprocal_rank(ranking, rel) for ranking, rel in zip(rankings, relevant, strict=True)) / len(rankings)


# --- confidence intervals ------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    estimate: float  # the metric on the items as they are
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class PairedBootstrap:
    difference: float  # metric(b) - metric(a) on the items as they are
    low: float  # the difference's percentile interval
    high: float
    p_value: float  # share of resamples where b does not beat a in the observed direction (Koehn, 2004)
    confidence: float


def _check_bootstrap(n_items: int, n_resamples: int, confidence: float) -> None:
    if n_items == 0:
        raise ValueError("no items to resample: a bootstrap needs at least one item")
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, not {n_resamples!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (0.95 for a 95% interval), not {confidence!r}")


def _resamples(n_items: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Indices of ``n_resamples`` resamples: n_items items drawn with replacement, each."""
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield rng.integers(0, n_items, size=n_items)


def _resampling(items: Sequence) -> tuple[Sequence, Callable[[np.ndarray], Sequence]]:
    """The items as a metric receives them all, and how it receives a resample (its indices) of
    them: a list of the items; for a ``range``, positions into arrays the metric indexes, an integer
    array (a resample of 10^4 positions costs no list of 10^4 Python ints, 1,000 times over)."""
    if isinstance(items, range):
        positions = np.arange(items.start, items.stop, items.step)
        return positions, positions.__getitem__
    items = list(items)
    return items, lambda idx: [items[i] for i in idx]


def _percentiles(values: Sequence[float], confidence: float) -> tuple[float, float]:
    low, high = np.quantile(np.asarray(values, dtype=np.float64), [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def bootstrap_interval(items: Sequence, metric: Callable[[list], float], *, n_resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of a corpus-level metric: resample the items with
    replacement, recompute ``metric`` on each resample, take the (1 -+ confidence)/2 quantiles.

    ``metric`` receives a list of items, e.g. sentences' BLEU statistics:
    ``bootstrap_interval(bleu_stats(hyps, refs), lambda s: bleu_score(s).score)``. Items that are
    ``range(n)`` are positions, and ``metric`` receives an integer array of them to index arrays with:
    ``bootstrap_interval(range(len(x)), lambda i: x[i].sum() / n[i].sum())``.
    """
    items, resample = _resampling(items)
    _check_bootstrap(len(items), n_resamples, confidence)
    scores = [metric(resample(idx)) for idx in _resamples(len(items), n_resamples, seed)]
    return Interval(float(metric(items)), *_percentiles(scores, confidence), confidence)


def bootstrap_mean_interval(scores: Sequence[float], *, n_resamples: int = 1000, confidence: float = 0.95,
                            seed: int = 0) -> Interval:
    """``bootstrap_interval`` for the mean of per-item scores (accuracy: scores of 0 and 1), on
    arrays: the same resamples as ``bootstrap_interval(scores, np.mean)`` with the same seed."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"scores must be one number per item, got an array of shape {values.shape}")
    _check_bootstrap(len(values), n_resamples, confidence)
    means = [values[idx].mean() for idx in _resamples(len(values), n_resamples, seed)]
    return Interval(float(values.mean()), *_percentiles(means, confidence), confidence)


def paired_bootstrap(items_a: Sequence, items_b: Sequence, metric: Callable[[list], float], *,
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                     two_sided: bool = False) -> PairedBootstrap:
    """Paired bootstrap (Koehn, 2004) of system b against system a on the same test items:
    ``items_a[i]`` and ``items_b[i]`` are the two systems' results on item i, and every
    resample draws the same items for both, so the difference is measured on one test set.

    Returns the observed difference metric(b) - metric(a), its percentile interval, and the
    p-value: the share of resamples whose difference is not of the observed sign (b does
    not win where it won on the whole set); 1.0 when the observed difference is 0. That p-value
    is one-sided, right only when the direction was fixed before looking. With ``two_sided``
    it is p = min(1, 2 * min(share(d <= 0), share(d >= 0))), d the resampled differences: the
    test of "the systems differ" in either direction. Items that are ranges are positions, as in
    ``bootstrap_interval``.
    """
    (items_a, resample_a), (items_b, resample_b) = _resampling(items_a), _resampling(items_b)
    if len(items_a) != len(items_b):
        raise ValueError(f"{len(items_a)} items for system a but {len(items_b)} for system b: "
                         f"a paired test needs both systems' results on the same items")
    _check_bootstrap(len(items_a), n_resamples, confidence)
    observed = metric(items_b) - metric(items_a)
    differences = np.array([metric(resample_b(idx)) - metric(resample_a(idx))
                            for idx in _resamples(len(items_a), n_resamples, seed)])
    if two_sided:
        p_value = min(1.0, 2 * float(min(np.mean(differences <= 0), np.mean(differences >= 0))))
    elif observed > 0:
        p_value = float(np.mean(differences <= 0))
    elif observed < 0:
        p_value = float(np.mean(differences >= 0))
    else:
        p_value = 1.0
    return PairedBootstrap(float(observed), *_percentiles(differences, confidence), p_value, confidence)


def bootstrap_sum_interval(items: Sequence, metric: Callable[[list], float], *, n_resamples: int = 1000,
                           confidence: float = 0.95, seed: int = 0) -> Interval:
    """``bootstrap_interval`` for items that add up and a metric of their sum only (``BLEUStats``,
    ``ChrFStats``): each resample is summed at once (``_resample_sums``) and ``metric`` gets a
    one-item list holding the sum. The same resamples and the same interval, without adding up
    every resample in Python: ``bootstrap_sum_interval(bleu_stats(hyps, refs), lambda s:
    bleu_score(s).score)``."""
    items = list(items)
    _check_bootstrap(len(items), n_resamples, confidence)
    scores = [metric([total]) for total in _resample_sums(items, _resamples(len(items), n_resamples, seed))]
    return Interval(float(metric(items)), *_percentiles(scores, confidence), confidence)


def _resample_sums(items: list, resamples: Iterator[np.ndarray]) -> list:
    """Each resample's sum of ``items``, dataclasses of integers and tuples of integers, as one
    item of their class: [resamples, items] counts @ [items, numbers] -> [resamples, numbers]."""
    kind = type(items[0])
    if not is_dataclass(kind) or any(type(item) is not kind for item in items):
        raise TypeError("bootstrap_sum_interval sums dataclasses of one kind (BLEUStats, ChrFStats), got "
                        f"{kind.__name__}")
    names = [f.name for f in fields(kind)]
    widths = [len(v) if isinstance(v, tuple) else 0 for v in (getattr(items[0], n) for n in names)]
    rows = [[x for n, w in zip(names, widths, strict=True) for x in (getattr(item, n) if w else [getattr(item, n)])]
            for item in items]
    if any(type(x) is not int for row in rows for x in row) or len({len(row) for row in rows}) != 1:
        raise TypeError(f"bootstrap_sum_interval sums integers and tuples of integers of one length; "
                        f"{kind.__name__} items hold other values: use bootstrap_interval")
    counts = np.stack([np.bincount(idx, minlength=len(items)) for idx in resamples])  # [R, n]
    sums = (counts @ np.array(rows, dtype=np.int64)).tolist()  # [R, k] exact integers

    def item(row: list[int]) -> object:
        values, at = {}, 0
        for name, width in zip(names, widths, strict=True):
            values[name] = tuple(row[at : at + width]) if width else row[at]
            at += width or 1
        return kind(**values)

    return [item(row) for row in sums]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of a proportion k / n (Wilson 1927): the p whose
    normal test does not reject k successes in n at the given confidence,

        (p^ + z^2/2n  -+  z sqrt(p^ (1 - p^) / n + z^2 / 4n^2)) / (1 + z^2 / n),

    p^ = k / n, z the (1 + confidence) / 2 normal quantile. Unlike the bootstrap's
    percentiles, it does not shrink to a point at 0 of n or n of n (0 of 100 gives
    [0, 3.7%]).
    """
    whole = isinstance(n, int) and isinstance(successes, int)
    if not (whole and n >= 1 and 0 <= successes <= n):
        raise ValueError("need 0 <= successes <= n and n >= 1 (whole numbers), "
                         f"got {successes} of {n}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1 (0.95 for a 95% interval), "
                         f"not {confidence!r}")
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes == 0 else centre - half  # exactly 0 and 1 at the edges, not
    high = 1.0 if successes == n else centre + half  # 0 and 1 give or take a round-off
    return Interval(p, low, high, confidence)


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (Holm, 1979) for testing several comparisons at once: with the
    p-values sorted, p_(1) <= ... <= p_(m), the adjusted p_(i) is max_{j <= i} min(1, (m - j + 1) p_(j)).
    Rejecting where the adjusted value is below alpha keeps the chance of any false rejection below
    alpha, like Bonferroni's m * p, and rejects at least as often."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0 or np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError(f"p_values must be a non-empty list of numbers in [0, 1], got {list(p_values)!r}")
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted.tolist()
