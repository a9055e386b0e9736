"""lmlib.analysis: the Zipf and Heaps fits recover known exponents; activations, optimiser paths, PCA and the
next-token table are what their definitions say."""

import math

import numpy as np
import pytest

from lmlib import analysis


def _sam_model():
    from lmlib.ngram import NGramLM

    return NGramLM(2, "kneser_ney").fit([s.split() for s in ["I am Sam", "Sam I am", "I do not like ham"]])


@pytest.mark.parametrize("s", [0.8, 1.0, 1.3])
def test_zipf_exponent_recovers_the_exponent_of_exact_zipf_counts(s):
    ranks = np.arange(1, 20_001)
    freqs = np.round(1e7 / ranks**s).astype(np.int64)
    assert analysis.zipf_exponent(freqs) == pytest.approx(s, abs=0.01)


def test_rank_frequency_sorts_counts():
    assert analysis.rank_frequency("a b a c a b".split()).tolist() == [3, 2, 1]


def test_zipf_needs_enough_types():
    with pytest.raises(ValueError, match="need at least 12 distinct tokens"):
        analysis.zipf_exponent(np.array([5, 3, 1]))


def test_zipf_summary_shares():
    freqs = np.array([50] * 10 + [5] * 20 + [1] * 30)
    summary = analysis.zipf_summary(freqs, top=10)
    assert summary["seen once (% of vocabulary)"] == 50.0
    assert summary["top 10 words (% of text)"] == pytest.approx(100 * 500 / 630)


def test_vocabulary_growth_counts_distinct_tokens_so_far():
    n, sizes = analysis.vocabulary_growth("a b a c b d".split(), points=6)
    assert n.tolist() == [1, 2, 3, 4, 6]  # geomspace(1, 6, 6) rounded: 1, 1, 2, 3, 4, 6
    assert sizes.tolist() == [1, 2, 2, 3, 4]
    n, _ = analysis.vocabulary_growth(["x"] * 10_000, points=5)
    assert n.tolist() == [1, 10, 100, 1000, 10_000]  # log-spaced
    with pytest.raises(ValueError, match="no tokens"):
        analysis.vocabulary_growth([])


@pytest.mark.parametrize("beta", [0.5, 0.7])
def test_heaps_exponent_recovers_k_and_beta_of_exact_growth(beta):
    n = np.geomspace(1, 1e6, 30).round()
    k, fitted = analysis.heaps_exponent(n, 20 * n**beta)
    assert fitted == pytest.approx(beta, abs=1e-6) and k == pytest.approx(20, rel=1e-4)
    # a non-Heaps head (every token new) below min_tokens does not disturb the fit
    sizes = np.where(n < 1000, n, 20 * n**beta)
    assert analysis.heaps_exponent(n, sizes)[1] == pytest.approx(beta, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2 points"):
        analysis.heaps_exponent(n[:5], n[:5])


def test_activation_derivatives_from_autograd_match_the_formulas():
    z = np.linspace(-5, 5, 101)
    curves = analysis.activation_curves(z)
    sig, dsig = curves["sigmoid"]
    th, dth = curves["tanh"]
    relu, drelu = curves["ReLU"]
    assert np.allclose(dsig, sig * (1 - sig)) and np.allclose(dth, 1 - th**2)
    assert np.array_equal(relu, np.maximum(z, 0)) and np.array_equal(drelu[z != 0], (z[z != 0] > 0).astype(float))
    gelu, _ = curves["GELU"]
    assert np.allclose(gelu, z * 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2))))  # z Phi(z)


def test_optimizer_paths_follow_each_update_rule():
    import torch

    def loss(p):
        return 0.5 * (p[0] ** 2 + 4 * p[1] ** 2)

    paths = analysis.optimizer_paths(loss, (1.0, 1.0), {"sgd": (torch.optim.SGD, {"lr": 0.1}),
                                                   "momentum": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.5})}, 2)
    assert paths["sgd"].shape == (3, 2)
    assert np.allclose(paths["sgd"][1], [1 - 0.1 * 1, 1 - 0.1 * 4])  # p - lr * grad
    v1 = np.array([1.0, 4.0])
    p1 = np.array([1.0, 1.0]) - 0.1 * v1
    v2 = 0.5 * v1 + np.array([p1[0], 4 * p1[1]])
    assert np.allclose(paths["momentum"][2], p1 - 0.1 * v2)  # v = mu v + g; p = p - lr v


def test_next_token_table_gives_model_and_processed_probabilities():
    import torch

    from lmlib import generate as G

    model = _sam_model()
    table = analysis.next_token_table(model, ["I"], G.processors(top_k=2), rows=5)
    logp = model.next_token_logprobs(torch.tensor([[model.vocab.bos_id, model.vocab.stoi["I"]]]))[0]
    assert [t for t, _, _ in table] == [model.vocab.itos[i] for i in logp.topk(5).indices]
    assert [p for _, p, _ in table] == pytest.approx(logp.exp().topk(5).values.tolist())
    kept = [q for _, _, q in table]
    assert sum(q > 0 for q in kept) == 2 and sum(kept) == pytest.approx(1.0)  # top-2, renormalised


def test_pca_2d_keeps_the_largest_variances_with_fixed_signs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])  # variance mostly in 2 directions
    xy, explained = analysis.pca_2d(X)
    eigenvalues = np.linalg.eigvalsh(np.cov(X.T, bias=True))[::-1]  # the covariance's spectrum, largest first
    np.testing.assert_allclose(xy.var(axis=0), eigenvalues[:2], rtol=1e-10)
    np.testing.assert_allclose(explained, eigenvalues[:2] / eigenvalues.sum(), rtol=1e-10)
    assert abs(np.corrcoef(xy[:, 0], X[:, 0])[0, 1]) > 0.9
    flipped, _ = analysis.pca_2d(-X)  # the same cloud mirrored: the same components up to sign, fixed the same way
    np.testing.assert_allclose(np.abs(flipped), np.abs(xy), atol=1e-10)
    assert np.sign(flipped[:, 0] @ xy[:, 0]) == -1  # the points mirror, the axes do not


def test_most_confidently_wrong_ranks_the_errors_by_the_wrong_class_s_probability():
    p = [0.9, 0.2, 0.95, 0.5, 0.05, 0.6, 0.95]  # P(class 1)
    y = [0, 1, 1, 1, 1, 0, 0]
    # wrong: 0 (0.9 for class 1), 1 (0.8 for class 0), 4 (0.95), 5 (0.6), 6 (0.95); 3 sits on 1/2: not wrong
    assert analysis.most_confidently_wrong(p, y, k=3) == [4, 6, 0]  # a tie: the lower index first
    assert analysis.most_confidently_wrong(p, y, k=10) == [4, 6, 0, 1, 5]
    assert analysis.most_confidently_wrong([0.1, 0.9], [0, 1], k=2) == []
    for bad, message in [(([0.5], [2], 1), "0 or 1"), (([1.5], [1], 1), r"in \[0, 1\]"),
                         (([0.5, 0.5], [1], 1), "one probability per label"), (([0.5], [1], 0), "positive integer")]:
        with pytest.raises(ValueError, match=message):
            analysis.most_confidently_wrong(*bad)
