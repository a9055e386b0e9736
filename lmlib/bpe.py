"""Byte-level byte-pair encoding (BPE), written out: GPT-2's scheme, equal to Hugging Face ``tokenizers``.

Training (``train_bpe``) learns a list of merges from a corpus:

1. **Pre-tokenize.** GPT-2's regular expression ``GPT2_PATTERN`` cuts each text
   into pieces: a contraction (``'s``), a run of letters or of digits or of other
   symbols, each with at most one leading space, or a run of whitespace. No merge
   ever crosses a piece boundary. Each piece becomes its UTF-8 bytes, each byte
   written as one printable character (GPT-2's byte symbols: a space is ``Ġ``,
   a newline ``Ċ``), so a piece is a string of byte symbols: a *word*.
2. **Count words.** The corpus becomes ``{word: how often it occurs}``;
   every later step works on distinct words, weighted by their counts.
3. **Start the vocabulary**: the special tokens (ids 0, 1, ...), then the 256
   byte symbols in code-point order. Every word is a sequence of these ids.
4. **Merge.** Count every adjacent pair of symbols, weighted by word counts:
   ``c(a, b)``. Repeatedly take the most frequent pair, ties going to the
   smallest pair of ids ``(id(a), id(b))``, give ``ab`` the next free id
   (unless the string ``ab`` is already a token: then it keeps its id), and
   replace every ``a b`` in every word by ``ab``, left to right. Stop when the
   vocabulary has ``vocab_size`` tokens, or when the best pair occurs fewer than
   ``min_frequency`` times.

The counts are updated, not recounted: merging ``a b`` into ``ab`` in a word
``... x a b y ...`` only changes the pairs next to it, ``c(x, a) -= n``,
``c(x, ab) += n``, ``c(b, y) -= n``, ``c(ab, y) += n`` (``n``: the word's
count), and only the words that contain ``a b`` are visited, found in an index
pair -> words. A heap hands out the most frequent pair; an entry whose count has
gone out of date is put back with its current count when it surfaces.
Recounting every pair after every merge (``train_bpe_naive``) gives the same
merges, at a cost of one pass over the corpus per merge.

Encoding (``BPE.encode``) pre-tokenizes the same way and, within each word,
applies the merges by rank as GPT-2 does: while some adjacent pair is a merge,
merge every occurrence of the earliest-learned one. Decoding maps tokens back
to bytes and the bytes to text, so ``decode(encode(text)) == text`` for every
string that has a UTF-8 encoding (a lone surrogate has none: ``ValueError``).

This equals ``tokenizers``' ``BpeTrainer`` with a ``ByteLevel(add_prefix_space=False)``
pre-tokenizer, ``initial_alphabet=ByteLevel.alphabet()`` and the same special
tokens, ``vocab_size`` and ``min_frequency`` (``lmlib.tokenize.BPETokenizer``):
the same merges in the same order, the same ids, the same encodings
(``tests/test_bpe.py``). Its tie rule is the ``Ord`` of its ``Merge`` struct
(count, then the smaller pair of ids); its ``min_frequency`` stops training at
the first pair below it, so 0 and 1 mean the same. The ``regex`` package gives
the ``\\p{L}`` and ``\\p{N}`` classes GPT-2's pattern needs (Python's ``re``
has no Unicode property classes). Its Unicode tables are newer than
``tokenizers``' (17.0 against 16.0): the characters Unicode 17.0 added (CJK
Extension J, ...) are letters or digits here and symbols there, so text holding
them is cut differently; every other character is cut alike.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path

from lmlib._deps import require
from lmlib.tokenize import SPECIALS, _gpt2_byte_symbols, readable_token

# GPT-2's pre-tokenizer, as tokenizers' ByteLevel pre-tokenizer uses it.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
BYTE_OF_SYMBOL: dict[str, int] = _gpt2_byte_symbols()
SYMBOL_OF_BYTE: dict[int, str] = {b: s for s, b in BYTE_OF_SYMBOL.items()}
# The byte symbols in the order they get ids after the special tokens: by code point, as tokenizers sorts them.
ALPHABET: tuple[str, ...] = tuple(sorted(BYTE_OF_SYMBOL))

Pair = tuple[int, int]  # two token ids
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@cache
def _pattern():
    return require("regex").compile(GPT2_PATTERN)


# --- 1-2. pre-tokenize and count words ------------------------------------------------------------

def pretokenize(text: str) -> list[str]:
    """The pieces GPT-2's pattern cuts ``text`` into (no merge crosses their edges)."""
    return _pattern().findall(text)


