"""lmlib.sft: the SFT loss equals TRL's ``SFTTrainer`` loss (its own collator and ``compute_loss``) on the same batch
and the same network, with the assistant-only loss and on the whole sequence; a wrong mask differs; lmlib.train
computes the same loss and trains only what it should; bad input is refused with the reason."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lmlib import chat as C
from lmlib import finetune as FT
from lmlib import sft as S
from lmlib import train as T
from lmlib.instructions import Record
from lmlib.pretraining import IGNORE_INDEX
from lmlib.tokenize import BPETokenizer, Vocab
from lmlib.transformer import GPT, GPTConfig

TEXTS = ["Write seven in English words. How many words are in this text? The cat sat on the mat.",
         "Is this movie review positive or negative? Review: a gorgeous, witty, seductive movie.",
         "Which year does this passage mention? Passage: In 1998 the bridge opened.",
         "What is the first word of this text? Sort the words of this text alphabetically."] * 4
EXCHANGES = [("Write 7 in English words.", "seven"),
             ("How many words are in this text?\nText: the cat sat", "3"),
             ("Is this movie review positive or negative?\nReview: a gorgeous, witty movie", "positive"),
             ("Which year does this passage mention?\nPassage: In 1998 the bridge opened.", "1998"),
             ("Sort the words of this text alphabetically.\nText: the cat sat on the mat", "cat mat on sat the the"),
             ("What is the first word of this text?\nText: witty seductive movie", "witty")]
WINDOW = 64
TOLERANCE = 1e-6


def record(i: int, prompt: str, answer: str) -> Record:
    return Record(f"test/en/train/{i}", "count", "en", "train", f"test:{i}", prompt, answer, prompt)


RECORDS = [record(i, p, a) for i, (p, a) in enumerate(EXCHANGES)]


@pytest.fixture(scope="module")
def base() -> BPETokenizer:
    return BPETokenizer.train(TEXTS, vocab_size=300)


def chat_gpt(base: BPETokenizer, seed: int = 0, dropout: float = 0.0) -> tuple[BPETokenizer, GPT]:
    """A tiny course-style GPT (``<bos>`` resets, tied weights) grown with the chat tokens."""
    torch.manual_seed(seed)
    vocab = Vocab.from_itos(base.tokens_by_id())
    model = GPT(GPTConfig(len(vocab), block_size=WINDOW, d_model=16, n_layers=2, n_heads=2, dropout=dropout,
                          reset_at_bos=True), vocab)
    return C.add_chat_tokens(base, model.eval())


@pytest.fixture(scope="module")
def tokenizer_and_model(base):
    return chat_gpt(base)


@pytest.fixture(scope="module")
def batch(tokenizer_and_model):
    tokenizer, model = tokenizer_and_model
    return S.collate(S.encode_records(RECORDS, tokenizer, WINDOW), model.vocab.pad_id)


def trl_trainer(tokenizer, model, tmp_path, assistant_only: bool):
    """TRL's SFTTrainer on the records' chats (``lmlib.sft.trl_trainer``: the model converted to Hugging Face, the
    chat tokenizer's folder); everything it writes stays under tmp_path. Skipped where TRL is not installed."""
    trl = pytest.importorskip("trl")
    pytest.importorskip("transformers")
    pytest.importorskip("datasets")
    assert trl.__version__ == "1.16.0"  # the version this equality was checked against (pyproject pins it)
    return S.trl_trainer(tokenizer, model, RECORDS, tmp_path, assistant_only=assistant_only)


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("on", ["assistant", "all"])
def test_the_loss_equals_trl_sft_trainers_on_the_same_batch_and_network(on, tokenizer_and_model, batch, tmp_path):
    tokenizer, model = tokenizer_and_model
    trainer = trl_trainer(tokenizer, model, tmp_path, assistant_only=on == "assistant")
    theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(RECORDS))])  # its own collator
    # the same batch: ids, padding, and the labels TRL trains on (the assistant's tokens, or every real token)
    assert torch.equal(theirs["input_ids"], batch["input_ids"])
    assert torch.equal(theirs["attention_mask"], batch["attention_mask"])
    assert torch.equal(theirs["labels"], S.labels_on(batch, on))
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, theirs).item()
    # The same network: GPT.from_hf without a vocabulary gives Hugging Face's logits exactly. The course GPT also
    # gives <pad> and <bos> logit -inf (never predicted), which the HF model has no way to: its loss is the same
    # computation over a softmax without those two tokens.
    network = GPT.from_hf(trainer.model)
    with torch.no_grad():
        assert abs(S.sft_loss(network, batch, on).item() - trl_loss) <= TOLERANCE
        never = model.never_predicted
        assert abs(S.sft_loss(model, batch, on).item()
                   - S.sft_loss(lambda ids: network(ids).masked_fill(never, float("-inf")), batch, on).item()) \
            <= TOLERANCE
    assert not list((tmp_path / "trainer").iterdir())  # nothing written


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
def test_a_wrong_mask_gives_another_loss(tokenizer_and_model, batch, tmp_path):
    """The comparison can fail: labels on the prompt too, or the assistant's labels one token late, miss TRL's
    assistant-only loss by far more than the tolerance."""
    tokenizer, model = tokenizer_and_model
    trainer = trl_trainer(tokenizer, model, tmp_path, assistant_only=True)
    theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(RECORDS))])
    network = GPT.from_hf(trainer.model)
    late = dict(batch, labels=torch.cat([torch.full_like(batch["labels"][:, :1], IGNORE_INDEX),
                                         batch["labels"][:, :-1]], dim=1))
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, theirs).item()
        assert abs(S.sft_loss(network, batch).item() - trl_loss) <= TOLERANCE
        assert abs(S.sft_loss(network, batch, on="all").item() - trl_loss) > 1e-3
        assert abs(S.sft_loss(network, late).item() - trl_loss) > 1e-3


