"""Side by side: lmlib's GPT vs Hugging Face's ``GPT2LMHeadModel`` (training), and greedy decoding with and
without the KV cache vs Hugging Face ``generate``.

    .venv/bin/python benchmarks/transformer_bench.py        # writes benchmarks/results/transformer.md
    .venv/bin/python benchmarks/transformer_bench.py --part decoding   # re-runs the decoding section only

One configuration for both: the GPT-2 block, 4 layers, 4 heads, d_model 128,
block 64, dropout 0, on the character vocabulary of the ``wiki`` training split
(``lmlib.course.recipes.character_sentences``: case and spaces kept; min_count 2). lmlib's ``GPT`` is built
with seed 0 and Hugging Face's model is ``GPT.to_hf()`` of it, so both start
from the same weights.

Training: the same hand-written loop drives each model for the same steps on
the same batches (12 random windows of 64 characters of the training stream,
drawn from one seeded generator; ``<bos>`` and ``<pad>`` targets ignored),
AdamW (lmlib.train's parameter groups: decay on weight matrices only), global
gradient clipping at 1. Only the model differs: ``model(x)`` for lmlib,
``model(input_ids=x).logits`` for Hugging Face. Each side runs in its own
process (so its peak resident memory is its own; both import the same
modules), the two alternate ``--repeats`` times; a few untimed steps come first.

Decoding: greedy, batch 1, from the same prompt, with the weights lmlib's first
training run ended with: ``lmlib.generate.greedy`` reading through the KV cache
(``decode_step``, which it uses whenever the model has it), the same call on a
view of the model without ``decode_step`` (it re-reads the whole context for
each token), and Hugging Face ``generate(do_sample=False)`` with and without its
cache on the ``to_hf()`` model. ``<eos>`` is suppressed on both sides (lmlib's
``suppress``, HF's ``min_new_tokens``) and ``<pad>`` and ``<bos>`` on HF's (lmlib's
model never predicts them), so every call makes the same number of tokens; the
table says whether the tokens are identical. Timings are wall-clock, best of
``--repeats`` alternating runs; compare the ratios, taken within one run. The
other models with a cache (the modern block, an LSTM, an encoder-decoder
conditioned on one source) are timed the same way against their own bare
``decode_step`` loops: what ``lmlib.generate``'s loop costs around any model.

``--part decoding`` trains lmlib's model alone (one run: the same weights, which
are seeded) and rewrites only the decoding section of the results.
"""

from __future__ import annotations

import argparse
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
import torch.nn.functional as F

RESULTS = Path(__file__).parent / "results" / "transformer.md"
CORPUS = "wiki"  # its training split as characters, case and spaces kept (the character recipes' data)
MODEL = {"d_model": 128, "n_layers": 4, "n_heads": 4, "block_size": 64, "dropout": 0.0}
BATCH, BLOCK, LR, WEIGHT_DECAY, BETAS, CLIP = 12, 64, 1e-3, 0.1, (0.9, 0.99), 1.0
PROMPT = "The history of "
LONG_BLOCK, LONG_NEW = 256, 200  # the second decoding setting: a wider window, so 200 new tokens fit
SIDES = {"lmlib": "lmlib `GPT`", "hf": "HF `GPT2LMHeadModel`"}


def data():
    """The character vocabulary (min_count 2) and the training stream ``<bos> c_1 .. <eos> <bos> ..``."""
    from lmlib.course.recipes import character_sentences
    from lmlib.tokenize import Vocab
    from lmlib.train import encode_stream

    sentences = character_sentences(CORPUS, "train")
    vocab = Vocab((c for s in sentences for c in s), min_count=2)
    return vocab, encode_stream(vocab, sentences)


def make_gpt(vocab, block_size: int = MODEL["block_size"]):
    from lmlib.transformer import GPT, GPTConfig

    torch.manual_seed(0)
    return GPT(GPTConfig(len(vocab), **{**MODEL, "block_size": block_size}), vocab)