def to_symbols(text: str) -> str:
    """``text`` as its UTF-8 bytes, one byte symbol per byte:
    ``" the" -> "Ġthe"``, ``"中" -> "ä¸Ń"``."""
    check_encodable(text)
    raw = text.encode("utf-8").decode("latin-1")  # byte b -> chr(b)
    return raw.translate(SYMBOL_OF_BYTE)  # chr(b) -> b's symbol


def byte_words(text: str) -> list[str]:
    """The words of ``text`` as training and encoding see them: its pieces written in byte symbols."""
    check_encodable(text)
    return [to_symbols(piece) for piece in pretokenize(text)]


def check_encodable(text: str) -> None:
    """Raise ValueError, naming the position, if ``text`` holds a lone surrogate (a string UTF-8 cannot encode)."""
    found = _LONE_SURROGATE.search(text)
    if found:
        raise ValueError(
            f"the text has a lone surrogate {found.group()!r} at position {found.start()} (of {len(text)}): it is "
            "not a character and has no UTF-8 encoding, so byte-level BPE cannot encode it (tokenizers refuses it "
            "too). Such strings come from decoding bytes with errors='surrogateescape' or from JSON with a broken "
            "\\u escape; repair the text first, e.g. text.encode('utf-8', 'replace').decode('utf-8')")


def count_words(texts: Iterable[str]) -> Counter[str]:
    """How often each word (a piece in byte symbols) occurs in ``texts``."""
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, not one string: "
                        "pass [text]")
    pieces: Counter[str] = Counter()
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is a {type(text).__name__}, not a str (for a "
                            "labelled corpus, pass [text for text, label in documents])")
        try:
            check_encodable(text)
        except ValueError as e:
            raise ValueError(f"text {i}: {e}") from None
        pieces.update(pretokenize(text))
    # distinct pieces are distinct words
    return Counter({to_symbols(piece): count for piece, count in pieces.items()})


# --- 3. the starting vocabulary -------------------------------------------------------------------

def initial_vocab(special_tokens: Sequence[str] = SPECIALS) -> dict[str, int]:
    """Token -> id before any merge: the special tokens, then the 256 byte symbols in code-point order."""
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special_tokens has repeats: {list(special_tokens)}")
    vocab = {token: i for i, token in enumerate(special_tokens)}
    for symbol in ALPHABET:
        vocab.setdefault(symbol, len(vocab))  # a special token that is one byte symbol keeps its special id
    return vocab


def _start(texts: Iterable[str], vocab_size: int, min_frequency: int, special_tokens: Sequence[str]):
    """Check the settings; the starting vocabulary, each distinct word as a list of ids, and their counts."""
    vocab = initial_vocab(special_tokens)
    if vocab_size < len(vocab):
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the starting vocabulary: byte-level BPE needs at least "
            f"{len(vocab)} ({len(special_tokens)} special tokens + the 256 byte symbols)"
        )
    if min_frequency < 0:
        raise ValueError(f"min_frequency must be >= 0, got {min_frequency}")
    word_counts = count_words(texts)
    if not word_counts:
        raise ValueError("the corpus is empty (no texts, or only empty strings): pass the training texts")
    words = [[vocab[symbol] for symbol in word] for word in word_counts]
    return vocab, words, list(word_counts.values())


def _add_token(vocab: dict[str, int], tokens: list[str], pair: Pair) -> int:
    """The id of the token ``pair`` merges into, added to ``vocab`` unless that string is already a token."""
    text = tokens[pair[0]] + tokens[pair[1]]
    if text not in vocab:
        vocab[text] = len(tokens)
        tokens.append(text)
    return vocab[text]


# --- 4. the merge loop -----------------------------------------------------------------------------

