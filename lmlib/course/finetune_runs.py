"""The fine-tuning chapter's long runs: each writes a small JSON table to ``checkpoints/``, which the chapter loads.

    python -m lmlib.course.finetune_runs reviews_zh          # learning rates, learning curve, three ways to fine-tune
    python -m lmlib.course.finetune_runs domain_adaptation   # a wiki GPT adapted to news: gain and forgetting
    python -m lmlib.course.finetune_runs polarity_en         # MiniLM on 200 English sentences, 5-fold cross-validation
    python -m lmlib.course.finetune_runs pooling             # head only on 1,000 labels: mean vs last-token pooling
    python -m lmlib.course.finetune_runs --list

``--device cuda`` runs the first two on a GPU (about 4 and 5 minutes on an H200; on 2 CPU cores they take hours,
an estimate: not measured). ``polarity_en`` runs on the CPU (MiniLM fine-tuned 10 times: the committed run
took 51 minutes of wall-clock time on 2 CPU threads, its ``wall_seconds``), and so does ``pooling`` (under a
minute).

The Chinese task: ``reviews_zh`` (product reviews, positive or negative), read as characters by the
character-level GPT of People's Daily (recipe ``gpt_chars_peoples_daily``) with a classification head
(``lmlib.finetune.GPTClassifier``, mean pooling), or by the same network freshly initialised. Learning rates are
chosen on the ``valid`` split; accuracies are on ``test``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lmlib import finetune as FT
from lmlib.course.recipes import CHECKPOINTS, build_model, character_sentences, load_checkpoint, recipe_named
from lmlib.lm import encode_batch, stream_logprob
from lmlib.train import TrainConfig, encode_stream, train

BODY = "gpt_chars_peoples_daily"
LABELS = ("neg", "pos")
WAYS = ("full", "from scratch", "head only", "LoRA")  # "full": the pretrained body and the head all train


@dataclasses.dataclass(frozen=True)
class RunConfig:
    sizes: tuple[int, ...] = (100, 300, 1000, 3000)  # labelled training examples
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # each: another sample of labels and another initialisation
    max_tokens: int = 128  # <bos> and the first 127 characters of a review
    batch_size: int = 32
    min_steps: int = 150  # small sets get more epochs: every run takes at least this many steps
    pooling: str = "mean"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("attn.qkv", "mlp.fc")
    learning_rates: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3)  # tried for each way on the valid split
    sweep_size: int = 1000
    sweep_seeds: tuple[int, ...] = (0, 1)
    three_ways_size: int = 1000


# --- reviews_zh: pretrained vs from scratch, and three ways to fine-tune ---------------------------------


def reviews_zh_splits(vocab, max_tokens: int) -> dict[str, tuple[list[list[str]], torch.Tensor, torch.Tensor]]:
    """Each split as (characters, ids in the body's vocabulary, 0/1 labels); characters without spaces, as the
    People's Daily model reads."""
    from lmlib.data import load_corpus
    from lmlib.tokenize import char_tokenize

    splits = {}
    for split in ("train", "valid", "test"):
        rows = load_corpus("reviews_zh", split)
        chars = [char_tokenize(text, keep_spaces=False) for text, _ in rows]
        labels = torch.tensor([LABELS.index(label) for _, label in rows])
        splits[split] = (chars, encode_batch(vocab, chars, eos=False, max_tokens=max_tokens), labels)
    return splits


def epochs_for(n: int, config: RunConfig) -> int:
    return max(3, math.ceil(config.min_steps * config.batch_size / n))


def classifier(body: torch.nn.Module, way: str, seed: int, config: RunConfig) -> FT.GPTClassifier:
    """A fresh copy of the pretrained ``body`` (or the same network re-initialised: "from scratch") with a new
    head, frozen as ``way`` says."""
    torch.manual_seed(seed)
    body = type(body)(body.config, body.vocab) if way == "from scratch" else copy.deepcopy(body)
    model = FT.GPTClassifier(body, n_classes=len(LABELS), pooling=config.pooling)
    if way == "head only":
        FT.freeze_all_but(model, ("head.",))
    elif way == "LoRA":
        FT.add_lora(model, r=config.lora_rank, alpha=config.lora_alpha, targets=config.lora_targets)
    return model


def fine_tune(model: FT.GPTClassifier, way: str, train_set: tuple, eval_sets: dict, lr: float, seed: int,
              config: RunConfig, device: str) -> dict:
    """Train on ``train_set`` = (ids, labels); accuracy on each of ``eval_sets``, and what the run cost."""
    ids, labels = train_set
    model.to(device)
    start = time.perf_counter()
    losses = FT.train_classifier(model, ids, labels, epochs=epochs_for(len(ids), config), lr=lr,
                                 batch_size=config.batch_size, seed=seed)
    seconds = time.perf_counter() - start
    kept = [p for name, p in model.named_parameters()  # what a checkpoint of this run must keep (tied: once)
            if way in ("full", "from scratch") or name.startswith("head.") or ".lora_" in name]
    return {**{f"{name} accuracy": FT.accuracy(model, *data) for name, data in eval_sets.items()},
            "seconds": round(seconds, 2), "final_train_loss": round(losses[-1], 6), "epochs": len(losses),
            "epoch_losses": [round(loss, 6) for loss in losses],
            "trainable": FT.trainable_parameters(model),
            "checkpoint_bytes": sum(p.numel() * p.element_size() for p in kept)}


def bag_of_characters(train_chars: list[list[str]], train_labels: torch.Tensor, test: tuple) -> float:
    """Logistic regression on character counts (scikit-learn): the baseline with no pretraining at all."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(analyzer=lambda chars: chars)
    return logistic_accuracy(vectorizer.fit_transform(train_chars), train_labels,
                             vectorizer.transform(test[0]), test[2])


def logistic_accuracy(train_features, train_labels, test_features, test_labels) -> float:
    """Test accuracy of scikit-learn's logistic regression fitted on the training features (every baseline's
    classifier here: on counts, or on frozen embeddings)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=2000).fit(train_features, np.asarray(train_labels))
    return float((model.predict(test_features) == np.asarray(test_labels)).mean())


