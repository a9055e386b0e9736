"""lmlib.tokenize: each tokenizer's contract, the Vocab, and segmentation scoring."""

import pytest

from lmlib import data
from lmlib.tokenize import (
    BOS,
    EOS,
    PAD,
    UNK,
    BPETokenizer,
    Vocab,
    char_tokenize,
    segment_zh,
    segmentation_differences,
    segmentation_prf,
    split_sentences,
    tokenizer_stats,
    word_tokenize,
)


@pytest.mark.parametrize("tokenize", [char_tokenize, word_tokenize, segment_zh, BPETokenizer.encode])
def test_empty_text_gives_no_tokens(tokenize, bpe):
    args = (bpe, "") if tokenize is BPETokenizer.encode else ("",)
    assert tokenize(*args) == []


def test_word_tokenize_keeps_contractions_and_splits_punctuation():
    assert word_tokenize("Don't panic: it's state-of-the-art, 3.5 GB!") == [
        "Don't", "panic", ":", "it's", "state-of-the-art", ",", "3", ".", "5", "GB", "!"
    ]
    assert word_tokenize("The Cat", lowercase=True) == ["the", "cat"]


def test_char_tokenize_collapses_whitespace():
    assert char_tokenize(" a\n b ") == ["a", " ", "b"]
    assert char_tokenize("a b", keep_spaces=False) == ["a", "b"]
    assert char_tokenize("语言模型") == ["语", "言", "模", "型"]


def test_split_sentences():
    assert split_sentences("It rained. Then it stopped! Did it? Yes.") == [
        "It rained.", "Then it stopped!", "Did it?", "Yes."
    ]
    assert split_sentences("今天下雨。明天呢？晴天！", lang="zh") == ["今天下雨。", "明天呢？", "晴天！"]
    assert split_sentences("他说：“走吧。”我们走了。", lang="zh") == ["他说：“走吧。”", "我们走了。"]


def test_split_sentences_keeps_closing_quotes_and_brackets_and_every_character():
    text = 'He said "stop." Then (he left.) After that, nothing. "Why?" she asked.'
    sentences = split_sentences(text)
    assert sentences == ['He said "stop."', "Then (he left.)", "After that, nothing.", '"Why?" she asked.']
    assert " ".join(sentences) == text
    with pytest.raises(ValueError, match="'en' or 'zh'"):
        split_sentences("x", lang="fr")


def test_vocab_orders_by_count_and_maps_rare_words_to_unk():
    vocab = Vocab("b a a c c c d".split(), min_count=2)
    assert vocab.itos == [PAD, UNK, BOS, EOS, "c", "a"]
    assert vocab.encode(["c", "d", "zzz"]) == [4, vocab.unk_id, vocab.unk_id]
    assert vocab.decode([4, 5]) == ["c", "a"]
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    assert len(Vocab("a b c".split(), max_size=5)) == 5


def test_vocab_ties_break_alphabetically_so_ids_are_stable():
    assert Vocab("z y x".split()).itos[4:] == ["x", "y", "z"]


def test_vocab_save_load_roundtrip(tmp_path):
    vocab = Vocab("的 的 是 model".split())
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == vocab.itos
    (tmp_path / "bad.json").write_text('{"itos": ["a"]}')
    with pytest.raises(ValueError, match="not a saved Vocab"):
        Vocab.load(tmp_path / "bad.json")


def test_vocab_bad_input():
    with pytest.raises(ValueError, match="min_count must be >= 1"):
        Vocab(["a"], min_count=0)
    with pytest.raises(IndexError, match="outside the vocabulary"):
        Vocab(["a"]).decode([99])


@pytest.fixture(scope="module")
def bpe():
    texts = data.load_corpus("news", "train")[:80]
    return BPETokenizer.train(texts, vocab_size=600)


@pytest.mark.parametrize(
    "text",
    ["The bushfire forced 1,200 people out.", "  leading spaces\nand\ttabs  ", "语言模型 🤖 naïve café", "x"],
)
def test_bpe_roundtrips_any_text(bpe, text):
    assert bpe.decode(bpe.encode_ids(text)) == text


def test_bpe_tokens_by_id_puts_each_token_at_its_id(bpe):
    tokens = bpe.tokens_by_id()
    assert len(tokens) == bpe.vocab_size == len(set(tokens))
    assert [tokens[i] for i in bpe.encode_ids(" the fire")] == bpe.encode(" the fire")