def merge_word(word: list[int], pair: Pair, new: int) -> list[tuple[Pair, int]]:
    """Replace each ``a b`` in ``word`` (in place, left to right) by ``new``;
    return the changes of the other pairs.

    Each change is ``(pair, +1 or -1)``: for ``x a b y`` -> ``x new y``, the pairs
    ``(x, a)`` and ``(b, y)`` lose one occurrence, ``(x, new)`` and ``(new, y)``
    gain one. (The merged pair itself disappears from the word.)
    """
    a, b = pair
    changes: list[tuple[Pair, int]] = []
    i = _find_pair(word, a, b, 0)
    while i >= 0:
        if i > 0:
            changes += [((word[i - 1], a), -1), ((word[i - 1], new), +1)]
        if i + 2 < len(word):
            changes += [((b, word[i + 2]), -1), ((new, word[i + 2]), +1)]
        word[i : i + 2] = [new]
        i = _find_pair(word, a, b, i + 1)
    return changes


def _find_pair(word: list[int], a: int, b: int, start: int) -> int:
    """The first position ``i >= start`` with ``word[i:i + 2] == [a, b]``, or -1."""
    while True:
        try:
            i = word.index(a, start, len(word) - 1)
        except ValueError:
            return -1
        if word[i + 1] == b:
            return i
        start = i + 1


def count_pairs(words: list[list[int]],
                 counts: list[int]) -> tuple[Counter[Pair], dict[Pair, set[int]]]:
    """Every adjacent pair's count (weighted by word counts), and which words (by index)
    hold it."""
    pair_counts: Counter[Pair] = Counter()
    where: dict[Pair, set[int]] = defaultdict(set)
    for w, (word, count) in enumerate(zip(words, counts, strict=True)):
        for pair in pairwise(word):
            pair_counts[pair] += count
            where[pair].add(w)
    return pair_counts, where


def _learn_merges(words: list[list[int]], counts: list[int], vocab: dict[str, int],
                  vocab_size: int, min_frequency: int) -> list[Pair]:
    """The merge loop, with pair counts updated incrementally. Changes ``words`` and
    ``vocab``; returns the merges."""
    tokens = list(vocab)  # id -> token
    pair_counts, where = count_pairs(words, counts)
    # most frequent first, then the smallest ids
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while len(vocab) < vocab_size and heap:
        negative_count, pair = heapq.heappop(heap)
        count = pair_counts[pair]
        if -negative_count != count:  # out of date: put it back with its current count
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < max(min_frequency, 1):
            break  # every other pair is rarer still
        new = _add_token(vocab, tokens, pair)
        merges.append(pair)
        grown: set[Pair] = set()
        for w in where.pop(pair):  # only the words that hold the pair (or once did)
            for changed, delta in merge_word(words[w], pair, new):
                pair_counts[changed] += delta * counts[w]
                if delta > 0:
                    where[changed].add(w)
                    grown.add(changed)
        del pair_counts[pair]
        for changed in grown:  # pairs with the new token: their counts rose, new entries
            heapq.heappush(heap, (-pair_counts[changed], changed))
    return merges


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
              special_tokens: Sequence[str] = SPECIALS) -> BPE:
    """Learn byte-level BPE merges from ``texts`` until the vocabulary has ``vocab_size``
    tokens (the module docstring has the steps).

    ``min_frequency``: a pair is merged only if it occurs at least this often
    (training stops at the first pair below it, so the vocabulary may stay
    smaller than ``vocab_size``). The defaults are ``BPETokenizer.train``'s.

    A merge whose string is already a token (a special token spelled in byte
    symbols, such as ``"Ġthe"``) gives that token's id and does not grow the
    vocabulary, as in ``tokenizers``.
    """
    vocab, words, counts = _start(texts, vocab_size, min_frequency, special_tokens)
    merges = _learn_merges(words, counts, vocab, vocab_size, min_frequency)
    tokens = list(vocab)  # id -> token, new tokens included
    return BPE(vocab, [(tokens[a], tokens[b]) for a, b in merges], tuple(special_tokens))


