"""How the exercises' tests read an answer: every right form of it as the same plain data.

A question that asks for numbers accepts a list, a tuple, a generator, a NumPy
array or scalar and a torch tensor (even one that requires grad); the tests turn
each into Python floats, ints, strings, lists and tuples, which ``grader.check``
and the course's grader compare exactly. The exercises import these functions
rather than define them in the notebook, so what a student binds there
(``list = [...]``, ``for round in ...``, ``from numpy import *``) never changes
how an answer is read: a function's builtins are its module's.
"""

from __future__ import annotations

import numpy as np

NONE_RETURNED = "the answer is None (NoneType): does your function `return` its result?"


def as_array(x) -> np.ndarray:
    """Any array-like of numbers or booleans, nested or not, or a number, as a float64 NumPy array."""
    if x is None:
        raise TypeError(NONE_RETURNED)
    if hasattr(x, "detach"):  # a torch tensor (.numpy() refuses one that requires grad)
        return x.detach().cpu().double().numpy()
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np.asarray(x, dtype=float)
    return np.array([as_array(v) for v in x], dtype=float)  # a list, tuple or generator


def rounded_floats(x, digits: int = 4):
    """x as a Python float, or nested lists of them, rounded to ``digits`` decimals (-0.0 read as 0.0)."""
    return (np.round(as_array(x), digits) + 0.0).tolist()


def whole_number(x) -> int | float:
    """A count (an int, a NumPy or torch integer, or a float that is whole) as a Python int; any
    other number stays a float, so that it shows as what it is."""
    value = float(as_array(x))
    return int(value) if value.is_integer() else value


def int_lists(x):
    """Token ids (integers, or floats that are whole numbers) as nested lists of Python ints."""
    return np.round(as_array(x)).astype(int).tolist()


def shape_of(x) -> tuple[int, ...]:
    """The shape of an array-like answer (nested lists included) as a tuple of Python ints."""
    return tuple(int(n) for n in as_array(x).shape)


def plain_mask(mask):
    """A mask of booleans (or of 1s and 0s) as nested lists of True and False."""
    return (as_array(mask) != 0).tolist()


def plain_pairs(pairs) -> list[tuple[list, list]]:
    """[(inputs, targets), ...] of token ids as [(nested lists of int, nested lists of int), ...]."""
    if pairs is None:
        raise TypeError(NONE_RETURNED)
    return [(as_array(x).astype(int).tolist(), as_array(y).astype(int).tolist()) for x, y in pairs]


def plain_beams(beams, digits: int = 4) -> list[tuple[tuple[str, ...], float]]:
    """Beams [(tokens, score), ...] as [(tuple of str, score rounded to ``digits`` decimals), ...]."""
    if beams is None:
        raise TypeError(NONE_RETURNED)
    return [(tuple(str(t) for t in tokens), round(float(score), digits) + 0.0) for tokens, score in beams]


def plain_neighbours(pairs, digits: int = 4) -> list[tuple[str, float]]:
    """[(word, cosine), ...] as [(str, cosine rounded to ``digits`` decimals), ...]."""
    if pairs is None:
        raise TypeError(NONE_RETURNED)
    return [(str(word), round(float(as_array(cosine)), digits) + 0.0) for word, cosine in pairs]
