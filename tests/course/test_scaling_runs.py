"""lmlib.course.scaling_runs: the committed results are what the code's settings make, the fits recover known
laws, and the command line."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from lmlib.course import scaling_runs as SR
from lmlib.course.recipes import GPT_CHARS_WIKI, recipe_data
from lmlib.pretraining import training_tokens
from lmlib.transformer import GPT


@pytest.fixture(scope="module")
def committed() -> dict:
    return SR.load_results()


@pytest.fixture(scope="module")
def data():
    return recipe_data(GPT_CHARS_WIKI)


def test_the_committed_runs_are_the_code_s_sizes_and_settings(committed, data):
    vocab = data[0]
    assert committed["training"] == json.loads(json.dumps(dataclasses.asdict(SR.TRAINING)))
    assert committed["dropout"] == SR.DROPOUT and committed["max_steps"] is None
    assert [(r["d_model"], r["n_layers"], r["n_heads"]) for r in committed["runs"]] == list(SR.SIZES)
    for row in committed["runs"]:
        model = GPT(SR.model_config(len(vocab), row["d_model"], row["n_layers"], row["n_heads"]), vocab)
        assert row["parameters"] == model.num_parameters()
        assert row["non_embedding_parameters"] == SR.non_embedding_parameters(model)
        assert row["tokens"] == training_tokens(SR.TRAINING) == 2_048_000
        assert row["compute"] == pytest.approx(6 * row["non_embedding_parameters"] * row["tokens"])
        assert row["valid_bpc"] == pytest.approx(row["valid_loss"] / math.log(2))
        assert row["history"]["step"][-1] == SR.TRAINING.steps and row["history"]["eval_step"] == [SR.TRAINING.steps]
        assert row["valid_loss"] == pytest.approx(row["history"]["valid_loss"][-1], abs=1e-6)


def test_the_smallest_run_starts_as_committed(committed, data):
    """The first 40 steps of the smallest size, re-run: the committed training losses (the run is deterministic on
    one machine; 1e-3 allows another CPU's rounding)."""
    vocab, train_stream, valid_stream = data
    row = SR.train_size(*SR.SIZES[0], (vocab, train_stream, valid_stream[:2000]), max_steps=40)
    assert row["history"]["step"] == [20, 40] == committed["runs"][0]["history"]["step"][:2]
    assert row["history"]["train_loss"] == pytest.approx(committed["runs"][0]["history"]["train_loss"][:2], rel=1e-3)


def test_non_embedding_parameters_leave_out_the_token_and_position_tables(data):
    model = GPT(SR.model_config(len(data[0]), 32, 1, 2), data[0])
    kept = sum(p.numel() for name, p in model.named_parameters()
               if not name.startswith(("token_embedding", "position_embedding")))
    assert SR.non_embedding_parameters(model) == kept == 12_768  # 12 d^2 = 12,288, plus biases and norms


def test_the_power_law_fit_recovers_a_known_exponent():
    n = np.array([1e4, 3e4, 1e5, 3e5, 1e6, 3e6])
    exact = SR.fit_power_law(n, (8.8e13 / n) ** 0.076)  # Kaplan et al.'s L(N), in their units
    assert exact.alpha == pytest.approx(0.076, rel=1e-9) and exact.n_c == pytest.approx(8.8e13, rel=1e-6)
    assert exact.alpha_high - exact.alpha_low < 1e-9
    noisy = (2e5 / n) ** 0.1 * np.exp(np.random.default_rng(0).normal(0, 0.01, len(n)))
    fit = SR.fit_power_law(n, noisy)
    slope, _ = np.polyfit(np.log(n), np.log(noisy), 1)  # an independent least-squares line
    assert fit.alpha == pytest.approx(-slope, rel=1e-9)
    assert fit.alpha_low < 0.1 < fit.alpha_high and fit.alpha_high - fit.alpha_low < 0.03
    assert fit(n) == pytest.approx((fit.n_c / n) ** fit.alpha)


def test_the_fit_with_a_floor_recovers_the_floor_and_the_exponent():
    n = np.array([1e4, 2.5e4, 6e4, 1.5e5, 3.5e5, 8e5])
    fit = SR.fit_power_law_with_floor(n, 1.3 + (4e4 / n) ** 0.35)
    assert fit.floor == pytest.approx(1.3, rel=1e-4) and fit.alpha == pytest.approx(0.35, rel=1e-4)
    assert fit.n_c == pytest.approx(4e4, rel=1e-3)


def test_the_floor_fit_s_interval_is_t_with_three_numbers_fitted_times_the_standard_error():
    """The standard error recomputed from the residuals and a finite-difference Jacobian, s^2 (J^T J)^-1 with
    s^2 = RSS / (n - 3), against the interval's half-width divided by Student's t with n - 3 degrees of freedom."""
    from scipy import stats

    n = np.array([1e4, 2.5e4, 6e4, 1.5e5, 3.5e5, 8e5, 2e6])
    loss = (1.3 + (4e4 / n) ** 0.35) * np.exp(np.random.default_rng(1).normal(0, 0.01, len(n)))
    fit = SR.fit_power_law_with_floor(n, loss)
    assert 0 < fit.floor < loss.min()  # not at a bound

    def law(theta):
        floor, alpha, log_n_c = theta
        return floor + np.exp(alpha * (log_n_c - np.log(n)))

    theta = np.array([fit.floor, fit.alpha, math.log(fit.n_c)])
    jacobian = np.stack([(law(theta + h) - law(theta - h)) / (2 * 1e-6) for h in np.eye(3) * 1e-6], axis=1)
    variance = np.sum((loss - law(theta)) ** 2) / (len(n) - 3)
    standard_error = math.sqrt(variance * np.linalg.inv(jacobian.T @ jacobian)[1, 1])
    half = (fit.alpha_high - fit.alpha_low) / 2
    assert half / stats.t.ppf(0.975, len(n) - 3) == pytest.approx(standard_error, rel=1e-3)


def test_reads_per_character_counts_the_training_loop_s_windows():
    """Against the windows drawn as lmlib.train documents them: step s's from a generator seeded seed x 1,000,003 + s
    (lmlib.train.random_windows); and the committed runs' budget reads 0.9 of the text's length, some of it twice."""
    from lmlib.train import TrainConfig, random_windows

    config = TrainConfig(steps=7, batch_size=3, block=5, seed=2)
    counts = SR.reads_per_character(40, config)
    expected = np.zeros(40, dtype=np.int64)
    for step in range(config.steps):
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        for window in random_windows(torch.arange(40), config.batch_size, config.block, generator):
            expected[window.numpy()] += 1
    assert np.array_equal(counts, expected) and counts.sum() == 7 * 3 * 6
    with pytest.raises(ValueError, match="layout"):
        SR.reads_per_character(40, dataclasses.replace(config, layout="sequential"))


def test_bad_input_to_a_fit_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="at least 3 points"):
        SR.fit_power_law([1e4, 1e5], [2.0, 1.9])
    with pytest.raises(ValueError, match="> 0"):
        SR.fit_power_law([1e4, 1e5, 0], [2.0, 1.9, 1.8])
    with pytest.raises(ValueError, match="one length"):
        SR.fit_power_law([1e4, 1e5, 1e6], [2.0, 1.9])


def test_command_line_rejects_a_bad_step_count(capsys):
    with pytest.raises(SystemExit):
        SR.main(["--max-steps", "0"])
    assert "positive number of steps" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            SR.main(["--device", "cuda"])
