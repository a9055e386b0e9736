"""lmlib.course.memorisation_runs: the committed results are what the module's settings make (canaries, copies,
model and training), the committed models are the ones measured, the training text holds each canary's copies,
and the command line."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from lmlib.course import memorisation_runs as MR
from lmlib.course.recipes import character_sentences


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(MR.OUT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def canaries() -> list[MR.Canary]:
    return MR.make_canaries()


def test_committed_results_were_made_with_the_modules_settings(committed, canaries):
    config = committed["config"]
    assert config["copies"] == list(MR.COPIES) and config["canaries_per_count"] == MR.CANARIES_PER_COUNT
    assert config["secret_length"] == MR.SECRET_LENGTH and config["seed"] == MR.SEED
    assert config["wiki_sentences"] == MR.WIKI_SENTENCES
    assert config["model"] == MR.MODEL and config["training"] == json.loads(json.dumps(
        dataclasses.asdict(MR.TRAINING)))  # tuples come back from JSON as lists
    assert config["max_steps"] is None  # the full schedule, not a quick look
    assert config["canaries"] == [dataclasses.asdict(c) for c in canaries]
    assert set(committed["runs"]) == set(MR.RUNS)


def test_each_run_measured_every_canary_with_its_copies(committed, canaries):
    for name, run in committed["runs"].items():
        assert [r["name"] for r in run["canaries"]] == [c.name for c in canaries]
        for row, canary in zip(run["canaries"], canaries, strict=True):
            expected = canary.copies if name == "memorisation_wiki" else min(canary.copies, 1)
            assert row["copies in text"] == expected and row["secret"] == canary.secret
            assert 1 <= row["rank"] <= 10 ** MR.SECRET_LENGTH
            assert row["extracted"] == (row["greedy"] == canary.secret)
        assert run["history"]["eval_step"][-1] == MR.TRAINING.steps


def test_canaries_have_distinct_names_and_secrets(canaries):
    assert len(canaries) == len(MR.COPIES) * MR.CANARIES_PER_COUNT
    assert len({c.name for c in canaries}) == len({c.secret for c in canaries}) == len(canaries)
    assert canaries[0].text == f"{canaries[0].name}'s PIN is {canaries[0].secret}."
    # the prefix the model is asked to continue ends with the space before the secret, as in the text
    assert all(c.prefix_tokens == list(c.prefix) and c.prefix.endswith("is ") for c in canaries)


def test_training_text_holds_the_copies_and_the_wiki_text_in_order(canaries):
    texts = MR.training_texts(canaries)
    wiki = ["".join(chars) for chars in character_sentences("wiki", "train")[:MR.WIKI_SENTENCES]]
    canary_texts = {c.text for c in canaries}
    assert [t for t in texts if t not in canary_texts] == wiki
    assert all(texts.count(c.text) == c.copies for c in canaries)
    deduplicated = MR.training_texts(canaries, dedup=True)
    assert all(deduplicated.count(c.text) == min(c.copies, 1) for c in canaries)


def test_the_committed_models_are_the_ones_measured(committed, canaries):
    """One canary per run measured again from the committed model: the same rank, exposure and greedy text."""
    for name in MR.RUNS:
        model = MR.load_model(name)
        row = next(r for r in committed["runs"][name]["canaries"] if r["copies"] == 16)
        again = MR.measure(model, next(c for c in canaries if c.name == row["name"]))
        assert again["greedy"] == row["greedy"]
        assert again["exposure"] == pytest.approx(row["exposure"], abs=0.01)


def test_an_altered_model_file_is_refused(tmp_path):
    for suffix in (".pt", ".pt.sha256"):
        shutil.copy(MR.CHECKPOINTS / f"memorisation_wiki{suffix}", tmp_path / f"memorisation_wiki{suffix}")
    with (tmp_path / "memorisation_wiki.pt").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="altered or corrupt"):
        MR.load_model("memorisation_wiki", tmp_path)
    with pytest.raises(KeyError, match="no run named"):
        MR.load_model("memorisation", tmp_path)


def test_command_line_rejects_a_bad_step_count(capsys):
    with pytest.raises(SystemExit):
        MR.main(["--max-steps", "0"])
    assert "positive number of steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        MR.main(["--max-steps", "5", "--measure-only"])
    assert "give one of them" in capsys.readouterr().err
