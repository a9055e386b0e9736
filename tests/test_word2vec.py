"""lmlib.word2vec: each piece against gensim or a plain loop, the gradients against autograd, and the trained
vectors against gensim's on the course corpus (WordSim-353)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmlib.course.recipes import lowercase_word_sentences
from lmlib.data import eval_set_path, load_segmented
from lmlib.word2vec import (
    PairedComparison,
    Word2Vec,
    build_vocab,
    cbow_step,
    compare_on_word_pairs,
    cooccurrence_counts,
    draw_negatives,
    encode_corpus,
    negative_sampling_table,
    noise_table,
    ppmi_matrix,
    ppmi_svd_vectors,
    sgns_gradients,
    sgns_loss,
    skipgram_pairs,
    skipgram_step,
    subsample_keep_prob,
    weat,
    window_positions,
    word_association,
)

SENTENCES = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"], ["a", "cat", "and", "a", "dog"]] * 20


def gensim_vocab(sentences, sample: float):
    from gensim.models import Word2Vec as GensimWord2Vec

    model = GensimWord2Vec(vector_size=10, min_count=1, sample=sample)
    model.build_vocab(sentences)
    return model


# --- the pieces ----------------------------------------------------------------------------------

def test_vocab_is_by_descending_count_and_drops_rare_words():
    words, counts = build_vocab([["b", "a", "c", "a"], ["b", "a", "d"]], min_count=2)
    assert words == ["a", "b"] and counts.tolist() == [3, 2]


@pytest.mark.parametrize("sample", [1e-2, 1e-3, 0.0])
def test_subsampling_keeps_what_gensim_keeps(sample):
    model = gensim_vocab(SENTENCES, sample)
    words, counts = build_vocab(SENTENCES, 1)
    keep = subsample_keep_prob(counts, sample)
    for w, p in zip(words, keep.tolist(), strict=True):
        assert p == pytest.approx(model.wv.get_vecattr(w, "sample_int") / (2**32 - 1), abs=1e-6), w
    if sample:  # the formula, written out for the most frequent word
        f, T = counts[0].item(), counts.sum().item()
        assert keep[0].item() == pytest.approx((np.sqrt(f / (sample * T)) + 1) * sample * T / f, rel=1e-6)


def test_noise_distribution_is_gensims_cum_table():
    model = gensim_vocab(SENTENCES, 1e-3)
    words, counts = build_vocab(SENTENCES, 1)
    probs = negative_sampling_table(counts)
    assert probs.sum().item() == pytest.approx(1.0)
    assert probs.tolist() == pytest.approx((counts.double() ** 0.75 / (counts.double() ** 0.75).sum()).tolist())
    gensim_probs = np.diff(model.cum_table, prepend=0) / model.cum_table[-1]
    for w, p in zip(words, probs.tolist(), strict=True):
        assert p == pytest.approx(gensim_probs[model.wv.key_to_index[w]], abs=1e-6), w


def test_negatives_are_drawn_from_the_noise_distribution():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    table = noise_table(probs, size=1000)
    assert torch.bincount(table).tolist() == [500, 300, 150, 50]
    draws = draw_negatives(table, (200, 500), torch.Generator().manual_seed(0))
    assert draws.shape == (200, 500) and draws.dtype == torch.int64
    shares = torch.bincount(draws.flatten(), minlength=4) / draws.numel()
    assert shares.tolist() == pytest.approx(probs.tolist(), abs=0.005)  # 100,000 draws: 4+ standard errors


def test_window_shrinks_and_stops_at_sentence_boundaries():
    sentence_ids = torch.tensor([0, 0, 0, 0, 1, 1])
    where, valid = window_positions(sentence_ids, torch.tensor([1, 4]), torch.tensor([2, 1]), window=2)
    # offsets -2, -1, +1, +2; position 1 reaches 0..3 (window 2), position 4 only its own sentence at distance 1
    assert where.tolist() == [[0, 0, 2, 3], [2, 3, 5, 5]]
    assert valid.tolist() == [[False, True, True, True], [False, False, True, False]]


def test_skipgram_pairs_are_every_word_in_the_shrunk_window_in_text_order():
    gen = torch.Generator().manual_seed(0)
    sentence_ids = torch.tensor([0] * 7 + [1] * 5 + [2] * 1 + [3] * 9)
    ids = torch.randint(0, 50, (len(sentence_ids),), generator=gen)
    window = 3
    spans = window - torch.randint(0, window, (len(ids),), generator=gen)
    centers = torch.arange(2, 20)
    got = skipgram_pairs(ids, sentence_ids, centers, spans[centers], window)
    expected = [(int(ids[i]), int(ids[j])) for i in centers.tolist() for j in range(len(ids))
                if j != i and abs(j - i) <= spans[i] and sentence_ids[j] == sentence_ids[i]]
    assert list(zip(got[0].tolist(), got[1].tolist(), strict=True)) == expected


def test_sgns_gradients_match_autograd():
    gen = torch.Generator().manual_seed(0)
    u, v, neg = (torch.randn(shape, generator=gen, dtype=torch.float64) for shape in [(6, 4), (6, 4), (6, 3, 4)])
    mask = torch.rand(6, 3, generator=gen) > 0.2
    params = [t.clone().requires_grad_() for t in (u, v, neg)]
    sgns_loss(*params, negative_mask=mask).sum().backward()
    for by_hand, auto in zip(sgns_gradients(u, v, neg, mask), params, strict=True):
        torch.testing.assert_close(by_hand, auto.grad)
    scaled = sgns_gradients(u, v, neg, mask, scale=-0.1)
    for s, p in zip(scaled, params, strict=True):
        torch.testing.assert_close(s, -0.1 * p.grad)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_updates(syn0, syn1neg, inputs_of, targets, negatives, alpha):
    """word2vec.c's per-pair updates in float64 NumPy, each computed from the vectors before the batch and summed."""
    new0, new1 = syn0.copy(), syn1neg.copy()
    for p, (target, negs) in enumerate(zip(targets, negatives, strict=True)):
        rows = inputs_of[p]
        u = syn0[rows].mean(0)
        error_in = np.zeros_like(u)
        for word, label in [(target, 1.0)] + [(n, 0.0) for n in negs if n != target]:
            g = (label - sigmoid(u @ syn1neg[word])) * alpha
            error_in += g * syn1neg[word]
            new1[word] += g * u
        for r in rows:
            new0[r] += error_in
    return new0, new1


