"""Instructions with answers a program can check: an instruction-tuning set built from the course corpora.

A *record* is one exchange: a user's instruction (``prompt``), the reference ``answer`` an assistant should
give, the ``passage`` the prompt is built on, and where that passage comes from (``source``: a document of an
``lmlib.data`` corpus, or a number). Every answer is checkable by a program (``verify``), so a model is scored
by exact match, not by a judge, and ``in_format`` tells a wrong answer of the right kind from one of no kind at
all. English and Chinese:

    family     en                                              zh
    sentiment  polarity_en: "positive" / "negative"            reviews_zh: 正面 / 负面
    count      the number of words of a phrase                 the number of characters of a phrase
    reverse    a phrase's words in reverse order               a phrase's characters in reverse order
    sort       a phrase's words in alphabetical order          -
    first      the first word of a phrase                      the first character of a phrase
    last       the last word (held out)                        the last character (held out)
    number     digits <-> English words, 中文 -> English       digits <-> 中文数字, English -> 中文
    span       wiki/news: the year a passage mentions, or      peoples_daily: the year (…年) a passage mentions,
               the word right after a given word               or the two-character word after a given word

Phrases come from sentences of ``news`` and ``wiki`` (English: 3 to 9 consecutive words, punctuation dropped)
and of ``peoples_daily`` (Chinese: whole words of its gold segmentation, 4 to 10 Han characters in all); numbers
have 1 to 5 digits, written by ``num2words`` and ``cn2an`` (``lmlib.numerals``); a span answer is copied from its
passage. Answers are compared after ``normalize`` (Unicode NFKC, case, spaces, a final stop).

Held out. The family ``last`` (``HELD_OUT``) is never trained on: ``InstructionSet.sft`` leaves it out. It
asks for something no trained instruction asks for, though the trained families hold its parts (``first``
finds an end of the phrase; ``reverse`` puts the last word first), so its accuracy measures whether
instruction tuning taught more than the instructions seen. Its train split exists only for few-shot prompts.

Splits follow the corpora's own splits by document (``lmlib.data``: an article, story, review or a People's
Daily article block is on one side only), and numbers are split by value (``lmlib.numerals.share_out``), so a
test passage comes from a document, or is a number, that no training record saw. On top of that, a valid or test
record whose passage text also occurs in an earlier split (a short phrase that two stories share) is dropped
(``InstructionSet.dropped`` counts them).

Determinism: ``build_instructions(seed)`` gives the same records for the same seed; each (family, language,
split) draws from its own ``random.Random``, so changing one family's size changes no other record.

Bad input (``check_record``, ``check_messages``): an empty prompt or answer, a chat whose roles do not
alternate (two user turns in a row), or a chat longer than a model's window raise ``ValueError`` naming the
record and what to do.

``python -m lmlib.instructions`` prints the sizes per family, language and split, and examples. This module is
data: it imports no torch.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise

from lmlib import data
from lmlib.numerals import MAX_DIGITS, draw_by_length, integers_of_length, number_en, number_zh, share_out
from lmlib.tokenize import split_sentences

LANGS = ("en", "zh")
SPLITS = ("train", "valid", "test")
SIZES = {"train": 400, "valid": 50, "test": 100}  # records per (family, language) and split, fewer if sources run out
HELD_OUT = ("last",)  # families no SFT run trains on
ROLES = ("system", "user", "assistant")

PHRASE_WORDS = (3, 9)  # an English phrase's length in words
PHRASE_CHARS = (4, 10)  # a Chinese phrase's length in characters
PASSAGE_WORDS = (8, 30)  # an English span passage's length in words
PASSAGE_CHARS = (10, 40)  # a Chinese span passage's length in characters
REVIEW_WORDS = 60  # the longest English review kept (words)
REVIEW_CHARS = 40  # the longest Chinese review kept (characters)

SENTIMENT_WORDS = {"en": {"pos": "positive", "neg": "negative"}, "zh": {"pos": "正面", "neg": "负面"}}
PROMPTS = {  # (family, language) -> the user's message; {text} is the passage
    ("sentiment", "en"): "Is this movie review positive or negative?\nReview: {text}",
    ("sentiment", "zh"): "这条商品评论是正面的还是负面的？\n评论：{text}",
    ("count", "en"): "How many words are in this text?\nText: {text}",
    ("count", "zh"): "这段文字有几个字？\n文字：{text}",
    ("reverse", "en"): "Write the words of this text in reverse order.\nText: {text}",
    ("reverse", "zh"): "把这段文字倒过来写。\n文字：{text}",
    ("sort", "en"): "Sort the words of this text alphabetically.\nText: {text}",
    ("first", "en"): "What is the first word of this text?\nText: {text}",
    ("first", "zh"): "这段文字的第一个字是什么？\n文字：{text}",
    ("last", "en"): "What is the last word of this text?\nText: {text}",
    ("last", "zh"): "这段文字的最后一个字是什么？\n文字：{text}",
}
NUMBER_PROMPTS = {  # (language, direction) -> the user's message; the direction names source and answer
    ("en", "digits->en"): "Write {text} in English words.",
    ("en", "en->digits"): "Write {text} in digits.",
    ("en", "zh->en"): "Write {text} in English words.",
    ("zh", "digits->zh"): "用中文数字写出{text}。",
    ("zh", "zh->digits"): "把{text}写成阿拉伯数字。",
    ("zh", "en->zh"): "把“{text}”写成中文数字。",
}
SPAN_PROMPTS = {
    ("en", "year"): "Which year does this passage mention?\nPassage: {text}",
    ("en", "next"): 'Which word comes right after "{cue}" in this passage?\nPassage: {text}',
    ("zh", "year"): "这段话提到的是哪一年？\n段落：{text}",
    ("zh", "next"): "这段话里“{cue}”后面紧跟的两个字是什么？\n段落：{text}",
}

HAN = re.compile(r"[\u4e00-\u9fff]+")
ENGLISH_WORD = re.compile(r"[A-Za-z]+")
YEAR_EN = re.compile(r"(?<![\d,.])(?:1\d{3}|20\d{2})(?![\d,])")
YEAR_ZH = re.compile(r"(?<![0-9０-９])[0-9０-９]{4}年")
ZH_SENTENCE_END = ("。", "！", "？")
ZH_NUMERAL = re.compile(r"[零〇一二两三四五六七八九十百千万亿]+")
EN_NUMBER_WORDS = re.compile(r"[a-z]+(?:,? [a-z]+|-[a-z]+)*")  # num2words: "two thousand, six hundred and one"


# --- a record --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One instruction and its reference answer.

    ``context``: earlier turns of the chat (e.g. few-shot demonstrations as user/assistant pairs), before
    ``prompt``. ``messages()`` is the whole chat, ending with the answer: what SFT trains on.
    """

    id: str  # "count/en/test/17": family/language/split/number
    task: str  # the task family, a key of FAMILIES
    lang: str  # "en" or "zh": the language of the instruction
    split: str
    source: str  # where the passage comes from: "news:12" (document 12 of load_corpus("news", "all")), "number:4821"
    prompt: str  # the user's message
    answer: str  # the reference answer: the assistant's message
    passage: str  # the text the prompt is built on: no passage is in two splits
    context: tuple[dict[str, str], ...] = field(default=())

    def messages(self, with_answer: bool = True) -> list[dict[str, str]]:
        """The chat as ``{"role", "content"}`` dicts (Hugging Face's form): context, prompt, and the answer."""
        chat = [*map(dict, self.context), {"role": "user", "content": self.prompt}]
        return chat + [{"role": "assistant", "content": self.answer}] if with_answer else chat

    @property
    def held_out(self) -> bool:
        return self.task in HELD_OUT


