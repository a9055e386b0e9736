"""lmlib.metrics, equal to the field's libraries on the course's text.

BLEU and chrF against sacrebleu, ROUGE against rouge-score, classification and ranking against
scikit-learn, the bootstrap and Wilson's interval against scipy. References are real sentences
(``wiki``, and ``reviews_zh`` for Chinese); hypotheses are seeded perturbations of them (words dropped,
repeated, swapped, replaced, cut off), so every n-gram order has matches and misses. Each
equality test is shown able to fail: the same check on a deliberately wrong variant breaks it.
"""

import random
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import sacrebleu
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer, tokenizers
from sklearn import metrics as skm

from lmlib import metrics
from lmlib.data import load_corpus
from lmlib.metrics import (
    brevity_penalty,
    clipped_matches,
    closest_ref_length,
    corpus_bleu,
    corpus_chrf,
    lcs_length,
    ngram_counts,
    rouge,
)
from lmlib.tokenize import split_sentences

BLEU_TOLERANCE = 0.01  # BLEU and chrF points, as the issue asks


# --- the test corpora ----------------------------------------------------------------------------

def perturb(words: list[str], rng: random.Random, vocabulary: list[str], rate: float = 0.15) -> list[str]:
    """A noisy copy: each word dropped, doubled, swapped with the next or replaced with probability
    ``rate`` each, and one copy in ten cut to its first half."""
    out = []
    for w in words:
        r = rng.random()
        if r < rate:
            continue
        out.append(w)
        if r < 2 * rate:
            out.append(w)
        elif r < 3 * rate and len(out) > 1:
            out[-1], out[-2] = out[-2], out[-1]
        elif r < 4 * rate:
            out[-1] = rng.choice(vocabulary)
    if rng.random() < 0.1:
        out = out[: len(out) // 2]
    return out


@pytest.fixture(scope="module")
def wiki_sentences() -> list[str]:
    sentences = [s for doc in load_corpus("wiki", "test") for s in split_sentences(doc) if 8 <= len(s.split()) <= 60]
    return sentences[:: max(1, len(sentences) // 150)][:150]


@pytest.fixture(scope="module")
def english(wiki_sentences) -> SimpleNamespace:
    """hyps[i] a noisy copy of refs[i]; refs2[i] another, a second reference."""
    rng = random.Random(0)
    vocabulary = sorted({w for s in wiki_sentences for w in s.split()})
    hyps = [" ".join(perturb(s.split(), rng, vocabulary)) for s in wiki_sentences]
    refs2 = [" ".join(perturb(s.split(), rng, vocabulary, rate=0.1)) for s in wiki_sentences]
    worse = [" ".join(perturb(s.split(), rng, vocabulary, rate=0.3)) for s in wiki_sentences]
    return SimpleNamespace(hyps=hyps, refs=list(wiki_sentences), refs2=refs2, worse=worse)


@pytest.fixture(scope="module")
def chinese() -> SimpleNamespace:
    rng = random.Random(1)
    sentences = [s for text, _ in load_corpus("reviews_zh", "test")[:400] for s in split_sentences(text, "zh")
                 if 6 <= len(s) <= 80][:150]
    characters = sorted({c for s in sentences for c in s})
    hyps = ["".join(perturb(list(s), rng, characters)) for s in sentences]
    return SimpleNamespace(hyps=hyps, refs=sentences)


def streams(references: list[list[str]]) -> list[list[str | None]]:
    """Per-hypothesis reference lists -> sacrebleu's reference streams (None where one has fewer)."""
    width = max(len(refs) for refs in references)
    return [[refs[j] if j < len(refs) else None for refs in references] for j in range(width)]


def same_bleu(ours: metrics.BLEUScore, theirs) -> None:
    assert abs(ours.score - theirs.score) <= BLEU_TOLERANCE, (ours.score, theirs.score)
    assert ours.precisions == pytest.approx(theirs.precisions, abs=1e-9)
    assert ours.brevity_penalty == pytest.approx(theirs.bp, abs=1e-12)
    assert (ours.hyp_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)


# --- BLEU ----------------------------------------------------------------------------------------

def test_the_pieces_count_as_the_formula_says():
    assert ngram_counts(["a", "b", "a", "b"], 2) == {("a", "b"): 2, ("b", "a"): 1}
    assert ngram_counts(["a"], 2) == {}
    # "the" four times in the hypothesis, at most twice in one reference: credited twice
    hyp = ngram_counts("the the the the cat".split(), 1)
    assert clipped_matches(hyp, [ngram_counts("the cat the".split(), 1), ngram_counts("a the".split(), 1)]) == 3
    assert closest_ref_length(5, [3, 7, 9]) == 3  # 3 and 7 tie: the shorter
    assert closest_ref_length(5, [6, 2]) == 6
    assert brevity_penalty(10, 8) == 1.0
    assert brevity_penalty(8, 10) == pytest.approx(np.exp(1 - 10 / 8))
    assert brevity_penalty(0, 10) == 0.0


@pytest.mark.parametrize("smooth", ["exp", "none", "floor", "add-k"])
def test_corpus_bleu_equals_sacrebleu_on_wiki(english, smooth):
    same_bleu(corpus_bleu(english.hyps, english.refs, smooth=smooth),
              sacrebleu.corpus_bleu(english.hyps, [english.refs], smooth_method=smooth))


@pytest.mark.parametrize("tokenize", ["intl", "char", "none"])
def test_corpus_bleu_equals_sacrebleu_with_its_other_tokenizers(english, tokenize):
    same_bleu(corpus_bleu(english.hyps, english.refs, tokenize=tokenize),
              sacrebleu.corpus_bleu(english.hyps, [english.refs], tokenize=tokenize))


def test_corpus_bleu_equals_sacrebleu_with_several_references(english):
    # two references each, except every third hypothesis which has one
    references = [[r] if i % 3 == 0 else [r, r2]
                  for i, (r, r2) in enumerate(zip(english.refs, english.refs2, strict=True))]
    ours = corpus_bleu(english.hyps, references)
    same_bleu(ours, sacrebleu.corpus_bleu(english.hyps, streams(references)))
    assert ours.score > corpus_bleu(english.hyps, english.refs).score  # a second reference can only add matches


def test_corpus_bleu_equals_sacrebleu_on_chinese(chinese):
    theirs = sacrebleu.corpus_bleu(chinese.hyps, [chinese.refs], tokenize="zh")
    same_bleu(corpus_bleu(chinese.hyps, chinese.refs, tokenize="zh"), theirs)
    assert abs(corpus_bleu(chinese.hyps, chinese.refs).score - theirs.score) > 1  # "13a" keeps a clause one token


EDGE_CASES = {
    "empty hypothesis among others": (["", "the cat sat on the mat"], ["a dog", "the cat sat on the mat"]),
    "only an empty hypothesis": ([""], ["a dog barked"]),
    "no 4-gram matches": (["a b c x d e f"], ["a b c y d e f"]),
    "hypothesis longer than reference": (["the cat sat on the red mat today ."], ["the cat sat on the mat ."]),
    "shorter than four tokens": (["the cat", "dog"], ["the cat", "dog"]),
    "no match at all": (["alpha beta gamma delta"], ["one two three four"]),
    "repeated word, clipped": (["the the the the"], ["the cat is here"]),
    "empty reference": (["a b c d e"], [""]),
}


@pytest.mark.parametrize("smooth", ["exp", "none"])
@pytest.mark.parametrize("case", EDGE_CASES)
def test_corpus_bleu_equals_sacrebleu_on_edge_cases(case, smooth):
    hyps, refs = EDGE_CASES[case]
    same_bleu(corpus_bleu(hyps, refs, smooth=smooth), sacrebleu.corpus_bleu(hyps, [refs], smooth_method=smooth))


def test_edge_cases_give_what_the_formula_says():
    no_four_gram = corpus_bleu(*EDGE_CASES["no 4-gram matches"])
    assert no_four_gram.matches == (6, 4, 2, 0)  # a b c d e f; ab bc de ef; abc def; none
    assert no_four_gram.precisions[3] == pytest.approx(100 / (2 * 4))  # exp smoothing: 1 / (2^1 * 4 4-grams)
    assert corpus_bleu(*EDGE_CASES["no 4-gram matches"], smooth="none").score == 0.0
    assert corpus_bleu(*EDGE_CASES["hypothesis longer than reference"]).brevity_penalty == 1.0
    assert corpus_bleu(*EDGE_CASES["only an empty hypothesis"]).brevity_penalty == 0.0
    assert corpus_bleu(*EDGE_CASES["repeated word, clipped"]).precisions[0] == 25.0
    assert corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]).score == pytest.approx(100)


def test_bleu_without_clipping_would_fail_the_check(english, monkeypatch):
    """The tolerance catches a real mistake: BLEU that credits repeated words every time."""
    theirs = sacrebleu.corpus_bleu(english.hyps, [english.refs]).score
    assert abs(corpus_bleu(english.hyps, english.refs).score - theirs) <= BLEU_TOLERANCE

    def unclipped(hypothesis, references):
        return sum(count for gram, count in hypothesis.items() if any(ref[gram] for ref in references))

    monkeypatch.setattr(metrics, "clipped_matches", unclipped)
    assert abs(corpus_bleu(english.hyps, english.refs).score - theirs) > BLEU_TOLERANCE


tokens = st.lists(st.sampled_from("a b c d e".split()), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(tokens, st.lists(tokens, min_size=1, max_size=3)), min_size=1, max_size=4),
       st.sampled_from(["exp", "none"]))
