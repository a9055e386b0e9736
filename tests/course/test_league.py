"""lmlib.course.league: the committed league table is what the code makes from the recipes as they stand (their
settings, their checkpoints, the text), its cheap rows recompute to the same figures, its figures are those the
model chapters print, the appendix's table is rendered from it; and the pieces it is made of, on toy data."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import permutation_test

from lmlib import generate as G
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


def _measures_of(texts: list[str], prompts: list[list[str]], training: L.TrainingText) -> dict:
    ended = [not t.endswith(" …") for t in texts]
    tokens = [t.removesuffix(" …").split() for t in texts]
    return {k: round(v, 4) for k, v in L.continuation_measures(prompts, tokens, ended, training).items()}


def test_the_decoding_experiment_recomputes(committed, data):
    """The 5-gram's greedy continuations of every prompt and its sampled ones of the first prompts; every
    model's measures from its continuations; the test text's own measures from the test text."""
    greedy = committed["greedy"]
    assert greedy["settings"] == json.loads(json.dumps(dataclasses.asdict(L.GREEDY)))
    assert greedy["sampled"]["settings"] == json.loads(json.dumps(dataclasses.asdict(L.SAMPLING)))
    kn5 = NGramLM(5, "kneser_ney", min_count=2).fit(data.train["words"])
    prompts = L.greedy_prompts(data.test["words"], kn5.vocab)
    assert [" ".join(p) for p in prompts] == greedy["prompts"]
    continuations, finished = L.greedy_continuations(kn5, prompts)
    saved = greedy["models"]["Kneser-Ney 5-gram, words"]["continuations"]
    assert L._shown(continuations, finished) == saved
    k = L.SAMPLING.samples
    for method, top_p in L.SAMPLING.methods:
        sampled = greedy["sampled"]["methods"][method]["models"]["Kneser-Ney 5-gram, words"]["continuations"]
        assert L._shown(*L.sampled_continuations(kn5, prompts[:5], top_p)) == sampled[: 5 * k], method
    training = L.TrainingText(data.train["words"])
    for name, result in greedy["models"].items():
        _same(_measures_of(result["continuations"], prompts, training), result["measures"], name)
    repeated = [p for p in prompts for _ in range(k)]
    for method, result in greedy["sampled"]["methods"].items():
        assert set(result["models"]) == set(L.GREEDY.models)
        for name, run in result["models"].items():
            assert len(run["continuations"]) == k * len(prompts)
            _same(_measures_of(run["continuations"], repeated, training), run["measures"], f"{method} {name}")
    truth, ended = L.true_continuations(data.test["words"], kn5.vocab)
    _same(_measures_of(L._shown(truth, ended), prompts, training), greedy["test text"], "test text")


def test_the_article_comparisons_recompute(committed):
    """The paired figures over the ten articles, from the rows' per-article sums."""
    rows = {r["model"]: r for r in committed["rows"]}
    assert [(c["a"], c["b"], c["measure"]) for c in committed["comparisons"]] == list(L.PAIRS)
    for c in committed["comparisons"]:
        _same(L.article_comparison(c["a"], c["b"], c["measure"], rows), c["articles"], f"{c['a']} {c['b']}")


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


def test_repeats_and_copies_are_counted_as_documented():
    assert L.repeats_ngram("a b c d a b c d".split()) and not L.repeats_ngram("a b c d a b c e".split())
    seen = set(L.ngrams("x y z w v".split(), 4))
    # the 4-grams ending in a generated token: x y z w, y z w v (both in the training text) and z w v q
    assert L.copied(["x", "y", "z"], ["w", "v", "q"], seen) == (2, 3)
    assert L.copied(["a", "x"], ["y", "z", "w"], seen) == (1, 2)  # a x y z is not in it; x y z w is
    assert L.copied(["x", "y"], [], seen) == (0, 0)
    # distinct: a loop that repeats x y z w counts it once
    assert L.copied(["x", "y", "z"], ["w", "x", "y", "z", "w"], seen) == (1, 4)


def _longest_run_brute_force(tokens, sentences):
    runs = {tuple(s[i:j]) for s in sentences for i in range(len(s)) for j in range(i + 1, len(s) + 1)}
    return max((j - i for i in range(len(tokens)) for j in range(i + 1, len(tokens) + 1)
                if tuple(tokens[i:j]) in runs), default=0)


def test_the_longest_copied_run_is_the_brute_force_one():
    """Against every run of every training sentence, on random texts of a small alphabet (many repeats);
    a run never crosses the end of a training sentence."""
    rng = np.random.default_rng(0)
    sentences = [list(rng.choice(list("abcde"), size=rng.integers(1, 12))) for _ in range(8)]
    training = L.TrainingText(sentences, sizes=(4,))
    for _ in range(200):
        tokens = list(rng.choice(list("abcdef"), size=rng.integers(0, 15)))
        assert training.longest_copied_run(tokens) == _longest_run_brute_force(tokens, sentences), tokens
    crossing = L.TrainingText([["a", "b"], ["c", "d"]], sizes=(2,))
    assert crossing.longest_copied_run(["a", "b", "c", "d"]) == 2 and crossing.seen[2] == {("a", "b"), ("c", "d")}