# --- bad input -------------------------------------------------------------------------------------------------


def check_messages(messages: Sequence[dict[str, str]], where: str = "the chat") -> None:
    """Raise ``ValueError`` unless ``messages`` is a chat: ``{"role", "content"}`` dicts with non-empty text, an
    optional system message first, then user and assistant turns alternating, beginning with the user."""
    if not messages:
        raise ValueError(f"{where} has no messages: a chat needs at least one user message")
    previous = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"} or "role" not in message \
                or not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: message {i} is {message!r}; a message is a dict "
                             '{"role": ..., "content": "text"}')
        role = message["role"]
        if role not in ROLES:
            raise ValueError(f"{where}: message {i} has the role {role!r}; use one of {', '.join(ROLES)}")
        if not message["content"].strip():
            raise ValueError(f"{where}: message {i} ({role}) is empty; give it text or leave the message out")
        if role == "system" and i > 0:
            raise ValueError(f"{where}: message {i} is a system message; only the first message may be one "
                             "(merge it into that one)")
        if role == "assistant" and previous in (None, "system"):
            raise ValueError(f"{where}: message {i} is an assistant turn with no user turn before it; "
                             "begin the chat (after an optional system message) with the user")
        if role == previous:
            raise ValueError(f"{where}: messages {i - 1} and {i} are both {role} turns; a chat alternates user and "
                             f"assistant: merge the two into one message, or put the "
                             f"{'assistant' if role == 'user' else 'user'} turn that is missing between them")
        previous = role


