"""lmlib.course.distillation_runs: the committed results were made with the code's settings, its bits per character
are lmlib.lm's, and the command line."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from lmlib.course import distillation_runs as DR
from lmlib.course import scaling_runs as SR
from lmlib.course.recipes import character_sentences, load_checkpoint
from lmlib.lm import bits_per_character
from lmlib.tokenize import char_tokenize
from lmlib.transformer import GPT


@pytest.fixture(scope="module")
def committed() -> dict:
    return DR.load_results()


def test_the_committed_results_were_made_with_the_code_s_settings(committed):
    assert committed["teacher"] == DR.TEACHER and committed["max_steps"] is None
    assert committed["students"] == {name: list(v) for name, v in DR.STUDENTS.items()}
    assert tuple(committed["student"].values()) == DR.STUDENT
    assert committed["training"] == json.loads(json.dumps(dataclasses.asdict(SR.TRAINING)))
    test = character_sentences("wiki", "test")
    assert committed["test_sentences"] == len(test)
    assert committed["test_characters"] == sum(len(s) + 1 for s in test)
    teacher = load_checkpoint(DR.TEACHER)
    student = GPT(SR.model_config(len(teacher.vocab), *DR.STUDENT), teacher.vocab)
    models = committed["models"]
    assert list(models) == ["teacher", *DR.STUDENTS]
    assert models["teacher"]["parameters"] == teacher.num_parameters()
    for name, (weight, temperature) in DR.STUDENTS.items():
        row = models[name]
        assert (row["kl_weight"], row["temperature"]) == (weight, temperature)
        assert row["parameters"] == student.num_parameters()
        assert row["history"]["step"][-1] == SR.TRAINING.steps
        if name != "text only":
            d = row["minus_text_only"]
            assert d["difference"] == pytest.approx(row["test_bpc"] - models["text only"]["test_bpc"], abs=1e-5)
            assert d["low"] <= d["difference"] <= d["high"]


def test_the_text_only_student_is_the_scaling_run_of_its_size(committed):
    """Same configuration, data, steps and seed as lmlib.course.scaling_runs' (64, 3, 4) model: the same run."""
    scaling = next(r for r in SR.load_results()["runs"]
                   if (r["d_model"], r["n_layers"], r["n_heads"]) == DR.STUDENT)
    assert committed["models"]["text only"]["valid_loss"] == pytest.approx(scaling["valid_loss"], abs=1e-6)


def test_sentence_bits_give_lmlib_s_bits_per_character():
    teacher = load_checkpoint(DR.TEACHER)
    torch.manual_seed(0)
    model = GPT(SR.model_config(len(teacher.vocab), 16, 1, 2), teacher.vocab).eval()
    sentences = character_sentences("wiki", "test")[:20]
    bits = DR.sentence_bits(model, sentences)
    chars = np.array([len(s) + 1 for s in sentences])
    texts = ["".join(s) for s in sentences]
    expected = bits_per_character(model, texts, lambda t: char_tokenize(t, keep_spaces=True))
    assert DR.pooled_bpc(list(zip(bits, chars, strict=True))) == pytest.approx(expected, rel=1e-9)
    assert bits.shape == (20,) and (bits > 0).all() and math.isfinite(bits.sum())


def test_command_line_rejects_a_bad_step_count(capsys):
    with pytest.raises(SystemExit):
        DR.main(["--max-steps", "-1"])
    assert "positive number of steps" in capsys.readouterr().err
