"""Fixtures shared by the course's tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from lmlib.chat import add_chat_tokens, chat_ids
from lmlib.checkpoint import save_checkpoint
from lmlib.tokenize import BPETokenizer, Vocab
from lmlib.train import TrainConfig, train
from lmlib.transformer import GPT, GPTConfig

CHATS = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}],
         [{"role": "user", "content": "how are you?"}, {"role": "assistant", "content": "fine, thanks"}],
         [{"role": "user", "content": "bye"}, {"role": "assistant", "content": "see you soon"}]]
TEXTS = [m["content"] for chat in CHATS for m in chat] * 4 + ["the cat sat on the mat", "a dog ran"] * 4


@pytest.fixture(scope="session")
def chat_files(tmp_path_factory) -> Path:
    """A folder with a tiny chat model in the course's checkpoint format: chat.pt (+ chat.pt.sha256) and its
    tokenizer.json, a GPT (window 48) given the chat tokens (``lmlib.chat.add_chat_tokens``) and trained for 150
    steps on three chats, so it answers them and ends its turn; and plain.pt with plain_tokenizer.json, the same
    GPT before it was given the chat tokens (a foreign checkpoint)."""
    folder = tmp_path_factory.mktemp("chat_model")
    base = BPETokenizer.train(TEXTS, vocab_size=280)
    torch.manual_seed(0)
    model = GPT(GPTConfig(len(base.tokens_by_id()), block_size=48, d_model=16, n_layers=1, n_heads=2),
                Vocab.from_itos(base.tokens_by_id()))
    save_checkpoint(folder / "plain.pt", model, None, TrainConfig(), 0, {}, half=True)
    base.save(folder / "plain_tokenizer.json")
    tokenizer, model = add_chat_tokens(base, model)
    stream = torch.tensor([i for chat in CHATS for i in chat_ids(chat, tokenizer)] * 30)
    history = train(model, stream, stream, TrainConfig(steps=150, batch_size=8, block=24, lr=1e-2, warmup=10,
                                                       eval_every=150), progress=False)
    path = save_checkpoint(folder / "chat.pt", model.eval(), None, TrainConfig(), 0, history, half=True)
    (folder / "chat.pt.sha256").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  chat.pt\n")
    tokenizer.save(folder / "tokenizer.json")
    return folder
