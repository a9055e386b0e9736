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
training time and settings from their logs (``checkpoints/RECIPE.json``). Scoring the neural models is
what makes this a command and not a notebook cell: a few minutes on two CPU cores (the JSON's
``wall_seconds``).

A word model's bits are not the bits of the text. It never spells a word outside its vocabulary (one
``<unk>`` pays for it), and case and spaces cost it nothing. ``spelling_model`` charges the spelling: the
column "<unk> spelled" adds, for each ``<unk>``, the letters of the word it stood for under a character
5-gram; case and spaces stay free there, and the table says so.

Besides the rows, the JSON keeps a greedy-decoding experiment on the word models (what perplexity does not
tell) and what it was computed from (``fingerprint``: the recipes, the checkpoints' SHA-256, the text, the
league's settings). ``stale_inputs`` names whatever has changed since; ``tests/course/test_league.py``
checks that nothing has, and recomputes the cheap rows. Everything runs on the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
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
from lmlib.tokenize import Vocab, split_sentences

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
    """The greedy-decoding experiment: prompts are the first ``prompt_words`` words of test sentences
    of at least ``min_words`` words (all of them in the vocabulary), ``prompts`` of them evenly spaced;
    each model continues each prompt greedily for up to ``max_tokens`` tokens, ``<unk>`` forbidden."""

    prompts: int = 100
    prompt_words: int = 3
    min_words: int = 8
    max_tokens: int = 40
    n: int = 4  # a continuation loops when one of its n-grams occurs twice; copied n-grams are n long
    models: tuple[str, ...] = ("Kneser-Ney 3-gram, words", "Kneser-Ney 5-gram, words", "MLP, words",
                               "LSTM, words", "GPT, modern block, words")
    pairs: tuple[tuple[str, str], ...] = (("Kneser-Ney 5-gram, words", "GPT, modern block, words"),
                                          ("Kneser-Ney 5-gram, words", "LSTM, words"))


GREEDY = GreedySettings()
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
    train = {"words": lowercase_word_sentences(corpus, "train"), "chars": character_sentences(corpus, "train")}
    test = {"words": lowercase_word_sentences(corpus, split), "chars": character_sentences(corpus, split),
            "bpe": bpe_sentences(corpus, split)}
    sizes = {k: len(v) for k, v in test.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"the tokenizations cut the {split} split into different numbers of sentences: {sizes}")
    documents = load_corpus(corpus, split)
    per_article = [len(split_sentences(doc)) for doc in documents]
    if sum(per_article) != sizes["words"]:
        raise ValueError("the articles' sentences do not add up to the split's: split_sentences changed?")
    title_of = {text: title for title, text in wiki_articles().items()} if corpus == "wiki" else {}
    titles = [title_of.get(doc, f"article {i}") for i, doc in enumerate(documents)]
    return LeagueData(train, test, np.array([len(s) + 1 for s in test["chars"]]),
                      np.repeat(np.arange(len(documents)), per_article), titles)


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
    model never uses, so the bits can only be over-counted, never under-counted."""
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
        t = recipe.train
        made = {"recipe": entry.recipe, "description": recipe.description,
                "training": {"steps": log["step"][-1], "batch": f"{t.batch_size} x {t.block} tokens",
                             "lr": t.lr, "wall_seconds": round(log["seconds"][-1], 1),
                             "cpu_seconds": round(log["cpu_seconds"][-1], 1),
                             "final_valid_perplexity": round(log["valid_ppl"][-1], 4)},
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
                   "description": f"NGramLM({entry.order}, 'kneser_ney', min_count=2), fitted in the chapter",
                   "training": {"fit_seconds": round(seconds, 2)}, "parameters": None, "n-grams": stored}


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
            "bpc": round(bpc_of(logprob, data.characters), 6),
            "bpc 95%": _interval(sentence_interval(bpc_of, logprob, data.characters), 6)}
    if spell is None:
        return test, logprob, logprob
    spelled = logprob + spelling_logprobs(spell, sentences, model.vocab)
    test["<unk> spelled"] = {
        "logprob": round(float(spelled.sum()), 4),
        "bpc": round(bpc_of(spelled, data.characters), 6),
        "bpc 95%": _interval(sentence_interval(bpc_of, spelled, data.characters), 6)}
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
    """The masked LM's pseudo-log-likelihood of some test sentences beside the log-probability
    that its causal twin (``gpt_chars_wiki``: the same size) gives their characters (``<eos>`` left out)."""
    eligible = [i for i, s in enumerate(data.test["chars"]) if 40 <= len(s) <= 100]
    chosen = [eligible[k * len(eligible) // n] for k in range(n)]
    sentences = [data.test["chars"][i] for i in chosen]
    masked, causal = load_checkpoint("masked_chars_wiki"), load_checkpoint("gpt_chars_wiki")
    pseudo = [float(pseudo_logprobs(masked, s).sum()) for s in sentences]
    forward = token_logprobs(causal, sentences).split([len(s) + 1 for s in sentences])
    return {"sentences": chosen, "characters": sum(map(len, sentences)),
            "masked LM, pseudo-log-likelihood": [round(x, 4) for x in pseudo],
            "gpt_chars_wiki, log-probability": [round(float(f[:-1].sum()), 4) for f in forward]}


# --- what perplexity does not tell: greedy continuations ----------------------------------------------

def greedy_prompts(sentences: Sequence[Sequence[str]], vocab: Vocab,
                   settings: GreedySettings = GREEDY) -> list[list[str]]:
    """The first words of test sentences long enough, evenly spaced over the split."""
    k = settings.prompt_words
    eligible = [list(s[:k]) for s in sentences
                if len(s) >= settings.min_words and all(w in vocab for w in s[:k])]
    if len(eligible) < settings.prompts:
        raise ValueError(f"only {len(eligible)} test sentences can give a prompt, {settings.prompts} asked")
    return [eligible[i * len(eligible) // settings.prompts] for i in range(settings.prompts)]


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def loops(tokens: Sequence[str], n: int = GREEDY.n) -> bool:
    """Does an n-gram occur twice in the tokens? (A greedy decoder that
    repeats n tokens of context is in a cycle.)"""
    grams = ngrams(tokens, n)
    return len(set(grams)) < len(grams)


def copied(prompt: Sequence[str], tokens: Sequence[str], seen: set,
           n: int = GREEDY.n) -> tuple[int, int]:
    """(how many, of how many) n-grams that end in a generated token occur
    in the training text (``seen``: its n-grams)."""
    grams = ngrams([*prompt, *tokens], n)[max(0, len(prompt) - n + 1):]
    return sum(g in seen for g in grams), len(grams)


def continuation_measures(prompts: list[list[str]], continuations: list[list[str]],
                          finished: list[bool], seen: set, settings: GreedySettings = GREEDY) -> dict:
    """The measures of a model's continuations of the prompts."""
    copies = [copied(p, c, seen, settings.n) for p, c in zip(prompts, continuations, strict=True)]
    return {"loops": sum(loops(c, settings.n) for c in continuations) / len(continuations),
            "repetition rate": float(np.mean([G.repetition_rate(c) for c in continuations])),
            "distinct-2": G.distinct_n(continuations, 2),
            "ended": sum(finished) / len(finished),
            "mean length": float(np.mean([len(c) for c in continuations])),
            "copied n-grams": sum(a for a, _ in copies) / max(1, sum(b for _, b in copies))}


def greedy_continuations(model: LanguageModel, prompts: list[list[str]],
                         settings: GreedySettings = GREEDY) -> tuple[list[list[str]], list[bool]]:
    gens = [G.greedy(model, p, settings.max_tokens, suppress=["<unk>"]) for p in prompts]
    return [g.tokens for g in gens], [g.finished for g in gens]


def greedy_experiment(models: dict[str, LanguageModel], data: LeagueData,
                      settings: GreedySettings = GREEDY) -> dict:
    vocab = models[settings.models[0]].vocab
    prompts = greedy_prompts(data.test["words"], vocab, settings)
    seen = {g for s in data.train["words"] for g in ngrams(s, settings.n)}
    result = {"settings": dataclasses.asdict(settings), "prompts": [" ".join(p) for p in prompts], "models": {}}
    loop_flags = {}
    for name in settings.models:
        continuations, finished = greedy_continuations(models[name], prompts, settings)
        loop_flags[name] = [float(loops(c, settings.n)) for c in continuations]
        result["models"][name] = {
            "measures": {k: round(v, 4) for k, v in
                         continuation_measures(prompts, continuations, finished, seen, settings).items()},
            "continuations": [" ".join(c) + ("" if f else " …") for c, f in zip(continuations, finished,
                                                                                  strict=True)]}
    result["paired"] = []
    for a, b in settings.pairs:
        test = paired_bootstrap(loop_flags[a], loop_flags[b], np.mean, n_resamples=N_RESAMPLES, seed=0,
                                two_sided=True)
        result["paired"].append({"a": a, "b": b, "measure": "loops", "difference": round(test.difference, 4),
                                 "95%": [round(test.low, 4), round(test.high, 4)], "p": test.p_value})
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
        "settings": _digest([ENTRIES, sorted(NOT_SCORED), PAIRS, GREEDY, N_RESAMPLES, SPELLING_ORDER,
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
    ("transformer", r"^\s*uniform\s+-", "uniform, words", "perplexity", 1),
    ("recurrent_networks", r"^\s*unigram\s+[\d,]+ n-grams", "unigram, words", "perplexity", 1),
    ("recurrent_networks", r"^\s*Kneser-Ney 3-gram\s+[\d,]+ n-grams", "Kneser-Ney 3-gram, words", "perplexity", 1),
    ("transformer", r"^\s*Kneser-Ney 5-gram\s+[\d,]+ n-grams", "Kneser-Ney 5-gram, words", "perplexity", 1),
    ("transformer", r"MLP \(recipe mlp_wiki\)", "MLP, words", "perplexity", 1),
    ("transformer", r"LSTM \(recipe lstm_words_wiki\)", "LSTM, words", "perplexity", 1),
    ("transformer", r"GPT \(recipe gpt_words_wiki\)", "GPT, modern block, words", "perplexity", 1),
    ("transformer", r"^\s*wiki\s+Kneser-Ney 5-gram\s", "Kneser-Ney 5-gram, characters", "bpc", 3),
    ("transformer", r"^\s*wiki\s+LSTM \(lstm_chars_wiki\)", "LSTM, characters", "bpc", 3),
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
                         "parameters": log["parameters"],
                         "training": {"steps": log["step"][-1], "wall_seconds": round(log["seconds"][-1], 1),
                                      "cpu_seconds": round(log["cpu_seconds"][-1], 1)}, "why not scored": reason})
    comparisons = [compare(a, b, m, scores, data.characters) for a, b, m in PAIRS]
    greedy = greedy_experiment(models, data, GREEDY)
    pseudo = pseudo_experiment(data)
    return {"command": COMMAND, "corpus": CORPUS, "split": SPLIT, "articles": data.titles,
            "spelling": {"order": SPELLING_ORDER, "training words": sum(w not in word_vocab
                                                                         for s in data.train["words"] for w in s)},
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
    t = row["training"]
    if t is None:
        return "none"
    if "fit_seconds" in t:
        return f"fit in the chapter, {t['fit_seconds']:.1f} s"
    return f"{_minutes(t['wall_seconds'])} ({_minutes(t['cpu_seconds'])} CPU), {t['steps']:,} steps"


def size_text(row: dict) -> str:
    if row.get("n-grams") is not None:
        return f"{row['n-grams']:,} n-grams"
    return f"{row['parameters']:,}" if row["parameters"] else "-"


def _with_interval(value: float, interval: list[float], digits: int) -> str:
    return f"{value:,.{digits}f} [{interval[0]:,.{digits}f}, {interval[1]:,.{digits}f}]"


def table_rows(results: dict) -> list[dict]:
    """The league as rows of text: the word models by perplexity, then the character and BPE models by bits
    per character (a word row's bits per character with its <unk> spelled; as scored, in the last column)."""
    def order(row):
        test = row["test"]
        return (row["tokens"] != "words", test["perplexity"] if row["tokens"] == "words" else test["bpc"])

    out = []
    for row in sorted(results["rows"], key=order, reverse=False):
        test, words = row["test"], row["tokens"] == "words"
        bpc = test["<unk> spelled"] if words else test
        out.append({"model": row["model"], "recipe": row["recipe"] or "-", "parameters": size_text(row),
                    "training (2 cores)": training_text(row),
                    "test PPL per word": _with_interval(test["perplexity"], test["perplexity 95%"], 1)
                    if words else "-",
                    "test bits per character": _with_interval(bpc["bpc"], bpc["bpc 95%"], 3) + ("*" if words else ""),
                    "word bpc as scored*": f"{test['bpc']:.3f}" if words else "-"})
    for row in results["not scored"]:
        t = row["training"]
        out.append({"model": row["model"],
                    "recipe": row["recipe"], "parameters": f"{row['parameters']:,}",
                    "training (2 cores)": f"{_minutes(t['wall_seconds'])} ({_minutes(t['cpu_seconds'])} CPU), "
                                          f"{t['steps']:,} steps",
                    "test PPL per word": "-", "test bits per character": "not defined**", "word bpc as scored*": "-"})
    return out


def markdown(results: dict) -> str:
    """The league table as the Benchmarks appendix shows it (``benchmarks/results/league.md``)."""
    rows = table_rows(results)
    words = next(r for r in results["rows"] if r["tokens"] == "words")["test"]
    chars = next(r for r in results["rows"] if r["tokens"] == "chars")["test"]
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
        "whitespace is one space; each sentence counts one more for its end). Intervals: 95 %, bootstrap over "
        f"the sentences ({N_RESAMPLES:,} resamples). Training times are wall-clock (and CPU) minutes from each "
        "recipe's log, on 2 shared CPU cores.",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "|".join("---" for _ in rows[0]) + "|",
        *("| " + " | ".join(str(v).replace("|", "\\|") for v in r.values()) + " |" for r in rows),
        "",
        f"\\* Word models predict lower-cased tokens, with `<unk>` for the {words['unknown tokens']:,} test "
        f"tokens outside their {words['vocabulary']:,}-token vocabulary, which hold "
        f"{words['unknown characters'] / words['characters']:.1%} of the test characters. Their bits per "
        f"character here add the spelling of each of those words by a character {results['spelling']['order']}-"
        "gram of the training words that became `<unk>`; case and spaces still cost them nothing, so the "
        "figure is a lower bound on what they would need to code the text. The last column is the figure "
        "as scored, with every unknown word free: it does not compare with the character and BPE models.",
        "",
        f"\\*\\* {results['not scored'][0]['why not scored']}.",
        "",
    ]
    return "\n".join(lines)


COLOURS = {"words": "C0", "chars": "C1", "bpe": "C2"}


def plot_size_against_score(axes, results: dict) -> None:
    """Left: the word models' test perplexity against their size; right: bits per character against size, a
    word model's with its <unk> spelled (hollow, named on the left only: case and spaces free). Size is a neural
    model's parameters (circles) or an n-gram model's stored n-grams (squares); the uniform models, of no size,
    are left out. Bars: 95 % intervals (bootstrap over the test sentences)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    left, right = axes
    min_word_ngrams = min(r.get("n-grams") or math.inf for r in results["rows"] if r["tokens"] == "words")
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
        for ax, figures, key in panels:
            y, (low, high) = figures[key], figures[f"{key} 95%"]
            ax.errorbar(size, y, yerr=[[y - low], [high - y]], fmt=marker, color=colour, capsize=2,
                        mfc="white" if words and ax is right else colour)
            if ax is left or not words or row.get("n-grams") == min_word_ngrams:  # the cluster: named on the left
                ax.annotate(name, (size, y), xytext=(5, 3), textcoords="offset points", fontsize=8, color=colour)
    left.set(xscale="log", yscale="log", xlabel="parameters (circles) or stored n-grams (squares)",
             ylabel="test perplexity per word", title="Word models, one vocabulary")
    left.set_yticks([150, 200, 300, 400, 500])
    left.yaxis.set_major_formatter(ScalarFormatter())
    left.yaxis.set_minor_formatter(NullFormatter())
    right.set(xscale="log", xlabel="parameters (circles) or stored n-grams (squares)",
              ylabel="test bits per character", title="Every model, per character")
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
