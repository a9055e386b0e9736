"""lmlib.viz: the Zipf fit recovers a known exponent; the widget carries its content."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lmlib import viz  # noqa: E402


@pytest.mark.parametrize("s", [0.8, 1.0, 1.3])
def test_zipf_exponent_recovers_the_exponent_of_exact_zipf_counts(s):
    ranks = np.arange(1, 20_001)
    freqs = np.round(1e7 / ranks**s).astype(np.int64)
    assert viz.zipf_exponent(freqs) == pytest.approx(s, abs=0.01)


def test_rank_frequency_sorts_counts():
    assert viz.rank_frequency("a b a c a b".split()).tolist() == [3, 2, 1]


def test_zipf_needs_enough_types():
    with pytest.raises(ValueError, match="need at least 12 distinct tokens"):
        viz.zipf_exponent(np.array([5, 3, 1]))


def test_plot_zipf_labels_axes_and_reports_the_exponent():
    fig, ax = plt.subplots()
    viz.plot_zipf(ax, np.round(1e6 / np.arange(1, 1000)).astype(int), "toy")
    assert "rank" in ax.get_xlabel() and "frequency" in ax.get_ylabel()
    assert ax.get_legend().get_texts()[0].get_text() == "toy (s = 1.00)"
    plt.close(fig)


def test_token_tabs_show_every_tokenizer_and_escape_html():
    tabs = viz.token_tabs("a <b>", {"chars": list, "split": str.split})
    assert [tabs.get_title(i) for i in range(2)] == ["chars", "split"]
    assert "&lt;b&gt;" in tabs.children[1].value and "<b>" not in tabs.children[1].value
    assert "5 tokens" in tabs.children[0].value


def test_zipf_summary_shares():
    freqs = np.array([50] * 10 + [5] * 20 + [1] * 30)
    summary = viz.zipf_summary(freqs, top=10)
    assert summary["seen once (% of vocabulary)"] == 50.0
    assert summary["top 10 words (% of text)"] == pytest.approx(100 * 500 / 630)
