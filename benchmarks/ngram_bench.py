"""Side by side: lmlib.ngram vs nltk.lm (fit + perplexity), vs kenlm (queries on the exported ARPA), import times.

    .venv/bin/python benchmarks/ngram_bench.py            # writes benchmarks/results/ngram.md

The task: a trigram interpolated Kneser-Ney model of the ``wiki`` corpus. Each
document is split into sentences (``split_sentences``) and each sentence into
lower-cased words and punctuation (``word_tokenize(s, lowercase=True)``); the
models train on the ``train`` split and are scored on ``test``.

- lmlib pads each sentence with one ``<s>`` and one ``</s>`` (the ARPA/KenLM
  convention). nltk runs its own documented pipeline (``padded_everygram_pipeline``,
  n-1 ``<s>``): with a single ``<s>``, its Kneser-Ney divides by zero on
  sentence-start contexts. Both count and score the same text.
- nltk's Kneser-Ney looks up continuation counts by scanning every stored
  context, about 0.1 s per query here, so scoring the whole test set would take
  hours: it scores the first ``--nltk-sentences`` test sentences, and its time
  for the whole test set is extrapolated per token (marked as such).
- Memory is the peak of ``tracemalloc`` (Python objects and numpy arrays) in a
  second, untimed pass, so tracing does not slow the timed one.
- kenlm loads lmlib's ARPA file; both score every test sentence, and their
  log10 sentence scores are compared. lmlib scores them two ways: the readable
  path (``lmlib.lm.encode_batch`` + ``sequence_logprobs``: padded batches, a binary
  search per order) and the fast path (``NGramLM.sentence_logprobs``: one stream,
  hash tables), which must give the same numbers. Each is timed ``--repeats``
  times, interleaved, and the medians are compared; a profile of the fast path
  says where its time goes.
- Import times: ``python -c "import X"`` in fresh interpreters, the median of
  ``--repeats`` runs each. ``lmlib.ngram, lmlib.lm`` loads what ``import lmlib.ngram``
  loaded before torch became lazy (the seam imports torch).

Timings are wall-clock on whatever machine runs this; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from lmlib.data import load_corpus
from lmlib.lm import encode_batch, token_logprobs
from lmlib.ngram import NGramLM, _check_sentences, _encode_stream
from lmlib.tokenize import split_sentences, word_tokenize

RESULTS = Path(__file__).parent / "results" / "ngram.md"


def sentences(split: str) -> list[list[str]]:
    return [word_tokenize(s, lowercase=True) for doc in load_corpus("wiki", split) for s in split_sentences(doc)]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median_time(fn, repeats: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeats))


def import_seconds(statement: str, repeats: int) -> float:
    """Median wall-clock seconds of ``python -c statement`` in a fresh interpreter (from the repository root)."""
    root = Path(__file__).resolve().parent.parent
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, cwd=root)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def profile_rows(fn, top: int = 6) -> list[tuple[str, str]]:
    """The functions ``fn`` spends the most time in (own time), as (name, share of the total); a built-in is
    named with the lmlib function that calls it."""
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (calls, _, own time, cumulative, callers)
    total = sum(own for _, _, own, _, _ in stats.values())
    rows = []
    for (file, line, name), (_, _, own, _, callers) in sorted(stats.items(), key=lambda item: -item[1][2])[:top]:
        if file == "~" and callers:  # a built-in: say which lmlib function called it (through numpy's wrappers)
            caller = max(callers, key=lambda c: callers[c][2])
            while caller in stats and "numpy" in caller[0] and stats[caller][4]:
                caller = max(stats[caller][4], key=lambda c: stats[caller][4][c][2])
            label = f"`{name.strip('<>')}` in `{ngram_function(*caller)}`"
        else:
            label = f"`{ngram_function(file, line, name)}`"
        rows.append((label, f"{own / total:.0%}"))
    return rows


def ngram_function(file: str, line: int, name: str) -> str:
    """The qualified name of the function of lmlib/ngram.py around ``file:line`` (a comprehension
    is named by the function it is in); other functions by their plain name."""
    import ast

    import lmlib.ngram

    if Path(file).resolve() != Path(lmlib.ngram.__file__).resolve():
        return name
    spans = []  # (first line, last line, qualified name) of every function and method

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                if isinstance(child, ast.FunctionDef):
                    spans.append((child.lineno, child.end_lineno, prefix + child.name))
                visit(child, f"{prefix}{child.name}.")

    visit(ast.parse(Path(file).read_text(encoding="utf-8")), "")
    inside = [(first, qualname) for first, last, qualname in spans if first <= line <= last]
    if not inside:
        return name
    qualname = max(inside)[1]  # the innermost
    return qualname if qualname.endswith(name) else f"{qualname} ({name})"


def peak_memory(fn) -> int:
    """Peak bytes traced by tracemalloc while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- the three systems ---------------------------------------------------------------------------