def train_bpe_naive(texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
                    special_tokens: Sequence[str] = SPECIALS) -> BPE:
    """``train_bpe`` recounting every pair after every merge: the same merges, one pass over the corpus per merge."""
    vocab, words, counts = _start(texts, vocab_size, min_frequency, special_tokens)
    tokens = list(vocab)
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size:
        pair_counts, _ = count_pairs(words, counts)
        pair = min(pair_counts, key=lambda p: (-pair_counts[p], p), default=None)
        if pair is None or pair_counts[pair] < max(min_frequency, 1):
            break
        new = _add_token(vocab, tokens, pair)
        merges.append((tokens[pair[0]], tokens[pair[1]]))
        for word in words:
            merge_word(word, pair, new)
    return BPE(vocab, merges, tuple(special_tokens))


# --- the model: encode and decode -----------------------------------------------------------------

@dataclass
class BPE:
    """A trained byte-level BPE: ``vocab`` (token -> id), ``merges`` in the order learned, the special tokens.

    ``BPE.from_merges(merges)`` rebuilds the vocabulary from a merge list.
    """

    vocab: dict[str, int]
    merges: list[tuple[str, str]]
    special_tokens: tuple[str, ...] = SPECIALS
    _ranks: dict[tuple[str, str], int] = field(init=False, repr=False, compare=False)
    _tokens: list[str] = field(init=False, repr=False, compare=False)
    _cache: dict[str, list[str]] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.merges = [tuple(m) for m in self.merges]
        for i, (a, b) in enumerate(self.merges):
            unknown = [side for side in (a, b, a + b) if side not in self.vocab]
            if unknown:
                raise ValueError(f"merge {i} {(a, b)!r} uses or makes {unknown[0]!r}, which is not in the vocabulary")
        self._ranks = {pair: rank for rank, pair in reversed(list(enumerate(self.merges)))}  # first rank wins
        self._tokens = sorted(self.vocab, key=self.vocab.__getitem__)
        if [self.vocab[t] for t in self._tokens] != list(range(len(self._tokens))):
            raise ValueError("the vocabulary's ids must be 0, 1, ..., len(vocab) - 1, each used once")
        missing = [s for s in (*self.special_tokens, *ALPHABET) if s not in self.vocab]
        if missing:
            raise ValueError(f"the vocabulary lacks {missing[:5]!r}: it must hold the special tokens and "
                             "the 256 byte symbols, so that every text can be encoded")

    @classmethod
    def from_merges(cls, merges: Iterable[Sequence[str]], special_tokens: Sequence[str] = SPECIALS) -> BPE:
        """The model a merge list defines: ids as training gives them (specials, bytes, then each new merge)."""
        vocab = initial_vocab(special_tokens)
        merges = [tuple(m) for m in merges]
        for i, merge in enumerate(merges):
            if len(merge) != 2:
                raise ValueError(f"merge {i} is {merge!r}: a merge is a pair of strings (a, b)")
            a, b = merge
            for side in (a, b):
                if side not in vocab:
                    raise ValueError(
                        f"merge {i} {(a, b)!r} uses {side!r}, which is neither a byte symbol nor made by an earlier "
                        "merge: list merges in the order they were learned, each side in GPT-2's byte symbols "
                        "(lmlib.bpe.to_symbols(' the') == 'Ġthe')")
            vocab.setdefault(a + b, len(vocab))
        return cls(vocab, merges, tuple(special_tokens))

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"BPE(vocab_size={len(self.vocab)}, merges={len(self.merges)}, first={self.show_merges(3)})"

    def tokens_by_id(self) -> list[str]:
        """Every token at the position of its id."""
        return list(self._tokens)

    def truncated(self, vocab_size: int) -> BPE:
        """The model training would have stopped at with ``vocab_size`` (BPE is greedy: a prefix of the merges)."""
        if vocab_size < len(self.vocab) - len(self.merges) or vocab_size > len(self.vocab):
            raise ValueError(f"vocab_size must be between {len(self.vocab) - len(self.merges)} and {len(self.vocab)}")
        vocab, n = initial_vocab(self.special_tokens), 0
        while n < len(self.merges) and len(vocab) < vocab_size:  # training's stopping rule
            vocab.setdefault("".join(self.merges[n]), len(vocab))
            n += 1
        return BPE.from_merges(self.merges[:n], self.special_tokens)

    def _merge_word(self, word: str) -> list[str]:
        """A word (in byte symbols) as tokens: merge the earliest-learned pair, everywhere,
        until none is left."""
        if word in self._cache:
            return self._cache[word]
        symbols = list(word)
        while len(symbols) > 1:
            ranks = [self._ranks[pair] for pair in pairwise(symbols) if pair in self._ranks]
            if not ranks:
                break
            a, b = self.merges[min(ranks)]  # the earliest-learned pair in the word
            merged, i = [], 0
            while i < len(symbols):
                if symbols[i] == a and i + 1 < len(symbols) and symbols[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self._cache[word] = symbols
        return symbols

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` (as GPT-2 shows them: a space is ``Ġ``). Special tokens in
        the text are kept whole."""
        tokens = []
        for part in self._split_specials(text):
            if part in self.special_tokens:
                tokens.append(part)
            else:
                tokens += [t for word in byte_words(part) for t in self._merge_word(word)]
        return tokens

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``."""
        return [self.vocab[t] for t in self.tokenize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of token ids; bytes that are not whole UTF-8 characters (a cut-off id
        sequence) become U+FFFD."""
        raw = bytearray()
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self._tokens):
                raise IndexError(f"token id {i} is outside the vocabulary "
                                 f"(ids 0 to {len(self._tokens) - 1})")
            token = self._tokens[i]
            if token in self.special_tokens:
                raw += token.encode("utf-8")
            else:
                raw += bytes(BYTE_OF_SYMBOL[c] for c in token)
        return raw.decode("utf-8", errors="replace")

    def show_merges(self, n: int | None = None) -> list[tuple[str, str]]:
        """The first ``n`` merges as text (a leading space is " "), pieces of characters as hex bytes ``<e4 b8>``."""
        return [(readable_token(a), readable_token(b)) for a, b in self.merges[:n]]

    def _split_specials(self, text: str) -> list[str]:
        """``text`` cut around its special tokens (longest first), as tokenizers does before pre-tokenizing."""
        if not self.special_tokens:
            return [text]
        return [part for part in _specials_pattern(self.special_tokens).split(text) if part]


@cache
def _specials_pattern(special_tokens: tuple[str, ...]):
    regex = require("regex")
    return regex.compile("(" + "|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True)) + ")")


# --- tokens per character -------------------------------------------------------------------------

def tokens_per_character(corpora: dict[str, tuple[Sequence[str], Sequence[str]]],
                         vocab_sizes: Sequence[int] = (300, 1000, 4000),
                         min_frequency: int = 2) -> list[dict]:
    """How many BPE tokens a character costs, per corpus and vocabulary size: a row each.

    ``corpora`` maps a name to its ``(train, valid)`` texts. Each corpus is trained
    once, at the largest size; the smaller vocabularies are its first merges
    (``BPE.truncated``), exactly what training at that size would give. Measured on
    ``valid`` with ``lmlib.tokenize.tokenizer_stats``, characters as the yardstick.
    """
    from lmlib.tokenize import tokenizer_stats

    rows = []
    for name, (train, valid) in corpora.items():
        largest = train_bpe(train, max(vocab_sizes), min_frequency)
        n_chars = sum(len(text) for text in valid)
        for size in sorted(vocab_sizes):
            bpe = largest.truncated(min(size, len(largest)))
            stats = tokenizer_stats(bpe.tokenize, train, valid, n_chars,
                                    vocabulary=bpe.vocab)
            per_char = stats["tokens per word"]  # the "words" counted here are characters
            rows.append({"corpus": name, "vocab_size": len(bpe),
                         "tokens per character": per_char,
                         "characters per token": 1 / per_char})
    return rows


def read_markdown_tables(path: str | Path) -> list[list[dict[str, str]]]:
    """The tables of a Markdown file (such as ``benchmarks/results/bpe.md``), in order.

    Each table is a list of rows, each row a dict from the header's column names to
    the cells' text (stripped), so a reader names the columns it uses.
    """
    tables: list[list[dict[str, str]]] = []
    header: list[str] | None = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None  # a table ends at the first line that is not a row
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            tables.append([])
        elif set("".join(cells)) <= set("-: "):  # the |---|---| line under the header
            continue
        else:
            if len(cells) != len(header):
                raise ValueError(f"{path}: the row {line!r} has {len(cells)} cells, its header "
                                 f"{len(header)}; fix the table (a '|' inside a cell must be escaped)")
            tables[-1].append(dict(zip(header, cells, strict=True)))
    return tables
