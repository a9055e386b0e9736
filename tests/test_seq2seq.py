"""lmlib.seq2seq: the encoder-decoder gives Hugging Face's BART and mBART logits (padded sources included) and
round-trips exactly; lmlib.generate on model.condition(source) gives HF generate's greedy and beam-search ids;
the cache gives what re-reading gives; padding changes nothing, the decoder is causal; it learns through
lmlib.train; bad input gets clear errors."""

from __future__ import annotations

import pytest
import torch
import transformers

from lmlib import generate as G
from lmlib.lm import IncrementalDecoding, LanguageModel, check_language_model, encode_batch, token_logprobs
from lmlib.seq2seq import (
    ConditionalLM,
    DecoderState,
    Seq2Seq,
    Seq2SeqConfig,
    cross_attention_weights,
    encode_pairs,
    greedy_translate,
    split_pair_rows,
)
from lmlib.tokenize import Vocab
from lmlib.train import TrainConfig, train
from tests.test_generate import PlainView

VOCAB = Vocab(list("abcdefgh"))
SOURCES = [list("abc"), list("hgfedcba"), list("e")]
TARGETS = [list("cba"), list("abcdefgh"), list("ee")]


def tiny(norm_first: bool = False, dtype=torch.float64, scale: float = 0.3, seed: int = 0, **settings) -> Seq2Seq:
    """A small model with weights moved well off their initialisation (distributions far from uniform)."""
    torch.manual_seed(seed)
    size = {"max_positions": 16, "d_model": 16, "n_heads": 2, "n_encoder_layers": 2, "n_decoder_layers": 2}
    model = Seq2Seq(Seq2SeqConfig(len(VOCAB), **{**size, "norm_first": norm_first, **settings}), VOCAB).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model.eval()


def padded_sources(model_vocab: Vocab = VOCAB) -> torch.Tensor:
    """[3, S] source rows ``x <eos> <pad>..`` of different lengths."""
    return split_pair_rows(encode_pairs(model_vocab, list(zip(SOURCES, TARGETS, strict=True))), model_vocab)[0]


# --- Hugging Face -------------------------------------------------------------------------------

HF_CONFIGS = [  # (class prefix, settings): BART is post-norm, mBART pre-norm
    ("Bart", {"vocab_size": 30, "d_model": 32, "encoder_layers": 2, "decoder_layers": 3, "encoder_attention_heads": 4,
              "decoder_attention_heads": 4, "encoder_ffn_dim": 40, "decoder_ffn_dim": 40,
              "max_position_embeddings": 20, "activation_function": "gelu_new"}),
    ("Bart", {"vocab_size": 17, "d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 1,
              "decoder_attention_heads": 1, "encoder_ffn_dim": 24, "decoder_ffn_dim": 24,
              "max_position_embeddings": 12, "activation_function": "gelu_pytorch_tanh", "scale_embedding": True}),
    ("MBart", {"vocab_size": 30, "d_model": 24, "encoder_layers": 3, "decoder_layers": 2, "encoder_attention_heads": 3,
               "decoder_attention_heads": 3, "encoder_ffn_dim": 48, "decoder_ffn_dim": 48,
               "max_position_embeddings": 20, "activation_function": "gelu_new", "scale_embedding": True}),
]