def test_skipgram_step_is_word2vec_c_update_summed_over_the_batch():
    gen = torch.Generator().manual_seed(1)
    syn0, syn1neg = torch.randn(12, 5, generator=gen), torch.randn(12, 5, generator=gen)
    inputs = torch.tensor([0, 0, 3, 4, 4, 7])  # repeated words: their updates add up
    targets = torch.tensor([1, 2, 0, 5, 5, 8])
    negatives = torch.tensor([[9, 10], [1, 11], [0, 2], [6, 5], [9, 9], [10, 3]])  # some equal their target
    expected = reference_updates(syn0.double().numpy(), syn1neg.double().numpy(), [[w] for w in inputs.tolist()],
                                 targets.tolist(), negatives.tolist(), 0.05)
    skipgram_step(syn0, syn1neg, inputs, targets, negatives, 0.05)
    np.testing.assert_allclose(syn0.numpy(), expected[0], atol=1e-6)
    np.testing.assert_allclose(syn1neg.numpy(), expected[1], atol=1e-6)


def test_cbow_step_gives_every_context_word_the_whole_update():
    gen = torch.Generator().manual_seed(2)
    syn0, syn1neg = torch.randn(12, 5, generator=gen), torch.randn(12, 5, generator=gen)
    contexts = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 1]])
    valid = torch.tensor([[True, True, False, True], [False, True, True, True]])
    centers, negatives = torch.tensor([0, 2]), torch.tensor([[8, 9, 2], [10, 11, 0]])
    inputs_of = [[w for w, ok in zip(row, ok_row, strict=True) if ok]
                 for row, ok_row in zip(contexts.tolist(), valid.tolist(), strict=True)]
    expected = reference_updates(syn0.double().numpy(), syn1neg.double().numpy(), inputs_of, centers.tolist(),
                                 negatives.tolist(), 0.05)
    cbow_step(syn0, syn1neg, contexts, valid, centers, negatives, 0.05)
    np.testing.assert_allclose(syn0.numpy(), expected[0], atol=1e-6)
    np.testing.assert_allclose(syn1neg.numpy(), expected[1], atol=1e-6)


