"""lmlib.instructions: every answer recomputed here by other means (num2words, cn2an, the corpus labels, string
operations), no source document and no passage in two splits, the splits the corpora's own, the held-out family
never in SFT, the same seed the same records, the checks that accept right answers and refuse wrong ones, and the
errors on bad records."""

from __future__ import annotations

import re
from collections import Counter

import cn2an
import pytest
from num2words import num2words

from lmlib import data
from lmlib import instructions as I

SIZES = {"train": 40, "valid": 12, "test": 12}


@pytest.fixture(scope="module")
def dataset() -> I.InstructionSet:
    return I.build_instructions(seed=0, sizes=SIZES)


def test_every_family_and_language_has_records_in_each_split(dataset):
    rows = {(row["task"], row["lang"]): row for row in dataset.sizes()}
    assert set(rows) == {(f.name, lang) for f in I.FAMILIES.values() for lang in f.langs}
    assert ("sort", "zh") not in rows and {lang for _, lang in rows} == {"en", "zh"}
    for (task, lang), row in rows.items():
        for split in I.SPLITS:
            assert 0 < row[split] <= SIZES[split], (task, lang, split)
            assert row[split] == len(dataset.records(split, task, lang))
        assert row["held out"] == (task == "last")
    assert sum(row[s] for row in rows.values() for s in I.SPLITS) == sum(map(len, dataset.splits.values()))
    ids = [r.id for records in dataset.splits.values() for r in records]
    assert len(ids) == len(set(ids))


def test_no_source_document_and_no_passage_is_in_two_splits(dataset):
    sources = {split: {r.source for r in records} for split, records in dataset.splits.items()}
    passages = {split: {I.normalize(r.passage) for r in records} for split, records in dataset.splits.items()}
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not sources[a] & sources[b], (a, b, sorted(sources[a] & sources[b])[:3])
        assert not passages[a] & passages[b], (a, b, sorted(passages[a] & passages[b])[:3])
    assert all(r.split == split for split, records in dataset.splits.items() for r in records)


def test_the_splits_are_the_corpora_splits_and_each_passage_is_in_its_document(dataset):
    for corpus in ("polarity_en", "news", "reviews_zh"):
        for split in I.SPLITS:
            assert [doc for _, doc in I.documents(corpus, split)] == data.load_corpus(corpus, split)
    everything = {c: data.load_corpus(c, "all") for c in ("polarity_en", "reviews_zh", "news", "wiki")}
    everything["peoples_daily"] = ["".join(words) for words in I._peoples_daily_words()]  # parsed once already
    for records in dataset.splits.values():
        for r in records:
            corpus, index = r.source.split(":")
            if corpus == "number":
                assert r.passage == index
                continue
            doc = everything[corpus][int(index)]
            text = doc[0] if isinstance(doc, tuple) else doc
            if r.lang == "en" and r.task not in ("sentiment", "span"):  # a phrase: consecutive words of the text
                assert f" {r.passage} ".casefold() in " " + " ".join(re.findall("[A-Za-z]+", text)).casefold() + " "
            else:
                assert r.passage in text, r.id
    split_of = dict.fromkeys(range(10**5))
    for split, pools in I.number_splits(0).items():
        for n in (n for pool in pools for n in pool):
            assert split_of[n] is None, n
            split_of[n] = split
    assert None not in split_of.values()
    assert Counter(split_of.values()) == {"train": 80_000, "valid": 10_000, "test": 10_000}


def _expected_answer(r: I.Record, labels: dict[str, str]) -> str:
    """The answer, recomputed from the passage and the prompt without lmlib's family code."""
    items = r.passage.split() if r.lang == "en" else list(r.passage)
    join = " ".join if r.lang == "en" else "".join
    if r.task == "sentiment":
        return {"en": {"pos": "positive", "neg": "negative"}, "zh": {"pos": "正面", "neg": "负面"}}[r.lang][
            labels[r.source]]
    if r.task == "count":
        return str(len(items))
    if r.task == "reverse":
        return join(items[::-1])
    if r.task == "sort":
        return join(sorted(items))
    if r.task == "first":
        return items[0]
    if r.task == "last":
        return items[-1]
    if r.task == "number":
        n = int(r.passage)
        if "digits" in r.prompt or "阿拉伯" in r.prompt:
            return str(n)
        return num2words(n, lang="en") if "English words" in r.prompt else cn2an.an2cn(n)
    raise AssertionError(r.task)


