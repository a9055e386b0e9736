"""A translation task a small model can learn and a program can check: English <-> Chinese numbers and dates.

    number   "one hundred and twenty-three"    <->  "一百二十三"
    date     "3 May 2021"                      <->  "2021年5月3日"

The pairs are made by maintained converters, not by rules written here: ``num2words`` writes an integer in
English words and ``cn2an`` in Chinese numerals (``number_zh`` checks that ``cn2an.cn2an`` reads the numeral back
as the same integer). A date is a format string around its numbers: the English one names the month, the Chinese
one writes year, month and day in digits before 年, 月 and 日; the numbers are written as digits by ``str``, the
month names are the twelve English names (``MONTHS``, data, not a rule). Every answer can be checked exactly.

Splits. No number is on two sides:

- numbers: every integer below 10^5 (one to five digits) belongs to one split, by a seeded shuffle of the
  integers of each length (80 % train, 10 % valid, 10 % test); a split then draws its examples from its own
  integers, as equally from each length as the few short integers allow (``draw_by_length``). A test number was
  never a training number, so the model must compose its words, not recall them.
- dates: a date's numbers are its year (1900-2099) and its day. Every (year, day) pair belongs to one split, by
  the same kind of shuffle, and a split draws dates (any month) whose (year, day) is its own. No test date can be
  answered by recalling a training date with only the month changed; each year and each day alone does occur in
  training (with other partners), as it must for digits the model copies.
- ``longer``: six-digit numbers (10^5 to 10^6 - 1), longer than every number of the other splits: the same words
  and characters, in combinations never seen (九十九万, "nine hundred and ninety-nine thousand"). The chapter's
  "where it breaks" experiment.

``make_splits(seed)`` builds them (the same seed, the same splits); ``python -m lmlib.numerals`` prints their
sizes and examples. The model reads characters (``tokenize``: spaces kept) with one ``Vocab`` for both languages
(``shared_vocab``).

This module is data: it imports no torch.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lmlib._deps import require
from lmlib.tokenize import Vocab, char_tokenize

MAX_DIGITS = 5  # the numbers of train, valid and test have 1 to 5 digits; ``longer`` has MAX_DIGITS + 1
YEARS = range(1900, 2100)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
SHARES = {"train": 0.8, "valid": 0.1, "test": 0.1}  # of the integers of each length, and of the (year, day) pairs
# examples per split: numbers, dates
SIZES = {"train": (12_000, 4_000), "valid": (500, 500), "test": (1_000, 500), "longer": (500, 0)}
DIRECTIONS = ("en-zh", "zh-en")


# --- the converters ----------------------------------------------------------------------------------------------


def number_en(n: int) -> str:
    """``n`` in English words, by num2words: 123 -> "one hundred and twenty-three"."""
    return require("num2words").num2words(_check_integer(n), lang="en")


def number_zh(n: int) -> str:
    """``n`` in Chinese numerals, by cn2an: 123 -> "一百二十三"; raises if ``cn2an.cn2an`` does not read it back
    as ``n``."""
    cn2an = require("cn2an")
    zh = cn2an.an2cn(_check_integer(n))
    if cn2an.cn2an(zh, "strict") != n:
        raise ValueError(f"cn2an writes {n} as {zh!r} but reads that back as {cn2an.cn2an(zh, 'strict')}")
    return zh


def date_en(day: datetime.date) -> str:
    """"3 May 2021": day, month name, year."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def date_zh(day: datetime.date) -> str:
    """"2021年5月3日": year, month and day in digits, each before its unit."""
    return f"{day.year}年{day.month}月{day.day}日"


def _check_integer(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"a number of this task is an integer >= 0, got {n!r}")
    return n


@dataclass(frozen=True)
class Pair:
    """One example: the English and the Chinese text of a number or a date."""

    en: str
    zh: str
    kind: str  # "number" or "date"
    value: int | datetime.date

    @classmethod
    def number(cls, n: int) -> Pair:
        return cls(number_en(n), number_zh(n), "number", n)

    @classmethod
    def date(cls, day: datetime.date) -> Pair:
        return cls(date_en(day), date_zh(day), "date", day)

    def numbers(self) -> tuple[int, ...]:
        """The numbers the pair is made of: (n,) for a number, (year, day) for a date."""
        return (self.value,) if self.kind == "number" else (self.value.year, self.value.day)


# --- the splits --------------------------------------------------------------------------------------------------


def integers_of_length(digits: int) -> range:
    """The integers written with ``digits`` digits (0 counts as one digit)."""
    return range(0 if digits == 1 else 10 ** (digits - 1), 10**digits)