# --- the fast path: compiled loops, pair after pair (lmlib.word2vec_numba) ----------------------------

@pytest.fixture
def one_numba_thread():
    numba = pytest.importorskip("numba")
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # blocks in order, no races: reproducible
    yield
    numba.set_num_threads(threads)


def test_fast_epoch_is_the_batched_step_applied_pair_after_pair(one_numba_thread):
    from lmlib import word2vec_numba as kernels

    gen = torch.Generator().manual_seed(3)
    V, d, K, window, block = 12, 6, 3, 3, 8
    sentence_ids = torch.tensor([0] * 9 + [1] * 1 + [2] * 14 + [3] * 6 + [4] * 10)  # [40]
    ids = torch.randint(0, V, (len(sentence_ids),), generator=gen)
    spans = window - torch.randint(0, window, (len(ids),), generator=gen)
    table = noise_table(negative_sampling_table(torch.arange(V, 0, -1)), size=1000)
    alphas = torch.tensor([0.05, 0.04, 0.03, 0.02, 0.01], dtype=torch.float64)  # one per block of 8 centres
    seeds = torch.randint(2**62, (5,), generator=gen)
    syn0, syn1neg = 0.5 * torch.randn(V, d, generator=gen), 0.5 * torch.randn(V, d, generator=gen)
    fast0, fast1 = syn0.clone(), syn1neg.clone()
    losses, pairs = kernels.skipgram_epoch(
        fast0.numpy(), fast1.numpy(), ids.numpy(), sentence_ids.numpy(), spans.numpy(), table.numpy(), K, block,
        alphas.numpy(), seeds.numpy(), 2)
    for b in range(5):  # the batched path's pieces: skipgram_pairs, skipgram_step on batches of one pair
        centers = torch.arange(b * block, (b + 1) * block)
        center_words, context_words = skipgram_pairs(ids, sentence_ids, centers, spans[centers], window)
        negatives = torch.from_numpy(kernels.noise_draws(table.numpy(), int(seeds[b]), K * len(center_words)))
        negatives = negatives.view(-1, K)  # [P, K] the draws of block b, K per pair in pair order
        assert pairs[b] == len(center_words) > 0
        loss = 0.0
        for p in range(len(center_words)):
            one = slice(p, p + 1)
            mask = negatives[one] != center_words[one, None]
            loss += float(sgns_loss(syn0[context_words[one]], syn1neg[center_words[one]],
                                    syn1neg[negatives[one]], mask).sum())
            skipgram_step(syn0, syn1neg, context_words[one], center_words[one], negatives[one], float(alphas[b]))
        if b % 2 == 0:
            assert losses[b] == pytest.approx(loss, rel=1e-5)
        else:
            assert np.isnan(losses[b])
    np.testing.assert_allclose(fast0.numpy(), syn0.numpy(), atol=1e-6)
    np.testing.assert_allclose(fast1.numpy(), syn1neg.numpy(), atol=1e-6)


def test_fast_noise_draws_follow_the_noise_distribution():
    from lmlib import word2vec_numba as kernels

    probs = negative_sampling_table(torch.tensor([60, 20, 10, 5, 1]))
    table = noise_table(probs)
    for seed in (1, 2**61 + 7):
        draws = kernels.noise_draws(table.numpy(), seed, 100_000)
        shares = np.bincount(draws, minlength=5) / len(draws)
        assert shares.tolist() == pytest.approx(probs.tolist(), abs=0.005)  # 100,000 draws: 4+ standard errors


