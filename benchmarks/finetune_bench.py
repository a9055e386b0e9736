"""Fine-tuning side by side: full, head only and LoRA with lmlib, and LoRA with ``peft`` on the same model.

    .venv/bin/python benchmarks/finetune_bench.py        # writes benchmarks/results/finetune.md

The fine-tuning chapter's task, as ``lmlib.course.finetune_runs`` sets it: the character GPT of People's Daily
(recipe ``gpt_chars_peoples_daily``) with a ``GPTClassifier`` head (mean pooling) on ``reviews_zh``, 1000
labelled reviews (``labelled_sample``, seed 0), ``<bos>`` and the first 127 characters of each, batch 32 (32
steps an epoch), AdamW (weight decay 0.01) at the learning rate that ``checkpoints/finetune_reviews_zh.json``
chose on the valid split for each way. Four modes: the whole network trains ("full"); the head alone
(``freeze_all_but(model, ("head.",))``); lmlib's LoRA (``add_lora``, r 8, alpha 16, on ``attn.qkv`` and
``mlp.fc``, the head trainable); and ``peft``'s LoRA with the same settings (``get_peft_model`` with
``LoraConfig(r=8, lora_alpha=16, lora_dropout=0, target_modules=["qkv", "fc"])``, then the head unfrozen) on the
same classifier, with lmlib's A and B (and head) copied in, so that the two LoRA runs start from the same numbers
and train the same parameters. Not ``modules_to_save=["head"]``: peft matches module names by suffix, so it would
also make a trainable copy of ``body.lm_head`` (the 4032 x 128 output matrix tied to the embedding, unused by
the classifier).

Each mode runs in its own process (so its peak resident memory is its own; every process imports the same
modules, peft and transformers included), the modes alternating ``--repeats`` times: a few untimed warm-up
steps (then the trainable weights are put back and the optimizer made afresh), then ``--epochs`` timed
epochs of the loop ``lmlib.finetune.train_classifier`` runs (the same seeds, so the same batches and dropout
masks), then, in the first run of each mode, test accuracy. The lmlib-vs-peft speed is measured a second way:
both LoRA models in one process, trained step by step on the same batches, the order swapped every step (so
both see the same moments of a busy machine), each step's dropout seeded alike; the two loss trajectories
must then agree, and the table says by how much they differ. Timings are wall-clock.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "finetune.md"
FULL_RUNS = Path(__file__).parent.parent / "checkpoints" / "finetune_reviews_zh.json"
MODES = {"full": "full", "head": "head only", "lora": "lmlib LoRA", "peft": "peft LoRA"}
WAY = {"full": "full", "head": "head only", "lora": "LoRA", "peft": "LoRA"}  # whose chosen learning rate
LABELLED, SEED, WEIGHT_DECAY = 1000, 0, 0.01  # finetune_runs' three-ways size, its first seed, train_classifier's


def rss_bytes() -> int:
    """The process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def data():
    """The pretrained body, the 1000 labelled training reviews (ids, labels) and the test split (ids, labels)."""
    from lmlib.course import finetune_runs as R
    from lmlib.course.recipes import load_checkpoint

    body = load_checkpoint(R.BODY)
    splits = R.reviews_zh_splits(body.vocab, R.RunConfig().max_tokens)
    _, ids, labels = R.labelled_sample(splits["train"], LABELLED, SEED)
    return body, (ids, labels), splits["test"][1:]


def learning_rates() -> dict[str, float]:
    chosen = json.loads(FULL_RUNS.read_text())["chosen_lr"]
    return {mode: chosen[way] for mode, way in WAY.items()}


def make_model(mode: str, body) -> torch.nn.Module:
    """The classifier of ``mode``, built as ``finetune_runs.classifier`` builds it (seed 0). peft's gets the
    A, B and head of lmlib's LoRA model, so both LoRA modes start from the same numbers."""
    import peft

    from lmlib import finetune as FT
    from lmlib.course import finetune_runs as R

    config = R.RunConfig()
    if mode != "peft":
        return R.classifier(body, WAY[mode], SEED, config)
    ours = R.classifier(body, "LoRA", SEED, config)
    torch.manual_seed(SEED)
    plain = FT.GPTClassifier(copy.deepcopy(body), n_classes=len(R.LABELS), pooling=config.pooling)
    theirs = peft.get_peft_model(plain, peft.LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
        target_modules=[t.rsplit(".", 1)[-1] for t in config.lora_targets]))
    theirs.base_model.model.head.requires_grad_(True)  # not modules_to_save=["head"]: it also matches body.lm_head
    with torch.no_grad():
        for name, module in ours.named_modules():
            if isinstance(module, FT.LoRALinear):
                other = theirs.base_model.model.get_submodule(name)
                other.lora_A["default"].weight.copy_(module.lora_A)
                other.lora_B["default"].weight.copy_(module.lora_B)
        theirs.base_model.model.head.load_state_dict(ours.head.state_dict())
    return theirs


