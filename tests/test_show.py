"""lmlib.show: the verdicts chapters print, the figures they print, and the source they show."""

import math
import random
import warnings

import numpy as np
import pytest
import torch

from lmlib.show import SUPERSCRIPT, agreement, max_abs_difference, prints_stably, probability, show_source


def test_agreement_is_a_verdict_and_equal_infinities_agree_silently():
    a = torch.tensor([-float("inf"), 1.0, 2.0])  # masked logits: -inf in both
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would be printed into a chapter's output
        assert agreement(a, a + torch.tensor([0.0, 1e-9, 0.0]), 1e-6) == "max |difference| ≤ 1e-6: True"
        assert agreement(np.array([1.0, 2.0]), [1.0, 2.5], 1e-3) == "max |difference| ≤ 1e-3: False"
    assert max_abs_difference(np.array([-np.inf]), np.array([0.0])) == np.inf
    with pytest.raises(ValueError, match="shapes"):
        max_abs_difference(np.zeros(2), np.zeros(3))


def test_show_source_is_markdown_code_of_the_real_function():
    shown = show_source(agreement, max_abs_difference)
    assert shown._repr_markdown_().startswith("```python\ndef agreement(")
    assert "def max_abs_difference(" in repr(shown)


def _read_back(shown: str) -> float:
    """'3.95×10⁻⁶' -> 3.95e-06, undoing probability's notation."""
    mantissa, _, exponent = shown.partition("×10")
    digits = {v: k for k, v in zip("-0123456789", "-0123456789".translate(SUPERSCRIPT), strict=True)}
    return float(mantissa) * 10.0 ** int("".join(digits[c] for c in exponent)) if exponent else float(mantissa)


def test_probability_is_python_rounding_to_three_significant_digits():
    assert probability(0.17412) == "0.174"
    assert probability(0.0201) == "0.0201"
    assert probability(3.9512e-6) == "3.95×10⁻⁶"
    assert probability(2.2767e-27) == "2.28×10⁻²⁷"
    assert probability(0.0099996) == "0.01"  # rounds up to 0.01: written as a decimal, not 1.00×10⁻²
    assert probability(0.0) == "0" and probability(1.0) == "1"
    rng = random.Random(0)
    for _ in range(1000):  # the reference: Python's own rounding to 3 significant digits
        p = 10.0 ** rng.uniform(-40, 0)
        assert math.isclose(_read_back(probability(p)), float(f"{p:.2e}"), rel_tol=1e-12), p
    for bad in (-0.1, 1.5, -3.2):
        with pytest.raises(ValueError, match="between 0 and 1"):
            probability(bad)


def test_prints_stably_flags_a_value_at_a_rounding_tie():
    two_decimals = "{:.2f}".format
    assert prints_stably([-61.347, -67.828], two_decimals)
    assert not prints_stably([-61.347, -0.125], two_decimals)  # -0.125 is a tie: -0.12 or -0.13
    assert not prints_stably([-0.12501], two_decimals, margin=1e-4)  # a wider margin sees it
    assert prints_stably([-0.12501], two_decimals, margin=1e-6)
    show_p = lambda x: probability(math.exp(x))  # noqa: E731  a log-probability shown as a probability
    assert prints_stably([math.log(3.95123e-6)], show_p)
    assert not prints_stably([math.log(3.955e-6)], show_p)
