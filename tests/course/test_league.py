"""lmlib.course.league: the committed league table is what the code makes from the recipes as they stand (their
settings, their checkpoints, the text), its cheap rows recompute to the same figures, its figures are those the
model chapters print, the appendix's table is rendered from it; and the pieces it is made of, on toy data."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest

from lmlib.course import league as L
from lmlib.lm import UniformLM, total_logprob
from lmlib.metrics import bootstrap_interval, paired_bootstrap
from lmlib.ngram import NGramLM
from lmlib.tokenize import Vocab


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(L.OUT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def data() -> L.LeagueData:
    return L.load_data()


def _row(results: dict, name: str) -> dict:
    return next(r for r in results["rows"] if r["model"] == name)


# --- the committed results --------------------------------------------------------------------------------

def test_committed_results_are_up_to_date_with_the_recipes_checkpoints_and_text(committed, data):
    stale = L.stale_inputs(committed, data)
    assert not stale, f"checkpoints/league_wiki.json is out of date; rerun {L.COMMAND}:\n" + "\n".join(stale)
    assert [r["model"] for r in committed["rows"]] == [e.name for e in L.ENTRIES]
    assert [r["recipe"] for r in committed["not scored"]] == list(L.NOT_SCORED)


def test_a_changed_recipe_checkpoint_text_or_setting_makes_them_stale(committed, data, monkeypatch):
    """The check above can fail: each kind of change is named."""
    altered = copy.deepcopy(committed)
    altered["inputs"]["checkpoints"]["gpt_words_wiki"] = "0" * 64
    assert [s.split(":")[0] for s in L.stale_inputs(altered, data)] == ["checkpoints gpt_words_wiki"]

    recipe = L.RECIPES["mlp_wiki"]
    monkeypatch.setitem(L.RECIPES, "mlp_wiki", dataclasses.replace(
        recipe, train=dataclasses.replace(recipe.train, steps=recipe.train.steps + 1)))
    assert [s.split(":")[0] for s in L.stale_inputs(committed, data)] == ["recipes mlp_wiki"]
    monkeypatch.setitem(L.RECIPES, "mlp_wiki", recipe)

    other_text = dataclasses.replace(data, test={**data.test, "words": data.test["words"][:-1]})
    assert [s.split(":")[0] for s in L.stale_inputs(committed, other_text)] == ["text test words"]

    monkeypatch.setattr(L, "N_RESAMPLES", L.N_RESAMPLES + 1)
    assert [s.split(":")[0] for s in L.stale_inputs(committed, data)] == ["the league's settings"]


def _same(got, want, path=""):
    """Equal structures; numbers equal to within the last digit the JSON keeps."""
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for k in want:
            _same(got[k], want[k], f"{path}/{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert abs(got - want) <= 1e-6 * max(1.0, abs(want)), (path, got, want)
    else:
        assert got == want, (path, got, want)


def test_the_rows_fitted_here_recompute_to_the_committed_figures(committed, data):
    """Every uniform and n-gram row, intervals, spelled bits and per-article sums included (fit times aside)."""
    word_vocab = Vocab((t for s in data.train["words"] for t in s), min_count=2)
    spell = L.spelling_model(data.train["words"], word_vocab)
    for entry in (e for e in L.ENTRIES if not e.recipe):
        model, made = L.build(entry, data)
        test, logprob, bits = L.score(entry, model, data, spell if entry.tokens == "words" else None)
        tokens = np.array([len(s) + 1 for s in data.test[entry.tokens]])
        row = _row(committed, entry.name)
        _same(test, row["test"], entry.name)
        _same(L.by_article(logprob, bits, tokens, data), row["articles"], entry.name)
        assert made.get("n-grams") == row.get("n-grams") and made["description"] == row["description"]


def test_a_neural_row_recomputes_to_the_committed_figures(committed, data):
    """The cheapest checkpoint, the character LSTM, end to end (its log's figures included)."""
    entry = next(e for e in L.ENTRIES if e.recipe == "lstm_chars_wiki")
    model, made = L.build(entry, data)
    test, _, _ = L.score(entry, model, data)
    row = _row(committed, entry.name)
    assert made["training"] == row["training"] and made["parameters"] == row["parameters"]
    assert abs(test["logprob"] - row["test"]["logprob"]) < 1e-6 * abs(row["test"]["logprob"])  # float32 sums
    assert abs(test["bpc"] - row["test"]["bpc"]) < 1e-5


def test_the_league_s_figures_are_those_the_model_chapters_print(committed):
    checked = L.printed_in_chapters(committed)
    printed_nowhere = {"uniform, characters", "unigram, characters", "Kneser-Ney 3-gram, characters"}
    assert {c["model"] for c in checked} == {e.name for e in L.ENTRIES} - printed_nowhere
    wrong = [c for c in checked if c["same"] != "yes"]
    assert not wrong, wrong


def test_a_figure_that_differs_from_its_chapter_is_caught(committed):
    altered = copy.deepcopy(committed)
    _row(altered, "LSTM, words")["test"]["perplexity"] += 0.2
    checked = {c["model"]: c["same"] for c in L.printed_in_chapters(altered)}
    assert checked["LSTM, words"] == "NO" and checked["GPT, modern block, words"] == "yes"


def test_the_appendix_table_is_rendered_from_the_committed_results(committed):
    assert L.MARKDOWN.read_text(encoding="utf-8") == L.markdown(committed), f"rerun {L.COMMAND}"


def test_the_greedy_experiment_recomputes(committed, data):
    """The 5-gram's continuations of every prompt, and every model's measures from its continuations."""
    greedy = committed["greedy"]
    assert greedy["settings"] == json.loads(json.dumps(dataclasses.asdict(L.GREEDY)))
    kn5 = NGramLM(5, "kneser_ney", min_count=2).fit(data.train["words"])
    prompts = L.greedy_prompts(data.test["words"], kn5.vocab)
    assert [" ".join(p) for p in prompts] == greedy["prompts"]
    continuations, finished = L.greedy_continuations(kn5, prompts)
    saved = greedy["models"]["Kneser-Ney 5-gram, words"]["continuations"]
    assert [" ".join(c) + ("" if f else " …") for c, f in zip(continuations, finished, strict=True)] == saved
    seen = {g for s in data.train["words"] for g in L.ngrams(s, L.GREEDY.n)}
    for name, result in greedy["models"].items():
        texts = result["continuations"]
        ended = [not t.endswith(" …") for t in texts]
        tokens = [t.removesuffix(" …").split() for t in texts]
        measures = L.continuation_measures(prompts, tokens, ended, seen)
        _same({k: round(v, 4) for k, v in measures.items()}, result["measures"], name)


# --- the pieces, on toy data --------------------------------------------------------------------------------

TOY = [["the", "cat", "sat"], ["a", "dog", "sat", "down"], [], ["the", "dog"], ["zebra", "the", "quagga"]]


def test_sentence_logprobs_are_each_sentence_s_total_logprob():
    model = NGramLM(2, "kneser_ney").fit(TOY[:4])
    per_sentence = L.sentence_logprobs(model, TOY, batch_size=2)
    assert per_sentence.shape == (len(TOY),)
    for s, lp in zip(TOY, per_sentence, strict=True):
        assert abs(lp - total_logprob(model, [s])[0]) < 1e-9


def test_spelling_adds_each_unknown_word_s_spelling_and_nothing_else():
    vocab = Vocab(["the", "cat", "sat", "the"], min_count=1)
    spell = L.spelling_model([["zebra", "the", "dog"], ["quagga", "dog"]], vocab)
    assert spell.order == L.SPELLING_ORDER
    got = L.spelling_logprobs(spell, TOY, vocab)
    for s, lp in zip(TOY, got, strict=True):
        unknown = [list(w) for w in s if w not in vocab]
        want = sum(total_logprob(spell, [w])[0] for w in unknown)
        assert abs(lp - want) < 1e-9 and (lp < 0) == bool(unknown)
    # the bits of a word model with its unknown words spelled: more than as scored
    model = UniformLM(vocab)
    as_scored = L.sentence_logprobs(model, TOY)
    assert np.all(as_scored + got <= as_scored)


def test_the_intervals_are_the_bootstrap_of_the_corpus_measure():
    """Indexing arrays by resampled positions gives what the plain bootstrap over (ln P, size) pairs gives."""
    rng = np.random.default_rng(0)
    logprob, size = -rng.uniform(5, 50, 40), rng.integers(2, 20, 40)
    got = L.sentence_interval(L.perplexity_of, logprob, size)
    want = bootstrap_interval(list(zip(logprob, size, strict=True)),
                              lambda items: math.exp(-sum(a for a, _ in items) / sum(b for _, b in items)),
                              n_resamples=L.N_RESAMPLES)
    assert np.allclose([got.estimate, got.low, got.high], [want.estimate, want.low, want.high], rtol=1e-12)
    assert got.estimate == L.perplexity_of(logprob, size)
    other = logprob - rng.uniform(0, 3, 40)
    pair = L.compare("a", "b", "bpc", {"a": (logprob, logprob, size), "b": (other, other, size)},
                     size)
    plain = paired_bootstrap(list(zip(logprob, size, strict=True)), list(zip(other, size, strict=True)),
                             lambda items: -sum(a for a, _ in items) / math.log(2) / sum(b for _, b in items),
                             n_resamples=L.N_RESAMPLES, two_sided=True)
    assert np.allclose([pair["difference"], *pair["95%"]], [plain.difference, plain.low, plain.high], atol=1e-6)
    assert pair["p"] == plain.p_value


def test_loops_and_copies_are_counted_as_documented():
    assert L.loops("a b c d a b c d".split()) and not L.loops("a b c d a b c e".split())
    seen = set(L.ngrams("x y z w v".split(), 4))
    # the 4-grams ending in a generated token: x y z w, y z w v (both in the training text) and z w v q
    assert L.copied(["x", "y", "z"], ["w", "v", "q"], seen) == (2, 3)
    assert L.copied(["a", "x"], ["y", "z", "w"], seen) == (1, 2)  # a x y z is not in it; x y z w is
    assert L.copied(["x", "y"], [], seen) == (0, 0)


def test_command_line_check_says_what_is_stale(committed, tmp_path, capsys):
    altered = copy.deepcopy(committed)
    altered["inputs"]["recipes"]["mlp_wiki"] = "stale"
    path = tmp_path / "league.json"
    path.write_text(json.dumps(altered), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        L.main(["--check", "--out", str(path)])
    assert exit_.value.code == 1 and "recipes mlp_wiki" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        L.main(["--check", "--out", str(tmp_path / "missing.json")])
    assert "does not exist" in capsys.readouterr().err
