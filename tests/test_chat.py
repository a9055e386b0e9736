"""lmlib.chat: the chat format's ids equal Hugging Face's ``apply_chat_template`` on the saved tokenizer folder
(a dozen chats: English, Chinese, system, multi-turn, generation prompt), the SFT labels equal the ones TRL's
``SFTTrainer(assistant_only_loss=True)`` builds from that folder, the chat tokens get the next ids, the grown
embedding's new rows are the mean of the old ones with tied weights still tied, and bad chats raise."""

from __future__ import annotations

import jinja2
import pytest
import torch

from lmlib import chat as C
from lmlib.pretraining import IGNORE_INDEX
from lmlib.tokenize import BPETokenizer, Vocab
from lmlib.transformer import GPT, GPTConfig

TEXTS = ["Write seven in English words. How many words are in this text? The cat sat on the mat.",
         "Is this movie review positive or negative? Review: a gorgeous, witty, seductive movie.",
         "这条商品评论是正面的还是负面的？评论：屏幕很清晰，电池也耐用。把这段文字倒过来写。",
         "Which year does this passage mention? Passage: In 1998 the bridge opened."] * 4

SYSTEM = {"role": "system", "content": "You answer in one word."}
CHATS = [
    [{"role": "user", "content": "Write 7 in English words."}, {"role": "assistant", "content": "seven"}],
    [{"role": "user", "content": "用中文数字写出417。"}, {"role": "assistant", "content": "四百一十七"}],
    [SYSTEM, {"role": "user", "content": "Is this movie review positive or negative?\nReview: witty ."},
     {"role": "assistant", "content": "positive"}],
    [{"role": "user", "content": "这条商品评论是正面的还是负面的？\n评论：屏幕很清晰"},
     {"role": "assistant", "content": "正面"},
     {"role": "user", "content": "把这段文字倒过来写。\n文字：屏幕很清晰"},
     {"role": "assistant", "content": "晰清很幕屏"}],
    [{"role": "user", "content": "How many words?"}, {"role": "assistant", "content": "3"},
     {"role": "user", "content": "And now?"}, {"role": "assistant", "content": "  two words \n"},
     {"role": "user", "content": "Thanks!"}, {"role": "assistant", "content": "You're welcome 🙂"}],
    [{"role": "user", "content": "Copy this: {{ bos_token }} {% if %} </s> <|end"}, {"role": "assistant",
                                                                                   "content": "{{ bos_token }}"}],
    [{"role": "user", "content": " leading and trailing spaces "}, {"role": "assistant", "content": "\tok\n"}],
    [SYSTEM, {"role": "user", "content": "Mixed 中英 text, 1998年 and １９９８."},
     {"role": "assistant", "content": "１９９８年"}],
    # chats that end with the user: with and without the generation prompt
    [{"role": "user", "content": "Write 7 in English words."}],
    [SYSTEM, {"role": "user", "content": "这段文字有几个字？\n文字：太阳能利用"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "再见"}],
    [{"role": "user", "content": "Line one\n\nline two\r\nline three"}],
]


@pytest.fixture(scope="module")
def base() -> BPETokenizer:
    return BPETokenizer.train(TEXTS, vocab_size=300)


@pytest.fixture(scope="module")
def tokenizer(base) -> BPETokenizer:
    return C.with_chat_tokens(base)


@pytest.fixture(scope="module")
def folder(tokenizer, tmp_path_factory):
    return C.save_chat_tokenizer(tokenizer, tmp_path_factory.mktemp("chat_tokenizer"))


@pytest.fixture(scope="module")
def hf(folder):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _generation_prompts():
    return [(chat, prompt) for chat in CHATS for prompt in (False, True)
            if not (prompt and chat[-1]["role"] == "assistant")]


def test_the_text_is_role_tokens_and_messages_after_bos():
    assert C.format_chat(CHATS[0]) == "<bos><|user|>Write 7 in English words.<|end|><|assistant|>seven<|end|>"
    assert C.format_chat(CHATS[8], add_generation_prompt=True) == \
        "<bos><|user|>Write 7 in English words.<|end|><|assistant|>"
    assert C.format_chat(CHATS[2]).startswith("<bos><|system|>You answer in one word.<|end|><|user|>")


def test_the_chat_tokens_get_the_next_ids_and_change_nothing_else(base, tokenizer):
    size = base.vocab_size
    assert [tokenizer.tokenizer.token_to_id(t) for t in C.CHAT_TOKENS] == [size, size + 1, size + 2, size + 3]
    assert tokenizer.tokens_by_id() == [*base.tokens_by_id(), *C.CHAT_TOKENS]
    assert base.tokenizer.token_to_id(C.USER) is None  # a copy: the course's tokenizer is as it was
    for text in TEXTS[:4]:
        assert tokenizer.encode_ids(text) == base.encode_ids(text)
    with pytest.raises(ValueError, match="already has <\\|system\\|>.*once"):
        C.with_chat_tokens(tokenizer)


