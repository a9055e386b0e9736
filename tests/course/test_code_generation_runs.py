"""lmlib.course.code_generation_runs: the parse-rate protocol's cut, its parser check and its interval (equal to
SciPy's Wilson interval), run end to end on an n-gram model that can only copy."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from lmlib import data
from lmlib.course import code_generation_runs as C
from lmlib.ngram import NGramLM


@pytest.mark.parametrize("successes, n, confidence", [(0, 100, 0.95), (100, 100, 0.95), (37, 100, 0.95),
                                                      (1, 3, 0.9), (250, 400, 0.99), (5, 7, 0.5)])
def test_wilson_interval_equals_scipys(successes, n, confidence):
    ours = C.wilson_interval(successes, n, confidence)
    ref = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert ours.estimate == successes / n and ours.confidence == confidence
    assert (ours.low == 0) == (successes == 0) and (ours.high == 1) == (successes == n)


def test_wilson_interval_refuses_impossible_counts():
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        C.wilson_interval(5, 3)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        C.wilson_interval(1, 3, confidence=95)


def test_function_text_ends_at_the_first_dedent_to_column_0():
    body = "def f(x):\n    y = x\n\n    return y"
    assert C.function_text(body + "\n\nprint(f(1))\n") == (body, True)
    assert C.function_text(body + "\n# a comment at column 0\n    z = 1") == (body, True)
    signature = "def g(\n    a,\n    b,\n):\n    return a + b"  # one parameter a line: "):" continues it
    assert C.function_text(signature + "\nclass C: pass") == (signature, True)
    assert C.function_text("def h(): return 1\nx = h()") == ("def h(): return 1", True)
    assert C.function_text("def k():\n    return (1 +\n") == ("def k():\n    return (1 +", False)


def test_the_stdlibs_own_functions_still_parse_after_the_cut():
    functions = [b for b in data.load_python_blocks("all") if b.startswith("def ")]
    cut = [C.function_text(f + "\n\nx = 1\n") for f in functions]
    assert len(functions) > 1000 and all(ended for _, ended in cut)
    assert sum(C.parses(text) for text, _ in cut) >= 0.99 * len(functions)  # misses: strings at column 0


def test_parses_is_pythons_parser():
    assert C.parses("def f():\n    return 1")
    assert not C.parses("def f():\n    return (1")
    assert not C.parses("def f():\nreturn 1")  # the body must be indented
    assert not C.parses("def f():\n    x = '\0'\n" + "\0")  # a null byte: ValueError, counted as a failure


def test_the_protocol_end_to_end_on_a_model_that_can_only_copy():
    """An order-32 MLE n-gram trained on two functions can only copy them (its context spans each
    whole): greedy decoding gives the more frequent one every time; sampling at temperature 1 mixes the
    two, the same way for the same seed; every sample ends (at <eos>), parses, and is a copy."""
    add, sub = "def add(a, b):\n    return a + b", "def sub(a, b):\n    return a - b"
    model = NGramLM(32, "mle").fit([list(add), list(add), list(sub)])
    [greedy] = C.parse_rates(model, [0], n=3, training_text=add + "\n" + sub, max_characters=60)
    assert [s.text for s in greedy.samples] == [add] * 3
    assert greedy.interval.estimate == 1.0 and greedy.copies == 3 and greedy.unfinished == 0
    first = C.parse_rates(model, [1.0], n=20, max_characters=60, seed=7)[0]
    assert first == C.parse_rates(model, [1.0], n=20, max_characters=60, seed=7)[0]
    assert {s.text for s in first.samples} == {add, sub} and first.interval.estimate == 1.0
    assert first.copies == 0  # no training text given: copies are not counted
    short = C.sample_functions(model, 0, 2, max_characters=5)
    assert all(not s.ended and not s.parses for s in short)  # cut off at the cap: unfinished, a failure
