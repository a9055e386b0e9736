"""Question answering with retrieval: find the passage that answers a question, then pick the answer in it.

Passages are the ``wiki`` articles cut into sentences (``lmlib.tokenize.split_sentences``) and grouped into
windows of ``window`` consecutive sentences of one article (``PASSAGE_WINDOW`` = 3; 1 makes every sentence a
passage). A question is scored against every passage by

BM25 (Robertson and Zaragoza, 2009), over lower-cased words (``bm25_tokens``), computed by ``rank_bm25.BM25Okapi``:

    BM25(q, d) = sum_{t in q} idf(t) * f(t, d) (k1 + 1) / (f(t, d) + k1 (1 - b + b |d| / avgdl))
    idf(t) = ln((N - n_t + 0.5) / (n_t + 0.5)),  floored at eps * (the mean idf) where it is negative

with f(t, d) the count of word t in passage d, |d| its length in words, avgdl the mean length, N the passages,
n_t the passages holding t, k1 = 1.5, b = 0.75, eps = 0.25;

dense vectors: the cosine of all-MiniLM-L6-v2 sentence embeddings (``lmlib.pretraining.sentence_embeddings``,
unit vectors, so the cosine is a dot product); the passages' vectors are shipped for the windows of three, 8 bits a
component (``VECTORS_FILE``, written by ``python -m lmlib.retrieval --write-vectors``), and encoded and cached on
disk for any other passages;

or both, by reciprocal rank fusion (Cormack, Clarke and Buettcher, 2009, "Reciprocal rank fusion outperforms
Condorcet and individual rank learning methods", SIGIR): each ranking gives passage d the score 1 / (k + its rank),
ranks counted from 1, k = 60, and the fused ranking sorts by the sum,

    RRF(d) = sum_{m in rankings} 1 / (k + rank_m(d)).

The answer is then a span of the top passage picked by a rule from the question word (``extract_answer``), scored
as SQuAD v1.1 scores it: exact match and token F1 after lower-casing and removing punctuation, the articles a, an,
the and extra spaces (``normalize_answer``, ``exact_match``, ``token_f1``).

The questions: ``load_wiki_qa`` reads the course's 95 questions on the ``wiki`` test articles
(``resources/wiki_qa.json``), each with its short answer and the sentence(s) that hold it, checked against the
corpus. The passages they are asked against come from all 106 ``wiki`` articles, train, valid and test alike
(26,054 sentences; 8,715 windows of three), so the other articles are distractors, among them near relatives
("Politics of Angola", "Ayn Rand", "Academy Awards"). ``evaluate_retrieval`` makes the chapter's table
(``python -m lmlib.retrieval``).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import os
import re
import string
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

from lmlib._deps import require
from lmlib.data import cache_dir, clean_wiki_markup, load_corpus, wiki_pages
from lmlib.tokenize import split_sentences, word_tokenize

QA_FILE = Path(__file__).resolve().parent / "resources" / "wiki_qa.json"
# A lone sentence often names its subject only as "he" or "it" ("He has been married to fellow tennis player Steffi
# Graf since 2001."): a window of three brings the article's context into the passage. Over the course's questions,
# read at equal text (hit@15 over sentences, hit@5 over windows) the two retrieve alike (BM25 0.81 and 0.80, dense
# 0.84 and 0.84, hybrid 0.89 and 0.87); the window wins where one passage is read: hit@1 0.53-0.54 over sentences,
# 0.59-0.64 over windows, and the span rule's exact match on the dense and the hybrid top passage 0.30 and 0.33
# against 0.34 and 0.38 (on BM25's, 0.33 against 0.31), by `python -m lmlib.retrieval --window 1 --depth 15` and
# `--window 3 --depth 15`. A window also makes a third as many vectors to store, and stays short enough for the
# span rule and for MiniLM (73 tokens on average; 5 of the 8,715 windows pass its 256 and are cut).
PASSAGE_WINDOW = 3
RRF_K = 60  # Cormack et al. (2009) fixed k = 60 in a pilot experiment and kept it for every collection
# Ranks are read to depth 10 (MRR@10, as MS MARCO reports it): within the top 10 the dense scores of the course's
# questions are ranked by margins above 1e-5, while deeper they come closer than the 1e-6 by which two CPUs' float
# kernels can differ (tests/test_retrieval.py checks the printed ranks against noise of 1e-5).
DEPTH = 10


# --- the corpus: articles by title, cut into passages ------------------------------------------------------


@functools.cache
def wiki_articles() -> Mapping[str, str]:
    """Every ``wiki`` article's text (``load_corpus("wiki", "all")``) by its title, in corpus order (read-only:
    it is computed once and shared).

    The titles come from ``wiki_pages`` (the raw dump, about 3 s to parse), so they are cached under
    ``lmlib.data.cache_dir()``, keyed by a hash of the articles' texts.
    """
    articles = load_corpus("wiki", "all")
    key = hashlib.sha256("\n\0".join(articles).encode()).hexdigest()[:16]
    path = cache_dir() / f"wiki-titles-{key}.json"
    if path.exists():
        titles = json.loads(path.read_text(encoding="utf-8"))
    else:
        # load_corpus drops a page whose markup cleans to nothing: drop the same titles
        titles = [title for title, text in wiki_pages().items() if clean_wiki_markup(text)]
        _write_atomically(path, json.dumps(titles, ensure_ascii=False).encode())
    if len(titles) != len(articles):
        raise RuntimeError(f"{len(titles)} titles for {len(articles)} wiki articles: delete {path} and retry")
    return MappingProxyType(dict(zip(titles, articles, strict=True)))


@dataclasses.dataclass(frozen=True)
class Passage:
    """``sentences`` of the article ``title``, from its sentence number ``start`` (counted from 0)."""

    title: str
    start: int
    sentences: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def make_passages(articles: Mapping[str, str],
                  window: int = PASSAGE_WINDOW) -> list[Passage]:
    """Each article's sentences (``split_sentences``) in windows of ``window``
    consecutive sentences, not overlapping (an article's last window may be shorter):
    ``window=1`` makes every sentence a passage."""
    if window < 1:
        raise ValueError(f"window is the number of sentences in a passage: at least 1, "
                         f"got {window}")
    passages = []
    for title, text in articles.items():
        sentences = split_sentences(text)
        passages += [Passage(title, i, tuple(sentences[i : i + window]))
                     for i in range(0, len(sentences), window)]
    return passages


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # parallel readers never see half a file


# --- dense vectors, cached -----------------------------------------------------------------------------------


def embed(texts: Sequence[str], encoder=None, cache: bool = True, batch_size: int = 64) -> torch.Tensor:
    """[N, 384] all-MiniLM-L6-v2 unit vectors of ``texts`` (``lmlib.pretraining.sentence_embeddings``).

    ``encoder`` is ``(tokenizer, model)`` from ``lmlib.pretraining.load_minilm`` (loaded when None). The texts are
    encoded shortest first, so a batch pads little (its order changes a vector by round-off only), and with
    ``cache`` the result is stored under ``lmlib.data.cache_dir()`` in a file named by a hash of the model's
    weights and the texts: encoding the 26,000 ``wiki`` sentences takes minutes on two cores, reading them back
    a fraction of a second.
    """
    from lmlib.pretraining import load_minilm, sentence_embeddings

    texts = list(texts)
    if not texts:
        raise ValueError("embed needs at least one text")
    path = embed_cache_path(texts)
    if cache and path.exists():
        return torch.from_numpy(np.load(path))
    tokenizer, model = encoder or load_minilm()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = torch.empty(len(texts), model.config.hidden_size)
    vectors[order] = sentence_embeddings([texts[i] for i in order], tokenizer, model, batch_size=batch_size)
    if cache:
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, vectors.numpy())
        os.replace(tmp, path)
    return vectors


def embed_cache_path(texts: Sequence[str]) -> Path:
    """Where ``embed`` caches the vectors of ``texts``: named by a hash of MiniLM's weights and the texts."""
    from lmlib.pretraining import MINILM_SHA256

    digest = hashlib.sha256(MINILM_SHA256.encode())
    for text in texts:
        digest.update(text.encode() + b"\0")
    return cache_dir() / f"minilm-{digest.hexdigest()[:20]}.npy"


# --- the passages' vectors, committed: int8 with one scale per row -------------------------------------------

# Encoding the 8,715 windows takes 5 to 13 minutes on two cores; the chapter and its checks must run in about a
# minute from an empty cache, so the vectors are shipped, 8 bits a component (3.1 MB, compressed, not 13.4 MB).
VECTORS_FILE = Path(__file__).resolve().parent / "resources" / f"wiki_passages_minilm_w{PASSAGE_WINDOW}.npz"
WRITE_VECTORS = "python -m lmlib.retrieval --write-vectors"
VECTORS_FORMAT = "lmlib-int8-rows-1"
_FLOAT16_NORMAL = float(np.finfo(np.float16).tiny)  # the smallest scale float16 keeps to full precision


def texts_sha256(texts: Sequence[str]) -> str:
    """The SHA-256 of the texts, each as UTF-8 followed by a NUL byte: which texts a vectors file holds."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()


def quantize_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, d] vectors -> (codes [N, d] int8, scales [N] float16), one scale per row:

        s_i = max_j |v_ij| / 127  (rounded to float16),   c_ij = round(v_ij / s_i),

    so that v_ij ~ s_i c_ij (``dequantize_rows``), off by at most s_i / 2.
    A MiniLM vector (384 components, length 1) takes 386 bytes, not 1,536."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or not np.all(np.isfinite(v)):
        raise ValueError(f"quantize_rows takes a [N, d] array of finite numbers, "
                         f"got shape {v.shape}")
    largest = np.abs(v).max(axis=1)  # [N]
    if (np.any((largest > 0) & (largest / 127 < _FLOAT16_NORMAL))
            or largest.max(initial=0) / 127 > 65504):
        raise ValueError("a row's scale, max |v| / 127, must fit float16 (between 6.1e-5 "
                         "and 65504): scale the vectors to about unit length first")
    scales = (largest / 127).astype(np.float16)  # [N]
    divisor = np.where(scales > 0, scales, 1).astype(np.float32)[:, None]  # 0 stays 0
    codes = np.clip(np.rint(v / divisor), -127, 127).astype(np.int8)  # [N, d]
    return codes, scales


def dequantize_rows(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """[N, d] float32 vectors s_i c_ij from ``quantize_rows``' codes and scales."""
    return codes.astype(np.float32) * scales.astype(np.float32)[:, None]


def save_passage_vectors(path: str | Path, texts: Sequence[str], vectors: np.ndarray, window: int,
                         notes: Mapping | None = None) -> Path:
    """Write ``vectors`` ([N, d], of ``texts``) quantised (``quantize_rows``) to ``path`` (an .npz), with the key
    ``load_passage_vectors`` checks: the SHA-256 of the MiniLM weights that encoded them and of the texts.
    ``notes`` (JSON-able) records how the file was made."""
    from lmlib.pretraining import MINILM_SHA256

    if len(texts) != len(vectors):
        raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors: give one vector per text")
    codes, scales = quantize_rows(vectors)
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, format=np.str_(VECTORS_FORMAT), minilm_sha256=np.str_(MINILM_SHA256),
                        passages_sha256=np.str_(texts_sha256(texts)), window=np.int64(window),
                        notes=np.str_(json.dumps(notes or {}, sort_keys=True)), codes=codes, scales=scales)
    os.replace(tmp, path)  # parallel readers never see half a file
    return path


