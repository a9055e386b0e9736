"""lmlib.retrieval: the questions against the corpus, BM25 against its formula and rank_bm25, reciprocal rank
fusion against its formula, the dense scores against MiniLM's sentence embeddings (themselves equal to
sentence-transformers', tests/test_pretraining.py), and exact match and token F1 against the official SQuAD v1.1
evaluation script."""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmlib import retrieval as R
from lmlib.tokenize import split_sentences

# --- the questions ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def questions():
    return R.load_wiki_qa()


def test_every_question_is_checked_against_the_corpus(questions):
    assert len(questions) >= 60
    assert len({q.id for q in questions}) == len(questions)
    articles = R.wiki_articles()
    for q in questions:  # what load_wiki_qa checked, checked again here from the other side
        assert q.question.endswith("?") and q.answer in q.sentences[0]
        assert set(q.sentences) <= set(split_sentences(articles[q.title]))
    assert len({q.title for q in questions}) >= 8  # spread over the test articles, not one


def test_the_titles_are_the_articles_of_the_corpus():
    articles = R.wiki_articles()
    assert len(articles) == 106 and articles["Aardwolf"].startswith("The aardwolf (Proteles cristata)")


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.update(answer="hyaenas"), r"aardwolf-04.*does not occur verbatim in the sentence"),
    (lambda r: r.update(sentences=["The aardwolf is a hyena."]), r"aardwolf-04.*is not one of the sentences"),
    (lambda r: r.update(title="Aardwolves"), r"aardwolf-04.*no wiki article is titled 'Aardwolves'"),
    (lambda r: r.update(id="aardwolf-03"), r"aardwolf-03.*used twice"),
    (lambda r: r.pop("answer"), r"aardwolf-04.*exactly the fields"),
    (lambda r: r.update(answer="the"), r"aardwolf-04.*empty once normalised"),
    (lambda r: r.update(sentences=[]), r"aardwolf-04.*non-empty list"),
])
def test_a_bad_record_is_refused_by_name(tmp_path, change, message):
    records = json.loads(R.QA_FILE.read_text(encoding="utf-8"))
    bad = next(r for r in records if r["id"] == "aardwolf-04")
    change(bad)
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        R.load_wiki_qa(path)


def test_a_file_that_is_not_a_list_of_questions_is_refused(tmp_path):
    (tmp_path / "qa.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a readable JSON list"):
        R.load_wiki_qa(tmp_path / "qa.json")


def test_passages_cover_each_article_once_in_order():
    articles = {"A": "One two. Three four. Five six. Seven.", "B": "Only one here."}
    passages = R.make_passages(articles, window=3)
    assert [(p.title, p.start, p.sentences) for p in passages] == [
        ("A", 0, ("One two.", "Three four.", "Five six.")), ("A", 3, ("Seven.",)), ("B", 0, ("Only one here.",))]
    assert [p.text for p in R.make_passages(articles, window=1)] == [*split_sentences(articles["A"]), "Only one here."]
    with pytest.raises(ValueError, match="at least 1"):
        R.make_passages(articles, window=0)


def test_a_question_is_answered_by_every_passage_that_holds_its_sentence(questions):
    passages = R.make_passages(R.wiki_articles(), window=3)
    relevant = R.relevant_passages(questions, passages)
    for q, found in zip(questions, relevant, strict=True):
        assert found == {i for i, p in enumerate(passages) if set(p.sentences) & set(q.sentences)}
    # a refrain repeated word for word is found wherever it stands
    refrain = R.WikiQuestion("x", "America the Beautiful", "?", "sea", ("From sea to shining sea!",))
    assert len(R.relevant_passages([refrain], R.make_passages(R.wiki_articles(), window=1))[0]) == 3


# --- BM25 -------------------------------------------------------------------------------------------------------

TOY = ["the cat sat on the mat", "the dog sat", "a cat and a dog and a cat", "birds fly over the mat",
       "the the the end"]