def labelled_sample(train_split: tuple, n: int, seed: int) -> tuple[list, torch.Tensor, torch.Tensor]:
    """n training reviews drawn by ``stratified_subset``: their characters, ids and labels."""
    chars, ids, labels = train_split
    picked = FT.stratified_subset(labels.tolist(), n, seed)
    return [chars[i] for i in picked], ids[picked], labels[picked]


def reviews_zh(config: RunConfig = RunConfig(), device: str = "cpu") -> dict:
    """1. each way's learning rate, chosen on ``valid``; 2. the learning curve, pretrained vs from scratch vs bag
    of characters; 3. full vs head-only vs LoRA at ``three_ways_size`` labels."""
    body = load_checkpoint(BODY)
    data = reviews_zh_splits(body.vocab, config.max_tokens)
    valid, test = {"valid": data["valid"][1:]}, {"test": data["test"][1:]}

    def run(way: str, n: int, seed: int, lr: float, eval_sets: dict) -> dict:
        _, ids, labels = labelled_sample(data["train"], n, seed)
        row = fine_tune(classifier(body, way, seed, config), way, (ids, labels), eval_sets, lr, seed, config, device)
        row = {"way": way, "labels": n, "seed": seed, "lr": lr, **row}
        print(json.dumps(row), flush=True)
        return row

    sweep = [run(way, config.sweep_size, seed, lr, valid)
             for way in WAYS for lr in config.learning_rates for seed in config.sweep_seeds]
    chosen = {way: max(config.learning_rates, key=lambda lr, way=way: sum(
        r["valid accuracy"] for r in sweep if r["way"] == way and r["lr"] == lr)) for way in WAYS}
    curve = []
    for n in config.sizes:
        for seed in config.seeds:
            chars, _, labels = labelled_sample(data["train"], n, seed)
            curve.append({"way": "bag of characters", "labels": n, "seed": seed,
                          "test accuracy": bag_of_characters(chars, labels, data["test"])})
            curve += [run(way, n, seed, chosen[way], test) for way in ("full", "from scratch")]
    three_ways = [run(way, config.three_ways_size, seed, chosen[way], test)
                  for seed in config.seeds for way in ("full", "head only", "LoRA")]
    return {"config": dataclasses.asdict(config), "body": BODY, "device": device_name(device),
            "examples": {k: len(v[2]) for k, v in data.items()}, "chosen_lr": chosen,
            "lr_sweep": sweep, "learning_curve": curve, "three_ways": three_ways}