# --- the model -----------------------------------------------------------------------------------

def small_fit(**kwargs) -> Word2Vec:
    settings = {"vector_size": 8, "window": 2, "min_count": 1, "sample": 0, "epochs": 3, "seed": 0,
                "batch_size": 16} | kwargs
    return Word2Vec(**settings).fit(SENTENCES, progress=False)


@pytest.mark.parametrize(("sg", "fast"), [(0, False), (1, False), (1, True)])
def test_fit_is_seeded_and_the_learning_rate_falls_linearly(sg, fast):
    a, b, c = small_fit(sg=sg, fast=fast), small_fit(sg=sg, fast=fast), small_fit(sg=sg, seed=1, fast=fast)
    assert torch.equal(a.vectors, b.vectors) and not torch.equal(a.vectors, c.vectors)
    alphas, words = a.history["alpha"], a.history["words"]
    assert alphas[0] == 0.025 and alphas == sorted(alphas, reverse=True)
    total = 3 * sum(len(s) for s in SENTENCES)
    assert alphas == pytest.approx([0.025 - (0.025 - 0.0001) * w / total for w in words])
    assert a.history["loss"][-1] < a.history["loss"][0]  # it learns
    assert len(a) == 8 and a.index_to_key[0] == "the" and a.counts[0] == 60


@pytest.mark.parametrize(("sg", "fast"), [(0, False), (1, False), (1, True)])
def test_batches_with_nothing_to_predict_are_skipped(sg, fast):
    sentences = [["a"], ["b"], ["a", "b", "c"], ["c"], ["a"]] * 3  # one-word sentences have no context
    model = Word2Vec(vector_size=4, window=2, min_count=1, sample=0, epochs=2, seed=0, batch_size=1, sg=sg,
                     fast=fast)
    model.fit(sentences, progress=False)
    assert all(np.isfinite(loss) for loss in model.history["loss"])


@pytest.mark.parametrize("fast", [False, True])
def test_workers_train_in_parallel_threads(fast):
    model = small_fit(sg=1, workers=2, epochs=5, fast=fast)
    assert torch.get_num_threads() >= 1 and model.history["loss"][-1] < model.history["loss"][0]


def test_look_ups_agree_with_gensim_keyed_vectors(tmp_path):
    model = small_fit(sg=1)
    kv = model.to_keyed_vectors()
    assert kv.index_to_key == model.index_to_key and kv.get_vecattr("cat", "count") == 40
    np.testing.assert_array_equal(kv["cat"], model["cat"].numpy())
    ours, theirs = model.most_similar("cat", topn=4), kv.most_similar("cat", topn=4)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], abs=1e-5)
    analogy = {"positive": ["cat", "dog"], "negative": ["mat"], "topn": 3}
    assert [w for w, _ in model.most_similar(**analogy)] == [w for w, _ in kv.most_similar(**analogy)]
    assert model.similarity("cat", "dog") == pytest.approx(float(kv.similarity("cat", "dog")), abs=1e-6)

    loaded = Word2Vec.load(model.save(tmp_path / "vectors.pt"))
    assert torch.equal(loaded.vectors, model.vectors) and loaded.index_to_key == model.index_to_key
    assert loaded.most_similar("cat", topn=4) == ours and loaded.config == model.config
    half = Word2Vec.load(model.save(tmp_path / "half.pt", half=True))
    torch.testing.assert_close(half.vectors, model.vectors, atol=1e-3, rtol=1e-3)


def test_chinese_words_from_peoples_daily():
    paragraphs = load_segmented("train")[:1500]
    model = Word2Vec(vector_size=20, min_count=5, sg=1, epochs=1, seed=0).fit(paragraphs, progress=False)
    assert "中国" in model and model.index_to_key[0] == "，"
    neighbours = model.most_similar("中国", topn=5)
    assert len(neighbours) == 5 and all(w in model for w, _ in neighbours)