def test_corpus_bleu_equals_sacrebleu_on_random_corpora(corpus, smooth):
    hyps = [" ".join(h) for h, _ in corpus]
    refs = [[" ".join(r) for r in rs] for _, rs in corpus]
    same_bleu(corpus_bleu(hyps, refs, tokenize="none", smooth=smooth),
              sacrebleu.corpus_bleu(hyps, streams(refs), tokenize="none", smooth_method=smooth))


# --- chrF ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("word_order", [0, 2])
def test_corpus_chrf_equals_sacrebleu_on_wiki(english, word_order):
    ours = corpus_chrf(english.hyps, english.refs, word_order=word_order)
    theirs = sacrebleu.corpus_chrf(english.hyps, [english.refs], word_order=word_order)
    assert abs(ours.score - theirs.score) <= BLEU_TOLERANCE


def test_corpus_chrf_equals_sacrebleu_with_several_references_and_on_chinese(english, chinese):
    references = [[r, r2] if i % 2 else [r] for i, (r, r2) in enumerate(zip(english.refs, english.refs2, strict=True))]
    for word_order in (0, 2):
        ours = corpus_chrf(english.hyps, references, word_order=word_order).score
        assert abs(ours - sacrebleu.corpus_chrf(english.hyps, streams(references), word_order=word_order).score) \
            <= BLEU_TOLERANCE
    ours = corpus_chrf(chinese.hyps, chinese.refs).score
    assert abs(ours - sacrebleu.corpus_chrf(chinese.hyps, [chinese.refs]).score) <= BLEU_TOLERANCE