# --- domain adaptation: a wiki GPT fine-tuned on news ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    base: str = "gpt_chars_wiki"  # the pretrained model; the news-only models get its vocabulary and shape
    fine_tune_lrs: tuple[float, ...] = (3e-4, 2e-3)  # 2e-3 is the pretraining peak
    fine_tune_steps: tuple[int, ...] = (100, 300, 1000, 3000)
    scratch_steps: tuple[int, ...] = (300, 1000, 3000, 6000)  # 6000: the steps of pretraining + fine-tuning
    scratch_lr: float = 2e-3
    replay_steps: tuple[int, ...] = (300, 1000, 3000)  # fine-tuning on news mixed half and half with wiki
    batch_size: int = 16
    block: int = 128
    seed: int = 0


def pooling(config: RunConfig = RunConfig(), device: str = "cpu") -> dict:
    """Head-only fine-tuning on 1,000 labels (seed 0, the learning rate ``reviews_zh`` chose for it), once with
    mean pooling (the three-ways table's row, run again) and once with last-token pooling, the only change."""
    chosen = json.loads((CHECKPOINTS / "finetune_reviews_zh.json").read_text())["chosen_lr"]["head only"]
    body = load_checkpoint(BODY)
    data = reviews_zh_splits(body.vocab, config.max_tokens)
    _, ids, labels = labelled_sample(data["train"], config.three_ways_size, seed=0)
    rows = []
    for kind in ("mean", "last"):  # the same seed: the same head, batches and dropout masks
        settings = dataclasses.replace(config, pooling=kind)
        model = classifier(body, "head only", 0, settings)
        run = fine_tune(model, "head only", (ids, labels), {"test": data["test"][1:]}, chosen, 0, settings, device)
        # what lets a reader check the run in seconds: the trained head (258 numbers) and its test predictions
        head = {name: p.cpu().tolist() for name, p in model.head.state_dict().items()}
        predicted = "".join(str(int(c)) for c in FT.predict(model, data["test"][1]))
        rows.append({"pooling": kind, "labels": config.three_ways_size, "seed": 0, "lr": chosen, **run,
                     "head": head, "test predictions": predicted})
        print(json.dumps(rows[-1]), flush=True)
    return {"device": device_name(device), "rows": rows}