def read_passage_vectors(path: str | Path = VECTORS_FILE) -> dict:
    """A vectors file's fields: ``format``, ``minilm_sha256``, ``passages_sha256`` (str), ``window`` (int),
    ``notes`` (dict), ``codes`` [N, d] int8 and ``scales`` [N] float16."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            fields = {name: f[name] for name in f.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable vectors file ({e}); regenerate it with {WRITE_VECTORS}") from e
    if str(fields.get("format")) != VECTORS_FORMAT:
        raise ValueError(f"{path} is not a {VECTORS_FORMAT} file; regenerate it with {WRITE_VECTORS}")
    return {"format": str(fields["format"]), "minilm_sha256": str(fields["minilm_sha256"]),
            "passages_sha256": str(fields["passages_sha256"]), "window": int(fields["window"]),
            "notes": json.loads(str(fields["notes"])), "codes": fields["codes"], "scales": fields["scales"]}


def load_passage_vectors(texts: Sequence[str],
                         path: str | Path = VECTORS_FILE) -> torch.Tensor | None:
    """[N, d] unit vectors of ``texts`` from the vectors file at ``path``, dequantised
    and set back to length 1 (so a dot product is a cosine), if its key matches: it
    holds exactly these texts, encoded by the MiniLM whose SHA-256 is
    ``lmlib.pretraining.MINILM_SHA256``. None when it does not (or there is no file);
    a file of as many other texts is stale, and a warning names the command that
    rewrites it."""
    from lmlib.pretraining import MINILM_SHA256

    path = Path(path)
    if not path.exists():
        return None
    stored = read_passage_vectors(path)
    if (stored["passages_sha256"] == texts_sha256(texts)
            and stored["minilm_sha256"] == MINILM_SHA256):
        vectors = dequantize_rows(stored["codes"], stored["scales"])  # [N, d]
        return torch.nn.functional.normalize(torch.from_numpy(vectors), dim=1)
    if len(stored["codes"]) == len(texts):
        warnings.warn(f"{path} holds vectors of {len(texts):,} texts, but of other texts "
                      "or from other MiniLM weights than these: encoding them instead "
                      f"(minutes); regenerate the file with {WRITE_VECTORS}",
                      stacklevel=2)
    return None


def vectors_file_problem(path: str | Path = VECTORS_FILE) -> str:
    """What is wrong with the committed vectors file, or "" when nothing is: it must hold the vectors of
    ``make_passages(wiki_articles(), window)`` for its window, encoded by the MiniLM of ``MINILM_SHA256``."""
    from lmlib.pretraining import MINILM_SHA256

    path = Path(path)
    if not path.exists():
        return f"{path} is missing; write it with {WRITE_VECTORS}"
    stored = read_passage_vectors(path)
    texts = [p.text for p in make_passages(wiki_articles(), stored["window"])]
    if stored["minilm_sha256"] != MINILM_SHA256:
        return (f"{path} was encoded by the MiniLM weights {stored['minilm_sha256'][:12]}..., not the course's "
                f"{MINILM_SHA256[:12]}...; regenerate it with {WRITE_VECTORS}")
    if stored["passages_sha256"] != texts_sha256(texts) or stored["codes"].shape[0] != len(texts):
        return (f"{path} holds vectors of other texts than today's {len(texts):,} wiki passages of "
                f"{stored['window']} sentences (the corpus or its sentence splitting changed); "
                f"regenerate it with {WRITE_VECTORS}")
    return ""


def write_passage_vectors(path: str | Path = VECTORS_FILE, window: int = PASSAGE_WINDOW, encoder=None) -> dict:
    """Encode the ``wiki`` passages of ``window`` sentences (``embed``, so from the cache if they were encoded
    before) and save them (``save_passage_vectors``) with notes on what 8 bits cost: the smallest cosine between
    a stored vector and its float32 original, and the course's dense retrieval (hit@1, hit@5, MRR over
    ``load_wiki_qa``) with each. Returns the notes. ``python -m lmlib.retrieval --write-vectors``."""
    from lmlib.metrics import hits_at_k, mean_reciprocal_rank
    from lmlib.pretraining import load_minilm, minilm_folder

    minilm_folder()  # checks that the installed weights are the ones MINILM_SHA256 names: the key records them
    encoder = encoder or load_minilm()
    passages = make_passages(wiki_articles(), window)
    texts = [p.text for p in passages]
    exact = embed(texts, encoder)  # [N, d] float32
    codes, scales = quantize_rows(exact.numpy())
    stored = torch.nn.functional.normalize(torch.from_numpy(dequantize_rows(codes, scales)), dim=1)
    questions = load_wiki_qa()
    relevant = relevant_passages(questions, passages)
    asked = embed([q.question for q in questions], encoder)
    notes: dict = {"passages": len(texts), "window": window,
                   "smallest cosine with float32": round(float((stored * exact).sum(dim=1).min()), 6)}
    for name, vectors in (("float32", exact), ("int8", stored)):
        ranked = [top_indices(row, DEPTH) for row in (asked @ vectors.T).numpy()]
        notes[f"dense with {name} vectors"] = {
            "hit@1": hits_at_k(ranked, relevant, 1), "hit@5": hits_at_k(ranked, relevant, 5),
            "MRR": round(mean_reciprocal_rank(ranked, relevant), 6),
            "first answering rank": [next((n for n, i in enumerate(r, 1) if i in rel), None)
                                     for r, rel in zip(ranked, relevant, strict=True)]}
    save_passage_vectors(path, texts, exact.numpy(), window, notes)
    return notes


# --- the questions -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WikiQuestion:
    """A question on the ``wiki`` article ``title``, its short ``answer`` (a span of each answering sentence) and
    the ``sentences`` that answer it, as ``split_sentences`` cuts the article."""

    id: str
    title: str
    question: str
    answer: str
    sentences: tuple[str, ...]


QA_FIELDS = ("id", "title", "question", "answer", "sentences")


def load_wiki_qa(path: str | Path = QA_FILE) -> list[WikiQuestion]:
    """The course's questions on the ``wiki`` articles (``lmlib/resources/wiki_qa.json``), each checked against the
    corpus: its title is an article, each answering sentence is one of that article's sentences
    (``split_sentences``), and the answer is a span of each. A record that fails raises ``ValueError`` naming it.

    The 95 questions were written by hand from nine of the ten ``test`` articles (all but the bare
    "List of anthropologists"), in the writer's own words: some close to the sentence's wording, many not.
    """
    path = Path(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a readable JSON list of questions: {e}") from e
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path} must hold a non-empty JSON list of question records with the fields {QA_FIELDS}")
    articles = wiki_articles()
    sentences_of: dict[str, set[str]] = {}
    questions, seen = [], set()
    for n, record in enumerate(records):
        name = f"{path.name}, record {n} ({record.get('id', 'no id') if isinstance(record, dict) else record!r:.40})"
        problem = _record_problem(record, articles, sentences_of, seen)
        if problem:
            raise ValueError(f"{name}: {problem}")
        seen.add(record["id"])
        questions.append(WikiQuestion(**{**record, "sentences": tuple(record["sentences"])}))
    return questions


def _record_problem(record, articles: Mapping[str, str], sentences_of: dict[str, set[str]], seen: set[str]) -> str:
    """What is wrong with one question record, or "" when nothing is."""
    if not isinstance(record, dict) or set(record) != set(QA_FIELDS):
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        return f"a record has exactly the fields {QA_FIELDS}, this one has {keys}"
    if record["id"] in seen:
        return f"the id {record['id']!r} is used twice; give every question its own id"
    if any(not isinstance(record[f], str) or not record[f].strip() for f in ("id", "title", "question", "answer")):
        return "id, title, question and answer must be non-empty strings"
    if not normalize_answer(record["answer"]):
        return f"the answer {record['answer']!r} is empty once normalised (punctuation and articles removed)"
    title = record["title"]
    if title not in articles:
        return f"no wiki article is titled {title!r} (the titles: lmlib.retrieval.wiki_articles())"
    if not isinstance(record["sentences"], list) or not record["sentences"]:
        return "sentences must be a non-empty list of the article's sentences that hold the answer"
    if title not in sentences_of:
        sentences_of[title] = set(split_sentences(articles[title]))
    for sentence in record["sentences"]:
        if sentence not in sentences_of[title]:
            return (f"the sentence {sentence!r:.80} is not one of the sentences of {title!r} as split_sentences "
                    "cuts it; copy it from make_passages(wiki_articles()) verbatim")
        if record["answer"] not in sentence:
            return f"the answer {record['answer']!r} does not occur verbatim in the sentence {sentence!r:.80}"
    return ""


def relevant_passages(questions: Sequence[WikiQuestion],
                      passages: Sequence[Passage]) -> list[set[int]]:
    """For each question, the indices of the passages that hold one of its answering
    sentences: by the sentence's text, in any article, so a sentence repeated word for
    word elsewhere (a refrain of a song, a sentence shared by "Angola" and "Politics of
    Angola") answers the question there too."""
    holding: dict[str, set[int]] = collections.defaultdict(set)
    for i, passage in enumerate(passages):
        for sentence in passage.sentences:
            holding[sentence].add(i)
    relevant = [set().union(*(holding[s] for s in q.sentences)) for q in questions]
    for q, found in zip(questions, relevant, strict=True):
        if not found:
            raise ValueError(f"question {q.id!r}: none of its sentences is in the "
                             "passages; were they made from wiki_articles()?")
    return relevant


def lexical_overlap(question: WikiQuestion, ignore: frozenset[str] | None = None) -> float:
    """The share of the question's content words (``bm25_tokens`` less ``ignore``:
    ``FUNCTION_WORDS`` and ``AUXILIARY_VERBS`` when None) found in its answering
    sentence (the best of them): near 1 the question repeats the sentence's wording,
    near 0 it paraphrases it."""
    ignore = FUNCTION_WORDS | AUXILIARY_VERBS if ignore is None else ignore
    asked = set(bm25_tokens(question.question)) - ignore
    if not asked:
        return 0.0
    return max(len(asked & set(bm25_tokens(s))) / len(asked) for s in question.sentences)


# --- BM25 ---------------------------------------------------------------------------------------------------


def bm25_tokens(text: str) -> list[str]:
    """The words BM25 matches on: ``word_tokenize``, lower-cased, punctuation marks
    dropped (a "?" or "," would match half the corpus and only add noise), and a
    possessive "'s" cut off, as Lucene's English analyzer cuts it, so that "Agassi's"
    in a question matches "Agassi" in a passage."""
    words = word_tokenize(text, lowercase=True)
    return [_POSSESSIVE.sub("", w) or w for w in words if any(c.isalnum() for c in w)]


_POSSESSIVE = re.compile(r"['’]s$")


class BM25Retriever:
    """BM25 over ``passages``: ``rank_bm25.BM25Okapi`` over ``bm25_tokens``, with its
    defaults k1 = 1.5, b = 0.75, eps = 0.25 (the formula: the module's docstring).

    ``BM25Okapi.get_scores`` loops in Python over every passage for every query word
    (20 s for the course's questions over 26,000 sentences on two busy cores). BM25 is
    a sum over the question's words of a weight per (word, passage), so the index's
    counts, lengths and idf are read into a sparse matrix once,

        W[t, d] = idf(t) f(t, d) (k1 + 1) / (f(t, d) + k1 (1 - b + b |d| / avgdl)),

    and the questions are scored as (their word counts) @ W: the numbers of
    ``get_scores`` (tests/test_retrieval.py checks them), in milliseconds.
    """

    def __init__(self, passages: Sequence[Passage], k1: float = 1.5, b: float = 0.75,
                 epsilon: float = 0.25):
        rank_bm25, sparse = require("rank_bm25"), require("scipy.sparse")
        self.passages = list(passages)
        self.index = index = rank_bm25.BM25Okapi(
            [bm25_tokens(p.text) for p in self.passages], k1=k1, b=b, epsilon=epsilon)
        self.words = {w: i for i, w in enumerate(index.idf)}  # word -> its row of W
        rows, cols, counts = [], [], []
        for d, frequencies in enumerate(index.doc_freqs):  # f(t, d) for each t in d
            for w, f in frequencies.items():
                rows.append(self.words[w])
                cols.append(d)
                counts.append(f)
        f = np.asarray(counts, dtype=np.float64)
        length = np.asarray(index.doc_len, dtype=np.float64)[cols]  # |d|
        idf = np.asarray([index.idf[w] for w in self.words])[rows]  # floored as above
        weights = idf * (f * (k1 + 1) / (f + k1 * (1 - b + b * length / index.avgdl)))
        self.weights = sparse.csr_matrix(  # W: [words, N]
            (weights, (rows, cols)), shape=(len(self.words), len(self.passages)))

    def scores_many(self, questions: Sequence[str]) -> np.ndarray:
        """[Q, N] the BM25 score of every passage for each question (a word said twice
        counts twice, as in ``get_scores``; a word no passage has adds nothing)."""
        sparse = require("scipy.sparse")
        rows, cols = [], []
        for q, question in enumerate(questions):
            for w in bm25_tokens(question):
                if w in self.words:
                    rows.append(q)
                    cols.append(self.words[w])
        counts = sparse.csr_matrix(  # [Q, words]: how often each question says each word
            (np.ones(len(rows)), (rows, cols)), shape=(len(questions), len(self.words)))
        return (counts @ self.weights).toarray()

    def scores(self, question: str) -> np.ndarray:
        """[N] the BM25 score of every passage for ``question``."""
        return self.scores_many([question])[0]

    def rank(self, questions: Sequence[str], depth: int = DEPTH) -> list[list[int]]:
        """Each question's top ``depth`` passage indices, best first (ties: corpus
        order)."""
        return [top_indices(row, depth) for row in self.scores_many(questions)]


def top_indices(scores: np.ndarray, depth: int | None = None) -> list[int]:
    """The indices of the ``depth`` highest scores (all when None), highest first;
    equal scores keep their order (the earlier passage first)."""
    return np.argsort(-np.asarray(scores), kind="stable")[:depth].tolist()


# --- dense vectors ------------------------------------------------------------------------------------------


class DenseRetriever:
    """Cosine similarity of all-MiniLM-L6-v2 vectors: a question's with each passage's.

    The passages' vectors come from ``VECTORS_FILE`` where it holds these passages
    (the course's windows of three; ``load_passage_vectors``), else from ``embed``
    (encoded once, minutes for thousands of passages, then cached on disk).
    ``vectors_file`` names the file it read, or is None. Questions are encoded when
    asked, in milliseconds each.
    """

    def __init__(self, passages: Sequence[Passage], encoder=None,
                 vectors_file: str | Path | None = VECTORS_FILE):
        self.passages = list(passages)
        self.encoder = encoder  # (tokenizer, model), loaded when first needed
        texts = [p.text for p in self.passages]
        committed = load_passage_vectors(texts, vectors_file) if vectors_file else None
        self.vectors_file = None if committed is None else Path(vectors_file)
        if committed is None:
            committed = embed(texts, encoder)
        self.vectors = committed  # [N, d], unit rows

    def question_vectors(self, questions: Sequence[str],
                         cache: bool = True) -> torch.Tensor:
        """[Q, d] unit vectors of the questions (``embed``; its cache if ``cache``)."""
        if self.encoder is None and not (cache and embed_cache_path(questions).exists()):
            from lmlib.pretraining import load_minilm

            self.encoder = load_minilm()  # kept for the next questions
        return embed(questions, self.encoder, cache=cache)

    def scores_many(self, questions: Sequence[str], cache: bool = True) -> np.ndarray:
        """[Q, N] cosines: dot products, as every vector has length 1."""
        return (self.question_vectors(questions, cache) @ self.vectors.T).numpy()

    def scores(self, question: str) -> np.ndarray:
        """[N] cosine of ``question`` with every passage (its vector not cached)."""
        return self.scores_many([question], cache=False)[0]

    def rank(self, questions: Sequence[str], depth: int = DEPTH) -> list[list[int]]:
        return [top_indices(row, depth) for row in self.scores_many(questions)]


# --- both: reciprocal rank fusion ------------------------------------------------------------------------------


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], n: int,
                           k: int = RRF_K) -> np.ndarray:
    """[n] fused scores of the ids 0 .. n-1 from several rankings of one query (each a
    list of ids, best first; Cormack, Clarke and Buettcher, 2009):

        RRF(d) = sum_m 1 / (k + rank_m(d)),   ranks counted from 1,

    an id missing from a ranking getting nothing from it. ``top_indices`` of the
    result is the fused ranking."""
    if k < 0:
        raise ValueError(f"k must be >= 0 (Cormack et al. use 60), got {k}")
    fused = np.zeros(n)
    for ranking in rankings:
        ranking = np.asarray(ranking, dtype=np.int64)
        if len(ranking) and not (0 <= ranking.min() and ranking.max() < n
                                 and np.bincount(ranking).max() == 1):
            raise ValueError(f"a ranking must list distinct ids in [0, {n}), best first")
        fused[ranking] += 1.0 / (k + np.arange(1, len(ranking) + 1))
    return fused


