"""A tiny, seeded training run, started as its own process by tests/test_train.py.

    python tests/train_script.py OUT.pt [--steps N] [--resume STATE] [--state STATE] [--dropout P] [--batch B]
                                        [--device cpu|cuda]

Builds the same toy corpus and MLP LM every time, trains it with ``lmlib.train.train``
(under ``torchrun`` too), and on rank 0 saves the final weights and the history to OUT.pt.
"""

from __future__ import annotations

import argparse
import random

import torch

from lmlib.mlp import MLPLM, MLPConfig
from lmlib.tokenize import Vocab
from lmlib.train import TrainConfig, encode_stream, train

# A tiny grammar, so the next word is predictable and a model has something to learn.
GRAMMAR = [("the", "a"), ("big", "small", "red", "old"), ("cat", "dog"), ("sat", "ran"), ("on", "under"),
           ("the", "a"), ("mat", "log")]


def toy_corpus(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(slot) for slot in GRAMMAR[: rng.randint(3, len(GRAMMAR))]] for _ in range(n)]


def toy_setup(dropout: float = 0.0, batch: int = 8, steps: int = 12):
    train_sents, valid_sents = toy_corpus(300, 1), toy_corpus(30, 2)
    vocab = Vocab((w for s in train_sents for w in s), min_count=2)
    torch.manual_seed(0)
    model = MLPLM(MLPConfig(len(vocab), context=2, d_embed=8, d_hidden=16, dropout=dropout), vocab)
    config = TrainConfig(steps=steps, batch_size=batch, block=16, lr=1e-2, warmup=3, eval_every=4, log_every=1)
    return model, encode_stream(vocab, train_sents), encode_stream(vocab, valid_sents), config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--resume")
    parser.add_argument("--state")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model, train_stream, valid_stream, config = toy_setup(args.dropout, args.batch)
    history = train(model, train_stream, valid_stream, config, checkpoint=args.state, resume=args.resume,
                    max_steps=args.steps, progress=False, device=args.device)
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        torch.save({"model": model.cpu().state_dict(), "history": history}, args.out)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