# --- WEAT -----------------------------------------------------------------------------------------

def planted_vectors(seed: int, bias: float, n: int = 6, d: int = 20) -> dict[str, torch.Tensor]:
    """x_i and a_i share a direction, y_i and b_i another, weighted ``bias`` against noise of norm ~1."""
    gen = torch.Generator().manual_seed(seed)
    e1, e2 = torch.eye(d)[0], torch.eye(d)[1]
    vectors = {}
    for i in range(n):
        for name, direction in [("x", e1), ("a", e1), ("y", e2), ("b", e2)]:
            vectors[f"{name}{i}"] = bias * direction + torch.randn(d, generator=gen) / d**0.5
    return vectors


def names(prefix: str, n: int = 6) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_weat_statistic_and_effect_size_follow_the_formulas():
    vectors = planted_vectors(0, bias=0.3)
    X, Y, A, B = names("x", 6), names("y", 5), names("a", 4), names("b", 3)
    unit = {w: v.double().numpy() / np.linalg.norm(v.double().numpy()) for w, v in vectors.items()}
    s = {w: np.mean([unit[w] @ unit[a] for a in A]) - np.mean([unit[w] @ unit[b] for b in B]) for w in X + Y}
    result = weat(vectors, X, Y, A, B)
    assert word_association(vectors, X, A, B).tolist() == pytest.approx([s[x] for x in X])
    assert result.statistic == pytest.approx(sum(s[x] for x in X) - sum(s[y] for y in Y))
    values = [s[w] for w in X + Y]
    d = (np.mean([s[x] for x in X]) - np.mean([s[y] for y in Y])) / np.std(values, ddof=1)
    assert result.effect_size == pytest.approx(d)
    # exact: all C(11, 6) = 462 splits; the p-value counted by brute force
    from itertools import combinations
    splits = [sum(values[i] for i in c) - sum(values[i] for i in range(11) if i not in c)
              for c in combinations(range(11), 6)]
    assert result.exact and result.partitions == 462
    assert result.p_value == pytest.approx(np.mean([t >= result.statistic - 1e-12 for t in splits]))


def test_weat_finds_a_planted_association_and_its_mirror():
    vectors = planted_vectors(1, bias=1.0)
    X, Y, A, B = names("x"), names("y"), names("a"), names("b")
    found = weat(vectors, X, Y, A, B)
    assert found.effect_size > 1.5 and found.p_value < 0.01  # C(12, 6) = 924 splits: the smallest p is 1/924
    mirrored = weat(vectors, Y, X, A, B)
    assert mirrored.effect_size == pytest.approx(-found.effect_size) and mirrored.p_value > 0.99


def test_weat_on_random_vectors_is_calibrated():
    """No planted association: over 200 draws, p < 0.05 about 5 % of the time (10 of 200, sd 3.1)."""
    p_values, effects = [], []
    for seed in range(200):
        result = weat(planted_vectors(seed, bias=0.0), names("x"), names("y"), names("a"), names("b"))
        p_values.append(result.p_value)
        effects.append(result.effect_size)
    assert 2 <= sum(p < 0.05 for p in p_values) <= 20
    assert abs(np.mean(effects)) < 0.15 and 0.35 < np.mean(p_values) < 0.65


def test_weat_random_splits_estimate_the_exact_p_value():
    vectors = planted_vectors(2, bias=0.15)
    X, Y, A, B = names("x"), names("y"), names("a"), names("b")
    exact = weat(vectors, X, Y, A, B)
    sampled = weat(vectors, X, Y, A, B, permutations=500, seed=3)
    assert exact.exact and not sampled.exact and sampled.partitions == 500
    assert sampled.p_value == pytest.approx(exact.p_value, abs=0.05)  # binomial sd <= 0.023 at 500 draws
    assert 0.01 < exact.p_value < 0.99  # not a trivial case