def rss_bytes() -> int:
    """The process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# --- training: one child process per run ---------------------------------------------------------


def train_run(side: str, steps: int, warmup: int, threads: int, out: Path) -> None:
    """Child process: ``warmup`` untimed then ``steps`` timed steps of one model; write the figures."""
    from transformers import GPT2LMHeadModel  # noqa: F401  (both sides import the same modules)

    from lmlib.train import param_groups, random_windows
    from lmlib.transformer import GPT

    torch.set_num_threads(threads)
    vocab, stream = data()
    model = make_gpt(vocab)
    if side == "hf":
        model = model.to_hf()
        forward = lambda x: model(input_ids=x).logits  # noqa: E731
    else:
        forward = model
    model.train()
    optimizer = torch.optim.AdamW(param_groups(model, WEIGHT_DECAY), lr=LR, betas=BETAS)
    generator = torch.Generator().manual_seed(0)
    losses = []
    rss_before = rss_bytes()
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        window = random_windows(stream, BATCH, BLOCK, generator)  # [B, block + 1]
        x, y = window[:, :-1], window[:, 1:].clone()
        y[(y == vocab.bos_id) | (y == vocab.pad_id)] = -100  # never predicted
        loss = F.cross_entropy(forward(x).flatten(0, 1), y.flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    lmlib_model = model if side == "lmlib" else GPT.from_hf(model, vocab)
    torch.save(lmlib_model.state_dict(), out.with_suffix(".pt"))
    out.write_text(json.dumps({"seconds": seconds, "tokens": steps * BATCH * BLOCK, "peak_rss": peak,
                               "rss_before": rss_before, "first_loss": losses[0], "last_loss": losses[-1]}))


def alternating_steps(vocab, stream, steps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each timed training step of both models in one process, on the same batch, the order
    swapped every step: both see the same moments of a busy machine."""
    from lmlib.train import param_groups, random_windows

    lmlib_model = make_gpt(vocab)
    models = {"lmlib": lmlib_model, "hf": make_gpt(vocab).to_hf()}
    forward = {"lmlib": lmlib_model, "hf": lambda x: models["hf"](input_ids=x).logits}
    optimizers = {s: torch.optim.AdamW(param_groups(m, WEIGHT_DECAY), lr=LR, betas=BETAS) for s, m in models.items()}
    generator = torch.Generator().manual_seed(0)
    seconds: dict[str, list[float]] = {s: [] for s in SIDES}
    for step in range(warmup + steps):
        window = random_windows(stream, BATCH, BLOCK, generator)
        x, y = window[:, :-1], window[:, 1:].clone()
        y[(y == vocab.bos_id) | (y == vocab.pad_id)] = -100
        for side in list(SIDES) if step % 2 == 0 else list(reversed(SIDES)):
            models[side].train()
            start = time.perf_counter()
            loss = F.cross_entropy(forward[side](x).flatten(0, 1), y.flatten(), ignore_index=-100)
            optimizers[side].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(models[side].parameters(), CLIP)
            optimizers[side].step()
            if step >= warmup:
                seconds[side].append(time.perf_counter() - start)
    return seconds


def same_logits(vocab, stream) -> tuple[float, str]:
    """Max |difference| of the two models' initial logits on one batch, over the |V| predicted tokens;
    Hugging Face's attention implementation."""
    model = make_gpt(vocab).eval()
    hf = model.to_hf()
    x = stream[: 4 * BLOCK].view(4, BLOCK)
    with torch.no_grad():
        ours, theirs = model(x), hf(input_ids=x).logits
    kept = ~model.never_predicted
    return float((ours[..., kept] - theirs[..., kept]).abs().max()), hf.config._attn_implementation


# --- decoding ------------------------------------------------------------------------------------


class PlainView:
    """The model seen through the plain protocol only (as tests/test_generate.py's): no ``decode_step``, so
    ``lmlib.generate`` asks ``next_token_logprobs`` for each token, which re-reads the whole context."""

    def __init__(self, model):
        self.vocab, self.next_token_logprobs, self.sequence_logprobs = (
            model.vocab, model.next_token_logprobs, model.sequence_logprobs)