def lmlib_fit(train, order):
    return NGramLM(order, "kneser_ney").fit(train)


def nltk_fit(train, order):
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    text, vocabulary = padded_everygram_pipeline(order, train)
    model = KneserNeyInterpolated(order)
    model.fit(text, vocabulary)
    return model


def nltk_perplexity(model, test, order):
    from nltk.lm.preprocessing import pad_both_ends
    from nltk.util import ngrams

    # One n-gram per predicted word and </s>, as lmlib counts them (pad_both_ends adds n-1 </s>).
    grams = [g for s in test for g in list(ngrams(pad_both_ends(s, n=order), order))[: len(s) + 1]]
    return model.perplexity(grams), len(grams)


def kenlm_scores(model, test):
    return [model.score(" ".join(s), bos=True, eos=True) for s in test]


def lmlib_sentence_scores(model, test, batch_size=256):
    """log10 P of each sentence, batched through the LanguageModel protocol."""
    scores = []
    for start in range(0, len(test), batch_size):
        ids = encode_batch(model.vocab, test[start : start + batch_size])
        logp = model.sequence_logprobs(ids).numpy()  # [B, T-1]
        logp[(ids[:, 1:] == model.vocab.pad_id).numpy()] = 0.0
        scores += (logp.sum(1) / math.log(10)).tolist()
    return scores


