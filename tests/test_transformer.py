"""lmlib.transformer: attention equals torch's, RoPE's two layouts agree, the fast and teaching paths agree,
GPT.from_hf gives Hugging Face's GPT-2 and Llama logits and round-trips exactly, the model is a LanguageModel
that decodes through its KV cache, slides its window over long sequences, learns, and refuses bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import transformers

from lmlib import generate as G
from lmlib.lm import IncrementalDecoding, LanguageModel, check_language_model, encode_batch, perplexity
from lmlib.tokenize import Vocab
from lmlib.transformer import (
    GPT,
    GPTConfig,
    apply_rope,
    attention_weights,
    causal_mask,
    merge_heads,
    multi_head_attention,
    padding_mask,
    repeat_kv,
    rope_angles,
    scaled_dot_product_attention,
    split_heads,
)
from tests.test_generate import PlainView, recorded_decodings

SAM = [s.split() for s in ["I am Sam", "Sam I am", "I do not like green eggs and ham", "I am not Sam"]]
VOCAB = Vocab([w for s in SAM for w in s])


def tiny_gpt(modern: bool = False, dtype=torch.float64, **settings) -> GPT:
    torch.manual_seed(0)
    size = {"block_size": 16, "d_model": 16, "n_heads": 4, "n_layers": 2}
    config = (GPTConfig.modern if modern else GPTConfig)(len(VOCAB), **{**size, **settings})
    model = GPT(config, VOCAB).to(dtype)
    with torch.no_grad():  # weights larger than the initialisation's, so the distributions are far from uniform
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


# --- attention ----------------------------------------------------------------------------------


def qkv(batch=2, heads=3, t_q=5, t_k=5, d=8, dtype=torch.float64):
    torch.manual_seed(t_q * 10 + t_k)
    return (torch.randn(batch, heads, t_q, d, dtype=dtype), torch.randn(batch, heads, t_k, d, dtype=dtype),
            torch.randn(batch, heads, t_k, d + 2, dtype=dtype))


def test_attention_equals_torch_without_a_mask_and_with_causal_and_padding_masks():
    q, k, v = qkv()
    lengths = torch.tensor([5, 3])  # row 1: two <pad> keys on the right
    ids = torch.where(torch.arange(5) < lengths[:, None], 7, 0)
    pad = padding_mask(ids, pad_id=0)  # [B, 1, 1, T]
    causal = causal_mask(5, 5)
    cases = [(None, {}), (causal, {"is_causal": True}), (pad, {"attn_mask": pad}),
             (causal & pad, {"attn_mask": causal & pad})]
    for ours, theirs in cases:
        got = scaled_dot_product_attention(q, k, v, ours)
        torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v, **theirs), rtol=0, atol=1e-12)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(~pad, -math.inf).softmax(-1)
    assert (weights[1, ..., 3:] == 0).all()  # no query looks at a <pad> key


def test_attention_in_float32_is_within_1e_6_of_torch():
    q, k, v = qkv(dtype=torch.float32)
    got = scaled_dot_product_attention(q, k, v, causal_mask(5, 5))
    torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=0, atol=1e-6)


def test_causal_mask_puts_the_queries_last_when_keys_come_from_a_cache():
    q, k, v = qkv(t_q=7, t_k=7)
    full = scaled_dot_product_attention(q, k, v, causal_mask(7, 7))
    last_three = scaled_dot_product_attention(q[..., 4:, :], k, v, causal_mask(3, 7))
    torch.testing.assert_close(last_three, full[..., 4:, :], rtol=0, atol=1e-12)
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]


@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (4, 2), (6, 1)])
@pytest.mark.parametrize("causal", [True, False])
def test_multi_head_attention_is_each_head_attending_on_its_own_slice(heads, kv_heads, causal):
    torch.manual_seed(heads + kv_heads)
    d_k, T = 4, 6
    x_q = torch.randn(2, T, heads * d_k, dtype=torch.float64)
    x_kv = torch.randn(2, T, 2 * kv_heads * d_k, dtype=torch.float64)
    q, (k, v) = split_heads(x_q, heads), split_heads(x_kv, 2 * kv_heads).chunk(2, dim=1)
    assert torch.equal(merge_heads(q), x_q)
    mask = causal_mask(T, T) if causal else None
    per_head = [scaled_dot_product_attention(q[:, i], k[:, i * kv_heads // heads], v[:, i * kv_heads // heads], mask)
                for i in range(heads)]  # query head i reads key/value head i // (h / h_kv)
    expected = torch.stack(per_head, dim=1)
    for fast in (True, False):
        got, weights = multi_head_attention(q, k, v, None, causal, fast, need_weights=True)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
        # the weights it gives are the ones it used: rows sum to 1, and they reproduce the output
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, heads, T, dtype=weights.dtype))
        torch.testing.assert_close(weights @ repeat_kv(v, heads // kv_heads), got, rtol=0, atol=1e-12)
        assert multi_head_attention(q, k, v, None, causal, fast)[1] is None


# --- RoPE ---------------------------------------------------------------------------------------


def rope_interleaved(x: torch.Tensor, positions: int, theta: float) -> torch.Tensor:
    """RoPE as in the paper and Meta's Llama: pairs of neighbours (x_2i, x_2i+1) as complex numbers,
    multiplied by e^{i t theta_i}."""
    d = x.shape[-1]
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # [d/2]
    turn = torch.polar(torch.ones(positions, d // 2, dtype=torch.float64), torch.arange(positions)[:, None] * freqs)
    pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(pairs * turn).flatten(-2)


def test_rope_halves_layout_is_the_interleaved_layout_with_permuted_coordinates():
    torch.manual_seed(0)
    d, T = 8, 11
    x = torch.randn(2, 3, T, d, dtype=torch.float64)  # interleaved layout
    halves = torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])  # coordinate 2i -> i, 2i+1 -> i + d/2
    cos, sin = (a.double() for a in rope_angles(T, d, theta=100.0))
    ours = apply_rope(x[..., halves], cos, sin)
    torch.testing.assert_close(ours, rope_interleaved(x, T, 100.0)[..., halves], rtol=0, atol=1e-5)


def test_rope_scores_depend_only_on_the_distance_between_positions():
    torch.manual_seed(1)
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    cos, sin = (a.double() for a in rope_angles(20, 16, 10000.0))

    def score(t: int, s: int) -> float:
        return (apply_rope(q, cos[t], sin[t]) @ apply_rope(k, cos[s], sin[s])).item()

    assert score(5, 2) == pytest.approx(score(15, 12), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)


# --- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{}, {"modern": True, "n_kv_heads": 2},
                                      {"modern": True, "n_kv_heads": 1, "reset_at_bos": True}])
def test_fast_path_equals_the_teaching_path_in_logits_and_gradients(settings):
    fast, slow = tiny_gpt(**settings), tiny_gpt(**settings, fast=False)
    slow.load_state_dict(fast.state_dict())
    stream = torch.tensor([VOCAB.bos_id, *VOCAB.encode(SAM[2]), VOCAB.eos_id] * 2)
    ids = torch.stack([stream[:14], stream[3:17]])  # <bos> inside the rows: the sentence mask when reset_at_bos
    a, b = fast(ids), slow(ids)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    a[torch.isfinite(a)].sum().backward()
    b[torch.isfinite(b)].sum().backward()
    for (name, p), q in zip(fast.named_parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-9, msg=name)


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """An HF model with every parameter moved off its initial value (norm gains off 1, biases off 0)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


