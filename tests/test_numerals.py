"""lmlib.numerals: the pairs are num2words' and cn2an's (cn2an reads its numerals back), the splits share no number
and no (year, day), ``longer`` is longer than every other number, the same seed makes the same splits, and the
shared vocabulary covers every character a model will be tested on."""

from __future__ import annotations

import calendar
import datetime
import random

import cn2an
import pytest
from num2words import num2words

from lmlib import numerals as N

SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def splits() -> dict[str, list[N.Pair]]:
    return N.make_splits(seed=0)


def test_the_pairs_are_the_converters_output_and_the_chinese_reads_back():
    assert N.Pair.number(123) == N.Pair("one hundred and twenty-three", "一百二十三", "number", 123)
    assert N.Pair.date(datetime.date(2021, 5, 3)) == N.Pair("3 May 2021", "2021年5月3日", "date",
                                                            datetime.date(2021, 5, 3))
    rng = random.Random(0)
    for n in [0, 10, 101, 1010, 10010, 20305, 99999, 100000, *rng.sample(range(10**6), 200)]:
        assert N.number_en(n) == num2words(n, lang="en")
        assert cn2an.cn2an(N.number_zh(n), "strict") == n
    assert list(N.MONTHS) == list(calendar.month_name)[1:]  # the names Python's C locale gives
    for day in [datetime.date(1900, 1, 1), datetime.date(2099, 12, 31), datetime.date(2024, 2, 29)]:
        # read back by another program: datetime's parser
        assert datetime.datetime.strptime(N.date_en(day), "%d %B %Y").date() == day
        assert datetime.datetime.strptime(N.date_zh(day), "%Y年%m月%d日").date() == day
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="an integer >= 0"):
            N.number_zh(bad)


def test_a_numeral_that_does_not_read_back_is_refused(monkeypatch):
    monkeypatch.setattr(cn2an, "an2cn", lambda n: "一百")  # a converter gone wrong
    with pytest.raises(ValueError, match="cn2an writes 123 as '一百' but reads that back as 100"):
        N.number_zh(123)


def test_the_splits_share_no_number_and_no_year_day_pair(splits):
    assert {name: (sum(p.kind == "number" for p in pairs), sum(p.kind == "date" for p in pairs))
            for name, pairs in splits.items()} == N.SIZES
    numbers = {name: {p.value for p in pairs if p.kind == "number"} for name, pairs in splits.items()}
    year_days = {name: {p.numbers() for p in pairs if p.kind == "date"} for name, pairs in splits.items()}
    for i, a in enumerate(splits):
        assert len(numbers[a]) == N.SIZES[a][0]  # no number twice in a split
        for b in list(splits)[i + 1 :]:
            assert not numbers[a] & numbers[b], (a, b)
            assert not year_days[a] & year_days[b], (a, b)
    # every test year and every test day does occur in training, with other partners
    train_years, train_days = {y for y, _ in year_days["train"]}, {d for _, d in year_days["train"]}
    assert {y for y, _ in year_days["test"]} <= train_years and {d for _, d in year_days["test"]} <= train_days


def test_every_length_is_in_every_split_and_longer_is_longer_than_all(splits):
    for name in SPLITS:
        lengths = [len(str(p.value)) for p in splits[name] if p.kind == "number"]
        assert set(lengths) == set(range(1, N.MAX_DIGITS + 1)), name
    assert {len(str(p.value)) for p in splits["longer"]} == {N.MAX_DIGITS + 1}
    longest = max(len(p.en) for name in SPLITS for p in splits[name] if p.kind == "number")
    assert sum(len(p.en) > longest for p in splits["longer"]) > len(splits["longer"]) // 2


def test_share_out_and_draw_by_length():
    rng = random.Random(0)
    parts = N.share_out(range(100), rng)
    assert sorted(x for part in parts.values() for x in part) == list(range(100))
    assert [len(parts[s]) for s in SPLITS] == [80, 10, 10]
    drawn = N.draw_by_length([range(3), range(10, 100), range(100, 1000)], 60, rng)
    assert len(set(drawn)) == 60 and sum(x < 3 for x in drawn) == 3  # the short pool taken whole, the rest shared
    assert sum(10 <= x < 100 for x in drawn) in (28, 29)
    with pytest.raises(ValueError, match="cannot draw 2000 numbers from 993"):
        N.draw_by_length([range(3), range(10, 100), range(100, 1000)], 2000, rng)


def test_the_same_seed_makes_the_same_splits():
    small = {"train": (50, 20), "valid": (10, 5), "test": (10, 5), "longer": (5, 0)}
    assert N.make_splits(3, small) == N.make_splits(3, small)
    assert N.make_splits(3, small) != N.make_splits(4, small)
    with pytest.raises(ValueError, match="sizes must give"):
        N.make_splits(0, {"train": (1, 1)})


def test_the_shared_vocabulary_holds_every_character_of_valid_and_test(splits):
    vocab = N.shared_vocab(splits["train"])
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    for name in ("valid", "test", "longer"):
        unknown = {c for p in splits[name] for c in p.en + p.zh if c not in vocab}
        assert not unknown, (name, unknown)
    assert {"年", "月", "日", "万", " ", "-", ","} <= set(vocab.itos)
    source, target = N.token_pairs(splits["train"][:1], "zh-en")[0]
    assert "".join(source) == splits["train"][0].zh and "".join(target) == splits["train"][0].en
    assert N.tokenize("3 May  2021") == ["3", " ", "M", "a", "y", " ", "2", "0", "2", "1"]
    with pytest.raises(ValueError, match="direction must be one of"):
        N.source_target(splits["train"][0], "en-fr")

