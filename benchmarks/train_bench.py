"""Side by side: the MLP LM trained through ``lmlib.train.train`` vs a bare, hand-written PyTorch loop.

    .venv/bin/python benchmarks/train_bench.py            # writes benchmarks/results/train.md

Both train the ``mlp_wiki`` recipe's model (same initial weights, same seed) for
the same steps on the same batches: contiguous windows of the training stream at
offsets drawn from a generator seeded by the step, AdamW with weight decay on
weight matrices only, the recipe's warm-up + cosine learning rate, gradient
clipping at the same norm, the same cross-entropy over the same targets. The
bare loop is what one would write by hand in a notebook; ``lmlib.train`` adds
the checks, the history, the loss bookkeeping that DistributedDataParallel needs
and the progress bar (off here). Neither evaluates or saves during the timed steps.

Each loop runs in its own process (so its peak resident memory is its own), the
two alternate ``--repeats`` times, and the table gives the median throughput.
Both must end with identical parameters, which shows they did the same work.
Timings are wall-clock on whatever machine runs this; compare the ratio within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lmlib.course.recipes import RECIPES, build_model, recipe_data
from lmlib.train import lr_at, param_groups, train

RESULTS = Path(__file__).parent / "results" / "train.md"


def bare_loop(model, stream: torch.Tensor, config, steps: int) -> None:
    """The same training steps written out by hand, with nothing but PyTorch."""
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas)
    torch.manual_seed(config.seed)
    model.train()
    bos, pad, skip = model.vocab.bos_id, model.vocab.pad_id, model.context_size - 1
    for step in range(steps):
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        offsets = torch.randint(0, len(stream) - config.block, (config.batch_size,), generator=generator)
        window = stream[offsets[:, None] + torch.arange(config.block + 1)]
        x, y = window[:, :-1], window[:, 1:].clone()
        y[(y == bos) | (y == pad)] = -100
        y[:, :skip] = -100
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()


def one_run(mode: str, steps: int, out: Path) -> None:
    """Child process: train ``steps`` steps one way; write throughput, peak memory and the final weights."""
    recipe = RECIPES["mlp_wiki"]
    vocab, stream, _ = recipe_data(recipe)
    model = build_model(recipe, vocab)
    start = time.perf_counter()
    if mode == "lmlib":
        history = train(model, stream, None, recipe.train, max_steps=steps, progress=False)
        tokens = history["tokens"][-1]
    else:
        bare_loop(model, stream, recipe.train, steps)
        tokens = None
    seconds = time.perf_counter() - start
    torch.save(model.state_dict(), out.with_suffix(".pt"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out.write_text(json.dumps({"seconds": seconds, "tokens": tokens, "peak_rss": peak}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", choices=["lmlib", "bare"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        one_run(args.child, args.steps, args.out)
        return

    import tempfile

    runs = {"lmlib": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for mode in ("bare", "lmlib") if r % 2 else ("lmlib", "bare"):
                out = Path(tmp) / f"{mode}-{r}.json"
                subprocess.run([sys.executable, __file__, "--child", mode, "--steps", str(args.steps),
                                "--out", str(out)], check=True)
                runs[mode].append(json.loads(out.read_text()))
                print(f"{mode:>6} run {r + 1}: {runs[mode][-1]['seconds']:.2f} s", flush=True)
        a = torch.load(Path(tmp) / "lmlib-0.pt", weights_only=True)
        b = torch.load(Path(tmp) / "bare-0.pt", weights_only=True)
        max_diff = max(float((a[k] - b[k]).abs().max()) for k in a)

    tokens = runs["lmlib"][0]["tokens"]
    speed = {m: statistics.median(tokens / r["seconds"] for r in rs) for m, rs in runs.items()}
    best = {m: max(tokens / r["seconds"] for r in rs) for m, rs in runs.items()}
    peak = {m: max(r["peak_rss"] for r in rs) for m, rs in runs.items()}
    per_run = {m: ", ".join(f"{r['seconds']:.2f}" for r in rs) for m, rs in runs.items()}
    recipe = RECIPES["mlp_wiki"]
    lines = [
        "# Training loop: lmlib.train vs a bare PyTorch loop",
        "",
        f"Generated by `python benchmarks/train_bench.py` on {time.strftime('%Y-%m-%d')}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"({platform.machine()}).",
        f"Task: {args.steps} steps of recipe `mlp_wiki` ({recipe.description}; batch {recipe.train.batch_size} x "
        f"{recipe.train.block} tokens, {tokens:,} predicted tokens in all), each loop in its own process, "
        f"{args.repeats} runs each, alternating.",
        "Wall-clock timings on a shared machine are noisy: compare the ratio, taken within one run.",
        "",
        "|  | lmlib.train | bare loop | lmlib / bare |",
        "|---|---|---|---|",
        f"| training throughput, median of runs | {speed['lmlib']:,.0f} tokens/s | {speed['bare']:,.0f} tokens/s | "
        f"{speed['lmlib'] / speed['bare']:.3f}x |",
        f"| training throughput, best run | {best['lmlib']:,.0f} tokens/s | {best['bare']:,.0f} tokens/s | "
        f"{best['lmlib'] / best['bare']:.3f}x |",
        f"| seconds per run | {per_run['lmlib']} | {per_run['bare']} |  |",
        f"| peak resident memory (process) | {peak['lmlib'] / 2**20:,.0f} MiB | {peak['bare'] / 2**20:,.0f} MiB | "
        f"{peak['lmlib'] / peak['bare']:.3f}x |",
        f"| max abs. difference of the final parameters | {max_diff:.1e} |  |  |",
        "",
        "Goal: lmlib / bare >= 0.95 (the loop's bookkeeping costs under 5 %). Other jobs on the machine only",
        "ever slow a run down, so the best run of each is the closer estimate of its cost; the median shows",
        "the spread. Peak memory includes the Python interpreter, PyTorch and the corpus, the same in both.",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
