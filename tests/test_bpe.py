"""lmlib.bpe: byte-level BPE written out, checked against Hugging Face tokenizers (lmlib.tokenize.BPETokenizer).

The reference is ``tokenizers``' BpeTrainer with a ByteLevel pre-tokenizer, the
course's special tokens and the 256-byte initial alphabet, trained on the same
texts with the same vocab_size and min_frequency: the merge lists (in order),
the vocabularies (with ids) and the encodings of held-out text must be equal.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmlib import data
from lmlib.bpe import (
    ALPHABET,
    BPE,
    byte_words,
    count_words,
    initial_vocab,
    read_markdown_tables,
    to_symbols,
    tokens_per_character,
    train_bpe,
    train_bpe_naive,
)
from lmlib.tokenize import SPECIALS, BPETokenizer

tokenizers = pytest.importorskip("tokenizers")


def reference(texts, vocab_size, min_frequency=2, special_tokens=SPECIALS):
    """tokenizers' trainer set up as BPETokenizer.train sets it up, with any special tokens."""
    tk = tokenizers
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                     special_tokens=list(special_tokens), show_progress=False,
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def merges_of(tokenizer) -> list[tuple[str, str]]:
    return [tuple(m) for m in json.loads(tokenizer.to_str())["model"]["merges"]]


@functools.cache
def _texts(name: str, split: str) -> tuple[str, ...]:
    docs = data.load_corpus(name, split)  # People's Daily takes seconds: load each split once
    return tuple(text for text, _ in docs) if name in data.LABELLED else tuple(docs)


def texts_of(name: str, split: str, n: int | None = None) -> list[str]:
    """The first ``n`` texts of a corpus split (labels dropped)."""
    return list(_texts(name, split)[:n])


# --- equal to tokenizers on the course's corpora ----------------------------------------------------

# (corpus, training documents, held-out documents): the first documents of each training split, so the test stays
# short (benchmarks/bpe_bench.py trains on whole corpora, and checks the merges there too).
COURSE_TEXT = [("wiki", 20, 2), ("peoples_daily", 800, 60), ("reviews_zh", 500, 60)]


@pytest.mark.parametrize(("name", "n_train", "n_valid"), COURSE_TEXT)
def test_equal_to_tokenizers_on_course_text(name, n_train, n_valid):
    train, valid = texts_of(name, "train", n_train), texts_of(name, "valid", n_valid)
    ours = train_bpe(train, vocab_size=4000)
    for vocab_size in (300, 1000, 4000):
        theirs = BPETokenizer.train(train, vocab_size=vocab_size)  # the course's tokenizer, min_frequency=2
        mine = ours.truncated(vocab_size)  # what training at vocab_size gives (test_truncated_is_training...)
        assert mine.merges == theirs.merges(readable=False), (name, vocab_size)
        assert mine.vocab == theirs.tokenizer.get_vocab(), (name, vocab_size)
        for text in valid:
            assert mine.encode(text) == theirs.encode_ids(text), (name, vocab_size, text[:50])
    assert len(ours) == 4000 and len(ours.merges) == 4000 - 260  # one new token per merge


def test_truncated_is_training_with_the_smaller_vocabulary():
    train = texts_of("reviews_zh", "train", 150)
    largest = train_bpe(train, 900)
    for vocab_size in (260, 261, 500, 900):
        assert largest.truncated(vocab_size) == train_bpe(train, vocab_size)
    with pytest.raises(ValueError, match="between 260 and 900"):
        largest.truncated(901)


def test_from_merges_rebuilds_tokenizers_ids_and_encodings():
    train = texts_of("wiki", "train", 5)
    theirs = reference(train, 800)
    rebuilt = BPE.from_merges(merges_of(theirs))
    assert rebuilt.vocab == theirs.get_vocab()
    text = texts_of("wiki", "valid", 1)[0][:5000]
    assert rebuilt.encode(text) == theirs.encode(text).ids
    assert rebuilt.tokenize(text) == theirs.encode(text).tokens


# --- tie-breaking, min_frequency, special tokens ----------------------------------------------------

