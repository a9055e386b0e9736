"""The chat format: how a conversation becomes the token ids a language model reads, and which of them it learns.

A chat is a list of messages ``{"role": "system" | "user" | "assistant", "content": text}`` (Hugging Face's
form; ``lmlib.instructions.check_messages`` says what a valid one is). Each message is its role's special token,
its text, and ``<|end|>``, all after the ``<bos>`` every lmlib model reads first:

    <bos><|user|>Write 7 in English words.<|end|><|assistant|>seven<|end|>

``add_generation_prompt`` ends the text with ``<|assistant|>``: what a model reads before it answers. It then
writes the answer and ``<|end|>``, where decoding stops. No newline or space separates the parts: each one would
be a token to learn and to pay for in a small window.

The special tokens. ``<|system|>``, ``<|user|>``, ``<|assistant|>`` and ``<|end|>`` (``CHAT_TOKENS``) are new
tokens, never cut into bytes: ``with_chat_tokens`` adds them to the course's byte-level BPE (ids V .. V+3 after
its V tokens), and ``grow_embedding`` gives a model four new embedding rows, each set to the mean of the old rows

    e_new = (1/V) sum_{i<V} e_i

so a new token starts as an average token rather than a random one: with tied weights (W_out = E) its logit
w_new . h is the mean of the old logits, neither favoured nor ruled out (Hewitt, 2021, "Initializing new word
embeddings for pretrained language models"). An untied output layer gets its own rows' mean the same way.

Which tokens SFT learns. ``chat_ids_and_labels`` gives the labels of supervised fine-tuning in Hugging Face's
convention (aligned with the ids; the model shifts them): an assistant's text and its ``<|end|>`` keep their id,
every other position is -100 (``IGNORE_INDEX``: not scored). So

    L_SFT = -(1 / |A|) sum_{t in A} ln P(x_t | x_<t),      A = the assistant's tokens and their <|end|>

the same next-token loss as pretraining (teacher forcing), restricted to what the assistant says.

Hugging Face. ``CHAT_TEMPLATE`` is this format as a Jinja chat template; ``save_chat_tokenizer`` writes it in
a tokenizer folder, so ``tokenizer.apply_chat_template(messages)`` there gives exactly ``chat_ids(messages)``,
and its ``{% generation %}`` markers give the assistant-token mask TRL's ``SFTTrainer(assistant_only_loss=True)``
trains on: the same positions as ``chat_ids_and_labels`` (``tests/test_chat.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from lmlib._deps import require
from lmlib.instructions import check_messages
from lmlib.pretraining import IGNORE_INDEX, hf_tokenizer
from lmlib.tokenize import BOS, BPETokenizer, Vocab
from lmlib.transformer import GPT

SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
CHAT_TOKENS = (SYSTEM, USER, ASSISTANT, END)
ROLE_TOKEN = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}

# The same format for Hugging Face's apply_chat_template. {% generation %} marks what the assistant writes (its text
# and <|end|>): apply_chat_template(..., return_assistant_tokens_mask=True) returns those tokens as 1.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{- raise_exception('unknown role ' + message['role'] + ': use system, user or assistant') -}}"
    "{%- endif -%}"
    "{%- if loop.previtem is defined and loop.previtem['role'] == message['role'] -%}"
    "{{- raise_exception('two ' + message['role'] + ' turns in a row: a chat alternates user and assistant') -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|assistant|>' -}}"
    "{%- generation -%}{{- message['content'] + '<|end|>' -}}{%- endgeneration -%}"
    "{%- else -%}"
    "{{- '<|' + message['role'] + '|>' + message['content'] + '<|end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)


# --- the format ------------------------------------------------------------------------------------------------


def format_chat(messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """The chat as text: ``<bos>``, then each message as ``<|role|>text<|end|>``; ``add_generation_prompt``
    appends ``<|assistant|>`` (the chat must then end with a user turn)."""
    _check_chat(messages, add_generation_prompt)
    text = BOS + "".join(ROLE_TOKEN[m["role"]] + m["content"] + END for m in messages)
    return text + ASSISTANT if add_generation_prompt else text


def chat_ids(messages: Sequence[dict[str, str]], tokenizer: BPETokenizer,
             add_generation_prompt: bool = False) -> list[int]:
    """The token ids of ``format_chat(messages, add_generation_prompt)``: each special token one id, each message's
    text encoded by ``tokenizer`` on its own (a text never merges with the tokens around it)."""
    return chat_ids_and_labels(messages, tokenizer, add_generation_prompt)[0]


def chat_ids_and_labels(messages: Sequence[dict[str, str]], tokenizer: BPETokenizer,
                        add_generation_prompt: bool = False
                        ) -> tuple[list[int], list[int]]:
    """(ids, labels) of a chat for SFT: ``labels[t]`` is ``ids[t]`` where the assistant
    writes (its text and the ``<|end|>`` after it), ``IGNORE_INDEX`` (-100) elsewhere:
    ``<bos>``, role tokens, system and user turns."""
    _check_chat(messages, add_generation_prompt)
    special = chat_token_ids(tokenizer)
    ids, labels = [special[BOS]], [IGNORE_INDEX]
    for i, message in enumerate(messages):
        _check_no_special_tokens(message, i, tokenizer)
        turn = [*tokenizer.encode_ids(message["content"]), special[END]]
        ids += [special[ROLE_TOKEN[message["role"]]], *turn]
        learned = turn if message["role"] == "assistant" else [IGNORE_INDEX] * len(turn)
        labels += [IGNORE_INDEX, *learned]
    if add_generation_prompt:
        ids.append(special[ASSISTANT])
        labels.append(IGNORE_INDEX)
    return ids, labels


def chat_token_ids(tokenizer: BPETokenizer) -> dict[str, int]:
    """The ids of ``<bos>`` and ``CHAT_TOKENS`` in ``tokenizer``; ``ValueError`` if it lacks one."""
    ids = {token: tokenizer.tokenizer.token_to_id(token) for token in (BOS, *CHAT_TOKENS)}
    missing = [token for token, i in ids.items() if i is None]
    if missing:
        raise ValueError(f"the tokenizer has no {', '.join(missing)}: add the chat tokens first, "
                         "tokenizer = lmlib.chat.with_chat_tokens(tokenizer) (and grow the model: add_chat_tokens)")
    return ids


def _check_chat(messages: Sequence[dict[str, str]], add_generation_prompt: bool) -> None:
    check_messages(messages)
    if add_generation_prompt and messages[-1]["role"] == "assistant":
        raise ValueError("add_generation_prompt asks for the assistant's next turn, but the chat ends with an "
                         "assistant turn: add the user's next message first, or leave add_generation_prompt out")


def _check_no_special_tokens(message: dict[str, str], i: int, tokenizer: BPETokenizer) -> None:
    """A message's own text may not hold a special token: it would read as a turn boundary (or a new text)."""
    found = sorted(t.content for t in tokenizer.tokenizer.get_added_tokens_decoder().values()
                   if t.special and t.content in message["content"])
    if found:
        raise ValueError(f"message {i} ({message['role']}) contains the special token {found[0]!r}, which "
                         "the chat format uses to mark turns: remove it from the text (or write it differently, "
                         "e.g. with a space inside)")


