"""lmlib.course.finetune_runs: the committed results match the code's settings, and each run works end to end on a
tiny configuration (the full runs take minutes on a GPU, an hour and more on 2 CPU cores)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from lmlib import finetune as FT
from lmlib import pretraining
from lmlib.course import finetune_runs as R
from lmlib.course.recipes import CHECKPOINTS, load_checkpoint
from lmlib.data import load_corpus


def test_mean_and_std_groups_in_order_with_the_sample_deviation():
    rows = [{"n": 1, "way": "a", "acc": 0.5}, {"n": 1, "way": "a", "acc": 0.7}, {"n": 2, "way": "a", "acc": 0.9},
            {"n": 1, "way": "b"}]
    assert R.mean_and_std(rows, ("n", "way"), "acc") == [
        {"n": 1, "way": "a", "mean": pytest.approx(0.6), "std": pytest.approx(math.sqrt(0.02)), "runs": 2},
        {"n": 2, "way": "a", "mean": 0.9, "std": 0.0, "runs": 1}]


def test_paired_differences_pair_the_same_seeds_in_points():
    rows = [{"way": w, "labels": n, "seed": s, "test accuracy": a}
            for w, n, s, a in [("a", 10, 0, 0.70), ("b", 10, 0, 0.60), ("a", 10, 1, 0.50), ("b", 10, 1, 0.55),
                               ("a", 20, 0, 0.80), ("b", 20, 0, 0.75), ("a", 20, 1, 0.90)]]
    assert R.paired_differences(rows, "a", "b") == [
        {"labels": 10, "mean": pytest.approx(2.5), "std": pytest.approx(math.sqrt(112.5)), "runs": 2, "positive": 1},
        {"labels": 20, "mean": pytest.approx(5.0), "std": 0.0, "runs": 1, "positive": 1}]  # seed 1 of "b" missing


@pytest.mark.parametrize(("name", "config"), [("reviews_zh", R.RunConfig()), ("domain_adaptation", R.AdaptConfig()),
                                              ("polarity_en", R.PolarityConfig())])
def test_the_committed_results_were_made_with_the_code_s_settings(name, config):
    path = CHECKPOINTS / f"finetune_{name}.json"
    if not path.exists():
        pytest.fail(f"{path} is missing: run python -m lmlib.course.finetune_runs {name}")
    saved = json.loads(path.read_text())["config"]
    assert saved == json.loads(json.dumps(dataclasses.asdict(config))), (
        f"{path.name} was made with other settings than lmlib.course.finetune_runs has now: re-run "
        f"python -m lmlib.course.finetune_runs {name}")


def _accuracy_of(count: int, value: float) -> bool:
    """Is ``value`` a share k / count of ``count`` examples (as float32 or float64 writes it)?"""
    return abs(value * count - round(value * count)) < 1e-3


def test_the_committed_reviews_zh_tables_cover_the_settings_and_choose_as_the_code_does():
    result = json.loads((CHECKPOINTS / "finetune_reviews_zh.json").read_text())
    config = R.RunConfig()
    assert sorted((r["way"], r["lr"], r["seed"]) for r in result["lr_sweep"]) == sorted(
        (w, lr, s) for w in R.WAYS for lr in config.learning_rates for s in config.sweep_seeds)
    for way in R.WAYS:  # the learning rate with the best summed validation accuracy, as reviews_zh chooses
        total = {lr: sum(r["valid accuracy"] for r in result["lr_sweep"] if (r["way"], r["lr"]) == (way, lr))
                 for lr in config.learning_rates}
        assert result["chosen_lr"][way] == max(total, key=total.get), way
    assert sorted((r["way"], r["labels"], r["seed"]) for r in result["learning_curve"]) == sorted(
        (w, n, s) for w in ("bag of characters", "full", "from scratch") for n in config.sizes for s in config.seeds)
    assert sorted((r["way"], r["seed"]) for r in result["three_ways"]) == sorted(
        (w, s) for w in ("full", "head only", "LoRA") for s in config.seeds)
    for row in result["three_ways"] + result["learning_curve"]:
        assert _accuracy_of(result["examples"]["test"], row["test accuracy"]), row
        if "lr" in row:
            assert row["lr"] == result["chosen_lr"][row["way"]], row
    for row in result["lr_sweep"]:
        assert _accuracy_of(result["examples"]["valid"], row["valid accuracy"]), row


def test_the_committed_domain_adaptation_and_polarity_tables_cover_the_settings():
    rows = json.loads((CHECKPOINTS / "finetune_domain_adaptation.json").read_text())["rows"]
    config = R.AdaptConfig()
    expected = {("wiki model, before", 0), *(("fine-tuned on news", n) for n in config.fine_tune_steps),
                *(("fine-tuned, wiki replayed", n) for n in config.replay_steps),
                *(("news only", n) for n in config.scratch_steps)}
    assert {(r["kind"], r["steps"]) for r in rows} == expected
    assert len(rows) == 1 + len(config.fine_tune_lrs) * len(config.fine_tune_steps) + len(config.replay_steps) \
        + len(config.scratch_steps)
    assert all(0.5 < r[k] < 8 for r in rows for k in ("news valid bpc", "news test bpc", "wiki test bpc"))
    polarity = json.loads((CHECKPOINTS / "finetune_polarity_en.json").read_text())
    folds = R.PolarityConfig().folds
    assert [r["fold"] for r in polarity["rows"]] == list(range(folds))
    per_fold = polarity["examples"] // folds
    for row in polarity["rows"]:
        for method in ("bag of words", "frozen MiniLM + logistic regression", "MiniLM fine-tuned, lmlib loop",
                       "MiniLM fine-tuned, transformers.Trainer"):
            assert _accuracy_of(per_fold, row[method]), (row["fold"], method, row[method])


def test_reviews_zh_on_a_tiny_configuration(monkeypatch):
    real = R.reviews_zh_splits
    def every_100th(vocab, max_tokens):  # both classes: the corpus lists the positive reviews first
        return {split: tuple(part[::100] for part in data) for split, data in real(vocab, max_tokens).items()}

    monkeypatch.setattr(R, "reviews_zh_splits", every_100th)
    config = R.RunConfig(sizes=(20,), seeds=(0,), learning_rates=(1e-3,), sweep_size=20, sweep_seeds=(0,),
                         three_ways_size=20, min_steps=1, max_tokens=8)
    result = R.reviews_zh(config)
    assert result["chosen_lr"] == dict.fromkeys(R.WAYS, 1e-3)
    assert [r["way"] for r in result["learning_curve"]] == ["bag of characters", "full", "from scratch"]
    ways = {r["way"]: r for r in result["three_ways"]}
    assert ways["head only"]["trainable"] == 2 * 128 + 2  # the head: d_model x 2 classes + 2 biases
    # LoRA r = 8 on qkv (128 -> 384) and fc (128 -> 2 x 344, SwiGLU) in 4 layers, plus the head
    assert ways["LoRA"]["trainable"] == 4 * 8 * ((128 + 384) + (128 + 688)) + 258
    assert ways["LoRA"]["checkpoint_bytes"] == 4 * ways["LoRA"]["trainable"]  # float32, what trains is kept
    assert ways["full"]["checkpoint_bytes"] == 4 * ways["full"]["trainable"]  # tied embedding counted once
    n_test = result["examples"]["test"]
    assert n_test > 0
    assert all(_accuracy_of(n_test, r["test accuracy"]) for r in result["three_ways"] + result["learning_curve"])


def test_pooling_changes_only_the_pooling_and_its_committed_run_is_the_three_ways_row(monkeypatch):
    real = R.reviews_zh_splits
    monkeypatch.setattr(R, "reviews_zh_splits", lambda vocab, max_tokens: {
        split: tuple(part[::100] for part in data) for split, data in real(vocab, max_tokens).items()})
    rows = R.pooling(R.RunConfig(three_ways_size=20, min_steps=2, max_tokens=8))["rows"]
    assert [r["pooling"] for r in rows] == ["mean", "last"]
    assert rows[0]["final_train_loss"] != rows[1]["final_train_loss"]
    assert all((r["labels"], r["seed"], r["trainable"]) == (20, 0, 2 * 128 + 2) for r in rows)
    test_ids, test_labels = (part[::100] for part in real(load_checkpoint(R.BODY).vocab, 8)["test"][1:])
    for row in rows:  # the recorded head gives the recorded predictions, whose accuracy is the row's
        assert len(row["epoch_losses"]) == row["epochs"] and row["epoch_losses"][-1] == row["final_train_loss"]
        predicted = torch.tensor([int(c) for c in row["test predictions"]])
        assert (predicted == test_labels).float().mean().item() == row["test accuracy"]
        model = R.classifier(load_checkpoint(R.BODY), "head only", seed=1,
                             config=R.RunConfig(pooling=row["pooling"]))
        model.head.load_state_dict({name: torch.tensor(value) for name, value in row["head"].items()})
        assert torch.equal(FT.predict(model, test_ids), predicted)
    committed = json.loads((CHECKPOINTS / "finetune_pooling.json").read_text())["rows"]
    reviews = json.loads((CHECKPOINTS / "finetune_reviews_zh.json").read_text())
    row = next(r for r in reviews["three_ways"] if (r["way"], r["seed"]) == ("head only", 0))
    assert [r["pooling"] for r in committed] == ["mean", "last"]
    assert all((r["labels"], r["lr"], r["epochs"]) == (row["labels"], row["lr"], row["epochs"]) for r in committed)
    labels = torch.tensor([R.LABELS.index(label) for _, label in load_corpus("reviews_zh", "test")])
    for r in committed:  # what the chapter checks its live run against is the run's own record
        predicted = torch.tensor([int(c) for c in r["test predictions"]])
        assert (predicted == labels).float().mean().item() == r["test accuracy"]
        assert r["epoch_losses"][-1] == r["final_train_loss"] and len(r["epoch_losses"]) == r["epochs"]
        assert {name: torch.tensor(v).shape for name, v in r["head"].items()} == {
            "weight": (2, 128), "bias": (2,)}


def test_domain_adaptation_on_a_tiny_configuration(monkeypatch):
    real = R.character_sentences
    monkeypatch.setattr(R, "character_sentences", lambda corpus, split: real(corpus, split)[:12])
    config = R.AdaptConfig(fine_tune_lrs=(1e-3,), fine_tune_steps=(2,), scratch_steps=(2,), replay_steps=(2,),
                           batch_size=2, block=16)
    rows = R.domain_adaptation(config)["rows"]
    assert [r["kind"] for r in rows] == ["wiki model, before", "fine-tuned on news", "fine-tuned, wiki replayed",
                                         "news only"]
    before, fine_tuned, replayed, scratch = rows
    assert len({before["news valid bpc"], fine_tuned["news valid bpc"], replayed["news valid bpc"]}) == 3
    assert scratch["news valid bpc"] > before["news valid bpc"] + 2  # two steps from scratch: nearly uniform still


def test_polarity_en_runs_both_training_loops_on_the_same_folds(monkeypatch):
    import transformers

    def tiny_bert(seed):
        torch.manual_seed(seed)
        config = transformers.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32, num_labels=2)
        return transformers.BertForSequenceClassification(config)

    monkeypatch.setattr(R, "minilm_classifier", tiny_bert)
    monkeypatch.setattr(pretraining, "sentence_embeddings",  # MiniLM's own are tested in test_pretraining.py
                        lambda texts, tokenizer, model: torch.randn(len(texts), 8, generator=torch.Generator()))
    result = R.polarity_en(R.PolarityConfig(folds=2, epochs=1))
    assert [r["fold"] for r in result["rows"]] == [0, 1] and result["examples"] == 200
    for row in result["rows"]:
        for method in ("bag of words", "frozen MiniLM + logistic regression", "MiniLM fine-tuned, lmlib loop",
                       "MiniLM fine-tuned, transformers.Trainer"):
            assert 0 <= row[method] <= 1 and round(row[method] * 100, 6).is_integer()  # 100 test sentences a fold


def test_a_classifier_of_each_way_trains_what_its_name_says():
    from tests.test_finetune import tiny_gpt

    base = tiny_gpt(modern=True)
    with torch.no_grad():
        base.token_embedding.weight += 1  # "pretrained": not the weights a fresh model of the same seed gets
    config = R.RunConfig(lora_targets=("attn.qkv",))
    counts = {way: FT.trainable_parameters(R.classifier(base, way, 0, config)) for way in R.WAYS}
    assert counts["full"] == counts["from scratch"] == base.num_parameters() + 16 * 2 + 2
    assert counts["head only"] == 16 * 2 + 2 and counts["head only"] < counts["LoRA"] < counts["full"]
    scratch = R.classifier(base, "from scratch", 0, config).body
    assert not torch.equal(scratch.token_embedding.weight, base.token_embedding.weight)