def test_the_loss_is_the_mean_over_the_assistants_tokens_of_the_batch(tokenizer_and_model, batch):
    """L_SFT written out: -ln P of each labelled token given the ids before it, averaged over all of them."""
    tokenizer, model = tokenizer_and_model
    with torch.no_grad():
        logp = torch.log_softmax(model(batch["input_ids"]), dim=-1)  # [B, T, V]
    terms = [-logp[b, t - 1, batch["labels"][b, t]] for b, t in (batch["labels"] != IGNORE_INDEX).nonzero().tolist()]
    assert len(terms) == sum(len(tokenizer.encode_ids(r.answer)) + 1 for r in RECORDS)  # each answer and its <|end|>
    assert abs(S.sft_loss(model, batch).item() - torch.stack(terms).mean().item()) <= TOLERANCE


def test_the_batch_is_right_padded_and_padding_changes_no_real_logit(tokenizer_and_model, batch):
    _, model = tokenizer_and_model
    examples = S.encode_records(RECORDS, tokenizer_and_model[0], WINDOW)
    for b, (ids, labels) in enumerate(examples):
        n = len(ids)
        assert batch["input_ids"][b, :n].tolist() == ids and batch["labels"][b, :n].tolist() == labels
        assert (batch["input_ids"][b, n:] == model.vocab.pad_id).all() and (batch["labels"][b, n:] == -100).all()
        assert batch["attention_mask"][b].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
        with torch.no_grad():  # lmlib's GPT needs no attention mask: right padding is never looked at
            torch.testing.assert_close(model(batch["input_ids"][b : b + 1])[0, :n], model(torch.tensor([ids]))[0],
                                       rtol=0, atol=1e-5)
    wide = S.collate(examples, model.vocab.pad_id, width=WINDOW)
    assert wide["input_ids"].shape == (len(RECORDS), WINDOW)
    assert torch.equal(S.rows_batch(S.sft_rows(examples, model.vocab.pad_id, WINDOW), model.vocab.pad_id)["labels"],
                       batch["labels"])


def small_config(**settings) -> T.TrainConfig:
    return T.TrainConfig(**{**dict(steps=30, batch_size=4, block=WINDOW, lr=1e-2, warmup=3, eval_every=15,
                                   log_every=5, seed=0), **settings})


def test_lmlib_train_computes_the_sft_loss_and_lowers_it(base):
    tokenizer, model = chat_gpt(base)
    examples = S.encode_records(RECORDS, tokenizer, WINDOW)
    rows = S.sft_rows(examples, model.vocab.pad_id, WINDOW)
    batch = S.collate(examples, model.vocab.pad_id)
    for on in S.LOSS_ON:
        wrapped = S.SFT(model, on=on)
        with torch.no_grad():
            loop_loss, mean, count, _ = T._loss(wrapped, wrapped, rows, None, 1)
        assert abs(loop_loss.item() - S.sft_loss(model, batch, on).item()) <= TOLERANCE
        assert count == int((S.labels_on(batch, on)[:, 1:] != IGNORE_INDEX).sum())
    before = S.sft_loss(model, batch).item()
    history = T.train(S.SFT(model), rows, rows, small_config(), progress=False)
    with torch.no_grad():
        after = S.sft_loss(model.eval(), batch).item()
    assert after < before - 1.0
    assert abs(history["valid_loss"][-1] - after) <= 1e-5  # the evaluation is sft_loss over the valid rows