def bm25_by_formula(corpus: list[list[str]], query: list[str], k1=1.5, b=0.75, eps=0.25) -> list[float]:
    """Okapi BM25 written from the formula (idf floored at eps * mean idf where it is negative, as rank_bm25)."""
    n, avgdl = len(corpus), sum(map(len, corpus)) / len(corpus)
    df = Counter(w for doc in corpus for w in set(doc))
    idf = {w: math.log((n - m + 0.5) / (m + 0.5)) for w, m in df.items()}
    floor = eps * sum(idf.values()) / len(idf)
    idf = {w: v if v >= 0 else floor for w, v in idf.items()}
    return [sum(idf.get(w, 0.0) * doc.count(w) * (k1 + 1) / (doc.count(w) + k1 * (1 - b + b * len(doc) / avgdl))
                for w in query) for doc in corpus]


@pytest.mark.parametrize("query", ["cat", "the mat", "dog dog cat", "the", "unicorn mat", "Cat, sat?"])
def test_bm25_equals_its_formula_and_rank_bm25(query):
    passages = [R.Passage("toy", i, (text,)) for i, text in enumerate(TOY)]
    retriever = R.BM25Retriever(passages)
    expected = bm25_by_formula([R.bm25_tokens(t) for t in TOY], R.bm25_tokens(query))
    np.testing.assert_allclose(retriever.scores(query), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(retriever.index.get_scores(R.bm25_tokens(query)), expected, rtol=1e-12, atol=1e-12)


def test_bm25_on_the_corpus_equals_rank_bm25s_own_scores(questions):
    titles = {q.title for q in questions}
    passages = R.make_passages({t: a for t, a in R.wiki_articles().items() if t in titles}, window=1)
    retriever = R.BM25Retriever(passages)
    texts = [q.question for q in questions[::10]]
    ours = retriever.scores_many(texts)
    theirs = np.stack([retriever.index.get_scores(R.bm25_tokens(t)) for t in texts])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_bm25_tokens_are_lower_cased_words_without_punctuation_or_possessive():
    assert R.bm25_tokens("Who wrote 'A Modest Proposal' in 1729?") == ["who", "wrote", "a", "modest", "proposal",
                                                                        "in", "1729"]
    assert R.bm25_tokens("Agassi's wife, Angola’s capital, the boss's") == ["agassi", "wife", "angola", "capital",
                                                                            "the", "boss"]


# --- reciprocal rank fusion -------------------------------------------------------------------------------------


def test_reciprocal_rank_fusion_equals_its_formula():
    rankings = [[2, 0, 4, 1], [0, 3, 2], [4]]
    k = 60
    expected = [sum(1 / (k + r.index(d) + 1) for r in rankings if d in r) for d in range(6)]
    np.testing.assert_allclose(R.reciprocal_rank_fusion(rankings, 6, k), expected, rtol=1e-15)
    # 0: 1/62 + 1/61; 2: 1/61 + 1/63; 4: 1/63 + 1/61 -> 0 first, then 2 and 4 tied (kept in id order)
    assert R.top_indices(R.reciprocal_rank_fusion(rankings, 6, k)) == [0, 2, 4, 3, 1, 5]
    with pytest.raises(ValueError, match="distinct ids"):
        R.reciprocal_rank_fusion([[1, 1]], 6)


def test_fusing_scores_ranks_each_method_in_full():
    bm25 = np.array([[3.0, 1.0, 2.0, 0.0]])
    dense = np.array([[0.1, 0.9, 0.5, 0.2]])
    fused = R.fuse(bm25, dense, k=1)  # ranks: bm25 0,2,1,3 ; dense 1,2,3,0
    expected = [1 / 2 + 1 / 5, 1 / 4 + 1 / 2, 1 / 3 + 1 / 3, 1 / 5 + 1 / 4]
    np.testing.assert_allclose(fused[0], expected, rtol=1e-15)


# --- dense vectors ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    from lmlib.pretraining import load_minilm

    return load_minilm()


def test_dense_scores_are_the_cosines_of_minilm_sentence_embeddings(minilm, tmp_path, monkeypatch):
    # the embeddings themselves equal sentence-transformers' (tests/test_pretraining.py); here: the passages
    # encoded shortest first and cached, and the questions, give the cosines of the embeddings taken one by one
    from lmlib.pretraining import sentence_embeddings

    monkeypatch.setenv("LMLIB_CACHE", str(tmp_path))
    texts = ["The aardwolf feeds primarily on termites.", "Luanda is the capital of Angola.",
             "Huxley wrote Brave New World, a dystopian novel set in London.", "Short."]
    dense = R.DenseRetriever([R.Passage("toy", i, (t,)) for i, t in enumerate(texts)], encoder=minilm)
    question = "What do aardwolves eat?"
    one_by_one = torch.cat([sentence_embeddings([t], *minilm) for t in [question, *texts]])
    expected = torch.nn.functional.cosine_similarity(one_by_one[:1], one_by_one[1:])
    np.testing.assert_allclose(dense.scores(question), expected.numpy(), atol=1e-5)
    assert R.top_indices(dense.scores(question), 1) == [0]
    assert dense.scores_many([question, "Where is Luanda?"]).argmax(axis=1).tolist() == [0, 1]


def test_embeddings_are_cached_by_content(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv("LMLIB_CACHE", str(tmp_path))
    texts = ["a short one", "a somewhat longer sentence, to be padded against", "mid length text"]
    first = R.embed(texts, minilm)
    assert len(list(tmp_path.glob("minilm-*.npy"))) == 1
    again = R.embed(texts, encoder=("no tokenizer", "no model"))  # read back: the model is never called
    assert torch.equal(first, again)
    from lmlib.pretraining import sentence_embeddings

    unsorted = sentence_embeddings(texts, *minilm)  # encoded shortest first or not: the same up to round-off
    torch.testing.assert_close(first, unsorted, atol=1e-5, rtol=0)
    R.embed(texts[:2], minilm)
    assert len(list(tmp_path.glob("minilm-*.npy"))) == 2  # other texts, another file


# --- the committed passage vectors ---------------------------------------------------------------------------


def test_the_committed_vectors_are_those_of_todays_passages_and_weights():
    problem = R.vectors_file_problem()
    assert not problem, problem  # names the command that rewrites the file
    stored = R.read_passage_vectors()
    n = len(R.make_passages(R.wiki_articles(), R.PASSAGE_WINDOW))
    assert stored["window"] == R.PASSAGE_WINDOW and stored["codes"].shape == (n, 384)
    assert stored["codes"].dtype == np.int8 and stored["scales"].dtype == np.float16
    assert R.VECTORS_FILE.stat().st_size <= 5 * 2**20  # a committed result is 5 MB at most (DESIGN.md)


def _rewrite(path, source, **changes):
    stored = R.read_passage_vectors(source)
    fields = {k: np.str_(json.dumps(v)) if k == "notes" else v for k, v in {**stored, **changes}.items()}
    np.savez(path, **fields)
    return path


def test_a_stale_or_missing_vectors_file_is_refused_with_the_command_that_rewrites_it(tmp_path):
    other_texts = _rewrite(tmp_path / "texts.npz", R.VECTORS_FILE, passages_sha256=np.str_("0" * 64))
    assert re.search(r"other texts than today's 8,715 wiki passages.*--write-vectors",
                     R.vectors_file_problem(other_texts))
    other_weights = _rewrite(tmp_path / "weights.npz", R.VECTORS_FILE, minilm_sha256=np.str_("f" * 64))
    assert re.search(r"MiniLM weights ffffffffffff.*--write-vectors", R.vectors_file_problem(other_weights))
    assert re.search(r"missing; write it with python -m lmlib.retrieval --write-vectors",
                     R.vectors_file_problem(tmp_path / "none.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable vectors file.*--write-vectors"):
        R.read_passage_vectors(tmp_path / "junk.npz")


def test_the_committed_vectors_agree_with_fresh_encodings(minilm):
    # 19 passages drawn at random and the longest (cut at MiniLM's 256 tokens), encoded afresh
    from lmlib.pretraining import sentence_embeddings

    passages = R.make_passages(R.wiki_articles())
    dense = R.DenseRetriever(passages, encoder=("no tokenizer", "no model"))  # read from the file: never encodes
    assert dense.vectors_file == R.VECTORS_FILE
    longest = max(range(len(passages)), key=lambda i: len(passages[i].text))
    sample = sorted({*np.random.default_rng(0).choice(len(passages), 19, replace=False).tolist(), longest})
    assert len(sample) == 20
    fresh = sentence_embeddings([passages[i].text for i in sample], *minilm)
    assert (dense.vectors[sample] * fresh).sum(dim=1).min() >= 0.999  # cosines: all are unit vectors
    torch.testing.assert_close(dense.vectors.norm(dim=1), torch.ones(len(passages)), atol=1e-6, rtol=0)
    stored = R.read_passage_vectors()  # the scales keep each vector's length too, before it is set to 1
    lengths = np.linalg.norm(R.dequantize_rows(stored["codes"], stored["scales"]), axis=1)
    assert np.abs(lengths - 1).max() < 3e-3  # quantisation noise, about 5e-4 per vector (one std)


def test_quantize_rows_keeps_every_component_within_half_a_step():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v[7] = 0  # a zero row stays zero
    codes, scales = R.quantize_rows(v)
    assert codes.dtype == np.int8 and scales.dtype == np.float16 and np.abs(codes).max() == 127
    step = scales.astype(np.float32)[:, None]
    assert np.all(np.abs(R.dequantize_rows(codes, scales) - v) <= step / 2 * (1 + 1e-5))
    assert not codes[7].any() and scales[7] == 0
    for bad in (v[0], v * np.nan, v * 1e-4, v * 1e8):
        with pytest.raises(ValueError, match="quantize_rows|float16"):
            R.quantize_rows(bad)


def test_a_vectors_file_is_read_for_its_own_texts_only(tmp_path, monkeypatch, minilm):
    from lmlib.pretraining import sentence_embeddings

    monkeypatch.setenv("LMLIB_CACHE", str(tmp_path))
    texts = ["The aardwolf feeds primarily on termites.", "Luanda is the capital of Angola.", "Short."]
    passages = [R.Passage("toy", i, (t,)) for i, t in enumerate(texts)]
    vectors = sentence_embeddings(texts, *minilm)
    path = R.save_passage_vectors(tmp_path / "toy.npz", texts, vectors.numpy(), window=1, notes={"toy": True})
    assert R.read_passage_vectors(path)["notes"] == {"toy": True}
    dense = R.DenseRetriever(passages, encoder=("no tokenizer", "no model"), vectors_file=path)
    assert dense.vectors_file == path and (dense.vectors * vectors).sum(dim=1).min() >= 0.999
    # as many vectors of other texts: a stale file, said so, and the passages are encoded instead
    stale = R.save_passage_vectors(tmp_path / "stale.npz", [t + "!" for t in texts], vectors.numpy(), window=1)
    with pytest.warns(UserWarning, match="other texts.*--write-vectors"):
        dense = R.DenseRetriever(passages, encoder=minilm, vectors_file=stale)
    assert dense.vectors_file is None
    torch.testing.assert_close(dense.vectors, vectors, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="3 texts but 2 vectors"):
        R.save_passage_vectors(tmp_path / "bad.npz", texts, vectors[:2].numpy(), window=1)


def test_the_cli_writes_vectors_for_windows_of_three_only():
    with pytest.raises(SystemExit):
        R.main(["--write-vectors", "--window", "1"])


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """evaluate_retrieval from an empty cache, as CI runs the chapter."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMLIB_CACHE", str(cache))
        yield R.evaluate_retrieval(n_resamples=20), cache


def test_evaluate_retrieval_reads_the_committed_vectors_and_encodes_only_the_questions(evaluation, minilm):
    from lmlib.pretraining import sentence_embeddings

    result, cache = evaluation
    assert result["vectors"] == R.VECTORS_FILE.name
    encoded = [np.load(f).shape for f in cache.glob("minilm-*.npy")]
    assert encoded == [(result["questions"], 384)]
    # the dense ranks it reports, recomputed by hand from the file: codes times scales, set to length 1, cosines
    with np.load(R.VECTORS_FILE) as f:
        stored = f["codes"].astype(np.float64) * f["scales"].astype(np.float64)[:, None]
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    questions = R.load_wiki_qa()
    asked = sentence_embeddings([q.question for q in questions], *minilm).double().numpy()
    relevant = R.relevant_passages(questions, R.make_passages(R.wiki_articles()))
    ranks = [next((n for n, i in enumerate(np.argsort(-row)[: R.DEPTH], 1) if i in rel), None)
             for row, rel in zip(asked @ stored.T, relevant, strict=True)]
    assert [row["dense rank"] for row in result["per_question"]] == ranks
    dense = next(row for row in result["retrieval"] if row["method"] == "dense")
    assert dense["hit@5"].estimate == np.mean([r is not None and r <= 5 for r in ranks])
    assert dense["MRR"].estimate == pytest.approx(np.mean([1 / r if r else 0 for r in ranks]), abs=1e-12)


def test_hit_at_15_is_reported_where_the_depth_reaches_it(evaluation):
    result, _ = evaluation
    assert "hit@15" not in result["retrieval"][0] and "MRR@10" in R.format_report(result)
    deeper = R.evaluate_retrieval(depth=15, n_resamples=10)
    for shallow, deep in zip(result["retrieval"], deeper["retrieval"], strict=True):
        assert deep["hit@5"].estimate == shallow["hit@5"].estimate <= deep["hit@15"].estimate
    assert "hit@15" in R.format_report(deeper) and "MRR@15" in R.format_report(deeper)
    with pytest.raises(ValueError, match="at least 5 for hit@5"):
        R.evaluate_retrieval(depth=3)


def test_no_reported_rank_moves_with_the_round_off_of_another_cpu(evaluation, minilm):
    # Two CPUs' float kernels give dense scores up to about 1e-6 apart (6.6e-7 between MKL's native and
    # MKL_CBWR=COMPATIBLE kernels here). Noise ten times that moves no rank reported, nor the order of the top 5.
    result, _ = evaluation
    questions = R.load_wiki_qa()
    passages = R.make_passages(R.wiki_articles())
    relevant = R.relevant_passages(questions, passages)
    texts = [q.question for q in questions]
    bm25 = R.BM25Retriever(passages).scores_many(texts)
    dense = R.DenseRetriever(passages, encoder=minilm).scores_many(texts, cache=False)

    def reported(dense_scores):
        out = []
        for scores in (dense_scores, R.fuse(bm25, dense_scores)):
            for row, rel in zip(scores, relevant, strict=True):
                top = R.top_indices(row, R.DEPTH)
                out.append((next((n for n, i in enumerate(top, 1) if i in rel), None), top[:5]))
        return out

    unmoved = reported(dense)
    assert [r[0] for r in unmoved] == [row[f"{m} rank"] for m in ("dense", "hybrid") for row in result["per_question"]]
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert reported(dense + rng.uniform(-1e-5, 1e-5, dense.shape).astype(np.float32)) == unmoved


# --- the answer: SQuAD v1.1's metrics ----------------------------------------------------------------------------
# normalize_answer and f1_score as the official SQuAD v1.1 evaluation script (evaluate-v1.1.py) publishes them


def squad_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_f1_score(prediction, ground_truth):
    prediction_tokens = squad_normalize_answer(prediction).split()
    ground_truth_tokens = squad_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def squad_exact_match_score(prediction, ground_truth):
    return squad_normalize_answer(prediction) == squad_normalize_answer(ground_truth)


CASES = [("The Dutch", "the Dutch"), ("Dutch.", "the Dutch"), ("between 89 and 92 days", "89 and 92 days"),
         ("", "Luanda"), ("", ""), ("an apple a day", "a day"), ("Anthem", "an them"), ("U.S.A", "USA"),
         ("Steffi Graf", "Graf Steffi"), ("cat cat cat", "cat"), ("  Luanda\t", "luanda"), ("the", "a"),
         ("Goran Ivanišević", "goran ivanišević"), ("$60 million", "60 million"), ("250,000", "250000")]


@pytest.mark.parametrize(("prediction", "gold"), CASES)
def test_exact_match_and_f1_equal_the_squad_script(prediction, gold):
    assert R.normalize_answer(prediction) == squad_normalize_answer(prediction)
    assert R.exact_match(prediction, gold) == float(squad_exact_match_score(prediction, gold))
    assert R.token_f1(prediction, gold) == squad_f1_score(prediction, gold)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abnteh .,!'-A THE an")), max_size=24),
       st.text(alphabet=st.sampled_from(list("abnteh .,!'-A THE an")), max_size=24))
def test_exact_match_and_f1_equal_the_squad_script_on_any_text(prediction, gold):
    assert R.normalize_answer(prediction) == squad_normalize_answer(prediction)
    assert R.exact_match(prediction, gold) == float(squad_exact_match_score(prediction, gold))
    assert R.token_f1(prediction, gold) == squad_f1_score(prediction, gold)


# --- the span rule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("question", "kind"), [
    ("How many termites can it eat?", "number"), ("When did Angola join OPEC?", "date"),
    ("In what year did Brave New World come out?", "date"), ("Who founded Luanda?", "name"),
    ("Where was Ward coming back from when the tune came to him?", "name"),  # the first question word decides
    ("How old was Agassi when he turned professional?", "number"), ("Name the capital.", "name")])
def test_the_question_word_decides_the_kind_of_answer(question, kind):
    assert R.answer_kind(question) == kind


@pytest.mark.parametrize(("question", "passage", "answer"), [
    ("How many termites can one aardwolf eat in a night?",
     "An aardwolf may consume up to 250,000 termites per night using its sticky, long tongue.", "250,000"),
    ("On what date was Andre Agassi born?",
     "Andre Kirk Agassi (; born April 29, 1970) is an American retired professional tennis player.",
     "April 29, 1970"),
    ("Whom did Agassi beat in the 1992 Wimbledon final?", "In 1992, he defeated Goran Ivanišević in a five-set final.",
     "Goran Ivanišević"),
    ("Who made Fountain, an early artwork from a found object?",
     "In conceptual art, Marcel Duchamp's \"Fountain\" is among the first examples of pieces.", "Marcel Duchamp"),
    ("How long is an aardwolf pregnant?", "Gestation lasts between 89 and 92 days, producing two to five cubs.",
     "89 and 92 days"),
    ("What insects does the aardwolf mostly eat?", "Its diet consists mainly of termites and insect larvae.", ""),
])
def test_the_span_rule_picks_a_span_of_the_asked_kind_near_the_questions_words(question, passage, answer):
    assert R.extract_answer(question, passage) == answer


def test_the_span_rule_never_answers_with_the_questions_own_words():
    assert R.extract_answer("Who wrote A Modest Proposal?", "A Modest Proposal was written by Jonathan Swift.") \
        == "Jonathan Swift"
    assert R.extract_answer("Who is Jonathan Swift?", "Jonathan Swift wrote it.") == ""


def test_lexical_overlap_is_the_share_of_the_questions_content_words_in_the_sentence():
    q = R.WikiQuestion("x", "Aardwolf", "Which zoo kept the oldest aardwolf?", "Frankfurt Zoo",
                       ("Frankfurt Zoo in Germany was home to the oldest recorded aardwolf in captivity.",))
    assert R.lexical_overlap(q) == 3 / 4  # zoo, kept, oldest, aardwolf: the sentence lacks "kept"
    two = R.WikiQuestion("x", "Aardwolf", "Which zoo kept the oldest aardwolf?", "Zoo", ("The zoo kept it.", "Zoo."))
    assert R.lexical_overlap(two) == 2 / 4  # the best single sentence, not their union
    # "is" builds the question and "aardwolf's" is "aardwolf": conservation, status, aardwolf
    status = R.WikiQuestion("x", "Aardwolf", "What is the aardwolf's conservation status?", "least concern",
                            ("Because of these factors, the IUCN has rated the aardwolf as least concern.",))
    assert R.lexical_overlap(status) == 1 / 3
    assert R.lexical_overlap(status, ignore=R.FUNCTION_WORDS) == 1 / 4  # "is" counted, and not in the sentence


# --- the per-question results, analysed -------------------------------------------------------------------------


def test_question_scores_and_compare_methods():
    from lmlib import metrics

    ranks = {"x": [1, 3, None, 10, 2, 1], "y": [2, 1, 4, None, None, 1]}
    rows = [{f"{m} rank": ranks[m][j] for m in ranks} for j in range(6)]
    assert R.question_scores(rows, "x", "hit@1").tolist() == [1, 0, 0, 0, 0, 1]
    assert R.question_scores(rows, "x", "hit@5").tolist() == [1, 1, 0, 0, 1, 1]
    assert R.question_scores(rows, "x", "MRR@10").tolist() == pytest.approx([1, 1 / 3, 0, 0.1, 0.5, 1])
    assert R.question_scores(rows, "x", "MRR@5").tolist() == pytest.approx([1, 1 / 3, 0, 0, 0.5, 1])
    with pytest.raises(ValueError, match="'hit@k' or 'MRR@k'"):
        R.question_scores(rows, "x", "recall")
    comparisons = [("x", "y", "hit@1"), ("y", "x", "MRR@10")]
    got = R.compare_methods(rows, comparisons, n_resamples=500)
    # the reference: metrics.paired_bootstrap and holm_adjusted on the score columns written out by hand
    x1, y1 = [1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 1]
    xm, ym = [1, 1 / 3, 0, 0.1, 0.5, 1], [0.5, 1, 0.25, 0, 0, 1]
    want = [metrics.paired_bootstrap(y1, x1, np.mean, n_resamples=500, seed=0, two_sided=True),
            metrics.paired_bootstrap(xm, ym, np.mean, n_resamples=500, seed=0, two_sided=True)]
    holm = metrics.holm_adjusted([w.p_value for w in want])
    for row, w, h in zip(got, want, holm, strict=True):
        assert (row["difference"], row["low"], row["high"], row["p"], row["Holm"]) == pytest.approx(
            (w.difference, w.low, w.high, w.p_value, h))
    masked = R.compare_methods(rows, comparisons[:1], mask=[True] * 3 + [False] * 3, n_resamples=500)[0]
    assert masked["difference"] == pytest.approx(np.mean(x1[:3]) - np.mean(y1[:3]))
    with pytest.raises(ValueError, match="one True/False per question"):
        R.compare_methods(rows, comparisons, mask=[True])


def test_overlap_groups_and_answer_examples(questions):
    groups = R.overlap_groups(questions)
    (para, alike), masks = list(groups), list(groups.values())
    overlap = np.array([R.lexical_overlap(q) for q in questions])
    assert (masks[0] == (overlap < 0.5)).all() and (masks[1] == ~masks[0]).all()
    assert para == f"paraphrased ({(overlap < 0.5).sum()})" and alike == f"worded alike ({(overlap >= 0.5).sum()})"
    q = [R.WikiQuestion(f"q{j}", "T", f"question {j}?", answer, (f"Sentence {j} says {answer}.",))
         for j, answer in enumerate(["Paris", "Rome", "Oslo", "Bern"])]
    passages = [R.Passage("T", j, (f"Sentence {j} says {a.answer}.",)) for j, a in enumerate(q)]
    passages.append(R.Passage("U", 0, ("Oslo is far north.",)))
    # q0: answered on top, read right; q1: answered on top, read wrong; q2: the answer only in passage 4; q3: neither
    rankings, answers = [[0, 1], [1, 0], [4, 0], [0, 1]], ["Paris", "Milan", "", ""]
    assert R.answer_examples(q, passages, rankings, answers) == {
        "right": 0, "wrong": 1, "elsewhere": 2, "elsewhere count": 1}
    with pytest.raises(ValueError, match="one ranking and one answer per question"):
        R.answer_examples(q, passages, rankings[:3], answers)