def test_ties_go_to_the_smaller_pair_of_ids_not_of_bytes():
    # Every pair occurs once. Ids follow the byte symbols' code points after the 4 special tokens, so the
    # space's symbol "Ġ" (U+0120) comes after "z" (U+007A) though the space byte (0x20) comes before "z" (0x7A).
    texts = ["zy", " a", "ba"]
    ours = train_bpe(texts, vocab_size=263, min_frequency=0)
    assert ours.merges == [("b", "a"), ("z", "y"), ("Ġ", "a")]
    assert ours.merges == merges_of(reference(texts, 263, 0))
    # After (b, a) -> "ba" (id 260), three pairs occur twice: (x, ba), (y, z) and (ba, c), in the order of their ids.
    texts = ["xba", "xba", "yz", "yz", "bac", "bac", "ba", "ba"]
    ours = train_bpe(texts, vocab_size=264, min_frequency=0)
    assert ours.merges == [("b", "a"), ("x", "ba"), ("y", "z"), ("ba", "c")]
    assert ours.merges == merges_of(reference(texts, 264, 0))


def test_the_tie_rule_by_hand():
    """Counted by hand: 'ab' x3 and 'cd' x3 tie; (a, b) has the smaller ids, so it goes first."""
    ours = train_bpe(["ab ab ab", "cd cd cd"], vocab_size=262, min_frequency=0)
    # words: "ab", "Ġab" x2, "cd", "Ġcd" x2; (a,b) and (c,d) count 3, (Ġ,a) and (Ġ,c) count 2
    assert ours.merges == [("a", "b"), ("c", "d")]


@pytest.mark.parametrize("min_frequency", [0, 1, 2, 3, 5, 40])
def test_min_frequency_stops_at_the_first_rarer_pair_as_tokenizers_does(min_frequency):
    train = texts_of("wiki", "train", 1)
    ours = train_bpe(train, vocab_size=30_000, min_frequency=min_frequency)
    theirs = reference(train, 30_000, min_frequency)
    assert ours.merges == merges_of(theirs) and ours.vocab == theirs.get_vocab()
    assert len(ours) < 30_000  # the pairs ran out (or fell below min_frequency) first


def test_min_frequency_0_and_1_are_the_same_and_a_higher_one_stops_sooner():
    train = ["low lower lowest newer newest"] * 2 + ["wider"]
    assert train_bpe(train, 1000, 0) == train_bpe(train, 1000, 1)
    two, three = train_bpe(train, 1000, 2), train_bpe(train, 1000, 3)
    assert three.merges == two.merges[: len(three.merges)] and len(three.merges) < len(two.merges)
    words = count_words(train)  # each word's count is 2 or 1 ("wider"), so pairs within "wider" alone count 1
    assert words["Ġwider"] == 0 and words["wider"] == 1 and ("d", "e") not in two.merges


def test_special_tokens_come_first_and_a_merge_that_spells_one_reuses_its_id():
    texts = ["the cat the theme the"]
    specials = ["<pad>", "Ġthe", "he"]  # "he" and "Ġthe" are merge results here: they keep their special ids
    ours = train_bpe(texts, vocab_size=270, min_frequency=0, special_tokens=specials)
    theirs = reference(texts, 270, 0, specials)
    assert ours.merges == merges_of(theirs) and ours.vocab == theirs.get_vocab()
    assert ours.vocab["he"] == 2 and ("h", "e") in ours.merges
    assert len(ours.merges) > len(ours) - 256 - len(specials)  # two merges added no token
    for text in ["the theme", " the", "he<pad>he"]:  # special tokens in the text are kept whole, as tokenizers does
        assert ours.encode(text) == theirs.encode(text).ids
        assert ours.decode(ours.encode(text)) == text


# --- the incremental update against recounting ------------------------------------------------------

def test_incremental_counts_give_the_merges_of_recounting_everything():
    train = texts_of("peoples_daily", "train", 40) + ["aaaa aaa abab", "ab ab abab"]  # and overlapping pairs
    assert train_bpe(train, 450) == train_bpe_naive(train, 450)


# --- pre-tokenization ----------------------------------------------------------------------------

def test_pretokenizer_matches_tokenizers_bytelevel_on_tricky_text():
    pre = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    for text in ["Hello world's  end\r\n\n  x", "I'M 3.14 km2 ½ ⅷ", "a\u00a0b \u3000中文，标点。", "🙂👍🏽 e\u0301",
                 "tab\tand  \t spaces ", " 'll 've 're", "１２３ abc\u200bdef"]:
        assert byte_words(text) == [piece for piece, _ in pre.pre_tokenize_str(text)], text


