"""Side by side: lmlib.ngram vs nltk.lm (fit + perplexity) and vs kenlm (queries on the exported ARPA).

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
  log10 sentence scores are compared.

Timings are wall-clock on whatever machine runs this; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from lmlib.data import load_corpus
from lmlib.lm import encode_batch
from lmlib.ngram import NGramLM
from lmlib.tokenize import split_sentences, word_tokenize

RESULTS = Path(__file__).parent / "results" / "ngram.md"


def sentences(split: str) -> list[list[str]]:
    return [word_tokenize(s, lowercase=True) for doc in load_corpus("wiki", split) for s in split_sentences(doc)]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


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
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    import kenlm
    import nltk

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
    ken_query_s, ken_scores = timed(lambda: kenlm_scores(ken, test))
    ours_query_s, ours_scores = timed(lambda: lmlib_sentence_scores(ours, test))
    max_diff = float(np.max(np.abs(np.array(ken_scores) - np.array(ours_scores))))
    print(f"ARPA {arpa_mb:.1f} MB in {arpa_s:.2f} s; queries: kenlm {ken_query_s:.3f} s, lmlib {ours_query_s:.3f} s;"
          f" max |log10 difference| per sentence {max_diff:.2e}")

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
        ("score the test set", f"{ours_query_s:.3f} s ({n_test / ours_query_s:,.0f} tokens/s)",
         f"{ken_query_s:.3f} s ({n_test / ken_query_s:,.0f} tokens/s)", f"{ours_query_s / ken_query_s:.1f}x"),
        ("build", f"fit {ours_fit_s:.2f} s, write ARPA {arpa_s:.2f} s ({arpa_mb:.1f} MB)",
         f"read ARPA {load_s:.2f} s", ""),
        ("max abs. difference of log10 sentence scores", f"{max_diff:.1e}", "", ""),
    ]
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
    ])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")


def table(header: list[str], rows: list[tuple]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


if __name__ == "__main__":
    main()
