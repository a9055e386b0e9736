"""lmlib.mlp: the Bengio MLP LM against a from-the-equation NumPy reference, and the protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmlib.lm import check_language_model, encode_batch, perplexity
from lmlib.mlp import MLPLM, MLPConfig, context_windows, hidden_layer_as_conv1d, nearest_neighbours
from lmlib.tokenize import Vocab

SENTENCES = [["the", "cat", "sat"], ["the", "dog", "sat", "on", "the", "mat"], ["a", "cat"]]


def small_model(context: int = 3, seed: int = 0) -> MLPLM:
    vocab = Vocab(w for s in SENTENCES for w in s)
    torch.manual_seed(seed)
    return MLPLM(MLPConfig(len(vocab), context=context, d_embed=5, d_hidden=7), vocab).eval()


def test_context_windows_pad_with_bos_and_never_cross_a_sentence_start():
    B = 2  # <bos> id in this test
    ids = torch.tensor([[2, 10, 11, 12, 3, 2, 13, 14]])
    windows = context_windows(ids, 3, bos_id=B)[0].tolist()
    assert windows == [
        [2, 2, 2], [2, 2, 10], [2, 10, 11], [10, 11, 12], [11, 12, 3],
        [2, 2, 2],  # a new sentence: nothing before its <bos> is seen
        [2, 2, 13], [2, 13, 14],
    ]
    mid = context_windows(torch.tensor([[20, 21, 22]]), 2, bos_id=B)[0].tolist()  # a window cut mid-sentence
    assert mid == [[2, 20], [20, 21], [21, 22]]


def reference_logprobs(model: MLPLM, sentence: list[str]) -> list[float]:
    """ln P(w_t | previous n-1 tokens) from the paper's equation, one position at a time, in float64 NumPy."""
    C = model.embed.weight.detach().double().numpy()
    H, d = model.hidden.weight.detach().double().numpy(), model.hidden.bias.detach().double().numpy()
    U, b = model.out.weight.detach().double().numpy(), model.out.bias.detach().double().numpy()
    v = model.vocab
    ids = [v.bos_id, *v.encode(sentence), v.eos_id]
    predictable = [i for i in range(len(v)) if i not in (v.pad_id, v.bos_id)]
    out = []
    for t in range(1, len(ids)):
        history = ([v.bos_id] * model.config.context + ids[:t])[-model.config.context :]
        x = np.concatenate([C[i] for i in history])
        y = b + U @ np.tanh(d + H @ x)
        y = y[predictable]
        log_z = np.log(np.exp(y - y.max()).sum()) + y.max()
        out.append(float(y[predictable.index(ids[t])] - log_z))
    return out


@pytest.mark.parametrize("context", [1, 2, 4])
def test_matches_the_equation_computed_by_hand(context):
    model = small_model(context)
    unseen = ["the", "zebra", "sat", "on", "a", "cat", "cat"]
    batch = encode_batch(model.vocab, [*SENTENCES, unseen])
    got = model.sequence_logprobs(batch)
    for row, sentence in enumerate([*SENTENCES, unseen]):
        want = reference_logprobs(model, sentence)
        assert got[row, : len(want)].double().numpy() == pytest.approx(want, abs=1e-5)


def test_follows_the_language_model_protocol_on_seen_and_unseen_text():
    model = small_model()
    check_language_model(model, [*SENTENCES, ["zebra", "on", "mat"], []])
    logp = model.next_token_logprobs(torch.tensor([[model.vocab.bos_id]]))[0]
    assert logp[model.vocab.pad_id] == -np.inf and logp[model.vocab.bos_id] == -np.inf  # never predicted
    assert np.isfinite(perplexity(model, SENTENCES))


def test_only_the_last_n_minus_1_tokens_matter():
    model = small_model(context=2)
    v = model.vocab
    a = torch.tensor([[v.bos_id, *v.encode(["the", "dog", "sat", "on"])]])
    b = torch.tensor([[v.bos_id, *v.encode(["a", "cat", "sat", "on"])]])
    assert torch.equal(model.next_token_logprobs(a), model.next_token_logprobs(b))
    c = torch.tensor([[v.bos_id, *v.encode(["a", "cat", "on", "on"])]])
    assert not torch.equal(model.next_token_logprobs(a), model.next_token_logprobs(c))


