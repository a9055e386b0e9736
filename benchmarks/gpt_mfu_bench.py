"""The course's 4-layer GPT recipe (``gpt_chars_wiki``) on this CPU: its model FLOPs utilisation, where its
training step's time goes, and opt-in bfloat16 (``--dtype bf16``) against the default float32.

    .venv/bin/python benchmarks/gpt_mfu_bench.py                    # both parts (make bench), both pages
    .venv/bin/python benchmarks/gpt_mfu_bench.py --part mfu         # writes benchmarks/results/gpt_mfu.md
    .venv/bin/python benchmarks/gpt_mfu_bench.py --part precision   # writes benchmarks/results/gpt_bf16.md

Model FLOPs utilisation (MFU; Chowdhery et al., 2022, "PaLM", appendix B; nanoGPT's ``estimate_mfu``) is the
arithmetic the model needs, per second, over the machine's peak:

    MFU = (FLOPs per token) x (tokens per second) / (peak FLOP/s)
    FLOPs per token = 6 N + 12 n_layers T d_model

N: the weights of the matrix products (the output layer included; with tied weights the embedding table once),
2 FLOPs per multiply-add, times 3 for forward + backward; 12 n_layers T d_model: attention's Q K^T and
(weights) V, 2 T d_model each per token and layer forward, twice that backward. ``lmlib.pretraining.
training_flops_per_token`` counts exactly this with torch's ``FlopCounterMode`` (tests/test_pretraining.py
checks it against the formula). Tokens per second count every position of every row (B x T a step: the model
computes all of them, scored or not). Recomputation, norms, softmax, GELU and the optimizer are not model FLOPs.

The peak is measured here, not taken from a data sheet: products of two 4096 x 4096 matrices (``torch.mm``),
in float32 and in bfloat16, with the same threads as the training, 5 before each training run; the best counts.

Part ``mfu``: the recipe's training step, ``lmlib.train.train`` on the recipe's data and model (batch 16 x 128
characters, dropout 0.1), the median of per-step times over ``--steps`` steps after ``--warmup``; in float32
and in bfloat16 (``training_precision``), alternated for ``--rounds`` rounds, a peak measured before each run,
the best of each kept (other jobs on a shared machine only ever slow a run down); then one float32 run under
``torch.profiler``, its time split into the matrix products, the optimizer's step (AdamW), the gradient
clipping, the other tensor operations (element-wise, norms, softmax, dropout, embedding, cross-entropy,
copies) and the time outside any tensor operation (the Python of the loop and the modules, autograd's
bookkeeping, the profiler's own cost).

Part ``precision``: the recipe for the same ``--precision-steps`` steps of its schedule (which still spans its
3,000), from the same seed, in float32 and in bfloat16, one after the other in this process: tokens/s and the
final validation loss (evaluated in float32, on the whole validation split, as the recipe does).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from lmlib.course import recipes as R
from lmlib.pretraining import training_flops_per_token
from lmlib.train import PRECISIONS, train, training_precision

RESULTS = {"mfu": Path(__file__).parent / "results" / "gpt_mfu.md",
           "precision": Path(__file__).parent / "results" / "gpt_bf16.md"}
RECIPE = R.RECIPES["gpt_chars_wiki"]
PEAK_SIZE, PEAK_REPEATS = 4096, 5
# aten ops that are matrix products (CPU attention's fused kernels included: they also do the softmax)
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm",
              "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_flash_attention_for_cpu_backward"}


def peak_flops(dtype: torch.dtype) -> float:
    """FLOP/s of the best of PEAK_REPEATS [4096, 4096] @ [4096, 4096] products (2 n^3 operations each)."""
    a, b = (torch.randn(PEAK_SIZE, PEAK_SIZE, generator=torch.Generator().manual_seed(s)).to(dtype) for s in (0, 1))
    torch.mm(a, b)  # untimed: the first call picks and prepares the kernel
    best = math.inf
    for _ in range(PEAK_REPEATS):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * PEAK_SIZE**3 / best


def run(data, precision: str, steps: int, valid: bool = False) -> tuple[dict, float]:
    """The recipe's model and loop for ``steps`` steps in ``precision``: (history logged every step, wall seconds)."""
    vocab, train_stream, valid_stream = data
    model = R.build_model(RECIPE, vocab)
    config = dataclasses.replace(RECIPE.train, log_every=1)  # the same run, a history entry each step
    start = time.perf_counter()
    with training_precision(model, precision):
        history = train(model, train_stream, valid_stream if valid else None, config, max_steps=steps,
                        progress=False)
    return history, time.perf_counter() - start