def check_record(record: Record, window: int | None = None,
                 length: Callable[[list[dict[str, str]]], int] | None = None) -> Record:
    """``record`` if it can be trained on and checked, else ``ValueError`` naming it and the fix.

    With a ``window``, ``length(messages)`` (the number of token ids of the formatted chat, e.g.
    ``len(lmlib.chat.chat_ids(messages, tokenizer))``) must be at most ``window``."""
    where = f"record {record.id!r}"
    if not record.answer.strip():
        raise ValueError(f"{where} has an empty answer: SFT would teach the model to say nothing and verify "
                         "could not score it; give the record its reference answer, or leave it out")
    if not record.prompt.strip():
        raise ValueError(f"{where} has an empty prompt: give it the instruction, or leave it out")
    check_messages(record.messages(), where)
    if window is not None:
        if length is None:
            raise ValueError("check_record needs length(messages) -> number of tokens to compare with the window")
        n, prompt = length(record.messages()), length(record.messages(with_answer=False))
        if n > window:
            raise ValueError(
                f"{where} is {n} tokens (prompt {prompt}, answer {n - prompt}), longer than the model's window of "
                f"{window}: the model cannot read it whole. Leave it out (within_window(records, window, length) "
                "keeps the records that fit), shorten its passage, or use a model with a larger block_size")
    return record


def within_window(records: Iterable[Record], window: int,
                  length: Callable[[list[dict[str, str]]], int]) -> list[Record]:
    """The records whose whole chat is at most ``window`` tokens long (``length``: as in ``check_record``)."""
    return [r for r in records if length(r.messages()) <= window]


# --- checking an answer ----------------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """The form answers are compared in: Unicode NFKC (full-width digits, letters and ！ become ASCII), case
    folded, whitespace runs made one space, and the final stops (. ! 。) dropped."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split()).rstrip(".!。 ")


def exact_match(record: Record, text: str) -> bool:
    """Whether ``text`` is the reference answer, compared after ``normalize``."""
    return normalize(text) == normalize(record.answer)


def _same_items(record: Record, text: str) -> bool:
    """A permutation of the passage's words (English) or characters (Chinese)."""
    if record.lang == "en":
        return sorted(normalize(text).split()) == sorted(normalize(record.passage).split())
    return sorted(normalize(text).replace(" ", "")) == sorted(normalize(record.passage))


def _one_item(record: Record, text: str) -> bool:
    """One word of the passage (English), or one of its characters (Chinese)."""
    answer = normalize(text)
    items = normalize(record.passage).split() if record.lang == "en" else list(normalize(record.passage))
    return answer in items


def _is_label(record: Record, text: str) -> bool:
    return normalize(text) in {normalize(w) for w in SENTIMENT_WORDS[record.lang].values()}


def _is_count(record: Record, text: str) -> bool:
    return re.fullmatch(r"[0-9]+", normalize(text)) is not None


