"""lmlib.lm: the protocol's conventions, perplexity, and the checker model tests reuse."""

import math

import pytest
import torch

from lmlib.lm import (
    LanguageModel,
    ProtocolError,
    UniformLM,
    bits_per_character,
    check_language_model,
    encode_batch,
    perplexity,
    total_logprob,
)
from lmlib.tokenize import Vocab, char_tokenize

SENTENCES = [["the", "cat", "sat"], ["a", "dog"], ["the", "unseen", "word", "here"]]


@pytest.fixture
def vocab():
    return Vocab("the cat sat a dog".split())


def test_uniform_model_perplexity_is_exactly_V(vocab):
    model = UniformLM(vocab)
    V = len(vocab) - 2  # everything but <pad> and <bos> can be predicted
    assert perplexity(model, SENTENCES) == pytest.approx(V, rel=1e-12)
    assert isinstance(model, LanguageModel)
    check_language_model(model, SENTENCES + [[]])


def test_eos_is_predicted_and_bos_never(vocab):
    # 3 sentences with 3 + 2 + 4 words: 9 words + 3 <eos> are predicted, no <bos>
    total, count = total_logprob(UniformLM(vocab), SENTENCES)
    assert count == 12
    assert total == pytest.approx(-12 * math.log(len(vocab) - 2))


def test_encode_batch_pads_on_the_right(vocab):
    ids = encode_batch(vocab, [["the"], ["a", "dog", "zzz"]])
    assert ids.tolist() == [
        [vocab.bos_id, vocab.stoi["the"], vocab.eos_id, vocab.pad_id, vocab.pad_id],
        [vocab.bos_id, vocab.stoi["a"], vocab.stoi["dog"], vocab.unk_id, vocab.eos_id],
    ]


def test_encode_batch_for_a_classifier_has_no_eos_and_cuts_at_max_tokens(vocab):
    ids = encode_batch(vocab, [["the"], ["a", "dog", "zzz"]], eos=False, max_tokens=3)
    assert ids.tolist() == [[vocab.bos_id, vocab.stoi["the"], vocab.pad_id],
                            [vocab.bos_id, vocab.stoi["a"], vocab.stoi["dog"]]]


def test_batching_does_not_change_the_result(vocab):
    model = BigramTable(vocab)
    assert perplexity(model, SENTENCES, batch_size=1) == pytest.approx(perplexity(model, SENTENCES, batch_size=3))


def test_bits_per_character_uses_characters_not_tokens(vocab):
    texts = ["the cat", "a dog"]
    chars = Vocab(char_tokenize(" ".join(texts)))
    bpc = bits_per_character(UniformLM(chars), texts, char_tokenize)
    # every character and each text's <eos> costs log2(V) bits; the denominator is len(text) + 1 per text
    assert bpc == pytest.approx(math.log2(len(chars) - 2))


def test_zero_probability_gives_infinite_perplexity_not_nan(vocab):
    model = BigramTable(vocab, zero_for="dog")
    assert perplexity(model, [["a", "dog"]]) == math.inf


def test_nan_is_an_error(vocab):
    model = BigramTable(vocab)
    model.table[:] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        perplexity(model, SENTENCES)


def test_bad_input(vocab):
    with pytest.raises(ValueError, match="no tokens to score"):
        perplexity(UniformLM(vocab), [])
    with pytest.raises(TypeError, match="list of token lists"):
        perplexity(UniformLM(vocab), "the cat sat")


# --- the checker catches broken models ------------------------------------------------------------

class BigramTable:
    """A tiny correct model (a random bigram table) that tests can break on purpose."""

    def __init__(self, vocab, zero_for=None, seed=0):
        self.vocab = vocab
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(len(vocab), len(vocab), generator=g, dtype=torch.float64)
        logits[:, [vocab.pad_id, vocab.bos_id]] = -math.inf
        if zero_for:
            logits[:, vocab.stoi[zero_for]] = -math.inf
        self.table = torch.log_softmax(logits, dim=-1)  # [V, V]: row = previous token

    def next_token_logprobs(self, contexts):
        return self.table[contexts[:, -1]]  # [B, V]

    def sequence_logprobs(self, ids):
        return self.table[ids[:, :-1], ids[:, 1:]]  # [B, T-1]