def test_weat_takes_lmlib_and_gensim_vectors_and_names_missing_words():
    model = small_fit(sg=1)
    args = (["cat"], ["dog", "mat"], ["the"], ["a"])
    ours, theirs = weat(model, *args), weat(model.to_keyed_vectors(), *args)
    assert ours.effect_size == pytest.approx(theirs.effect_size, abs=1e-6) and ours.p_value == theirs.p_value
    with pytest.raises(KeyError, match="'zebra'"):
        weat(model, ["cat", "zebra"], ["dog"], ["the"], ["a"])
    with pytest.raises(ValueError, match="share words"):
        weat(model, ["cat", "dog"], ["dog"], ["the"], ["a"])
    with pytest.raises(ValueError, match="attributes_b is empty"):
        weat(model, ["cat"], ["dog"], ["the"], [])


# --- the count-based baseline: PPMI + truncated SVD, against a dense computation by hand ----------

def toy_corpus(seed: int = 0) -> list[list[str]]:
    """40 sentences of 1 to 12 words from a Zipf-like vocabulary of 40 words (the rarest below min_count)."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, 41) ** 1.2
    return [[f"w{i}" for i in rng.choice(40, size=rng.integers(1, 13), p=p / p.sum())] for _ in range(40)]


def dense_cooccurrences(sentences, words: list[str], window: int) -> np.ndarray:
    """#(w, c) by a plain loop over every pair of kept words at most ``window`` apart in a sentence."""
    index = {w: i for i, w in enumerate(words)}
    counts = np.zeros((len(words), len(words)))
    for sentence in sentences:
        kept = [index[w] for w in sentence if w in index]  # rare words leave the text before windows form
        for i, w in enumerate(kept):
            for j, c in enumerate(kept):
                if 0 < abs(i - j) <= window:
                    counts[w, c] += 1
    return counts


def dense_ppmi(counts: np.ndarray, alpha: float) -> np.ndarray:
    joint = counts / counts.sum()  # P(w, c)
    p_word = counts.sum(1) / counts.sum()
    p_context = counts.sum(0) ** alpha / (counts.sum(0) ** alpha).sum()
    with np.errstate(divide="ignore"):
        pmi = np.log(joint / np.outer(p_word, p_context))
    return np.where(counts > 0, np.maximum(pmi, 0), 0.0)


@pytest.mark.parametrize(("alpha", "p"), [(0.75, 0.5), (1.0, 1.0), (0.75, 0.0)])
def test_ppmi_svd_vectors_equal_a_dense_computation(alpha, p):
    sentences, window, dim = toy_corpus(), 2, 4
    words, vectors = ppmi_svd_vectors(sentences, window=window, dim=dim, min_count=3, context_power=alpha,
                                      eigenvalue_power=p)
    assert words == build_vocab(sentences, 3)[0]
    assert len(words) < len({w for s in sentences for w in s})  # the rarest words were dropped
    counts = dense_cooccurrences(sentences, words, window)
    assert (counts == counts.T).all()
    ppmi = dense_ppmi(counts, alpha)
    U, S, _ = np.linalg.svd(ppmi)
    assert (S[:dim] - S[1 : dim + 1]).min() > 1e-3  # distinct singular values: each vector is defined up to sign
    expected = U[:, :dim] * S[:dim] ** p
    assert vectors.shape == (len(words), dim) and vectors.dtype == np.float32
    signs = np.sign((vectors * expected).sum(0))  # an SVD's columns are defined up to sign
    np.testing.assert_allclose(vectors, expected * signs, rtol=0, atol=1e-5)
    largest = np.abs(vectors).argmax(0)
    assert (vectors[largest, np.arange(dim)] > 0).all()  # the sign convention that makes runs repeat
    np.testing.assert_array_equal(vectors, ppmi_svd_vectors(sentences, window=window, dim=dim, min_count=3,
                                                            context_power=alpha, eigenvalue_power=p)[1])