def step_seconds(history: dict, warmup: int) -> list[float]:
    """Each step's wall seconds after the first ``warmup``, from the loop's own clock."""
    seconds = history["seconds"]
    return [b - a for a, b in zip(seconds[warmup:], seconds[warmup + 1:], strict=False)]


def profile_split(data, steps: int) -> tuple[dict[str, float], float, float, list[tuple[str, float]]]:
    """(seconds per part, profiled wall seconds, the same steps' wall seconds unprofiled, the other tensor ops
    with the most time) of a warm float32 run. The optimizer's step and the clipping are timed whole (their
    Python included); the rest is split by the self time of each tensor op."""
    from torch.profiler import ProfilerActivity, profile, record_function

    _, plain = run(data, "fp32", steps)  # the same steps without the profiler, in an equally warm process
    clip = torch.nn.utils.clip_grad_norm_

    def labelled_clip(*args, **kwargs):  # lmlib.train calls nn.utils.clip_grad_norm_: give it a label
        with record_function("clip_grad_norm_"):
            return clip(*args, **kwargs)

    torch.nn.utils.clip_grad_norm_ = labelled_clip
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            run(data, "fp32", steps)
            wall = time.perf_counter() - start
    finally:
        torch.nn.utils.clip_grad_norm_ = clip
    parts = {"Optimizer.step#AdamW.step": "optimizer step (AdamW)", "Optimizer.zero_grad#AdamW.zero_grad":
             "optimizer step (AdamW)", "clip_grad_norm_": "gradient clipping"}
    split = dict.fromkeys(["matrix products", "other tensor ops", *parts.values()], 0.0)
    others: dict[str, float] = {}
    for event in prof.events():
        if event.name in parts:
            split[parts[event.name]] += event.cpu_time_total / 1e6
            continue
        if not event.name.startswith("aten::") or within(event, parts):
            continue  # annotations (module calls, autograd nodes): their own time is Python's, left for the rest
        if event.name in MATMUL_OPS:
            split["matrix products"] += event.self_cpu_time_total / 1e6
        else:
            split["other tensor ops"] += event.self_cpu_time_total / 1e6
            others[event.name] = others.get(event.name, 0.0) + event.self_cpu_time_total / 1e6
    split["outside tensor ops (Python, autograd, profiler)"] = wall - sum(split.values())
    return split, wall, plain, sorted(others.items(), key=lambda kv: -kv[1])[:8]