@pytest.mark.parametrize("case", EDGE_CASES)
def test_corpus_chrf_equals_sacrebleu_on_edge_cases(case):
    hyps, refs = EDGE_CASES[case]
    for word_order in (0, 2):
        ours = corpus_chrf(hyps, refs, word_order=word_order).score
        assert abs(ours - sacrebleu.corpus_chrf(hyps, [refs], word_order=word_order).score) <= BLEU_TOLERANCE


def test_chrf_plus_plus_without_its_punctuation_rule_would_fail_the_check(english, monkeypatch):
    theirs = sacrebleu.corpus_chrf(english.hyps, [english.refs], word_order=2).score
    monkeypatch.setattr(metrics, "chrf_words", str.split)
    assert abs(corpus_chrf(english.hyps, english.refs, word_order=2).score - theirs) > BLEU_TOLERANCE


# --- ROUGE ---------------------------------------------------------------------------------------

def same_rouge(ours: dict, theirs: dict) -> None:
    assert set(ours) == set(theirs)
    for kind, score in ours.items():
        assert (score.precision, score.recall, score.fmeasure) == pytest.approx(tuple(theirs[kind]), abs=1e-12), kind


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_equals_rouge_score_per_example(english, use_stemmer):
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=use_stemmer)
    for hyp, ref in zip(english.hyps, english.refs, strict=True):
        same_rouge(rouge(hyp, ref, use_stemmer=use_stemmer), scorer.score(ref, hyp))