def test_cooccurrences_and_ppmi_pieces_match_the_loops():
    sentences, window = toy_corpus(1), 3
    words, _ = build_vocab(sentences, 2)
    stream, sentence_ids = encode_corpus(sentences, {w: i for i, w in enumerate(words)})
    counts = cooccurrence_counts(stream.numpy(), sentence_ids.numpy(), len(words), window)
    expected = dense_cooccurrences(sentences, words, window)
    np.testing.assert_array_equal(counts.toarray(), expected)
    for alpha in (0.75, 1.0):
        np.testing.assert_allclose(ppmi_matrix(counts, alpha).toarray(), dense_ppmi(expected, alpha), rtol=1e-12)


def test_ppmi_svd_refuses_bad_settings():
    with pytest.raises(ValueError, match="dim=50 must be below the vocabulary size"):
        ppmi_svd_vectors(toy_corpus(), window=2, dim=50, min_count=3)
    with pytest.raises(ValueError, match="window must be a positive integer"):
        ppmi_svd_vectors(toy_corpus(), window=0, dim=2)
    with pytest.raises(TypeError, match="got one string"):
        ppmi_svd_vectors("the cat sat", dim=2)


# --- bad input -----------------------------------------------------------------------------------

def test_unknown_word_names_the_word_and_min_count():
    model = small_fit(min_count=3)
    with pytest.raises(KeyError, match=r"'zebra'.*min_count=3"):
        model.most_similar("zebra")
    with pytest.raises(KeyError, match="'on'"):  # seen 20 times, but min_count=30 below
        Word2Vec(min_count=30, epochs=1, vector_size=4).fit(SENTENCES, progress=False).similarity("on", "the")
    with pytest.raises(RuntimeError, match="fit"):
        Word2Vec().most_similar("cat")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"vector_size": 0}, "vector_size must be a positive integer"),
    ({"window": -1}, "window must be a positive integer"),
    ({"negative": 0}, "negative sampling only"),
    ({"sg": 2}, "sg must be 1"),
    ({"sample": 1.5}, "sample must be in"),
    ({"min_alpha": 0.1}, "min_alpha <= alpha"),
    ({"fast": True, "sg": 0}, r"fast=True trains skip-gram only \(sg=1\)"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Word2Vec(**kwargs)


def test_bad_corpora_are_refused():
    with pytest.raises(ValueError, match="empty"):
        Word2Vec().fit([], progress=False)
    with pytest.raises(ValueError, match="empty"):
        Word2Vec().fit([[], []], progress=False)
    with pytest.raises(ValueError, match=r"min_count=100 removes every word.*'the', occurs 60 times"):
        Word2Vec(min_count=100).fit(SENTENCES, progress=False)
    with pytest.raises(TypeError, match="sentence 1 is a string"):
        Word2Vec().fit([["a", "b"], "the cat sat"], progress=False)
    with pytest.raises(TypeError, match="got one string"):
        Word2Vec().fit("the cat sat on the mat", progress=False)


# --- quality on the course corpus, against gensim ------------------------------------------------

# Both models: skip-gram, 50 dimensions, window 5, 5 negatives, min_count 5, sample 1e-3, 3 epochs,
# alpha 0.05 -> 0.0001 (gensim's 0.025 needs more epochs on a corpus this small), seed 0, on the news + wiki
# training splits (lower-cased words, 475k tokens); gensim with one worker thread, lmlib with its default
# batch_size (256). WordSim-353 pairs with a word outside the vocabulary (a third) are skipped by gensim's
# evaluate_word_pairs, the same pairs for both: the vocabularies are the same.
QUALITY = {"vector_size": 50, "window": 5, "negative": 5, "sg": 1, "min_count": 5, "sample": 1e-3, "epochs": 3,
           "alpha": 0.05, "min_alpha": 0.0001, "seed": 0}


def wordsim_spearman(kv) -> float:
    return float(kv.evaluate_word_pairs(eval_set_path("wordsim353"))[1][0])


@pytest.mark.parametrize("path", [{}, {"fast": True, "workers": 2}], ids=["batched", "fast-2-threads"])
def test_skipgram_vectors_are_as_good_as_gensims_on_wordsim353(path):
    from gensim.models import KeyedVectors
    from gensim.models import Word2Vec as GensimWord2Vec

    sentences = lowercase_word_sentences("news", "train") + lowercase_word_sentences("wiki", "train")
    ours = Word2Vec(**QUALITY, **path).fit(sentences, progress=False).to_keyed_vectors()
    theirs = GensimWord2Vec(sentences, workers=1, **QUALITY).wv
    assert set(ours.index_to_key) == set(theirs.index_to_key)
    rng = np.random.default_rng(0)
    random = KeyedVectors(50)
    random.add_vectors(ours.index_to_key, rng.standard_normal((len(ours), 50)).astype(np.float32))

    lmlib_rho, gensim_rho, random_rho = wordsim_spearman(ours), wordsim_spearman(theirs), wordsim_spearman(random)
    print(f"WordSim-353 Spearman: lmlib {lmlib_rho:.4f}, gensim {gensim_rho:.4f}, random vectors {random_rho:.4f}")
    assert abs(lmlib_rho - gensim_rho) < 0.05
    assert lmlib_rho > random_rho + 0.1


def _random_keyed_vectors(words, seed):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(8)
    kv.add_vectors(list(words), np.random.default_rng(seed).standard_normal((len(words), 8)).astype(np.float32))
    return kv


def test_compare_on_word_pairs_equals_gensims_spearman_difference(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    pairs = [(words[a], words[b], float(rng.uniform(0, 10))) for a, b in rng.integers(0, 40, (60, 2)) if a != b]
    pairs.append(("W3", "unknown", 5.0))  # case-insensitive look-up; a pair with an unknown word is left out
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs))
    a, b = _random_keyed_vectors(words, 1), _random_keyed_vectors(words, 2)
    gensim_a, gensim_b = (kv.evaluate_word_pairs(str(path))[1][0] for kv in (a, b))
    result = compare_on_word_pairs(a, b, pairs, resamples=300)
    assert result.pairs == len(pairs) - 1
    assert result.difference == pytest.approx(gensim_a - gensim_b, abs=1e-6)
    assert result.low < result.difference < result.high


