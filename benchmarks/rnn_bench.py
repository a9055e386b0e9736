"""Side by side: lmlib's LSTM written from the equations vs ``torch.nn.LSTM``, and the LSTM LM's training
through ``lmlib.train`` vs a bare ``torch.nn.LSTM`` loop.

    .venv/bin/python benchmarks/rnn_bench.py        # writes benchmarks/results/rnn.md

Part 1 runs forward + backward on the same model (recipe ``lstm_chars_wiki``'s
configuration, same weights) through its two paths: the cells of
``lmlib/rnn.py``, one Python step per token and layer (``fast=False``), and the
library kernel (``fast=True``). Both reset the state at every ``<bos>``.

Part 2 trains that model for the same steps on the same batches of wiki
characters (the sequential layout, state carried from block to block): once
through ``lmlib.train`` (the fast path, with its resets at ``<bos>`` and its
bookkeeping), once with a bare loop that calls ``torch.nn.LSTM`` on the whole
block with no resets, what one would write by hand; once more through
``lmlib.train`` with the kernel over each whole block (no resets), which
separates the loop's own cost from the restarts'; and once through
``lmlib.train`` with the previous restarts, the block cut in time at every
column where some row starts a sentence (one kernel call per piece). Goal:
lmlib >= 0.9x the bare loop. Timings are wall-clock, best of ``--repeats`` alternating runs; compare
the ratios within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lmlib.course.recipes import RECIPES, build_model, recipe_data
from lmlib.rnn import RNNLanguageModel, _reset_steps
from lmlib.train import lr_at, param_groups, sequential_lanes, train

RESULTS = Path(__file__).parent / "results" / "rnn.md"
RECIPE = "lstm_chars_wiki"


def forward_backward_seconds(model, batch: torch.Tensor, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        logits, _ = model(batch[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), ignore_index=model.vocab.pad_id).backward()
        best = min(best, time.perf_counter() - start)
    return best


def bare_loop(model, stream: torch.Tensor, config, steps: int) -> None:
    """The same training by hand: nn.LSTM over each whole block, state carried, no resets at <bos>."""
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas)
    lanes = list(sequential_lanes(stream, config.batch_size, config.block))
    state = None
    model.train()
    for step in range(steps):
        window = lanes[step % len(lanes)]
        x, y = window[:, :-1], window[:, 1:]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        h, state = model.rnn(model.drop(model.embed(x)), state)
        state = tuple(s.detach() for s in state)
        logits = model.out(model.drop(h))
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=model.vocab.pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()


class WithoutResets(RNNLanguageModel):
    """The same model with the kernel run over each whole block, as the bare loop does: what lmlib.train's
    loop costs by itself, without the restarts at <bos> (for this benchmark only; the recipes restart)."""

    def _recur_fast(self, x, starts, state):
        return self.rnn(x, state)


class CutInTime(RNNLanguageModel):
    """The same model with the previous restarts of the LSTM: the block cut in time wherever some row starts a
    sentence, one kernel call per piece (what the RNN and the GRU still do)."""

    def _recur_fast(self, x, starts, state):
        keep = (~starts[None, :, :1]).to(x.dtype)  # as _recur_fast: a row that starts with <bos> starts fresh
        return self._recur_cut(x, starts, tuple(s * keep for s in state))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    recipe = RECIPES[RECIPE]
    vocab, stream, _ = recipe_data(recipe)
    config = dataclasses.replace(recipe.train, steps=args.steps, eval_every=10**9, log_every=10**9)
    tokens_per_step = config.batch_size * config.block

    torch.manual_seed(0)
    fast = build_model(recipe, vocab)
    slow = build_model(dataclasses.replace(recipe, model_config={**recipe.model_config, "fast": False}), vocab)
    slow.load_state_dict(fast.state_dict())
    lanes = list(sequential_lanes(stream, config.batch_size, config.block))
    batch = lanes[0]
    pieces = sum(len(torch.unique(b[:, 1:-1].eq(vocab.bos_id).nonzero()[:, 1])) + 1 for b in lanes) / len(lanes)
    extra = sum(_reset_steps(b[:, :-1].eq(vocab.bos_id)).index.shape[1] - config.block for b in lanes) / len(lanes)
    load_before = os.getloadavg()
    timings = {"fast": [], "slow": []}
    for _ in range(args.repeats):
        timings["fast"].append(forward_backward_seconds(fast, batch, 1))
        timings["slow"].append(forward_backward_seconds(slow, batch, 1))
    fast_rate, slow_rate = (tokens_per_step / min(timings[k]) for k in ("fast", "slow"))

    runs = {"lmlib.train": [], "bare loop": [], "no resets": [], "cut in time": []}
    for _ in range(args.repeats):
        for name in runs:
            torch.manual_seed(0)
            model = build_model(recipe, vocab)
            start = time.perf_counter()
            if name in ("no resets", "cut in time"):
                model.__class__ = WithoutResets if name == "no resets" else CutInTime
            if name != "bare loop":
                train(model, stream, stream[:2000], config, progress=False)
            else:
                bare_loop(model, stream, config, args.steps)
            runs[name].append(time.perf_counter() - start)
    train_rate, bare_rate, unreset_rate, cut_rate = (args.steps * tokens_per_step / min(runs[k]) for k in runs)
    load = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(load_before, os.getloadavg(), strict=True))

    text = [
        "# Recurrent networks: lmlib.rnn",
        "",
        f"Generated by `python benchmarks/rnn_bench.py` on {time.strftime('%Y-%m-%d')}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"({platform.machine()}). Model: recipe `{RECIPE}` ({recipe.description}; "
        f"{fast.num_parameters():,} parameters), batches of {config.batch_size} x {config.block} characters. "
        f"Best of {args.repeats} alternating runs; wall-clock timings on a shared machine are noisy: "
        f"compare the ratios, taken within one run. Load average (1, 5, 15 min) before/after: {load}.",
        "",
        "| | tokens/s | ratio |",
        "|---|---|---|",
        f"| forward + backward, `torch.nn.LSTM` kernel (`fast=True`) | {fast_rate:,.0f} | 1 |",
        f"| forward + backward, the cells from the equations (`fast=False`) | {slow_rate:,.0f} | "
        f"{slow_rate / fast_rate:.2f}x |",
        f"| training, bare `nn.LSTM` loop ({args.steps} steps, no resets at `<bos>`) | {bare_rate:,.0f} | 1 |",
        f"| training, `lmlib.train` (same steps; resets at `<bos>`, clipping, bookkeeping) | {train_rate:,.0f} | "
        f"{train_rate / bare_rate:.2f}x |",
        f"| training, `lmlib.train` with the previous resets (the block cut in time, one kernel call per piece) | "
        f"{cut_rate:,.0f} | {cut_rate / bare_rate:.2f}x |",
        f"| training, `lmlib.train` without the resets (the kernel over each whole block, as the bare loop) | "
        f"{unreset_rate:,.0f} | {unreset_rate / bare_rate:.2f}x |",
        "",
        "The cells from the equations run one Python step per character: they are for reading, and the "
        "tests check them equal to the kernel, which the recipes train with. Goal for the fast path: "
        "`lmlib.train` >= 0.9x the bare loop. Its extra work: the state restarts at every `<bos>` (the bare "
        "loop lets the state run across sentences, which the per-sentence evaluation never sees), and the "
        "loop's clipping and bookkeeping. The LSTM restarts inside one kernel call: a reset step before each "
        "`<bos>` (input and forget gates driven to 0) and hold steps to an equal length, "
        f"{extra:.1f} steps per row of {config.block} on average. Cutting the block in time instead took "
        f"{pieces:.0f} kernel calls per block on average, instead of one. The run without the restarts "
        "separates the loop's cost from theirs.",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
