"""Side by side: skip-gram trained by ``lmlib.word2vec.Word2Vec`` vs ``gensim.models.Word2Vec``.

    .venv/bin/python benchmarks/word2vec_bench.py          # writes benchmarks/results/word2vec.md

Same corpus (the ``news`` + ``wiki`` training splits, lower-cased words, as
``lmlib.course.recipes.lowercase_word_sentences`` makes them), same hyper-parameters
(``SETTINGS``): gensim with ``workers=2`` (its Cython loop, one thread each);
lmlib's fast path (``fast=True``: compiled Numba loops, pair by pair) with
``workers=2`` (two Hogwild threads) and ``workers=1`` (reproducible given the
seed); and lmlib's batched PyTorch path (the one the chapter shows) with
``workers=2``. Throughput counts the corpus words of all epochs over the seconds
of the training loop alone (vocabulary building excluded, for all). Before it
times the fast path, a child fits a tiny corpus once, so Numba's compilation (or
the load of its cache, ``cache=True``) is not in the timing; that first call's
seconds are reported apart.

Each run is its own process, so its peak resident memory is its own; the
three alternate ``--repeats`` times, run r of each with seed r. Quality is measured on each run's vectors
with gensim's evaluators: Spearman correlation with WordSim-353 and SimLex-999
(pairs with a word outside the vocabulary skipped), and accuracy on the Google
analogies whose four words are all in the vocabulary (``restrict_vocab`` = the
whole vocabulary, the same for both since their vocabularies are the same).
Timings are wall-clock on whatever machine runs this; compare within one run.
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

RESULTS = Path(__file__).parent / "results" / "word2vec.md"
SETTINGS = {"vector_size": 100, "window": 5, "negative": 5, "sg": 1, "min_count": 5, "sample": 1e-3, "epochs": 5,
            "alpha": 0.025, "min_alpha": 0.0001}  # and seed: run r of each uses seed r
MODES = {"gensim": "gensim, workers=2", "fast2": "lmlib fast, workers=2", "fast1": "lmlib fast, workers=1",
         "batched2": "lmlib batched, workers=2"}  # mode -> column title


def sentences() -> list[list[str]]:
    from lmlib.course.recipes import lowercase_word_sentences

    return lowercase_word_sentences("news", "train") + lowercase_word_sentences("wiki", "train")


def train_gensim(corpus, seed: int):
    from gensim.models import Word2Vec

    model = Word2Vec(workers=2, seed=seed, **SETTINGS)
    model.build_vocab(corpus)
    start = time.perf_counter()
    model.train(corpus, total_examples=model.corpus_count, epochs=model.epochs)
    return model.wv, time.perf_counter() - start


def train_lmlib(corpus, mode: str, seed: int):
    from lmlib.word2vec import Word2Vec

    fast, workers = mode.startswith("fast"), int(mode[-1])
    model = Word2Vec(workers=workers, seed=seed, fast=fast, **SETTINGS).fit(corpus, progress=False)
    return model.to_keyed_vectors(), model.history["seconds"]


def first_fast_call() -> float:
    """Seconds of a first fast fit on a tiny corpus: Numba compiles the loops, or loads them from its cache."""
    from lmlib.word2vec import Word2Vec

    start = time.perf_counter()
    Word2Vec(vector_size=8, window=2, min_count=1, epochs=1, sg=1, fast=True).fit([["a", "b", "c"]] * 5, progress=False)
    return time.perf_counter() - start


def quality(kv) -> dict:
    from lmlib.data import eval_set_path

    wordsim = kv.evaluate_word_pairs(eval_set_path("wordsim353"))
    simlex = kv.evaluate_word_pairs(eval_set_path("simlex999"))
    accuracy, sections = kv.evaluate_word_analogies(eval_set_path("analogies"), restrict_vocab=len(kv))
    total = sections[-1]  # gensim's last section sums the others
    return {"wordsim353": float(wordsim[1][0]), "wordsim_oov": float(wordsim[2]), "simlex999": float(simlex[1][0]),
            "simlex_oov": float(simlex[2]), "analogy": float(accuracy),
            "analogy_questions": len(total["correct"]) + len(total["incorrect"])}


def one_run(mode: str, seed: int, out: Path) -> None:
    """Child process: train one way with one seed; write throughput, peak memory and quality."""
    corpus = sentences()
    words = sum(len(s) for s in corpus) * SETTINGS["epochs"]
    first_call = first_fast_call() if mode.startswith("fast") else float("nan")
    start = time.perf_counter()
    kv, seconds = train_gensim(corpus, seed) if mode == "gensim" else train_lmlib(corpus, mode, seed)
    fit_seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {"seconds": seconds, "fit_seconds": fit_seconds, "words": words, "peak_rss": peak,
              "vocabulary": len(kv), "first_call": first_call} | quality(kv)
    out.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=list(MODES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        one_run(args.child, args.seed, args.out)
        return

    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
            for mode in order:
                out = Path(tmp) / f"{mode}-{r}.json"
                load_before = os.getloadavg()[0]
                subprocess.run([sys.executable, __file__, "--child", mode, "--seed", str(r), "--out", str(out)],
                               check=True)
                runs[mode].append(json.loads(out.read_text()) | {"load": (load_before, os.getloadavg()[0])})
                print(f"{MODES[mode]:>18} run {r + 1}: {runs[mode][-1]['seconds']:.2f} s", flush=True)
    write_table(runs, args.repeats)


def write_table(runs: dict[str, list[dict]], repeats: int) -> None:
    import gensim
    import torch

    first = runs["gensim"][0]
    loads = [x for rs in runs.values() for r in rs for x in r["load"]]
    speed = {m: statistics.median(r["words"] / r["seconds"] for r in rs) for m, rs in runs.items()}
    best = {m: max(r["words"] / r["seconds"] for r in rs) for m, rs in runs.items()}

    def cells(fmt, key=None, value=None) -> str:
        out = []
        for rs in runs.values():
            values = [value(r) if value else r[key] for r in rs]
            if all(v != v for v in values):  # NaN: does not apply
                out.append("")
                continue
            med = statistics.median(values)
            spread = fmt(min(values)) != fmt(max(values))
            out.append(f"{fmt(med)} ({fmt(min(values))}–{fmt(max(values))})" if spread else fmt(med))
        return " | ".join(out)

    lmlib_modes = [m for m in MODES if m != "gensim"]

    def ratios(values: dict) -> str:
        return " / ".join(f"{values[m] / values['gensim']:.3f}x" for m in lmlib_modes)

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    gaps = {name: max(abs(median(m, key) - median("gensim", key)) for m in lmlib_modes)
            for name, key in [("WordSim-353", "wordsim353"), ("SimLex-999", "simlex999")]}
    verdict = ", ".join(f"{name} medians at most {gap:.3f} away, within 0.03: {gap <= 0.03}"
                        for name, gap in gaps.items())
    settings = ", ".join(f"{k}={v}" for k, v in SETTINGS.items())
    lines = [
        "# Word2Vec: lmlib vs gensim",
        "",
        f"Generated by `python benchmarks/word2vec_bench.py` on {time.strftime('%Y-%m-%d')}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, gensim {gensim.__version__}, "
        f"{os.cpu_count()} CPU cores ({platform.machine()}).",
        f"Task: skip-gram with negative sampling ({settings}) on the `news` + `wiki` training splits "
        f"(lower-cased words, {first['words'] // SETTINGS['epochs']:,} tokens, {first['vocabulary']:,} words kept), "
        f"each run in its own process, {repeats} runs of each, alternating, run r with seed r (0, 1, ...). "
        "Figures: median (min–max) over the runs.",
        "Wall-clock timings on a shared machine are noisy: compare the ratios, taken within one run. "
        f"The 1-minute load average, before and after each run, ranged from {min(loads):.1f} to {max(loads):.1f} "
        f"on {os.cpu_count()} cores ({'other jobs were running' if max(loads) > 0.5 * os.cpu_count() else 'quiet'}).",
        "",
        "|  | " + " | ".join(MODES.values()) + " | lmlib / gensim (" + " / ".join(lmlib_modes) + ") |",
        "|---" * (len(MODES) + 2) + "|",
        "| training throughput, median of runs | "
        + " | ".join(f"{speed[m]:,.0f} words/s" for m in MODES) + f" | {ratios(speed)} |",
        "| training throughput, best run | " + " | ".join(f"{best[m]:,.0f} words/s" for m in MODES)
        + f" | {ratios(best)} |",
        f"| training seconds | {cells(lambda v: f'{v:.1f}', 'seconds')} |  |",
        f"| whole fit (vocabulary + training), seconds | {cells(lambda v: f'{v:.1f}', 'fit_seconds')} |  |",
        f"| first fast call (Numba compiles or loads its cache), seconds | {cells(lambda v: f'{v:.1f}', 'first_call')}"
        " |  |",
        f"| peak resident memory (process) | {cells(lambda v: f'{v / 2**20:,.0f} MiB', 'peak_rss')} |  |",
        f"| WordSim-353 Spearman | {cells(lambda v: f'{v:.3f}', 'wordsim353')} |  |",
        f"| SimLex-999 Spearman | {cells(lambda v: f'{v:.3f}', 'simlex999')} |  |",
        f"| Google analogies, accuracy | {cells(lambda v: f'{v:.3f}', 'analogy')} |  |",
        "",
        f"Pairs with a word outside the vocabulary are skipped: {first['wordsim_oov']:.0f}% of WordSim-353, "
        f"{first['simlex_oov']:.0f}% of SimLex-999; the analogies are the {first['analogy_questions']:,} questions "
        "whose four words are all in the vocabulary.",
        "Goals: the fast path's throughput with 2 workers >= 1.0x gensim's (at least 0.75x); Spearman within 0.03",
        f"of gensim's: {verdict}. Other jobs on the machine only",
        "ever slow a run down, so the best run is the closer estimate of each one's cost; the median shows the",
        "spread. Peak memory includes the Python interpreter, PyTorch (imported by both, with the corpus loaders)",
        "and the corpus; lmlib's includes its 40 MB negative-sampling table (and, on the fast path, Numba). Quality",
        "varies with the seed (hence one seed per run); with 2 workers neither library is reproducible run to run",
        "(lock-free threads), lmlib with 1 worker is, given its seed.",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
