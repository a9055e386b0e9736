"""The summarization chapter's long run: every method on every `wiki` article, scored against its lead.

    python -m lmlib.course.summarization_runs            # writes checkpoints/summarization_wiki.json
    python -m lmlib.course.summarization_runs --articles 5 --out /tmp/s.json   # a quick look

Each article's body (the lead removed, ``lmlib.summarize.summarization_articles``) is summarized in
``K`` sentences by each method of ``METHODS``; the summary is scored against the lead with ROUGE-1, -2
and -L (F1, Porter stemmer, ``lmlib.metrics.rouge``, equal to rouge-score's). The MiniLM methods need
an embedding of every body sentence (about 19,000): that is what makes this a run, not a notebook cell.
The JSON keeps each article's scores and chosen sentences, so the chapter computes its intervals
(``lmlib.metrics.bootstrap_mean_interval``, per article) without re-running anything.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lmlib import summarize as S
from lmlib.course.recipes import CHECKPOINTS
from lmlib.metrics import rouge, rouge_n, rouge_tokenize
from lmlib.pretraining import load_minilm, sentence_embeddings

K = 3  # sentences per summary: lead-3 is the baseline's name
MMR_LAMBDA = 0.7
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
OUT = CHECKPOINTS / "summarization_wiki.json"


def minilm_vectors(sentences: list[str], encoder: tuple) -> np.ndarray:
    """[n, 384] all-MiniLM-L6-v2 unit vectors, in the order given. Sentences are embedded in order of length,
    so a batch pads little; each row does not depend on its batch (mean pooling leaves padding out)."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    vectors = sentence_embeddings([sentences[i] for i in order], *encoder, batch_size=64).numpy()
    out = np.empty_like(vectors)
    out[order] = vectors
    return out


def oracle_k(sentences: list[str], reference: str, k: int = K) -> list[int]:
    """A greedy extractive oracle: add the sentence that raises ROUGE-1 + ROUGE-2 F1 against the reference most,
    up to k sentences, stopping early if none does (greedy labelling as in Nallapati et al. 2017; the R1 + R2
    criterion is Liu and Lapata's 2019). Greedy is not optimal: a reference point below the best extract, not the
    best itself. It reads the reference, so it is not a method."""
    tokens = [rouge_tokenize(s, use_stemmer=True) for s in sentences]  # tokenized once, not per candidate
    ref = rouge_tokenize(reference, use_stemmer=True)
    chosen: list[int] = []
    best = 0.0
    for _ in range(k):
        gains = {i: _rouge_12([t for j in sorted(chosen + [i]) for t in tokens[j]], ref)
                 for i in range(len(sentences)) if i not in chosen}
        i, value = max(gains.items(), key=lambda kv: (kv[1], -kv[0]))
        if value <= best:
            break
        chosen, best = sorted(chosen + [i]), value
    return chosen


def _rouge_12(summary: list[str], reference: list[str]) -> float:
    return rouge_n(summary, reference, 1).fmeasure + rouge_n(summary, reference, 2).fmeasure


METHODS: dict[str, Callable[[S.Article, Callable[[], np.ndarray]], list[int]]] = {
    "lead-3": lambda a, minilm: S.lead_k(a.body, K),
    "random-3": lambda a, minilm: S.random_k(a.body, K, seed=0),
    "TF-IDF centroid": lambda a, minilm: S.centroid_k(S.tfidf_vectors(a.body), K),
    "MiniLM centroid": lambda a, minilm: S.centroid_k(minilm(), K),
    "MiniLM MMR": lambda a, minilm: S.mmr(minilm(), K, lam=MMR_LAMBDA),
    "oracle (reads the lead)": lambda a, minilm: oracle_k(a.body, " ".join(a.lead), K),
}


def summarize_article(article: S.Article, encoder: tuple) -> dict:
    """Every method's chosen sentences and their ROUGE F1 against the lead, for one article."""
    vectors: list[np.ndarray] = []

    def minilm() -> np.ndarray:  # embedded once, on first use
        if not vectors:
            vectors.append(minilm_vectors(article.body, encoder))
        return vectors[0]

    reference = " ".join(article.lead)
    row = {"title": article.title, "split": article.split, "lead sentences": len(article.lead),
           "body sentences": len(article.body), "methods": {}}
    for name, method in METHODS.items():
        chosen = method(article, minilm)
        scores = rouge(S.summary_text(article.body, chosen), reference, use_stemmer=True)
        row["methods"][name] = {"sentences": chosen} | {t: round(scores[t].fmeasure, 6) for t in ROUGE_TYPES}
    return row


def run(n_articles: int | None = None) -> dict:
    torch.manual_seed(0)
    start = time.perf_counter()
    articles = S.summarization_articles()[:n_articles]
    encoder = load_minilm()
    rows = [summarize_article(a, encoder) for a in articles]
    return {"config": {"k": K, "mmr_lambda": MMR_LAMBDA, "rouge": "F1, Porter stemmer, lmlib.metrics.rouge",
                       "min_lead": 2, "min_body": 10},
            "articles": rows, "wall_seconds": round(time.perf_counter() - start, 1),
            "device": f"CPU, {torch.get_num_threads()} threads", "torch": torch.__version__}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.course.summarization_runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=None, help="only the first N articles (default: all)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the JSON goes (default: {OUT})")
    args = parser.parse_args(argv)
    if args.articles is not None and args.articles < 1:
        parser.error(f"--articles {args.articles}: give a positive number of articles")
    result = run(args.articles)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(result['articles'])} articles in {result['wall_seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
