"""lmlib.rnn: the cells equal torch.nn's, the teaching path equals the library kernel, the model is a
LanguageModel that resets at <bos> and decodes incrementally, and it learns."""

from __future__ import annotations

import math

import pytest
import torch

from lmlib import generate as G
from lmlib.lm import check_language_model, encode_batch, perplexity
from lmlib.rnn import LSTMCell, RNNCell, RNNConfig, RNNLanguageModel, bptt_grad_w_hh, gru_cell, lstm_trace
from lmlib.tokenize import Vocab

SAM = [s.split() for s in ["I am Sam", "Sam I am", "I do not like green eggs and ham", "I am not Sam"]]


def copy_both_ways(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict(theirs.state_dict())  # strict: the same names and shapes
    theirs.load_state_dict(ours.state_dict())


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("batch, inp, hidden, with_state", [(1, 1, 1, False), (3, 5, 4, True), (7, 16, 9, True),
                                                           (2, 3, 12, False)])
def test_cells_equal_torch_cells_in_outputs_and_gradients(kind, batch, inp, hidden, with_state):
    torch.manual_seed(batch * 100 + hidden)
    ours = (LSTMCell if kind == "lstm" else RNNCell)(inp, hidden).double()
    theirs = (torch.nn.LSTMCell if kind == "lstm" else torch.nn.RNNCell)(inp, hidden).double()
    copy_both_ways(ours, theirs)
    x = torch.randn(batch, inp, dtype=torch.float64, requires_grad=True)
    state = None
    if with_state:
        state = torch.randn(batch, hidden, dtype=torch.float64)
        state = (state, torch.randn(batch, hidden, dtype=torch.float64)) if kind == "lstm" else state

    def run(cell):
        out = cell(x, state)
        out = torch.cat(out, dim=-1) if kind == "lstm" else out
        weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)  # a loss mixing every output
        (grad_x, *grads) = torch.autograd.grad((out * weights).sum(), [x, *cell.parameters()])
        return out, grad_x, grads

    out_a, gx_a, g_a = run(ours)
    out_b, gx_b, g_b = run(theirs)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-12)
    torch.testing.assert_close(gx_a, gx_b, rtol=0, atol=1e-12)
    for a, b in zip(g_a, g_b, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch, inp, hidden", [(1, 1, 1), (3, 5, 4), (7, 16, 9), (2, 3, 12)])
def test_gru_cell_equals_torch_gru_cell_in_outputs_and_gradients(batch, inp, hidden):
    torch.manual_seed(batch * 10 + hidden)
    theirs = torch.nn.GRUCell(inp, hidden).double()
    with torch.no_grad():  # biases away from 0, so that a mixed-up b_hn (inside r * (...)) shows
        theirs.bias_hh.uniform_(-1, 1)
    weights = [theirs.weight_ih, theirs.weight_hh, theirs.bias_ih, theirs.bias_hh]
    x = torch.randn(batch, inp, dtype=torch.float64, requires_grad=True)
    h = torch.randn(batch, hidden, dtype=torch.float64, requires_grad=True)
    mix = torch.linspace(-1, 1, batch * hidden, dtype=torch.float64).view(batch, hidden)

    def run(step):
        out = step()
        return out, torch.autograd.grad((out * mix).sum(), [x, h, *weights])

    ours, grads_ours = run(lambda: gru_cell(x, h, *weights))
    reference, grads_ref = run(lambda: theirs(x, h))
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    for a, b in zip(grads_ours, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_gru_cell_depends_on_the_gate_order():
    """The gate order (r, z, n) matters: weights with r's and z's rows swapped give another output."""
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(4, 3).double()
    x, h = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    w = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    swapped = [torch.cat([p[3:6], p[0:3], p[6:]]) for p in w]  # z's rows where r's were
    assert not torch.allclose(gru_cell(x, h, *swapped), cell(x, h))


@pytest.mark.parametrize("batch, steps, inp, hidden, h0_zero", [(1, 1, 2, 3, True), (2, 5, 3, 4, False),
                                                               (4, 9, 6, 5, False)])
def test_the_bptt_sum_equals_autograd_through_torch_rnn(batch, steps, inp, hidden, h0_zero):
    torch.manual_seed(steps)
    reference = torch.nn.RNN(inp, hidden, batch_first=True).double()
    x = torch.randn(batch, steps, inp, dtype=torch.float64)
    h0 = torch.zeros(batch, hidden, dtype=torch.float64) if h0_zero else torch.randn(batch, hidden).double()
    per_step = torch.randn(batch, steps, hidden, dtype=torch.float64)  # L_t = per_step[:, t] . h_t
    out, _ = reference(x, h0[None])
    (out * per_step).sum().backward()
    weights = [getattr(reference, f"{name}_l0").detach() for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    ours = bptt_grad_w_hh(x, h0, *weights, dloss_dh=per_step)
    torch.testing.assert_close(ours, reference.weight_hh_l0.grad, rtol=0, atol=1e-12)
    if steps > 1:  # without the terms s < t (no chain of Jacobians), the sum would be wrong
        last_only = bptt_grad_w_hh(x[:, -1:], out[:, -2].detach(), *weights, dloss_dh=per_step[:, -1:])
        assert not torch.allclose(last_only, reference.weight_hh_l0.grad)


def test_lstm_trace_reproduces_the_model_and_the_cell_update():
    model = tiny_model(n_layers=1).eval()
    ids = torch.randint(4, len(model.vocab), (3, 7), generator=torch.Generator().manual_seed(0))
    trace = lstm_trace(model, ids)
    expected, _ = model.hidden_states(ids)  # no <bos> in ids: no resets
    torch.testing.assert_close(trace["h"], expected, rtol=0, atol=1e-12)
    c_before = torch.cat([torch.zeros_like(trace["c"][:, :1]), trace["c"][:, :-1]], dim=1)
    torch.testing.assert_close(trace["c"], trace["f"] * c_before + trace["i"] * trace["g"], rtol=0, atol=1e-12)
    assert ((trace["f"] > 0) & (trace["f"] < 1)).all()
    with pytest.raises(ValueError, match="needs an LSTM"):
        lstm_trace(tiny_model("gru"), ids)


def test_cells_step_by_step_equal_a_multilayer_torch_lstm():
    torch.manual_seed(0)
    reference = torch.nn.LSTM(6, 5, num_layers=3, batch_first=True).double()
    cells = [LSTMCell(6 if k == 0 else 5, 5).double() for k in range(3)]
    for k, cell in enumerate(cells):
        cell.load_state_dict({name: getattr(reference, f"{name}_l{k}") for name in cell.state_dict()})
    x = torch.randn(4, 11, 6, dtype=torch.float64)
    expected, (h_n, c_n) = reference(x)
    states = [None] * 3
    outputs = []
    for t in range(x.shape[1]):
        inp = x[:, t]
        for k, cell in enumerate(cells):
            states[k] = cell(inp, states[k])
            inp = states[k][0]
        outputs.append(inp)
    torch.testing.assert_close(torch.stack(outputs, 1), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.stack([s[0] for s in states]), h_n, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.stack([s[1] for s in states]), c_n, rtol=0, atol=1e-12)


def tiny_model(cell: str = "lstm", fast: bool = True, **config) -> RNNLanguageModel:
    torch.manual_seed(0)
    vocab = Vocab([w for s in SAM for w in s])
    return RNNLanguageModel(RNNConfig(len(vocab), cell, d_embed=8, d_hidden=8, fast=fast, **config), vocab).double()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_teaching_path_equals_fast_path_with_resets_and_carried_state(cell, layers):
    fast = tiny_model(cell, n_layers=layers).eval()
    slow = tiny_model(cell, fast=False, n_layers=layers).eval()
    slow.load_state_dict(fast.state_dict())
    vocab = fast.vocab
    # Rows that start mid-sentence (from a carried state) and cross <bos> at different places.
    stream = torch.tensor([vocab.bos_id, *vocab.encode(SAM[2]), vocab.eos_id] * 3)
    ids = torch.stack([stream[1:13], stream[4:16], stream[:12]])
    state = fast._zero_state(3, torch.zeros(1, dtype=torch.float64))
    state = tuple(torch.randn_like(s) for s in state)  # (h,) or the LSTM's (h, c)
    for model in (fast, slow):
        model.zero_grad()
    (a, sa), (b, sb) = fast(ids, state), slow(ids, state)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    assert len(sa) == len(sb) == (2 if cell == "lstm" else 1)
    for x, y in zip(sa, sb, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-10)
    a[torch.isfinite(a)].sum().backward()
    b[torch.isfinite(b)].sum().backward()
    for (name, p), q in zip(fast.named_parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-9, msg=name)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_the_lstm_s_reset_steps_equal_cutting_the_block_in_time(layers, dtype, tol):
    """The LSTM's one call with reset and hold steps (``_recur_fast``) against the kernel called on each piece of
    the block between the columns where some row starts a sentence (``_recur_cut``): outputs, the state after
    the block, the loss and the gradients of the weights, the inputs and the carried state."""
    model = tiny_model(n_layers=layers).to(dtype).train()  # dropout 0: the same function in training
    bos = model.vocab.bos_id
    ids = torch.randint(len(model.vocab), (5, 13), generator=torch.Generator().manual_seed(1))
    ids[ids == bos] = model.vocab.eos_id
    ids[0, [0, 4, 5, 11]] = bos  # <bos> at 0, twice in a row, and more
    ids[1, [3, 12]] = bos  # <bos> at the last position
    ids[3, [0]] = bos  # row 2 has none, row 3 only at 0, row 4 one in the middle
    ids[4, 7] = bos
    starts = ids == bos
    x = model.embed(ids).detach().requires_grad_()
    carried = tuple(torch.randn(layers, 5, 8, dtype=dtype, requires_grad=True) for _ in range(2))
    results = []
    for recur in (model._recur_fast, lambda x, starts, state: model._recur_cut(
            x, starts, tuple(s * (~starts[None, :, :1]).to(dtype) for s in state))):
        model.zero_grad()
        h, state = recur(x, starts, carried)
        loss = torch.nn.functional.cross_entropy(model.logits(h)[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        loss = loss + sum((s * torch.linspace(-1, 1, 8, dtype=dtype)).sum() for s in state)  # the state too
        grads = torch.autograd.grad(loss, [*model.rnn.parameters(), *model.out.parameters(), x, *carried])
        results.append((h, state, loss, grads))
    (h, state, loss, grads), (h_cut, state_cut, loss_cut, grads_cut) = results
    assert len(state) == len(state_cut) == 2
    torch.testing.assert_close(h, h_cut, rtol=tol, atol=tol)
    for ours, cut in zip([*state, loss, *grads], [*state_cut, loss_cut, *grads_cut], strict=True):
        torch.testing.assert_close(ours, cut, rtol=tol, atol=tol)
    assert starts[:, 1:].any() and not starts[2].any()  # the block crosses sentences: no single plain call


def test_the_state_resets_at_bos():
    model = tiny_model().eval()
    one = encode_batch(model.vocab, [SAM[0]])[:, :-1]
    two = encode_batch(model.vocab, [SAM[1]])[:, :-1]
    joined = torch.cat([one, two], dim=1)
    (alone, _), (after, _) = model(two), model(joined)
    torch.testing.assert_close(after[:, one.shape[1]:], alone, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("fast", [True, False])
def test_is_a_language_model_with_incremental_decoding(cell, fast):
    model = tiny_model(cell, fast=fast, n_layers=2).eval()
    check_language_model(model, [*SAM, ["unseen", "words"], []], atol=1e-9)


def test_incremental_and_plain_decoding_agree():
    from tests.test_generate import PlainView

    model = tiny_model(n_layers=2).eval()
    for decode in (lambda m: G.sample(m, ["I"], 10, num_samples=5, generator=torch.Generator().manual_seed(2)),
                   lambda m: G.beam_search(m, ["Sam"], 8, num_beams=3, num_return=3)):
        fast, plain = decode(model), decode(PlainView(model))
        assert [g.ids for g in fast] == [g.ids for g in plain]
        assert [g.logprob for g in fast] == pytest.approx([g.logprob for g in plain], abs=1e-9)


def test_tied_weights_share_one_matrix():
    model = tiny_model(tie_weights=True)
    assert model.out.weight is model.embed.weight
    assert model.num_parameters() == sum(p.numel() for p in set(model.parameters()))


def test_perplexity_falls_below_the_unigram_within_a_few_steps():
    from lmlib.ngram import NGramLM
    from lmlib.train import TrainConfig, encode_stream, train

    model = tiny_model().float()
    stream = encode_stream(model.vocab, SAM * 4)
    before = perplexity(model.eval(), SAM)
    train(model, stream, stream, TrainConfig(steps=60, batch_size=4, block=8, lr=0.03, warmup=5, eval_every=60,
                                             layout="sequential"), progress=False)
    unigram = NGramLM(1, "mle").fit(SAM).perplexity(SAM)
    after = perplexity(model.eval(), SAM)
    assert after < unigram < before, (before, unigram, after)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"cell": "transformer"}, "cell must be 'rnn', 'lstm' or 'gru'"),
        ({"tie_weights": True, "d_embed": 8, "d_hidden": 16}, "tie_weights needs d_embed == d_hidden"),
        ({"n_layers": 0}, "n_layers must be >= 1"),
        ({"vocab_size": 3}, "vocab_size is 3"),
    ],
)
def test_bad_config_gets_a_clear_error(config, message):
    vocab = Vocab(["a", "b"])
    settings = {"vocab_size": len(vocab), **config}
    with pytest.raises(ValueError, match=message):
        RNNLanguageModel(RNNConfig(**settings), vocab)


def test_dropout_applies_in_training_only():
    model = tiny_model(dropout=0.5, n_layers=2)
    ids = encode_batch(model.vocab, SAM)
    model.train()
    a, _ = model(ids)
    b, _ = model(ids)
    assert not torch.equal(a, b)
    model.eval()
    assert torch.equal(model(ids)[0], model(ids)[0])
    assert math.isfinite(perplexity(model, SAM))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: LSTMCell(3, 4)(torch.zeros(2, 5)), ValueError, r"x of shape \[batch, 3\], got \(2, 5\)"),
        (lambda: RNNCell(3, 4)(torch.zeros(3)), ValueError, r"x of shape \[batch, 3\], got \(3,\)"),
        (lambda: LSTMCell(3, 4)(torch.zeros(2, 3, dtype=torch.float64)), TypeError, "float32 weights but x is"),
        (lambda: RNNCell(3, 4)(torch.zeros(2, 3), torch.zeros(2, 5)), ValueError, r"hidden state of shape \[2, 4\]"),
        (lambda: LSTMCell(3, 4)(torch.zeros(2, 3), (torch.zeros(2, 4), torch.zeros(1, 4))), ValueError,
         "hidden state"),
    ],
)
def test_cells_name_the_expected_shapes_and_dtypes(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_gradients_vanish_with_distance_unless_the_lstm_forget_gate_is_open():
    from lmlib.rnn import gradient_by_distance

    torch.manual_seed(0)
    vocab = Vocab(list("abcdefgh"))
    ids = torch.randint(4, len(vocab), (16, 61))
    decay = {}  # |dL/dx| 50 steps back, relative to the last step's
    for name, cell, forget_bias in [("rnn", "rnn", 0.0), ("lstm", "lstm", 0.0), ("lstm, forget bias 1", "lstm", 1.0)]:
        torch.manual_seed(1)
        model = RNNLanguageModel(RNNConfig(len(vocab), cell, d_embed=16, d_hidden=32), vocab)
        with torch.no_grad():
            model.rnn.bias_ih_l0[32:64] += forget_bias if cell == "lstm" else 0.0  # the f gate's slice
        norms = gradient_by_distance(model, ids)
        assert norms.shape == (60,) and (norms > 0).all()
        decay[name] = (norms[-51] / norms[-1]).item()
    # At PyTorch's initialisation (f about 0.5) the LSTM's gradient vanishes too; an open forget gate keeps it.
    assert decay["rnn"] < 1e-9 and decay["lstm"] < 1e-8, decay
    assert decay["lstm, forget bias 1"] > 1e4 * max(decay["rnn"], decay["lstm"]), decay


# --- the classifier ----------------------------------------------------------------------------------------------


def _classifier(vocab_size=30, d_embed=5, d_hidden=4, seed=0):
    from lmlib.rnn import LSTMClassifier, LSTMClassifierConfig

    torch.manual_seed(seed)
    return LSTMClassifier(LSTMClassifierConfig(vocab_size, d_embed, d_hidden)).double()


@pytest.mark.parametrize("batch, steps, inp, hidden", [(1, 1, 1, 1), (3, 7, 5, 4), (4, 12, 16, 9)])
def test_lstm_states_equal_torch_lstm_with_b_hh_zero_in_outputs_and_gradients(batch, steps, inp, hidden):
    """One bias per gate is torch.nn.LSTM with b_ih = bias and b_hh = 0; the kernel path and the cell-by-cell
    path give the same states and gradients."""
    from lmlib.rnn import lstm_states

    torch.manual_seed(batch + steps + hidden)
    theirs = torch.nn.LSTM(inp, hidden, batch_first=True).double()
    with torch.no_grad():
        theirs.bias_hh_l0.zero_()
    w_ih, w_hh, bias = (getattr(theirs, n).detach().clone().requires_grad_()
                        for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0"))
    x = torch.randn(batch, steps, inp, dtype=torch.float64, requires_grad=True)
    weights = torch.linspace(-1, 1, batch * steps * hidden, dtype=torch.float64).view(batch, steps, hidden)
    reference, _ = theirs(x)
    expected = torch.autograd.grad((reference * weights).sum(), [x, theirs.weight_ih_l0, theirs.weight_hh_l0,
                                                                  theirs.bias_ih_l0])
    for fast in (True, False):
        states = lstm_states(x, w_ih, w_hh, bias, fast=fast)
        torch.testing.assert_close(states, reference, rtol=0, atol=1e-12)
        for a, b in zip(torch.autograd.grad((states * weights).sum(), [x, w_ih, w_hh, bias]), expected, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_the_classifier_reads_the_last_real_token_s_state_and_ignores_right_padding():
    from lmlib.rnn import lstm_states

    model = _classifier()
    texts = [[3, 4, 5], [7], [9, 10, 11, 12, 13]]
    padded = torch.tensor([t + [0] * (6 - len(t)) for t in texts])
    z = model.logit(padded)
    for row, text in enumerate(texts):  # each text alone, unpadded: h_n by hand, then the head
        ids = torch.tensor([text])
        h = lstm_states(model.embed(ids), model.weight_ih, model.weight_hh, model.bias)[0, -1]
        torch.testing.assert_close(z[row], model.head(h)[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(model.logit(ids)[0], z[row], rtol=0, atol=1e-12)
    # a text with no known word keeps h_0 = 0: z is the head's bias, with or without columns
    empty = torch.zeros(1, 4, dtype=torch.long)
    torch.testing.assert_close(model.logit(empty), model.head.bias, rtol=0, atol=0)
    torch.testing.assert_close(model.logit(empty[:, :0]), model.head.bias, rtol=0, atol=0)


def test_the_two_logits_make_cross_entropy_the_binary_cross_entropy():
    """softmax((0, z)) = (1 - sigmoid(z), sigmoid(z)): lmlib.finetune's cross-entropy on (0, z) is
    binary_cross_entropy_with_logits on z, and its argmax is z > 0."""
    import torch.nn.functional as F

    from lmlib.finetune import classification_loss

    model = _classifier()
    ids = torch.randint(1, 30, (6, 5), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    logits, z = model(ids), model.logit(ids)
    assert logits.shape == (6, 2) and torch.equal(logits[:, 0], torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(logits.softmax(-1)[:, 1], torch.sigmoid(z), rtol=0, atol=1e-15)
    torch.testing.assert_close(classification_loss(logits, labels),
                               F.binary_cross_entropy_with_logits(z, labels.double()), rtol=0, atol=1e-12)
    assert torch.equal(logits.argmax(-1), (z > 0).long())


def test_the_classifier_counts_keras_s_parameters():
    """Embedding V*E, LSTM 4H(E + H + 1) (one bias per gate), Dense H + 1: Keras's count_params (checked against
    Keras itself in tests/course/test_classification_runs.py)."""
    V, E, H = 30, 5, 4
    assert _classifier(V, E, H).num_parameters() == V * E + 4 * H * (E + H + 1) + H + 1


def test_the_classifier_learns_a_keyword_task():
    from lmlib import finetune as FT

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 20, (64, 8), generator=generator)
    labels = (ids == 3).any(dim=1).long()  # positive: the text holds word 3 anywhere
    model = _classifier(20, 8, 8).float()
    FT.train_classifier(model, ids, labels, epochs=12, lr=0.05, batch_size=16, weight_decay=0.0)
    assert FT.accuracy(model, ids, labels) >= 0.95


@pytest.mark.parametrize(
    "ids, message",
    [
        (torch.tensor([[0, 3, 4]]), "right-padded"),
        (torch.tensor([[3, 0, 4]]), "right-padded"),
        (torch.tensor([[3, 30]]), r"ids must be in 0 \.\. 29"),
        (torch.tensor([3, 4]), r"\[batch, time\] integer ids"),
        (torch.tensor([[3.0, 4.0]]), r"\[batch, time\] integer ids"),
    ],
)
def test_the_classifier_names_bad_input(ids, message):
    with pytest.raises(ValueError, match=message):
        _classifier()(ids)


def test_the_classifier_names_a_bad_config():
    from lmlib.rnn import LSTMClassifier, LSTMClassifierConfig

    with pytest.raises(ValueError, match="pad_id < vocab_size"):
        LSTMClassifier(LSTMClassifierConfig(10, pad_id=10))
