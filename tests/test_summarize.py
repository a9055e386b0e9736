"""Extractive summarization: the lead/body cut, the corpus alignment, and each method against its definition."""

from __future__ import annotations

import numpy as np
import pytest

from lmlib.data import load_corpus
from lmlib.summarize import (
    centroid_k,
    lead_and_body,
    lead_k,
    mmr,
    random_k,
    sentences_of,
    summarization_articles,
    summary_text,
    tfidf_vectors,
)

WIKITEXT = """'''Foo''' is a word used in examples. It has no meaning of its own.
[[File:Foo.png|thumb|A picture of foo]]

== History ==
The word appears in programming manuals from the 1960s onwards. Nobody knows who used it first.
* a list item
=== Later use ===
It is still used today in many textbooks.
"""


def test_lead_is_the_text_before_the_first_heading():
    lead, body = lead_and_body(WIKITEXT)
    assert sentences_of(lead) == ["Foo is a word used in examples.", "It has no meaning of its own."]
    assert sentences_of(body) == ["The word appears in programming manuals from the 1960s onwards.",
                                  "Nobody knows who used it first.", "It is still used today in many textbooks."]
    assert lead_and_body("No headings here, just one paragraph of text.")[1] == ""


def test_sentences_of_drops_captions_and_list_items():
    assert sentences_of("Latin 300 AD Uncial\nA short one.\nThis one is a real sentence of prose.") == [
        "This one is a real sentence of prose."]


@pytest.fixture(scope="module")
def articles():
    return summarization_articles()


def test_articles_keep_the_wiki_split_of_their_source(articles):
    assert len(articles) >= 80
    assert {a.split for a in articles} == {"train", "valid", "test"}
    corpus = {split: "\n".join(load_corpus("wiki", split)) for split in ("train", "valid", "test")}
    for a in articles:
        assert len(a.lead) >= 2 and len(a.body) >= 10
        assert all(s in corpus[a.split] for s in a.lead[:2] + a.body[:2]), a.title
    assert not set(a.lead[0] for a in articles) & set(s for a in articles for s in a.body)


SENTENCES = [f"sentence number {i}" for i in range(8)]


def test_lead_and_random_are_document_order_and_seeded():
    assert lead_k(SENTENCES, 3) == [0, 1, 2]
    assert lead_k(SENTENCES[:2], 3) == [0, 1]
    picked = random_k(SENTENCES, 3, seed=1)
    assert picked == sorted(picked) and len(set(picked)) == 3
    assert picked == random_k(SENTENCES, 3, seed=1)
    assert {tuple(random_k(SENTENCES, 3, seed=s)) for s in range(10)} != {tuple(picked)}


def brute_force_centroid(vectors: np.ndarray, k: int) -> list[int]:
    c = vectors.mean(axis=0)
    cos = [float(v @ c / (np.linalg.norm(v) * np.linalg.norm(c))) for v in vectors]
    return sorted(sorted(range(len(vectors)), key=lambda i: -cos[i])[:k])


def test_centroid_picks_the_rows_nearest_the_mean():
    vectors = np.random.default_rng(0).normal(size=(30, 16))
    for k in (1, 3, 5):
        assert centroid_k(vectors, k) == brute_force_centroid(vectors, k)


def test_mmr_trades_relevance_for_novelty():
    vectors = np.random.default_rng(1).normal(size=(40, 8))
    assert mmr(vectors, 4, lam=1.0) == centroid_k(vectors, 4)  # relevance only
    twins = np.vstack([vectors[:1], vectors[:1], vectors[1:]])  # the same sentence twice
    picked = mmr(twins, 5, lam=0.5)
    assert len(set(picked)) == 5 and not {0, 1} <= set(picked)  # never both copies
    assert {0, 1} <= set(centroid_k(np.vstack([vectors.mean(axis=0)] * 2 + [vectors[1:]]), 2))


def test_mmr_first_pick_is_the_most_relevant_then_penalises_similarity():
    v = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [0.7, 0.7]])
    relevance = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ (v.mean(0) / np.linalg.norm(v.mean(0)))
    assert mmr(v, 1, lam=0.5) == [int(np.argmax(relevance))]
    assert set(mmr(v, 2, lam=0.3)) != set(centroid_k(v, 2))


def test_tfidf_rows_are_unit_vectors_of_the_document_vocabulary():
    v = tfidf_vectors(["The cat sat on the mat.", "A dog sat on a log.", "Cats and dogs."])
    assert v.shape[0] == 3 and np.allclose(np.linalg.norm(v, axis=1), 1)


def test_summary_text_keeps_document_order():
    assert summary_text(["A b.", "C d.", "E f."], [2, 0]) == "A b. E f."


@pytest.mark.parametrize("call", [lambda: lead_k([], 3), lambda: centroid_k(np.zeros((0, 3)), 2),
                                  lambda: random_k(SENTENCES, 0), lambda: mmr(np.ones((3, 2)), 2, lam=1.5)])
def test_bad_input_is_named(call):
    with pytest.raises(ValueError, match="no sentences|at least one|lam="):
        call()