class HybridRetriever:
    """BM25 and dense vectors fused by ``reciprocal_rank_fusion`` of each method's full ranking of the passages."""

    def __init__(self, bm25: BM25Retriever, dense: DenseRetriever, k: int = RRF_K):
        if bm25.passages != dense.passages:
            raise ValueError("the BM25 and dense retrievers must rank the same passages")
        self.bm25, self.dense, self.k = bm25, dense, k
        self.passages = bm25.passages

    def scores_many(self, questions: Sequence[str]) -> np.ndarray:
        """[Q, N] fused RRF scores."""
        return fuse(self.bm25.scores_many(questions), self.dense.scores_many(questions), k=self.k)

    def rank(self, questions: Sequence[str], depth: int = DEPTH) -> list[list[int]]:
        return [top_indices(row, depth) for row in self.scores_many(questions)]


def fuse(*score_matrices: np.ndarray, k: int = RRF_K) -> np.ndarray:
    """[Q, N] RRF scores from several methods' [Q, N] scores, each method's scores
    ranked in full (as ``top_indices`` ranks them: ties in passage order)."""
    n = score_matrices[0].shape[1]
    return np.stack([
        reciprocal_rank_fusion([np.argsort(-row, kind="stable") for row in rows], n, k)
        for rows in zip(*score_matrices, strict=True)])