def test_bpe_learns_merges_for_frequent_words(bpe, tmp_path):
    assert bpe.vocab_size == 600
    # " the" is frequent in news: one token, its leading space shown as "Ġ" as in GPT-2
    assert bpe.encode(" the") == ["Ġthe"]
    assert len(bpe.encode("Zyxwvut")) > 1  # unseen: split into pieces
    bpe.save(tmp_path / "bpe.json")
    assert BPETokenizer.load(tmp_path / "bpe.json").encode_ids("the fire") == bpe.encode_ids("the fire")
    assert bpe.to_text(bpe.encode(" fire")) == [" fire"]


def test_bpe_merges_are_learned_most_frequent_pair_first():
    # pairs: (a, b) x4, then (Ġ, ab) x3 once "ab" exists, where Ġ is the leading space
    toy = BPETokenizer.train(["ab ab ab ab cd"], vocab_size=BPETokenizer.min_vocab_size + 2)
    assert toy.merges(readable=False) == [("a", "b"), ("Ġ", "ab")]
    assert toy.merges(1) == [("a", "b")]
    assert toy.merges() == [("a", "b"), (" ", "ab")]


def test_bpe_merges_build_the_learned_vocabulary(bpe):
    merges = bpe.merges(readable=False)
    assert len(merges) == bpe.vocab_size - BPETokenizer.min_vocab_size  # one new token per merge
    assert all(a + b in bpe.vocabulary for a, b in merges)
    assert bpe.merges(5) == [tuple(bpe.to_text(m)) for m in merges[:5]]  # English: whole characters


def test_bpe_merges_show_partial_characters_as_hex_bytes():
    toy = BPETokenizer.train(["中中中中 中中"], vocab_size=BPETokenizer.min_vocab_size + 3)
    # 中 is the three bytes e4 b8 ad, rebuilt by two merges (the two byte pairs tie), then 中 + 中
    merges = toy.merges()
    assert merges[:2] in ([("<e4>", "<b8>"), ("<e4 b8>", "<ad>")], [("<b8>", "<ad>"), ("<e4>", "<b8 ad>")])
    assert merges[2] == ("中", "中")


def test_bpe_vocab_smaller_than_alphabet_names_the_minimum():
    with pytest.raises(ValueError, match=f"at least {BPETokenizer.min_vocab_size}"):
        BPETokenizer.train(["some text"], vocab_size=100)


def test_segmentation_prf_by_spans():
    gold = [["语言", "模型", "很", "有用"]]
    assert segmentation_prf(gold, gold) == (1.0, 1.0, 1.0)
    p, r, f = segmentation_prf([["语言模型", "很", "有用"]], gold)  # 2 of 3 predicted right, 2 of 4 gold found
    assert (p, r) == (2 / 3, 2 / 4)
    assert f == pytest.approx(2 * p * r / (p + r))
    with pytest.raises(ValueError, match="segments different texts"):
        segmentation_prf([["语言"]], [["模型"]])


def test_segmentation_differences_sorts_wrong_words_by_kind():
    gold = [["江", "泽民", "发表", "新年", "讲话"]]
    predicted = [["江泽民", "发", "表", "新", "年讲", "话"]]
    kinds = segmentation_differences(predicted, gold)
    assert kinds == {"join gold words": {"江泽民": 1}, "split a gold word": {"发": 1, "表": 1, "新": 1, "话": 1},
                     "cross a gold boundary": {"年讲": 1}}
    assert all(not c for c in segmentation_differences(gold, gold).values())


def test_jieba_agrees_with_peoples_daily_gold_segmentation():
    gold = data.load_segmented("test")[:300]
    predicted = [segment_zh("".join(words)) for words in gold]
    _, _, f1 = segmentation_prf(predicted, gold)
    # jieba follows a different segmentation standard than PKU's: well above chance, well below 1
    assert 0.75 < f1 < 0.95


def test_tokenizer_stats_counts_vocabulary_length_and_oov():
    stats = tokenizer_stats(word_tokenize, ["a b a c"], ["a d d e"], valid_words=4)
    assert stats == {"vocabulary": 3, "tokens per word": 1.0, "OOV %": 75.0}
    fixed = tokenizer_stats(word_tokenize, ["a"], ["a d"], valid_words=1, vocabulary={"a", "d"})
    assert fixed == {"vocabulary": 2, "tokens per word": 2.0, "OOV %": 0.0}