ODD_TEXTS = ["", "   ", "Hello, World!! 3.14 is pi", "café naïve Ünïcode — 東京 Straße", "running runs ran RUNNER",
             "e-mail: x_y@z.org (2024)", "İstanbul KELVİN K", "a\nb\tc"]


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_tokenizes_odd_text_as_rouge_score(use_stemmer):
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=use_stemmer)
    for hyp in ODD_TEXTS:
        assert metrics.rouge_tokenize(hyp, use_stemmer) == tokenizers.DefaultTokenizer(use_stemmer).tokenize(hyp)
        for ref in ODD_TEXTS:
            same_rouge(rouge(hyp, ref, use_stemmer=use_stemmer), scorer.score(ref, hyp))


def test_rouge_on_chinese_counts_characters(chinese):
    def letters_and_digits(text):  # written apart from lmlib's: \w without the underscore
        return re.findall(r"[^\W_]", text.lower())

    for text in chinese.refs + ODD_TEXTS:
        assert metrics.chinese_characters(text) == letters_and_digits(text)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"],
                                      tokenizer=SimpleNamespace(tokenize=letters_and_digits))
    for hyp, ref in zip(chinese.hyps, chinese.refs, strict=True):
        same_rouge(rouge(hyp, ref, lang="zh"), scorer.score(ref, hyp))
    # why: rouge-score's own tokenizer sees no word in Chinese at all
    default = rouge_scorer.RougeScorer(["rouge1"]).score(chinese.refs[0], chinese.hyps[0])
    assert default["rouge1"].fmeasure == 0 < rouge(chinese.hyps[0], chinese.refs[0], lang="zh")["rouge1"].fmeasure


def test_rouge_l_with_a_wrong_lcs_would_fail_the_check(english, monkeypatch):
    """The common words in any order are not a common subsequence: the check sees the difference."""
    monkeypatch.setattr(metrics, "lcs_length", lambda a, b: sum((ngram_counts(a, 1) & ngram_counts(b, 1)).values()))
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    differ = [abs(rouge(h, r)["rougeL"].fmeasure - scorer.score(r, h)["rougeL"].fmeasure) > 1e-9
              for h, r in zip(english.hyps, english.refs, strict=True)]
    assert any(differ)


@settings(max_examples=200, deadline=None)
@given(tokens, tokens)
def test_lcs_length_equals_rouge_scores_table(a, b):
    length = lcs_length(a, b)
    assert length == lcs_length(b, a) <= min(len(a), len(b))
    if a and b:  # rouge-score's ROUGE-L recall is LCS / |target|
        scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=SimpleNamespace(tokenize=str.split))
        assert scorer.score(" ".join(a), " ".join(b))["rougeL"].recall * len(a) == pytest.approx(length)


def test_lcs_length_by_hand():
    assert lcs_length("ABCBDAB", "BDCABA") == 4  # BCBA, CLRS's example
    assert lcs_length([], ["a"]) == 0


# --- classification ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def polarity() -> SimpleNamespace:
    gold = [label for _, label in load_corpus("polarity_en", "all")]
    rng = random.Random(2)
    predicted = [label if rng.random() < 0.75 else rng.choice(["pos", "neg"]) for label in gold]
    return SimpleNamespace(gold=gold, predicted=predicted)