# --- the tokenizer and the model -------------------------------------------------------------------------------


def with_chat_tokens(tokenizer: BPETokenizer) -> BPETokenizer:
    """A copy of ``tokenizer`` with ``CHAT_TOKENS`` added as special tokens, ids V .. V+3 after its V tokens."""
    tk = require("tokenizers")
    present = [t for t in CHAT_TOKENS if tokenizer.tokenizer.token_to_id(t) is not None]
    if present:
        raise ValueError(f"the tokenizer already has {', '.join(present)}: it is a chat tokenizer already; "
                         "add the chat tokens once")
    copy = tk.Tokenizer.from_str(tokenizer.tokenizer.to_str())
    size = copy.get_vocab_size()
    copy.add_special_tokens([tk.AddedToken(t, special=True, normalized=False) for t in CHAT_TOKENS])
    if [copy.token_to_id(t) for t in CHAT_TOKENS] != list(range(size, size + len(CHAT_TOKENS))):
        raise RuntimeError("tokenizers gave the chat tokens ids other than the next free ones")
    return BPETokenizer(copy)


@torch.no_grad()
def grow_embedding(model: GPT, tokens: Sequence[str]) -> GPT:
    """Add ``tokens`` to ``model``'s vocabulary (ids after its own), in place: each new embedding row (and
    output row, if the output layer is not tied to the embedding) is the mean of the old rows. Tied weights stay
    tied. Returns the model."""
    if model.vocab is None:
        raise ValueError("the model has no vocabulary (e.g. loaded with GPT.from_hf(model) alone): give it the "
                         "course Vocab of its tokenizer first (GPT.from_hf(model, vocab))")
    present = [t for t in tokens if t in model.vocab]
    if present or len(set(tokens)) != len(tokens) or not tokens:
        raise ValueError(f"tokens to add must be new, distinct and at least one; the model already has {present}"
                         if present else f"tokens to add must be distinct and at least one, got {list(tokens)}")
    old_embedding, old_head = model.token_embedding, model.lm_head
    tied = old_head.weight is old_embedding.weight
    size, n = old_embedding.num_embeddings, len(tokens)
    weight = old_embedding.weight  # [V, d]
    embedding = nn.Embedding(size + n, weight.shape[1], device=weight.device, dtype=weight.dtype)
    embedding.weight[:size] = weight
    embedding.weight[size:] = weight.mean(dim=0)
    head = nn.Linear(weight.shape[1], size + n, bias=False, device=weight.device, dtype=weight.dtype)
    if tied:
        head.weight = embedding.weight
    else:
        head.weight[:size] = old_head.weight
        head.weight[size:] = old_head.weight.mean(dim=0)
    embedding.weight.requires_grad_(weight.requires_grad)
    head.weight.requires_grad_(old_head.weight.requires_grad)
    model.token_embedding, model.lm_head = embedding, head
    model.config = dataclasses.replace(model.config, vocab_size=size + n)
    model.register_vocab(Vocab.from_itos([*model.vocab.itos, *tokens]), size + n)
    model.never_predicted = model.never_predicted.to(weight.device)
    return model