def test_pretokenizer_matches_tokenizers_on_every_bmp_character_but_unicode_17s():
    """Each BMP character in four contexts. regex knows Unicode 17.0, tokenizers 16.0: the characters that differ
    are all unassigned in Python's Unicode database (14.0) and letters or digits to regex (17.0's additions)."""
    pre = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    differ = []
    for cp in range(0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        text = f"x{chr(cp)}y {chr(cp)}1 {chr(cp)}{chr(cp)} {chr(cp)}"
        if byte_words(text) != [piece for piece, _ in pre.pre_tokenize_str(text)]:
            differ.append(cp)
    assert all(unicodedata.category(chr(cp)) == "Cn" for cp in differ)
    assert len(differ) == 19, [hex(cp) for cp in differ]


def test_byte_symbols_and_ids_are_gpt2s():
    assert to_symbols(" the\n") == "ĠtheĊ" and to_symbols("中") == "ä¸Ń"
    assert len(ALPHABET) == 256 and ALPHABET == tuple(sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet()))
    vocab = initial_vocab()
    assert list(vocab)[:6] == [*SPECIALS, "!", '"'] and vocab["Ġ"] == 4 + ALPHABET.index("Ġ")


# --- round trip -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bilingual():
    """A small model trained on English and Chinese, and its tokenizers twin."""
    train = texts_of("wiki", "train", 2) + texts_of("peoples_daily", "train", 200)
    return train_bpe(train, 1200), BPETokenizer.train(train, 1200)


