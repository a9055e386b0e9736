"""lmlib.course.summarization_runs: the committed results are what the code makes, the oracle is the best
extraction it claims to be, embedding order does not change an embedding, and the command line."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from lmlib import summarize as S
from lmlib.course import summarization_runs as SR
from lmlib.metrics import rouge


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(SR.OUT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def articles() -> list[S.Article]:
    return S.summarization_articles()


def test_committed_results_cover_every_article_with_every_method(committed, articles):
    assert committed["config"]["k"] == SR.K and committed["config"]["mmr_lambda"] == SR.MMR_LAMBDA
    assert [r["title"] for r in committed["articles"]] == [a.title for a in articles]
    for row, article in zip(committed["articles"], articles, strict=True):
        assert row["body sentences"] == len(article.body) and row["split"] == article.split
        assert set(row["methods"]) == set(SR.METHODS)
        for scores in row["methods"].values():
            assert 1 <= len(scores["sentences"]) <= SR.K
            assert all(0 <= i < len(article.body) for i in scores["sentences"])


def test_committed_scores_are_what_the_methods_make_now(committed, articles):
    """Every method that needs no MiniLM, re-run on the three shortest articles: the same sentences and scores."""
    shortest = sorted(range(len(articles)), key=lambda i: len(articles[i].body))[:3]
    for i in shortest:
        article, row = articles[i], committed["articles"][i]
        for name in ("lead-3", "random-3", "TF-IDF centroid", "oracle (reads the lead)"):
            chosen = SR.METHODS[name](article, None)
            scores = rouge(S.summary_text(article.body, chosen), " ".join(article.lead), use_stemmer=True)
            assert chosen == row["methods"][name]["sentences"], (article.title, name)
            for t in SR.ROUGE_TYPES:
                assert abs(scores[t].fmeasure - row["methods"][name][t]) < 1e-6, (article.title, name, t)


def test_the_oracle_matches_brute_force_for_one_sentence_and_beats_lead_3(articles):
    article = min(articles, key=lambda a: len(a.body))
    reference = " ".join(article.lead)

    def score(indices):
        s = rouge(S.summary_text(article.body, list(indices)), reference, use_stemmer=True)
        return s["rouge1"].fmeasure + s["rouge2"].fmeasure

    best_one = max(range(len(article.body)), key=lambda i: (score([i]), -i))
    assert SR.oracle_k(article.body, reference, k=1) == [best_one]
    three = SR.oracle_k(article.body, reference, k=3)
    assert score(three) >= score(S.lead_k(article.body, 3))
    assert score(three) >= max(score(c) for c in itertools.combinations(range(len(article.body)), 1))


def test_sorting_by_length_does_not_change_an_embedding():
    sentences = ["A short one.", "This sentence is a good deal longer than the one before it, by design.",
                 "Medium length sentence here.", "Tiny."]
    encoder = SR.load_minilm()
    together = SR.minilm_vectors(sentences, encoder)
    alone = np.vstack([SR.minilm_vectors([s], encoder) for s in sentences])
    assert together.shape == (4, 384)
    assert np.allclose(together, alone, atol=1e-5)


def test_command_line_rejects_a_bad_count(capsys):
    with pytest.raises(SystemExit):
        SR.main(["--articles", "0"])
    assert "positive number of articles" in capsys.readouterr().err
