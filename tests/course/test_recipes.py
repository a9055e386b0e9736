"""lmlib.course.recipes: every recipe trains and loads back, the committed checkpoints match their hashes and their
recipes, the command line."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from lmlib.course import recipes as R

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_bpe_sentences_spell_the_character_sentences_texts():
    """The "bpe" tokenization covers the same texts as "chars", so bits per character compare across them."""
    bpe = R.bpe_tokenizer("wiki")
    assert R.bpe_tokenizer("wiki") is bpe and bpe.vocab_size == R.BPE_VOCAB_SIZE
    pieces, chars = R.bpe_sentences("wiki", "valid"), R.character_sentences("wiki", "valid")
    assert len(pieces) == len(chars)
    assert all(bpe.tokenizer.decoder.decode(p) == "".join(c) for p, c in zip(pieces, chars, strict=True))
    assert sum(map(len, pieces)) < sum(map(len, chars)) / 3  # merges: over 3 characters a token


def test_the_translation_recipe_reads_the_numerals_pairs_with_their_shared_vocabulary():
    from lmlib.numerals import shared_vocab

    vocab, train_rows, valid_rows = R.recipe_data(R.RECIPES["seq2seq_numerals_en_zh"])
    splits = R.numeral_splits()
    assert vocab.itos == shared_vocab(splits["train"]).itos  # one character vocabulary for both languages
    assert (len(train_rows), len(valid_rows)) == (len(splits["train"]), len(splits["valid"]))
    source = train_rows[0, : len(splits["train"][0].en)]
    assert "".join(vocab.decode(source)) == splits["train"][0].en  # rows of (English, Chinese) pairs


def test_the_other_translation_recipes_read_the_pairs_reversed_or_the_short_ones():
    from lmlib.numerals import token_pairs, tokenize

    splits = R.numeral_splits()
    vocab, train_rows, _ = R.recipe_data(R.RECIPES["seq2seq_numerals_zh_en"])
    source = train_rows[0, : len(splits["train"][0].zh)]
    assert "".join(vocab.decode(source)) == splits["train"][0].zh  # rows of (Chinese, English) pairs
    short = R.PAIR_TOKENIZATIONS["chars_en_zh_short"]("numerals", "train")
    kept = token_pairs([p for p in splits["train"] if len(tokenize(p.en)) <= R.SHORT_SOURCE])
    assert short == kept and 0 < len(kept) < len(splits["train"])  # the en_zh pairs, the long sources left out
    vocab, train_rows, _ = R.recipe_data(R.RECIPES["seq2seq_numerals_en_zh_short"])
    assert len(train_rows) == len(kept)
    assert set(vocab.itos) == set(R.recipe_data(R.RECIPES["seq2seq_numerals_en_zh"])[0].itos)  # no character lost


VALIDATION_TOKENS = 2048  # rows, for a translation recipe: the few-step runs' end-of-run evaluation reads these


@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory) -> dict[str, Path]:
    """Every recipe, trained for 3 steps of its schedule (evaluated on its first validation tokens), each in a folder.

    Recipes on the same corpus and tokenization get the same sentence lists, tokenized once here (tokenizing is
    deterministic and nothing modifies the lists): People's Daily's characters alone take 6 s a time.
    """
    runs = {}
    recipe_data = R.recipe_data

    def first_of_validation(recipe):  # evaluating all of it was most of each 3-step run's time (4 minutes in all)
        vocab, train, valid = recipe_data(recipe)
        return vocab, train, valid[:VALIDATION_TOKENS]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(R, "character_sentences", functools.cache(R.character_sentences))  # "bpe" reads it too
        for key, tokenize in R.TOKENIZATIONS.items():
            patch.setitem(R.TOKENIZATIONS, key, R.character_sentences if key == "chars" else functools.cache(tokenize))
        patch.setattr(R, "recipe_data", first_of_validation)
        for name, recipe in R.RECIPES.items():
            runs[name] = tmp_path_factory.mktemp(name)
            R.run_recipe(recipe, out=runs[name], max_steps=3, progress=False)
    return runs


@pytest.mark.parametrize("name", sorted(R.RECIPES))
def test_every_recipe_trains_a_few_steps_and_loads_back(name, recipe_runs):
    log = json.loads((recipe_runs[name] / f"{name}.json").read_text())
    assert log["step"][-1] == 3 and log["recipe"] == name and log["parameters"] > 0
    assert math.isfinite(log["valid_ppl"][-1])
    assert (recipe_runs[name] / f"{name}.pt").stat().st_size <= 5_000_000  # small enough to commit
    model = R.load_checkpoint(name, recipe_runs[name])
    assert model.history["step"][-1] == 3
    assert type(model).__name__ == type(R.build_model(R.RECIPES[name], model.vocab)).__name__


def test_load_checkpoint_checks_the_hash_and_says_how_to_regenerate(tmp_path, recipe_runs):
    name = sorted(R.RECIPES)[0]
    with pytest.raises(FileNotFoundError, match=f"python -m lmlib.course.recipes {name}"):
        R.load_checkpoint(name, tmp_path)
    for suffix in (".pt", ".pt.sha256"):
        (tmp_path / f"{name}{suffix}").write_bytes((recipe_runs[name] / f"{name}{suffix}").read_bytes())
    data = bytearray((tmp_path / f"{name}.pt").read_bytes())
    data[-100] ^= 1
    (tmp_path / f"{name}.pt").write_bytes(bytes(data))
    regenerate = f"altered or corrupt; regenerate it with: python -m lmlib.course.recipes {name}"
    with pytest.raises(ValueError, match=regenerate):
        R.load_checkpoint(name, tmp_path)


def test_a_checkpoint_made_by_another_recipe_is_refused(recipe_runs, monkeypatch):
    name = sorted(R.RECIPES)[0]
    changed = dataclasses.replace(R.RECIPES[name], train=dataclasses.replace(R.RECIPES[name].train, steps=7))
    monkeypatch.setitem(R.RECIPES, name, changed)
    with pytest.raises(ValueError, match=rf"not made by recipe '{name}' as it stands \(steps: file \d+ vs recipe 7\)"):
        R.load_checkpoint(name, recipe_runs[name])


def test_code_characters_keep_every_character_of_each_top_level_block():
    from lmlib.data import load_python_blocks

    blocks = R.code_characters("python_stdlib", "valid")
    assert ["".join(b) for b in blocks] == load_python_blocks("valid")
    with pytest.raises(ValueError, match="reads the corpus 'python_stdlib'"):
        R.code_characters("wiki", "valid")


def test_a_stdlib_checkpoint_records_the_stdlib_and_warns_on_another(recipe_runs, monkeypatch):
    from lmlib.data import stdlib_fingerprint

    name = "gpt_chars_python_stdlib"
    log = json.loads((recipe_runs[name] / f"{name}.json").read_text())
    assert log["corpus"] == stdlib_fingerprint() and log["corpus"]["python"] == f"{sys.version_info.major}." \
        f"{sys.version_info.minor}.{sys.version_info.micro}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same stdlib: no warning
        assert R.load_checkpoint(name, recipe_runs[name]).history["corpus"] == log["corpus"]
    other = {**log["corpus"], "python": "3.99.0", "text_sha256": "0" * 64}
    monkeypatch.setitem(R.CORPUS_FINGERPRINTS, "python_stdlib", lambda: other)
    with pytest.warns(R.CorpusChangedWarning, match=r"as Python \d+\.\d+\.\d+ ships it, and this machine's copy "
                      r"differs \(checkpoint vs here: python: .* vs 3\.99\.0, text_sha256: .*\).*retrain: "
                      rf"python -m lmlib.course.recipes {name}"):
        R.load_checkpoint(name, recipe_runs[name])


def test_committed_checkpoints_match_their_recorded_hashes():
    for name in R.RECIPES:
        model = R.load_checkpoint(name)  # raises if missing or altered
        assert model.history["step"][-1] == R.RECIPES[name].train.steps


def test_cli_lists_recipes_and_refuses_unknown_ones():
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "lmlib.course.recipes", *args], capture_output=True, text=True,
                              env=ENV)

    out = cli("--list")
    assert out.returncode == 0 and all(name in out.stdout for name in R.RECIPES)
    bad = cli("nope")
    assert bad.returncode == 2 and "no recipe named 'nope'" in bad.stderr


def test_a_bf16_run_trains_records_its_dtype_and_loads_back(tmp_path, monkeypatch):
    """--dtype bf16 (lmlib.train.training_precision; tests/test_train.py checks its arithmetic): the recipe runs, its
    log and checkpoint say bf16, the weights load back as the recipe's model. The CLI refuses another dtype."""
    recipe_data = R.recipe_data

    def first_of_validation(recipe):  # as recipe_runs: the end-of-run evaluation reads the first tokens only
        vocab, train, valid = recipe_data(recipe)
        return vocab, train, valid[:VALIDATION_TOKENS]

    monkeypatch.setattr(R, "recipe_data", first_of_validation)
    name = "gpt_chars_wiki"
    R.run_recipe(R.RECIPES[name], out=tmp_path, max_steps=2, progress=False, dtype="bf16")
    log = json.loads((tmp_path / f"{name}.json").read_text())
    assert log["dtype"] == "bf16" and log["step"][-1] == 2 and math.isfinite(log["valid_ppl"][-1])
    model = R.load_checkpoint(name, tmp_path)
    assert model.history["dtype"] == "bf16" and "forward" not in vars(model)
    bad = subprocess.run([sys.executable, "-m", "lmlib.course.recipes", name, "--dtype", "fp16"],
                         capture_output=True, text=True, env=ENV)
    assert bad.returncode == 2 and "invalid choice: 'fp16'" in bad.stderr