def test_compare_on_word_pairs_of_a_set_with_itself_is_exactly_zero_and_checks_its_input():
    words = [f"w{i}" for i in range(10)]
    pairs = [(words[i], words[i + 1], float(i)) for i in range(9)]
    kv = _random_keyed_vectors(words, 0)
    assert compare_on_word_pairs(kv, kv, pairs, resamples=50) == PairedComparison(0.0, 0.0, 0.0, 9)
    with pytest.raises(ValueError, match="only 2 of the 3 pairs"):
        compare_on_word_pairs(kv, kv, [*pairs[:2], ("w0", "nope", 1.0)])


# --- a text as the mean of its word vectors ------------------------------------------------------

def test_average_vectors_is_the_mean_of_the_known_words_counting_repeats():
    from gensim.models import KeyedVectors

    from lmlib.word2vec import average_vectors

    kv = KeyedVectors(3)
    kv.add_vectors(["good", "bad", "film"], np.array([[1, 0, 0], [0, 2, 0], [0, 0, 4]], dtype=np.float32))
    texts = [["good", "film"], ["good", "good", "bad", "unseen"], ["unseen"], []]
    expected = np.array([[0.5, 0, 2], [2 / 3, 2 / 3, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(average_vectors(texts, kv), expected, rtol=0, atol=1e-7)
    model = Word2Vec(vector_size=5, min_count=1, epochs=1, seed=0).fit(SENTENCES, progress=False)  # lmlib's, too
    np.testing.assert_allclose(average_vectors([["cat", "dog"]], model)[0],
                               (model.vectors[model.key_to_index["cat"]] + model.vectors[model.key_to_index["dog"]])
                               .numpy() / 2, rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="lists of words"):
        average_vectors(["good film"], kv)