def decoders(model, new: int) -> dict:
    """The ways to decode ``new`` tokens greedily, each returning the generated ids: the two libraries'
    decoders with and without their caches, and each model's cached forward step in a bare argmax loop."""
    from lmlib import generate as G

    vocab, hf = model.vocab, model.to_hf()
    prompt = list(PROMPT)
    context = torch.tensor([[vocab.bos_id, *vocab.encode(prompt)]])  # what lmlib's decoder starts from

    def hf_generate(use_cache: bool) -> list[int]:
        with torch.no_grad():
            out = hf.generate(context, attention_mask=torch.ones_like(context), do_sample=False, use_cache=use_cache,
                              max_new_tokens=new, min_new_tokens=new, suppress_tokens=[vocab.pad_id, vocab.bos_id],
                              pad_token_id=vocab.pad_id)
        return out[0, context.shape[1]:].tolist()


    @torch.no_grad()
    def bare_hf() -> list[int]:  # HF's forward with its cache alone, no generate() around it
        out, ids = hf(input_ids=context, use_cache=True), []
        for _ in range(new):
            logits = out.logits[:, -1]
            logits[:, [vocab.eos_id, vocab.pad_id, vocab.bos_id]] = float("-inf")
            ids.append(logits.argmax(dim=-1, keepdim=True))  # [1, 1]
            if len(ids) < new:
                out = hf(input_ids=ids[-1], past_key_values=out.past_key_values, use_cache=True)
        return torch.cat(ids, dim=1)[0].tolist()

    return {
        "lmlib, KV cache": lambda: G.greedy(model, prompt, new, suppress=["<eos>"]).ids,
        "lmlib, no cache": lambda: G.greedy(PlainView(model), prompt, new, suppress=["<eos>"]).ids,
        "HF generate, cache": lambda: hf_generate(True),
        "HF generate, no cache": lambda: hf_generate(False),
        "bare loop, lmlib `decode_step`": lambda: bare_loop(model, context, new),
        "bare loop, HF forward with cache": bare_hf,
    }


@torch.no_grad()
def bare_loop(model, context: torch.Tensor, new: int) -> list[int]:
    """The model's ``decode_step`` alone, no decoding loop around it: ``new`` argmax tokens (``<eos>`` masked)."""
    logp, cache = model.decode_step(context, None)
    ids = []
    for _ in range(new):
        logp[:, model.vocab.eos_id] = float("-inf")
        ids.append(logp.argmax(dim=-1, keepdim=True))  # [1, 1]
        if len(ids) < new:
            logp, cache = model.decode_step(ids[-1], cache)
    return torch.cat(ids, dim=1)[0].tolist()


def other_cached_models(vocab) -> dict:
    """lmlib's other models with a cache, the benchmark's sizes, seed 0 (untrained: the time per token does not
    depend on the weights): the modern block, an LSTM, and an encoder-decoder conditioned on one source."""
    from lmlib.rnn import RNNConfig, RNNLanguageModel
    from lmlib.seq2seq import Seq2Seq, Seq2SeqConfig
    from lmlib.transformer import GPT, GPTConfig

    torch.manual_seed(0)
    modern = GPT(GPTConfig.modern(len(vocab), **MODEL), vocab)
    lstm = RNNLanguageModel(RNNConfig(len(vocab), cell="lstm", d_embed=MODEL["d_model"], d_hidden=MODEL["d_model"],
                                      n_layers=2), vocab)
    seq2seq = Seq2Seq(Seq2SeqConfig(len(vocab), max_positions=MODEL["block_size"], d_model=MODEL["d_model"],
                                    n_heads=MODEL["n_heads"]), vocab)
    return {"GPT, modern block (4 layers)": modern.eval(), "LSTM (2 layers, 128 wide)": lstm.eval(),
            "encoder-decoder (2 + 2 layers), one source": seq2seq.eval().condition(list(PROMPT))}


def time_decoder_and_bare_loop(model, new: int, repeats: int) -> tuple[float, float, bool]:
    """Best tokens/s of ``lmlib.generate.greedy`` and of the bare ``decode_step`` loop, alternated; same tokens?"""
    from lmlib import generate as G

    context = torch.tensor([[model.vocab.bos_id, *model.vocab.encode(list(PROMPT))]])
    calls = {"greedy": lambda: G.greedy(model, list(PROMPT), new, suppress=["<eos>"]).ids,
             "bare": lambda: bare_loop(model, context, new)}
    best, outputs = dict.fromkeys(calls, 0.0), {}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            outputs[name] = call()
            best[name] = max(best[name], new / (time.perf_counter() - start))
    return best["greedy"], best["bare"], outputs["greedy"] == outputs["bare"]