def test_checker_accepts_a_correct_model(vocab):
    check_language_model(BigramTable(vocab), SENTENCES)


def test_checker_catches_a_distribution_that_does_not_sum_to_one(vocab):
    model = BigramTable(vocab)
    model.table[vocab.stoi["cat"]] += 0.1  # unnormalized after "cat"
    with pytest.raises(ProtocolError, match=r"sum to 1\.10517.*not 1, after context \['<bos>', 'the', 'cat'\]"):
        check_language_model(model, SENTENCES)


def test_checker_catches_teacher_forcing_disagreeing_with_next_token(vocab):
    model = BigramTable(vocab)
    honest = model.sequence_logprobs
    model.sequence_logprobs = lambda ids: honest(ids) + 0.01
    with pytest.raises(ProtocolError, match="sequence_logprobs gives"):
        check_language_model(model, SENTENCES)


def test_checker_catches_wrong_shape_and_nan(vocab):
    model = BigramTable(vocab)
    model.next_token_logprobs = lambda c: model.table[c[:, -1]][:, :-1]
    with pytest.raises(ProtocolError, match="shape"):
        check_language_model(model, SENTENCES)
    model = BigramTable(vocab)
    model.table[vocab.bos_id, 4] = float("nan")
    with pytest.raises(ProtocolError, match="NaN"):
        check_language_model(model, SENTENCES)


def test_checker_rejects_objects_without_the_protocol(vocab):
    with pytest.raises(ProtocolError, match="lacks"):
        check_language_model(object(), SENTENCES)


def test_mixture_is_the_weighted_sum_of_probabilities_and_tunes_on_valid():
    from lmlib.lm import MixtureLM, mixture_logprobs, token_logprobs
    from lmlib.ngram import NGramLM

    train = [["a", "b", "a"], ["b", "b", "a", "c"], ["a", "c"]]
    bigram, unigram = NGramLM(2).fit(train), NGramLM(1).fit(train)
    mix = MixtureLM([bigram, unigram], [0.3, 0.7])
    check_language_model(mix, [["a", "b"], ["c", "c", "a"], []])
    for word, context in [("a", ["<s>", "b"]), ("c", ["<s>", "a"]), ("b", ["<s>"])]:
        want = 0.3 * math.exp(bigram.logprob(word, context)) + 0.7 * math.exp(unigram.logprob(word, context))
        ids = torch.tensor([[bigram.vocab.bos_id, *bigram.vocab.encode(context[1:])]])
        assert math.exp(mix.next_token_logprobs(ids)[0, bigram.vocab.stoi[word]]) == pytest.approx(want)
    valid = [["a", "b", "a", "c"], ["b", "a"]]
    tuned = MixtureLM.tune([bigram, unigram], valid, grid=10)
    grid = [perplexity(MixtureLM([bigram, unigram], [i / 10, 1 - i / 10]), valid) for i in range(11)]
    assert perplexity(tuned, valid) == pytest.approx(min(grid))
    scores = [token_logprobs(m, valid) for m in (bigram, unigram)]
    assert token_logprobs(tuned, valid).tolist() == pytest.approx(
        mixture_logprobs(scores, tuned.weights).tolist())  # scoring once and mixing the scores is the same
    assert math.exp(-scores[0].mean()) == pytest.approx(perplexity(bigram, valid))
    with pytest.raises(ValueError, match="sum to 1"):
        MixtureLM([bigram, unigram], [0.5, 0.6])
    with pytest.raises(ValueError, match="share one vocabulary"):
        MixtureLM([bigram, NGramLM(1).fit([["x"]])], [0.5, 0.5])


def test_token_logprobs_are_in_the_order_of_the_sequences_whatever_the_batching():
    """Batches are made of sequences of similar lengths (less padding); the scores come back in input order."""
    from lmlib.lm import token_logprobs
    from lmlib.ngram import NGramLM

    sentences = [s.split() for s in ["a b c d e f", "b", "c a", "a b c", "", "d d d d", "e c"]]
    model = NGramLM(2, "kneser_ney").fit(sentences)
    alone = torch.cat([token_logprobs(model, [s]) for s in sentences])
    for batch_size in (1, 2, 3, 64):
        assert token_logprobs(model, sentences, batch_size).tolist() == alone.tolist()