@pytest.mark.parametrize("text", [
    "", " ", "Hello, world!", "中国人民银行发布新年讲话", "emoji 🙂👍🏽 👨‍👩‍👧 flags 🇨🇳",
    "combining e\u0301 vs é, Hangul \u1100\u1161", "line\r\nbreaks\rand\n\n\ttabs  ", "  leading and trailing  ",
    "special tokens <bos> inside <eos>", "\x00\x7f\ufeff\uffff\U0010ffff", "ﬁ Ａ Ω Ω",
])
def test_round_trip_on_hard_text(bilingual, text):
    ours, theirs = bilingual
    assert ours.decode(ours.encode(text)) == text
    assert ours.encode(text) == theirs.encode_ids(text)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_any_text(bilingual, text):
    ours, _ = bilingual
    assert ours.decode(ours.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs", "Cn"))))  # assigned characters (Unicode 14): Unicode 17 aside
def test_encodings_equal_tokenizers_on_any_text(bilingual, text):
    ours, theirs = bilingual
    assert ours.encode(text) == theirs.encode_ids(text)


def test_lone_surrogates_are_refused_with_their_position(bilingual):
    ours, theirs = bilingual
    with pytest.raises(ValueError, match=r"lone surrogate '\\ud83d' at position 3 .*encode\('utf-8', 'replace'\)"):
        ours.encode("abc\ud83d")
    with pytest.raises(ValueError, match="text 1: the text has a lone surrogate"):
        train_bpe(["fine", "x\udc80"], 300)
    with pytest.raises(TypeError):  # tokenizers refuses them too ("TextInputSequence must be str")
        theirs.encode("abc\ud83d")


def test_decoding_a_cut_character_gives_the_replacement_character(bilingual):
    ours, theirs = bilingual
    ids = ours.encode("中")
    cut = [ours.vocab[s] for s in to_symbols("中")][:2] if len(ids) == 1 else ids[:-1]
    assert ours.decode(cut) == "\ufffd" == theirs.decode(cut)


# --- bad input ------------------------------------------------------------------------------------

def test_vocab_size_below_the_alphabet_names_the_minimum():
    with pytest.raises(ValueError, match=r"at least 260 \(4 special tokens \+ the 256 byte symbols\)"):
        train_bpe(["some text"], 259)
    with pytest.raises(ValueError, match="at least 256"):
        train_bpe(["some text"], 100, special_tokens=())


@pytest.mark.parametrize("texts", [[], [""], ["", ""]])
def test_empty_corpus_is_refused(texts):
    with pytest.raises(ValueError, match="corpus is empty"):
        train_bpe(texts, 300)


def test_a_string_or_labelled_pairs_instead_of_texts_are_refused():
    with pytest.raises(TypeError, match=r"not one string: pass \[text\]"):
        train_bpe("one long text", 300)
    with pytest.raises(TypeError, match=r"text 0 is a tuple.*\[text for text, label in documents\]"):
        train_bpe(data.load_corpus("reviews_zh", "valid")[:3], 300)
    with pytest.raises(ValueError, match="min_frequency must be >= 0"):
        train_bpe(["ab"], 300, min_frequency=-1)
    with pytest.raises(ValueError, match="special_tokens has repeats"):
        train_bpe(["ab"], 300, special_tokens=["<a>", "<a>"])


def test_merge_list_with_unknown_symbols_is_refused():
    with pytest.raises(ValueError, match=r"merge 1 \('Ġ', 'th'\) uses 'th', which is neither a byte symbol nor made"):
        BPE.from_merges([("h", "e"), ("Ġ", "th")])
    with pytest.raises(ValueError, match=r"uses ' ', which is neither.*to_symbols\(' the'\) == 'Ġthe'"):
        BPE.from_merges([(" ", "t")])  # a raw space, not its byte symbol
    with pytest.raises(ValueError, match="a merge is a pair"):
        BPE.from_merges([("a", "b", "c")])
    vocab = initial_vocab()
    with pytest.raises(ValueError, match=r"merge 0 \('a', 'b'\) uses or makes 'ab', which is not in the vocabulary"):
        BPE(vocab, [("a", "b")])
    with pytest.raises(ValueError, match="lacks"):
        BPE({"a": 0}, [])


def test_decoding_an_unknown_id_names_the_range(bilingual):
    ours, _ = bilingual
    with pytest.raises(IndexError, match=r"token id 1200 is outside the vocabulary \(ids 0 to 1199\)"):
        ours.decode([5, 1200])


# --- tokens per character -------------------------------------------------------------------------

def test_tokens_per_character_falls_with_the_vocabulary_and_equals_tokenizers():
    corpora = {"English": (texts_of("wiki", "train", 1), texts_of("wiki", "valid", 1)),
               "Chinese": (texts_of("peoples_daily", "train", 150), texts_of("peoples_daily", "valid", 30))}
    rows = tokens_per_character(corpora, vocab_sizes=(300, 1000))
    assert [(r["corpus"], r["vocab_size"]) for r in rows] == [
        ("English", 300), ("English", 1000), ("Chinese", 300), ("Chinese", 1000)]
    for row in rows:
        train, valid = corpora[row["corpus"]]
        theirs = BPETokenizer.train(train, row["vocab_size"])
        n_tokens = sum(len(theirs.encode_ids(text)) for text in valid)
        assert row["tokens per character"] == pytest.approx(n_tokens / sum(map(len, valid)))
        assert row["characters per token"] == pytest.approx(1 / row["tokens per character"])
    english, chinese = rows[:2], rows[2:]
    assert english[1]["tokens per character"] < english[0]["tokens per character"] < 1
    assert chinese[1]["tokens per character"] < chinese[0]["tokens per character"]
    assert chinese[0]["tokens per character"] > 1  # a Chinese character is 3 UTF-8 bytes


def test_the_module_is_pure_python():
    """lmlib.bpe is a foundation: importing it loads neither torch nor numpy."""
    code = "import sys, lmlib.bpe; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    assert out.strip() == "[]"


# --- reading the committed benchmark tables ---------------------------------------------------------


def test_read_markdown_tables_names_the_cells_by_their_header(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("# title\n\n| a | b c |\n|---|:---:|\n| `x` | 1.5x / 2x |\n| y | yes |\n\ntext\n\n"
                    "| n |\n|---|\n| 4 |\n", encoding="utf-8")
    assert read_markdown_tables(path) == [[{"a": "`x`", "b c": "1.5x / 2x"}, {"a": "y", "b c": "yes"}],
                                          [{"n": "4"}]]


def test_read_markdown_tables_refuses_a_row_of_the_wrong_width(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("| a | b |\n|---|---|\n| 1 | 2 | 3 |\n", encoding="utf-8")
    with pytest.raises(ValueError, match="3 cells, its header 2"):
        read_markdown_tables(path)


def test_the_committed_bpe_benchmark_reads_as_two_tables():
    results = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "bpe.md"
    training, naive = read_markdown_tables(results)
    assert [row["corpus (train split)"] for row in training] == ["`wiki`", "`peoples_daily`", "`reviews_zh`"]
    assert all(row["same merges and ids"] == "yes" for row in training) and naive[0]["same merges"] == "yes"