def time_decoders(model, new: int, repeats: int) -> tuple[dict[str, float], bool, list[int]]:
    """Best tokens/s of each decoder over ``repeats`` alternating rounds; whether all made the same tokens."""
    calls = decoders(model, new)
    outputs: dict[str, list[int]] = {}
    best = dict.fromkeys(calls, 0.0)
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            outputs[name] = call()
            best[name] = max(best[name], new / (time.perf_counter() - start))
    first = outputs["lmlib, KV cache"]
    return best, all(o == first for o in outputs.values()), first


def long_window_model(vocab, trained: dict):
    """The trained weights in a model with a 256-token window: its position rows 64.. are a fresh
    initialisation (seed 0), enough to time decoding past 64 tokens."""
    model = make_gpt(vocab, LONG_BLOCK)
    weights = dict(trained)
    table = model.position_embedding.weight.detach().clone()
    table[: MODEL["block_size"]] = trained["position_embedding.weight"]
    weights["position_embedding.weight"] = table
    model.load_state_dict(weights)
    return model.eval()


# --- the table -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a busy shared machine)")
    parser.add_argument("--child", choices=list(SIDES))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--part", choices=["all", "decoding"], default="all",
                        help="decoding: train lmlib's model alone and rewrite only the decoding section")
    args = parser.parse_args()
    if args.child:
        train_run(args.child, args.steps, args.warmup, args.threads, args.out)
        return
    if args.part == "decoding":
        decoding_only(args)
        return

    import transformers

    torch.set_num_threads(args.threads)
    loads: list[float] = []
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for side in list(SIDES) if r % 2 == 0 else list(reversed(SIDES)):
                out = Path(tmp) / f"{side}-{r}.json"
                loads.append(os.getloadavg()[0])
                subprocess.run([sys.executable, __file__, "--child", side, "--steps", str(args.steps),
                                "--warmup", str(args.warmup), "--threads", str(args.threads), "--out", str(out)],
                               check=True)
                loads.append(os.getloadavg()[0])
                runs[side].append(json.loads(out.read_text()))
                print(f"{side:>6} run {r + 1}: {runs[side][-1]['seconds']:.2f} s", flush=True)
        trained = torch.load(Path(tmp) / "lmlib-0.pt", weights_only=True)
        other = torch.load(Path(tmp) / "hf-0.pt", weights_only=True)
        param_diff = max(float((trained[k] - other[k]).abs().max()) for k in trained)

    vocab, stream = data()
    logit_diff, attention = same_logits(vocab, stream)
    loads.append(os.getloadavg()[0])
    step_seconds = alternating_steps(vocab, stream, args.steps, args.warmup)
    loads.append(os.getloadavg()[0])
    model = make_gpt(vocab)
    model.load_state_dict(trained)
    lines = training_table(runs, step_seconds, args, model.num_parameters(), len(vocab), logit_diff, param_diff,
                           attention, transformers)
    lines += decoding_table(*decoding(vocab, trained, args.repeats, loads))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def decoding(vocab, trained: dict, repeats: int, loads: list[float]) -> tuple:
    """Time every decoder in both settings, then each other model's decoder against its bare loop."""
    model = make_gpt(vocab)
    model.load_state_dict(trained)
    model.eval()
    short_new = MODEL["block_size"] - 1 - len(PROMPT)  # prompt + new tokens fill the 64-token window
    settings = {}
    for label, m, new in [(f"window {MODEL['block_size']}, {short_new} new tokens", model, short_new),
                          (f"window {LONG_BLOCK}, {LONG_NEW} new tokens", long_window_model(vocab, trained), LONG_NEW)]:
        loads.append(os.getloadavg()[0])
        settings[label] = time_decoders(m, new, repeats)
        loads.append(os.getloadavg()[0])
        print(label, {k: round(v) for k, v in settings[label][0].items()}, flush=True)
    others = {}
    for label, m in other_cached_models(vocab).items():
        others[label] = time_decoder_and_bare_loop(m, short_new, repeats)
        print(label, [round(v) for v in others[label][:2]], flush=True)
    loads.append(os.getloadavg()[0])
    return settings, others, vocab, loads, profile_decoding(model, short_new)