def train_step(model, optimizer, batch: torch.Tensor, labels: torch.Tensor) -> float:
    """One step of ``train_classifier``'s loop: the mean cross-entropy of the batch, backward, AdamW."""
    from lmlib import finetune as FT

    loss = FT.classification_loss(model(FT.trim_padding(batch, model.pad_id)), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def batches(ids: torch.Tensor, epochs: int, batch_size: int):
    """(epoch, rows) of each step: ``train_classifier``'s order (a permutation an epoch, generator seed 0)."""
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        order = torch.randperm(len(ids), generator=generator)
        for start in range(0, len(ids), batch_size):
            yield epoch, order[start : start + batch_size]


# --- one mode: one child process per run ----------------------------------------------------------


def mode_run(mode: str, epochs: int, warmup: int, threads: int, evaluate: bool, out: Path) -> None:
    """Child process: ``warmup`` untimed steps, weights put back, ``epochs`` timed epochs; write the figures."""
    import peft  # noqa: F401  (every mode imports the same modules)
    import transformers  # noqa: F401

    from lmlib import finetune as FT
    from lmlib.course import finetune_runs as R

    torch.set_num_threads(threads)
    body, (ids, labels), test = data()
    model = make_model(mode, body)
    del body
    batch_size, lr = R.RunConfig().batch_size, learning_rates()[mode]
    params = [p for p in model.parameters() if p.requires_grad]
    start_weights = [p.detach().clone() for p in params]
    model.train()
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=WEIGHT_DECAY)
    rss_before = rss_bytes()
    for step in range(warmup):  # untimed: first calls allocate and pick kernels
        rows = torch.arange(step * batch_size, (step + 1) * batch_size)
        train_step(model, optimizer, ids[rows], labels[rows])
    with torch.no_grad():
        for p, w in zip(params, start_weights, strict=True):
            p.copy_(w)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=WEIGHT_DECAY)
    torch.manual_seed(SEED)  # dropout, as train_classifier seeds it
    seconds, totals, steps = [0.0] * epochs, [0.0] * epochs, 0
    for epoch, rows in batches(ids, epochs, batch_size):
        start = time.perf_counter()
        loss = train_step(model, optimizer, ids[rows], labels[rows])
        seconds[epoch] += time.perf_counter() - start
        totals[epoch] += loss * len(rows)
        steps += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before evaluation: training's peak
    accuracy = FT.accuracy(model, *test) if evaluate else None
    out.write_text(json.dumps({"mode": mode, "lr": lr, "trainable": FT.trainable_parameters(model),
                               "seconds": seconds, "steps": steps, "epoch_losses": [t / len(ids) for t in totals],
                               "accuracy": accuracy, "peak_rss": peak, "rss_before": rss_before}))


# --- lmlib LoRA vs peft LoRA, alternated step by step in one process ------------------------------


def alternating_steps(epochs: int, warmup: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds of each timed step and the loss of every step of both LoRA models in one process, on the same
    batches, the order swapped every step; each step's dropout masks drawn from the same seed on both sides."""
    from lmlib.course import finetune_runs as R

    body, (ids, labels), _ = data()
    models = {side: make_model(side, body) for side in ("lora", "peft")}
    optimizers = {side: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=learning_rates()[side],
                                          weight_decay=WEIGHT_DECAY) for side, m in models.items()}
    seconds: dict[str, list[float]] = {side: [] for side in models}
    losses: dict[str, list[float]] = {side: [] for side in models}
    for m in models.values():
        m.train()
    batch_size = R.RunConfig().batch_size
    # the warm-up steps: untimed, but part of the compared trajectory
    warm = [(-1, torch.arange(s * batch_size, (s + 1) * batch_size)) for s in range(warmup)]
    for step, (_, rows) in enumerate([*warm, *batches(ids, epochs, batch_size)]):
        for side in list(models) if step % 2 == 0 else list(reversed(models)):
            torch.manual_seed(1000 + step)  # the same dropout masks on both sides
            start = time.perf_counter()
            losses[side].append(train_step(models[side], optimizers[side], ids[rows], labels[rows]))
            if step >= warmup:
                seconds[side].append(time.perf_counter() - start)
    return seconds, losses