# --- the run -------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--nltk-sentences", type=int, default=20, help="test sentences nltk scores (it is slow)")
    parser.add_argument("--repeats", type=int, default=5, help="timings of queries and imports (median)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    import kenlm
    import nltk

    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    imports = {statement: import_seconds(statement, args.repeats) for statement in (
        "pass", "import lmlib.ngram", "import lmlib.ngram, lmlib.lm", "import lmlib.data", "import nltk.lm",
        "import torch")}
    for statement, seconds in imports.items():
        print(f"python -c {statement!r}: {seconds:.3f} s (median of {args.repeats})")

    train, test = sentences("train"), sentences("test")
    n_train = sum(len(s) + 1 for s in train)  # words + </s>
    n_test = sum(len(s) + 1 for s in test)
    sample = test[: args.nltk_sentences]
    n_sample = sum(len(s) + 1 for s in sample)
    print(f"wiki: {len(train)} train sentences ({n_train} tokens), {len(test)} test ({n_test} tokens)")

    ours_fit_s, ours = timed(lambda: lmlib_fit(train, args.order))
    ours_ppl_s, ours_ppl = timed(lambda: ours.perplexity(test))
    print(f"lmlib: fit {ours_fit_s:.2f} s, perplexity {ours_ppl_s:.2f} s -> {ours_ppl:.2f}")
    theirs_fit_s, theirs = timed(lambda: nltk_fit(train, args.order))
    print(f"nltk:  fit {theirs_fit_s:.2f} s; scoring {len(sample)} test sentences ({n_sample} tokens) ...")
    theirs_sample_s, (theirs_ppl, n_scored) = timed(lambda: nltk_perplexity(theirs, sample, args.order))
    assert n_scored == n_sample, (n_scored, n_sample)
    theirs_ppl_s = theirs_sample_s / n_sample * n_test  # extrapolated to the whole test set
    print(f"nltk:  {theirs_sample_s:.1f} s for the sample -> {theirs_ppl_s:.0f} s for the test set (extrapolated)")
    ours_sample_ppl = ours.perplexity(sample)

    ours_mem = peak_memory(lambda: lmlib_fit(train, args.order).perplexity(test))
    theirs_mem = peak_memory(lambda: nltk_perplexity(nltk_fit(train, args.order), sample[:2], args.order))
    print(f"peak traced memory: lmlib {ours_mem / 2**20:.0f} MiB, nltk {theirs_mem / 2**20:.0f} MiB")

    with tempfile.TemporaryDirectory() as tmp:
        arpa_s, arpa = timed(lambda: ours.to_arpa(Path(tmp) / "wiki.arpa"))
        arpa_mb = arpa.stat().st_size / 1e6
        load_s, ken = timed(lambda: kenlm.Model(str(arpa)))
    hash_s, _ = timed(ours._hash_tables)  # the fast path's hash tables, built once (as kenlm reads its file once)
    ken_scores = np.array(kenlm_scores(ken, test))
    ours_scores = np.array(lmlib_sentence_scores(ours, test))
    fast_scores = ours.sentence_logprobs(test) / math.log(10)
    fast_tokens = ours.token_logprobs(test)
    same_tokens = np.array_equal(fast_tokens, token_logprobs(ours, test, batch_size=256).numpy())
    # kenlm keeps its probabilities as float32 and adds them up in float32: its per-token log10 P, summed in
    # float64, say how much of the difference is that rounding.
    ken_tokens = [np.array([p for p, _, _ in ken.full_scores(" ".join(s))], dtype=np.float64) for s in test]
    ken_token_diff = float(np.max(np.abs(np.concatenate(ken_tokens) - fast_tokens / math.log(10))))
    ken_summed_diff = float(np.max(np.abs(np.array([t.sum() for t in ken_tokens]) - fast_scores)))
    float32_sums = sum(float(np.cumsum(t.astype(np.float32), dtype=np.float32)[-1]) == score
                       for t, score in zip(ken_tokens, ken_scores, strict=True))  # a running sum in float32
    max_diff = float(np.max(np.abs(ken_scores - ours_scores)))
    fast_diff = float(np.max(np.abs(ken_scores - fast_scores)))
    fast_vs_readable = float(np.max(np.abs(fast_scores - ours_scores)))
    times = {"kenlm": [], "readable": [], "fast": [], "encode": []}
    for _ in range(args.repeats):  # interleaved, so that a burst of load hits all three alike
        times["kenlm"].append(timed(lambda: kenlm_scores(ken, test))[0])
        times["readable"].append(timed(lambda: lmlib_sentence_scores(ours, test))[0])
        times["fast"].append(timed(lambda: ours.sentence_logprobs(test))[0])
        times["encode"].append(timed(lambda: _encode_stream(ours.vocab, _check_sentences(test)))[0])
    ken_query_s, ours_query_s, fast_query_s, encode_s = (statistics.median(times[k]) for k in times)
    profile = profile_rows(lambda: [ours.sentence_logprobs(test) for _ in range(20)])
    print(f"ARPA {arpa_mb:.1f} MB in {arpa_s:.2f} s; queries (median of {args.repeats}): kenlm {ken_query_s:.4f} s, "
          f"lmlib readable {ours_query_s:.4f} s, fast {fast_query_s:.4f} s; max |log10 difference| per sentence "
          f"{max_diff:.2e} (fast {fast_diff:.2e}, fast vs readable {fast_vs_readable:.1e}; "
          f"tokens bitwise: {same_tokens})")
    print("fast path profile:", profile)

    mib = 2**20
    total_ours, total_theirs = ours_fit_s + ours_ppl_s, theirs_fit_s + theirs_ppl_s
    rows = [
        ("fit on train", f"{ours_fit_s:.2f} s", f"{theirs_fit_s:.2f} s", f"{theirs_fit_s / ours_fit_s:.0f}x"),
        (f"perplexity on test ({n_test:,} tokens)", f"{ours_ppl_s:.2f} s",
         f"{theirs_ppl_s:,.0f} s (extrapolated from {theirs_sample_s:.1f} s for {n_sample} tokens)",
         f"{theirs_ppl_s / ours_ppl_s:,.0f}x"),
        ("fit + perplexity", f"{total_ours:.2f} s", f"{total_theirs:,.0f} s", f"{total_theirs / total_ours:,.0f}x"),
        ("peak traced memory", f"{ours_mem / mib:.0f} MiB (fit + perplexity)",
         f"{theirs_mem / mib:.0f} MiB (fit + 2 sentences)", f"{theirs_mem / ours_mem:.1f}x"),
        (f"perplexity of the first {len(sample)} test sentences", f"{ours_sample_ppl:.2f}", f"{theirs_ppl:.2f}", ""),
    ]
    kenlm_rows = [
        ("score the test set, readable path (protocol)",
         f"{ours_query_s * 1e3:.1f} ms ({n_test / ours_query_s:,.0f} tokens/s)",
         f"{ken_query_s * 1e3:.1f} ms ({n_test / ken_query_s:,.0f} tokens/s)", f"{ours_query_s / ken_query_s:.1f}x"),
        ("score the test set, fast path (`sentence_logprobs`)",
         f"{fast_query_s * 1e3:.1f} ms ({n_test / fast_query_s:,.0f} tokens/s)", "",
         f"{fast_query_s / ken_query_s:.1f}x"),
        ("build", f"fit {ours_fit_s:.2f} s, write ARPA {arpa_s:.2f} s ({arpa_mb:.1f} MB); "
         f"hash tables {hash_s:.2f} s", f"read ARPA {load_s:.2f} s", ""),
        ("max abs. difference of log10 sentence scores", f"readable {max_diff:.1e}, fast {fast_diff:.1e}",
         "", ""),
        ("the same, kenlm's log10 P per token summed in float64", f"fast {ken_summed_diff:.1e}", "", ""),
        ("kenlm's `score` is the float32 running sum of its per-token log10 P", "",
         f"{float32_sums:,} of {len(test):,} sentences exactly", ""),
        ("max abs. difference of log10 P per token", f"{ken_token_diff:.1e}", "", ""),
        ("fast vs readable path", f"ln P per token bitwise equal: {'yes' if same_tokens else 'NO'}; "
         f"log10 sentence scores within {fast_vs_readable:.0e}", "", ""),
    ]
    startup = imports["pass"]
    import_rows = [(f"`python -c \"{statement}\"`", f"{seconds:.2f} s", f"{seconds - startup:.2f} s")
                   for statement, seconds in imports.items()]
    versions = (f"Python {platform.python_version()}, numpy {np.__version__}, nltk {nltk.__version__}, "
                f"kenlm {getattr(kenlm, '__version__', '0.3.0')}, {os.cpu_count()} CPUs ({platform.machine()})")
    text = "\n".join([
        "# N-gram language models: lmlib vs nltk.lm vs kenlm",
        "",
        f"Generated by `{' '.join(['python', *map(str, [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])])}` "
        f"on {time.strftime('%Y-%m-%d')}; {versions}.",
        f"Task: order-{args.order} interpolated Kneser-Ney on `wiki` ({len(train):,} train sentences, "
        f"{n_train:,} tokens incl. `</s>`; {len(test):,} test sentences, {n_test:,} tokens). "
        "Tokens: `word_tokenize(sentence, lowercase=True)` over `split_sentences(document)`.",
        "Wall-clock timings on a shared machine are noisy: compare the ratios, taken within one run.",
        "",
        "## lmlib vs nltk.lm (fit + perplexity)",
        "",
        *table(["", "lmlib", "nltk.lm", "nltk / lmlib"], rows),
        "",
        "nltk's perplexity is infinite when any test token is out of its vocabulary: its Kneser-Ney unigram "
        "gives unseen words probability 0 (https://github.com/nltk/nltk/issues/3211). lmlib interpolates the "
        "unigrams with a uniform distribution, as KenLM does.",
        "",
        "## lmlib vs kenlm (queries on lmlib's exported ARPA file)",
        "",
        *table(["", "lmlib", "kenlm", "lmlib / kenlm"], kenlm_rows),
        "",
        f"Timings are the medians of {args.repeats} interleaved runs. kenlm keeps its log-probabilities as "
        "float32 and its `score` adds them up in float32, which is most of the difference of sentence scores; "
        "per token the two agree to the float32 rounding of the ARPA values. The fast path and the readable one "
        "find the same "
        "n-grams (hash tables instead of binary searches) and score them with the same smoothing code "
        "(`KneserNey.score`), so their ln P per token are the same bits.",
        "",
        "Where the fast path's time goes (cProfile, own time of each function, 20 passes over the test set):",
        "",
        *table(["function", "share"], profile),
        "",
        "What bounds the fast path: encoding the words (`numpy.fromiter` over `dict.get`, after the checks of "
        f"`_check_sentences`) is Python work per token: {encode_s * 1e3:.1f} ms, {encode_s / fast_query_s:.0%} of "
        f"the fast path's time and {encode_s / ken_query_s:.0%} of kenlm's whole query. "
        "`KneserNey.score` (the readable smoothing code, shared with the protocol) and "
        "`NGramHash.lookup` are a dozen numpy passes over the whole stream per order, each writing a "
        "temporary array; kenlm does all three in one C++ loop per sentence. Matching kenlm would take "
        "compiled code, which lmlib does without.",
        "",
        f"## Import times (median of {args.repeats} fresh interpreters; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
        "",
        *table(["", "wall-clock", "minus Python's own start-up"], import_rows),
        "",
        "`lmlib.ngram` imports numpy but not torch: its protocol methods (`sequence_logprobs`, "
        "`next_token_logprobs`, `predict_next`, `perplexity` via `lmlib.lm`) import torch when first called. "
        "`import lmlib.ngram, lmlib.lm` loads what `import lmlib.ngram` loaded before. "
        "`python -m lmlib.data` computes corpus statistics, so `import lmlib.data` stands for its start-up.",
        "",
    ])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")


def table(header: list[str], rows: list[tuple]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


if __name__ == "__main__":
    main()