def test_lora_sft_trains_the_adapters_and_the_chat_tokens_only(base):
    tokenizer, model = chat_gpt(base)
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    FT.add_lora(model, r=2, alpha=4, targets=("attn.qkv", "mlp.fc"))
    chat_rows = [tokenizer.tokenizer.token_to_id(t) for t in C.CHAT_TOKENS]
    FT.train_token_rows(model, chat_rows)
    rows = S.sft_rows(S.encode_records(RECORDS, tokenizer, WINDOW), model.vocab.pad_id, WINDOW)
    T.train(S.SFT(model), rows, None, small_config(steps=10), progress=False)
    assert FT.merge_lora(model)
    after = model.state_dict()
    assert after.keys() == frozen.keys()  # a plain GPT again
    embedding = "token_embedding.weight"
    old_rows = [i for i in range(len(model.vocab)) if i not in chat_rows]
    assert torch.equal(after[embedding][old_rows], frozen[embedding][old_rows])
    assert not torch.equal(after[embedding][chat_rows], frozen[embedding][chat_rows])
    assert not torch.equal(after["blocks.0.attn.qkv.weight"], frozen["blocks.0.attn.qkv.weight"])
    assert torch.equal(after["blocks.0.attn.proj.weight"], frozen["blocks.0.attn.proj.weight"])


def test_respond_answers_after_the_assistant_token_up_to_end(base):
    """A model trained on one exchange until it knows it by heart writes that answer back, and stops at <|end|>."""
    tokenizer, model = chat_gpt(base)
    rows = S.sft_rows(S.encode_records(RECORDS[:1], tokenizer, WINDOW), model.vocab.pad_id, WINDOW)
    T.train(S.SFT(model), rows, None, small_config(steps=40, batch_size=2), progress=False)
    assert S.respond(model.eval(), tokenizer, RECORDS[0].messages(with_answer=False)) == RECORDS[0].answer


def test_bad_input_is_refused_with_the_reason(tokenizer_and_model):
    tokenizer, model = tokenizer_and_model
    with pytest.raises(ValueError, match="record 'empty' has an empty answer"):
        S.encode_records([dataclasses.replace(RECORDS[0], id="empty", answer=" ")], tokenizer, WINDOW)
    long = dataclasses.replace(RECORDS[0], id="long", prompt="the cat sat on the mat " * 20)
    with pytest.raises(ValueError, match="record 'long' is [0-9]+ tokens .* longer than the model's window of 64"):
        S.encode_records([long], tokenizer, WINDOW)
    ids, labels = C.chat_ids_and_labels(RECORDS[0].messages(), tokenizer)
    with pytest.raises(ValueError, match="chat 0 has no assistant token to learn"):
        S.collate([(ids, [IGNORE_INDEX] * len(ids))], model.vocab.pad_id)
    with pytest.raises(ValueError, match="chat 0 has [0-9]+ ids but [0-9]+ labels"):
        S.collate([(ids, labels[:-1])], model.vocab.pad_id)
    with pytest.raises(ValueError, match="longer than the width 4"):
        S.collate([(ids, labels)], model.vocab.pad_id, width=4)
    with pytest.raises(ValueError, match="no chats to collate"):
        S.collate([], model.vocab.pad_id)
    with pytest.raises(ValueError, match="on must be one of \\('assistant', 'all'\\)"):
        S.SFT(model, on="prompt")
    with pytest.raises(TypeError, match="2-D LongTensor of \\(ids, labels\\) rows of chats .*sft_rows"):
        T.train(S.SFT(model), torch.tensor(ids), None, small_config(), progress=False)
    with pytest.raises(ValueError, match="a causal model that takes no state"):
        S.SFT(GPT(GPTConfig(len(model.vocab), block_size=8, d_model=8, n_layers=1, n_heads=1)))
    with pytest.raises(ValueError, match="not the chat tokenizer's.*add_chat_tokens"):
        S.respond(model, C.with_chat_tokens(BPETokenizer.train(TEXTS[:1], vocab_size=280)),
                  RECORDS[0].messages(with_answer=False))