class InstantLM:
    """A model whose ``decode_step`` costs nothing (one fixed distribution over the benchmark's vocabulary):
    timing ``lmlib.generate.greedy`` on it gives what the decoding loop itself costs per token."""

    def __init__(self, vocab):
        self.vocab = vocab
        logits = torch.randn(1, len(vocab), generator=torch.Generator().manual_seed(0))
        logits[:, [vocab.pad_id, vocab.bos_id]] = float("-inf")
        self.logp = logits.log_softmax(dim=-1)

    def next_token_logprobs(self, contexts):
        return self.logp.expand(len(contexts), -1)

    def sequence_logprobs(self, ids):
        raise NotImplementedError

    def decode_step(self, ids, cache):
        return self.logp.expand(len(ids), -1), None

    def reorder_cache(self, cache, rows):
        return cache


def profile_decoding(model, new: int) -> list[str]:
    """Where a token's time goes (window 64): torch.profiler's top-level operations per token for the bare
    ``decode_step`` loop, lmlib's decoder and HF ``generate``, and the CPU time of lmlib's loop around an
    instant model (best of 10, this thread's CPU time: other jobs on the machine do not count)."""
    from torch.profiler import ProfilerActivity, profile

    from lmlib import generate as G

    calls = decoders(model, new)
    rows = []
    for name in ["bare loop, lmlib `decode_step`", "lmlib, KV cache", "HF generate, cache"]:
        calls[name]()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            calls[name]()
            wall = (time.perf_counter() - start) / new * 1e6
        top = [e for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::")]
        spent: dict[str, float] = {}
        for e in top:
            spent[e.name[6:]] = spent.get(e.name[6:], 0.0) + e.cpu_time_total / new
        ops = sum(spent.values())
        biggest = ", ".join(f"{op} {us:.0f}" for op, us in sorted(spent.items(), key=lambda kv: -kv[1])[:5])
        rows.append(f"| {name} | {wall:.0f} | {len(top) / new:.0f} | {ops:.0f} | {wall - ops:.0f} | {biggest} |")
    instant, loop = InstantLM(model.vocab), float("inf")
    for _ in range(10):
        start = time.thread_time()
        G.greedy(instant, list(PROMPT), 200, suppress=["<eos>"])
        loop = min(loop, (time.thread_time() - start) / 200 * 1e6)
    return [
        "",
        "Where a token's time goes (window 64, one profiled call each; the profiler adds its own cost to every "
        "operation, so these times are higher than the table's): the operations PyTorch runs per token, the time "
        "inside them, and the rest (Python, and dispatching each operation).",
        "",
        "| decoder | µs per token (profiled) | operations per token | µs in operations | µs outside them | "
        "largest operations (µs per token) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"`lmlib.generate.greedy` around a model whose step costs nothing: {loop:.0f} µs of CPU per token "
        "(the loop's own cost: the float64 copy, the probability-mass check, the suppressed token, the argmax, "
        "the entropy, one transfer of each row's id, ln P and entropy to Python, the context grown by one token).",
    ]


def decoding_only(args) -> None:
    """``--part decoding``: lmlib's training run alone gives the weights; the decoding section is rewritten."""
    torch.set_num_threads(args.threads)
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lmlib-0.json"
        subprocess.run([sys.executable, __file__, "--child", "lmlib", "--steps", str(args.steps), "--warmup",
                        str(args.warmup), "--threads", str(args.threads), "--out", str(out)], check=True)
        trained = torch.load(out.with_suffix(".pt"), weights_only=True)
    vocab, _ = data()
    lines = decoding_table(*decoding(vocab, trained, args.repeats, loads))
    text = RESULTS.read_text()
    kept = text[: text.index("\n## Greedy decoding, batch 1")]
    RESULTS.write_text(kept + "\n".join(lines) + "\n")
    print("\n".join(lines))


def training_table(runs, step_seconds, args, parameters: int, vocab_size: int, logit_diff: float, param_diff: float,
                   attention: str, transformers) -> list[str]:
    step_median = {s: BATCH * BLOCK / statistics.median(t) for s, t in step_seconds.items()}
    step_best = {s: BATCH * BLOCK / min(t) for s, t in step_seconds.items()}
    speed = {s: statistics.median(r["tokens"] / r["seconds"] for r in rs) for s, rs in runs.items()}
    best = {s: max(r["tokens"] / r["seconds"] for r in rs) for s, rs in runs.items()}
    peak = {s: max(r["peak_rss"] for r in rs) for s, rs in runs.items()}
    growth = {s: max(r["peak_rss"] - r["rss_before"] for r in rs) for s, rs in runs.items()}
    per_run = {s: ", ".join(f"{r['seconds']:.2f}" for r in rs) for s, rs in runs.items()}
    loss = {s: f"{rs[0]['first_loss']:.4f} -> {rs[0]['last_loss']:.4f}" for s, rs in runs.items()}

    def row(label: str, values: dict, fmt, ratio: bool = True) -> str:
        cells = " | ".join(fmt(values[s]) for s in SIDES)
        ratio_cell = f"{values['lmlib'] / values['hf']:.3f}x" if ratio else ""
        return f"| {label} | {cells} | {ratio_cell} |"

    return [
        "# The Transformer: lmlib.transformer vs Hugging Face GPT-2",
        "",
        f"Generated by `python benchmarks/transformer_bench.py` on {time.strftime('%Y-%m-%d')}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} threads ({platform.machine()}, {os.cpu_count()} CPU cores).",
        f"Model: the GPT-2 block, {MODEL['n_layers']} layers, {MODEL['n_heads']} heads, d_model {MODEL['d_model']}, "
        f"block {MODEL['block_size']}, dropout 0, tied embeddings; {parameters:,} parameters; the character "
        f"vocabulary of the `{CORPUS}` training split (case and spaces kept, min_count 2, as the character "
        f"recipes make it; len(vocab) = {vocab_size}, |V| = {vocab_size - 2}). Both sides start from "
        f"the same weights (lmlib's, moved with `GPT.to_hf()`); Hugging Face's attention implementation is "
        f"`{attention}`, lmlib's is `F.scaled_dot_product_attention` (`fast=True`).",
        "",
        "## Training",
        "",
        f"{args.steps} timed steps (after {args.warmup} untimed) of the same loop on the same batches "
        f"({BATCH} x {BLOCK} characters: {BATCH * BLOCK} tokens a step), AdamW lr {LR}, gradient clipping at {CLIP}. "
        f"Measured twice: each side in its own process, {args.repeats} runs each, alternating (which also gives "
        "each side's memory); and both models in one process, the order swapped every step, the same "
        f"{args.steps} steps, so that both see the same moments of a busy machine.",
        "",
        f"|  | {' | '.join(SIDES.values())} | lmlib / HF |",
        "|---|---|---|---|",
        row("training throughput, steps alternated in one process: median step", step_median,
            lambda v: f"{v:,.0f} tokens/s"),
        row("training throughput, steps alternated in one process: fastest step", step_best,
            lambda v: f"{v:,.0f} tokens/s"),
        row("training throughput, separate processes: median of runs", speed, lambda v: f"{v:,.0f} tokens/s"),
        row("training throughput, separate processes: best run", best, lambda v: f"{v:,.0f} tokens/s"),
        row("seconds per run", per_run, str, ratio=False),
        row("peak resident memory (process)", peak, lambda v: f"{v / 2**20:,.0f} MiB"),
        row("peak growth during training (peak - resident memory before step 1)", growth,
            lambda v: f"{v / 2**20:,.1f} MiB"),
        row("loss, first step -> last step (run 1)", loss, str, ratio=False),
        "",
        f"Same network: before training, the two models' logits differ by at most {logit_diff:.1e} over the "
        f"|V| = {vocab_size - 2} predicted tokens. lmlib's model gives `<pad>` and `<bos>` the logit -inf (it never "
        "predicts them), Hugging Face's softmax also spreads mass over them, so the losses differ slightly and "
        f"after the run the parameters differ by up to {param_diff:.1e}. Goal: lmlib >= 1.0x Hugging Face's "
        "throughput. On a busy machine separate runs meet the other jobs at different moments; alternated steps "
        "share them, so their ratio is the steadier one. Peak memory includes the Python interpreter, PyTorch, "
        "transformers (imported on both sides) and the corpus; the growth row is what the training itself adds.",
        "",
        "The course recipe's training step (gpt_chars_wiki: this model with block 128, batch 16, dropout 0.1): its "
        "model FLOPs utilisation against the peak this machine measures, where its time goes, and opt-in "
        "bfloat16 against float32 are in gpt_mfu.md and gpt_bf16.md (`benchmarks/gpt_mfu_bench.py`).",
    ]


def decoding_table(settings: dict, others: dict, vocab, loads: list[float], profiled: list[str]) -> list[str]:
    names = list(next(iter(settings.values()))[0])
    lines = [
        "",
        "## Greedy decoding, batch 1",
        "",
        f"Prompt `<bos>` + *{PROMPT}* ({1 + len(PROMPT)} tokens). With block 64 the prompt and the new tokens "
        f"fill the window exactly and no more: Hugging Face's GPT-2 cannot read past its `n_positions`. The "
        f"second setting gives the same model a {LONG_BLOCK}-token window (position rows 64-{LONG_BLOCK - 1} freshly "
        f"initialised) to decode {LONG_NEW} tokens, where the cache matters more.",
        "",
        f"| setting | {' | '.join(names)} | lmlib cache / HF cache | lmlib cache / lmlib no cache | "
        "lmlib cache / its bare loop | same tokens |",
        "|---|" + "---|" * (len(names) + 4),
    ]
    for label, (rates, same, _) in settings.items():
        cells = " | ".join(f"{rates[n]:,.0f} tokens/s" for n in names)
        lines.append(f"| {label} | {cells} | {rates['lmlib, KV cache'] / rates['HF generate, cache']:.2f}x | "
                     f"{rates['lmlib, KV cache'] / rates['lmlib, no cache']:.2f}x | "
                     f"{rates['lmlib, KV cache'] / rates['bare loop, lmlib `decode_step`']:.3f}x | "
                     f"{'yes' if same else 'NO'} |")
    text = "".join(vocab.decode(next(iter(settings.values()))[2]))
    cores = os.cpu_count()
    lines += [
        "",
        f"The text (window 64; the model has had only the benchmark's training steps): *{PROMPT}{text}*",
        "",
        "Goals: lmlib with its cache >= 2.5x Hugging Face `generate` with its cache (at first 1.0x), and lmlib's "
        "decoder >= 0.95x its own bare `decode_step` loop. Tokens/s counts the new "
        "tokens over the wall time of the whole call. Timings are wall-clock, best of the runs; other jobs on "
        "the machine only ever slow a run down, so the best run of each is the closer estimate of its cost. "
        f"The 1-minute load average, before and after each part, ranged from {min(loads):.1f} to {max(loads):.1f} "
        f"on {cores} cores ({'other jobs were running' if max(loads) > 0.5 * cores else 'quiet'}): compare the "
        "ratios, taken within one run.",
        "",
        "The bare loops call each model's cached forward step and take the argmax, with nothing around it "
        "(`<eos>` masked, and `<pad>` and `<bos>` on Hugging Face's side): the model's own cost per token; "
        "the gap to its library's decoder is that decoder's bookkeeping per token.",
        "",
        "lmlib's other models with a cache, the same sizes (untrained, seed 0), the same prompt and number of new "
        "tokens as the first setting: `lmlib.generate.greedy` against the model's "
        "bare `decode_step` loop.",
        "",
        "| model | lmlib.generate.greedy | bare `decode_step` loop | greedy / bare loop | same tokens |",
        "|---|---|---|---|---|",
        *[f"| {label} | {greedy:,.0f} tokens/s | {bare:,.0f} tokens/s | {greedy / bare:.3f}x | "
          f"{'yes' if same else 'NO'} |" for label, (greedy, bare, same) in others.items()],
        *profiled,
    ]
    return lines


if __name__ == "__main__":
    main()