GPT2_CONFIGS = [
    {"vocab_size": 61, "n_positions": 16, "n_embd": 32, "n_layer": 2, "n_head": 4},
    {"vocab_size": 40, "n_positions": 12, "n_embd": 24, "n_layer": 3, "n_head": 3, "n_inner": 40,
     "tie_word_embeddings": False},
    {"vocab_size": 23, "n_positions": 9, "n_embd": 16, "n_layer": 1, "n_head": 1, "layer_norm_epsilon": 1e-3,
     "activation_function": "gelu_pytorch_tanh"},
]
LLAMA_CONFIGS = [
    {"vocab_size": 61, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
     "max_position_embeddings": 16},
    {"vocab_size": 40, "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 6,
     "num_key_value_heads": 2, "max_position_embeddings": 12, "tie_word_embeddings": True,
     "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}},  # grouped-query attention
    {"vocab_size": 23, "hidden_size": 32, "intermediate_size": 40, "num_hidden_layers": 1, "num_attention_heads": 4,
     "num_key_value_heads": 1, "max_position_embeddings": 9, "attention_bias": True, "mlp_bias": True,
     "rms_norm_eps": 1e-5},
]


def hf_model(kind: str, settings: dict, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "gpt2":
        return randomised(transformers.GPT2LMHeadModel(transformers.GPT2Config(
            bos_token_id=0, eos_token_id=0, **settings)), seed)
    return randomised(transformers.LlamaForCausalLM(transformers.LlamaConfig(
        bos_token_id=0, eos_token_id=0, **settings)), seed)


@pytest.mark.parametrize("kind, settings", [*[("gpt2", c) for c in GPT2_CONFIGS],
                                            *[("llama", c) for c in LLAMA_CONFIGS]])
def test_from_hf_gives_the_hf_logits_and_to_hf_round_trips_exactly(kind, settings):
    theirs = hf_model(kind, settings, seed=len(settings))
    ours = GPT.from_hf(theirs)
    assert ours.config.positions == ("learned" if kind == "gpt2" else "rope")
    torch.manual_seed(1)
    ids = torch.randint(0, ours.config.vocab_size, (3, ours.config.block_size))
    with torch.no_grad():
        gap = (ours(ids) - theirs(ids).logits).abs().max().item()
    assert gap <= 1e-4, gap
    back = ours.to_hf()
    assert type(back) is type(theirs)
    expected = theirs.state_dict()
    assert back.state_dict().keys() == expected.keys()
    for name, tensor in back.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    again = GPT.from_hf(back)
    assert again.config == ours.config
    for name, tensor in again.state_dict().items():
        assert torch.equal(tensor, ours.state_dict()[name]), name


def test_a_course_model_goes_to_hf_and_back_as_the_same_language_model():
    for modern in (False, True):
        ours = tiny_gpt(modern=modern, dtype=torch.float32)
        theirs = ours.to_hf()
        ids = encode_batch(VOCAB, SAM)
        with torch.no_grad():
            logits, hf_logits = ours(ids), theirs(ids, attention_mask=torch.ones_like(ids)).logits
        finite = torch.isfinite(logits)  # <pad> and <bos> are -inf in lmlib (never predicted)
        assert (finite.sum(-1) == len(VOCAB) - 2).all()
        assert (logits[finite] - hf_logits[finite]).abs().max() <= 1e-4
        back = GPT.from_hf(theirs, VOCAB)
        assert isinstance(back, LanguageModel) and back.config == ours.config
        torch.testing.assert_close(back.sequence_logprobs(ids), ours.sequence_logprobs(ids), rtol=0, atol=0)
        prompt = torch.tensor([[VOCAB.bos_id, *VOCAB.encode(["I", "am"])]])
        hf_greedy = theirs.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12,
                                    min_new_tokens=12, do_sample=False, suppress_tokens=[VOCAB.pad_id, VOCAB.bos_id])
        assert G.greedy(ours, ["I", "am"], 12, suppress=["<eos>"]).ids == hf_greedy[0, 3:].tolist()


def test_tied_weights_are_one_matrix():
    tied, untied = tiny_gpt(), tiny_gpt(tie_weights=False)
    assert tied.lm_head.weight is tied.token_embedding.weight
    assert untied.num_parameters() - tied.num_parameters() == len(VOCAB) * 16


@pytest.mark.parametrize("settings", [
    {},
    {"modern": True, "n_kv_heads": 2, "reset_at_bos": True},
    {"block_size": 4},  # shorter than most sentences: sliding scores and re-read contexts
    {"modern": True, "n_kv_heads": 1, "block_size": 3},
    {"block_size": 4, "window_stride": 2},  # the window moves 2 tokens at a time
    {"modern": True, "block_size": 5, "window_stride": 5, "reset_at_bos": True},
])
def test_is_a_language_model_with_incremental_decoding(settings):
    model = tiny_gpt(**settings)
    assert isinstance(model, IncrementalDecoding)
    check_language_model(model, [*SAM, ["unseen", "words"], []], atol=1e-9)


@pytest.mark.parametrize("settings", [{}, {"modern": True, "n_kv_heads": 2}, {"block_size": 6},
                                      {"block_size": 6, "window_stride": 3}])
def test_kv_cache_decoding_gives_the_tokens_of_decoding_without_it(settings):
    model = tiny_gpt(**settings)
    for decode in (lambda m: [G.greedy(m, ["I"], 20, suppress=["<eos>"])],  # past block_size: the re-read path
                   lambda m: G.beam_search(m, ["Sam"], 10, num_beams=3, num_return=3),
                   lambda m: G.sample(m, ["I"], 12, num_samples=4, generator=torch.Generator().manual_seed(3))):
        cached, plain = decode(model), decode(PlainView(model))
        assert [g.ids for g in cached] == [g.ids for g in plain]
        assert [g.logprob for g in cached] == pytest.approx([g.logprob for g in plain], abs=1e-9)
    assert len(G.greedy(model, ["I"], 20, suppress=["<eos>"]).ids) == 20


def test_the_cache_holds_the_keys_and_values_of_every_token_read():
    model = tiny_gpt(modern=True, n_kv_heads=2)
    ids = encode_batch(VOCAB, [SAM[2]])[:, :6]
    _, cache = model.decode_step(ids[:, :4], None)
    _, cache = model.decode_step(ids[:, 4:5], cache)
    assert torch.equal(cache.ids, ids[:, :5])
    assert [tuple(k.shape) for k, _ in cache.state.layers] == [(1, 2, 5, 4)] * 2  # [B, h_kv, T, d_k] per layer
    assert cache.state.length == 5
    _, full = model.decode_step(ids[:, :5], None)
    for (k, v), (k_full, v_full) in zip(cache.state.layers, full.state.layers, strict=True):
        torch.testing.assert_close(k, k_full, rtol=0, atol=1e-12)
        torch.testing.assert_close(v, v_full, rtol=0, atol=1e-12)


def long_rows() -> torch.Tensor:
    torch.manual_seed(5)
    rows = encode_batch(VOCAB, [SAM[2] * 3, SAM[0]])  # 26 and 5 tokens, right-padded
    rows[0, 1:-1] = torch.randint(4, len(VOCAB), (24,))
    return rows


@pytest.mark.parametrize("stride", [1, 3, 8])
def test_sliding_window_scores_each_token_as_its_window_alone_would(stride):
    model = tiny_gpt(block_size=8)
    ids = long_rows()  # [2, 26]
    scores = model.sequence_logprobs(ids, stride)  # [2, 25]
    assert scores.shape == (2, 25)
    for p in range(25):  # prediction p: ids[p + 1] after the p + 1 tokens ids[:p + 1]
        a = model.window_start(p + 1, stride)
        assert (a == 0 and p + 1 <= 8) or 8 - stride + 1 <= p + 1 - a <= 8  # on the grid, at most 8 tokens
        alone = model.sequence_logprobs(ids[:1, a : p + 2], stride)[0, -1]  # the window's tokens, one pass
        assert scores[0, p].item() == pytest.approx(alone.item(), abs=1e-12)
    assert scores[1, 5:].eq(0).all()  # <pad> targets
    torch.testing.assert_close(scores[1, :5], model.sequence_logprobs(ids[1:, :6])[0], rtol=0, atol=1e-12)


def test_sliding_with_stride_1_gives_every_token_a_full_window_of_context():
    model = tiny_gpt(modern=True, block_size=8)
    ids = long_rows()[:1]
    scores = model.sequence_logprobs(ids)  # the default stride, 1
    for t in range(1, ids.shape[1]):
        context = ids[:, max(0, t - 8) : t]  # the last 8 tokens
        want = model.next_token_logprobs(context)[0, ids[0, t]]
        assert scores[0, t - 1].item() == pytest.approx(want.item(), abs=1e-12)
    wider = tiny_gpt(modern=True, block_size=32)  # RoPE: the same weights read all 26 tokens at once
    assert not torch.allclose(wider.sequence_logprobs(ids)[:, 8:], scores[:, 8:])
    torch.testing.assert_close(wider.sequence_logprobs(ids)[:, :8], scores[:, :8], rtol=0, atol=1e-12)


def test_reset_at_bos_reads_each_sentence_of_a_stream_as_if_alone():
    model = tiny_gpt(reset_at_bos=True)
    one, two = encode_batch(VOCAB, [SAM[0]]), encode_batch(VOCAB, [SAM[2]])[:, :-1]
    joined = torch.cat([one, two], dim=1)
    torch.testing.assert_close(model(joined)[:, one.shape[1] :], model(two), rtol=0, atol=1e-12)
    plain = tiny_gpt()
    assert not torch.allclose(plain(joined)[:, one.shape[1] :], plain(two))


@pytest.mark.parametrize("settings", [{}, {"modern": True, "n_kv_heads": 2}, {"reset_at_bos": True}])
def test_attention_weights_are_the_weights_each_head_multiplied_its_values_by(settings):
    model = tiny_gpt(**settings)
    ids = torch.cat([encode_batch(VOCAB, [SAM[0]]), encode_batch(VOCAB, [SAM[2]])[:, :-1]], dim=1)  # two sentences
    seen = []
    hooks = [b.attn.register_forward_hook(lambda m, args, out: seen.append((m, args[0], out[0]))) for b in model.blocks]
    weights = attention_weights(model, ids)  # [1, L, h, T, T]
    for hook in hooks:
        hook.remove()
    T = ids.shape[1]
    assert weights.shape == (1, 2, 4, T, T)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, 4, T, dtype=weights.dtype))
    assert (weights.triu(diagonal=1) == 0).all()  # no query looks ahead
    if settings.get("reset_at_bos"):  # the second sentence does not look at the first
        assert (weights[..., len(SAM[0]) + 2 :, : len(SAM[0]) + 2] == 0).all()
    for layer, (attn, x, out) in enumerate(seen):
        v = attn.qkv(x).split(attn.widths, dim=-1)[2]
        v = repeat_kv(split_heads(v, attn.n_kv_heads), attn.n_heads // attn.n_kv_heads)  # [1, h, T, d_k]
        torch.testing.assert_close(attn.proj(merge_heads(weights[:, layer] @ v)), out, rtol=0, atol=1e-12)


@pytest.mark.parametrize("modern", [False, True])
def test_perplexity_falls_below_the_unigram_within_a_few_steps(modern):
    from lmlib.ngram import NGramLM
    from lmlib.train import TrainConfig, encode_stream, train

    torch.manual_seed(0)
    config = (GPTConfig.modern if modern else GPTConfig)(len(VOCAB), block_size=16, d_model=32, n_heads=4,
                                                         reset_at_bos=modern)
    model = GPT(config, VOCAB)
    stream = encode_stream(VOCAB, SAM * 4)
    before = perplexity(model.eval(), SAM)
    train(model, stream, stream, TrainConfig(steps=20, batch_size=8, block=12, lr=1e-2, warmup=5, eval_every=20),
          progress=False)
    unigram = NGramLM(1, "mle").fit(SAM).perplexity(SAM)
    after = perplexity(model.eval(), SAM)
    assert after < unigram < before, (before, unigram, after)


# --- the chapter's build-up: a bigram model and attention-only blocks -----------------------------


def test_no_blocks_and_no_positions_is_a_bigram_model():
    model = tiny_gpt(n_layers=0, positions="none", tie_weights=False)
    assert model.position_embedding is None and len(model.blocks) == 0
    ids = encode_batch(VOCAB, SAM)  # [4, T]
    logits = model(ids)
    # independent reference: each token's logits from its own embedding alone, W_out LayerNorm(E[w])
    norm = model.final_norm
    want = F.layer_norm(model.token_embedding.weight[ids], (16,), norm.weight, norm.bias, 1e-5)
    want = (want @ model.lm_head.weight.T).masked_fill(model.never_predicted, -math.inf)
    torch.testing.assert_close(logits, want, rtol=0, atol=1e-12)
    same = ids == VOCAB.stoi["Sam"]  # "Sam" at several positions, after several tokens: the same logits
    assert same.sum() >= 3 and (logits[same] == logits[same][0]).all()
    check_language_model(model, SAM, atol=1e-9)


def test_an_attention_only_block_is_the_full_block_without_its_mlp():
    full, bare = tiny_gpt(), tiny_gpt(mlp="none")
    assert all(block.mlp is None and block.mlp_norm is None for block in bare.blocks)
    assert not any(".mlp" in name for name, _ in bare.named_parameters())
    with torch.no_grad():
        for block in full.blocks:  # an MLP whose output layer is 0 adds nothing to the residual stream
            block.mlp.proj.weight.zero_()
            block.mlp.proj.bias.zero_()
    bare.load_state_dict({k: v for k, v in full.state_dict().items() if ".mlp" not in k})
    ids = encode_batch(VOCAB, SAM)
    torch.testing.assert_close(bare(ids), full(ids), rtol=0, atol=1e-12)
    assert not torch.allclose(tiny_gpt()(ids).nan_to_num(), full(ids).nan_to_num())  # the MLP did matter
    check_language_model(bare, SAM, atol=1e-9)


def test_the_build_up_models_train_and_refuse_what_they_cannot_do():
    from lmlib.train import TrainConfig, encode_stream, train

    stream = encode_stream(VOCAB, SAM * 4)
    for settings in ({"n_layers": 0, "positions": "none"}, {"n_layers": 1, "n_heads": 1, "mlp": "none"}):
        torch.manual_seed(0)
        model = GPT(GPTConfig(len(VOCAB), block_size=16, d_model=16, **settings), VOCAB)
        before = perplexity(model.eval(), SAM)
        train(model, stream, stream, TrainConfig(steps=20, batch_size=8, block=12, lr=1e-2, warmup=5,
                                                 eval_every=20), progress=False)
        assert perplexity(model.eval(), SAM) < before
    bigram = tiny_gpt(n_layers=0, positions="none")
    with pytest.raises(ValueError, match="n_layers=0: no attention"):
        attention_weights(bigram, encode_batch(VOCAB, SAM[:1]))
    with pytest.raises(ValueError, match="positions='none'"):
        bigram.to_hf()
    with pytest.raises(ValueError, match="mlp='none'"):
        tiny_gpt(mlp="none").to_hf()


def test_dropout_applies_in_training_only():
    model = tiny_gpt(dropout=0.5).train()
    ids = encode_batch(VOCAB, SAM)
    assert not torch.equal(model(ids), model(ids))
    model.eval()
    assert torch.equal(model(ids), model(ids))


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    ({"d_model": 30, "n_heads": 4}, r"n_heads=4 does not divide d_model=30.*\[1, 2, 3, 5, 6, 10, 15, 30\]"),
    ({"n_heads": 4, "n_kv_heads": 3}, "n_kv_heads=3 does not divide n_heads=4"),
    ({"positions": "sinusoidal"}, "positions must be one of"),
    ({"mlp": "relu"}, "mlp must be one of"),
    ({"positions": "rope", "d_model": 12, "n_heads": 4}, "d_model / n_heads must be even"),
    ({"block_size": 0}, "block_size must be >= 1"),
    ({"n_layers": -1}, "n_layers must be >= 0"),
    ({"mlp": "none", "positions": "sinusoidal"}, r"positions must be one of \('learned', 'rope', 'none'\)"),
    ({"block_size": 8, "window_stride": 9}, "window_stride must be between 1 and block_size=8"),
    ({"vocab_size": 3}, "vocab_size is 3 but the vocabulary has"),
])
def test_bad_config_gets_a_clear_error(settings, message):
    with pytest.raises(ValueError, match=message):
        GPT(GPTConfig(**{"vocab_size": len(VOCAB), "d_model": 16, **settings}), VOCAB)


