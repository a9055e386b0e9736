"""lmlib.train: batching, schedule, the loop's determinism, exact resume, DDP, bad input."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from lmlib import train as T
from lmlib.checkpoint import read_checkpoint
from lmlib.mlp import MLPConfig
from lmlib.neural import NeuralLM, log_softmax
from lmlib.tokenize import Vocab
from tests.train_script import toy_setup

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "train_script.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


# --- batching ------------------------------------------------------------------------------------

def test_random_windows_are_contiguous_seeded_and_in_range():
    stream = torch.arange(100)
    w = T.random_windows(stream, 6, 10, torch.Generator().manual_seed(1))
    assert w.shape == (6, 11)
    assert torch.equal(w - w[:, :1], torch.arange(11).expand(6, -1))  # consecutive integers: contiguous
    assert int(w.min()) >= 0 and int(w.max()) <= 99
    again = T.random_windows(stream, 6, 10, torch.Generator().manual_seed(1))
    other = T.random_windows(stream, 6, 10, torch.Generator().manual_seed(2))
    assert torch.equal(w, again) and not torch.equal(w, other)
    starts = torch.cat([T.random_windows(stream, 50, 10, torch.Generator().manual_seed(s))[:, 0] for s in range(20)])
    assert int(starts.max()) == 89  # the last possible window is reachable


def test_sequential_lanes_continue_row_by_row():
    stream = torch.arange(103)
    batches = list(T.sequential_lanes(stream, 4, 5))  # lanes of 25 tokens
    assert [tuple(b.shape) for b in batches] == [(4, 6)] * 4
    assert batches[0][:, 0].tolist() == [0, 25, 50, 75]
    for before, after in zip(batches, batches[1:], strict=False):
        assert torch.equal(after[:, 0], before[:, -1])  # the next batch starts where this one ended
        assert torch.equal(after[:, 1], before[:, -1] + 1)
    assert batches[-1][:, -1].tolist() == [20, 45, 70, 95]


def test_lr_warms_up_linearly_then_follows_a_cosine_down_to_its_floor():
    config = T.TrainConfig(steps=110, lr=1.0, warmup=10, min_lr_ratio=0.1)
    lrs = [T.lr_at(s, config) for s in range(110)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5)  # half way: the cosine's midpoint
    assert T.lr_at(110, config) == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))


def test_no_weight_decay_on_biases_norms_and_embeddings():
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 4), nn.LayerNorm(4))
    decay, no_decay = T.param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p is model[1].weight for p in decay["params"]] == [True]
    assert {id(p) for p in no_decay["params"]} == {id(model[0].weight), id(model[1].bias),
                                                   id(model[2].weight), id(model[2].bias)}


# --- the loop ------------------------------------------------------------------------------------

def test_training_lowers_the_loss_and_records_a_history():
    model, train_stream, valid_stream, config = toy_setup(steps=40)
    history = T.train(model, train_stream, valid_stream, config, progress=False)
    assert history["step"] == list(range(1, 41))
    assert history["eval_step"] == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
    assert history["valid_loss"][-1] < history["valid_loss"][0] - 0.3
    assert history["valid_ppl"][-1] == pytest.approx(math.exp(history["valid_loss"][-1]))
    assert history["lr"][:3] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2])
    assert history["tokens"] == sorted(history["tokens"]) and history["tokens"][0] > 0
    json.dumps(history)  # plain data


def test_tokens_count_every_predicted_target_whatever_the_logging_interval():
    model, train_stream, _, config = toy_setup(steps=12)
    config = dataclasses.replace(config, log_every=5)
    history = T.train(model, train_stream, None, config, progress=False)
    assert history["step"] == [4, 5, 8, 10, 12]  # every log_every steps, and where it evaluates or ends
    expected, counted = [], 0
    for step in range(12):  # replay the batches: targets that are neither <bos>/<pad> nor before the context
        window = T.random_windows(train_stream, 8, 16, torch.Generator().manual_seed(step))
        y = window[:, 1:][:, model.context_size - 1 :]
        counted += int(((y != model.vocab.bos_id) & (y != model.vocab.pad_id)).sum())
        expected.append(counted)
    assert history["tokens"] == [expected[s - 1] for s in history["step"]]
    assert history["cpu_seconds"][-1] > 0


def test_valid_perplexity_is_lmlib_lm_perplexity_of_the_same_sentences():
    from lmlib import lm
    from tests.train_script import toy_corpus

    model, train_stream, valid_stream, config = toy_setup(steps=4)
    history = T.train(model, train_stream, valid_stream, config, progress=False)
    assert history["valid_ppl"][-1] == pytest.approx(lm.perplexity(model, toy_corpus(30, 2)), rel=1e-12)


def test_same_seed_same_loss_curve_and_another_seed_another():
    curves = []
    for seed in (0, 0, 1):
        model, train_stream, valid_stream, config = toy_setup(dropout=0.1)
        history = T.train(model, train_stream, None, dataclasses.replace(config, seed=seed), progress=False)
        curves.append(history["train_loss"])
    assert curves[0] == curves[1]
    assert curves[0] != curves[2]


def test_resume_in_a_fresh_process_is_bit_for_bit_the_uninterrupted_run(tmp_path):
    def run(*args):
        subprocess.run([sys.executable, str(SCRIPT), *args, "--dropout", "0.1"], check=True, env=ENV, cwd=ROOT)

    run(str(tmp_path / "straight.pt"))  # 12 steps
    run(str(tmp_path / "first.pt"), "--steps", "5", "--state", str(tmp_path / "state.pt"))
    run(str(tmp_path / "resumed.pt"), "--resume", str(tmp_path / "state.pt"), "--state", str(tmp_path / "s2.pt"))
    straight, resumed = (torch.load(tmp_path / f, weights_only=True) for f in ("straight.pt", "resumed.pt"))
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    assert straight["history"]["train_loss"] == resumed["history"]["train_loss"]
    # The interrupted run also evaluated where it stopped (step 5); every other evaluation is the same.
    valid = [dict(zip(r["history"]["eval_step"], r["history"]["valid_loss"], strict=True)) for r in (straight, resumed)]
    assert valid[1].pop(5) and valid[0] == valid[1]


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo is tested on Linux")
def test_torchrun_two_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    # Each rank reads its half of every global batch, and the loss is scaled so the averaged gradient is the
    # global-batch mean: the runs differ only in the order of floating-point additions (gloo's all-reduce),
    # so we allow 1e-5 relative, far below the loss changes of one step (about 1e-2).
    torchrun = Path(sys.executable).parent / "torchrun"
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "one.pt")], check=True, env=ENV, cwd=ROOT)
    subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", str(SCRIPT), str(tmp_path / "two.pt")],
                   check=True, env=ENV, cwd=ROOT, capture_output=True)
    one, two = (torch.load(tmp_path / f, weights_only=True)["history"] for f in ("one.pt", "two.pt"))
    assert len(one["train_loss"]) == len(two["train_loss"]) == 12
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
    assert two["valid_loss"] == pytest.approx(one["valid_loss"], rel=1e-5)
    assert one["train_loss"][-1] < one["train_loss"][0] - 0.1  # it trained


def test_more_ranks_than_the_batch_splits_into_is_refused(monkeypatch):
    model, train_stream, valid_stream, config = toy_setup(batch=8)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="does not split over 3 ranks.*nproc_per_node"):
        T.train(model, train_stream, valid_stream, config, progress=False)


class ToyRNN(NeuralLM):
    """A minimal recurrent LM, to exercise the sequential layout (state carried across batches)."""

    takes_state = True

    def __init__(self, vocab: Vocab):
        super().__init__()
        self.register_vocab(vocab, len(vocab))
        self.config = MLPConfig(len(vocab))
        self.embed, self.rnn = nn.Embedding(len(vocab), 8), nn.GRU(8, 8, batch_first=True)
        self.out = nn.Linear(8, len(vocab))

    def forward(self, ids, state=None):
        h, state = self.hidden_states(ids, state)
        return self.logits(h), state

    def hidden_states(self, ids, state=None):
        h, last = self.rnn(self.embed(ids), None if state is None else state[0])
        return h, (last,)  # the seam's state: a tuple of tensors

    def output(self, h):
        return self.out(h)

    def next_token_logprobs(self, contexts):
        return log_softmax(self(contexts)[0][:, -1])


def test_sequential_layout_carries_state_and_resumes_exactly(tmp_path):
    _, train_stream, valid_stream, config = toy_setup()
    config = dataclasses.replace(config, layout="sequential", batch_size=4, block=8, steps=30)  # > one pass
    vocab = toy_setup()[0].vocab

    def fresh():
        torch.manual_seed(0)
        return ToyRNN(vocab)

    straight = fresh()
    history = T.train(straight, train_stream, valid_stream, config, progress=False)
    assert history["valid_loss"][-1] < history["valid_loss"][0]
    first = fresh()
    T.train(first, train_stream, valid_stream, config, max_steps=13, checkpoint=tmp_path / "s.pt", progress=False)
    assert read_checkpoint(tmp_path / "s.pt")["carry"] is not None  # the state travels with the checkpoint
    resumed = fresh()
    T.train(resumed, train_stream, valid_stream, config, resume=tmp_path / "s.pt", progress=False)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


# --- precision -----------------------------------------------------------------------------------

def tiny_gpt(vocab: Vocab):
    from lmlib.transformer import GPT, GPTConfig

    torch.manual_seed(0)
    return GPT(GPTConfig(len(vocab), block_size=16, d_model=32, n_layers=2, n_heads=4, dropout=0.0), vocab)


def test_bf16_training_runs_the_matmuls_in_bf16_keeps_fp32_weights_and_lands_near_fp32():
    """training_precision("bf16"): the training forward's logits come out of a bfloat16 matrix product, evaluation's
    do not; the weights stay float32; the losses are finite, differ from float32's (the arithmetic did change) and
    end within 2 % of them. "fp32" is the plain loop, bit for bit."""
    _, train_stream, valid_stream, _ = toy_setup()
    vocab = toy_setup()[0].vocab
    config = T.TrainConfig(steps=40, batch_size=8, block=16, lr=1e-2, warmup=3, eval_every=20, log_every=1)
    x = train_stream[:16].view(1, 16)
    runs = {"plain": T.train(tiny_gpt(vocab), train_stream, valid_stream, config, progress=False)}
    for precision in T.PRECISIONS:
        model = tiny_gpt(vocab)
        with T.training_precision(model, precision), torch.no_grad():
            assert model.train()(x).dtype == (T.PRECISIONS[precision] or torch.float32)
            assert model.eval()(x).dtype == torch.float32
        with T.training_precision(model, precision):
            runs[precision] = T.train(model, train_stream, valid_stream, config, progress=False)
        assert "forward" not in vars(model) and model.train()(x).dtype == torch.float32  # the class's forward again
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert runs["fp32"] == {**runs["plain"], "seconds": runs["fp32"]["seconds"],
                            "cpu_seconds": runs["fp32"]["cpu_seconds"]}
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert all(math.isfinite(v) for v in bf16["train_loss"] + bf16["valid_loss"])
    assert bf16["train_loss"] != fp32["train_loss"]
    assert bf16["valid_loss"][-1] < 0.8 * bf16["train_loss"][0]  # it learned
    assert bf16["valid_loss"][-1] == pytest.approx(fp32["valid_loss"][-1], rel=0.02)
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        with T.training_precision(model, "fp16"):
            pass


# --- bad input -----------------------------------------------------------------------------------

def test_bad_inputs_get_errors_that_name_the_problem():
    model, train_stream, valid_stream, config = toy_setup()
    with pytest.raises(TypeError, match="must be a lmlib.neural.NeuralLM"):
        T.train(nn.Linear(2, 2), train_stream, valid_stream, config)
    with pytest.raises(ValueError, match="lr must be > 0"):
        T.train(model, train_stream, valid_stream, dataclasses.replace(config, lr=0.0))
    with pytest.raises(ValueError, match="batch_size must be an integer > 0"):
        T.train(model, train_stream, valid_stream, dataclasses.replace(config, batch_size=0))
    with pytest.raises(ValueError, match="too short for block=16: it needs at least 17"):
        T.train(model, train_stream[:10], valid_stream, config)
    with pytest.raises(ValueError, match="train_stream has 0 tokens"):
        T.train(model, train_stream[:0], valid_stream, config)
    with pytest.raises(TypeError, match="1-D LongTensor"):
        T.train(model, train_stream.float(), valid_stream, config)
    with pytest.raises(ValueError, match="layout must be 'random' or 'sequential'"):
        T.train(model, train_stream, valid_stream, dataclasses.replace(config, layout="shuffled"))


def test_a_state_that_is_not_a_tuple_of_tensors_is_refused():
    _, train_stream, valid_stream, config = toy_setup()
    model = ToyRNN(toy_setup()[0].vocab)
    model.hidden_states = lambda ids, state=None: (model.rnn(model.embed(ids))[0], "a state")
    with pytest.raises(TypeError, match="returned a state of type str: .* tuple of tensors"):
        T.train(model, train_stream, valid_stream, dataclasses.replace(config, layout="sequential", batch_size=4),
                progress=False)


def test_the_random_layout_starts_every_window_from_a_fresh_state():
    _, train_stream, valid_stream, config = toy_setup(steps=4)
    model, received = ToyRNN(toy_setup()[0].vocab), []
    read = model.hidden_states
    model.hidden_states = lambda ids, state=None: received.append(state) or read(ids, state)
    T.train(model, train_stream, None, dataclasses.replace(config, layout="random"), progress=False)
    assert len(received) == 4 and all(state is None for state in received)  # unrelated windows: no carry