def domain_adaptation(config: AdaptConfig = AdaptConfig(), device: str = "cpu") -> dict:
    """News test bits per character after fine-tuning the wiki GPT on news, after training on news alone, and
    after fine-tuning with wiki text replayed; and the wiki test bits per character of each (forgetting)."""
    base = load_checkpoint(config.base)
    vocab = base.vocab
    news_sentences = {split: character_sentences("news", split) for split in ("train", "valid", "test")}
    news = {split: encode_stream(vocab, sentences) for split, sentences in news_sentences.items()}
    wiki_train = character_sentences("wiki", "train")
    news_chars = sum(len(s) + 2 for s in news_sentences["train"])
    every = max(1, round(sum(len(s) + 2 for s in wiki_train) / news_chars))
    replay = torch.cat([news["train"], encode_stream(vocab, wiki_train[::every])])  # about as much wiki as news
    evals = {"news valid": news["valid"], "news test": news["test"],
             "wiki test": encode_stream(vocab, character_sentences("wiki", "test"))}

    def measure(model: torch.nn.Module) -> dict:
        model.to(device).eval()
        with torch.no_grad():
            scores = {name: stream_logprob(model, stream.to(device)) for name, stream in evals.items()}
        return {f"{name} bpc": round(-total / count / math.log(2), 5) for name, (total, count) in scores.items()}

    def run(kind: str, model: torch.nn.Module, stream: torch.Tensor, steps: int, lr: float) -> dict:
        settings = TrainConfig(steps=steps, batch_size=config.batch_size, block=config.block, lr=lr,
                               warmup=min(200, steps // 10), eval_every=steps, seed=config.seed)
        start = time.perf_counter()
        train(model, stream, None, settings, progress=False, device=device)
        row = {"kind": kind, "steps": steps, "lr": lr, "seconds": round(time.perf_counter() - start, 1),
               **measure(model)}
        print(json.dumps(row), flush=True)
        return row

    rows = [{"kind": "wiki model, before", "steps": 0, "lr": 0.0, "seconds": 0.0, **measure(copy.deepcopy(base))}]
    for lr in config.fine_tune_lrs:
        rows += [run("fine-tuned on news", copy.deepcopy(base), news["train"], steps, lr)
                 for steps in config.fine_tune_steps]
    rows += [run("fine-tuned, wiki replayed", copy.deepcopy(base), replay, steps, config.scratch_lr)
             for steps in config.replay_steps]
    for steps in config.scratch_steps:
        model = build_model(recipe_named(config.base), vocab)  # seeded by the recipe
        rows.append(run("news only", model, news["train"], steps, config.scratch_lr))
    unk = float((news["test"] == vocab.unk_id).float().mean())
    return {"config": dataclasses.asdict(config), "device": device_name(device), "news_test_unk_share": unk,
            "tokens": {name: len(s) for name, s in {**news, "replay train": replay, **evals}.items()}, "rows": rows}


# --- polarity_en: MiniLM, a real pretrained encoder, on 200 sentences ------------------------------------


@dataclasses.dataclass(frozen=True)
class PolarityConfig:
    folds: int = 5
    seed: int = 0
    epochs: int = 10
    lr: float = 5e-5
    batch_size: int = 16
    weight_decay: float = 0.01


def polarity_en(config: PolarityConfig = PolarityConfig(), device: str = "cpu") -> dict:
    """Stratified k-fold accuracy of four classifiers on the same folds: bag of words + logistic regression,
    frozen MiniLM sentence embeddings + logistic regression, and MiniLM fine-tuned end to end, once with
    lmlib's loop (``train_classifier``) and once with ``transformers.Trainer``."""
    from sklearn.model_selection import StratifiedKFold

    from lmlib.data import load_corpus
    from lmlib.pretraining import load_minilm, sentence_embeddings

    rows = load_corpus("polarity_en", "all")
    texts, labels = [t for t, _ in rows], torch.tensor([LABELS.index(y) for _, y in rows])
    tokenizer, encoder = load_minilm()
    embeddings = sentence_embeddings(texts, tokenizer, encoder)
    ids = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")["input_ids"]
    folds = StratifiedKFold(config.folds, shuffle=True, random_state=config.seed).split(texts, labels)
    results = []
    for fold, (train_rows, test_rows) in enumerate(folds):
        train_rows, test_rows = torch.tensor(train_rows), torch.tensor(test_rows)
        row = {"fold": fold, "bag of words": _bag_of_words(texts, labels, train_rows, test_rows),
               "frozen MiniLM + logistic regression": logistic_accuracy(
                   embeddings[train_rows].numpy(), labels[train_rows],
                   embeddings[test_rows].numpy(), labels[test_rows])}
        for name, fit in (("MiniLM fine-tuned, lmlib loop", _fine_tune_lmlib),
                          ("MiniLM fine-tuned, transformers.Trainer", _fine_tune_trainer)):
            start = time.perf_counter()
            row[name] = fit(ids, labels, train_rows, test_rows, tokenizer.pad_token_id, config, device)
            row[f"{name} seconds"] = round(time.perf_counter() - start, 1)
        results.append(row)
        print(json.dumps(row), flush=True)
    return {"config": dataclasses.asdict(config), "device": device_name(device), "examples": len(texts),
            "rows": results}


def _bag_of_words(texts: list[str], labels: torch.Tensor, train_rows, test_rows) -> float:
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer()
    return logistic_accuracy(vectorizer.fit_transform([texts[i] for i in train_rows]), labels[train_rows],
                             vectorizer.transform([texts[i] for i in test_rows]), labels[test_rows])


def minilm_classifier(seed: int) -> torch.nn.Module:
    """MiniLM's encoder with a new 2-class head (``AutoModelForSequenceClassification``; the head is seeded)."""
    from transformers import AutoModelForSequenceClassification

    from lmlib.pretraining import minilm_folder

    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_pretrained(minilm_folder(), num_labels=len(LABELS),
                                                              local_files_only=True)


def _fine_tune_lmlib(ids, labels, train_rows, test_rows, pad_id: int, config: PolarityConfig, device: str) -> float:
    model = FT.HFClassifier(minilm_classifier(config.seed), pad_id).to(device)
    FT.train_classifier(model, ids[train_rows], labels[train_rows], epochs=config.epochs, lr=config.lr,
                        batch_size=config.batch_size, seed=config.seed, weight_decay=config.weight_decay)
    return FT.accuracy(model, ids[test_rows], labels[test_rows])


def _fine_tune_trainer(ids, labels, train_rows, test_rows, pad_id: int, config: PolarityConfig, device: str) -> float:
    """What a practitioner writes: a Dataset of dicts, TrainingArguments, Trainer.train, Trainer.predict."""
    import tempfile

    from transformers import Trainer, TrainingArguments

    def dataset(rows):
        return [{"input_ids": FT.trim_padding(ids[i : i + 1], pad_id)[0], "labels": labels[i]} for i in rows]

    def collate(items):
        width = max(len(x["input_ids"]) for x in items)
        batch = torch.full((len(items), width), pad_id)
        for i, x in enumerate(items):
            batch[i, : len(x["input_ids"])] = x["input_ids"]
        return {"input_ids": batch, "attention_mask": (batch != pad_id).long(),
                "labels": torch.stack([x["labels"] for x in items])}

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(out, num_train_epochs=config.epochs, learning_rate=config.lr,
                                 per_device_train_batch_size=config.batch_size, weight_decay=config.weight_decay,
                                 seed=config.seed, save_strategy="no", report_to="none", logging_strategy="no",
                                 use_cpu=device == "cpu", disable_tqdm=True)
        trainer = Trainer(model=minilm_classifier(config.seed), args=args, train_dataset=dataset(train_rows),
                          data_collator=collate)
        trainer.train()
        predictions = trainer.predict(dataset(test_rows)).predictions.argmax(-1)
    return float((torch.as_tensor(predictions) == labels[test_rows]).float().mean())


# --- reading the results ---------------------------------------------------------------------------------


def mean_and_std(rows: list[dict], by: tuple[str, ...], value: str) -> list[dict]:
    """Rows grouped by the keys ``by`` (in first-seen order): each group's mean and sample standard deviation
    of ``value`` over its runs (seeds or folds), and how many runs there were."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        if value in row:
            groups.setdefault(tuple(row[k] for k in by), []).append(row[value])
    out = []
    for key, values in groups.items():
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        out.append({**dict(zip(by, key, strict=True)), "mean": mean, "std": std, "runs": len(values)})
    return out


def paired_differences(rows: list[dict], first: str, second: str, value: str = "test accuracy") -> list[dict]:
    """Per number of labels, ``first``'s minus ``second``'s ``value`` seed by seed (in points: x 100; the two saw
    the same reviews), with the mean, the sample standard deviation and in how many seeds it is positive."""
    runs = {(r["way"], r["labels"], r["seed"]): r[value] for r in rows}
    out = []
    for n in dict.fromkeys(r["labels"] for r in rows):
        seeds = [s for (way, labels, s) in runs if way == first and labels == n and (second, n, s) in runs]
        points = [{"labels": n, "points": 100 * (runs[(first, n, s)] - runs[(second, n, s)])} for s in seeds]
        summary = mean_and_std(points, ("labels",), "points")[0]
        out.append({**summary, "positive": sum(p["points"] > 0 for p in points)})
    return out


# --- running them -----------------------------------------------------------------------------------------


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


RUNS: dict[str, Callable[..., dict]] = {"reviews_zh": reviews_zh, "domain_adaptation": domain_adaptation,
                                        "polarity_en": polarity_en, "pooling": pooling}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.course.finetune_runs", description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="?", choices=sorted(RUNS))
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--out", type=Path, default=CHECKPOINTS)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    args = parser.parse_args(argv)
    if args.list or not args.run:
        print("\n".join(sorted(RUNS)))
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to this PyTorch build; use --device cpu")
    if args.device == "cpu":
        torch.set_num_threads(2)  # the course's laptop
    start = time.perf_counter()
    result = RUNS[args.run](device=args.device)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    result["torch"] = torch.__version__
    path = args.out / f"finetune_{args.run}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
