"""The code generation chapter's measure: the share of sampled functions that parse, by temperature.

One fixed protocol, so that the GPT and its n-gram baseline are measured alike:

1. the prompt is ``"def "`` (as characters): the start of a top-level function;
2. ``n`` samples per temperature are drawn together, from a ``torch.Generator`` seeded with ``seed``
   (the same seed at every temperature), ``<unk>`` never chosen, at most ``max_characters`` each;
3. each sample is cut where the function ends (``function_text``): before the first line that
   starts at column 0 after the ``def`` line (the first dedent to column 0), or at ``<eos>``, which
   ends each top-level block the models were trained on;
4. it passes if ``ast.parse`` accepts it. That is syntax only: whether the function runs, or does
   anything useful, is not checked (nothing is executed);
5. the share that passes gets a 95% Wilson interval (``wilson_interval``).

A sample that reaches ``max_characters`` without ending counts as failing (reported as
"unfinished"), and one that copies its whole function from the training text is counted as a
copy (``ParseRate.copies``): a parse rate earned by copying is memory, not generation.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import torch

from lmlib.generate import sample
from lmlib.lm import LanguageModel
from lmlib.metrics import Interval

PROMPT = "def "
# A line at column 0 that starts with one of these does not end a function: the closing bracket
# of a signature written one parameter a line.
NOT_AN_END = (")", "]", "}")


def function_text(text: str) -> tuple[str, bool]:
    """``text`` (starting with a ``def`` line) cut before the first line after it that
    starts at column 0 (blank lines and ``NOT_AN_END`` lines aside), and whether there
    was one: whether the function ended.

    The rule reads indentation, not the grammar. A comment at column 0 ends the
    function, so one inside a body cuts it short, at a line break between statements,
    where what is left usually still parses. A string with lines at column 0 (a long
    message, a docstring written flush left) cuts it inside the string, and it fails.
    Of the 1,487 top-level functions of Python 3.11's standard library, each followed
    by another statement, 1,477 still parse after the cut: nine of the ten others
    hold such a string, one a line commented out at column 0 right after a ``try:``.
    """
    lines = text.split("\n")
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() and not line[0].isspace() and not line.startswith(NOT_AN_END):
            return "\n".join(lines[:i]).rstrip(), True
    return text.rstrip(), False


def parses(source: str) -> bool:
    """Whether ``ast.parse`` accepts the source: Python's own parser, this version's
    grammar. Syntax only: names, types and what the code does are not checked."""
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):  # a null byte; deep nesting
        return False
    return True


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of a proportion k / n (Wilson 1927): the p whose
    normal test does not reject k successes in n at the given confidence,

        (p^ + z^2/2n  -+  z sqrt(p^ (1 - p^) / n + z^2 / 4n^2)) / (1 + z^2 / n),

    p^ = k / n, z the (1 + confidence) / 2 normal quantile. Unlike the bootstrap's
    percentiles, it does not shrink to a point at 0 of n or n of n (0 of 100 gives
    [0, 3.7%]).
    """
    whole = isinstance(n, int) and isinstance(successes, int)
    if not (whole and n >= 1 and 0 <= successes <= n):
        raise ValueError("need 0 <= successes <= n and n >= 1 (whole numbers), "
                         f"got {successes} of {n}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1 (0.95 for a 95% interval), "
                         f"not {confidence!r}")
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes == 0 else centre - half  # exactly 0 and 1 at the edges, not
    high = 1.0 if successes == n else centre + half  # 0 and 1 give or take a round-off
    return Interval(p, low, high, confidence)


@dataclass(frozen=True)
class FunctionSample:
    text: str  # the prompt and the sample, cut where the function ends
    ended: bool  # it ended (a line at column 0, or <eos>) within the length allowed
    parses: bool  # ast.parse accepts it (False for one that did not end)


@dataclass(frozen=True)
class ParseRate:
    temperature: float
    samples: list[FunctionSample]
    interval: Interval  # the share that parses, with its Wilson interval
    copies: int  # samples that parse and occur whole in the training text

    @property
    def unfinished(self) -> int:
        return sum(not s.ended for s in self.samples)


def sample_functions(model: LanguageModel, temperature: float, n: int, *,
                     max_characters: int = 500, seed: int = 0) -> list[FunctionSample]:
    """``n`` functions sampled from a character-level model after ``PROMPT``, each cut
    where it ends and parsed: steps 1 to 4 of the protocol."""
    generations = sample(model, list(PROMPT), max_characters, temperature=temperature,
                         num_samples=n, suppress=["<unk>"],
                         generator=torch.Generator().manual_seed(seed))
    out = []
    for g in generations:
        text, ended = function_text(PROMPT + "".join(g.tokens))
        ended = ended or g.finished  # <eos>: the block, and so the function, ended
        out.append(FunctionSample(text, ended, ended and parses(text)))
    return out


def parse_rates(model: LanguageModel, temperatures: Sequence[float], n: int,
                training_text: str = "", *, max_characters: int = 500,
                seed: int = 0) -> list[ParseRate]:
    """The protocol at each temperature: the samples, the share that parses with its
    Wilson interval, and how many of those occur whole in ``training_text`` (give it
    the training blocks, joined)."""
    rates = []
    for t in temperatures:
        samples = sample_functions(model, t, n, max_characters=max_characters, seed=seed)
        passed = sum(s.parses for s in samples)
        copies = sum(s.parses and s.text in training_text for s in samples)
        rates.append(ParseRate(t, samples, wilson_interval(passed, n), copies))
    return rates