def test_classification_metrics_equal_scikit_learn_on_string_labels(polarity):
    gold, predicted = polarity.gold, polarity.predicted
    assert metrics.accuracy(gold, predicted) == pytest.approx(skm.accuracy_score(gold, predicted), abs=1e-12)
    assert metrics.macro_f1(gold, predicted) == pytest.approx(skm.f1_score(gold, predicted, average="macro"), abs=1e-12)
    for labels in (["pos", "neg"], ["neg", "pos"]):
        assert (metrics.confusion_matrix(gold, predicted, labels) == skm.confusion_matrix(gold, predicted,
                                                                                         labels=labels)).all()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_classification_metrics_equal_scikit_learn_on_int_labels():
    rng = np.random.default_rng(3)
    gold = rng.choice(4, size=300, p=[0.7, 0.1, 0.1, 0.1]).tolist()  # one frequent label, three rare
    predicted = [g if rng.random() < 0.6 else int(rng.integers(0, 4)) for g in gold]
    labels = [3, 0, 1, 2, 7]  # stated order, and a label never seen: its F1 is 0, as scikit-learn's
    assert metrics.macro_f1(gold, predicted, labels) == pytest.approx(
        skm.f1_score(gold, predicted, labels=labels, average="macro"), abs=1e-12)
    assert (metrics.confusion_matrix(gold, predicted, labels) == skm.confusion_matrix(gold, predicted,
                                                                                     labels=labels)).all()
    assert metrics.accuracy(gold, predicted) == pytest.approx(skm.accuracy_score(gold, predicted))
    # the check tells macro from micro (every item counts once: F1 = accuracy here)
    assert abs(metrics.macro_f1(gold, predicted) - skm.f1_score(gold, predicted, average="micro")) > 0.01


def test_a_label_outside_the_label_set_is_named():
    with pytest.raises(ValueError, match=r"predicted\[2\] is 'neutral', which is not in labels.*add it to labels"):
        metrics.macro_f1(["pos", "neg", "pos"], ["pos", "neg", "neutral"], labels=["neg", "pos"])
    with pytest.raises(ValueError, match=r"gold\[0\] is 5"):
        metrics.confusion_matrix([5], [1], labels=[0, 1])
    with pytest.raises(ValueError, match=r"gold\[0\] is 'x'"):
        metrics.accuracy(["x"], ["a"], labels=["a"])
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        metrics.accuracy(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="mix types"):
        metrics.macro_f1(["a", 1], [1, "a"])
    with pytest.raises(ValueError, match="no items"):
        metrics.macro_f1([], [])


# --- ranking -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def retrieval() -> SimpleNamespace:
    """30 queries, each ranking all 12 candidates, one relevant."""
    rng = np.random.default_rng(4)
    n_queries, n_candidates = 30, 12
    relevant_id = rng.integers(0, n_candidates, n_queries)
    rankings = []
    for q in range(n_queries):  # noisy scores that favour the relevant candidate
        scores = rng.normal(size=n_candidates)
        scores[relevant_id[q]] += 1.0
        rankings.append([int(c) for c in np.argsort(-scores)])
    score_matrix = np.zeros((n_queries, n_candidates))
    for q, ranking in enumerate(rankings):
        score_matrix[q, ranking] = np.arange(n_candidates, 0, -1)  # best first gets the highest score
    return SimpleNamespace(rankings=rankings, relevant=[{int(r)} for r in relevant_id], relevant_id=relevant_id,
                           scores=score_matrix, n_candidates=n_candidates)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_hits_at_k_equals_top_k_accuracy(retrieval, k):
    theirs = skm.top_k_accuracy_score(retrieval.relevant_id, retrieval.scores, k=k,
                                      labels=range(retrieval.n_candidates))
    assert metrics.hits_at_k(retrieval.rankings, retrieval.relevant, k) == pytest.approx(theirs, abs=1e-12)


def test_mrr_equals_label_ranking_average_precision_with_one_relevant_item(retrieval):
    indicator = np.zeros_like(retrieval.scores, dtype=int)
    indicator[np.arange(len(retrieval.relevant_id)), retrieval.relevant_id] = 1
    theirs = skm.label_ranking_average_precision_score(indicator, retrieval.scores)
    assert metrics.mean_reciprocal_rank(retrieval.rankings, retrieval.relevant) == pytest.approx(theirs, abs=1e-12)
    mean_rank = np.mean([r.index(next(iter(rel))) + 1 for r, rel in zip(retrieval.rankings, retrieval.relevant,
                                                                      strict=True)])
    assert abs(1 / mean_rank - theirs) > 0.01  # the reciprocal of the mean rank is not MRR