def hf_model(kind: str, settings: dict, seed: int) -> torch.nn.Module:
    """A Hugging Face model built from a config (no download), every weight moved off its initial value."""
    torch.manual_seed(seed)
    config = getattr(transformers, f"{kind}Config")(pad_token_id=0, bos_token_id=2, eos_token_id=3, **settings)
    model = getattr(transformers, f"{kind}ForConditionalGeneration")(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model.eval()


@pytest.mark.parametrize("kind, settings", HF_CONFIGS, ids=lambda x: x if isinstance(x, str) else "")
def test_from_hf_gives_the_hf_logits_with_padded_sources_and_round_trips(kind, settings):
    theirs = hf_model(kind, settings, seed=settings["d_model"])
    ours = Seq2Seq.from_hf(theirs)
    assert ours.config.norm_first == (kind == "MBart")
    torch.manual_seed(1)
    V, P = settings["vocab_size"], settings["max_position_embeddings"]
    source, target = torch.randint(4, V, (3, P)), torch.randint(4, V, (3, P))
    mask = torch.ones_like(source)
    mask[1, P // 2 :], mask[2, 2:] = 0, 0  # two padded sources
    source = source.masked_fill(mask == 0, 0)
    with torch.no_grad():
        gap = (ours(source, target, mask.bool()) - theirs(input_ids=source, attention_mask=mask,
                                                          decoder_input_ids=target).logits).abs().max().item()
    assert gap <= 1e-5, gap
    back = ours.to_hf()
    assert type(back) is type(theirs)
    expected = theirs.state_dict()
    for name, tensor in back.state_dict().items():
        if "embed_positions" in name:  # rows 0 and 1 are never read (BART's offset): not carried
            tensor, expected[name] = tensor[2:], expected[name][2:]
        assert torch.equal(tensor, expected[name]), name
    again = Seq2Seq.from_hf(back)
    assert again.config == ours.config
    for name, tensor in again.state_dict().items():
        assert torch.equal(tensor, ours.state_dict()[name]), name


@pytest.mark.parametrize("norm_first", [False, True])
def test_a_course_model_goes_to_hf_with_the_same_logits_never_predicted_tokens_included(norm_first):
    ours = tiny(norm_first, dtype=torch.float32)
    theirs = ours.to_hf()
    source, target = padded_sources(), encode_batch(VOCAB, TARGETS)
    with torch.no_grad():
        logits = ours(source, target)
        hf_logits = theirs(input_ids=source, attention_mask=(source != VOCAB.pad_id).long(),
                           decoder_input_ids=target).logits
    assert torch.equal(torch.isinf(logits), torch.isinf(hf_logits))  # <pad>, <bos>: -inf in both
    finite = torch.isfinite(logits)
    assert (logits[finite] - hf_logits[finite]).abs().max() <= 1e-5
    back = Seq2Seq.from_hf(theirs, VOCAB)
    torch.testing.assert_close(back(source, target), logits, rtol=0, atol=0)


def hf_generate(theirs, source: list[str], **settings) -> tuple[list[list[int]], list[float] | None]:
    """HF generate's continuations (cut after their first <eos>: HF fills finished rows with <eos>, not <pad>,
    when pad_token_id is 0) and, for beam search, their scores."""
    ids = torch.tensor([[*VOCAB.encode(source), VOCAB.eos_id]])
    out = theirs.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, return_dict_in_generate=True,
                          output_scores=True, **settings)
    rows = [row[1:].tolist() for row in out.sequences]  # after the decoder's start token, <bos>
    rows = [row[: row.index(VOCAB.eos_id) + 1] if VOCAB.eos_id in row else row for row in rows]
    scores = out.get("sequences_scores")
    return rows, None if scores is None else scores.tolist()


def reversal_rows(n: int = 400) -> torch.Tensor:
    """``encode_pairs`` rows of n words of 2 to 5 letters of VOCAB, each with its reversal as the target."""
    letters = torch.randint(0, 8, (n, 5), generator=torch.Generator().manual_seed(0)).tolist()
    words = [[chr(ord("a") + j) for j in row[: 2 + i % 4]] for i, row in enumerate(letters)]
    return encode_pairs(VOCAB, [(w, w[::-1]) for w in words])


@pytest.fixture(scope="module")
def half_trained() -> Seq2Seq:
    """A pre-norm model after 40 steps of learning to reverse words: its best beams end, at different lengths."""
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(len(VOCAB), max_positions=16, d_model=16, n_heads=2, norm_first=True), VOCAB)
    train(model, reversal_rows(), None, TrainConfig(steps=40, batch_size=32, lr=1e-2, warmup=5), progress=False)
    return model.eval()


# random models (norm_first, weight scale, seed) whose best beams are finished and unfinished; the half-trained one
BEAM_CASES = [((False, 0.1, 2), "hg"), ((True, 0.1, 2), "abc"), ((True, 0.1, 3), "abcde"), ("half-trained", "hgfed")]