# --- the answer: a span rule, scored as SQuAD scores it ------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalisation: lower case, punctuation (``string.punctuation``)
    removed, the articles a, an, the removed, runs of spaces made one."""
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the two are equal after ``normalize_answer``, else 0.0 (SQuAD v1.1)."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD v1.1's token F1: the harmonic mean of the precision and recall of the
    normalised words, counted with their multiplicity; 0 when no word is shared (so
    an empty prediction scores 0)."""
    predicted = normalize_answer(prediction).split()
    wanted = normalize_answer(gold).split()
    shared = sum((collections.Counter(predicted) & collections.Counter(wanted)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(wanted)
    return 2 * precision * recall / (precision + recall)


MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
NUMBER_WORDS = frozenset(("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                          "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
                          "hundred thousand million billion half dozen").split())
UNITS = frozenset("years year months month weeks week days day hours hour percent per cent km miles".split())
# words that start a sentence with a capital without being a name
FUNCTION_WORDS = frozenset(("a an the in on at of for to from by with and or but as after before during since "
                            "until when while he she it its his her they their them this that these those there "
                            "some many most all both each one such however although though also later because "
                            "therefore thus nevertheless despite unlike according following between among if so then "
                            "only instead "
                            "what which who whom whose where why how we you our other another several few no not "
                            "today first").split())
# the verbs a question is built with ("When did ...", "What is ..."): not content it shares with a sentence
AUXILIARY_VERBS = frozenset("is are was were be been being do does did has have had can could will would".split())
CONNECTORS = frozenset(("of", "de", "da", "do", "del", "von", "van", "la", "'s", "’s"))


def answer_kind(question: str) -> str:
    """What the question asks for, from its question words: ``"date"`` (when, what year/date), ``"number"`` (how
    many/much/old/long, what age) or ``"name"`` (anything else: who, which, what, where)."""
    q = " ".join(word_tokenize(question, lowercase=True))
    found = [(m.start(), kind) for kind, pattern in QUESTION_WORDS.items() for m in [re.search(pattern, q)] if m]
    return min(found)[1] if found else "name"  # the question word that comes first decides


QUESTION_WORDS = {
    "number": r"\bhow (many|much|old|long|large|big)\b|\bwhat age\b",
    "date": r"\bwhen\b|\b(what|which) (year|date|month)\b",
    "name": r"\b(who|whom|whose|where|which|what)\b",
}


def candidate_spans(passage: str, kind: str) -> list[tuple[int, int]]:
    """(start, end) token positions (end exclusive) in ``word_tokenize(passage)`` of the spans that could answer a
    question of ``kind``: runs of numbers (with a unit word after them) for ``"number"``, runs of day, month and
    year for ``"date"``, runs of capitalised words (joined by "of", "de", "'s" ...) for ``"name"``."""
    tokens = word_tokenize(passage)
    lower = [t.lower() for t in tokens]

    def is_number(i: int) -> bool:
        return any(c.isdigit() for c in tokens[i]) or lower[i] in NUMBER_WORDS

    def is_date(i: int) -> bool:
        return lower[i] in MONTHS or (tokens[i].isdigit() and (len(tokens[i]) == 4 or int(tokens[i]) <= 31))

    def is_name(i: int) -> bool:
        return tokens[i][:1].isupper() and lower[i] not in FUNCTION_WORDS

    inside = {"number": is_number, "date": is_date, "name": is_name}[kind]
    # what may join two parts of one span: "250,000", "24.3", "89 and 92", "April 29, 1970", "Paulo Dias de Novais"
    glue = {"number": {",", ".", "and", "to", "-", "–"}, "date": {","}, "name": CONNECTORS}[kind]
    spans, i = [], 0
    while i < len(tokens):
        if not inside(i):
            i += 1
            continue
        end = i + 1
        while end < len(tokens) and (inside(end) or (lower[end] in glue and end + 1 < len(tokens)
                                                     and inside(end + 1))):
            end += 1
        if kind == "number" and end < len(tokens) and lower[end] in UNITS:
            end += 1
        if kind != "date" or any(lower[j] in MONTHS or len(tokens[j]) == 4 for j in range(i, end)):
            spans.append((i, end))
        i = end
    return spans


def extract_answer(question: str, passage: str) -> str:
    """The answer span this rule picks from ``passage``: among the spans of the kind
    the question asks for (``answer_kind``, ``candidate_spans``) that are not wholly
    made of the question's own words, the one nearest the question's words in the
    passage, scored by sum_w 1 / (1 + distance in tokens to the nearest occurrence of
    w) over the question's words w found there (the first span on a tie). A number or
    date question with no such span falls back to names; no span at all gives "".

    A simple, honest baseline: it knows nothing of meaning, so it answers "which
    insects" with a name if the passage has one, and never with "termites".
    """
    tokens = word_tokenize(passage)
    lower = [t.lower() for t in tokens]
    asked = {w for w in bm25_tokens(question) if w not in FUNCTION_WORDS}

    def spans_of(kind: str) -> list[tuple[int, int]]:  # not only the question's words
        return [s for s in candidate_spans(passage, kind)
                if not set(lower[s[0]:s[1]]) <= asked | CONNECTORS]

    kind = answer_kind(question)
    spans = spans_of(kind) or (spans_of("name") if kind != "name" else [])
    if not spans:
        return ""
    where = collections.defaultdict(list)  # each question word's places in the passage
    for i, w in enumerate(lower):
        if w in asked:
            where[w].append(i)

    def closeness(span: tuple[int, int]) -> float:
        start, end = span
        return sum(1 / (1 + min(max(start - i, i - end + 1, 0) for i in places))
                   for places in where.values())

    best = max(spans, key=closeness)  # max keeps the first of equal scores
    # "Duchamp's" -> "Duchamp"
    return re.sub(r"['’]s$", "", _span_text(passage, tokens, *best))


def _span_text(text: str, tokens: list[str], start: int, end: int) -> str:
    """The characters of ``text`` from token ``start`` to token ``end - 1``, as they stand in ``text``."""
    position, offsets = 0, []
    for token in tokens:
        position = text.index(token, position)
        offsets.append((position, position + len(token)))
        position += len(token)
    return text[offsets[start][0] : offsets[end - 1][1]]


# --- the chapter's table ----------------------------------------------------------------------------------------

METHODS = ("BM25", "dense", "hybrid")
# hit@15 over sentences reads as much text as hit@5 over windows of three: reported where ``depth`` reaches it
HIT_KS = (1, 5, 15)


# --- the per-question results, analysed ------------------------------------------------------------------


def question_scores(per_question: Sequence[Mapping], method: str, metric: str) -> np.ndarray:
    """[Q] each question's score under ``method`` from ``evaluate_retrieval``'s per-question rows (their
    ``"{method} rank"``: the first answering passage's rank, None below the depth read): for ``"hit@k"`` 1.0 when
    that rank is at most k, else 0.0; for ``"MRR@k"`` its reciprocal 1 / rank, 0 below rank k."""
    match = re.fullmatch(r"(hit|MRR)@(\d+)", metric)
    if match is None:
        raise ValueError(f"metric must be 'hit@k' or 'MRR@k' (e.g. 'hit@5', 'MRR@10'), got {metric!r}")
    k = int(match.group(2))
    ranks = [row[f"{method} rank"] for row in per_question]
    found = [rank is not None and rank <= k for rank in ranks]
    if match.group(1) == "hit":
        return np.array(found, dtype=np.float64)
    return np.array([1 / rank if ok else 0.0 for rank, ok in zip(ranks, found, strict=True)])


def compare_methods(per_question: Sequence[Mapping], comparisons: Sequence[tuple[str, str, str]], *,
                    mask: np.ndarray | None = None, n_resamples: int = 10_000, seed: int = 0,
                    two_sided: bool = True) -> list[dict]:
    """For each ``(a, b, metric)`` of ``comparisons``, the mean of ``question_scores`` of method a minus that of b
    over the questions (those where ``mask`` is True, if given), by ``metrics.paired_bootstrap``: a row
    ``{"a", "b", "metric", "difference", "low", "high", "p", "Holm"}``, with Holm's adjustment over all the rows.
    Two-sided by default: a comparison whose direction was not fixed before the results were seen needs it."""
    from lmlib import metrics

    keep = np.ones(len(per_question), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if keep.shape != (len(per_question),):
        raise ValueError(f"mask must hold one True/False per question ({len(per_question)}), got shape {keep.shape}")
    tests = [metrics.paired_bootstrap(question_scores(per_question, b, m)[keep],
                                      question_scores(per_question, a, m)[keep], np.mean,
                                      n_resamples=n_resamples, seed=seed, two_sided=two_sided)
             for a, b, m in comparisons]
    adjusted = metrics.holm_adjusted([t.p_value for t in tests])
    return [{"a": a, "b": b, "metric": m, "difference": t.difference, "low": t.low, "high": t.high,
             "p": t.p_value, "Holm": p_holm}
            for (a, b, m), t, p_holm in zip(comparisons, tests, adjusted, strict=True)]


def overlap_groups(questions: Sequence[WikiQuestion], threshold: float = 0.5,
                   ignore: frozenset[str] | None = None) -> dict[str, np.ndarray]:
    """The questions split by ``lexical_overlap`` (with ``ignore``) at ``threshold``: ``{"paraphrased (n)": mask,
    "worded alike (n)": mask}``, masks of [Q] booleans, under the threshold on the paraphrased side."""
    overlap = np.array([lexical_overlap(q, ignore=ignore) for q in questions])
    paraphrased = overlap < threshold
    return {f"paraphrased ({paraphrased.sum()})": paraphrased, f"worded alike ({(~paraphrased).sum()})": ~paraphrased}


def answer_examples(questions: Sequence[WikiQuestion], passages: Sequence[Passage],
                    rankings: Sequence[Sequence[int]], answers: Sequence[str]) -> dict[str, int | None]:
    """Examples picked by a fixed rule, as indices into ``questions`` (None where there is none): ``"right"``, the
    first question whose top-ranked passage answers it (``relevant_passages``) and whose predicted answer
    (``answers``) is an exact match; ``"wrong"``, the first whose top passage answers it and whose answer is not;
    ``"elsewhere"``, the first with no answering passage in its ranking but the answer's normalised words in one of
    its passages. ``"elsewhere count"`` is how many questions are of that last kind."""
    if not len(questions) == len(rankings) == len(answers):
        raise ValueError(f"{len(questions)} questions, {len(rankings)} rankings and {len(answers)} answers: "
                         f"give one ranking and one answer per question")
    relevant = relevant_passages(questions, passages)

    def holds(j: int, i: int) -> bool:  # the answer's normalised words stand in passage i
        return f" {normalize_answer(questions[j].answer)} " in f" {normalize_answer(passages[i].text)} "

    top_answers = [j for j, ranking in enumerate(rankings) if ranking and ranking[0] in relevant[j]]
    right = [j for j in top_answers if exact_match(answers[j], questions[j].answer) == 1]
    wrong = [j for j in top_answers if exact_match(answers[j], questions[j].answer) != 1]
    elsewhere = [j for j, ranking in enumerate(rankings)
                 if not set(ranking) & relevant[j] and any(holds(j, i) for i in ranking)]
    return {"right": next(iter(right), None), "wrong": next(iter(wrong), None),
            "elsewhere": next(iter(elsewhere), None), "elsewhere count": len(elsewhere)}


def evaluate_retrieval(window: int = PASSAGE_WINDOW, depth: int = DEPTH, n_resamples: int = 1000,
                       seed: int = 0, encoder=None) -> dict:
    """Retrieval and answering on the course's questions (``load_wiki_qa``) over every ``wiki`` passage of
    ``window`` sentences (``PASSAGE_WINDOW``; 1: every sentence), by BM25, dense vectors and their fusion
    (``encoder``: MiniLM's ``(tokenizer, model)`` if loaded already).

    Returns ``{"passages": N, "questions": Q, "paraphrased": P, "depth": depth, "vectors": file name,
    "retrieval": rows, "answers": rows, "per_question": rows, "seconds": s}``:

    - a retrieval row per method: hit@1, hit@5 (and hit@15 where ``depth`` reaches it), MRR@``depth`` (a
      question with no answering passage in its top ``depth`` counts 0) and the lenient "answer in top 5" (the
      answer's normalised words in one of the top 5 passages), each an ``lmlib.metrics.Interval`` (95 %
      percentile bootstrap over the questions, ``n_resamples`` resamples, ``seed``); ``misses``: the ids of
      the questions with no answering passage in the top 5; hit@5 of the questions that paraphrase their
      sentence (``lexical_overlap`` under 0.5) and of the others;
    - an answer row per source of the passage the span rule (``extract_answer``) reads: each method's top
      passage; the answering sentence itself (the rule's ceiling); a random passage, i.e. the same rule without
      retrieval: exact match and token F1 (SQuAD v1.1) with the same intervals;
    - a row per question: its id, question and answer, and for each method the rank of its first answering
      passage (None beyond ``depth``) and the span the rule read from its top passage.

    ``vectors`` names the file the passages' vectors came from (``VECTORS_FILE`` for windows of three), or is
    "encoded" (other windows: encoded on the first run, then read from the cache, as the questions' vectors are).
    """
    if depth < 5:
        raise ValueError(f"depth is how many ranks are read per question: at least 5 for hit@5, got {depth}")
    import time

    from lmlib.metrics import bootstrap_mean_interval, hits_at_k, mean_reciprocal_rank, reciprocal_rank

    started = time.perf_counter()
    questions = load_wiki_qa()
    passages = make_passages(wiki_articles(), window)
    relevant = relevant_passages(questions, passages)
    texts = [q.question for q in questions]
    dense = DenseRetriever(passages, encoder)  # the committed vectors for the course's windows of three, else encoded
    scores = {"BM25": BM25Retriever(passages).scores_many(texts), "dense": dense.scores_many(texts)}
    scores["hybrid"] = fuse(scores["BM25"], scores["dense"])
    rankings = {method: [top_indices(row, depth) for row in rows] for method, rows in scores.items()}

    def interval(scores: list[float], estimate: float | None = None):
        found = bootstrap_mean_interval(scores, n_resamples=n_resamples, seed=seed)
        assert estimate is None or abs(found.estimate - estimate) < 1e-12  # the metric and its interval agree
        return found

    paraphrased = [lexical_overlap(q) < 0.5 for q in questions]
    retrieval = []
    for method in METHODS:
        ranked = rankings[method]
        hit = {k: [float(any(i in rel for i in r[:k])) for r, rel in zip(ranked, relevant, strict=True)]
               for k in HIT_KS if k <= depth}
        rr = [reciprocal_rank(r, rel) for r, rel in zip(ranked, relevant, strict=True)]
        # lenient: the answer's words stand in a top-5 passage, whichever passage (a sibling article's copy of a
        # fact counts, and so does a chance mention of the same number)
        lenient = [float(any(f" {normalize_answer(q.answer)} " in f" {normalize_answer(passages[i].text)} "
                             for i in r[:5])) for q, r in zip(questions, ranked, strict=True)]
        retrieval.append({
            "method": method,
            "hit@1": interval(hit[1], hits_at_k(ranked, relevant, 1)),
            "hit@5": interval(hit[5], hits_at_k(ranked, relevant, 5)),
            **{f"hit@{k}": interval(hit[k], hits_at_k(ranked, relevant, k)) for k in hit if k > 5},
            "MRR": interval(rr, mean_reciprocal_rank(ranked, relevant)),
            "answer in top 5": interval(lenient),
            "misses": [q.id for q, h in zip(questions, hit[5], strict=True) if not h],
            # hit@5 of the questions that paraphrase their sentence (under half the words shared) and the rest
            "hit@5 paraphrased": float(np.mean([h for h, p in zip(hit[5], paraphrased, strict=True) if p])),
            "hit@5 worded alike": float(np.mean([h for h, p in zip(hit[5], paraphrased, strict=True) if not p])),
        })

    rng = np.random.default_rng(seed)
    read = {f"{m} top passage": [passages[r[0]].text for r in rankings[m]] for m in METHODS}
    read["answering sentence"] = [q.sentences[0] for q in questions]
    read["random passage (no retrieval)"] = [passages[i].text for i in rng.integers(len(passages), size=len(questions))]
    answers, predictions = [], {}
    for source, texts_read in read.items():
        predicted = [extract_answer(q.question, text) for q, text in zip(questions, texts_read, strict=True)]
        predictions[source] = predicted
        answers.append({
            "passage read": source,
            "EM": interval([exact_match(p, q.answer) for p, q in zip(predicted, questions, strict=True)]),
            "F1": interval([token_f1(p, q.answer) for p, q in zip(predicted, questions, strict=True)]),
        })
    per_question = [{"id": q.id, "question": q.question, "answer": q.answer,
                     **{f"{m} rank": next((n for n, i in enumerate(rankings[m][j], 1) if i in relevant[j]), None)
                        for m in METHODS},
                     **{f"{m} answer": predictions[f"{m} top passage"][j] for m in METHODS}}
                    for j, q in enumerate(questions)]
    return {"passages": len(passages), "questions": len(questions), "paraphrased": sum(paraphrased), "depth": depth,
            "vectors": dense.vectors_file.name if dense.vectors_file else "encoded",
            "retrieval": retrieval, "answers": answers, "per_question": per_question,
            "seconds": time.perf_counter() - started}


def format_report(result: dict) -> str:
    """``evaluate_retrieval``'s result as two text tables and the misses (figures to 3 decimals)."""

    def cell(interval) -> str:
        return f"{interval.estimate:.3f} [{interval.low:.3f}, {interval.high:.3f}]"

    lines = [f"{result['questions']} questions, {result['passages']:,} passages; 95 % bootstrap intervals", ""]
    mrr = f"MRR@{result['depth']}"
    hits = [key for key in result["retrieval"][0] if key.startswith("hit@") and " " not in key]
    lines.append(f"{'method':<8}  " + "".join(f"{h:<22}  " for h in hits)
                 + f"{mrr:<22}  {'answer in top 5':<22}  misses")
    for row in result["retrieval"]:
        lines.append(f"{row['method']:<8}  " + "".join(f"{cell(row[h]):<22}  " for h in hits)
                     + f"{cell(row['MRR']):<22}  {cell(row['answer in top 5']):<22}  {len(row['misses'])}")
    lines += ["", f"{'passage the span rule reads':<30}  {'exact match':<22}  {'token F1':<22}"]
    for row in result["answers"]:
        lines.append(f"{row['passage read']:<30}  {cell(row['EM']):<22}  {cell(row['F1']):<22}")
    n, para = result["questions"], result["paraphrased"]
    lines += ["", f"hit@5 of the {para} questions sharing under half their words with the answering sentence, "
              f"and of the other {n - para}:"]
    for row in result["retrieval"]:
        lines.append(f"{row['method']:<8}  {row['hit@5 paraphrased']:.3f}  {row['hit@5 worded alike']:.3f}")
    lines.append("")
    for row in result["retrieval"]:
        lines.append(f"{row['method']} misses: {', '.join(row['misses']) or 'none'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Retrieval and answering on the course's wiki questions.")
    parser.add_argument("--window", type=int, default=PASSAGE_WINDOW,
                        help=f"sentences per passage (default {PASSAGE_WINDOW}; 1: every sentence)")
    parser.add_argument("--depth", type=int, default=DEPTH,
                        help=f"ranks read per question (default {DEPTH}: MRR@{DEPTH}; 15 or more adds hit@15)")
    parser.add_argument("--write-vectors", action="store_true",
                        help=f"encode the passages and write {VECTORS_FILE.name} (only for --window "
                             f"{PASSAGE_WINDOW}: the file the chapter and DenseRetriever read)")
    args = parser.parse_args(argv)
    if args.write_vectors:
        if args.window != PASSAGE_WINDOW:
            parser.error(f"the committed vectors are for windows of {PASSAGE_WINDOW} sentences (PASSAGE_WINDOW)")
        notes = write_passage_vectors(VECTORS_FILE, args.window)
        print(f"wrote {VECTORS_FILE} ({VECTORS_FILE.stat().st_size:,} bytes)")
        print(json.dumps({k: {m: v for m, v in row.items() if m != "first answering rank"}
                          if isinstance(row, dict) else row for k, row in notes.items()}, indent=1))
        ranks = [notes[f"dense with {name} vectors"]["first answering rank"] for name in ("float32", "int8")]
        print(f"questions whose first answering passage moves: {sum(a != b for a, b in zip(*ranks, strict=True))}")
        return
    result = evaluate_retrieval(window=args.window, depth=args.depth)
    print(format_report(result))
    print(f"\n{result['seconds']:.1f} s, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