def test_ranking_by_hand():
    rankings = [["d3", "d1", "d7"], ["d2"], ["d5", "d9"]]
    relevant = [{"d1", "d7"}, {"d4"}, {"d5"}]  # d4 is never ranked: query 2 scores 0
    assert metrics.mean_reciprocal_rank(rankings, relevant) == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert metrics.hits_at_k(rankings, relevant, 1) == pytest.approx(1 / 3)
    assert metrics.hits_at_k(rankings, relevant, 10) == pytest.approx(2 / 3)  # k past a ranking's end
    with pytest.raises(TypeError, match=r"relevant\[0\] must be a set of ids.*\{id\}"):
        metrics.mean_reciprocal_rank([["a"]], ["a"])
    with pytest.raises(ValueError, match=r"relevant\[0\] is empty"):
        metrics.hits_at_k([["a"]], [set()], 1)
    with pytest.raises(ValueError, match=r"rankings\[0\] lists 'a' more than once"):
        metrics.hits_at_k([["a", "b", "a"]], [{"a"}], 1)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        metrics.hits_at_k([["a"]], [{"a"}], 0)
    with pytest.raises(ValueError, match="2 rankings but 1 relevant"):
        metrics.mean_reciprocal_rank([["a"], ["b"]], [{"a"}])


# --- confidence intervals ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sentence_scores(english) -> np.ndarray:
    """Per-sentence chrF: a skewed, bounded score, like the ones a chapter bootstraps."""
    return np.array([corpus_chrf([h], [r]).score for h, r in zip(english.hyps, english.refs, strict=True)])


def test_mean_interval_agrees_with_scipy_bootstrap(sentence_scores):
    ours = metrics.bootstrap_mean_interval(sentence_scores, n_resamples=9999, seed=0)
    theirs = scipy.stats.bootstrap((sentence_scores,), np.mean, method="percentile", n_resamples=9999,
                                   confidence_level=0.95, rng=np.random.default_rng(1)).confidence_interval
    width = theirs.high - theirs.low
    # Monte-Carlo error of a 2.5% quantile from 9999 resamples is ~1% of the width, for each of the two
    assert abs(ours.low - theirs.low) < 0.03 * width and abs(ours.high - theirs.high) < 0.03 * width
    assert ours.estimate == pytest.approx(sentence_scores.mean())
    wrong = metrics.bootstrap_mean_interval(sentence_scores, n_resamples=9999, confidence=0.9, seed=0)
    assert abs(wrong.low - theirs.low) > 0.03 * width  # a 90% interval fails the same check


def test_mean_interval_is_the_generic_bootstrap_of_the_mean(sentence_scores):
    fast = metrics.bootstrap_mean_interval(sentence_scores, n_resamples=500, seed=7)
    generic = metrics.bootstrap_interval(list(sentence_scores), np.mean, n_resamples=500, seed=7)
    assert (fast.low, fast.high) == pytest.approx((generic.low, generic.high), abs=1e-9)


def test_a_range_resamples_positions_as_the_items_would_be(sentence_scores):
    """range(n): the metric gets index arrays, and the intervals are those of the listed items."""
    lengths = np.arange(len(sentence_scores)) % 7 + 1  # a ratio of sums, as a corpus metric is
    received = []

    def by_position(i):
        received.append(type(i))
        return sentence_scores[i].sum() / lengths[i].sum()

    def by_item(items):
        return sum(s for s, _ in items) / sum(n for _, n in items)

    pairs = list(zip(sentence_scores, lengths, strict=True))
    fast = metrics.bootstrap_interval(range(len(pairs)), by_position, n_resamples=300, seed=3)
    plain = metrics.bootstrap_interval(pairs, by_item, n_resamples=300, seed=3)
    assert received == [np.ndarray] * 301
    assert (fast.estimate, fast.low, fast.high) == pytest.approx((plain.estimate, plain.low, plain.high), rel=1e-12)
    assert fast != metrics.bootstrap_interval(range(len(pairs)), by_position, n_resamples=300, seed=4)
    shifted = np.concatenate([sentence_scores, sentence_scores[::-1]])  # system b: positions n .. 2n - 1
    lengths = np.concatenate([lengths, lengths])
    n = len(pairs)
    fast = metrics.paired_bootstrap(range(n), range(n, 2 * n), lambda i: shifted[i].sum() / lengths[i].sum(),
                                    n_resamples=300, seed=3, two_sided=True)
    plain = metrics.paired_bootstrap(pairs, list(zip(shifted[n:], lengths[n:], strict=True)), by_item,
                                     n_resamples=300, seed=3, two_sided=True)
    assert (fast.difference, fast.low, fast.high) == pytest.approx((plain.difference, plain.low, plain.high),
                                                                   abs=1e-12)
    assert fast.p_value == plain.p_value