@pytest.mark.parametrize("case, source", BEAM_CASES)
def test_greedy_and_beam_search_give_the_ids_and_scores_of_hf_generate(case, source, half_trained):
    ours = half_trained if case == "half-trained" else tiny(case[0], dtype=torch.float32, scale=case[1], seed=case[2])
    theirs = ours.to_hf()
    conditioned = ours.condition(list(source))
    hf_greedy, _ = hf_generate(theirs, list(source), max_new_tokens=12, num_beams=1)
    assert [G.greedy(conditioned, max_tokens=12).ids] == hf_greedy
    lengths = set()
    for length_penalty in (1.0, 2.0, 0.0):
        beams = G.beam_search(conditioned, max_tokens=12, num_beams=4, num_return=4, length_penalty=length_penalty)
        # early_stopping="never": stop when no live beam can still win, bounding its score with max_length for a
        # positive penalty, as lmlib does (HF's default, False, bounds it with the current length: a heuristic)
        hf_ids, hf_scores = hf_generate(theirs, list(source), max_new_tokens=12, num_beams=4, num_return_sequences=4,
                                        early_stopping="never", length_penalty=length_penalty)
        assert [b.ids for b in beams] == hf_ids
        assert [b.score for b in beams] == pytest.approx(hf_scores, abs=1e-5)
        lengths |= {(len(b.ids), b.finished) for b in beams}
    assert len(lengths) > 1 and any(finished for _, finished in lengths)  # hypotheses of several kinds


def test_from_hf_refuses_what_it_cannot_reproduce():
    kind, settings = HF_CONFIGS[1]
    for change, message in [({"activation_function": "gelu"}, "activation_function='gelu'"),
                            ({"decoder_attention_heads": 2}, "decoder_attention_heads=2"),
                            ({"decoder_ffn_dim": 8}, "decoder_ffn_dim=8")]:
        with pytest.raises(ValueError, match=message):
            Seq2Seq.from_hf(hf_model(kind, {**settings, **change}, seed=0))
    biased = hf_model(kind, settings, seed=0)
    biased.final_logits_bias[0, 5] = 0.5
    with pytest.raises(ValueError, match="final_logits_bias is not 0"):
        Seq2Seq.from_hf(biased)
    with pytest.raises(ValueError, match="vocabulary has 12 entries but the BartForConditionalGeneration has 17"):
        Seq2Seq.from_hf(hf_model(kind, settings, seed=0), VOCAB)
    with pytest.raises(TypeError, match="supports BartForConditionalGeneration and MBartForConditionalGeneration"):
        Seq2Seq.from_hf(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="BART's LayerNorms have eps 1e-5"):
        tiny(norm_eps=1e-6).to_hf()


# --- the language model of one source's targets -------------------------------------------------


@pytest.mark.parametrize("settings", [{}, {"norm_first": True}, {"scale_embedding": True, "n_encoder_layers": 0},
                                      {"norm_first": True, "fast": False, "n_decoder_layers": 3}])
def test_a_conditioned_model_is_a_language_model_that_decodes_through_its_cache(settings):
    model = tiny(**settings)
    conditioned = model.condition(list("hgfe"))
    assert isinstance(conditioned, ConditionalLM) and isinstance(conditioned, LanguageModel)
    assert isinstance(conditioned, IncrementalDecoding)
    # teacher forcing = step by step = the cache, reordered rows included; an empty target (<eos> only)
    check_language_model(conditioned, [*TARGETS, list("hhhhhhhh"), []], atol=1e-9)
    plain = PlainView(conditioned)
    for decode in (lambda m: [G.greedy(m, max_tokens=15, suppress=["<eos>"])],
                   lambda m: G.beam_search(m, max_tokens=10, num_beams=3, num_return=3),
                   lambda m: G.sample(m, max_tokens=12, num_samples=4, generator=torch.Generator().manual_seed(3))):
        cached, uncached = decode(conditioned), decode(plain)
        assert [g.ids for g in cached] == [g.ids for g in uncached]
        assert [g.logprob for g in cached] == pytest.approx([g.logprob for g in uncached], abs=1e-9)