@pytest.mark.parametrize("chat,prompt", _generation_prompts())
def test_the_ids_are_hugging_face_apply_chat_template_on_the_saved_folder(chat, prompt, tokenizer, hf):
    ids = C.chat_ids(chat, tokenizer, add_generation_prompt=prompt)
    assert hf.apply_chat_template(chat, add_generation_prompt=prompt, tokenize=False) == \
        C.format_chat(chat, add_generation_prompt=prompt)
    assert hf.apply_chat_template(chat, add_generation_prompt=prompt, tokenize=True, return_dict=False) == ids
    # and tokenizers itself, reading the whole text (it splits at the special tokens first)
    assert tokenizer.tokenizer.encode(C.format_chat(chat, prompt), add_special_tokens=False).ids == ids
    assert tokenizer.decode(ids) == C.format_chat(chat, prompt)


def test_the_folder_holds_the_template_and_hugging_face_sees_the_special_tokens(folder, hf, tokenizer):
    assert (folder / "chat_template.jinja").read_text(encoding="utf-8") == C.CHAT_TEMPLATE
    assert hf.bos_token == "<bos>" and len(hf) == tokenizer.vocab_size
    ids = C.chat_ids(CHATS[0], tokenizer)
    assert hf.decode(ids, skip_special_tokens=True) == "Write 7 in English words.seven"


@pytest.mark.parametrize("chat", [c for c in CHATS if c[-1]["role"] == "assistant"])
def test_the_labels_are_the_assistant_tokens_of_hugging_face_generation_mask(chat, tokenizer, hf):
    ids, labels = C.chat_ids_and_labels(chat, tokenizer)
    out = hf.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert out["input_ids"] == ids
    assert [i if keep else IGNORE_INDEX for i, keep in zip(ids, out["assistant_masks"], strict=True)] == labels
    # by construction: the labelled tokens are each assistant message's text and its <|end|>, in order
    said = "".join(m["content"] + C.END for m in chat if m["role"] == "assistant")
    assert tokenizer.decode([t for t in labels if t != IGNORE_INDEX]) == said


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
def test_the_labels_equal_trl_sft_trainer_assistant_only_loss(tokenizer, hf, tmp_path):
    trl = pytest.importorskip("trl")
    transformers = pytest.importorskip("transformers")
    datasets = pytest.importorskip("datasets")
    from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

    assert trl.__version__ == "1.16.0"  # the version these labels were checked against (pyproject pins it)
    assert has_generation_markers(hf.chat_template) and is_chat_template_stop_token_trained(hf)
    chats = [c for c in CHATS if c[-1]["role"] == "assistant"]
    config = transformers.GPT2Config(vocab_size=len(hf), n_embd=8, n_layer=1, n_head=1, n_positions=128)
    args = trl.SFTConfig(output_dir=str(tmp_path), assistant_only_loss=True, report_to="none", max_length=None,
                         use_cpu=True)
    trainer = trl.SFTTrainer(model=transformers.GPT2LMHeadModel(config), args=args, processing_class=hf,
                             train_dataset=datasets.Dataset.from_list([{"messages": c} for c in chats]))
    prepared = trainer.train_dataset
    assert prepared["input_ids"] == [C.chat_ids(c, tokenizer) for c in chats]
    assert prepared["labels"] == [C.chat_ids_and_labels(c, tokenizer)[1] for c in chats]


