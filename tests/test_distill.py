"""lmlib.distill: the KL term equals torch's, the loss mixes it with the cross-entropy as written, and
lmlib.train trains a student with it (lambda = 0 is exactly the plain run)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from lmlib import train as T
from lmlib.distill import Distillation, kl_divergence
from lmlib.show import max_abs_difference
from lmlib.tokenize import Vocab
from lmlib.transformer import GPT, GPTConfig


def logits(seed: int, shape=(2, 3, 7)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_kl_equals_torch_s_kl_div_and_the_distributions_kl(temperature):
    student, teacher = logits(0), logits(1)
    ours = kl_divergence(student, teacher, temperature)
    by_kl_div = F.kl_div(F.log_softmax(student / temperature, -1), F.log_softmax(teacher / temperature, -1),
                         log_target=True, reduction="none").sum(-1)
    by_distributions = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=teacher / temperature),
        torch.distributions.Categorical(logits=student / temperature))
    assert ours.shape == (2, 3)
    assert max_abs_difference(ours, by_kl_div) <= 1e-12
    assert max_abs_difference(ours, by_distributions) <= 1e-12
    assert (ours >= 0).all() and kl_divergence(teacher, teacher, temperature).abs().max() <= 1e-12


def test_the_gradient_is_the_difference_of_the_distributions_over_the_temperature():
    student, teacher, tau = logits(2).requires_grad_(), logits(3), 2.0
    kl_divergence(student, teacher, tau).sum().backward()
    expected = (F.softmax(student.detach() / tau, -1) - F.softmax(teacher / tau, -1)) / tau
    assert max_abs_difference(student.grad, expected) <= 1e-12


def setup(seed: int = 0):
    vocab = Vocab(list("abcdefgh abc def") * 3, min_count=1)
    text = [list("abc def gh"), list("bad cafe"), list("head fed"), list("a bag")] * 30
    stream = T.encode_stream(vocab, text)
    torch.manual_seed(seed)
    teacher = GPT(GPTConfig(len(vocab), block_size=16, d_model=32, n_layers=2, n_heads=4, dropout=0.1,
                            reset_at_bos=True), vocab)
    torch.manual_seed(seed + 1)
    student = GPT(GPTConfig(len(vocab), block_size=16, d_model=16, n_layers=1, n_heads=2, reset_at_bos=True), vocab)
    config = T.TrainConfig(steps=12, batch_size=4, block=12, lr=1e-2, warmup=2, eval_every=6, log_every=3, seed=0)
    return vocab, stream, teacher, student, config


def test_the_loss_mixes_cross_entropy_and_temperature_squared_kl_over_the_scored_positions():
    _, stream, teacher, student, _ = setup()
    ids, targets = stream[None, :12], stream[None, 1:13].clone()
    targets[targets == student.vocab.bos_id] = -100  # as the loop leaves them out: <bos> is never predicted
    targets[0, 3] = -100
    model = Distillation(student, teacher, weight=0.3, temperature=2.0)
    s_logits = student(ids)
    ce = F.cross_entropy(s_logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")
    got = model.distillation_loss(ids, s_logits, targets, ce)
    with torch.no_grad():
        t_logits = teacher.eval()(ids)
    keep, columns = targets[0] != -100, ~student.never_predicted
    kl = F.kl_div(F.log_softmax(s_logits[0, keep][:, columns] / 2, -1),
                  F.log_softmax(t_logits[0, keep][:, columns] / 2, -1), log_target=True, reduction="sum")
    assert abs(got.item() - (0.7 * ce.item() + 0.3 * 4 * kl.item())) <= 1e-4


def test_weight_zero_trains_exactly_as_the_plain_loop():
    vocab, stream, teacher, student, config = setup()
    plain = GPT(student.config, vocab)
    plain.load_state_dict(student.state_dict())
    alone = T.train(plain, stream, stream[:200], config, progress=False)
    wrapped = T.train(Distillation(student, teacher, weight=0.0), stream, stream[:200], config, progress=False)
    assert wrapped["train_loss"] == alone["train_loss"] and wrapped["valid_loss"] == alone["valid_loss"]
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), student.state_dict().values(),
                                                 strict=True))


def test_training_on_the_teacher_moves_the_student_only_and_toward_the_teacher():
    vocab, stream, teacher, student, config = setup()
    T.train(teacher, stream, None, dataclasses.replace(config, steps=40), progress=False)  # a teacher with views
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    window, columns = stream[None, :12], ~student.never_predicted
    with torch.no_grad():
        before = kl_divergence(student.eval()(window)[..., columns], teacher.eval()(window)[..., columns]).mean()
    model = Distillation(student, teacher, weight=1.0)
    history = T.train(model, stream, stream[:200], dataclasses.replace(config, steps=30), progress=False)
    assert all(torch.equal(frozen[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training and not student.training  # the loop ends in evaluation mode
    with torch.no_grad():
        after = kl_divergence(student(window)[..., columns], teacher(window)[..., columns]).mean()
    assert after < before / 2
    assert len(history["valid_loss"]) == 5  # the student's validation loss, as for any model


def test_bad_pairs_are_refused_with_the_reason():
    vocab, _, teacher, student, _ = setup()
    other = GPT(GPTConfig(6, d_model=16, n_layers=1, n_heads=2), Vocab(list("xy"), min_count=1))
    with pytest.raises(ValueError, match="same vocabulary"):
        Distillation(other, teacher)
    with pytest.raises(ValueError, match="weight"):
        Distillation(student, teacher, weight=1.5)
    with pytest.raises(ValueError, match="temperature"):
        kl_divergence(logits(0), logits(1), temperature=0.0)
    with pytest.raises(ValueError, match="same positions"):
        kl_divergence(logits(0), logits(1, (2, 3, 8)))
