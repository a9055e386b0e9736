"""lmlib.show: the verdicts chapters print, and the source they show."""

import warnings

import numpy as np
import pytest
import torch

from lmlib.show import agreement, max_abs_difference, show_source


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
