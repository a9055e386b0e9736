"""lmlib.course.dpo_runs: a tiny run goes end to end (samples, pairs, a beta sweep, scores, a saved policy that
loads back and is the one scored), the committed results were made with the module's settings, the committed model
matches its SHA-256 and writes the answers recorded for it, and the command line refuses what it does not know."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmlib.course import dpo_runs as DR
from lmlib.course import sft_runs as SR
from lmlib.sft import respond
from lmlib.transformer import GPT

ROOT = Path(DR.__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TINY = dataclasses.replace(DR.QUICK, train_records=6, valid_records=3, test_records=4, samples=2, betas=(0.1, 1.0),
                           kl_samples=2, training=dataclasses.replace(DR.QUICK.training, steps=2, batch_size=2,
                                                                      warmup=1, eval_every=2, log_every=1))


@pytest.fixture(scope="module")
def tokenizer():
    return SR.base_model()[0]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dpo")
    return out, DR.run(TINY, out)


def check_results(result: dict, settings: DR.Settings) -> None:
    """The JSON's structure: every beta's DPO metrics, KL and scores, the kept beta the validation records pick."""
    result = json.loads(json.dumps(result))  # as the file holds it
    assert result["run"] == DR.NAME and result["base"] == DR.BASE
    assert result["settings"] == json.loads(json.dumps(dataclasses.asdict(settings)))
    assert [row["beta"] for row in result["betas"]] == list(settings.betas)
    for split in ("train", "valid"):
        data = result["data"][split]
        assert data["records"] == getattr(settings, f"{split}_records") and 0 < data["pairs"] <= data["records"]
        assert sum(data["chosen_from"].values()) == sum(data["rejected_from"].values()) == data["pairs"]
        assert set(data["chosen_from"]) <= {"sample", "reference"}
        assert set(data["rejected_from"]) <= {"sample", "corrupted"}
    for row in result["betas"]:
        pairs = row["valid_pairs"]
        margin = pairs["chosen_reward"] - pairs["rejected_reward"]  # the means of float32 rewards
        assert math.isclose(pairs["margin"], margin, rel_tol=1e-5, abs_tol=1e-7)
        assert 0 <= pairs["accuracy"] <= 1 and pairs["loss"] > 0 and math.isfinite(row["kl"])
        assert row["history"]["step"][-1] == settings.training.steps
        test = row["test"]
        assert sum(f["records"] for f in test["families"].values()) == result["data"]["test"]["records"]
        assert "last" not in row["valid"]["exact_match"]  # held out of SFT and DPO: no validation record
    picked = max(result["betas"], key=lambda row: row["valid"]["exact_match_trained_families"])
    assert result["best_beta"] == picked["beta"]


def check_kept_model(model: GPT, result: dict, tokenizer) -> None:
    """The saved policy writes the kept beta's recorded test answers."""
    records = {r.id: r for r in SR.scored_records(tokenizer)}
    kept = next(row for row in result["betas"] if row["beta"] == result["best_beta"])
    for examples in kept["test"]["examples"].values():
        for example in examples:
            question = records[example["id"]].messages(with_answer=False)
            assert respond(model, tokenizer, question) == example["answer"], example["id"]


def test_a_tiny_run_goes_end_to_end_and_saves_the_policy_it_scored(tiny_run, tokenizer):
    out, result = tiny_run
    check_results(result, TINY)
    path = out / f"{DR.NAME}.pt"
    assert path.stat().st_size <= 5_000_000
    model = DR.load_model(out, TINY.training)
    assert type(model) is GPT and model.config.dropout == 0.0
    sft = SR.load_model(DR.BASE)
    assert model.vocab.itos == sft.vocab.itos
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), sft.state_dict().values(),
                                                        strict=True))  # it trained
    check_kept_model(model, result, tokenizer)


def test_the_policy_and_the_reference_start_as_the_sft_model_without_dropout(tokenizer):
    _, policy = DR.sft_model()
    sft = SR.load_model(DR.BASE)
    assert policy.config == dataclasses.replace(sft.config, dropout=0.0) and not policy.training
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), sft.state_dict().values(),
                                                  strict=True))
    question = SR.scored_records(tokenizer)[0].messages(with_answer=False)
    assert respond(policy, tokenizer, question) == respond(sft, tokenizer, question)


def test_subsets_are_seeded_and_keep_the_order():
    records = list(range(100))
    part = DR.subset(records, 10)
    assert part == sorted(part) and len(set(part)) == 10 and part == DR.subset(records, 10)
    assert part != DR.subset(records, 10, seed=1)
    assert DR.subset(records, None) == records == DR.subset(records, 500)


def test_the_committed_results_were_made_with_the_modules_settings(tokenizer):
    result = DR.load_results()
    check_results(result, DR.FULL)
    assert result["data"]["test"]["records"] == len(SR.scored_records(tokenizer))  # the SFT table's test split
    assert result["sft"]["test"] == DR.exact_matches(SR.load_results(DR.BASE)["test"])


def test_the_committed_model_matches_its_digest_and_is_the_one_scored(tokenizer):
    path = DR.CHECKPOINTS / f"{DR.NAME}.pt"
    assert path.stat().st_size <= 5_000_000
    check_kept_model(DR.load_model(), DR.load_results(), tokenizer)  # load_model checks the SHA-256 first


def test_an_altered_model_file_is_refused(tmp_path):
    for suffix in (".pt", ".pt.sha256"):
        shutil.copy(DR.CHECKPOINTS / f"{DR.NAME}{suffix}", tmp_path / f"{DR.NAME}{suffix}")
    with (tmp_path / f"{DR.NAME}.pt").open("ab") as f:
        f.write(b"0")
    with pytest.raises(ValueError, match="altered or corrupt; regenerate it with: python -m lmlib.course.dpo_runs"):
        DR.load_model(tmp_path)
    (tmp_path / f"{DR.NAME}.pt.sha256").unlink()
    with pytest.raises(FileNotFoundError, match="or its .sha256 is missing"):
        DR.load_model(tmp_path)


def test_cli_refuses_unknown_options():
    out = subprocess.run([sys.executable, "-m", "lmlib.course.dpo_runs", "--betas", "1"], capture_output=True,
                         text=True, env=ENV)
    assert out.returncode != 0 and "unrecognized arguments: --betas" in out.stderr
