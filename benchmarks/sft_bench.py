"""An SFT training step side by side: lmlib's and TRL's ``SFTTrainer``'s, on the same model and the same batches.

    .venv/bin/python benchmarks/sft_bench.py        # writes benchmarks/results/sft.md

The model and data of ``lmlib.course.sft_runs``: the course's pretrained ``gpt_bpe_wiki`` grown with the four chat
tokens (``sft_runs.base_model``), and batches of 16 chats of the SFT train split (``sft_runs.sft_records``, in a
seeded random order, then 16 at a time), with the optimizer settings of its full run (``sft_runs.FULL_TRAINING``).

lmlib's step is what ``lmlib.train`` does for an ``SFT`` model: ``lmlib.sft.sft_loss`` of the course GPT on the
``collate`` batch, backward, gradient clipping, AdamW. TRL's is what the ``Trainer`` loop does each step:
``SFTTrainer.training_step`` (TRL's forward and loss, then backward) on the model's Hugging Face twin
(``lmlib.sft.trl_trainer``: ``GPT.to_hf``, ``assistant_only_loss=True``, the batch from TRL's own tokenization and
collator), then the loop's clipping (``accelerator.clip_grad_norm_``), AdamW step, scheduler step and
``zero_grad``; no logging, saving or evaluation. Both optimizers are ``torch.optim.AdamW`` over
``lmlib.train.param_groups`` (the same parameters decayed), at the learning rate ``lmlib.train.lr_at`` gives.

Both models live in one process, with the same thread count, and step alternately on the same batch (the order
swapped every step), so that both meet the same moments of a busy machine; ``--warmup`` untimed steps come first.
Speed: tokens/s, the chats' tokens (not the padding) each step reads, summed over the timed steps, over their
seconds; the ratio lmlib / TRL (above 1: lmlib is faster). Like for like: every batch must be the same on both sides
(ids, labels, attention mask), and the first warm-up step runs without dropout on both, so that its two losses can be
compared. Where lmlib is slower (or with ``--profile``), ``torch.profiler`` over a few more steps of each says where
the time goes. Timings are wall-clock.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

RESULTS = Path(__file__).parent / "results" / "sft.md"
SIDES = {"lmlib": "lmlib", "trl": "TRL SFTTrainer"}
BATCH_SIZE = 16  # chats a step, as sft_runs trains
ORDER_SEED = 0
TOLERANCE = 1e-5


# --- the two sides -------------------------------------------------------------------------------------------


def setup(n_batches: int, folder: Path):
    """(the course GPT, TRL's trainer on its twin, [(lmlib's batch, TRL's batch)] * n_batches, the training
    settings): the first n_batches * 16 chats of the train split in a seeded random order."""
    from lmlib import sft as S
    from lmlib import train as T
    from lmlib.course import sft_runs as R

    config = R.FULL_TRAINING
    tokenizer, model = R.base_model()
    records = R.sft_records(tokenizer, "train")
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(ORDER_SEED))
    if n_batches * BATCH_SIZE > len(records):
        raise ValueError(f"{n_batches} batches of {BATCH_SIZE} need {n_batches * BATCH_SIZE} chats; the train split "
                         f"has {len(records)}: time fewer steps")
    chosen = [records[i] for i in order[: n_batches * BATCH_SIZE].tolist()]
    examples = S.encode_records(chosen, tokenizer, R.WINDOW)
    trainer = S.trl_trainer(tokenizer, model, chosen, folder, assistant_only=True,
                            per_device_train_batch_size=BATCH_SIZE, learning_rate=config.lr,
                            weight_decay=config.weight_decay, adam_beta1=config.betas[0],
                            adam_beta2=config.betas[1], max_grad_norm=config.grad_clip)
    trainer.optimizer = torch.optim.AdamW(T.param_groups(trainer.model, config.weight_decay), lr=config.lr,
                                          betas=config.betas)
    trainer.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer,
                                                             lambda step: T.lr_at(step, config) / config.lr)
    batches = []
    for start in range(0, len(chosen), BATCH_SIZE):
        ours = S.collate(examples[start : start + BATCH_SIZE], model.vocab.pad_id)
        theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(start, start + BATCH_SIZE)])
        for key in ("input_ids", "labels", "attention_mask"):
            if not torch.equal(ours[key], theirs[key]):
                raise AssertionError(f"batch {start // BATCH_SIZE}: lmlib's and TRL's {key} differ")
        batches.append((ours, theirs))
    return model, trainer, batches, config


def lmlib_step(model, optimizer, config):
    """One step of ``lmlib.train`` for an SFT model: the loss, backward, clipping, AdamW."""
    from lmlib import sft as S
    from lmlib import train as T

    step = 0

    def run(batch) -> float:
        nonlocal step
        for group in optimizer.param_groups:
            group["lr"] = T.lr_at(step, config)
        loss = S.sft_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        return loss.item()

    return run


def trl_step(trainer):
    """One step of the ``Trainer`` loop: ``training_step`` (forward, TRL's loss, backward), clipping, AdamW, the
    scheduler, ``zero_grad``."""
    def run(batch) -> float:
        samples, n_items = trainer.get_batch_samples(iter([dict(batch)]), 1, trainer.args.device)
        loss = trainer.training_step(trainer.model, samples[0], n_items)
        trainer.accelerator.clip_grad_norm_(trainer.model.parameters(), trainer.args.max_grad_norm)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        trainer.model.zero_grad()
        return loss.item()

    return run


@contextlib.contextmanager
def no_dropout(*models: nn.Module):
    """Every ``nn.Dropout`` of the models at p = 0 for a while (both models' dropout is such modules)."""
    drops = [m for model in models for m in model.modules() if isinstance(m, nn.Dropout)]
    rates = [d.p for d in drops]
    for d in drops:
        d.p = 0.0
    try:
        yield
    finally:
        for d, p in zip(drops, rates, strict=True):
            d.p = p


def first_step_check(model, trainer, batch) -> dict[str, float]:
    """Before any step: lmlib's loss on the same network without its vocabulary (``GPT.from_hf`` of the twin: no -inf
    logit on ``<pad>`` and ``<bos>``), and on that network with the -inf put back, to compare with the two
    first-step losses."""
    from lmlib import sft as S
    from lmlib.transformer import GPT

    network = GPT.from_hf(trainer.model).eval()
    never = model.never_predicted
    with torch.no_grad():
        return {"network": S.sft_loss(network, batch).item(),
                "masked": S.sft_loss(lambda ids: network(ids).masked_fill(never, float("-inf")), batch).item()}


def alternate(steps, models, batches, warmup: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds of each timed step and every step's loss, both sides on each batch, the order swapped every step;
    the first step without dropout in either model."""
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    losses: dict[str, list[float]] = {side: [] for side in SIDES}
    for i, pair in enumerate(batches):
        for side in list(SIDES) if i % 2 == 0 else list(reversed(SIDES)):
            batch = pair[0] if side == "lmlib" else pair[1]
            with no_dropout(*models) if i == 0 else contextlib.nullcontext():
                start = time.perf_counter()
                losses[side].append(steps[side](batch))
                elapsed = time.perf_counter() - start
            if i >= warmup:
                seconds[side].append(elapsed)
    return seconds, losses


def profile(step, batches, top: int) -> tuple[float, float, list[tuple[str, int, float, float]]]:
    """(wall ms a step, ms a step in no operator, [(operator, calls a step, own ms a step, share of the wall)])
    of ``len(batches)`` steps under ``torch.profiler``, the operators with the most own time first."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        wall = (time.perf_counter() - start) * 1e3 / len(batches)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    own = sum(e.self_cpu_time_total for e in events) / 1e3 / len(batches)
    rows = [(e.key, round(e.count / len(batches)), e.self_cpu_time_total / 1e3 / len(batches),
             e.self_cpu_time_total / 1e3 / len(batches) / wall)
            for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]]
    return wall, max(0.0, wall - own), rows


# --- the table -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="timed steps of each side (the train split holds "
                        "160 batches, warm-up included)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (the first without dropout)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--profile-steps", type=int, default=10, help="steps of each side under torch.profiler")
    parser.add_argument("--profile", action="store_true", help="profile even where lmlib is not slower")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1 (the first warm-up step is the loss check)")
    if not 1 <= args.profile_steps <= args.steps:
        parser.error(f"--profile-steps must be between 1 and --steps ({args.steps}): it profiles timed batches again")

    import transformers
    import trl

    began = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        model, trainer, batches, config = setup(args.warmup + args.steps, Path(tmp))
        from lmlib import train as T

        optimizer = torch.optim.AdamW(T.param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas)
        check_groups(optimizer, trainer.optimizer)
        model.train()
        before = first_step_check(model, trainer, batches[0][0])
        steps = {"lmlib": lmlib_step(model, optimizer, config), "trl": trl_step(trainer)}
        loads.append(os.getloadavg()[0])
        seconds, losses = alternate(steps, (model, trainer.model), batches, args.warmup)
        loads.append(os.getloadavg()[0])
        written = sorted(p.name for p in (Path(tmp) / "trainer").glob("*")) if (Path(tmp) / "trainer").exists() else []
        tokens = [int(ours["attention_mask"].sum()) for ours, _ in batches[args.warmup :]]
        speed = {side: sum(tokens) / sum(seconds[side]) for side in SIDES}
        profiles = {}
        if speed["lmlib"] < speed["trl"] or args.profile:
            chosen = batches[args.warmup : args.warmup + args.profile_steps]
            profiles["lmlib"] = profile(steps["lmlib"], [ours for ours, _ in chosen], top=8)
            profiles["trl"] = profile(steps["trl"], [theirs for _, theirs in chosen], top=8)
            loads.append(os.getloadavg()[0])
    lines = table(model, batches, tokens, seconds, losses, before, profiles, written, args, loads,
                  (transformers, trl), time.perf_counter() - began)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def check_groups(ours: torch.optim.Optimizer, theirs: torch.optim.Optimizer) -> None:
    """The two AdamW decay the same numbers of weights, and have the same settings (the learning rate each sets at
    its step)."""
    def shape(optimizer):
        return [(sum(p.numel() for p in g["params"]), g["weight_decay"], g["betas"], g["eps"])
                for g in optimizer.param_groups]

    if shape(ours) != shape(theirs):
        raise AssertionError(f"the two optimizers differ: lmlib {shape(ours)}, TRL {shape(theirs)}")


def table(model, batches, tokens, seconds, losses, before, profiles, written, args, loads, modules,
          wall: float) -> list[str]:
    from lmlib.course import sft_runs as R

    transformers, trl = modules
    config = R.FULL_TRAINING
    speed = {side: sum(tokens) / sum(seconds[side]) for side in SIDES}
    per_step = {side: [n / s for n, s in zip(tokens, seconds[side], strict=True)] for side in SIDES}
    ratios = [a / b for a, b in zip(per_step["lmlib"], per_step["trl"], strict=True)]
    ratio = speed["lmlib"] / speed["trl"]
    widths = [ours["input_ids"].shape[1] for ours, _ in batches[args.warmup :]]
    first = {side: losses[side][0] for side in SIDES}
    cores, threads = os.cpu_count(), torch.get_num_threads()
    command = " ".join(["python benchmarks/sft_bench.py", *sys.argv[1:]])
    n = len(tokens)
    lines = [
        "# SFT: a training step of lmlib and of TRL's SFTTrainer",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d')}; Python {platform.python_version()}, torch "
        f"{torch.__version__}, transformers {transformers.__version__}, TRL {trl.__version__}, {threads} "
        f"thread{'s' if threads > 1 else ''} ({platform.machine()}, {cores} CPU cores); the script took {wall:.0f} s.",
        f"Model: `{R.BASE}` (GPT-2 block, {model.config.n_layers} layers, d_model {model.config.d_model}, dropout "
        f"{model.config.dropout}, a window of {model.config.block_size}) grown with the chat tokens "
        f"(`lmlib.course.sft_runs.base_model`: {len(model.vocab):,} tokens, {model.num_parameters():,} parameters, "
        f"the output matrix tied to the embedding), and its Hugging Face twin (`GPT.to_hf`, a `GPT2LMHeadModel`). "
        f"Data: {n + args.warmup} batches of {BATCH_SIZE} chats of the SFT train split (`sft_runs.sft_records`, "
        f"in a random order, seed {ORDER_SEED}), {statistics.mean(tokens):.0f} tokens a batch on average (padded "
        f"to the longest chat: {min(widths)} to {max(widths)} columns). Optimizer: AdamW over "
        f"`lmlib.train.param_groups` on both sides (weight decay {config.weight_decay} on the weight matrices only), "
        f"betas {config.betas}, gradients clipped to norm {config.grad_clip}, the learning rate of "
        f"`sft_runs.FULL_TRAINING` ({config.lr:g}, {config.warmup} warm-up steps, `lmlib.train.lr_at`).",
        "",
        "- lmlib: what `lmlib.train` does each step for an `SFT` model: `lmlib.sft.sft_loss` on the `collate` batch, "
        "backward, clipping, AdamW.",
        "- TRL: what the `Trainer` loop does each step: `SFTTrainer.training_step` (TRL's forward with its fused "
        "language-model head, the loss on the assistant's tokens, `assistant_only_loss=True`, and its entropy and "
        "accuracy metrics; backward) on the batch of TRL's own tokenization and collator "
        "(`lmlib.sft.trl_trainer`), then `accelerator.clip_grad_norm_`, AdamW, the scheduler, `zero_grad`; "
        "`report_to=\"none\"`, no saving or evaluation"
        f"{'' if not written else ' (it wrote ' + ', '.join(written) + ')'}.",
        "",
        f"Both models in one process, {n} timed steps each after {args.warmup} untimed, on the same batch at each "
        "step, the order swapped every step, so that both meet the same moments of a busy machine. Tokens: the "
        "chats' tokens each step reads (its attention mask), not the padding. Goal: lmlib / TRL >= 1.0x.",
        "",
        "|  | lmlib | TRL SFTTrainer | lmlib / TRL |",
        "|---|---|---|---|",
        f"| tokens/s over the {n} timed steps | {speed['lmlib']:,.0f} | {speed['trl']:,.0f} | {ratio:.3f}x |",
        f"| median seconds a step | {statistics.median(seconds['lmlib']):.4f} | "
        f"{statistics.median(seconds['trl']):.4f} | |",
        f"| best step, tokens/s | {max(per_step['lmlib']):,.0f} | {max(per_step['trl']):,.0f} | "
        f"{max(per_step['lmlib']) / max(per_step['trl']):.3f}x |",
        f"| median of the {n} per-step ratios (the same batch, one after the other) | | | "
        f"{statistics.median(ratios):.3f}x |",
        "",
        f"Goal {'met' if ratio >= 1.0 else 'not met'}: lmlib reads {ratio:.3f}x TRL's tokens a second.",
        "",
        "Like for like: every batch is the same on both sides (ids, labels and attention mask compared). The first "
        f"step, without dropout: lmlib's loss {first['lmlib']:.6f}, TRL's {first['trl']:.6f}, "
        f"{abs(first['lmlib'] - first['trl']):.1e} apart. The two are not quite the same function: the course GPT "
        "gives `<pad>` and `<bos>` the logit -inf (never predicted), which the Hugging Face model has no way to. "
        f"The same network without its vocabulary (`GPT.from_hf` of the twin) gives {before['network']:.6f}, "
        f"{abs(before['network'] - first['trl']):.1e} from TRL's (within {TOLERANCE:g}: "
        f"{abs(before['network'] - first['trl']) <= TOLERANCE}), and with the -inf put back on its logits "
        f"{before['masked']:.6f}, {abs(before['masked'] - first['lmlib']):.1e} from lmlib's (within {TOLERANCE:g}: "
        f"{abs(before['masked'] - first['lmlib']) <= TOLERANCE}). Later steps draw different dropout masks on the "
        f"two sides; over all {len(losses['lmlib'])} steps the mean losses are {statistics.mean(losses['lmlib']):.4f} "
        f"(lmlib) and {statistics.mean(losses['trl']):.4f} (TRL).",
        "",
        f"The 1-minute load average, before and after each part, ranged from {min(loads):.1f} to {max(loads):.1f} on "
        f"{cores} cores ({', '.join(f'{x:.2f}' for x in loads)}; "
        f"{'other jobs were running' if max(loads) > 0.5 * cores else 'quiet'}).",
    ]
    if profiles:
        lines += profile_lines(profiles, args)
    return lines


def profile_lines(profiles, args) -> list[str]:
    lines = [
        "",
        "## Where the time goes",
        "",
        f"`torch.profiler` (CPU) over {args.profile_steps} more steps of each side, one side after the other, on the "
        "same batches; the operators with the most own time, per step (the profiler slows every operator a little, "
        "so the shares are of the profiled step). Time in no operator is Python: the training loop, the modules' "
        "`forward` code and, on TRL's side, the trainer's bookkeeping.",
        "",
    ]
    for side, (wall, outside, rows) in profiles.items():
        lines += [
            f"{SIDES[side]}: {wall:.1f} ms a profiled step, {outside:.1f} ms ({outside / wall:.0%}) in no operator.",
            "",
            "| operator | calls a step | own ms a step | share of the step |",
            "|---|---|---|---|",
            *[f"| `{name}` | {calls} | {ms:.2f} | {share:.0%} |" for name, calls, ms, share in rows],
            "",
        ]
    lmlib_wall, trl_wall = profiles["lmlib"][0], profiles["trl"][0]
    lines.append(f"Profiled, a step takes {lmlib_wall:.1f} ms with lmlib and {trl_wall:.1f} ms with TRL.")
    return lines


if __name__ == "__main__":
    main()