def test_bad_chats_raise_in_lmlib_and_in_the_template(tokenizer, hf):
    two_users = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(ValueError, match="messages 0 and 1 are both user turns"):
        C.chat_ids(two_users, tokenizer)
    with pytest.raises(jinja2.TemplateError, match="two user turns in a row"):
        hf.apply_chat_template(two_users, tokenize=False)
    with pytest.raises(jinja2.TemplateError, match="unknown role tool"):
        hf.apply_chat_template([{"role": "tool", "content": "a"}], tokenize=False)
    with pytest.raises(ValueError, match="ends with an assistant turn"):
        C.format_chat(CHATS[0], add_generation_prompt=True)
    with pytest.raises(ValueError, match="message 1 \\(assistant\\) contains the special token '<\\|end\\|>'"):
        C.chat_ids([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes<|end|>no"}], tokenizer)
    with pytest.raises(ValueError, match="contains the special token '<eos>'"):
        C.chat_ids([{"role": "user", "content": "stop <eos> here"}], tokenizer)


def test_a_tokenizer_without_the_chat_tokens_is_refused(base):
    with pytest.raises(ValueError, match="no <\\|system\\|>, <\\|user\\|>.*with_chat_tokens"):
        C.chat_ids(CHATS[0], base)
    with pytest.raises(ValueError, match="with_chat_tokens"):
        C.hf_chat_tokenizer(base)


def _gpt(base: BPETokenizer, **settings) -> GPT:
    torch.manual_seed(0)
    vocab = Vocab.from_itos(base.tokens_by_id())
    return GPT(GPTConfig(len(vocab), block_size=128, d_model=16, n_layers=1, n_heads=2, **settings), vocab).eval()


@pytest.mark.parametrize("tied", [True, False])
def test_the_new_rows_are_the_mean_of_the_old_and_tied_weights_stay_tied(base, tied):
    model = _gpt(base, tie_weights=tied)
    size = len(model.vocab)
    old_embedding = model.token_embedding.weight.detach().clone()
    old_head = model.lm_head.weight.detach().clone()
    ids = torch.tensor([base.encode_ids("The cat sat on the mat.")])
    h = model.hidden_states(ids)[0]
    old_logits = model.output(h).detach()  # [1, T, V], before the -inf of <pad> and <bos>

    chat_tokenizer, grown = C.add_chat_tokens(base, model)
    assert grown is model and model.config.vocab_size == size + 4 and len(model.vocab) == size + 4
    assert model.vocab.itos == chat_tokenizer.tokens_by_id()
    embedding = model.token_embedding.weight
    assert torch.equal(embedding[:size], old_embedding)
    assert torch.allclose(embedding[size:], old_embedding.mean(dim=0).expand(4, -1), atol=1e-7)
    assert (model.lm_head.weight is embedding) == tied
    if not tied:
        assert torch.equal(model.lm_head.weight[:size], old_head)
        assert torch.allclose(model.lm_head.weight[size:], old_head.mean(dim=0).expand(4, -1), atol=1e-7)
    # the old tokens' logits are as before; a new token's logit is the mean of the old logits (w_new = mean w_i)
    new_h = model.hidden_states(ids)[0]
    assert torch.allclose(new_h, h, atol=1e-6)
    logits = model.output(new_h).detach()
    assert torch.allclose(logits[..., :size], old_logits, atol=1e-5)
    assert torch.allclose(logits[..., size:], old_logits.mean(dim=-1, keepdim=True).expand(-1, -1, 4), atol=1e-5)
    # the grown model reads a chat, predicts <|end|> (only <pad> and <bos> are never predicted) and trains
    chat = torch.tensor([C.chat_ids(CHATS[0], chat_tokenizer)])
    logprobs = torch.log_softmax(model(chat), dim=-1)
    assert logprobs.shape == (1, chat.shape[1], size + 4) and torch.isfinite(logprobs[..., size:]).all()
    assert model.never_predicted.tolist() == [True, False, True, False] + [False] * (size)
    logprobs[0, -1, chat_tokenizer.tokenizer.token_to_id(C.END)].backward()
    assert model.lm_head.weight.grad[size:].abs().sum() > 0  # with tied weights: the embedding's own rows


def test_the_grown_gpt_converts_to_hugging_face_with_its_new_size(base):
    model = _gpt(base)
    chat_tokenizer, _ = C.add_chat_tokens(base, model)
    hf_model = model.to_hf().eval()
    assert hf_model.get_input_embeddings().weight.shape[0] == len(model.vocab)
    assert hf_model.get_output_embeddings().weight.data_ptr() == hf_model.get_input_embeddings().weight.data_ptr()
    ids = torch.tensor([C.chat_ids(CHATS[2], chat_tokenizer)])
    with torch.no_grad():
        assert torch.allclose(hf_model(ids).logits, model.output(model.hidden_states(ids)[0]), atol=1e-5)


def test_the_new_rows_keep_the_model_dtype(base):
    model = _gpt(base).to(torch.float64)
    C.grow_embedding(model, C.CHAT_TOKENS)
    assert model.token_embedding.weight.dtype == torch.float64 and model.lm_head.weight is model.token_embedding.weight
    assert model.never_predicted.device == model.token_embedding.weight.device
    assert model(torch.tensor([[2, len(model.vocab) - 1]])).dtype == torch.float64


def test_growing_a_model_that_does_not_match_is_refused(base):
    model = _gpt(base)
    with pytest.raises(ValueError, match="the model already has \\['<bos>'\\]"):
        C.grow_embedding(model, ["<bos>"])
    with pytest.raises(ValueError, match="distinct"):
        C.grow_embedding(model, ["<|a|>", "<|a|>"])
    other = BPETokenizer.train(TEXTS[:1], vocab_size=280)
    with pytest.raises(ValueError, match="the model's vocabulary is not the tokenizer's"):
        C.add_chat_tokens(other, model)
    bare = GPT(GPTConfig(len(model.vocab), block_size=8, d_model=8, n_layers=1, n_heads=1))
    with pytest.raises(ValueError, match="has no vocabulary"):
        C.grow_embedding(bare, C.CHAT_TOKENS)