def test_the_source_is_encoded_once_and_the_cache_holds_every_target_token_read():
    model = tiny()
    conditioned = model.condition(list("abc"))
    memory = conditioned.memory
    assert len(memory.layers) == 2 and memory.layers[0][0].shape == (1, 2, 4, 8)  # [1, h, S (abc<eos>), d_k]
    ids = encode_batch(VOCAB, [list("hgf")])[:, :3]
    _, state = conditioned.decode_step(ids, None)
    assert isinstance(state, DecoderState) and state.length == 3
    assert state.memory.layers[0][0].data_ptr() == memory.layers[0][0].data_ptr()  # a view of the one encoding
    _, state = conditioned.decode_step(ids[:, :1], state)
    assert state.length == 4 and state.cache.layers[1][0].shape == (1, 2, 4, 8)


def test_padding_in_a_batch_of_sources_changes_nothing():
    model = tiny(norm_first=True)
    source, target = padded_sources(), encode_batch(VOCAB, TARGETS)
    together = model(source, target)
    for i, (x, y) in enumerate(zip(SOURCES, TARGETS, strict=True)):
        alone = model(source[i : i + 1, : len(x) + 1], target[i : i + 1, : len(y) + 2])
        torch.testing.assert_close(together[i : i + 1, : len(y) + 2], alone, rtol=0, atol=1e-12)
        # and scores through condition() are the same numbers
        scored = token_logprobs(model.condition(x), [y])
        expected = model.target_logprobs(model.hidden_states(target[i : i + 1, : len(y) + 1], DecoderState(
            model.encode(source[i : i + 1, : len(x) + 1])))[0], target[i : i + 1, 1 : len(y) + 2])
        torch.testing.assert_close(scored, expected[0].double(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_greedy_translate_gives_lmlib_generate_greedy_of_each_source(batch_size):
    """Batched greedy decoding of padded sources = lmlib.generate.greedy on each source alone, for sources
    that stop early (<eos>) and sources cut at max_tokens, in every batch split."""
    model = tiny(seed=2)  # one source's translation is empty (<eos> first), the others reach max_tokens
    sources = [*SOURCES, list("dd"), list("habg")]
    expected = [G.greedy(model.condition(x), max_tokens=7).tokens for x in sources]
    assert any(len(t) < 7 for t in expected) and any(len(t) == 7 for t in expected)  # both endings are tested
    assert greedy_translate(model, sources, max_tokens=7, batch_size=batch_size) == expected
    with pytest.raises(ValueError, match=r"not in the model's vocabulary: \['z'\]"):
        greedy_translate(model, [list("ab"), list("az")])


def test_the_decoder_is_causal_and_the_encoder_reads_both_ways():
    model = tiny()
    source, target = padded_sources()[1:2], encode_batch(VOCAB, [TARGETS[1]])
    logits = model(source, target)
    changed = target.clone()
    changed[0, 5] = VOCAB.stoi["a"] if changed[0, 5] != VOCAB.stoi["a"] else VOCAB.stoi["b"]
    after = model(source, changed)
    torch.testing.assert_close(after[:, :5], logits[:, :5], rtol=0, atol=0)  # no position sees a later token
    assert not torch.allclose(after[:, 5:], logits[:, 5:])
    last_source = source.clone()
    last_source[0, -2] = VOCAB.stoi["h"] if last_source[0, -2] != VOCAB.stoi["h"] else VOCAB.stoi["g"]
    assert not torch.allclose(model(last_source, target)[:, 0], logits[:, 0])  # every position sees the source


def test_fast_path_equals_the_teaching_path_in_logits_and_gradients():
    fast, slow = tiny(norm_first=True), tiny(norm_first=True, fast=False)
    slow.load_state_dict(fast.state_dict())
    source, target = padded_sources(), encode_batch(VOCAB, TARGETS)
    a, b = fast(source, target), slow(source, target)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    a[torch.isfinite(a)].sum().backward()
    b[torch.isfinite(b)].sum().backward()
    for (name, p), q in zip(fast.named_parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-9, msg=name)


def test_cross_attention_weights_are_distributions_over_the_real_source_tokens():
    model = tiny()
    source, target = padded_sources(), encode_batch(VOCAB, TARGETS)
    weights = cross_attention_weights(model, source, target)  # [B, layers, h, T, S]
    assert weights.shape == (3, 2, 2, target.shape[1], source.shape[1])
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=weights.dtype))
    assert (weights.permute(0, 4, 1, 2, 3)[source == VOCAB.pad_id] == 0).all()
    assert all(not block.cross_attn.keep_weights for block in model.decoder_blocks)