def test_the_true_continuations_are_cut_as_a_decoder_is():
    """Of a sentence of 3 + 39 words the decoder could write all and its <eos> in 40 steps; of 3 + 40, not."""
    vocab = Vocab(["w"] * 2, min_count=1)
    short, long_ = ["w"] * 42, ["w"] * 43
    settings = dataclasses.replace(L.GREEDY, prompts=2)
    rests, ended = L.true_continuations([short, long_], vocab, settings)
    assert [len(r) for r in rests] == [39, 40] and ended == [True, False]


def test_sampled_continuations_are_lmlib_generate_s_samples():
    model = NGramLM(2, "kneser_ney").fit(TOY[:4])
    prompts = [["the"], ["a", "dog"]]
    got = L.sampled_continuations(model, prompts, 0.9, dataclasses.replace(L.GREEDY, max_tokens=5))
    want = [g for k, p in enumerate(prompts)
            for g in G.sample(model, p, 5, top_p=0.9, suppress=["<unk>"], num_samples=L.SAMPLING.samples,
                              generator=torch.Generator().manual_seed(L.SAMPLING.seed + k))]
    assert got == ([g.tokens for g in want], [g.finished for g in want])


def _perplexity_items(items):
    return L.perplexity_of(np.array([lp for lp, _ in items]), np.array([n for _, n in items]))


def test_the_sign_flip_test_is_the_exact_enumeration():
    """Against a brute-force count of the 2^n sign patterns of the per-item differences (for a mean), and
    against scipy.stats.permutation_test, exact, on per-article perplexities (a ratio of sums)."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 9), rng.normal(0.7, 1, 9)
    d = b - a
    brute = np.mean([abs(np.mean(np.array(signs) * d)) >= abs(d.mean()) - 1e-12
                     for signs in itertools.product((1, -1), repeat=len(d))])
    assert L.sign_flip_test(list(a), list(b), np.mean) == pytest.approx(brute, abs=0)

    tokens = rng.integers(50, 500, 10)
    lp_a = -tokens * rng.uniform(5.0, 5.6, 10)
    lp_b = lp_a + tokens * rng.uniform(-0.25, 0.05, 10)  # b better on most items, not on all
    got = L.sign_flip_test(list(zip(lp_a, tokens, strict=True)), list(zip(lp_b, tokens, strict=True)),
                           _perplexity_items)

    def statistic(x, y):
        return math.exp(-y.sum() / tokens.sum()) - math.exp(-x.sum() / tokens.sum())

    want = permutation_test((lp_a, lp_b), statistic, permutation_type="samples", n_resamples=np.inf,
                            alternative="two-sided", vectorized=False)
    assert got == pytest.approx(want.pvalue, abs=1e-12) and 0 < got < 0.5
    # one system better on every item: the smallest p there is, 2 / 2^n
    assert L.sign_flip_test([1, 2, 3], [0, 1, 2], np.mean) == 2 / 8
    with pytest.raises(ValueError, match="same items"):
        L.sign_flip_test([1, 2], [1], np.mean)
    with pytest.raises(ValueError, match="paired_bootstrap"):
        L.sign_flip_test(list(range(21)), list(range(21)), np.mean)


def test_article_slices_cut_the_split_into_its_articles_in_order(committed, data):
    """Each article's slice of the test sentences holds what the committed row counted for that article."""
    slices = L.article_slices()
    assert slices[0].start == 0 and slices[-1].stop == len(data.test["chars"])
    assert all(a.stop == b.start for a, b in zip(slices[:-1], slices[1:], strict=True))
    row = _row(committed, "Kneser-Ney 5-gram, characters")["articles"]
    assert [int(data.characters[part].sum()) for part in slices] == row["characters"]


def test_the_article_interval_resamples_whole_articles():
    rng = np.random.default_rng(2)
    logprob, size = -rng.uniform(5, 50, 30), rng.integers(2, 20, 30)
    articles = np.repeat(np.arange(6), 5)
    got = L.article_interval(L.perplexity_of, logprob, size, articles)
    per_article = [(logprob[articles == k].sum(), size[articles == k].sum()) for k in range(6)]
    want = bootstrap_interval(per_article, _perplexity_items, n_resamples=L.N_RESAMPLES)
    assert np.allclose([got.estimate, got.low, got.high], [want.estimate, want.low, want.high], rtol=1e-12)


def test_the_spelling_leak_is_the_speller_s_mass_on_the_vocabulary():
    vocab = Vocab(["the", "cat", "sat", "the"], min_count=1)
    spell = L.spelling_model([["zebra", "the", "dog"], ["quagga", "dog", "cat"]], vocab)
    want = sum(math.exp(total_logprob(spell, [list(w)])[0]) for w in ("the", "cat", "sat"))
    assert L.spelling_leak(spell, vocab) == pytest.approx(want, rel=1e-12) and 0 < want < 1


def test_the_table_says_exact_and_names_its_columns(committed):
    rows = {r["model"]: r for r in L.table_rows(committed)}
    assert rows["uniform, words"]["test PPL per word"] == "16,135 (exact)"
    assert rows["uniform, characters"]["test bits per character"] == "7.983 (exact)"
    assert L.SIZE in rows["MLP, words"] and rows["MLP, words"][L.TRAINING].endswith("3,000 steps")
    assert rows["MLP, words"][L.TRAINING].split()[2] == "CPU"  # CPU minutes first


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
