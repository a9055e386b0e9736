"""The fine-tuning chapter's long runs: each writes a small JSON table to ``checkpoints/``, which the chapter loads.

    python -m lmlib.finetune_runs learning_curve_zh     # pretrained vs from scratch vs bag of characters
    python -m lmlib.finetune_runs three_ways_zh         # full, head-only and LoRA fine-tuning
    python -m lmlib.finetune_runs --list

The Chinese task: ``reviews_zh`` (product reviews, positive or negative), read as characters by the
character-level GPT of People's Daily (recipe ``gpt_chars_peoples_daily``) with a classification head
(``lmlib.finetune.GPTClassifier``, mean pooling), or by the same network freshly initialised.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lmlib import finetune as FT
from lmlib.train import CHECKPOINTS, load_checkpoint

BODY = "gpt_chars_peoples_daily"
LABELS = ("neg", "pos")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    sizes: tuple[int, ...] = (100, 300, 1000, 3000)  # labelled training examples
    seeds: tuple[int, ...] = (0, 1, 2)  # each: another sample of labels and another initialisation
    max_tokens: int = 128  # <bos> and the first 127 characters of a review
    lr: float = 5e-4
    batch_size: int = 32
    min_steps: int = 150  # small sets get more epochs: every run takes at least this many steps
    pooling: str = "mean"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    three_ways_size: int = 1000


def reviews_zh() -> dict[str, tuple[list[list[str]], torch.Tensor]]:
    """Train and test splits as character lists (no spaces, as the People's Daily model reads) and 0/1 labels."""
    from lmlib.data import load_corpus
    from lmlib.tokenize import char_tokenize

    splits = {}
    for split in ("train", "test"):
        rows = load_corpus("reviews_zh", split)
        splits[split] = ([char_tokenize(text, keep_spaces=False) for text, _ in rows],
                         torch.tensor([LABELS.index(label) for _, label in rows]))
    return splits


def epochs_for(n: int, config: RunConfig) -> int:
    return max(3, math.ceil(config.min_steps * config.batch_size / n))


def classifier(pretrained: bool, seed: int, config: RunConfig) -> FT.GPTClassifier:
    body = load_checkpoint(BODY)
    if not pretrained:  # the same network, freshly initialised
        torch.manual_seed(seed)
        body = type(body)(body.config, body.vocab)
    torch.manual_seed(seed)
    return FT.GPTClassifier(body, n_classes=len(LABELS), pooling=config.pooling)


def fine_tune(model: FT.GPTClassifier, ids: torch.Tensor, labels: torch.Tensor, test: tuple, seed: int,
              config: RunConfig) -> dict:
    start = time.perf_counter()
    losses = FT.train_classifier(model, ids, labels, epochs=epochs_for(len(ids), config), lr=config.lr,
                                 batch_size=config.batch_size, seed=seed)
    seconds = time.perf_counter() - start
    return {"accuracy": FT.accuracy(model, *test), "seconds": round(seconds, 1), "final_train_loss": losses[-1],
            "epochs": len(losses), "trainable": FT.trainable_parameters(model)}


def bag_of_characters(train: tuple, test: tuple) -> float:
    """Logistic regression on character counts (scikit-learn): the baseline with no pretraining at all."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = CountVectorizer(analyzer=lambda chars: chars)
    features = vectorizer.fit_transform(train[0])
    model = LogisticRegression(max_iter=2000).fit(features, train[1].numpy())
    return float((model.predict(vectorizer.transform(test[0])) == test[1].numpy()).mean())


def labelled_sample(data: dict, n: int, seed: int, config: RunConfig) -> tuple[list, torch.Tensor, torch.Tensor]:
    """n training reviews drawn by ``stratified_subset``: their characters, ids (the body's vocabulary), labels."""
    picked = FT.stratified_subset(data["train"][1].tolist(), n, seed)
    texts = [data["train"][0][i] for i in picked]
    return texts, FT.encode_texts(load_checkpoint(BODY).vocab, texts, config.max_tokens), data["train"][1][picked]


def encoded_test(data: dict, config: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    return FT.encode_texts(load_checkpoint(BODY).vocab, data["test"][0], config.max_tokens), data["test"][1]


def learning_curve_zh(config: RunConfig = RunConfig()) -> dict:
    data = reviews_zh()
    test = encoded_test(data, config)
    rows = []
    for n in config.sizes:
        for seed in config.seeds:
            texts, ids, labels = labelled_sample(data, n, seed, config)
            row = {"labels": n, "seed": seed, "bag of characters": bag_of_characters((texts, labels), data["test"])}
            for name, pretrained in [("pretrained", True), ("from scratch", False)]:
                row[name] = fine_tune(classifier(pretrained, seed, config), ids, labels, test, seed, config)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"config": dataclasses.asdict(config), "body": BODY, "test_examples": len(test[1]), "rows": rows}


def three_ways_zh(config: RunConfig = RunConfig()) -> dict:
    data = reviews_zh()
    test = encoded_test(data, config)
    rows = []
    for seed in config.seeds:
        _, ids, labels = labelled_sample(data, config.three_ways_size, seed, config)
        for way in ("full", "head only", "LoRA"):
            model = classifier(True, seed, config)
            if way == "head only":
                FT.freeze_all_but(model, ("head.",))
            elif way == "LoRA":
                FT.add_lora(model, r=config.lora_rank, alpha=config.lora_alpha, targets=("attn.qkv", "mlp.fc"))
            result = fine_tune(model, ids, labels, test, seed, config)
            saved = {k: v for k, v in model.state_dict().items()
                     if way == "full" or k.startswith("head.") or ".lora_" in k}  # what a checkpoint must keep
            result["checkpoint_bytes"] = sum(v.numel() * v.element_size() for v in saved.values())
            rows.append({"way": way, "seed": seed, **result})
            print(json.dumps(rows[-1]), flush=True)
    return {"config": dataclasses.asdict(config), "body": BODY, "labels": config.three_ways_size, "rows": rows}


RUNS: dict[str, Callable[[], dict]] = {"learning_curve_zh": learning_curve_zh, "three_ways_zh": three_ways_zh}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.finetune_runs", description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="?", choices=sorted(RUNS))
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--out", type=Path, default=CHECKPOINTS)
    args = parser.parse_args(argv)
    if args.list or not args.run:
        print("\n".join(sorted(RUNS)))
        return
    torch.set_num_threads(2)
    start = time.perf_counter()
    result = RUNS[args.run]()
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    path = args.out / f"finetune_{args.run}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