# --- the table -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs of each run (32 steps each)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a busy shared machine)")
    parser.add_argument("--child", choices=list(MODES))
    parser.add_argument("--evaluate", action="store_true", help="(child) test accuracy after training")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        mode_run(args.child, args.epochs, args.warmup, args.threads, args.evaluate, args.out)
        return

    import peft
    import transformers

    began = time.perf_counter()
    torch.set_num_threads(args.threads)
    loads: list[float] = []
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for mode in list(MODES) if r % 2 == 0 else list(reversed(MODES)):
                out = Path(tmp) / f"{mode}-{r}.json"
                loads.append(os.getloadavg()[0])
                subprocess.run([sys.executable, __file__, "--child", mode, "--epochs", str(args.epochs),
                                "--warmup", str(args.warmup), "--threads", str(args.threads), "--out", str(out),
                                *(["--evaluate"] if r == 0 else [])], check=True)
                loads.append(os.getloadavg()[0])
                runs[mode].append(json.loads(out.read_text()))
                print(f"{mode:>5} run {r + 1}: {sum(runs[mode][-1]['seconds']):.1f} s", flush=True)
    loads.append(os.getloadavg()[0])
    step_seconds, step_losses = alternating_steps(args.epochs, args.warmup)
    loads.append(os.getloadavg()[0])
    print("alternated:", {s: round(statistics.median(t), 3) for s, t in step_seconds.items()}, flush=True)
    lines = table(runs, step_seconds, step_losses, args, loads, peft, transformers, time.perf_counter() - began)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def table(runs, step_seconds, step_losses, args, loads, peft, transformers, wall: float) -> list[str]:
    full_runs = json.loads(FULL_RUNS.read_text())
    three_ways = full_runs["three_ways"]
    per_epoch = {m: [s for r in rs for s in r["seconds"]] for m, rs in runs.items()}
    median_epoch = {m: statistics.median(v) for m, v in per_epoch.items()}
    first = {m: rs[0] for m, rs in runs.items()}
    trainable = {m: r["trainable"] for m, r in first.items()}
    same_count = trainable["lora"] == trainable["peft"]
    loss_diff = max(abs(a - b) for a, b in zip(step_losses["lora"], step_losses["peft"], strict=True))
    step_median = {s: statistics.median(t) for s, t in step_seconds.items()}

    def cells(fmt) -> str:
        return " | ".join(fmt(m) for m in MODES)

    def mib(n: int, fmt: str) -> str:
        return f"{n / 2**20:{fmt}} MiB"

    def stored(mode: str, seeds: tuple[int, ...]) -> str:
        if mode == "peft":
            return "not run"
        scores = [r["test accuracy"] for r in three_ways if r["way"] == WAY[mode] and r["seed"] in seeds]
        return f"{statistics.mean(scores):.4f}"

    n_epochs = sorted({r["epochs"] for r in three_ways})
    seeds = tuple(sorted({r["seed"] for r in three_ways}))
    epochs = f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}"
    cores, threads = os.cpu_count(), torch.get_num_threads()
    command = " ".join(["python benchmarks/finetune_bench.py", *sys.argv[1:]])
    identical = " (identical)" if loss_diff == 0 else ""
    lines = [
        "# Fine-tuning: full, head only, lmlib LoRA and peft LoRA",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d')}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, peft {peft.__version__}, transformers "
        f"{transformers.__version__}, {threads} thread{'s' if threads > 1 else ''} ({platform.machine()}, "
        f"{cores} CPU cores); "
        f"the script took {wall:.0f} s.",
        "Model: the character GPT of People's Daily (`gpt_chars_peoples_daily`: 4 layers, d_model 128, RoPE, "
        "RMSNorm, SwiGLU, dropout 0.1) with a `GPTClassifier` head, mean pooling, on `reviews_zh` as "
        f"`lmlib.course.finetune_runs` trains it: {LABELLED} labelled reviews (`labelled_sample`, seed {SEED}), "
        "`<bos>` "
        "and the first 127 characters, batch 32 (32 steps an epoch), AdamW with weight decay 0.01 at the "
        f"learning rate chosen on the valid split (`{FULL_RUNS.parent.name}/{FULL_RUNS.name}`, `chosen_lr`). "
        "LoRA: r 8, alpha 16, on `attn.qkv` and `mlp.fc` of each block, the head trainable; peft's is "
        "`get_peft_model(LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=[\"qkv\", \"fc\"]))` "
        "with the head unfrozen by hand (`modules_to_save=[\"head\"]` would also match `body.lm_head`, as peft "
        "matches names by suffix, and add a trainable copy of the 516,096-number tied output matrix) and "
        "lmlib's A, B and head copied in.",
        "",
        "## Per mode",
        "",
        f"Each mode in its own process, {args.repeats} runs each, the modes alternating: {args.warmup} untimed "
        f"warm-up steps (then the trainable weights are restored and the optimizer made afresh), {epochs} timed "
        "(the same batches and dropout masks as `train_classifier`), test accuracy (1,735 reviews) after the "
        f"first run. {epochs.capitalize()} is far from the chapter's training; the full-length accuracies "
        f"({'/'.join(map(str, n_epochs))} epochs, on an {full_runs['device']}) are read from "
        f"`{FULL_RUNS.parent.name}/{FULL_RUNS.name}` (`three_ways`), not measured here.",
        "",
        f"|  | {' | '.join(MODES.values())} |",
        "|---|" + "---|" * len(MODES),
        f"| learning rate | {cells(lambda m: format(first[m]['lr'], 'g'))} |",
        f"| trainable parameters | {cells(lambda m: f'{trainable[m]:,}')} |",
        f"| seconds per epoch, median of the {len(per_epoch['full'])} timed epochs | "
        f"{cells(lambda m: f'{median_epoch[m]:.2f}')} |",
        f"| seconds per epoch, each | {cells(lambda m: ', '.join(f'{s:.2f}' for s in per_epoch[m]))} |",
        f"| peak resident memory (process) | {cells(lambda m: mib(max(r['peak_rss'] for r in runs[m]), ',.0f'))} |",
        "| peak growth during training (peak - resident memory before the first warm-up step) | "
        f"{cells(lambda m: mib(max(r['peak_rss'] - r['rss_before'] for r in runs[m]), ',.1f'))} |",
        "| training loss per epoch (run 1) | "
        f"{cells(lambda m: ', '.join(f'{x:.4f}' for x in first[m]['epoch_losses']))} |",
        f"| test accuracy after {epochs} (run 1) | {cells(lambda m: format(first[m]['accuracy'], '.4f'))} |",
        f"| test accuracy after {'/'.join(map(str, n_epochs))} epochs, seed {SEED} (stored) | "
        f"{cells(lambda m: stored(m, (SEED,)))} |",
        f"| test accuracy after {'/'.join(map(str, n_epochs))} epochs, mean of seeds "
        f"{', '.join(map(str, seeds))} (stored) | {cells(lambda m: stored(m, seeds))} |",
        "",
        "Trainable parameters: lmlib's LoRA and peft's train "
        f"{'the same number' if same_count else 'DIFFERENT numbers'}"
        f" ({trainable['lora']:,} vs {trainable['peft']:,}: A and B of the 8 adapted layers and the head's "
        f"{trainable['head']:,}). Peak memory includes the Python interpreter, PyTorch, peft and transformers "
        "(imported by every mode), the pretrained body and the data; the growth row is what training adds.",
        "",
        "## lmlib LoRA vs peft LoRA",
        "",
        f"The two LoRA models in one process, {len(step_seconds['lora'])} timed steps each (after {args.warmup} "
        "untimed), the same batch for both at each step, the order swapped every step, so that both see the same "
        "moments of a busy machine; and the separate processes above. Speed ratio = peft's seconds / lmlib's "
        "(above 1: lmlib is faster). Goal: >= 0.9x.",
        "",
        "|  | lmlib LoRA | peft LoRA | lmlib / peft speed |",
        "|---|---|---|---|",
        f"| steps alternated in one process: median seconds per step | {step_median['lora']:.3f} | "
        f"{step_median['peft']:.3f} | {step_median['peft'] / step_median['lora']:.3f}x |",
        f"| separate processes: median seconds per epoch | {median_epoch['lora']:.2f} | {median_epoch['peft']:.2f} | "
        f"{median_epoch['peft'] / median_epoch['lora']:.3f}x |",
        "",
        f"Like for like: from the same A, B and head, on the same batches with the same dropout masks, the two "
        f"loss trajectories ({len(step_losses['lora'])} steps, warm-up included) differ by at most "
        f"{loss_diff:.1e}{identical}. "
        f"The 1-minute load average, before and after each part, ranged from {min(loads):.1f} to "
        f"{max(loads):.1f} on {cores} cores ({'other jobs were running' if max(loads) > 0.5 * cores else 'quiet'}): "
        "separate runs meet the other jobs at different moments, alternated steps share them, so their ratio is "
        "the steadier one.",
    ]
    return lines


if __name__ == "__main__":
    main()
