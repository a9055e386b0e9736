"""Side by side: lmlib.generate's processors vs Hugging Face's, and decoding throughput per strategy.

    .venv/bin/python benchmarks/generate_bench.py        # writes benchmarks/results/generate.md

Part 1 times each processor of ``lmlib.generate`` and its Hugging Face
counterpart (``transformers.generation.logits_process``) on the same [16, |V|]
float64 scores of the course's word vocabulary, alternating the two, and gives
the cost of one call beside the cost of one next-token call of each model on a
16-row batch (what a decoding step pays anyway). The repetition penalties differ
in formula (lmlib subtracts ln(penalty) from seen tokens' log-probabilities;
Hugging Face divides or multiplies the logits): the row compares their cost only.

Part 2 decodes 16 rows of up to 30 tokens from each course model with each
strategy and reports generated tokens per second, and the ratio to plain
sampling (T = 1, no filter). Timings are wall-clock, best of ``--repeats``;
compare ratios within one run.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from lmlib import generate as G
from lmlib.course.recipes import load_checkpoint, lowercase_word_sentences
from lmlib.ngram import NGramLM

RESULTS = Path(__file__).parent / "results" / "generate.md"
ROWS, MAX_TOKENS, PROMPT = 16, 30, ["the"]


def best_seconds(call: Callable[[], object], repeats: int, inner: int = 1) -> float:
    """The fastest of ``repeats`` timings of ``inner`` calls, per call."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            call()
        times.append((time.perf_counter() - start) / inner)
    return min(times)


def processor_rows(models: dict, repeats: int) -> list[str]:
    vocab = next(iter(models.values())).vocab
    scores = torch.randn(ROWS, len(vocab), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scores = scores.log_softmax(-1)
    ids = torch.randint(4, len(vocab), (ROWS, 12), generator=torch.Generator().manual_seed(1))
    pairs = {
        "temperature 0.7": (G.scale_temperature(0.7), TemperatureLogitsWarper(0.7)),
        "top-k 40": (G.keep_top_k(40), TopKLogitsWarper(40)),
        "top-p 0.9": (G.keep_top_p(0.9), TopPLogitsWarper(0.9)),
        "min-p 0.1": (G.keep_min_p(0.1), MinPLogitsWarper(0.1)),
        "repetition penalty 1.2": (G.penalise_repeats(1.2), RepetitionPenaltyLogitsProcessor(1.2)),
    }
    contexts = torch.tensor([[vocab.bos_id, *vocab.encode("the history of the".split())]] * ROWS)
    with torch.no_grad():
        model_ms = {name: 1e3 * best_seconds(lambda m=m: m.next_token_logprobs(contexts), repeats, 5)
                    for name, m in models.items()}
    lines = ["| processor | lmlib (ms per call) | Hugging Face (ms per call) | lmlib / HF | "
             + " | ".join(f"lmlib / one {name} step" for name in models) + " |",
             "|---|---|---|---|" + "---|" * len(models)]
    for name, (ours, theirs) in pairs.items():
        mine, ref = [], []
        for _ in range(repeats):  # alternate, so both see the same machine
            mine.append(best_seconds(lambda f=ours: f(scores, ids), 1, 20))
            ref.append(best_seconds(lambda f=theirs: f(ids, scores.clone()), 1, 20))
        ms, ref_ms = 1e3 * min(mine), 1e3 * min(ref)
        lines.append(f"| {name} | {ms:.3f} | {ref_ms:.3f} | {ms / ref_ms:.2f}x | "
                     + " | ".join(f"{ms / model_ms[m]:.2f}" for m in models) + " |")
    lines.append("| *one next-token call of the model (16 rows)* | | | | "
                 + " | ".join(f"{model_ms[m]:.2f} ms" for m in models) + " |")
    return lines


def strategy_rows(models: dict, repeats: int) -> list[str]:
    def sampler(**settings):
        return lambda m: G.sample(m, PROMPT, MAX_TOKENS, num_samples=ROWS,
                                  generator=torch.Generator().manual_seed(0), **settings)

    strategies = {
        "sampling, T = 1 (no filter)": sampler(),
        "T = 0.7": sampler(temperature=0.7),
        "top-k 40": sampler(top_k=40),
        "top-p 0.9": sampler(top_p=0.9),
        "min-p 0.1": sampler(min_p=0.1),
        "top-p 0.9 + repetition penalty 1.2": sampler(top_p=0.9, repetition_penalty=1.2),
        "greedy (16 rows)": sampler(temperature=0),
        "beam search, 4 beams (1 output)": lambda m: G.beam_search(m, PROMPT, MAX_TOKENS, num_beams=4),
    }
    lines = ["| strategy | " + " | ".join(f"{name}: tokens/s (ratio to sampling)" for name in models) + " |",
             "|---|" + "---|" * len(models)]
    base: dict[str, float] = {}
    for label, decode in strategies.items():
        cells = []
        for name, model in models.items():
            tokens = sum(len(g.ids) for g in decode(model))  # beam search: the tokens of its one output
            rate = tokens / best_seconds(lambda m=model, d=decode: d(m), repeats)
            base.setdefault(name, rate)
            cells.append(f"{rate:,.0f} ({rate / base[name]:.2f}x)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    models = {"Kneser-Ney 3-gram": NGramLM(3, "kneser_ney", min_count=2).fit(lowercase_word_sentences("wiki", "train")),
              "MLP (mlp_wiki)": load_checkpoint("mlp_wiki")}
    V = len(next(iter(models.values())).vocab)
    text = [
        "# Decoding: lmlib.generate",
        "",
        f"Generated by `python benchmarks/generate_bench.py` on {time.strftime('%Y-%m-%d')}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"({platform.machine()}). Best of {args.repeats} runs; wall-clock timings on a shared machine are "
        "noisy: compare the ratios, taken within one run.",
        "",
        f"## Processors: lmlib vs Hugging Face, on [{ROWS}, {V:,}] float64 scores",
        "",
        *processor_rows(models, args.repeats),
        "",
        "The last columns put a processor's cost beside one next-token call of each model on the same 16 rows: "
        "below 1, the filter costs less than the model's step it follows. (The repetition penalties differ in "
        "formula, see the chapter; the row compares cost only.)",
        "",
        f"## Decoding throughput: {ROWS} rows of up to {MAX_TOKENS} tokens from the prompt *the*",
        "",
        *strategy_rows(models, args.repeats),
        "",
        "Tokens/s counts generated tokens (`<eos>` included) over the wall time of the whole call. Beam search "
        "returns one sequence for the work of 4, so its rate is per returned token. Neither model here has an "
        "incremental path (both read only their last few tokens); the Transformer's KV cache is timed by "
        "benchmarks/transformer_bench.py (results/transformer.md).",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