def test_bleu_interval_resamples_sentences(english):
    stats = metrics.bleu_stats(english.hyps, english.refs)
    interval = metrics.bootstrap_interval(stats, lambda s: metrics.bleu_score(s).score, n_resamples=300, seed=0)
    assert interval.estimate == pytest.approx(sacrebleu.corpus_bleu(english.hyps, [english.refs]).score)
    assert interval.low < interval.estimate < interval.high
    again = metrics.bootstrap_interval(stats, lambda s: metrics.bleu_score(s).score, n_resamples=300, seed=0)
    other = metrics.bootstrap_interval(stats, lambda s: metrics.bleu_score(s).score, n_resamples=300, seed=1)
    assert again == interval and other != interval


def test_paired_bootstrap(english):
    def bleu(stats):
        return metrics.bleu_score(stats).score

    good, bad = metrics.bleu_stats(english.hyps, english.refs), metrics.bleu_stats(english.worse, english.refs)
    same = metrics.paired_bootstrap(good, good, bleu, n_resamples=200, seed=0)
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    better = metrics.paired_bootstrap(bad, good, bleu, n_resamples=200, seed=0)
    assert better.difference == pytest.approx(bleu(good) - bleu(bad))
    assert 0 < better.low < better.difference < better.high and better.p_value < 0.01
    worse = metrics.paired_bootstrap(good, bad, bleu, n_resamples=200, seed=0)
    assert (worse.difference, worse.low, worse.high) == pytest.approx((-better.difference, -better.high, -better.low))
    assert metrics.paired_bootstrap(bad, good, bleu, n_resamples=200, seed=0) == better
    with pytest.raises(ValueError, match="150 items for system a but 149"):
        metrics.paired_bootstrap(good, bad[:-1], bleu)


def test_paired_bootstrap_two_sided():
    # two hit@1 columns that differ on a few items: the two-sided p-value is twice the smaller tail of the
    # resampled differences, recomputed here from the same resamples, and does not depend on which system is a
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2, 60).astype(float)
    b = np.where(rng.random(60) < 0.15, 1 - a, a)
    one = metrics.paired_bootstrap(a, b, np.mean, n_resamples=2000, seed=0)
    two = metrics.paired_bootstrap(a, b, np.mean, n_resamples=2000, seed=0, two_sided=True)
    d = np.array([b[idx].mean() - a[idx].mean() for idx in metrics._resamples(60, 2000, 0)])
    assert two.p_value == pytest.approx(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))
    assert one.p_value <= two.p_value <= 2 * one.p_value + 1e-12
    assert (two.difference, two.low, two.high) == (one.difference, one.low, one.high)
    swapped = metrics.paired_bootstrap(b, a, np.mean, n_resamples=2000, seed=0, two_sided=True)
    assert swapped.p_value == pytest.approx(two.p_value)
    assert metrics.paired_bootstrap(a, a, np.mean, n_resamples=200, two_sided=True).p_value == 1.0


