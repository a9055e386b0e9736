"""lmlib.calibration: ECE on a case computed by hand, against a direct loop over the bins' definition, the
reliability points against scikit-learn's calibration_curve, and the grouped bootstrap against
lmlib.metrics.bootstrap_interval."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from lmlib import calibration as CAL
from lmlib.metrics import bootstrap_interval


def direct_ece(confidence, correct, n_bins):
    """The definition, bin by bin: bins ((m-1)/M, m/M], the first one closed at 0."""
    n, total = len(confidence), 0.0
    for m in range(1, n_bins + 1):
        low, high = (m - 1) / n_bins, m / n_bins
        inside = [i for i, c in enumerate(confidence) if (low < c <= high) or (m == 1 and c == 0)]
        if inside:
            acc = np.mean([correct[i] for i in inside])
            conf = np.mean([confidence[i] for i in inside])
            total += len(inside) / n * abs(acc - conf)
    return total


@pytest.fixture(scope="module")
def predictions():
    rng = np.random.default_rng(0)
    confidence = rng.beta(2, 2, 3000)
    correct = (rng.random(3000) < confidence ** 1.5).astype(int)  # over-confident: right less often than c says
    return confidence, correct


def test_ece_by_hand():
    # four predictions at 0.9, two right: |0.5 - 0.9| = 0.4; two at 0.2, one right: |0.5 - 0.2| = 0.3
    confidence, correct = [0.9, 0.9, 0.9, 0.9, 0.2, 0.2], [1, 1, 0, 0, 1, 0]
    assert CAL.expected_calibration_error(confidence, correct) == pytest.approx(4 / 6 * 0.4 + 2 / 6 * 0.3)
    assert CAL.expected_calibration_error([0.3, 0.7], [0, 1], n_bins=1) == pytest.approx(0.0)  # |0.5 - 0.5|
    assert CAL.expected_calibration_error([0.3, 0.7], [0, 1], n_bins=2) == pytest.approx(0.3)  # 0.3 + 0.3, halves


def test_edges_go_to_the_lower_bin():
    assert CAL.bin_index(np.array([0.0, 0.1, 0.1000001, 0.5, 1.0]), 10).tolist() == [0, 0, 1, 4, 9]


@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
def test_ece_equals_the_definition(predictions, n_bins):
    confidence, correct = predictions
    edges = np.concatenate([confidence[:50], np.arange(n_bins + 1) / n_bins])  # on the bin edges too
    right = np.concatenate([correct[:50], np.arange(n_bins + 1) % 2])
    for c, a in [(confidence, correct), (edges, right)]:
        assert CAL.expected_calibration_error(c, a, n_bins) == pytest.approx(direct_ece(c, a, n_bins), abs=1e-12)


def test_reliability_points_equal_scikit_learn(predictions):
    confidence, correct = predictions
    bins = CAL.reliability_bins(confidence, correct, n_bins=10)
    prob_true, prob_pred = calibration_curve(correct, confidence, n_bins=10, strategy="uniform")
    filled = bins.counts > 0
    assert np.allclose(bins.accuracy[filled], prob_true) and np.allclose(bins.confidence[filled], prob_pred)
    assert bins.counts.sum() == len(confidence)
    assert CAL.expected_calibration_error(confidence, correct) > 0.05  # the planted over-confidence shows


def test_a_calibrated_sample_has_a_small_ece():
    rng = np.random.default_rng(1)
    confidence = rng.random(200_000)
    correct = rng.random(200_000) < confidence  # right exactly as often as the confidence says
    assert CAL.expected_calibration_error(confidence, correct) < 0.01


def test_grouped_interval_is_the_bootstrap_over_groups(predictions):
    confidence, correct = predictions
    groups = np.repeat(np.arange(300), 10)[::-1]  # 300 groups of 10, numbered backwards: order of appearance
    got = CAL.ece_interval(confidence, correct, groups, n_resamples=200, seed=3)
    items = [(confidence[groups == g], correct[groups == g]) for g in dict.fromkeys(groups.tolist())]

    def ece(chosen):
        return CAL.expected_calibration_error(np.concatenate([c for c, _ in chosen]),
                                              np.concatenate([a for _, a in chosen]))

    want = bootstrap_interval(items, ece, n_resamples=200, seed=3)
    assert (got.estimate, got.low, got.high) == pytest.approx((want.estimate, want.low, want.high), abs=1e-12)
    assert got.low < got.estimate < got.high


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="probabilities, not log-probabilities"):
        CAL.expected_calibration_error([-0.1, 0.5], [1, 0])
    with pytest.raises(ValueError, match="0/1"):
        CAL.expected_calibration_error([0.1, 0.5], [2, 0])
    with pytest.raises(ValueError, match="one length"):
        CAL.reliability_bins([0.1, 0.5], [1])
    with pytest.raises(ValueError, match="one label per prediction"):
        CAL.ece_interval([0.1, 0.5], [1, 0], groups=[0])


def test_decision_margins_by_hand():
    from lmlib.ngram import NGramLM

    # after "a": b twice, c once -> ln(2/3) - ln(1/3) = ln 2; after "a b": d always, then </s>: no second choice
    # with probability above 0 under MLE, so the margin is infinite
    bigram = NGramLM(2, smoothing="mle").fit([["a", "b", "d"], ["a", "b", "d"], ["a", "c"]])
    margins = CAL.decision_margins(bigram, ["a"], ["b", "d"])
    assert margins[0] == pytest.approx(np.log(2)) and margins[1] == float("inf")


def test_next_token_predictions_equal_the_distribution_after_each_prefix():
    import torch

    from lmlib.tokenize import Vocab
    from lmlib.transformer import GPT, GPTConfig

    vocab = Vocab(list("abcdefgh"), min_count=1)
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=len(vocab), block_size=8, d_model=16, n_layers=1, n_heads=2,
                        window_stride=4), vocab).eval()
    for p in gpt.parameters():
        p.data.mul_(10)  # peaked distributions
    sentences = [list("abcabcdefgh"), list("ha"), list("bbbb")]  # one longer than the window: it slides
    got = CAL.next_token_predictions(gpt, sentences, batch_size=2)
    want = []
    for i, s in enumerate(sentences):
        ids = [vocab.bos_id, *vocab.encode(s), vocab.eos_id]
        for t in range(1, len(ids)):
            logp = gpt.next_token_logprobs(torch.tensor([ids[:t]]))[0]
            want.append((logp.max().exp().item(), int(logp.argmax()), ids[t], i))
    assert np.allclose(got.confidence, [w[0] for w in want], atol=1e-6)
    assert got.predicted.tolist() == [w[1] for w in want] and got.target.tolist() == [w[2] for w in want]
    assert got.sentence.tolist() == [w[3] for w in want]
    assert got.correct.sum() == sum(w[1] == w[2] for w in want)
    # among three letters only: their probabilities renormalised
    among = CAL.next_token_predictions(gpt, sentences, among=["a", "c", "h"])
    ids = torch.tensor(vocab.encode(["a", "c", "h"]))
    logp = gpt.next_token_logprobs(torch.tensor([[vocab.bos_id, *vocab.encode(list("ha"))]]))[0]
    p = logp[ids].exp() / logp[ids].exp().sum()
    position = len(sentences[0]) + 1 + 2  # the third prediction of the second sentence
    assert among.confidence[position] == pytest.approx(p.max().item(), abs=1e-6)
    assert among.predicted[position] == ids[p.argmax()] and set(among.predicted) <= set(ids.tolist())
    with pytest.raises(ValueError, match="not in it"):
        CAL.next_token_predictions(gpt, sentences, among=["a", "zz"])