def test_a_sequence_longer_than_the_window_needs_a_stride_that_can_slide():
    model = tiny_gpt(block_size=8)
    ids = long_rows()
    with pytest.raises(ValueError, match="block_size=8.*sequence_logprobs"):
        model(ids)
    for stride in (0, 9, 2.5):
        with pytest.raises(ValueError, match=f"cannot slide the window with stride={stride}"):
            model.sequence_logprobs(ids, stride)


def test_from_hf_names_the_supported_architectures():
    bare = transformers.GPT2Model(transformers.GPT2Config(vocab_size=10, n_positions=4, n_embd=8, n_layer=1,
                                                          n_head=2, bos_token_id=0, eos_token_id=0))
    for model in (bare, torch.nn.Linear(2, 2)):
        with pytest.raises(TypeError, match="supports GPT2LMHeadModel and LlamaForCausalLM, got"):
            GPT.from_hf(model)


@pytest.mark.parametrize("kind, settings, message", [
    ("gpt2", {**GPT2_CONFIGS[2], "scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=True"),
    ("gpt2", {**GPT2_CONFIGS[2], "activation_function": "relu"}, "activation_function='relu'"),
    ("llama", {**LLAMA_CONFIGS[2], "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}},
     "rope_parameters="),
    ("llama", {**LLAMA_CONFIGS[2], "mlp_bias": False}, "attention_bias=True"),
])
def test_from_hf_refuses_options_it_cannot_reproduce(kind, settings, message):
    with pytest.raises(ValueError, match=message):
        GPT.from_hf(hf_model(kind, settings, seed=0))


def test_from_hf_refuses_a_vocabulary_of_another_size():
    theirs = hf_model("gpt2", GPT2_CONFIGS[2], seed=0)
    with pytest.raises(ValueError, match=f"vocabulary has {len(VOCAB)} entries but the GPT2LMHeadModel has 23 rows"):
        GPT.from_hf(theirs, VOCAB)


def test_a_model_without_a_vocabulary_gives_logits_but_is_not_a_language_model():
    theirs = hf_model("gpt2", GPT2_CONFIGS[2], seed=0)
    bare = GPT.from_hf(theirs)
    ids = torch.tensor([[1, 2, 3]])
    assert bare(ids).shape == (1, 3, 23)
    logp, _ = bare.decode_step(ids, None)
    torch.testing.assert_close(logp, theirs(ids).logits[:, -1].log_softmax(-1), rtol=0, atol=1e-4)
    assert not isinstance(bare, LanguageModel)
    with pytest.raises(TypeError, match="GPT is not a LanguageModel"):
        G.greedy(bare)
    with pytest.raises(ValueError, match="sequence_logprobs needs the model's vocabulary.*from_hf"):
        bare.sequence_logprobs(torch.tensor([[1, 2, 3]]))
    with pytest.raises(ValueError, match="needs the model's vocabulary"):
        bare.next_token_logprobs(torch.tensor([[1, 2, 3]]))


def test_to_hf_refuses_a_block_hugging_face_does_not_have():
    mixed = GPT(GPTConfig(len(VOCAB), d_model=16, n_heads=4, positions="rope"), VOCAB)  # RoPE with LayerNorm, GELU
    with pytest.raises(ValueError, match="LlamaForCausalLM, which has no norm='layernorm'"):
        mixed.to_hf()
    gqa = GPT(GPTConfig(len(VOCAB), d_model=16, n_heads=4, n_kv_heads=2), VOCAB)
    with pytest.raises(ValueError, match="GPT2LMHeadModel, which has no n_kv_heads=2"):
        gqa.to_hf()


def test_the_two_blocks_are_written_once():
    from lmlib.transformer import GPT2_BLOCK, MODERN_BLOCK

    default, modern = GPTConfig(10), GPTConfig.modern(10)
    assert {k: getattr(default, k) for k in GPT2_BLOCK} == GPT2_BLOCK  # GPTConfig's defaults are GPT-2's block
    assert {k: getattr(modern, k) for k in MODERN_BLOCK} == MODERN_BLOCK
    assert set(GPT2_BLOCK) == set(MODERN_BLOCK)  # the same settings, chosen two ways


# --- decoding with the cache: the full forward, and the tokens recorded before the speed-ups -----------------


@pytest.mark.parametrize("settings", [{}, {"modern": True, "n_kv_heads": 2}, {"block_size": 8, "window_stride": 3}])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_cached_step_equals_the_full_forward_up_to_and_past_a_full_window(settings, dtype):
    """A batch of 3 different rows read one token at a time for 23 steps: while the window fills (its last
    cached step reads exactly block_size tokens), then, past it, through the re-read windows."""
    model = tiny_gpt(dtype=dtype, **{"block_size": 16, **settings})
    ids = torch.randint(4, len(VOCAB), (3, 24), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = VOCAB.bos_id
    atol = 1e-9 if dtype == torch.float64 else 2e-5
    logp, cache = model.decode_step(ids[:, :1], None)
    for t in range(2, ids.shape[1] + 1):  # the context is ids[:, :t]
        logp, cache = model.decode_step(ids[:, t - 1 : t], cache)
        full = model.next_token_logprobs(ids[:, :t])  # the window's tokens read from scratch, no cache
        torch.testing.assert_close(logp, full, rtol=0, atol=atol, msg=f"step {t}")
        assert cache.ids.shape[1] == t - model.window_start(t)  # the cache holds the window's tokens, no more


# Made by main's GPT and lmlib.generate at commit af4bff3, before issue 27 cut the work of the decoding loop per
# step: every later change to it or to decode_step must keep them (tests/test_generate.py holds the recurrent
# model's and the decodings' definition).
RECORDED_GPT_TOKENS = {"gpt2": {"greedy": [[1, 1, 1, 1, 1, 1, 1, 1, 11, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                            1, 1, 1, 1, 1, 1]],
                                "sample0": [[11, 9, 7, 1, 1, 3], [6, 3], [3]],
                                "filtered0": [[7, 1, 3], [3]],
                                "stream0": [[11, 6, 3]],
                                "sample1": [[1, 1, 1, 3], [1, 3], [1, 1, 3]],
                                "filtered1": [[1, 1, 1, 1, 1, 1, 1, 1, 6], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3]],
                                "stream1": [[1, 1, 1, 1, 3]]},
                       "modern": {"greedy": [[12, 9, 12, 12, 5, 12, 9, 11, 9, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
                                              12, 12, 12, 11, 12, 12, 7, 7, 7, 7, 7]],
                                  "sample0": [[12, 12, 6, 7, 7, 8, 11, 11, 7, 10, 10, 4, 12, 6, 12, 7, 13, 7, 12, 4],
                                              [12, 9, 7, 6, 11, 7, 7, 5, 6, 11, 12, 6, 12, 7, 7, 11, 12, 3],
                                              [9, 12, 9, 5, 9, 7, 6, 8, 8, 5, 5, 12, 12, 5, 8, 5, 11, 12, 7, 11]],
                                  "filtered0": [[12, 9, 12, 4, 9, 9, 6],
                                                [12, 12, 12, 9, 12, 7, 9, 9, 12, 7, 7, 9, 12, 3]],
                                  "stream0": [[12, 11, 9, 12, 12, 12, 5, 8, 9, 7, 7, 5, 6, 11, 9, 8, 8, 7, 11, 12]],
                                  "sample1": [[5, 6, 9, 11, 12, 3],
                                              [5, 9, 11, 12, 6, 11, 12, 12, 12, 12, 5, 12, 6, 12, 12, 13, 6, 6, 8, 8],
                                              [5, 5, 9, 8, 5, 6, 11, 13, 12, 7, 12, 8, 9, 11, 7, 7, 7, 7, 7, 7]],
                                  "filtered1": [[5, 8, 11, 11, 12, 12, 12, 7, 11, 11, 12, 12, 12, 7, 12, 4, 11, 12,
                                                 12, 8],
                                                [8, 8, 9, 12, 8, 9, 8, 8, 8, 8, 12, 12, 7, 12, 11, 9, 12, 7, 7, 7]],
                                  "stream1": [[5, 6, 6, 5, 9, 5, 8, 9, 9, 9, 9, 7, 12, 8, 5, 5, 9, 5, 9, 11]]},
                       "window": {"greedy": [[8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
                                              8, 8, 8, 8, 8, 8]],
                                  "sample0": [[12, 11, 4, 6, 6, 7, 3], [8, 8, 8, 8, 8, 8, 4, 8, 8, 4, 8, 3],
                                              [6, 8, 8, 3]],
                                  "filtered0": [[8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4, 8, 8, 4, 8, 3],
                                                [8, 8, 8, 8, 8, 3]],
                                  "stream0": [[13, 8, 8, 11, 8, 8, 3]],
                                  "sample1": [[3], [3], [3]],
                                  "filtered1": [[3], [3]],
                                  "stream1": [[1, 3]]}}


@pytest.mark.parametrize("name, settings", [("gpt2", {"block_size": 32}),
                                            ("modern", {"modern": True, "n_kv_heads": 2, "block_size": 32}),
                                            ("window", {"block_size": 8, "window_stride": 3})])
def test_decoding_gives_the_tokens_recorded_before_the_speed_ups(name, settings):
    assert recorded_decodings(tiny_gpt(**settings)) == RECORDED_GPT_TOKENS[name]
