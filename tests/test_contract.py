"""One contract for every model the course registers (``lmlib.course.recipes.MODELS``).

Each registered model, in each of its kinds, passes the same checks: the ``LanguageModel``
protocol (``check_language_model``: distributions, teacher forcing = step by step, the cache
and its reordering), scores that do not depend on the batch, decoding (greedy = the argmax of
``next_token_logprobs``; with the cache = without), a checkpoint that rebuilds the same model,
and training that resumes bit for bit. A model added to ``MODELS`` fails
``test_every_registered_model_is_in_the_contract`` until it has a tiny configuration here, and
then gets every check.

An encoder-decoder (``objective = "seq2seq"``) is a language model of the targets of one source:
its protocol checks run on ``model.condition(SOURCE)``, and it trains on (source, target) rows,
each toy sentence paired with its reversal.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lmlib.checkpoint import load_model, save_checkpoint
from lmlib.course.recipes import MODELS
from lmlib.generate import greedy
from lmlib.lm import IncrementalDecoding, LanguageModel, ProtocolError, check_language_model, token_logprobs
from lmlib.neural import NeuralLM
from lmlib.seq2seq import encode_pairs
from lmlib.tokenize import Vocab
from lmlib.train import TrainConfig, encode_stream, train
from lmlib.transformer import MODERN_BLOCK
from tests.train_script import toy_corpus

GPT_SIZE = {"block_size": 16, "d_model": 16, "n_layers": 2, "n_heads": 2}
TINY = {  # MODELS key -> {kind: model_config}
    "mlp": {"mlp": {"context": 2, "d_embed": 8, "d_hidden": 16}},
    "rnn": {cell: {"cell": cell, "d_embed": 8, "d_hidden": 12} for cell in ("rnn", "lstm", "gru")},
    "gpt": {"GPT-2 block": GPT_SIZE, "modern block, GQA": {**GPT_SIZE, **MODERN_BLOCK, "n_kv_heads": 1},
            "GPT-2 block, sentences apart": {**GPT_SIZE, "reset_at_bos": True, "window_stride": 8}},
    "masked_lm": {"masked LM": {**MODERN_BLOCK, **GPT_SIZE}},
    "seq2seq": {"post-norm (BART)": {"max_positions": 32, "d_model": 16, "n_heads": 2},
                "pre-norm (mBART)": {"max_positions": 32, "d_model": 16, "n_heads": 2, "norm_first": True,
                                     "n_encoder_layers": 1, "n_decoder_layers": 3}},
}
CASES = [(name, kind) for name, kinds in TINY.items() for kind in kinds]
SENTENCES = [["the", "big", "cat", "sat"], ["a", "dog", "ran", "on", "the", "mat"], ["the", "zebra", "sat"],
             ["a", "small", "red", "dog", "ran", "under", "a", "log", "and", "the", "cat", "sat", "on", "it"] * 2]
# the last sentence, 28 words, is longer than the GPTs' window of 16: they slide it
SOURCE = ["a", "big", "dog", "sat"]  # what an encoder-decoder is conditioned on


def build(name: str, kind: str, seed: int = 0) -> NeuralLM:
    words = [w for s in toy_corpus(200, 1) for w in s]
    model_class = MODELS[name]()
    vocab = Vocab([*words, *[t for t in model_class.input_tokens for _ in range(2)]], min_count=2)
    torch.manual_seed(seed)
    return model_class(model_class.config_class(vocab_size=len(vocab), **TINY[name][kind]), vocab)


def predicts_next_tokens(name: str, kind: str) -> bool:
    """Causal models, and encoder-decoders (of a target, given a source)."""
    return build(name, kind).objective in ("causal", "seq2seq")


def as_language_model(model: NeuralLM) -> LanguageModel:
    """The model itself, or an encoder-decoder conditioned on ``SOURCE``."""
    return model.condition(SOURCE) if model.objective == "seq2seq" else model


def training_data(model: NeuralLM) -> torch.Tensor:
    """A stream of the toy sentences, or for an encoder-decoder rows of (sentence, its reversal)."""
    sentences = toy_corpus(200, 1)
    if model.objective == "seq2seq":
        return encode_pairs(model.vocab, [(s, s[::-1]) for s in sentences])
    return encode_stream(model.vocab, sentences)


def test_every_registered_model_is_in_the_contract():
    assert set(TINY) == set(MODELS), f"give each model of the course's MODELS a tiny configuration: {set(MODELS)}"
    for name, kind in CASES:
        assert isinstance(build(name, kind), NeuralLM), (name, kind)


@pytest.mark.parametrize(("name", "kind"), [c for c in CASES if predicts_next_tokens(*c)], ids=lambda x: str(x))
def test_the_language_model_protocol_and_decoding(name, kind):
    model = as_language_model(build(name, kind).eval())
    assert isinstance(model, LanguageModel)
    check_language_model(model, SENTENCES)  # an unseen word (<unk>) and a text longer than the window
    alone = torch.cat([token_logprobs(model, [s]) for s in SENTENCES])
    assert torch.allclose(token_logprobs(model, SENTENCES, batch_size=3), alone, atol=1e-5), "depends on the batch"
    with torch.no_grad():
        first = int(model.next_token_logprobs(torch.tensor([[model.vocab.bos_id, model.vocab.stoi["the"]]])).argmax())
    decoded = greedy(model, ["the"], max_tokens=6)
    assert decoded.ids[0] == first
    if isinstance(model, IncrementalDecoding):
        assert greedy(model, ["the"], max_tokens=6, use_cache=False).ids == decoded.ids


@pytest.mark.parametrize(("name", "kind"), CASES, ids=lambda x: str(x))
def test_a_checkpoint_rebuilds_the_model_and_training_resumes_bit_for_bit(name, kind, tmp_path):
    stream = training_data(build(name, kind))
    valid = stream[:200] if stream.ndim == 1 else stream[:20]
    config = TrainConfig(steps=4, batch_size=4, block=12, lr=1e-2, warmup=1, eval_every=2, log_every=1,
                         layout="sequential" if build(name, kind).takes_state else "random")
    straight = build(name, kind)
    train(straight, stream, valid, config, progress=False)
    first = build(name, kind)
    train(first, stream, valid, config, max_steps=2, checkpoint=tmp_path / "s.pt", progress=False)
    resumed = build(name, kind)
    train(resumed, stream, valid, config, resume=tmp_path / "s.pt", progress=False)
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{key} differs after resuming"

    save_checkpoint(tmp_path / "m.pt", straight, None, config, 4, {})
    rebuilt = load_model(tmp_path / "m.pt", MODELS[name]())  # through the seam: config_class(**config), vocab
    assert dataclasses.asdict(rebuilt.config) == dataclasses.asdict(straight.config)
    for (key, a), b in zip(straight.state_dict().items(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{key} differs after a checkpoint round trip"


@pytest.mark.parametrize("fault", ["a bare tensor state", "a state that is not carried", "a config of another class"])
def test_check_language_model_catches_a_network_that_breaks_the_seam(fault):
    model = build("rnn", "gru").eval()
    read = model.hidden_states
    if fault == "a bare tensor state":
        model.hidden_states = lambda ids, state=None: (lambda h, s: (h, s[0]))(*read(ids, state))
    elif fault == "a state that is not carried":
        model.hidden_states = lambda ids, state=None: read(ids, None)
    else:
        model.config = dataclasses.asdict(model.config)
    with pytest.raises(ProtocolError, match="state|carried|config"):
        check_language_model(model, SENTENCES)


def test_check_language_model_leaves_the_random_stream_where_it_was():
    model = build("gpt", "GPT-2 block")
    before = torch.get_rng_state()
    check_language_model(model, SENTENCES)
    assert torch.equal(torch.get_rng_state(), before)