def test_gradients_match_finite_differences():
    model = small_model().double()
    ids = encode_batch(model.vocab, SENTENCES)
    C = model.embed.weight.detach().clone().requires_grad_()
    H = model.hidden.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda C, H: _functional(model, ids, C, H), (C, H))


def _functional(model, ids, C, H):
    """The model's loss as a pure function of its embedding C and hidden weights H (for gradcheck)."""
    windows = context_windows(ids[:, :-1], model.config.context, model.vocab.bos_id)
    x = C[windows].flatten(2)
    logits = model.out(torch.tanh(x @ H.T + model.hidden.bias)).masked_fill(model.never_predicted, float("-inf"))
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # [B, T-1]
    return logp[ids[:, 1:] != model.vocab.pad_id].sum()


def test_a_config_for_another_vocabulary_is_refused():
    vocab = Vocab(["a", "b"])
    with pytest.raises(ValueError, match="vocab_size is 9 but the vocabulary has 6 entries"):
        MLPLM(MLPConfig(9), vocab)


def test_nearest_neighbours_by_cosine_among_the_most_frequent():
    vocab = Vocab(["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2)  # ids 4..7 in order of frequency
    E = torch.zeros(len(vocab), 2)
    E[4:8] = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.1], [1.0, 0.05]])
    assert [w for w, _ in nearest_neighbours(E, vocab, "a", k=2)] == ["d", "c"]
    assert nearest_neighbours(E, vocab, "a", k=1)[0][1] == pytest.approx(1 / (1 + 0.05**2) ** 0.5, abs=1e-4)
    assert [w for w, _ in nearest_neighbours(E, vocab, "a", k=2, among=3)] == ["c", "b"]  # d is too rare
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        nearest_neighbours(E, vocab, "zebra")


def conv_pre_activations(model: MLPLM, ids: torch.Tensor) -> torch.Tensor:
    """[B, T] ids -> [B, T, d_hidden]: the Conv1d over the embeddings, left-padded with <bos>."""
    conv = hidden_layer_as_conv1d(model)
    padded = F.pad(ids, (model.config.context - 1, 0), value=model.vocab.bos_id)
    return conv(model.embed(padded).transpose(1, 2)).transpose(1, 2)


@pytest.mark.parametrize("context", [1, 2, 4])
def test_hidden_layer_as_conv1d_is_the_mlp_hidden_layer_at_every_position(context):
    model = small_model(context)
    conv = hidden_layer_as_conv1d(model)
    assert conv.kernel_size == (context,) and conv.weight.shape == (7, 5, context)
    ids = encode_batch(model.vocab, [*SENTENCES, ["the", "zebra", "sat", "on", "a", "cat", "cat"]])
    got = conv_pre_activations(model, ids).detach()  # [B, T, d_hidden]
    # MLPLM's own computation: windows, embedding, concatenation, the linear layer, tanh
    windows = context_windows(ids, context, model.vocab.bos_id)
    own = model.hidden(model.embed(windows).flatten(2)).detach()
    torch.testing.assert_close(got, own, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tanh(got), model.hidden_states(ids)[0].detach(), atol=1e-6, rtol=0)
    # and the equation d + H x by hand in float64, at every position of the second row
    C = model.embed.weight.detach().double().numpy()
    H, d = model.hidden.weight.detach().double().numpy(), model.hidden.bias.detach().double().numpy()
    row = [model.vocab.bos_id] * (context - 1) + ids[1].tolist()
    for t in range(ids.shape[1]):
        x = np.concatenate([C[i] for i in row[t : t + context]])
        assert got[1, t].double().numpy() == pytest.approx(d + H @ x, abs=1e-5)


def test_the_conv1d_is_causal_and_leaves_the_random_state_alone():
    model = small_model(context=3)
    v = model.vocab
    a = torch.tensor([[v.bos_id, *v.encode(["the", "dog", "sat", "on", "the", "mat"])]])
    b = a.clone()
    b[0, 4] = v.stoi["cat"]  # change position 4: outputs 4..6 (which read it) change, 0..3 do not
    state = torch.get_rng_state()
    out_a, out_b = conv_pre_activations(model, a), conv_pre_activations(model, b)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(out_a[0, :4], out_b[0, :4])
    assert all(not torch.allclose(out_a[0, t], out_b[0, t]) for t in (4, 5, 6))
