"""lmlib.finetune: LoRA against peft on the same weights, its merge, the classification head and its errors."""

from __future__ import annotations

import pytest
import torch

from lmlib import finetune as FT
from lmlib.lm import encode_batch
from lmlib.tokenize import Vocab
from lmlib.transformer import GPT, GPTConfig

SENTENCES = [s.split() for s in ["I am Sam", "Sam I am", "I do not like green eggs and ham", "I am not Sam"]]
VOCAB = Vocab([w for s in SENTENCES for w in s])


def tiny_gpt(modern: bool = False) -> GPT:
    torch.manual_seed(0)
    config = (GPTConfig.modern if modern else GPTConfig)(len(VOCAB), block_size=16, d_model=16, n_heads=4, n_layers=2)
    return GPT(config, VOCAB).eval()


@pytest.mark.parametrize("modern", [False, True])
def test_lora_gives_peft_outputs_from_the_same_base_weights_and_the_same_a_and_b(modern):
    import peft
    ids = encode_batch(VOCAB, SENTENCES)
    theirs = peft.get_peft_model(tiny_gpt(modern), peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                                   target_modules=["qkv", "fc"]))
    ours = tiny_gpt(modern)
    assert sorted(FT.add_lora(ours, r=4, alpha=8, targets=("attn.qkv", "mlp.fc"))) == sorted(
        n.removeprefix("base_model.model.") for n, m in theirs.named_modules() if type(m).__name__ == "Linear"
        and hasattr(m, "lora_A"))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, module in ours.named_modules():
            if isinstance(module, FT.LoRALinear):
                other = theirs.base_model.model.get_submodule(name)
                module.lora_B.normal_()  # B = 0 would hide a wrong scale or a transposed A
                other.lora_A["default"].weight.copy_(module.lora_A)
                other.lora_B["default"].weight.copy_(module.lora_B)
    torch.testing.assert_close(ours(ids), theirs(ids), rtol=0, atol=1e-5)
    assert FT.trainable_parameters(ours) == FT.trainable_parameters(theirs)
    assert not torch.allclose(ours(ids), tiny_gpt(modern)(ids))  # the update does change the model


def test_lora_starts_as_the_base_model_and_merges_exactly():
    ids = encode_batch(VOCAB, SENTENCES)
    base, model = tiny_gpt(), tiny_gpt()
    FT.add_lora(model, r=2, alpha=4)
    assert torch.equal(model(ids), base(ids))  # B = 0
    layer = model.blocks[0].attn.qkv
    with torch.no_grad():
        layer.lora_B.normal_()
    before, weight = model(ids), layer.base.weight.clone()
    layer.merge()
    torch.testing.assert_close(model(ids), before, rtol=0, atol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, weight, rtol=0, atol=1e-6)


def test_only_the_lora_matrices_and_the_head_train():
    body = tiny_gpt()
    model = FT.GPTClassifier(body, n_classes=3)
    FT.add_lora(model, r=2, alpha=4)
    d, layers = 16, 2
    assert FT.trainable_parameters(model) == layers * 2 * (d + 3 * d) + (d * 3 + 3)  # A and B of each qkv, the head
    FT.classification_loss(model(encode_batch(VOCAB, SENTENCES)), torch.tensor([0, 1, 2, 0])).backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name


def test_head_only_freezes_the_body():
    model = FT.GPTClassifier(tiny_gpt(), n_classes=2)
    assert FT.freeze_all_but(model, ("head.",)) == 16 * 2 + 2
    assert FT.freeze_all_but(model, ("head.", "body.")) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_a_padded_text_is_classified_as_if_alone(pooling):
    model = FT.GPTClassifier(tiny_gpt(), n_classes=2, pooling=pooling).eval()
    batch = encode_batch(VOCAB, SENTENCES)  # padded to the longest
    for i, sentence in enumerate(SENTENCES):
        torch.testing.assert_close(model(batch)[i], model(encode_batch(VOCAB, [sentence]))[0], rtol=0, atol=1e-5)