def _is_number(record: Record, text: str) -> bool:
    """Written as the answer is: in digits, in English words, or in Chinese numerals."""
    answer, pattern = normalize(text), normalize(record.answer)
    if pattern.isdigit():
        return re.fullmatch(r"[0-9]+", answer) is not None
    kind = EN_NUMBER_WORDS if pattern.isascii() else ZH_NUMERAL
    return kind.fullmatch(answer) is not None


def _in_passage(record: Record, text: str) -> bool:
    answer = normalize(text)
    return bool(answer) and answer in normalize(record.passage)


# --- the sources: documents and their passages, by split --------------------------------------------------------


def documents(corpus: str, split: str) -> list[tuple[str, object]]:
    """The documents of ``load_corpus(corpus, split)`` with their ids ``"corpus:i"``, i their index in
    ``load_corpus(corpus, "all")``."""
    docs = data.load_corpus(corpus, "all")
    labels = data.peoples_daily_splits() if corpus == "peoples_daily" else \
        [data.split_of(i) for i in range(len(docs))]
    return [(f"{corpus}:{i}", doc) for i, (doc, label) in enumerate(zip(docs, labels, strict=True)) if label == split]


@cache
def sentences(lang: str, split: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(source, sentence, words) of the split's documents. English: ``news`` and ``wiki`` sentences
    (``split_sentences``), their words the runs of letters; Chinese: ``peoples_daily`` sentences (cut after
    。！？), their words the corpus's gold segmentation."""
    if lang == "en":
        return tuple((source, s, tuple(ENGLISH_WORD.findall(s))) for corpus in ("news", "wiki")
                     for source, doc in documents(corpus, split) for s in split_sentences(doc, lang))
    found = []
    for i, (words, label) in enumerate(zip(_peoples_daily_words(), data.peoples_daily_splits(), strict=True)):
        if label != split:
            continue
        sentence: list[str] = []
        for w in words:
            sentence.append(w)
            if w in ZH_SENTENCE_END:
                found.append((f"peoples_daily:{i}", "".join(sentence), tuple(sentence)))
                sentence = []
        if sentence:
            found.append((f"peoples_daily:{i}", "".join(sentence), tuple(sentence)))
    return tuple(found)


@cache
def _peoples_daily_words() -> tuple[tuple[str, ...], ...]:
    return tuple(map(tuple, data.load_segmented("all")))


def reviews(lang: str, split: str) -> list[tuple[str, str, str]]:
    """(source, text, label) of the split's labelled reviews short enough for a small model's window."""
    corpus = {"en": "polarity_en", "zh": "reviews_zh"}[lang]
    short = (lambda t: len(t.split()) <= REVIEW_WORDS) if lang == "en" else (lambda t: len(t) <= REVIEW_CHARS)
    return [(source, text, label) for source, (text, label) in documents(corpus, split) if short(text)]


@cache
def number_splits(seed: int) -> dict[str, tuple[tuple[int, ...], ...]]:
    """split -> the integers of each length 1..MAX_DIGITS it owns: every integer below 10^MAX_DIGITS in one split
    (``lmlib.numerals.share_out``: 80/10/10 of each length, by a seeded shuffle)."""
    rng = random.Random(f"{seed}-numbers")
    by_length = [share_out(integers_of_length(d), rng) for d in range(1, MAX_DIGITS + 1)]
    return {split: tuple(tuple(pools[split]) for pools in by_length) for split in SPLITS}


def phrase(words: Sequence[str], lang: str, rng: random.Random) -> str | None:
    """A random stretch of a sentence's words: 3-9 English words joined by spaces, or whole Chinese words of Han
    characters only, 4-10 characters in all (a phrase never cuts a word); None if the sentence has none."""
    if lang == "en":
        lo, hi = PHRASE_WORDS
        if len(words) < lo:
            return None
        k = rng.randint(lo, min(hi, len(words)))
        start = rng.randint(0, len(words) - k)
        return " ".join(words[start : start + k])
    lo, hi = PHRASE_CHARS
    runs, run = [], []  # the runs of consecutive all-Han words
    for w in (*words, "。"):
        if HAN.fullmatch(w):
            run.append(w)
        elif run:
            runs.append(run)
            run = []
    runs = [r for r in runs if sum(map(len, r)) >= lo]
    if not runs:
        return None
    run = rng.choice(runs)
    start = rng.randrange(len(run))
    text = ""
    for w in run[start:]:
        if len(text) + len(w) > hi:
            break
        text += w
    return text if len(text) >= lo else None


# --- the task families -----------------------------------------------------------------------------------------

Item = tuple[str, str, str, str]  # (prompt, answer, source, passage)


def _draw(pool: Sequence, rng: random.Random) -> Iterable:
    """The pool's items in a seeded random order."""
    order = list(range(len(pool)))
    rng.shuffle(order)
    return (pool[i] for i in order)


def make_sentiment(lang: str, split: str, n: int, rng: random.Random, seed: int) -> list[Item]:
    """As many positive as negative reviews (as far as the split has them)."""
    by_label: dict[str, list] = {}
    for source, text, label in reviews(lang, split):
        by_label.setdefault(label, []).append((source, text, label))
    picked = []
    for i, label in enumerate(sorted(by_label)):
        share = n // len(by_label) + (i < n % len(by_label))
        picked += rng.sample(by_label[label], min(share, len(by_label[label])))
    rng.shuffle(picked)
    template = PROMPTS["sentiment", lang]
    return [(template.format(text=text), SENTIMENT_WORDS[lang][label], source, text) for source, text, label in picked]


def _phrase_task(answer: Callable[[list[str]], str], task: str) -> Callable[..., list[Item]]:
    """A family whose passage is a phrase and whose answer is a function of its items (words or characters)."""

    def make(lang: str, split: str, n: int, rng: random.Random, seed: int) -> list[Item]:
        items: list[Item] = []
        for source, _, words in _draw(sentences(lang, split), rng):
            if len(items) == n:
                break
            text = phrase(words, lang, rng)
            if text is None:
                continue
            text = text.lower() if task == "sort" else text
            parts = text.split() if lang == "en" else list(text)
            joined = (" " if lang == "en" else "").join
            items.append((PROMPTS[task, lang].format(text=text), joined(answer(parts)), source, text))
        return items

    make.__doc__ = f"Phrases and their {task} answer."
    return make


def make_number(lang: str, split: str, n: int, rng: random.Random, seed: int) -> list[Item]:
    """Integers of 1 to 5 digits, as equally from each length as the split allows, in three directions by turn."""
    directions = [d for (lg, d) in NUMBER_PROMPTS if lg == lang]
    numbers = draw_by_length(number_splits(seed)[split], n, rng)
    rng.shuffle(numbers)
    items = []
    for i, value in enumerate(numbers):
        direction = directions[i % len(directions)]
        source_kind, answer_kind = direction.split("->")
        written = {"digits": str(value), "en": number_en(value), "zh": number_zh(value)}
        prompt = NUMBER_PROMPTS[lang, direction].format(text=written[source_kind])
        items.append((prompt, written[answer_kind], f"number:{value}", str(value)))
    return items


SPAN_KINDS = ("year", "next")


def span_question(sentence: str, words: Sequence[str], lang: str, kind: str,
                  rng: random.Random) -> tuple[str, str] | None:
    """(question, answer) of the template ``kind`` whose answer is a span of ``sentence`` (8-30 words, 10-40
    characters): "year", the one year it mentions; "next", the word after a cue word that occurs once in it
    (Chinese: a gold word of two characters after a gold word of two or more). None if the template does not fit."""
    size = len(sentence.split()) if lang == "en" else len(sentence)
    lo, hi = PASSAGE_WORDS if lang == "en" else PASSAGE_CHARS
    if not lo <= size <= hi:
        return None
    template = SPAN_PROMPTS[lang, kind]
    if kind == "year":
        years = (YEAR_EN if lang == "en" else YEAR_ZH).findall(sentence)
        return (template.format(text=sentence), years[0]) if len(years) == 1 else None
    if lang == "en":
        found = list(ENGLISH_WORD.finditer(sentence))  # the words, with where they are
        counts = Counter(w.group().casefold() for w in found)
        cues = [i for i, (w, after) in enumerate(pairwise(found)) if counts[w.group().casefold()] == 1
                and len(w.group()) >= 3 and sentence[w.end() : after.start()] == " "]
        if not cues:
            return None
        i = rng.choice(cues)
        return template.format(cue=found[i].group(), text=sentence), found[i + 1].group()
    cues = [i for i, (w, after) in enumerate(pairwise(words)) if len(w) >= 2 and len(after) == 2
            and HAN.fullmatch(w + after) and sentence.count(w) == 1]
    if not cues:
        return None
    i = rng.choice(cues)
    return template.format(cue=words[i], text=sentence), words[i + 1]


def make_span(lang: str, split: str, n: int, rng: random.Random, seed: int) -> list[Item]:
    """Passages and templated questions a span of them answers, half of each template (``SPAN_KINDS``)."""
    wanted = {kind: n // len(SPAN_KINDS) + (i < n % len(SPAN_KINDS)) for i, kind in enumerate(SPAN_KINDS)}
    items: list[Item] = []
    for source, sentence, words in _draw(sentences(lang, split), rng):
        if not any(wanted.values()):
            break
        for kind in (k for k in SPAN_KINDS if wanted[k]):
            qa = span_question(sentence, words, lang, kind, rng)
            if qa is not None:
                items.append((qa[0], qa[1], source, sentence))
                wanted[kind] -= 1
                break
    rng.shuffle(items)
    return items


@dataclass(frozen=True)
class Family:
    """A task family: how to make its records, and how to check an answer to one."""

    name: str
    langs: tuple[str, ...]
    make: Callable[[str, str, int, random.Random, int], list[Item]]  # (lang, split, n, rng, seed) -> items
    verify: Callable[[Record, str], bool]  # is the answer right
    in_format: Callable[[Record, str], bool]  # is it an answer of the asked kind (right or wrong)
    description: str


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("sentiment", LANGS, make_sentiment, exact_match, _is_label, "a review's polarity"),
    Family("count", LANGS, _phrase_task(lambda p: [str(len(p))], "count"), exact_match, _is_count,
           "how many words (en) or characters (zh)"),
    Family("reverse", LANGS, _phrase_task(lambda p: p[::-1], "reverse"), exact_match, _same_items,
           "words (en) or characters (zh) in reverse order"),
    Family("sort", ("en",), _phrase_task(sorted, "sort"), exact_match, _same_items, "words in alphabetical order"),
    Family("first", LANGS, _phrase_task(lambda p: p[:1], "first"), exact_match, _one_item,
           "the first word (en) or character (zh)"),
    Family("last", LANGS, _phrase_task(lambda p: p[-1:], "last"), exact_match, _one_item,
           "the last word (en) or character (zh)"),
    Family("number", LANGS, make_number, exact_match, _is_number, "digits <-> words <-> Chinese numerals"),
    Family("span", LANGS, make_span, exact_match, _in_passage, "copy the span of a passage that answers"),
)}