# --- training -----------------------------------------------------------------------------------


def test_encode_pairs_rows_split_back_into_sources_and_targets():
    pairs = list(zip(SOURCES, TARGETS, strict=True))
    rows = encode_pairs(VOCAB, pairs)
    assert rows.shape == (3, 9 + 10)  # 8 letters + <eos>; <bos> + 8 letters + <eos>
    source, target = split_pair_rows(rows, VOCAB)
    for i, (x, y) in enumerate(pairs):
        assert VOCAB.decode(source[i, : len(x) + 1]) == [*x, "<eos>"]
        assert VOCAB.decode(target[i, : len(y) + 2]) == ["<bos>", *y, "<eos>"]
    short, _ = split_pair_rows(rows[[0, 2]], VOCAB)
    assert short.shape == (2, 4)  # a batch of short pairs reads only the columns it uses
    with pytest.raises(ValueError, match="not encode_pairs rows"):
        split_pair_rows(torch.stack([rows[0], rows[1].roll(1)]), VOCAB)  # <bos> in different columns
    with pytest.raises(ValueError, match="pair 1 has an empty source or target"):
        encode_pairs(VOCAB, [pairs[0], ([], ["a"])])
    with pytest.raises(ValueError, match="more than max_positions=8"):
        encode_pairs(VOCAB, pairs, max_positions=8)


def test_learns_to_reverse_words_through_the_training_loop():
    rows = reversal_rows()
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(len(VOCAB), max_positions=8, d_model=32, n_heads=4, norm_first=True), VOCAB)
    history = train(model, rows[:350], rows[350:], TrainConfig(steps=100, batch_size=32, lr=1e-2, warmup=10,
                                                                  eval_every=100), progress=False)
    assert history["valid_loss"][-1] < 0.2 * history["train_loss"][0]  # from ln 11 (uniform) towards 0
    assert G.greedy(model.condition(list("hgfe")), max_tokens=6).tokens == list("efgh")
    with pytest.raises(TypeError, match="2-D LongTensor of \\(source, target\\) rows"):
        train(model, rows.flatten(), None, TrainConfig(steps=1), progress=False)


# --- bad input ----------------------------------------------------------------------------------


def test_bad_input_gets_a_clear_error():
    model = tiny()
    with pytest.raises(ValueError, match="the source is empty"):
        model.condition([])
    with pytest.raises(ValueError, match="source has 17 tokens but the model reads at most max_positions=16"):
        model.condition(list("abcdefgh") * 2)  # with <eos>, 17
    with pytest.raises(ValueError, match=r"not in the model's vocabulary: \['z'\]"):
        model.condition(list("abz"))
    with pytest.raises(TypeError, match="a list of tokens"):
        model.condition("abc")
    with pytest.raises(ValueError, match="may not contain"):
        model.condition(["a", "<eos>"])
    with pytest.raises(ValueError, match="decode with max_tokens <= 15"):
        G.greedy(model.condition(list("ab")), max_tokens=20, suppress=["<eos>"])
    with pytest.raises(TypeError, match="model.condition"):
        model.sequence_logprobs(encode_batch(VOCAB, TARGETS))
    with pytest.raises(TypeError, match="model.condition"):
        model.hidden_states(encode_batch(VOCAB, TARGETS))
    with pytest.raises(ValueError, match="a source row is all padding"):
        model(torch.tensor([[4, 3], [0, 0]]), torch.tensor([[2], [2]]))
    with pytest.raises(ValueError, match="n_decoder_layers must be >= 1"):
        Seq2Seq(Seq2SeqConfig(len(VOCAB), n_decoder_layers=0), VOCAB)
    with pytest.raises(ValueError, match="n_heads=3 does not divide d_model=16"):
        Seq2Seq(Seq2SeqConfig(len(VOCAB), d_model=16, n_heads=3), VOCAB)
    with pytest.raises(ValueError, match="vocab_size is 5 but the vocabulary has 12"):
        Seq2Seq(Seq2SeqConfig(5), VOCAB)
