"""Extractive summarization: choose k sentences of a document that stand for the whole.

A Wikipedia article comes with a human summary, its lead section (the text
before the first ``== heading ==``). With the lead removed, the rest of the
article (its body) is a document to summarize and the lead is the reference
summary a method is scored against (ROUGE, ``lmlib.metrics``).

Every method here scores the body's sentences and returns the indices of
the k it picks, in document order:

- ``lead_k``: the first k sentences (the news-summarization baseline);
- ``random_k``: k sentences drawn at random (a floor);
- ``centroid_k``: the k sentences nearest the document's centroid, with
  sentences as TF-IDF vectors (a simplified form of Radev et al. 2004, whose
  centroid keeps only high-TF-IDF words, with IDF from a background corpus, and
  adds position scores) or as sentence embeddings:
  ``score(s) = cos(v_s, c)``, ``c = (1/n) sum_i v_i``;
- ``mmr``: maximal marginal relevance (Carbonell and Goldstein 1998), which
  trades closeness to the centroid for novelty against what is already chosen:
  ``argmax_{s not in S} [lam * cos(v_s, c) - (1 - lam) * max_{t in S} cos(v_s, v_t)]``.

Extraction copies sentences: it cannot shorten, merge or paraphrase them,
nor resolve a pronoun whose antecedent it left out. That takes a model that
generates (an encoder-decoder or a decoder-only LM), not a classifier.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np

from lmlib._deps import require
from lmlib.data import clean_wiki_markup, split_of, wiki_pages
from lmlib.tokenize import split_sentences

FIRST_HEADING = re.compile(r"^[ \t]*==[^=].*==[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Article:
    title: str
    lead: list[str]  # the reference summary's sentences
    body: list[str]  # the sentences to choose from
    split: str  # the article's split in the `wiki` corpus ("train", "valid" or "test")


PROSE_END = re.compile(r"[.!?][\"'”’)]*$")
MIN_WORDS = 5


def sentences_of(text: str) -> list[str]:
    """The prose sentences of plain text, paragraph by paragraph.

    A sentence is kept if it ends as a sentence does and has ``MIN_WORDS`` words or
    more: what cleaning leaves of captions, list items and table cells is dropped.
    """
    sentences = (s for paragraph in text.split("\n") for s in split_sentences(paragraph))
    return [s for s in sentences if PROSE_END.search(s) and len(s.split()) >= MIN_WORDS]


def lead_and_body(wikitext: str) -> tuple[str, str]:
    """An article's wikitext cut at its first section heading: (lead, body), as plain text."""
    heading = FIRST_HEADING.search(wikitext)
    cut = heading.start() if heading else len(wikitext)
    return clean_wiki_markup(wikitext[:cut]), clean_wiki_markup(wikitext[cut:])


def summarization_articles(min_lead: int = 2, min_body: int = 10) -> list[Article]:
    """The `wiki` articles with a lead of at least ``min_lead`` sentences and a body of at least
    ``min_body``, in the corpus's order (so ``split`` is the article's split in ``load_corpus("wiki")``)."""
    articles = []
    kept = [(t, w) for t, w in wiki_pages().items() if clean_wiki_markup(w)]  # as load_corpus("wiki") keeps them
    for index, (title, wikitext) in enumerate(kept):
        lead, body = (sentences_of(part) for part in lead_and_body(wikitext))
        if len(lead) >= min_lead and len(body) >= min_body:
            articles.append(Article(title, lead, body, split_of(index)))
    return articles


# --- the methods: each returns the chosen sentence indices in document order ------------------------------


def lead_k(sentences: list[str], k: int = 3) -> list[int]:
    _check(sentences, k)
    return list(range(min(k, len(sentences))))


def random_k(sentences: list[str], k: int = 3, seed: int = 0) -> list[int]:
    _check(sentences, k)
    return sorted(random.Random(seed).sample(range(len(sentences)), min(k, len(sentences))))


def tfidf_vectors(sentences: list[str]) -> np.ndarray:
    """[n, V] unit TF-IDF rows; the IDF counts the document's own sentences."""
    text = require("sklearn.feature_extraction.text")
    vectorizer = text.TfidfVectorizer(lowercase=True, stop_words="english")
    return vectorizer.fit_transform(sentences).toarray()


def centroid_k(vectors: np.ndarray, k: int = 3) -> list[int]:
    """Indices of the k rows of ``vectors`` ([n, d]) with the highest cosine to their
    centroid, in document order (ties: the earlier row)."""
    _check(vectors, k)
    scores = _unit(vectors) @ _unit(vectors.mean(axis=0))  # [n]
    return sorted(np.argsort(-scores, kind="stable")[:k].tolist())


def mmr(vectors: np.ndarray, k: int = 3, lam: float = 0.7) -> list[int]:
    """Maximal marginal relevance: greedily add the sentence that is close to the
    centroid (weight ``lam``) and far from the most similar sentence already chosen
    (weight ``1 - lam``). The centroid stands in for Carbonell and Goldstein's query.
    ``lam = 1`` is ``centroid_k``."""
    _check(vectors, k)
    if not 0 <= lam <= 1:
        raise ValueError(f"lam={lam} must be in [0, 1]: 1 is relevance only, 0 novelty")
    unit = _unit(vectors)  # [n, d]
    relevance = unit @ _unit(vectors.mean(axis=0))  # [n]
    similarity = unit @ unit.T  # [n, n]
    chosen: list[int] = []
    for _ in range(min(k, len(vectors))):
        redundancy = similarity[:, chosen].max(axis=1) if chosen else 0.0  # [n]
        score = lam * relevance - (1 - lam) * redundancy
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return sorted(chosen)


def summary_text(sentences: list[str], indices: list[int]) -> str:
    """The chosen sentences joined in document order."""
    return " ".join(sentences[i] for i in sorted(indices))


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def _check(items, k: int) -> None:
    if len(items) == 0:
        raise ValueError("the document has no sentences to choose from")
    if k < 1:
        raise ValueError(f"k={k}: a summary needs at least one sentence")
