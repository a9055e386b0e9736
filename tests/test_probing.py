"""lmlib.probing: every layer's states equal Hugging Face's ``output_hidden_states`` for the same weights (GPT-2
and Llama blocks), the control task is one label per type drawn from the label distribution, a probe reads a
planted linear property and not random labels, and the grouped bootstrap equals lmlib.metrics.bootstrap_interval
over the groups."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from lmlib import probing as P
from lmlib.metrics import bootstrap_interval
from lmlib.transformer import GPT, MODERN_BLOCK, GPTConfig


@pytest.mark.parametrize("block", [{}, MODERN_BLOCK], ids=["gpt2", "modern"])
def test_layer_states_equal_hugging_faces_hidden_states(block):
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=50, block_size=16, d_model=32, n_layers=3, n_heads=4, **block)).eval()
    ids = torch.randint(0, 50, (2, 11))
    states = P.layer_states(gpt, ids)  # [L + 1, B, T, d]
    assert states.shape == (4, 2, 11, 32)
    with torch.no_grad():
        theirs = gpt.to_hf()(ids, output_hidden_states=True).hidden_states  # the last one after the final norm
    for layer in range(3):
        assert torch.allclose(states[layer], theirs[layer], atol=1e-5), layer
    assert torch.allclose(gpt.final_norm(states[3]), theirs[3], atol=1e-5)
    assert torch.allclose(gpt.final_norm(states[3]), gpt.hidden_states(ids)[0], atol=1e-6)
    assert not gpt.drop._forward_hooks and not any(b._forward_hooks for b in gpt.blocks)  # hooks removed


def test_tagged_sentences_give_each_character_its_words_tag():
    paragraph = [("在", "p"), ("１９９８年", "t"), ("来临", "v"), ("。", "w"), ("中国", "ns"), ("人民", "n")]
    assert P.tagged_sentences([paragraph]) == [
        (list("在１９９８年来临。"), ["p", "t", "t", "t", "t", "t", "v", "v", "w"]),
        (list("中国人民"), ["n"] * 4)]  # ns -> n: the coarse tag
    assert P.tagged_sentences([paragraph], max_chars=5) == [(list("中国人民"), ["n"] * 4)]
    assert P.coarse_tag("Vg") == "v" and P.coarse_tag("nr") == "n"


def test_control_labels_one_per_type_from_the_label_distribution():
    rng = np.random.default_rng(0)
    types = [f"t{i}" for i in rng.integers(0, 4000, 20_000)]
    labels = rng.choice(["n", "v", "w"], p=[0.6, 0.3, 0.1], size=20_000).tolist()
    control = P.control_labels(types, labels, seed=1)
    assert set(control) == set(types) and control == P.control_labels(types, labels, seed=1)
    shares = Counter(control.values())
    assert abs(shares["n"] / len(control) - 0.6) < 0.03 and abs(shares["w"] / len(control) - 0.1) < 0.02
    with pytest.raises(ValueError, match="one per token"):
        P.control_labels(["a"], ["n", "v"])


def test_a_probe_reads_a_planted_direction_and_not_random_labels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1200, 16))
    planted = np.where(x[:, 3] + x[:, 7] > 0, "yes", "no")  # linear in the features
    noise = rng.choice(["yes", "no"], size=1200)
    for labels, low, high in [(planted, 0.95, 1.0), (noise, 0.35, 0.65)]:
        probe = P.fit_probe(x[:800], labels[:800])
        accuracy = np.mean(probe.predict(x[800:]) == labels[800:])
        assert low <= accuracy <= high


def test_grouped_interval_is_the_bootstrap_over_groups():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2, 600).astype(float)
    groups = np.repeat(rng.permutation(60), rng.multinomial(600 - 60, [1 / 60] * 60) + 1)  # groups of unequal size
    got = P.grouped_mean_interval(values, groups, n_resamples=300, seed=2)
    items = [values[groups == g] for g in dict.fromkeys(groups.tolist())]
    want = bootstrap_interval(items, lambda chosen: np.concatenate(chosen).mean(), n_resamples=300, seed=2)
    assert (got.estimate, got.low, got.high) == pytest.approx((want.estimate, want.low, want.high), abs=1e-12)
    with pytest.raises(ValueError, match="one length"):
        P.grouped_mean_interval([1.0, 0.0], [0])


def test_token_states_are_each_sentence_read_alone():
    from lmlib.tokenize import Vocab

    vocab = Vocab(list("abcdef"), min_count=1)
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=len(vocab), block_size=16, d_model=16, n_layers=2, n_heads=2), vocab).eval()
    sentences = [list("abcab"), list("f"), list("ddeeff")]
    states = P.token_states(gpt, sentences, batch_size=2)  # padded batches
    assert states.shape == (3, 12, 16)
    alone = np.concatenate([P.layer_states(gpt, torch.tensor([[vocab.bos_id, *vocab.encode(s)]]))[:, 0, 1:].numpy()
                            for s in sentences], axis=1)
    assert np.allclose(states, alone, atol=1e-5)