def test_every_answer_is_what_another_computation_gives(dataset):
    labels = {f"{c}:{i}": label for c in ("polarity_en", "reviews_zh")
              for i, (_, label) in enumerate(data.load_corpus(c, "all"))}
    kinds = Counter()
    for records in dataset.splits.values():
        for r in records:
            if r.task == "span":
                assert r.answer in r.passage
                if re.match(r"Which year|这段话提到的是哪一年", r.prompt):
                    kinds["year"] += 1
                    years = re.findall(r"(?<![\d,.])(?:1\d{3}|20\d{2})(?![\d,])" if r.lang == "en" else
                                       r"[0-9０-９]{4}年", r.passage)
                    assert years == [r.answer], r.id
                else:
                    kinds["next"] += 1
                    cue = re.search(r'"(.+)"' if r.lang == "en" else "“(.+)”", r.prompt).group(1)
                    if r.lang == "zh":
                        assert r.passage.count(cue) == 1
                    assert (cue + (" " if r.lang == "en" else "") + r.answer) in r.passage, r.id
                continue
            assert r.answer == _expected_answer(r, labels), r.id
            if r.task == "number" and not r.answer.isdigit() and not r.answer.isascii():
                assert cn2an.cn2an(r.answer, "strict") == int(r.passage)
    assert kinds["year"] > 0 and kinds["next"] > 0
    numbers = [r for rs in dataset.splits.values() for r in rs if r.task == "number"]
    assert {len(r.passage) for r in numbers} == {1, 2, 3, 4, 5}  # every length of number is drawn
    sentiment = Counter(r.answer for r in dataset.records("train", "sentiment"))
    assert sentiment["positive"] == sentiment["negative"] and sentiment["正面"] == sentiment["负面"]


def test_the_held_out_family_is_never_in_sft(dataset):
    sft = dataset.sft("train")
    assert "last" not in {r.task for r in sft}
    assert {r.task for r in sft} == set(I.FAMILIES) - {"last"}
    assert dataset.records("test", "last") and all(r.held_out for r in dataset.records("test", "last"))
    assert len(sft) + len(dataset.records("train", "last")) == len(dataset.splits["train"])


def test_the_same_seed_gives_the_same_records_and_another_seed_others():
    small = {"train": 10, "valid": 3, "test": 3}
    a = I.build_instructions(seed=0, sizes=small, tasks=["count", "number", "span"])
    b = I.build_instructions(seed=0, sizes=small, tasks=["count", "number", "span"])
    c = I.build_instructions(seed=1, sizes=small, tasks=["count", "number", "span"])
    assert a.splits == b.splits and a.splits != c.splits
    # each (family, language, split) draws on its own: leaving a family out changes no other record
    only = I.build_instructions(seed=0, sizes=small, tasks=["number"])
    assert only.records("train") == a.records("train", "number")


def _one(dataset, task: str, lang: str) -> I.Record:
    return dataset.records("test", task, lang)[0]


def test_verify_accepts_the_answer_in_any_case_width_or_final_stop_and_nothing_else(dataset):
    for records in dataset.splits.values():
        for r in records:
            assert I.verify(r, r.answer) and I.in_format(r, r.answer), r.id
    r = _one(dataset, "sentiment", "en")
    assert I.verify(r, f"  {r.answer.upper()}.\n") and not I.verify(r, f"{r.answer} review")
    flipped = {"positive": "negative", "negative": "positive"}[r.answer]
    assert not I.verify(r, flipped) and I.in_format(r, flipped) and not I.in_format(r, "maybe")
    r = _one(dataset, "sentiment", "zh")
    assert I.verify(r, r.answer + "。") and not I.verify(r, "正面负面")
    r = _one(dataset, "count", "zh")
    wide = r.answer.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert I.verify(r, wide) and not I.verify(r, str(int(r.answer) + 1))
    assert I.in_format(r, str(int(r.answer) + 1)) and not I.in_format(r, "五") and not I.in_format(r, "")


@pytest.mark.parametrize("task,lang", [("reverse", "en"), ("reverse", "zh"), ("sort", "en")])
def test_a_reordering_is_in_format_only_if_it_has_the_phrase_items(dataset, task, lang):
    r = next(r for r in dataset.records("test", task, lang) if r.answer != r.passage)
    assert I.in_format(r, r.passage) and not I.verify(r, r.passage)
    dropped = r.answer.split()[1:] if lang == "en" else r.answer[1:]
    assert not I.in_format(r, (" " if lang == "en" else "").join(dropped))


@pytest.mark.parametrize("task,lang", [("first", "en"), ("last", "zh"), ("span", "en"), ("span", "zh")])
def test_another_part_of_the_passage_is_in_format_but_wrong(dataset, task, lang):
    r = _one(dataset, task, lang)
    other = next(w for w in (r.passage.split() if lang == "en" else list(r.passage))
                 if I.normalize(w) not in I.normalize(r.answer) and I.normalize(w))
    assert I.in_format(r, other) and not I.verify(r, other)
    assert not I.in_format(r, "xylophone" if lang == "en" else "鱻")


