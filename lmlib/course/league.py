"""The league table: every language model of the course on the same `wiki` test split.

    python -m lmlib.course.league           # writes checkpoints/league_wiki.json and benchmarks/results/league.md
    python -m lmlib.course.league --check   # are the committed results still those of the recipes? (exit 1 if not)

Each row of ``ENTRIES`` is a model of the course scored on every sentence of the `wiki` test split
(``lmlib.lm.token_logprobs``). The word-level models read the n-gram chapter's tokens
(``lowercase_word_sentences``: one vocabulary, rare words ``<unk>``), so their per-token perplexities
compare. Every model is also given in bits per character of the same sentences: their text as
``character_sentences`` keeps it (a run of whitespace is one space), each sentence counting one character
more for the ``<eos>`` that ends it (``lmlib.lm.bits_per_character``'s count). The n-gram models are fitted
here, in seconds; the neural ones are the recipes' committed checkpoints (``load_checkpoint``), their
training time, settings and the tokens they saw from their logs (``checkpoints/RECIPE.json``). Scoring the
neural models and decoding with them is what makes this a command and not a notebook cell: a few minutes on
two CPU cores (the JSON's ``wall_seconds``).

Every figure has two 95 % bootstrap intervals: over the test sentences, and over the ten test articles (the
sentences of one article are not independent). Paired comparisons add the exact sign-flip permutation test
over the articles (``sign_flip_test``).

A word model's bits are not the bits of the text. It never spells a word outside its vocabulary (one
``<unk>`` pays for it), and case and spaces cost it nothing. ``spelling_model`` charges the spelling: the
column "<unk> spelled" adds, for each ``<unk>``, the letters of the word it stood for under a character
5-gram; case and spaces stay free there, and the table says so (``spelling_report``: what the speller
costs and how much it can over-count).

Besides the rows, the JSON keeps a decoding experiment on the word models (what perplexity does not tell:
greedy continuations, and sampled ones, ancestral and top-p, measured beside the test text's own
continuations) and what it was computed from (``fingerprint``: the recipes, the checkpoints' SHA-256, the
text, the league's settings). ``stale_inputs`` names whatever has changed since;
``tests/course/test_league.py`` checks that nothing has, and recomputes the cheap rows. Everything runs on
the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import itertools
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmlib import generate as G
from lmlib.course.recipes import (
    CHECKPOINTS,
    RECIPES,
    bpe_sentences,
    character_sentences,
    load_checkpoint,
    lowercase_word_sentences,
)
from lmlib.data import load_corpus
from lmlib.lm import LanguageModel, UniformLM, encode_batch, model_device, token_logprobs
from lmlib.metrics import Interval, bootstrap_interval, paired_bootstrap
from lmlib.ngram import NGramLM
from lmlib.pretraining import MaskedLM
from lmlib.retrieval import wiki_articles
from lmlib.tokenize import SPECIALS, Vocab, split_sentences

CORPUS, SPLIT = "wiki", "test"
OUT = CHECKPOINTS / "league_wiki.json"
MARKDOWN = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "league.md"
COMMAND = "python -m lmlib.course.league"
N_RESAMPLES = 1000  # bootstrap resamples of the test sentences, for every interval
SPELLING_ORDER = 5  # the character n-gram that spells the words behind <unk>
TOKENS = {"words": "words", "chars": "characters", "bpe": "BPE"}  # what each tokenization is called in a row


@dataclass(frozen=True)
class Entry:
    """One row of the league: the model, and the test sentences it reads (``tokens``: "words",
    "chars" or "bpe"). An n-gram row is an interpolated Kneser-Ney model of ``order``, fitted
    here on the training split (rare tokens ``<unk>``: ``min_count=2``, as in its chapter)."""

    model: str
    tokens: str
    order: int = 0
    recipe: str = ""
    uniform: bool = False

    @property
    def name(self) -> str:
        return f"{self.model}, {TOKENS[self.tokens]}"


ENTRIES: tuple[Entry, ...] = (
    Entry("uniform", "words", uniform=True),
    Entry("unigram", "words", order=1),
    Entry("Kneser-Ney 3-gram", "words", order=3),
    Entry("Kneser-Ney 5-gram", "words", order=5),
    Entry("MLP", "words", recipe="mlp_wiki"),
    Entry("LSTM", "words", recipe="lstm_words_wiki"),
    Entry("GPT, modern block", "words", recipe="gpt_words_wiki"),
    Entry("uniform", "chars", uniform=True),
    Entry("unigram", "chars", order=1),
    Entry("Kneser-Ney 3-gram", "chars", order=3),
    Entry("Kneser-Ney 5-gram", "chars", order=5),
    Entry("LSTM", "chars", recipe="lstm_chars_wiki"),
    Entry("GPT, GPT-2 block", "chars", recipe="gpt_chars_wiki"),
    Entry("GPT, modern block", "chars", recipe="gpt_chars_wiki_modern"),
    Entry("GPT, GPT-2 block", "bpe", recipe="gpt_bpe_wiki"),
)
# Recipes of wiki language models with no row, and why.
NOT_SCORED = {
    "masked_chars_wiki": ("masked LM, characters",
                          "a masked LM gives each token a probability given the tokens on both sides, not "
                          "given those before it, so it assigns no probability to a text (no chain rule): "
                          "it has no perplexity and no bits per character to compare"),
}
# Paired comparisons (a, b, measure): b - a over the same test sentences, resampled together.
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("Kneser-Ney 5-gram, words", "LSTM, words", "perplexity"),
    ("LSTM, words", "GPT, modern block, words", "perplexity"),
    ("Kneser-Ney 5-gram, characters", "GPT, modern block, characters", "bpc"),
    ("GPT, modern block, characters", "GPT, GPT-2 block, BPE", "bpc"),
)


@dataclass(frozen=True)
class GreedySettings:
    """The decoding experiment: prompts are the first ``prompt_words`` words of test sentences
    of at least ``min_words`` words (all of them in the vocabulary), ``prompts`` of them evenly spaced;
    each model continues each prompt greedily for up to ``max_tokens`` tokens, ``<unk>`` forbidden.
    A continuation *repeats* when one of its n-grams occurs twice (n = ``n``), within its first ``early``
    tokens or anywhere; copied n-grams are ``n`` and ``long_n`` long."""

    prompts: int = 100
    prompt_words: int = 3
    min_words: int = 8
    max_tokens: int = 40
    n: int = 4
    early: int = 15
    long_n: int = 8
    models: tuple[str, ...] = ("Kneser-Ney 3-gram, words", "Kneser-Ney 5-gram, words", "MLP, words",
                               "LSTM, words", "GPT, modern block, words")
    pairs: tuple[tuple[str, str], ...] = (("Kneser-Ney 5-gram, words", "GPT, modern block, words"),
                                          ("Kneser-Ney 5-gram, words", "LSTM, words"))


@dataclass(frozen=True)
class SamplingSettings:
    """The same prompts, models and length as ``GreedySettings``, sampled: ``samples`` continuations
    of prompt k from a generator seeded ``seed + k``, by each of ``methods`` (a name, and the top-p
    of the nucleus, None for plain ancestral sampling; temperature 1)."""

    methods: tuple[tuple[str, float | None], ...] = (("ancestral", None), ("top-p 0.9", 0.9))
    samples: int = 3
    seed: int = 0


GREEDY = GreedySettings()
SAMPLING = SamplingSettings()
# The masked LM's pseudo-log-likelihood (``pseudo_logprobs``): on this many test sentences of 40 to 100
# characters, evenly spaced (one pass per character: too slow for the whole split).
PSEUDO_SENTENCES = 40


# --- the data -------------------------------------------------------------------------------------------

@dataclass
class LeagueData:
    """The split's sentences as each tokenization reads them (one list per tokenization, sentence i the same
    sentence in each), the training sentences the n-gram models are fitted on, and per test sentence its
    characters (``<eos>`` counted) and its article."""

    train: dict[str, list[list[str]]]
    test: dict[str, list[list[str]]]
    characters: np.ndarray  # [S]
    articles: np.ndarray  # [S] the index of the sentence's article in load_corpus(corpus, split)
    titles: list[str]


def load_data(corpus: str = CORPUS, split: str = SPLIT) -> LeagueData:
    train = {"words": lowercase_word_sentences(corpus, "train"), "chars": character_sentences(corpus, "train"),
             "bpe": bpe_sentences(corpus, "train")}
    test = {"words": lowercase_word_sentences(corpus, split), "chars": character_sentences(corpus, split),
            "bpe": bpe_sentences(corpus, split)}
    sizes = {k: len(v) for k, v in test.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"the tokenizations cut the {split} split into different numbers of sentences: {sizes}")
    documents = load_corpus(corpus, split)
    per_article = [part.stop - part.start for part in article_slices(corpus, split)]
    if sum(per_article) != sizes["words"]:
        raise ValueError("the articles' sentences do not add up to the split's: split_sentences changed?")
    title_of = {text: title for title, text in wiki_articles().items()} if corpus == "wiki" else {}
    titles = [title_of.get(doc, f"article {i}") for i, doc in enumerate(documents)]
    return LeagueData(train, test, np.array([len(s) + 1 for s in test["chars"]]),
                      np.repeat(np.arange(len(documents)), per_article), titles)


def article_slices(corpus: str = CORPUS, split: str = SPLIT) -> list[slice]:
    """Where each article's sentences are in the split's sentences (any tokenization: the articles
    follow one another, each cut by ``split_sentences``), in the order of ``load_corpus``."""
    ends = np.cumsum([len(split_sentences(doc)) for doc in load_corpus(corpus, split)]).tolist()
    return [slice(start, end) for start, end in zip([0, *ends[:-1]], ends, strict=True)]


# --- scoring --------------------------------------------------------------------------------------------

def sentence_logprobs(model: LanguageModel, sentences: Sequence[Sequence[str]],
                      batch_size: int = 64) -> np.ndarray:
    """[S] ln P of each sentence, its tokens and its <eos>: token_logprobs summed."""
    scores = token_logprobs(model, sentences, batch_size).numpy()
    starts = np.cumsum([0, *(len(s) + 1 for s in sentences[:-1])])
    return np.add.reduceat(scores, starts)


def spelling_model(train_words: Sequence[Sequence[str]], vocab: Vocab) -> NGramLM:
    """P_spell: a character 5-gram (Kneser-Ney) of the training words outside the
    vocabulary, each occurrence a sequence of letters ended by <eos>. With it a word
    model pays for the words it calls <unk>:

        P(w | h) = P(<unk> | h) * P_spell(c_1 .. c_k <eos>),   w outside the vocabulary.

    P_spell also gives some probability to spellings of known words, which the word
    model never uses, so the bits can only be over-counted (``spelling_leak``: by how
    much)."""
    rare = [list(w) for s in train_words for w in s if w not in vocab]  # letters of each
    return NGramLM(SPELLING_ORDER, "kneser_ney").fit(rare)


def spelling_logprobs(spell: NGramLM, sentences: Sequence[Sequence[str]],
                      vocab: Vocab) -> np.ndarray:
    """[S] ln P_spell of the words of each sentence outside the vocabulary, summed."""
    unknown = [[list(w) for w in s if w not in vocab] for s in sentences]
    words = [w for ws in unknown for w in ws]
    scores = sentence_logprobs(spell, words, batch_size=512) if words else np.zeros(0)
    owner = np.repeat(np.arange(len(sentences)), [len(ws) for ws in unknown])
    return np.bincount(owner, weights=scores, minlength=len(sentences))


def spelling_leak(spell: NGramLM, vocab: Vocab) -> float:
    """The probability P_spell gives the words of the vocabulary (``<unk>`` never
    stands for them). Renormalised over the other spellings, each unknown word's
    probability would be 1 / (1 - leak) times higher: P_spell over-counts
    -log2(1 - leak) bits per ``<unk>``."""
    words = [list(w) for w in vocab.itos if w not in SPECIALS]
    return float(np.exp(sentence_logprobs(spell, words, batch_size=512)).sum())


def spelling_report(spell: NGramLM, data: LeagueData, vocab: Vocab) -> dict:
    """What spelling the unknown words costs and how far it can be off: the bits it adds
    per character of the test text and per symbol spelled (letters and each word's end),
    the leak and the over-count it implies, and the same addition by a speller of every
    training word instead of the rare ones (the alternative it was chosen over)."""
    words = data.test["words"]
    unknown = [w for s in words for w in s if w not in vocab]
    symbols = sum(len(w) + 1 for w in unknown)  # letters, and the <eos> that ends each
    bits = float(-spelling_logprobs(spell, words, vocab).sum()) / math.log(2)
    leak = spelling_leak(spell, vocab)
    over = -math.log2(1 - leak)  # bits per <unk>
    every_word = NGramLM(SPELLING_ORDER, "kneser_ney").fit([list(w) for s in data.train["words"] for w in s])
    bits_every = float(-spelling_logprobs(every_word, words, vocab).sum()) / math.log(2)
    characters = int(data.characters.sum())
    return {"order": SPELLING_ORDER,
            "training words": sum(w not in vocab for s in data.train["words"] for w in s),
            "test words spelled": len(unknown), "symbols spelled": symbols,
            "bits per symbol": round(bits / symbols, 4), "bpc added": round(bits / characters, 6),
            "mass on vocabulary words": round(leak, 6), "over-count per <unk>, bits": round(over, 6),
            "over-count, bpc": round(over * len(unknown) / characters, 6),
            "a speller of every training word, bpc added": round(bits_every / characters, 6)}


def perplexity_of(logprob: np.ndarray, tokens: np.ndarray) -> float:
    """exp(-sum ln P / sum tokens): the perplexity of the sentences of a sample."""
    return math.exp(-logprob.sum() / tokens.sum())


def bpc_of(logprob: np.ndarray, characters: np.ndarray) -> float:
    """-sum log2 P / sum characters: the bits per character of a sample's sentences."""
    return -logprob.sum() / math.log(2) / characters.sum()


def sentence_interval(measure: Callable[[np.ndarray, np.ndarray], float],
                      logprob: np.ndarray, size: np.ndarray, seed: int = 0) -> Interval:
    """A 95 % bootstrap interval of a corpus measure (perplexity_of, bpc_of): the test
    sentences resampled with replacement, the measure recomputed on each resample."""
    return bootstrap_interval(range(len(logprob)),
                              lambda i: measure(logprob[i], size[i]),  # i: a resample
                              n_resamples=N_RESAMPLES, seed=seed)


def article_interval(measure: Callable[[np.ndarray, np.ndarray], float], logprob: np.ndarray,
                     size: np.ndarray, articles: np.ndarray, seed: int = 0) -> Interval:
    """``sentence_interval`` with whole articles resampled: ln P and sizes summed per article
    (``articles``: each sentence's article), the measure recomputed on each resample of them."""
    lp, sz = (np.bincount(articles, weights=x) for x in (logprob, size))
    return sentence_interval(measure, lp, sz, seed)


def _interval(iv: Interval, digits: int) -> list[float]:
    return [round(iv.low, digits), round(iv.high, digits)]


def build(entry: Entry, data: LeagueData) -> tuple[LanguageModel, dict]:
    """The entry's model, and what the row says about how it was made."""
    if entry.recipe:
        recipe, model = RECIPES[entry.recipe], load_checkpoint(entry.recipe)
        log = json.loads((CHECKPOINTS / f"{entry.recipe}.json").read_text(encoding="utf-8"))
        if log["parameters"] != model.num_parameters():
            raise ValueError(f"{entry.recipe}.json counts {log['parameters']:,} parameters, the checkpoint "
                             f"{model.num_parameters():,}: the log is not the checkpoint's")
        made = {"recipe": entry.recipe, "description": recipe.description,
                "training": training_of(recipe, log),
                "parameters": model.num_parameters()}
        return model, made
    train = data.train[entry.tokens]
    if entry.uniform:
        model = UniformLM(Vocab((t for s in train for t in s), min_count=2))
        return model, {"recipe": None, "description": "every predictable token equally likely",
                       "training": None, "parameters": 0}
    start = time.perf_counter()
    model = NGramLM(entry.order, "kneser_ney", min_count=2).fit(train)
    seconds = time.perf_counter() - start
    stored = sum(len(table.word) for table in model.tables.values())
    return model, {"recipe": None,
                   "description": f"NGramLM({entry.order}, 'kneser_ney', min_count=2), fitted by the command",
                   "training": {"fit_seconds": round(seconds, 2), "load_average": round(os.getloadavg()[0], 1),
                                "tokens seen": sum(len(s) + 1 for s in train)},
                   "parameters": None, "n-grams": stored}


def training_of(recipe, log: dict) -> dict:
    """A neural row's training, from its recipe and its log. Tokens seen: the targets its loss
    predicted over the run (the log's count; about steps x batch x block, padding left out; a
    masked LM predicts only the tokens it masked)."""
    t = recipe.train
    return {"steps": log["step"][-1], "batch": f"{t.batch_size} x {t.block} tokens",
            "tokens seen": log["tokens"][-1], "lr": t.lr,
            "wall_seconds": round(log["seconds"][-1], 1), "cpu_seconds": round(log["cpu_seconds"][-1], 1),
            **({"final_valid_perplexity": round(log["valid_ppl"][-1], 4)} if "valid_ppl" in log else {})}


def score(entry: Entry, model: LanguageModel, data: LeagueData,
          spell: NGramLM | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """The row's test figures; ln P of each test sentence; and what its bits per character count
    (for a word row, with ``spell``: ln P with each <unk> spelled; otherwise ln P again)."""
    sentences = data.test[entry.tokens]
    batch = 256 if isinstance(model, NGramLM) and entry.tokens == "chars" else 64
    logprob = sentence_logprobs(model, sentences, batch)
    tokens = np.array([len(s) + 1 for s in sentences])
    unknown = [w for s in sentences for w in s if w not in model.vocab]
    test = {"sentences": len(sentences), "tokens": int(tokens.sum()),
            "characters": int(data.characters.sum()), "vocabulary": len(model.vocab) - 2,
            "unknown tokens": len(unknown),
            "unknown characters": sum(map(len, unknown)),
            "logprob": round(float(logprob.sum()), 4),
            "perplexity": round(perplexity_of(logprob, tokens), 4),
            "perplexity 95%": _interval(sentence_interval(perplexity_of, logprob, tokens), 4),
            "perplexity 95% articles": _interval(article_interval(perplexity_of, logprob, tokens,
                                                                  data.articles), 4),
            "bpc": round(bpc_of(logprob, data.characters), 6),
            "bpc 95%": _interval(sentence_interval(bpc_of, logprob, data.characters), 6),
            "bpc 95% articles": _interval(article_interval(bpc_of, logprob, data.characters, data.articles), 6)}
    if spell is None:
        return test, logprob, logprob
    spelled = logprob + spelling_logprobs(spell, sentences, model.vocab)
    test["<unk> spelled"] = {
        "logprob": round(float(spelled.sum()), 4),
        "bpc": round(bpc_of(spelled, data.characters), 6),
        "bpc 95%": _interval(sentence_interval(bpc_of, spelled, data.characters), 6),
        "bpc 95% articles": _interval(article_interval(bpc_of, spelled, data.characters, data.articles), 6)}
    return test, logprob, spelled


def by_article(logprob: np.ndarray, bits: np.ndarray, tokens: np.ndarray, data: LeagueData) -> dict:
    """ln P (as scored, and as the bits per character count it), tokens and characters, summed over each
    test article."""
    def sums(values: np.ndarray) -> np.ndarray:
        return np.bincount(data.articles, weights=values, minlength=len(data.titles))

    return {"logprob": [round(float(x), 4) for x in sums(logprob)],
            "logprob for bpc": [round(float(x), 4) for x in sums(bits)],
            "tokens": [int(x) for x in sums(tokens)], "characters": [int(x) for x in sums(data.characters)]}


def compare(a: str, b: str, measure: str, scores: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
            characters: np.ndarray) -> dict:
    """The paired bootstrap of b against a (two-sided p) over test items, sentences or articles: ``scores``
    holds each row's (ln P, ln P for bits per character, tokens) per item, ``characters`` each item's."""
    if measure not in ("perplexity", "bpc"):
        raise ValueError(f"measure must be 'perplexity' or 'bpc', not {measure!r}")
    if measure == "perplexity":
        fn, (lp_a, _, size_a), (lp_b, _, size_b) = perplexity_of, scores[a], scores[b]
    else:
        fn, (_, lp_a, _), (_, lp_b, _) = bpc_of, scores[a], scores[b]
        size_a = size_b = characters
    lp, sz = np.concatenate([lp_a, lp_b]), np.concatenate([size_a, size_b])
    n = len(lp_a)  # items: sentence i of a is i, of b is n + i
    test = paired_bootstrap(range(n), range(n, 2 * n), lambda i: fn(lp[i], sz[i]),
                            n_resamples=N_RESAMPLES, seed=0, two_sided=True)
    return {"a": a, "b": b, "measure": measure, "difference": round(test.difference, 6),
            "95%": [round(test.low, 6), round(test.high, 6)], "p": test.p_value}


def sign_flip_test(items_a: Sequence, items_b: Sequence,
                   metric: Callable[[list], float], max_items: int = 20) -> float:
    """The exact two-sided paired permutation (sign-flip) test of metric(b) - metric(a).

    Under the null hypothesis that the systems are exchangeable on each item, swapping a's
    and b's results on any set of items gives a difference as likely as the observed one.
    All 2^n swaps are enumerated (n = len(items) <= ``max_items``):

        p = #{swaps s : |d(s)| >= |d_observed|} / 2^n,

    so with n items p is a multiple of 2^-n and at least 2^(1-n): over 10 articles, one
    system better on every one of them gives p = 2/1024, not p < 0.001."""
    items_a, items_b = list(items_a), list(items_b)
    if len(items_a) != len(items_b):
        raise ValueError(f"{len(items_a)} items for system a but {len(items_b)} for b: "
                         "a paired test needs both systems' results on the same items")
    n = len(items_a)
    if not 0 < n <= max_items:
        raise ValueError(f"{n} items: the exact test enumerates 2^n swaps, n from 1 to "
                         f"{max_items}; for more items, resample (paired_bootstrap)")
    observed = abs(metric(items_b) - metric(items_a))
    tolerance = 1e-9 * max(1.0, observed)  # a swap that only reorders a sum: a tie
    extreme = 0
    for swapped in itertools.product((False, True), repeat=n):
        a = [y if s else x for x, y, s in zip(items_a, items_b, swapped, strict=True)]
        b = [x if s else y for x, y, s in zip(items_a, items_b, swapped, strict=True)]
        extreme += bool(abs(metric(b) - metric(a)) >= observed - tolerance)
    return extreme / 2**n


def article_comparison(a: str, b: str, measure: str, rows: dict[str, dict]) -> dict:
    """b - a with the ten test articles as the items, from each row's per-article sums (``by_article``):
    the paired bootstrap over the articles, the exact sign-flip test, and on how many articles b is lower."""
    def sums(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        art = rows[name]["articles"]
        return np.array(art["logprob"]), np.array(art["logprob for bpc"]), np.array(art["tokens"])

    scores = {a: sums(a), b: sums(b)}
    characters = np.array(rows[a]["articles"]["characters"])
    bootstrap = compare(a, b, measure, scores, characters)
    if measure == "perplexity":
        fn, (lp_a, _, size_a), (lp_b, _, size_b) = perplexity_of, scores[a], scores[b]
    else:
        fn, (_, lp_a, _), (_, lp_b, _) = bpc_of, scores[a], scores[b]
        size_a = size_b = characters

    def metric(items: list) -> float:  # items: (ln P, size) of each article
        return fn(np.array([x for x, _ in items]), np.array([y for _, y in items]))

    items_a, items_b = list(zip(lp_a, size_a, strict=True)), list(zip(lp_b, size_b, strict=True))
    lower = sum(metric([y]) < metric([x]) for x, y in zip(items_a, items_b, strict=True))
    return {"95%": bootstrap["95%"], "p bootstrap": bootstrap["p"],
            "p sign-flip": sign_flip_test(items_a, items_b, metric), "b lower on": int(lower),
            "articles": len(items_a)}


@torch.no_grad()
def pseudo_logprobs(model: MaskedLM, sentence: Sequence[str]) -> np.ndarray:
    """ln P(c_t | every other token) for each token c_t of the sentence: one row per
    token, that token replaced by <mask>, all read at once (the pseudo-log-likelihood
    of Salazar et al., 2020, sums them). The factors do not chain: their product is
    not the probability of the sentence, and over all sentences it need not sum to 1."""
    ids = encode_batch(model.vocab, [sentence]).to(model_device(model))  # [1, T]
    if ids.shape[1] > model.config.block_size:
        raise ValueError(f"{len(sentence)} tokens and <bos>, <eos> do not fit the window "
                         f"of {model.config.block_size}: score a shorter sentence")
    device = ids.device
    hidden = torch.arange(1, ids.shape[1] - 1, device=device)  # not <bos>, <eos>
    row = torch.arange(len(hidden), device=device)  # row i hides token hidden[i]
    rows = ids.repeat(len(hidden), 1)  # [n, T]
    rows[row, hidden] = model.mask_id
    logp = model.masked_logprobs(rows)  # [n, T, V]
    return logp[row, hidden, ids[0, hidden]].double().cpu().numpy()


def pseudo_experiment(data: LeagueData, n: int = PSEUDO_SENTENCES) -> dict:
    """The masked LM's pseudo-log-likelihood of some test sentences beside the log-probability that
    ``gpt_chars_wiki`` gives their characters (``<eos>`` left out): the causal model of the same width and
    depth, not a twin (learned positions against rotary ones, 3,000 training steps against 2,000, its
    attention restarting at each sentence against windows across sentences)."""
    eligible = [i for i, s in enumerate(data.test["chars"]) if 40 <= len(s) <= 100]
    chosen = [eligible[k * len(eligible) // n] for k in range(n)]
    sentences = [data.test["chars"][i] for i in chosen]
    masked, causal = load_checkpoint("masked_chars_wiki"), load_checkpoint("gpt_chars_wiki")
    pseudo = [float(pseudo_logprobs(masked, s).sum()) for s in sentences]
    forward = token_logprobs(causal, sentences).split([len(s) + 1 for s in sentences])
    return {"sentences": chosen, "characters": sum(map(len, sentences)),
            "masked LM, pseudo-log-likelihood": [round(x, 4) for x in pseudo],
            "gpt_chars_wiki, log-probability": [round(float(f[:-1].sum()), 4) for f in forward]}


# --- what perplexity does not tell: decoded continuations ---------------------------------------------

def prompt_sentences(sentences: Sequence[Sequence[str]], vocab: Vocab,
                     settings: GreedySettings = GREEDY) -> list[int]:
    """Which test sentences give the prompts: those long enough whose first words are all in the
    vocabulary, evenly spaced over the split."""
    k = settings.prompt_words
    eligible = [i for i, s in enumerate(sentences)
                if len(s) >= settings.min_words and all(w in vocab for w in s[:k])]
    if len(eligible) < settings.prompts:
        raise ValueError(f"only {len(eligible)} test sentences can give a prompt, {settings.prompts} asked")
    return [eligible[i * len(eligible) // settings.prompts] for i in range(settings.prompts)]


def greedy_prompts(sentences: Sequence[Sequence[str]], vocab: Vocab,
                   settings: GreedySettings = GREEDY) -> list[list[str]]:
    """The first words of test sentences long enough, evenly spaced over the split."""
    return [list(sentences[i][: settings.prompt_words]) for i in prompt_sentences(sentences, vocab, settings)]


def true_continuations(sentences: Sequence[Sequence[str]], vocab: Vocab,
                       settings: GreedySettings = GREEDY) -> tuple[list[list[str]], list[bool]]:
    """What the test text itself writes after each prompt, cut as a decoder would be: the rest of the
    sentence, its words as written (rare ones too); ended when its ``<eos>`` comes within ``max_tokens``."""
    rests = [list(sentences[i][settings.prompt_words:]) for i in prompt_sentences(sentences, vocab, settings)]
    ended = [len(r) < settings.max_tokens for r in rests]
    return [r if e else r[: settings.max_tokens] for r, e in zip(rests, ended, strict=True)], ended


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def repeats_ngram(tokens: Sequence[str], n: int = GREEDY.n) -> bool:
    """Does an n-gram occur twice in the tokens? For a greedy n-gram model of order
    <= n + 1 that is a cycle (the same history, the same next token); a neural model
    reads more than n tokens, and often leaves the repeat (or ends the sentence)."""
    grams = ngrams(tokens, n)
    return len(set(grams)) < len(grams)


class TrainingText:
    """The training sentences, to ask which generated n-grams occur in them (``seen[n]``, for the
    n of ``sizes``) and the longest run of tokens that does (``longest_copied_run``)."""

    def __init__(self, sentences: Sequence[Sequence[str]], sizes: Sequence[int] = (GREEDY.n, GREEDY.long_n)):
        self.seen = {n: {g for s in sentences for g in ngrams(s, n)} for n in sizes}
        self.ids = {t: i for i, t in enumerate(sorted({t for s in sentences for t in s}))}
        # one stream of token ids, -1 after each sentence (a run never crosses it)
        self.stream = np.array([x for s in sentences for x in (*(self.ids[t] for t in s), -1)])
        order = np.argsort(self.stream, kind="stable")
        bounds = np.searchsorted(self.stream[order], np.arange(len(self.ids) + 1))
        self.positions = [order[bounds[i] : bounds[i + 1]] for i in range(len(self.ids))]  # where token i is

    def longest_copied_run(self, tokens: Sequence[str]) -> int:
        """The most consecutive tokens that occur, in that order, inside one training sentence."""
        ids = [self.ids.get(t, -2) for t in tokens]
        best = 0
        for i, first in enumerate(ids):
            if first < 0 or len(ids) - i <= best:
                continue
            where, length = self.positions[first], 1  # where the run starting at i occurs
            while i + length < len(ids):
                where = where[self.stream[where + length] == ids[i + length]]
                if not len(where):
                    break
                length += 1
            best = max(best, length)
        return best


def copied(prompt: Sequence[str], tokens: Sequence[str], seen: set,
           n: int = GREEDY.n) -> tuple[int, int]:
    """(how many, of how many) distinct n-grams that end in a generated token
    occur in the training text (``seen``: its n-grams). Distinct, so that a loop
    repeating one phrase counts it once."""
    grams = set(ngrams([*prompt, *tokens], n)[max(0, len(prompt) - n + 1):])
    return len(grams & seen), len(grams)


def continuation_measures(prompts: list[list[str]], continuations: list[list[str]],
                          finished: list[bool], training: TrainingText,
                          settings: GreedySettings = GREEDY) -> dict:
    """The measures of a model's continuations of the prompts (each prompt once, or repeated for
    several samples of it)."""
    n, long_n, early = settings.n, settings.long_n, settings.early
    repeats = [repeats_ngram(c, n) for c in continuations]

    def share_copied(k: int) -> float:
        counts = [copied(p, c, training.seen[k], k) for p, c in zip(prompts, continuations, strict=True)]
        return sum(a for a, _ in counts) / max(1, sum(b for _, b in counts))

    return {f"repeats a {n}-gram": sum(repeats) / len(continuations),
            f"within {early} tokens": sum(repeats_ngram(c[:early], n) for c in continuations) / len(continuations),
            "repeats, then cut": sum(r and not f for r, f in zip(repeats, finished, strict=True)) / len(repeats),
            "repetition rate": float(np.mean([G.repetition_rate(c) for c in continuations])),
            "distinct-2": G.distinct_n(continuations, 2),
            "ended": sum(finished) / len(finished),
            "mean length": float(np.mean([len(c) for c in continuations])),
            f"copied {n}-grams": share_copied(n),
            f"copied {long_n}-grams": share_copied(long_n),
            "longest copied run": float(np.mean([training.longest_copied_run(c) for c in continuations]))}


def _rounded(measures: dict) -> dict:
    return {k: round(v, 4) for k, v in measures.items()}


def _shown(continuations: list[list[str]], finished: list[bool]) -> list[str]:
    """A continuation as the JSON keeps it: its tokens, and " …" when the length limit cut it."""
    return [" ".join(c) + ("" if f else " …") for c, f in zip(continuations, finished, strict=True)]


def greedy_continuations(model: LanguageModel, prompts: list[list[str]],
                         settings: GreedySettings = GREEDY) -> tuple[list[list[str]], list[bool]]:
    gens = [G.greedy(model, p, settings.max_tokens, suppress=["<unk>"]) for p in prompts]
    return [g.tokens for g in gens], [g.finished for g in gens]


def sampled_continuations(model: LanguageModel, prompts: list[list[str]], top_p: float | None,
                          settings: GreedySettings = GREEDY,
                          sampling: SamplingSettings = SAMPLING) -> tuple[list[list[str]], list[bool]]:
    """``sampling.samples`` continuations of each prompt (``lmlib.generate.sample``, ``<unk>`` suppressed),
    prompt k's from a generator seeded ``sampling.seed + k``, in the order of the prompts: prompt k's are
    k * samples, ..., (k + 1) * samples - 1. (One prompt's rows at a time: drawing all prompts' rows at once
    costs more, the top-p sort of every row over the whole vocabulary at every step.)"""
    gens = [g for k, p in enumerate(prompts)
            for g in G.sample(model, p, settings.max_tokens, top_p=top_p, suppress=["<unk>"],
                              num_samples=sampling.samples,
                              generator=torch.Generator().manual_seed(sampling.seed + k))]
    return [g.tokens for g in gens], [g.finished for g in gens]


def _paired_repeats(flags: dict[str, np.ndarray], settings: GreedySettings) -> list[dict]:
    """The paired bootstrap over the prompts of the share of continuations that repeat an n-gram
    (``flags[name]``: per prompt, the share of its continuations that do)."""
    out = []
    for a, b in settings.pairs:
        test = paired_bootstrap(flags[a], flags[b], np.mean, n_resamples=N_RESAMPLES, seed=0, two_sided=True)
        out.append({"a": a, "b": b, "measure": f"repeats a {settings.n}-gram",
                    "difference": round(test.difference, 4), "95%": [round(test.low, 4), round(test.high, 4)],
                    "p": test.p_value})
    return out


def greedy_experiment(models: dict[str, LanguageModel], data: LeagueData,
                      settings: GreedySettings = GREEDY, sampling: SamplingSettings = SAMPLING) -> dict:
    """Each model's continuations of the prompts, greedy and sampled, their measures, and the same
    measures of the test text's own continuations (the reference)."""
    vocab = models[settings.models[0]].vocab
    prompts = greedy_prompts(data.test["words"], vocab, settings)
    training = TrainingText(data.train["words"], (settings.n, settings.long_n))
    truth, truth_ended = true_continuations(data.test["words"], vocab, settings)
    result = {"settings": dataclasses.asdict(settings), "prompts": [" ".join(p) for p in prompts],
              "test text": _rounded(continuation_measures(prompts, truth, truth_ended, training, settings)),
              "models": {}}
    flags = {}
    for name in settings.models:
        continuations, finished = greedy_continuations(models[name], prompts, settings)
        flags[name] = np.array([float(repeats_ngram(c, settings.n)) for c in continuations])
        result["models"][name] = {
            "measures": _rounded(continuation_measures(prompts, continuations, finished, training, settings)),
            "continuations": _shown(continuations, finished)}
    result["paired"] = _paired_repeats(flags, settings)
    k = sampling.samples
    repeated = [p for p in prompts for _ in range(k)]
    result["sampled"] = {"settings": dataclasses.asdict(sampling), "methods": {}}
    for method, top_p in sampling.methods:
        runs, flags = {}, {}
        for name in settings.models:
            continuations, finished = sampled_continuations(models[name], prompts, top_p, settings, sampling)
            flags[name] = np.array([repeats_ngram(c, settings.n) for c in continuations]).reshape(-1, k).mean(1)
            runs[name] = {
                "measures": _rounded(continuation_measures(repeated, continuations, finished, training, settings)),
                "continuations": _shown(continuations, finished)}
        result["sampled"]["methods"][method] = {"models": runs, "paired": _paired_repeats(flags, settings)}
    return result


# --- what the results were computed from ----------------------------------------------------------------

def _digest(obj: object) -> str:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fingerprint(data: LeagueData) -> dict:
    """What the league was computed from: each recipe's settings, each checkpoint's SHA-256,
    the text each tokenization gives, and the league's own settings."""
    recipes = sorted({e.recipe for e in ENTRIES if e.recipe} | set(NOT_SCORED))
    return {
        "recipes": {r: _digest(dataclasses.asdict(RECIPES[r])) for r in recipes},
        "checkpoints": {r: (CHECKPOINTS / f"{r}.pt.sha256").read_text().split()[0] for r in recipes},
        "text": {f"{part} {k}": _digest(v) for part, d in (("train", data.train), ("test", data.test))
                 for k, v in d.items()},
        "settings": _digest([ENTRIES, sorted(NOT_SCORED), PAIRS, GREEDY, SAMPLING, N_RESAMPLES, SPELLING_ORDER,
                             PSEUDO_SENTENCES, CORPUS, SPLIT]),
    }


def stale_inputs(results: dict, data: LeagueData | None = None) -> list[str]:
    """What has changed since ``results`` were computed (empty: they are up to date)."""
    now, then = fingerprint(data or load_data()), results["inputs"]
    return [f"{part} {key}: the results were computed from {then.get(part, {}).get(key)}, it is now {value}"
            for part in ("recipes", "checkpoints", "text") for key, value in now[part].items()
            if then.get(part, {}).get(key) != value] + (
        [f"the league's settings: {then['settings']} then, {now['settings']} now"]
        if then["settings"] != now["settings"] else [])


def figures_agree(got: object, want: object, rel: float = 1e-6) -> bool:
    """Two results (dicts, lists, numbers) equal, numbers to within ``rel`` (the JSON rounds them)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and set(got) == set(want) and all(
            figures_agree(got[k], want[k], rel) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            figures_agree(g, w, rel) for g, w in zip(got, want, strict=True))
    if isinstance(want, float):
        return abs(got - want) <= rel * max(1.0, abs(want))
    return got == want


# --- the same figures as the model chapters print ---------------------------------------------------------

CHAPTERS = Path(__file__).resolve().parents[2] / "chapters"
# (chapter, a pattern that finds the line of its printed output, the league row, the measure, digits printed):
# the figure is the last number on the line.
PRINTED: tuple[tuple[str, str, str, str, int], ...] = (
    ("recurrent_networks", r"^\s*uniform\s+-", "uniform, words", "perplexity", 1),
    ("recurrent_networks", r"^\s*unigram\s+[\d,]+ n-grams", "unigram, words", "perplexity", 1),
    ("recurrent_networks", r"^\s*Kneser-Ney 3-gram\s+[\d,]+ n-grams", "Kneser-Ney 3-gram, words", "perplexity", 1),
    ("recurrent_networks", r"^\s*Kneser-Ney 5-gram\s+[\d,]+ n-grams", "Kneser-Ney 5-gram, words", "perplexity", 1),
    ("neural_networks", r"MLP \(recipe mlp_wiki\)", "MLP, words", "perplexity", 1),
    ("recurrent_networks", r"LSTM \(recipe lstm_words_wiki\)", "LSTM, words", "perplexity", 1),
    ("transformer", r"GPT \(recipe gpt_words_wiki\)", "GPT, modern block, words", "perplexity", 1),
    ("recurrent_networks", r"^\s*wiki\s+Kneser-Ney 5-gram\s", "Kneser-Ney 5-gram, characters", "bpc", 3),
    ("recurrent_networks", r"^\s*wiki\s+LSTM\s", "LSTM, characters", "bpc", 3),
    ("transformer", r"^\s*wiki\s+GPT \(gpt_chars_wiki\)", "GPT, GPT-2 block, characters", "bpc", 3),
    ("transformer", r"^\s*wiki\s+GPT, modern block", "GPT, modern block, characters", "bpc", 3),
    ("transformer", r"^\s*wiki\s+GPT on BPE tokens", "GPT, GPT-2 block, BPE", "bpc", 3),
)


def _printed_lines(chapter: str) -> list[str]:
    notebook = json.loads((CHAPTERS / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    texts = ["".join(out.get("text", "")) for cell in notebook["cells"] if cell["cell_type"] == "code"
             for out in cell.get("outputs", [])]
    return [line for text in texts for line in text.splitlines()]


def printed_in_chapters(results: dict) -> list[dict]:
    """Each league figure beside the one its model's chapter printed (``PRINTED``); a neural row's
    parameters must be on that line too. A figure the chapter no longer prints raises."""
    rows = {r["model"]: r for r in results["rows"]}
    out = []
    for chapter, pattern, name, measure, digits in PRINTED:
        lines = [line for line in _printed_lines(chapter) if re.search(pattern, line)]
        if len(lines) != 1:
            raise ValueError(f"{len(lines)} lines of chapters/{chapter}.ipynb's outputs match {pattern!r}, not 1")
        printed = re.findall(r"[\d,]+\.\d+", lines[0])[-1]
        league = f"{rows[name]['test'][measure]:,.{digits}f}"
        parameters = rows[name]["parameters"]
        same = printed == league and (not parameters or f"{parameters:,}" in lines[0])
        out.append({"model": name, "chapter": chapter, "measure": measure, "printed there": printed,
                    "league": league, "same": "yes" if same else "NO"})
    return out


# --- the run --------------------------------------------------------------------------------------------

def run() -> dict:
    start, cpu_start = time.perf_counter(), time.process_time()
    data = load_data()
    rows, scores, models = [], {}, {}
    word_vocab = Vocab((t for s in data.train["words"] for t in s), min_count=2)
    spell = spelling_model(data.train["words"], word_vocab)
    for entry in ENTRIES:
        model, made = build(entry, data)
        if entry.tokens == "words" and model.vocab.itos != word_vocab.itos:
            raise ValueError(f"{entry.name} does not use the shared word vocabulary (min_count=2)")
        test, logprob, bits = score(entry, model, data, spell if entry.tokens == "words" else None)
        tokens = np.array([len(s) + 1 for s in data.test[entry.tokens]])
        scores[entry.name] = logprob, bits, tokens
        rows.append({"model": entry.name, "tokens": entry.tokens, **made, "test": test,
                     "articles": by_article(logprob, bits, tokens, data)})
        if entry.name in GREEDY.models:
            models[entry.name] = model
        print(f"{entry.name}: {test['bpc']:.4f} bits per character", file=sys.stderr)
    unscored = []
    for name, (label, reason) in NOT_SCORED.items():
        log = json.loads((CHECKPOINTS / f"{name}.json").read_text(encoding="utf-8"))
        unscored.append({"model": label, "recipe": name, "description": RECIPES[name].description,
                         "parameters": log["parameters"], "training": training_of(RECIPES[name], log),
                         "why not scored": reason})
    named = {r["model"]: r for r in rows}
    comparisons = [{**compare(a, b, m, scores, data.characters), "articles": article_comparison(a, b, m, named)}
                   for a, b, m in PAIRS]
    print("decoding ...", file=sys.stderr)
    greedy = greedy_experiment(models, data, GREEDY, SAMPLING)
    pseudo = pseudo_experiment(data)
    return {"command": COMMAND, "corpus": CORPUS, "split": SPLIT, "articles": data.titles,
            "training text": {k: sum(len(s) + 1 for s in v) for k, v in data.train.items()},
            "spelling": spelling_report(spell, data, word_vocab),
            "rows": rows, "not scored": unscored, "pseudo": pseudo, "comparisons": comparisons, "greedy": greedy,
            "inputs": fingerprint(data),
            "run": {"date": datetime.date.today().isoformat(), "wall_seconds": round(time.perf_counter() - start, 1),
                    "cpu_seconds": round(time.process_time() - cpu_start, 1),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                    "device": f"CPU, {torch.get_num_threads()} threads, {os.cpu_count()} cores ({platform.machine()})",
                    "torch": torch.__version__, "python": platform.python_version()}}


# --- the table ------------------------------------------------------------------------------------------

def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def training_text(row: dict) -> str:
    """CPU minutes first: on a shared machine the wall-clock time is mostly the other jobs' load."""
    t = row["training"]
    if t is None:
        return "none"
    if "fit_seconds" in t:
        return f"fit by the command: {t['fit_seconds']:.1f} s (load {t['load_average']:.0f})"
    return f"{_minutes(t['cpu_seconds'])} CPU ({_minutes(t['wall_seconds'])} wall), {t['steps']:,} steps"


def tokens_seen_text(row: dict, results: dict) -> str:
    """The tokens a row's training predicted, in millions, and how many passes over the training text."""
    t = row["training"]
    if t is None:
        return "-"
    seen, text = t["tokens seen"], results["training text"][row["tokens"]]
    if "fit_seconds" in t:
        return f"{seen / 1e6:.2f}M (counted once)"
    return f"{seen / 1e6:.2f}M ({seen / text:.1f} epochs)"


def size_text(row: dict) -> str:
    if row.get("n-grams") is not None:
        return f"{row['n-grams']:,} n-grams"
    return f"{row['parameters']:,}" if row["parameters"] else "-"


def _with_interval(value: float, interval: list[float], digits: int) -> str:
    if interval[0] == interval[1] == value:  # a uniform model: the same on every resample
        return f"{value:,.{min(digits, 3) if value < 100 else 0}f} (exact)"
    return f"{value:,.{digits}f} [{interval[0]:,.{digits}f}, {interval[1]:,.{digits}f}]"


def _bracket(interval: list[float], digits: int) -> str:
    low, high = interval
    return "exact" if low == high else f"[{low:,.{digits}f}, {high:,.{digits}f}]"


SIZE = "size (parameters / stored n-grams)"
TRAINING = "training, 2 shared cores: CPU (wall)"


def table_rows(results: dict) -> list[dict]:
    """The league as rows of text: the word models by perplexity, then the character and BPE models by bits
    per character (a word row's bits per character with its <unk> spelled; as scored, in the last column).
    The figure a row is ranked by also gets its interval over the articles (†)."""
    def order(row):
        test = row["test"]
        return (row["tokens"] != "words", test["perplexity"] if row["tokens"] == "words" else test["bpc"])

    out = []
    for row in sorted(results["rows"], key=order, reverse=False):
        test, words = row["test"], row["tokens"] == "words"
        bpc = test["<unk> spelled"] if words else test
        out.append({"model": row["model"], "recipe": row["recipe"] or "-", SIZE: size_text(row),
                    TRAINING: training_text(row), "tokens seen": tokens_seen_text(row, results),
                    "test PPL per word": _with_interval(test["perplexity"], test["perplexity 95%"], 1)
                    if words else "-",
                    "test bits per character": _with_interval(bpc["bpc"], bpc["bpc 95%"], 3) + ("*" if words else ""),
                    "the same, resampling articles†": _bracket(test["perplexity 95% articles"], 1) if words
                    else _bracket(test["bpc 95% articles"], 3),
                    "word bpc as scored*": f"{test['bpc']:.3f}" if words else "-"})
    for row in results["not scored"]:
        t = row["training"]
        out.append({"model": row["model"], "recipe": row["recipe"], SIZE: f"{row['parameters']:,}",
                    TRAINING: training_text(row), "tokens seen": f"{t['tokens seen'] / 1e6:.2f}M masked",
                    "test PPL per word": "-", "test bits per character": "not defined**",
                    "the same, resampling articles†": "-", "word bpc as scored*": "-"})
    return out


def markdown_table(results: dict) -> str:
    """The table and its notes (the chapter shows this part of ``markdown``)."""
    rows = table_rows(results)
    words = next(r for r in results["rows"] if r["tokens"] == "words")["test"]
    spelling = results["spelling"]
    gpt = next(r for r in results["rows"] if r["recipe"] == "gpt_words_wiki")["test"]
    lines = [
        "| " + " | ".join(rows[0]) + " |",
        "|" + "|".join("---" for _ in rows[0]) + "|",
        *("| " + " | ".join(str(v).replace("|", "\\|") for v in r.values()) + " |" for r in rows),
        "",
        f"\\* Word models predict lower-cased tokens: {words['vocabulary'] - 2:,} words, `<unk>` and `<eos>` "
        f"({words['vocabulary']:,} tokens). `<unk>` stands for the {words['unknown tokens']:,} test tokens "
        f"outside the vocabulary, which hold {words['unknown characters'] / words['characters']:.1%} of the "
        f"test characters. Their bits per character here add the spelling of each of those words by a "
        f"character {spelling['order']}-gram of the {spelling['training words']:,} training words that became "
        f"`<unk>` (+{spelling['bpc added']:.3f} bits per character, the same for every word row; "
        f"{spelling['bits per symbol']:.2f} bits per letter, each word's end counted). Case and spaces still "
        "cost them nothing (case costs a character 5-gram 0.05 bits per character), so the figure is a lower "
        f"bound on what they would need to code the text, up to about {spelling['over-count, bpc']:.3f} bits "
        f"per character: the speller puts {spelling['mass on vocabulary words']:.3f} of its probability on "
        f"words of the vocabulary, which `<unk>` never stands for. The last column is the figure as scored, "
        "with every unknown word free: it does not compare with the character and BPE models.",
        "",
        f"\\*\\* {results['not scored'][0]['why not scored']}. Its tokens seen are the characters it masked "
        "and predicted.",
        "",
        f"† Every interval is 95 %, bootstrap ({N_RESAMPLES:,} resamples). Beside a figure, over the "
        f"{words['sentences']:,} test sentences; in this column, over the {len(results['articles'])} test "
        "articles (of a word row's perplexity, of every other row's bits per character). The sentences of one "
        "article are not independent, so the sentence intervals understate how much a figure would move on "
        f"other articles: the word GPT's perplexity, {gpt['perplexity']:.1f}, has [{gpt['perplexity 95%'][0]:.1f}, "
        f"{gpt['perplexity 95%'][1]:.1f}] over sentences and [{gpt['perplexity 95% articles'][0]:.1f}, "
        f"{gpt['perplexity 95% articles'][1]:.1f}] over articles. Ten articles are a coarse resample.",
        "",
    ]
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """The league table as the Benchmarks appendix shows it (``benchmarks/results/league.md``)."""
    words = next(r for r in results["rows"] if r["tokens"] == "words")["test"]
    chars = next(r for r in results["rows"] if r["tokens"] == "chars")["test"]
    text = results["training text"]
    twins = [r["training"] for r in results["rows"] if r["recipe"] in ("gpt_chars_wiki", "gpt_chars_wiki_modern")]
    run_info = results["run"]
    lines = [
        "# The league table: every model of the course on the `wiki` test split",
        "",
        f"Generated by `{results['command']}` on {run_info['date']} ({run_info['wall_seconds'] / 60:.1f} min wall, "
        f"{run_info['cpu_seconds'] / 60:.1f} min CPU; {run_info['device']}, load average "
        f"{', '.join(f'{x:.1f}' for x in run_info['load_average'])}; torch {run_info['torch']}); "
        "the numbers are in `checkpoints/league_wiki.json`, and the chapter *Evaluation and the league table* "
        "explains them.",
        "",
        f"Test text: the {words['sentences']:,} sentences of the {len(results['articles'])} test articles; "
        f"{words['tokens']:,} word tokens (`<eos>` counted), {chars['characters']:,} characters (a run of "
        "whitespace is one space; each sentence counts one more for its end). Training: CPU (and wall-clock) "
        "minutes from each recipe's log, on 2 CPU cores shared with other jobs, so the wall-clock minutes "
        f"measure mostly the load (the two character GPTs, of one shape, took {twins[0]['cpu_seconds'] / 60:.1f} "
        f"and {twins[1]['cpu_seconds'] / 60:.1f} CPU minutes, {twins[0]['wall_seconds'] / 60:.1f} and "
        f"{twins[1]['wall_seconds'] / 60:.1f} wall), and the CPU minutes are rough. Tokens seen: the targets "
        "the training loss predicted (the log's count), in passes over the training text "
        f"({text['words']:,} word tokens, {text['chars']:,} characters, "
        f"{text['bpe']:,} BPE tokens, `<eos>` counted).",
        "",
        markdown_table(results),
    ]
    return "\n".join(lines)


COLOURS = {"words": "C0", "chars": "C1", "bpe": "C2"}


def plot_size_against_score(axes, results: dict) -> None:
    """Left: the word models' test perplexity against their size; right: bits per character against size, a
    word model's with its <unk> spelled (hollow; case and spaces free), the cluster of word models named in an
    inset. Size is a neural model's parameters (circles) or an n-gram model's stored n-grams (squares); the
    uniform models, of no size, are left out. Bars: 95 % intervals (bootstrap over the test sentences)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    left, right = axes
    inset = right.inset_axes([0.3, 0.4, 0.36, 0.4])
    for row in results["rows"]:
        size = row["parameters"] or row.get("n-grams")
        if not size:
            continue
        test, words, colour = row["test"], row["tokens"] == "words", COLOURS[row["tokens"]]
        marker = "s" if row.get("n-grams") else "o"
        name = row["model"].removesuffix(", words").replace(", characters", "").replace("Kneser-Ney ", "KN ")
        panels = [(right, test["<unk> spelled"] if words else test, "bpc")]
        if words:
            panels.append((left, test, "perplexity"))
            if row["model"] != "unigram, words":
                panels.append((inset, test["<unk> spelled"], "bpc"))
        for ax, figures, key in panels:
            y, (low, high) = figures[key], figures[f"{key} 95%"]
            ax.errorbar(size, y, yerr=[[y - low], [high - y]], fmt=marker, color=colour, capsize=2,
                        mfc="white" if words and ax is not left else colour)
            if ax is inset and row.get("n-grams"):  # above the bar: the neural models crowd the right
                ax.annotate(name, (size, high), xytext=(0, 3), textcoords="offset points", fontsize=7,
                            color=colour, ha="center", va="bottom")
            elif ax is inset:
                ax.annotate(name, (size, y), xytext=(-6, 0), textcoords="offset points", fontsize=7,
                            color=colour, ha="right", va="center")
            elif ax is left or not words or row["model"] == "unigram, words":
                ax.annotate(name, (size, y), xytext=(5, 3), textcoords="offset points", fontsize=8, color=colour)
    left.set(xscale="log", yscale="log", xlabel="parameters (circles) or stored n-grams (squares)",
             ylabel="test perplexity per word", title="Word models, one vocabulary")
    left.set_yticks([150, 200, 300, 400, 500])
    left.yaxis.set_major_formatter(ScalarFormatter())
    left.yaxis.set_minor_formatter(NullFormatter())
    right.set(xscale="log", xlabel="parameters (circles) or stored n-grams (squares)",
              ylabel="test bits per character", title="Every model, per character")
    inset.set_xscale("log")
    inset.set_xlim(2.5e5, 3.5e6)
    inset.set_ylim(top=inset.get_ylim()[1] + 0.012)  # room for the labels above the bars
    inset.set_xticks([3e5, 1e6, 3e6], ["0.3M", "1M", "3M"])
    inset.xaxis.set_minor_formatter(NullFormatter())
    inset.tick_params(labelsize=7)
    inset.set_title("the word models, <unk> spelled", fontsize=8)
    right.indicate_inset_zoom(inset, edgecolor="0.5")
    for tokens, colour in COLOURS.items():
        right.plot([], [], "o", color=colour, mfc="white" if tokens == "words" else colour,
                   label=TOKENS[tokens] + (" (<unk> spelled; case, spaces free)" if tokens == "words" else ""))
    right.legend(fontsize=8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the JSON goes (default: {OUT})")
    parser.add_argument("--markdown", type=Path, default=MARKDOWN, help=f"the table (default: {MARKDOWN})")
    parser.add_argument("--check", action="store_true",
                        help="only say whether the JSON at --out is up to date (exit status 1 if not)")
    args = parser.parse_args(argv)
    if args.check:
        if not args.out.exists():
            parser.error(f"{args.out} does not exist: make it with {COMMAND}")
        stale = stale_inputs(json.loads(args.out.read_text(encoding="utf-8")))
        print("\n".join(stale) if stale else f"{args.out} is up to date")
        raise SystemExit(1 if stale else 0)
    results = run()
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    args.markdown.write_text(markdown(results), encoding="utf-8")
    print(f"{len(results['rows'])} rows in {results['run']['wall_seconds']} s -> {args.out}, {args.markdown}")


if __name__ == "__main__":
    main()