def verify(record: Record, answer_text: str) -> bool:
    """Whether ``answer_text`` answers ``record`` correctly (its family's check; exact match after
    ``normalize``)."""
    return _family(record).verify(record, answer_text)


def in_format(record: Record, answer_text: str) -> bool:
    """Whether ``answer_text`` is an answer of the kind asked (a label, a count, a permutation of the phrase, one
    of its words, a number written the asked way, a span of the passage), right or wrong."""
    return _family(record).in_format(record, answer_text)


def _family(record: Record) -> Family:
    if record.task not in FAMILIES:
        raise ValueError(f"record {record.id!r} has the task {record.task!r}; the families are {', '.join(FAMILIES)}")
    return FAMILIES[record.task]


# --- the data set ----------------------------------------------------------------------------------------------


@dataclass
class InstructionSet:
    """The records of each split, and how many valid/test records were dropped because their passage also
    occurs in an earlier split."""

    seed: int
    splits: dict[str, list[Record]]
    dropped: int = 0

    def records(self, split: str, task: str | None = None, lang: str | None = None) -> list[Record]:
        return [r for r in self.splits[split] if task in (None, r.task) and lang in (None, r.lang)]

    def sft(self, split: str = "train") -> list[Record]:
        """The records an SFT run may train on: every family but the held-out ones."""
        return [r for r in self.splits[split] if not r.held_out]

    def sizes(self) -> list[dict]:
        """One row per (family, language): its number of records in each split."""
        counts = Counter((r.task, r.lang, r.split) for rs in self.splits.values() for r in rs)
        return [{"task": f.name, "lang": lang, "held out": f.name in HELD_OUT,
                 **{split: counts[f.name, lang, split] for split in SPLITS}}
                for f in FAMILIES.values() for lang in f.langs if any(counts[f.name, lang, s] for s in SPLITS)]

    def describe(self, examples: int = 1) -> str:
        """The sizes as a table, then ``examples`` training records of each (family, language)."""
        lines = [f"{'task':<10}{'lang':<5}{'train':>6}{'valid':>6}{'test':>6}"]
        for row in self.sizes():
            name = row["task"] + (" *" if row["held out"] else "")
            lines.append(f"{name:<10}{row['lang']:<5}" + "".join(f"{row[s]:>6}" for s in SPLITS))
        total = {s: len(self.splits[s]) for s in SPLITS}
        lines.append(f"{'all':<15}" + "".join(f"{total[s]:>6}" for s in SPLITS))
        lines.append(f"* held out of SFT; dropped for a passage seen in an earlier split: {self.dropped}")
        for row in self.sizes():
            for r in self.records("train", row["task"], row["lang"])[:examples]:
                lines.append(f"\n[{r.id}] from {r.source}\nuser: {r.prompt}\nassistant: {r.answer}")
        return "\n".join(lines)