def test_a_number_in_the_asked_writing_is_in_format(dataset):
    by_kind = {}
    for r in dataset.records("test", "number"):
        kind = "digits" if r.answer.isdigit() else "en" if r.answer.isascii() else "zh"
        by_kind.setdefault(kind, r)
    assert set(by_kind) == {"digits", "en", "zh"}
    n = int(by_kind["digits"].answer)
    assert I.in_format(by_kind["digits"], str(n + 1)) and not I.verify(by_kind["digits"], str(n + 1))
    assert not I.in_format(by_kind["digits"], num2words(n))
    wrong = int(by_kind["en"].passage) + 1
    assert I.in_format(by_kind["en"], num2words(wrong)) and not I.verify(by_kind["en"], num2words(wrong))
    assert not I.in_format(by_kind["en"], str(wrong)) and not I.in_format(by_kind["zh"], str(wrong))
    assert I.in_format(by_kind["zh"], cn2an.an2cn(wrong)) and not I.verify(by_kind["zh"], cn2an.an2cn(wrong))


def _record(**changes) -> I.Record:
    fields = dict(id="count/en/train/7", task="count", lang="en", split="train", source="news:3",
                  prompt="How many words are in this text?\nText: a b c", answer="3", passage="a b c")
    return I.Record(**{**fields, **changes})


def _characters(messages) -> int:
    return sum(len(m["content"]) for m in messages)


def test_bad_records_raise_naming_the_record_and_the_fix():
    assert I.check_record(_record()) == _record()
    with pytest.raises(ValueError, match=r"'count/en/train/7' has an empty answer.*reference answer"):
        I.check_record(_record(answer=" \n"))
    with pytest.raises(ValueError, match=r"'count/en/train/7' has an empty prompt"):
        I.check_record(_record(prompt=""))
    two_users = _record(context=({"role": "user", "content": "Hello"},))
    with pytest.raises(ValueError, match=r"'count/en/train/7': messages 0 and 1 are both user turns.*merge"):
        I.check_record(two_users)
    few_shot = _record(context=({"role": "user", "content": "x y"}, {"role": "assistant", "content": "2"}))
    assert I.check_record(few_shot).messages()[1] == {"role": "assistant", "content": "2"}
    length = _characters(_record().messages())
    assert I.check_record(_record(), window=length, length=_characters)
    with pytest.raises(ValueError, match=rf"'count/en/train/7' is {length} tokens \(prompt {length - 1}, answer 1\)"
                                         rf", longer than the model's window of {length - 1}.*within_window"):
        I.check_record(_record(), window=length - 1, length=_characters)
    with pytest.raises(ValueError, match="needs length"):
        I.check_record(_record(), window=10)
    short = _record(id="count/en/train/8", prompt="How many words?\nText: a", answer="1", passage="a")
    assert I.within_window([_record(), short], length - 1, _characters) == [short]


@pytest.mark.parametrize("messages,error", [
    ([], "no messages"),
    ([{"role": "bot", "content": "hi"}], "role 'bot'; use one of system, user, assistant"),
    ([{"role": "user", "content": "hi"}, {"role": "system", "content": "be brief"}], "only the first message"),
    ([{"role": "assistant", "content": "hi"}], "no user turn before it"),
    ([{"role": "system", "content": "s"}, {"role": "assistant", "content": "hi"}], "no user turn before it"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "assistant", "content": "c"}],
     "messages 1 and 2 are both assistant turns"),
    ([{"role": "user", "content": "  "}], "message 0 \\(user\\) is empty"),
    ([{"role": "user", "text": "hi"}], "a message is a dict"),
])
def test_a_chat_that_is_not_one_raises(messages, error):
    with pytest.raises(ValueError, match=error):
        I.check_messages(messages, "the chat")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="sizes must give"):
        I.build_instructions(sizes={"train": 1})
    with pytest.raises(ValueError, match=r"unknown tasks or languages \['poem'\]"):
        I.build_instructions(tasks=["poem"])
    with pytest.raises(ValueError, match="the families are"):
        I.verify(_record(task="poem"), "3")


def test_a_passage_seen_in_an_earlier_split_is_dropped():
    train, valid = _record(), _record(id="count/en/valid/0", split="valid", source="news:9", passage="A  b c.")
    test = _record(id="count/en/test/0", split="test", source="news:19", passage="d e f")
    kept, dropped = I.drop_leaks({"train": [train], "valid": [valid], "test": [test]})
    assert kept == {"train": [train], "valid": [], "test": [test]} and dropped == 1


def test_the_description_shows_sizes_and_examples(dataset):
    text = dataset.describe(examples=1)
    assert text.splitlines()[0].split() == ["task", "lang", "train", "valid", "test"]
    assert "last *" in text and "held out of SFT" in text
    assert text.count("\nuser: ") == len(dataset.sizes())
    assert "user: 把这段文字倒过来写。" in text and "user: Sort the words of this text alphabetically." in text