def share_out(items: Sequence, rng: random.Random) -> dict[str, list]:
    """Shuffle ``items`` and cut them into the splits of ``SHARES`` (train the rest): each item in exactly one."""
    items = list(items)
    rng.shuffle(items)
    n_valid, n_test = (round(len(items) * SHARES[s]) for s in ("valid", "test"))
    return {"valid": items[:n_valid], "test": items[n_valid : n_valid + n_test], "train": items[n_valid + n_test :]}


def draw_by_length(pools: Sequence[Sequence[int]], n: int, rng: random.Random) -> list[int]:
    """``n`` integers from pools of integers of increasing length, as equally from each pool as the pools allow:
    a pool smaller than its share is taken whole and the rest shared among the longer ones."""
    if n > sum(map(len, pools)):
        raise ValueError(f"cannot draw {n} numbers from {sum(map(len, pools))}")
    drawn = []
    for i, pool in enumerate(pools):
        share = -(-(n - len(drawn)) // (len(pools) - i))  # ceil: what is left, over the pools left
        drawn += rng.sample(list(pool), min(share, len(pool)))
    return drawn


def make_splits(seed: int = 0, sizes: dict[str, tuple[int, int]] | None = None) -> dict[str, list[Pair]]:
    """The splits ``train``, ``valid``, ``test`` and ``longer`` (see the module's docstring), each a list of
    ``Pair`` in a seeded random order. ``sizes``: split -> (numbers, dates), default ``SIZES``."""
    sizes = SIZES if sizes is None else sizes
    if set(sizes) != set(SIZES):
        raise ValueError(f"sizes must give (numbers, dates) for each of {list(SIZES)}, got {list(sizes)}")
    rng = random.Random(seed)
    by_length = [share_out(integers_of_length(d), rng) for d in range(1, MAX_DIGITS + 1)]
    year_days = share_out([(y, d) for y in YEARS for d in range(1, 32)], rng)
    splits = {}
    for split in ("train", "valid", "test"):
        n_numbers, n_dates = sizes[split]
        numbers = draw_by_length([pools[split] for pools in by_length], n_numbers, rng)
        owned = set(year_days[split])
        days = [datetime.date(y, m, d) for y, d in sorted(owned) for m in range(1, 13) if _is_date(y, m, d)]
        splits[split] = [Pair.number(n) for n in numbers] + [Pair.date(d) for d in rng.sample(days, n_dates)]
    longer = rng.sample(integers_of_length(MAX_DIGITS + 1), sizes["longer"][0])
    splits["longer"] = [Pair.number(n) for n in longer]
    for pairs in splits.values():
        rng.shuffle(pairs)
    return splits


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


# --- what a model reads ------------------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Characters, spaces kept (one per run of whitespace): "3 May" -> ["3", " ", "M", "a", "y"]."""
    return char_tokenize(text)


def source_target(pair: Pair, direction: str = "en-zh") -> tuple[str, str]:
    """(source text, target text) of a pair: English -> Chinese for "en-zh", the reverse for "zh-en"."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return (pair.en, pair.zh) if direction == "en-zh" else (pair.zh, pair.en)


def token_pairs(pairs: Iterable[Pair], direction: str = "en-zh") -> list[tuple[list[str], list[str]]]:
    """(source characters, target characters) of each pair."""
    return [tuple(map(tokenize, source_target(p, direction))) for p in pairs]


def shared_vocab(pairs: Iterable[Pair]) -> Vocab:
    """One character vocabulary for both languages (English letters, digits, Chinese numerals and 年月日), from
    the pairs' texts (the training split's): ``<pad> <unk> <bos> <eos>`` first, then the characters."""
    return Vocab(c for p in pairs for text in (p.en, p.zh) for c in tokenize(text))


def describe(splits: dict[str, list[Pair]]) -> str:
    """A table of the splits: numbers, dates, the longest source and target, and an example of each kind."""
    lines = [f"{'split':<7} {'numbers':>7} {'dates':>6} {'longest en':>10} {'longest zh':>10}  example"]
    for name, pairs in splits.items():
        numbers = sum(p.kind == "number" for p in pairs)
        example = next((f"{p.en!r} -> {p.zh!r}" for p in pairs if p.kind == "number"), "")
        lines.append(f"{name:<7} {numbers:>7} {len(pairs) - numbers:>6} {max(len(p.en) for p in pairs):>10} "
                     f"{max(len(p.zh) for p in pairs):>10}  {example}")
    return "\n".join(lines)


def main() -> None:
    splits = make_splits()
    print(describe(splits))
    print(f"vocabulary (from train): {len(shared_vocab(splits['train']))} entries, specials included")


if __name__ == "__main__":
    main()