def test_bad_input_gets_errors_that_say_what_to_do():
    with pytest.raises(ValueError, match="between 1 and min\\(d_in, d_out\\) = 16"):
        FT.LoRALinear(torch.nn.Linear(16, 48), r=0, alpha=1)
    with pytest.raises(ValueError, match="between 1 and min\\(d_in, d_out\\) = 16"):
        FT.LoRALinear(torch.nn.Linear(16, 48), r=17, alpha=1)
    with pytest.raises(ValueError, match="no nn.Linear layer's name ends with .*'qkv'"):
        FT.add_lora(tiny_gpt(), r=2, alpha=4, targets=("attention.query",))
    with pytest.raises(ValueError, match="labels must be integer classes in 0..1"):
        FT.classification_loss(torch.zeros(3, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="at least 2 classes"):
        FT.GPTClassifier(tiny_gpt(), n_classes=1)
    with pytest.raises(ValueError, match="pooling must be one of"):
        FT.GPTClassifier(tiny_gpt(), n_classes=2, pooling="first")


def test_stratified_subsets_keep_the_class_shares_and_refuse_too_many():
    labels = ["pos"] * 70 + ["neg"] * 30
    picked = FT.stratified_subset(labels, 10, seed=0)
    assert len(set(picked)) == 10 and [labels[i] for i in picked].count("pos") == 7
    assert FT.stratified_subset(labels, 10, seed=0) == picked != FT.stratified_subset(labels, 10, seed=1)
    assert len(FT.stratified_subset(labels, 3, seed=0)) == 3
    with pytest.raises(ValueError, match="asked for 101 labelled examples but the training split has 100"):
        FT.stratified_subset(labels, 101, seed=0)


def test_another_vocabulary_is_refused():
    FT.check_vocabulary(VOCAB, Vocab([w for s in SENTENCES for w in s]))
    with pytest.raises(ValueError, match="another vocabulary .* first difference at id 4.*model.vocab"):
        FT.check_vocabulary(VOCAB, Vocab(["zebra"] * 9 + [w for s in SENTENCES for w in s]))


def test_a_classifier_learns_a_separable_task_and_head_only_changes_only_the_head():
    texts = [["I", "am", "Sam"] * k for k in (1, 2)] * 8 + [["green", "eggs", "and", "ham"] * k for k in (1, 2)] * 8
    labels = torch.tensor([0] * 16 + [1] * 16)
    ids = encode_batch(VOCAB, texts, eos=False, max_tokens=16)
    assert ids.shape == (32, 9) and (ids[:, 0] == VOCAB.bos_id).all()
    model = FT.GPTClassifier(tiny_gpt(), n_classes=2)
    body = {k: v.clone() for k, v in model.body.state_dict().items()}
    FT.freeze_all_but(model, ("head.",))
    losses = FT.train_classifier(model, ids, labels, epochs=30, lr=0.05, batch_size=8)
    assert losses[-1] < losses[0] / 4 and FT.accuracy(model, ids, labels) == 1.0
    assert all(torch.equal(v, model.body.state_dict()[k]) for k, v in body.items())
    FT.freeze_all_but(model, ())
    with pytest.raises(ValueError, match="no parameter is trainable"):
        FT.train_classifier(model, ids, labels, epochs=1, lr=0.1)


def test_a_hugging_face_classifier_trains_through_the_same_loop_with_its_attention_mask():
    import transformers
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, num_labels=2, pad_token_id=VOCAB.pad_id)
    bert = transformers.BertForSequenceClassification(config).eval()
    model = FT.HFClassifier(bert, pad_id=VOCAB.pad_id)
    ids = encode_batch(VOCAB, SENTENCES, eos=False)
    alone = torch.cat([bert(input_ids=encode_batch(VOCAB, [s], eos=False)).logits for s in SENTENCES])
    torch.testing.assert_close(model(ids), alone, atol=1e-5, rtol=0)  # padding masked: as if each row were alone
    labels = torch.tensor([0, 0, 1, 1])
    losses = FT.train_classifier(model, ids, labels, epochs=40, lr=0.01, batch_size=4)
    assert losses[-1] < losses[0] / 4 and FT.accuracy(model, ids, labels) == 1.0


def test_predict_proba_is_the_softmax_of_the_logits_and_predict_its_argmax():
    model = FT.GPTClassifier(tiny_gpt(), n_classes=3).eval()
    ids = encode_batch(VOCAB, SENTENCES, eos=False)
    probabilities = FT.predict_proba(model, ids, batch_size=3)  # two batches, each trimmed of its own padding
    with torch.no_grad():
        torch.testing.assert_close(probabilities, model(ids).softmax(-1), rtol=0, atol=1e-6)
    assert torch.equal(probabilities.argmax(-1), FT.predict(model, ids))


def test_merge_lora_leaves_a_plain_model_with_the_same_outputs():
    ids = encode_batch(VOCAB, SENTENCES)
    model = tiny_gpt()
    FT.add_lora(model, r=2, alpha=4, targets=("attn.qkv", "mlp.fc"))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FT.LoRALinear):
                module.lora_B.normal_()
    before = model(ids)
    assert sorted(FT.merge_lora(model)) == sorted(f"blocks.{i}.{n}" for i in range(2) for n in ("attn.qkv", "mlp.fc"))
    assert not any(isinstance(m, FT.LoRALinear) for m in model.modules())
    assert model.state_dict().keys() == tiny_gpt().state_dict().keys()
    torch.testing.assert_close(model(ids), before, rtol=0, atol=1e-5)


def test_train_token_rows_moves_those_rows_only():
    model = tiny_gpt()
    FT.add_lora(model, r=2, alpha=4)
    old = model.token_embedding.weight.detach().clone()
    assert FT.train_token_rows(model, [5, 6]) == FT.trainable_parameters(model) - old.numel() + 2 * 16
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1, weight_decay=0.0)
    model(encode_batch(VOCAB, SENTENCES)).logsumexp(-1).sum().backward()
    optimizer.step()
    moved = (model.token_embedding.weight != old).any(dim=1).nonzero().flatten().tolist()
    assert moved == [5, 6]
    with pytest.raises(ValueError, match="ids of the embedding's"):
        FT.train_token_rows(tiny_gpt(), [len(VOCAB)])
    untied = GPT(GPTConfig(len(VOCAB), block_size=16, d_model=16, n_heads=4, n_layers=1, tie_weights=False), VOCAB)
    with pytest.raises(ValueError, match="tied embeddings"):
        FT.train_token_rows(untied, [5])