def test_bootstrap_rejects_bad_settings():
    with pytest.raises(ValueError, match="no items"):
        metrics.bootstrap_interval([], np.mean)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        metrics.bootstrap_mean_interval([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="n_resamples must be a positive integer"):
        metrics.bootstrap_mean_interval([1.0, 2.0], n_resamples=0)


@pytest.mark.parametrize("successes, n, confidence", [(0, 100, 0.95), (100, 100, 0.95), (37, 100, 0.95),
                                                      (1, 3, 0.9), (250, 400, 0.99), (5, 7, 0.5)])
def test_wilson_interval_equals_scipys(successes, n, confidence):
    ours = metrics.wilson_interval(successes, n, confidence)
    ref = scipy.stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert ours.estimate == successes / n and ours.confidence == confidence
    assert (ours.low == 0) == (successes == 0) and (ours.high == 1) == (successes == n)
    p, z = successes / n, scipy.stats.norm.ppf((1 + confidence) / 2)
    wald = p - z * np.sqrt(p * (1 - p) / n), p + z * np.sqrt(p * (1 - p) / n)
    assert (wald[0], wald[1]) != pytest.approx((ref.low, ref.high), abs=1e-3)  # the textbook interval fails it


def test_wilson_interval_refuses_impossible_counts():
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        metrics.wilson_interval(5, 3)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        metrics.wilson_interval(1, 3, confidence=95)


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("score", [corpus_bleu, corpus_chrf])
def test_bad_corpus_input_is_named(score):
    with pytest.raises(ValueError, match="2 hypotheses but 1 references.*zip"):
        score(["a b", "c d"], ["a b"])
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):  # sacrebleu's streams passed as is
        score(["a b", "c d"], [["a b", "c d"]])
    with pytest.raises(ValueError, match=r"references\[1\] is an empty list"):
        score(["a b", "c d"], [["a b"], []])
    with pytest.raises(ValueError, match="hypotheses is empty"):
        score([], [])
    with pytest.raises(TypeError, match=r"references\[0\] must be a string or a list of strings"):
        score(["a b"], [["a b", 3]])
    with pytest.raises(TypeError, match="references must be a list"):
        score(["a b"], "a b")
    with pytest.raises(TypeError, match="hypotheses must be a list of strings.*wrap"):
        score("a b", ["a b"])
    with pytest.raises(TypeError, match=r"hypotheses\[0\] is a list, not a string"):
        score([["a", "b"]], ["a b"])


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="tokenize must be one of"):
        corpus_bleu(["a"], ["a"], tokenize="spm")  # it would download a model
    with pytest.raises(ValueError, match="max_order must be a positive integer"):
        corpus_bleu(["a"], ["a"], max_order=0)
    with pytest.raises(ValueError, match="at least one order"):
        corpus_chrf(["a"], ["a"], char_order=0)
    with pytest.raises(ValueError, match="smooth must be one of"):
        corpus_bleu(["a"], ["a"], smooth="add-one")
    with pytest.raises(ValueError, match="lang must be 'en' or 'zh'"):
        rouge("a", "a", lang="fr")
    with pytest.raises(ValueError, match="use_stemmer"):
        rouge("猫", "猫", lang="zh", use_stemmer=True)
    with pytest.raises(TypeError, match="loop over a corpus"):
        rouge(["a"], ["a"])


def test_importing_metrics_does_not_import_torch():
    code = "import sys, lmlib.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, "lmlib.metrics is a foundation: no torch"


def test_holm_adjustment_by_hand_and_against_bonferroni():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, 1*0.04 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert np.allclose(metrics.holm_adjusted(p), [0.03, 0.06, 0.06, 0.02])
    assert all(h <= min(1, 4 * q) + 1e-15 for h, q in zip(metrics.holm_adjusted(p), p, strict=True))
    assert metrics.holm_adjusted([0.9, 0.8]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        metrics.holm_adjusted([0.2, 1.5])


@pytest.mark.parametrize("seed", [0, 3])
def test_sum_interval_is_the_generic_bootstrap_summed_at_once(english, chinese, seed):
    for stats, metric in ((metrics.bleu_stats(english.hyps, english.refs), lambda s: metrics.bleu_score(s).score),
                          (metrics.bleu_stats(chinese.hyps, chinese.refs, tokenize="zh"),
                           lambda s: metrics.bleu_score(s).score),
                          (metrics.chrf_stats(english.hyps, english.refs), lambda s: metrics.chrf_score(s).score),
                          (metrics.chrf_stats(english.hyps, english.refs, word_order=2),
                           lambda s: metrics.chrf_score(s).score)):
        generic = metrics.bootstrap_interval(stats, metric, n_resamples=200, seed=seed)
        assert metrics.bootstrap_sum_interval(stats, metric, n_resamples=200, seed=seed) == generic
    with pytest.raises(TypeError, match="sums dataclasses of one kind"):
        metrics.bootstrap_sum_interval([1.0, 2.0], sum)
    with pytest.raises(TypeError, match="use bootstrap_interval"):
        metrics.bootstrap_sum_interval([metrics.ChrFScore(50.0, 40.0, 60.0, 2)], lambda s: 0.0)