def within(event, names) -> bool:
    """Whether a profiler event runs inside one named ``names``."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in names:
            return True
        parent = parent.cpu_parent
    return False


def mfu_part(data, args, flops_per_token: float) -> list[str]:
    block, batch = RECIPE.train.block, RECIPE.train.batch_size
    d_model, n_layers = RECIPE.model_config["d_model"], RECIPE.model_config["n_layers"]
    loads = [os.getloadavg()[0]]
    peaks: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    throughput: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(args.rounds):  # alternated, so that both meet the same moments of a shared machine
        for precision in PRECISIONS:
            peaks[precision].append(peak_flops(PRECISIONS[precision] or torch.float32))
            history, _ = run(data, precision, args.warmup + args.steps)
            throughput[precision].append(batch * block / statistics.median(step_seconds(history, args.warmup)))
    print({p: [f"{v / 1e9:.1f}" for v in vs] for p, vs in peaks.items()}, "GFLOP/s", throughput, flush=True)
    # other jobs only ever slow a run down: the best round of each is the closer estimate of what it costs
    peak, best = {p: max(v) for p, v in peaks.items()}, {p: max(v) for p, v in throughput.items()}
    loads.append(os.getloadavg()[0])
    rows = []
    for precision in PRECISIONS:
        achieved = flops_per_token * best[precision]
        rows.append(f"| {precision} | {peak[precision] / 1e9:,.1f} GFLOP/s | {best[precision]:,.0f} tokens/s "
                    f"({', '.join(f'{t:,.0f}' for t in throughput[precision])}) | {achieved / 1e9:,.1f} GFLOP/s | "
                    f"{100 * achieved / peak[precision]:.1f} % |")
        print(rows[-1], flush=True)
    split, wall, plain, others = profile_split(data, args.profile_steps)
    loads.append(os.getloadavg()[0])
    flops = flops_per_token * batch * block * args.profile_steps
    share, speed = split["matrix products"] / wall, flops / split["matrix products"] / peak["fp32"]
    fp32_mfu = flops_per_token * best["fp32"] / peak["fp32"]
    return [
        "## Model FLOPs utilisation",
        "",
        f"FLOPs per token of the recipe's step: {flops_per_token / 1e6:.2f} M (6 N + 12 n_layers T d_model with "
        f"T = {block}, counted by `lmlib.pretraining.training_flops_per_token`; attention's share "
        f"12 x {n_layers} x {block} x {d_model} = {12 * n_layers * block * d_model / 1e6:.2f} M). Peak: the best "
        f"`torch.mm` of two {PEAK_SIZE} x {PEAK_SIZE} matrices ({PEAK_REPEATS} a round). Training throughput: "
        f"the median step of {args.steps} (after {args.warmup}) of `lmlib.train.train`, {batch} x {block} = "
        f"{batch * block} tokens a step; {args.rounds} rounds, float32 and bfloat16 alternated, a peak measured "
        "before each run; the best round counts (each round's in brackets).",
        "",
        "| precision | peak (4096² matmul) | training throughput (rounds) | model FLOP/s | MFU |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Goal (issue 27): >= 40 % MFU on this recipe's step; float32 reaches {100 * fp32_mfu:.0f} % here "
        f"({'met' if fp32_mfu >= 0.4 else 'not met'}). bfloat16's own peak is {peak['bf16'] / peak['fp32']:.1f}x "
        f"float32's, but its step is only {best['bf16'] / best['fp32']:.2f}x as fast, so its MFU is lower: "
        "even if bfloat16 made every matrix product faster by the peaks' ratio and cost nothing else, the step "
        f"would be at most {1 / (1 - share + share * peak['fp32'] / peak['bf16']):.2f}x as fast (Amdahl, with "
        "the float32 profile's share of matrix products below).",
        "",
        f"### Where a float32 step's time goes ({args.profile_steps} steps under `torch.profiler`)",
        "",
        "Matrix products and other tensor ops: the self time of each `aten` op outside the optimizer and the "
        "clipping; those two timed whole (their Python included); the rest of the wall time is outside any "
        "tensor op.",
        "",
        "| part | seconds | share |",
        "|---|---|---|",
        *(f"| {k} | {v:.2f} | {100 * v / wall:.0f} % |" for k, v in split.items()),
        f"| total (wall) | {wall:.2f} | 100 % |",
        "",
        f"The same {args.profile_steps} steps without the profiler took {plain:.2f} s (the profiler's own cost and "
        "other jobs' moments make the difference). MFU is the share of the step spent in matrix products times "
        f"their own speed over the peak: here {100 * share:.0f} % x {100 * speed:.0f} % = {100 * share * speed:.0f} "
        f"%. The products are small ([{batch * block}, {d_model}] by [{d_model}, {4 * d_model}] at the largest, "
        f"attention's [{block}, {d_model // RECIPE.model_config['n_heads']}] per head) and run at about "
        f"{100 * speed:.0f} % of what a 4096² product reaches; the other tensor ops, memory-bound element-wise "
        "work that a d_model of 128 leaves as large as the products, take the next share. The ones with the most "
        "time: " + ", ".join(f"`{k}` {v:.2f} s" for k, v in others[:6]) + " (`bernoulli_`: dropout 0.1's masks). "
        f"1-minute load average before, between and after the parts: {', '.join(f'{x:.1f}' for x in loads)} on "
        f"{os.cpu_count()} cores.",
    ]


def precision_part(data, args) -> list[str]:
    block, batch = RECIPE.train.block, RECIPE.train.batch_size
    rows, loads = [], []
    for precision in PRECISIONS:  # untimed: the process's first steps in each precision prepare its kernels
        run(data, precision, args.warmup)
    for precision in PRECISIONS:
        loads.append(os.getloadavg()[0])
        history, wall = run(data, precision, args.precision_steps, valid=True)
        loads.append(os.getloadavg()[0])
        overall = args.precision_steps * batch * block / history["seconds"][-1]
        median = batch * block / statistics.median(step_seconds(history, args.warmup))
        rows.append((precision, overall, median, history["train_loss"][-1], history["valid_loss"][-1], wall))
        print(rows[-1], flush=True)
    fp32, bf16 = rows
    return [
        "## float32 vs bfloat16 (`--dtype bf16`)",
        "",
        f"The recipe's first {args.precision_steps} steps (of its {RECIPE.train.steps}-step schedule), the same "
        "seed, batches and initial weights, one run after the other in one process (after a few untimed steps "
        "of each); tokens/s over all the "
        f"training steps (evaluation excluded) and of the median step (after {args.warmup}); the validation loss "
        "(nats per character) evaluated in float32 on the whole validation split at the last step.",
        "",
        "| precision | training throughput, all steps | median step | vs fp32 (all, median) | train loss, last "
        "step | valid loss | wall (with evaluation) |",
        "|---|---|---|---|---|---|---|",
        *(f"| {p} | {t:,.0f} tokens/s | {m:,.0f} tokens/s | {t / fp32[1]:.2f}x, {m / fp32[2]:.2f}x | {tr:.4f} | "
          f"{v:.4f} | {w:.1f} s |" for p, t, m, tr, v, w in rows),
        "",
        f"1-minute load average before and after each run: {', '.join(f'{x:.1f}' for x in loads)} on "
        f"{os.cpu_count()} cores.",
        "",
        f"bfloat16 {'pays' if bf16[2] / fp32[2] >= 1.1 else 'does not pay'} on this CPU: its median step is "
        f"{bf16[2] / fp32[2]:.2f}x float32's (its whole run {bf16[1] / fp32[1]:.2f}x), for a validation loss "
        f"{bf16[4] - fp32[4]:+.4f} nats from float32's after {args.precision_steps} steps."
        + ("" if bf16[2] / fp32[2] >= 1.1 else " The matrix products are only part of the step (gpt_mfu.md's "
           "profile), and autocast adds a cast to bfloat16 of each product's inputs and weights at every step."),
        "",
        "It could not be the default. The course's checkpoints and figures are made to reproduce on any CPU: "
        "float32 runs differ between CPUs by round-off only, and the chapters print verdicts that hold at "
        "float32's tolerances. bfloat16 keeps 8 bits of mantissa, so the loss curve leaves float32's from "
        "the first steps (tests/test_train.py checks that it differs and ends within 2 %), and how a product "
        "is rounded and accumulated depends on the kernel oneDNN picks for the CPU (AVX512-BF16 here, AMX on "
        "recent Xeons, a float32 path where neither exists): two CPUs' bfloat16 runs differ far more than their "
        "float32 runs. It stays opt-in (`python -m lmlib.course.recipes NAME --dtype bf16`); the committed "
        "checkpoints are float32 runs.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", *RESULTS], default="all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile-steps", type=int, default=20)
    parser.add_argument("--precision-steps", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print the page only (a trial run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = R.recipe_data(RECIPE)
    for part in RESULTS if args.part == "all" else [args.part]:
        lines = page(part, data, args)
        print("\n".join(lines))
        if not args.no_write:
            RESULTS[part].write_text("\n".join(lines) + "\n")


def page(part: str, data, args) -> list[str]:
    model = R.build_model(RECIPE, data[0])
    config = model.config
    title = {"mfu": "model FLOPs utilisation and where the time goes", "precision": "float32 vs bfloat16"}
    lines = [
        f"# The 4-layer GPT recipe's training step: {title[part]}",
        "",
        f"Generated by `python benchmarks/gpt_mfu_bench.py --part {part}` on {time.strftime('%Y-%m-%d')}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"({platform.machine()}, {os.cpu_count()} CPU cores: {cpu_name()}). Recipe `{RECIPE.name}`: "
        f"{RECIPE.description}; {config.n_layers} layers, d_model {config.d_model}, {config.n_heads} heads, "
        f"block {config.block_size}, dropout {config.dropout}, |vocab| {config.vocab_size}; "
        f"{model.num_parameters():,} parameters.",
        "",
    ]
    if part == "mfu":
        return lines + mfu_part(data, args, training_flops_per_token(config, RECIPE.train.block))
    return lines + precision_part(data, args)


def cpu_name() -> str:
    """The CPU's model name and which of the instruction sets that bfloat16 kernels use it has (Linux)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    flags = set(info.split())
    has = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{names[0] if names else platform.processor()}; {', '.join(has) or 'no AVX-512'}"


if __name__ == "__main__":
    main()