def add_chat_tokens(tokenizer: BPETokenizer, model: GPT) -> tuple[BPETokenizer, GPT]:
    """(chat tokenizer, model grown to match): ``with_chat_tokens(tokenizer)`` and ``grow_embedding(model,
    CHAT_TOKENS)``. The model must read the tokenizer's own ids (its vocabulary the tokenizer's tokens)."""
    if model.vocab is None or model.vocab.itos != tokenizer.tokens_by_id():
        raise ValueError("the model's vocabulary is not the tokenizer's: a model trained on the tokenizer's own ids "
                         "(the 'bpe' tokenization of lmlib.course.recipes) can take the chat tokens")
    chat_tokenizer = with_chat_tokens(tokenizer)
    grow_embedding(model, CHAT_TOKENS)
    if model.vocab.itos != chat_tokenizer.tokens_by_id():
        raise RuntimeError("the grown model's vocabulary differs from the chat tokenizer's")
    return chat_tokenizer, model


# --- Hugging Face ----------------------------------------------------------------------------------------------


def hf_chat_tokenizer(tokenizer: BPETokenizer):
    """The chat tokenizer as a ``PreTrainedTokenizerFast`` with ``CHAT_TEMPLATE``: ``apply_chat_template``
    gives ``chat_ids``' ids."""
    chat_token_ids(tokenizer)  # it has the chat tokens
    hf = hf_tokenizer(tokenizer)
    hf.chat_template = CHAT_TEMPLATE
    return hf


def save_chat_tokenizer(tokenizer: BPETokenizer, folder: str | Path) -> Path:
    """Write the chat tokenizer, its chat template included, into a Hugging Face folder (e.g. the one
    ``lmlib.pretraining.save_hf_folder`` wrote for the model: this replaces its tokenizer files)."""
    folder = Path(folder)
    hf_chat_tokenizer(tokenizer).save_pretrained(folder)
    return folder
