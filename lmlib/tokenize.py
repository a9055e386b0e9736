"""Tokenization: turning text into the discrete symbols a language model predicts.

Four tokenizers, from smallest unit to largest, and the vocabulary that maps
tokens to integer ids:

- ``char_tokenize``: every character is a token (no out-of-vocabulary problem,
  long sequences);
- ``word_tokenize``: words and punctuation by a regular expression (short
  sequences, a long tail of rare words);
- ``BPETokenizer``: byte-level byte-pair encoding trained with Hugging Face
  ``tokenizers`` (GPT-2's scheme): start from the 256 bytes and repeatedly merge
  the most frequent adjacent pair, so any text round-trips and nothing is unknown;
- ``segment_zh``: Chinese word segmentation with ``jieba``, scored against the
  People's Daily gold segmentation by ``segmentation_prf``, its differences
  sorted by ``segmentation_differences``.

``Vocab`` maps tokens to ids with the special tokens ``<pad>``, ``<unk>``,
``<bos>`` and ``<eos>``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from lmlib._deps import require

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)

# Words (letters/digits, with inner apostrophes or hyphens: "don't", "state-of-the-art")
# and single punctuation marks.
_WORD_RE = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")
# A sentence ends after . ! ? and any closing quotes or brackets (kept with the sentence);
# in English the next sentence must start, after spaces, with a capital or digit.
_SENTENCE_END_EN = re.compile(r"[.!?][\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])")
_SENTENCE_END_ZH = re.compile(r"[。！？!?][”’」』）)]*")


def char_tokenize(text: str, keep_spaces: bool = True) -> list[str]:
    """Every character is a token; whitespace runs become one ``" "`` (or vanish)."""
    text = re.sub(r"\s+", " ", text).strip()
    return [c for c in text if keep_spaces or c != " "]


def word_tokenize(text: str, lowercase: bool = False) -> list[str]:
    """Words and punctuation marks, split by a regular expression."""
    if lowercase:
        text = text.lower()
    return _WORD_RE.findall(text)


def split_sentences(text: str, lang: str = "en") -> list[str]:
    """Split a document into sentences with punctuation rules (no trained model).

    English splits after ``. ! ?`` followed by space and a capital or digit;
    Chinese splits after ``。！？``. Abbreviations such as "Dr. Smith" are split
    wrongly: a known limit of rule-based splitting, fine for corpus statistics.
    """
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
    end = _SENTENCE_END_EN if lang == "en" else _SENTENCE_END_ZH
    sentences = []
    for paragraph in text.split("\n"):
        start = 0
        for m in end.finditer(paragraph):
            sentences.append(paragraph[start : m.end()])
            start = m.end()
        sentences.append(paragraph[start:])
    return [s.strip() for s in sentences if s.strip()]


def segment_zh(text: str) -> list[str]:
    """Chinese word segmentation with jieba (its default dictionary and HMM for new words)."""
    jieba = require("jieba")
    jieba.setLogLevel(logging.WARNING)  # jieba prints load timings to stderr otherwise
    return [w for w in jieba.cut(text, HMM=True) if w.strip()]


def _spans(words: Sequence[str]) -> set[tuple[int, int]]:
    spans, start = set(), 0
    for w in words:
        spans.add((start, start + len(w)))
        start += len(w)
    return spans


def segmentation_prf(
    predicted: Iterable[Sequence[str]], gold: Iterable[Sequence[str]]
) -> tuple[float, float, float]:
    """Word-level precision, recall and F1 of a segmentation against gold.

    A predicted word is correct when its character span (start, end) is a gold
    word's span. Each predicted/gold pair must segment the same text.
    """
    correct = n_pred = n_gold = 0
    for i, (p, g) in enumerate(zip(predicted, gold, strict=True)):
        if "".join(p) != "".join(g):
            raise ValueError(
                f"pair {i} segments different texts: {''.join(p)[:30]!r} vs {''.join(g)[:30]!r}; "
                "segment the gold text itself (''.join(gold_words))"
            )
        ps, gs = _spans(p), _spans(g)
        correct += len(ps & gs)
        n_pred += len(ps)
        n_gold += len(gs)
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def segmentation_differences(
    predicted: Iterable[Sequence[str]], gold: Iterable[Sequence[str]]
) -> dict[str, Counter[str]]:
    """The predicted words that are not gold words, by how they differ, with their counts.

    - ``"join gold words"``: the word starts and ends on gold word boundaries
      but holds two or more gold words (e.g. a full name that the gold
      standard cuts into surname and given name);
    - ``"split a gold word"``: the word is a piece of one gold word;
    - ``"cross a gold boundary"``: the word straddles the end of a gold word.
    """
    kinds: dict[str, Counter[str]] = {k: Counter() for k in ("join gold words", "split a gold word",
                                                              "cross a gold boundary")}
    for p, g in zip(predicted, gold, strict=True):
        gold_spans = _spans(g)
        boundaries = {b for span in gold_spans for b in span}
        start = 0
        for word in p:
            end = start + len(word)
            if (start, end) not in gold_spans:
                if start in boundaries and end in boundaries:
                    kinds["join gold words"][word] += 1
                elif any(start < b < end for b in boundaries):
                    kinds["cross a gold boundary"][word] += 1
                else:
                    kinds["split a gold word"][word] += 1
            start = end
    return kinds


def tokenizer_stats(
    tokenize: Callable[[str], list[str]],
    train: Sequence[str],
    valid: Sequence[str],
    valid_words: int,
    vocabulary: Iterable[str] | None = None,
) -> dict[str, float]:
    """How a tokenizer cuts a corpus: vocabulary size, tokens per word and OOV rate on valid.

    ``valid_words`` is the number of words in ``valid`` (by whatever counts as a
    word in that language), the yardstick for sequence length. The vocabulary is
    the tokens seen in ``train`` unless the tokenizer has a fixed one (BPE's
    learned vocabulary): pass it as ``vocabulary``. A valid token outside the
    vocabulary is out of vocabulary (OOV).
    """
    train_vocab = set(vocabulary) if vocabulary is not None else {t for text in train for t in tokenize(text)}
    valid_tokens = [t for text in valid for t in tokenize(text)]
    oov = sum(t not in train_vocab for t in valid_tokens)
    return {
        "vocabulary": len(train_vocab),
        "tokens per word": len(valid_tokens) / valid_words,
        "OOV %": 100 * oov / len(valid_tokens),
    }


class Vocab:
    """Token <-> id mapping with the special tokens ``<pad> <unk> <bos> <eos>`` (ids 0-3).

    Tokens are ordered by descending count, then alphabetically, so the same
    corpus always gives the same ids. Tokens seen fewer than ``min_count`` times
    map to ``<unk>``.
    """

    def __init__(
        self, tokens: Iterable[str] = (), min_count: int = 1, max_size: int | None = None
    ):
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(tokens)
        for s in SPECIALS:
            counts.pop(s, None)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        self.itos: list[str] = [*SPECIALS, *kept]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        self.counts = counts

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, first={self.itos[4:9]})"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        n = len(self.itos)
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise IndexError(f"token id {i} is outside the vocabulary (size {n})")
            out.append(self.itos[i])
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"itos": self.itos}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        itos = json.loads(Path(path).read_text(encoding="utf-8"))["itos"]
        if tuple(itos[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"{path} is not a saved Vocab: it must start with {SPECIALS}")
        return cls.from_itos(itos)

    @classmethod
    def from_itos(cls, itos: list[str]) -> Vocab:
        """The vocabulary whose id i is ``itos[i]`` (as saved by ``save`` or in a checkpoint)."""
        vocab = cls()
        vocab.itos, vocab.stoi = list(itos), {t: i for i, t in enumerate(itos)}
        return vocab


class BPETokenizer:
    """Byte-level BPE (as in GPT-2), trained with Hugging Face ``tokenizers``.

    Training starts from the 256 byte symbols and adds merges until the
    vocabulary has ``vocab_size`` entries, so ``vocab_size`` must be at least
    ``BPETokenizer.min_vocab_size`` (the bytes plus the special tokens).
    ``decode(encode_ids(text)) == text`` for any text.
    """

    min_vocab_size = 256 + len(SPECIALS)

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 2
    ) -> BPETokenizer:
        if vocab_size < cls.min_vocab_size:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the byte alphabet: "
                f"byte-level BPE needs at least {cls.min_vocab_size} "
                f"(256 bytes + {len(SPECIALS)} special tokens)"
            )
        tk = require("tokenizers")
        tokenizer = tk.Tokenizer(tk.models.BPE())
        tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIALS),
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        return cls(require("tokenizers").Tokenizer.from_file(str(path)))

    def save(self, path: str | Path) -> None:
        self.tokenizer.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    @property
    def vocabulary(self) -> set[str]:
        """Every token the tokenizer can produce: bytes, learned merges, special tokens."""
        return set(self.tokenizer.get_vocab())

    def tokens_by_id(self) -> list[str]:
        """Every token, at the position of its id: entry i is the token with id i."""
        ids = self.tokenizer.get_vocab()
        return sorted(ids, key=ids.get)

    def encode(self, text: str) -> list[str]:
        """The BPE tokens of ``text`` (bytes shown as GPT-2 shows them: a space is ``Ġ``)."""
        return self.tokenizer.encode(text).tokens if text else []

    def encode_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids if text else []

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def to_text(self, tokens: Sequence[str]) -> list[str]:
        """Readable form of each token: its bytes decoded as UTF-8 (partial characters shown as �)."""
        return [self.tokenizer.decoder.decode([t]) for t in tokens]

    def merges(self, n: int | None = None, readable: bool = True) -> list[tuple[str, str]]:
        """The first ``n`` merges (all if ``None``) in the order they were learned: pairs (a, b) -> ab.

        Merge k joined the pair most frequent after merges 1..k-1 were applied,
        so the list shows how BPE builds words up from bytes. ``readable``
        shows each side as text (a leading space is " ", not "Ġ"), or, where
        it is not whole UTF-8 characters, as its bytes in hex: ``<e4 b8>``.
        """
        merges = json.loads(self.tokenizer.to_str())["model"]["merges"][:n]
        pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]  # "a b" in old files
        return [(readable_token(a), readable_token(b)) for a, b in pairs] if readable else pairs


def _gpt2_byte_symbols() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character that stands for each byte (a space is "Ġ")."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(others)}


_BYTE_OF_SYMBOL = _gpt2_byte_symbols()


def readable_token(token: str) -> str:
    """A byte-level token as text; a piece that is not whole UTF-8 characters as its bytes in hex: ``<e4 b8>``."""
    raw = bytes(_BYTE_OF_SYMBOL[c] for c in token)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{raw.hex(' ')}>"