def build_instructions(seed: int = 0, sizes: dict[str, int] | None = None,
                       tasks: Sequence[str] | None = None, langs: Sequence[str] = LANGS) -> InstructionSet:
    """The instruction set: ``sizes[split]`` records per (family, language) (default ``SIZES``; fewer where a
    split's sources run out), for the given ``tasks`` (default all of ``FAMILIES``) and ``langs``."""
    sizes = SIZES if sizes is None else sizes
    if set(sizes) != set(SPLITS) or any(not isinstance(n, int) or n < 0 for n in sizes.values()):
        raise ValueError(f"sizes must give a number >= 0 of records for each of {SPLITS}, got {sizes!r}")
    unknown = sorted(set(tasks or ()) - set(FAMILIES)) + sorted(set(langs) - set(LANGS))
    if unknown:
        raise ValueError(f"unknown tasks or languages {unknown}: the families are {', '.join(FAMILIES)}, "
                         f"the languages {', '.join(LANGS)}")
    splits: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for family in (FAMILIES[t] for t in (tasks or FAMILIES)):
        for lang in (lg for lg in family.langs if lg in langs):
            for split in SPLITS:
                rng = random.Random(f"{seed}-{family.name}-{lang}-{split}")
                items = family.make(lang, split, sizes[split], rng, seed)
                splits[split] += [Record(f"{family.name}/{lang}/{split}/{i}", family.name, lang, split, source,
                                         prompt, answer, passage)
                                  for i, (prompt, answer, source, passage) in enumerate(items)]
    splits, dropped = drop_leaks(splits)
    for records in splits.values():
        for r in records:
            check_record(r)
    return InstructionSet(seed, splits, dropped)


def drop_leaks(splits: dict[str, list[Record]]) -> tuple[dict[str, list[Record]], int]:
    """Each split less the records whose passage (after ``normalize``) occurs in an earlier split (train, valid,
    test), and how many were dropped."""
    seen: set[str] = set()
    kept, dropped = {}, 0
    for split in SPLITS:
        records = splits.get(split, [])
        kept[split] = [r for r in records if normalize(r.passage) not in seen]
        dropped += len(records) - len(kept[split])
        seen |= {normalize(r.passage) for r in records}
    return kept, dropped


def main() -> None:
    print(build_instructions().describe(examples=1))


if __name__ == "__main__":
    main()
