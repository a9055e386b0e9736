"""lmlib.generate: every strategy against a distribution known exactly, Hugging Face's processors, brute force,
and the incremental path against the plain one.

The chi-square tests draw from a fixed seed, so they are deterministic; each asserts p > 0.001 (the
significance level), which a sampler that draws from the wrong distribution fails by many orders of
magnitude at these sample sizes.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.stats import chisquare
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from lmlib import generate as G
from lmlib.lm import IncrementalDecoding, LanguageModel, ProtocolError, check_language_model
from lmlib.ngram import NGramLM
from lmlib.tokenize import Vocab

ALPHA = 0.001  # significance level of the chi-square tests
SAM = [s.split() for s in ["I am Sam", "Sam I am", "I do not like green eggs and ham", "I am not Sam"]]


class TableLM:
    """A bigram model given by its table: P(next | last token) = softmax(table[last]). Exact and tiny."""

    def __init__(self, words: list[str], seed: int = 0, sharpness: float = 1.0):
        self.vocab = Vocab(words)
        V = len(self.vocab)
        logits = sharpness * torch.randn(V, V, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        logits[:, [self.vocab.pad_id, self.vocab.unk_id, self.vocab.bos_id]] = -math.inf
        self.table = logits.log_softmax(dim=-1)  # [V prev, V next]

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.table[contexts[:, -1]]  # [B, V]

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[ids[:, :-1]].gather(-1, ids[:, 1:, None])[..., 0]  # [B, T-1]


class TinyGRU(torch.nn.Module):
    """A recurrent LM with the incremental extension: its cache is the GRU's hidden state."""

    def __init__(self, words: list[str], seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.vocab = Vocab(words)
        V = len(self.vocab)
        self.embed, self.gru, self.head = torch.nn.Embedding(V, 8), torch.nn.GRU(8, 16, batch_first=True), \
            torch.nn.Linear(16, V)
        self.double()

    def _logprobs(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(hidden)
        logits[..., [self.vocab.pad_id, self.vocab.bos_id]] = -math.inf
        return logits.log_softmax(dim=-1)

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(ids[:, :-1]))  # [B, T-1, H]
        return self._logprobs(out).gather(-1, ids[:, 1:, None])[..., 0]

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(contexts))
        return self._logprobs(out[:, -1])

    def decode_step(self, ids: torch.Tensor, cache: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        out, hidden = self.gru(self.embed(ids), cache)
        return self._logprobs(out[:, -1]), hidden

    def reorder_cache(self, cache: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return cache[:, rows]  # [layers, B, H]


class PlainView:
    """The same model seen through the plain protocol only, so the decoder cannot read it incrementally."""

    def __init__(self, model):
        self.vocab, self.next_token_logprobs, self.sequence_logprobs = (
            model.vocab, model.next_token_logprobs, model.sequence_logprobs)


@pytest.fixture(scope="module")
def sam_kn():
    return NGramLM(3, "kneser_ney").fit(SAM)


def first_token_counts(model, draws: int, seed: int = 0, **settings) -> torch.Tensor:
    gens = G.sample(model, [], max_tokens=1, num_samples=draws, generator=torch.Generator().manual_seed(seed),
                    **settings)
    return torch.bincount(torch.tensor([g.ids[0] for g in gens]), minlength=len(model.vocab))


def assert_samples_follow(counts: torch.Tensor, probs: torch.Tensor) -> None:
    """No draw outside the support, and a chi-square goodness of fit at level ALPHA."""
    support = probs > 0
    assert counts[~support].sum() == 0, f"drew tokens {torch.nonzero(counts * ~support).flatten().tolist()}"
    expected = probs[support].double() * counts.sum()
    result = chisquare(counts[support].double().numpy(), expected.numpy())
    assert result.pvalue > ALPHA, f"chi-square p = {result.pvalue:.3g}: samples do not follow the distribution"


# --- processors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_processors_equal_hugging_face_warpers(seed):
    scores = torch.randn(4, 50, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    ids = torch.zeros(4, 1, dtype=torch.long)
    pairs = [
        (G.scale_temperature(0.7), TemperatureLogitsWarper(0.7)),
        (G.keep_top_k(7), TopKLogitsWarper(7)),
        (G.keep_top_p(0.8), TopPLogitsWarper(0.8)),
        (G.keep_top_p(0.05), TopPLogitsWarper(0.05)),
        (G.keep_min_p(0.1), MinPLogitsWarper(0.1)),
    ]
    for ours, theirs in pairs:
        mine, ref = ours(scores, ids).softmax(-1), theirs(ids, scores.clone()).softmax(-1)
        assert torch.equal(mine > 0, ref > 0), f"{type(theirs).__name__}: a different support"
        torch.testing.assert_close(mine, ref, rtol=1e-12, atol=1e-12)


def test_top_p_keeps_the_token_that_crosses_the_threshold():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64)
    keep = G.keep_top_p(0.7)(probs.log(), torch.zeros(1, 1, dtype=torch.long)) > -math.inf
    assert keep.tolist() == [[True, True, False, False]]  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7: both kept
    keep = G.keep_top_p(0.4)(probs.log(), torch.zeros(1, 1, dtype=torch.long)) > -math.inf
    assert keep.tolist() == [[True, False, False, False]]  # the most probable token alone crosses 0.4


def test_repetition_penalty_divides_the_probability_of_seen_tokens():
    scores = torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64).log_softmax(-1)
    out = G.penalise_repeats(2.0)(scores, torch.tensor([[1, 1]])).softmax(-1)
    torch.testing.assert_close(out, torch.tensor([[0.4, 0.2, 0.4]], dtype=torch.float64))


# --- sampling draws from the right distribution -------------------------------------------------------


def test_temperature_one_with_no_filter_samples_the_model():
    model = TableLM(list("abcdefgh"), seed=1)
    probs = model.table[model.vocab.bos_id].exp()
    assert_samples_follow(first_token_counts(model, 20_000), probs)


def test_two_step_samples_follow_the_chain_rule():
    model = TableLM(list("abc"), seed=2)
    gens = G.sample(model, [], max_tokens=2, num_samples=20_000, generator=torch.Generator().manual_seed(3))
    V, bos = len(model.vocab), model.vocab.bos_id
    counts = torch.zeros(V, V)
    for g in gens:  # a first token of <eos> ends the sample: count it as (<eos>, <pad>)
        counts[g.ids[0], g.ids[1] if len(g.ids) > 1 else model.vocab.pad_id] += 1
    joint = model.table[bos].exp()[:, None] * model.table.exp()  # P(w1) P(w2 | w1)
    joint[model.vocab.eos_id] = 0
    joint[model.vocab.eos_id, model.vocab.pad_id] = model.table[bos, model.vocab.eos_id].exp()
    assert_samples_follow(counts.flatten(), joint.flatten())


@pytest.mark.parametrize(
    "settings",
    [{"top_k": 3}, {"top_p": 0.6}, {"min_p": 0.3}, {"temperature": 0.5}, {"temperature": 2.0, "top_k": 5}],
    ids=str,
)
def test_filtered_sampling_draws_from_the_renormalised_support(settings):
    model = TableLM(list("abcdefgh"), seed=4)
    scores = model.table[model.vocab.bos_id][None]  # [1, V]
    probs = G.sampling_distribution(scores, torch.zeros(1, 1, dtype=torch.long), G.processors(**settings))[0]
    if "top_k" in settings:
        assert (probs > 0).sum() == settings["top_k"]
        assert set(torch.nonzero(probs).flatten().tolist()) == set(scores[0].topk(settings["top_k"]).indices.tolist())
    assert_samples_follow(first_token_counts(model, 20_000, seed=5, **settings), probs)


def test_a_wrong_sampler_fails_the_chi_square_test():
    """The test above can fail: samples from the unfiltered model do not fit the top-p distribution."""
    model = TableLM(list("abcdefgh"), seed=4)
    probs = G.sampling_distribution(model.table[model.vocab.bos_id][None], torch.zeros(1, 1, dtype=torch.long),
                                    G.processors(temperature=0.5))[0]
    with pytest.raises(AssertionError, match="chi-square"):
        assert_samples_follow(first_token_counts(model, 20_000, seed=5), probs)


def test_samples_are_reproducible_from_the_seed(sam_kn):
    def draw(seed):
        return [g.tokens for g in G.sample(sam_kn, ["I"], 12, num_samples=4, top_p=0.9,
                                           generator=torch.Generator().manual_seed(seed))]
    assert draw(1) == draw(1) and draw(1) != draw(2)


# --- greedy, temperature -> 0, beam search --------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_temperature_to_zero_and_beam_width_one_equal_greedy(seed):
    model = TableLM(list("abcdef"), seed=seed)  # random logits: no ties for greedy to break
    prompt = [["a"], [], ["c", "b"], ["f"]][seed]
    best = G.greedy(model, prompt, 12)
    for t in (0, 1e-3):
        [cold] = G.sample(model, prompt, 12, temperature=t, generator=torch.Generator().manual_seed(0))
        assert cold.ids == best.ids
    [beam] = G.beam_search(model, prompt, 12, num_beams=1, length_penalty=0.0)
    assert beam.ids == best.ids and beam.logprob == pytest.approx(best.logprob, abs=1e-12)


def every_sequence(model: TableLM, max_tokens: int) -> list[tuple[tuple[int, ...], float, bool]]:
    """Brute force: every continuation the decoder can produce (ended by <eos>, or cut at max_tokens)."""
    words = [i for i in range(len(model.vocab)) if i not in (0, 1, 2, 3)]
    out = []
    for n in range(max_tokens + 1):
        for body in itertools.product(words, repeat=n):
            for ids, finished in [((*body, model.vocab.eos_id), True), (body, False)]:
                if (finished and len(ids) > max_tokens) or (not finished and n != max_tokens):
                    continue
                context = (model.vocab.bos_id, *ids)
                logp = sum(model.table[a, b].item() for a, b in itertools.pairwise(context))
                out.append((ids, logp, finished))
    return out


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_a_wide_beam_finds_the_exact_best_sequences(length_penalty):
    for seed in range(10):  # some of these models stop a search with a wrong bound too early
        model = TableLM(list("abc"), seed=seed)
        brute = sorted(every_sequence(model, 4), key=lambda s: -s[1] / len(s[0]) ** length_penalty)
        for n in (1, 5):
            found = G.beam_search(model, [], 4, num_beams=200, length_penalty=length_penalty, num_return=n)
            assert [tuple(g.ids) for g in found] == [s[0] for s in brute[:n]], f"seed {seed}, num_return {n}"
            for g, (_, logp, finished) in zip(found, brute, strict=False):
                assert g.logprob == pytest.approx(logp, abs=1e-12) and g.finished == finished


def test_a_narrow_beam_can_miss_the_best_but_scores_what_it_returns(sam_kn):
    [best] = G.beam_search(sam_kn, ["I"], 8, num_beams=4, length_penalty=0.0)
    assert best.finished and best.score == pytest.approx(best.logprob)
    from lmlib.lm import token_logprobs
    assert best.logprob == pytest.approx(token_logprobs(sam_kn, [["I", *best.tokens]])[1:].sum().item())


# --- the incremental path equals the plain path -------------------------------------------------


def test_incremental_model_passes_the_protocol_check_and_a_broken_one_fails():
    model = TinyGRU(list("abcde"))
    assert isinstance(model, IncrementalDecoding) and not isinstance(PlainView(model), IncrementalDecoding)
    check_language_model(model, [list("abcab"), list("eed"), []])

    class Forgetful(TinyGRU):
        def decode_step(self, ids, cache):  # drops its state: wrong after the first step
            return super().decode_step(ids, None)

    with pytest.raises(ProtocolError, match="decode_step"):
        check_language_model(Forgetful(list("abcde")), [list("abcab")])

    class MixesRows(TinyGRU):
        def reorder_cache(self, cache, rows):  # always keeps row 0: beams would swap their histories
            return cache[:, torch.zeros_like(rows)]

    with pytest.raises(ProtocolError, match="reorder_cache"):
        check_language_model(MixesRows(list("abcde")), [list("abcab"), list("eed")])


def test_incremental_and_plain_decoding_give_the_same_tokens_and_scores():
    model = TinyGRU(list("abcde"), seed=3)
    for strategy in (
        lambda m: G.sample(m, ["a"], 15, num_samples=6, top_k=4, generator=torch.Generator().manual_seed(0)),
        lambda m: [G.greedy(m, ["b", "c"], 15)],
        lambda m: G.beam_search(m, ["a"], 10, num_beams=5, num_return=3),
    ):
        fast, plain = strategy(model), strategy(PlainView(model))
        assert [g.ids for g in fast] == [g.ids for g in plain]
        for f, p in zip(fast, plain, strict=True):
            assert f.logprobs == pytest.approx(p.logprobs, abs=1e-12)
            assert f.entropies == pytest.approx(p.entropies, abs=1e-12)


def test_use_cache_false_reads_the_whole_context_and_gives_the_same_generations():
    model = TinyGRU(list("abcde"), seed=3)
    steps = []
    original = model.decode_step
    model.decode_step = lambda ids, cache: steps.append(ids.shape[1]) or original(ids, cache)
    for strategy in (
        lambda **kw: G.sample(model, ["a"], 12, num_samples=4, top_p=0.9,
                              generator=torch.Generator().manual_seed(1), **kw),
        lambda **kw: [G.greedy(model, ["b", "c"], 12, **kw)],
        lambda **kw: G.beam_search(model, ["a"], 8, num_beams=3, num_return=2, **kw),
    ):
        steps.clear()
        plain = strategy(use_cache=False)
        assert steps == []  # never read incrementally: next_token_logprobs of the whole context
        cached = strategy()
        assert steps[0] > 1 and set(steps[1:]) == {1}  # the context once, then one token per step
        assert [g.ids for g in cached] == [g.ids for g in plain] == [g.ids for g in strategy(use_cache=True)]
        for c, p in zip(cached, plain, strict=True):
            assert c.logprobs == pytest.approx(p.logprobs, abs=1e-12)
            assert c.score == pytest.approx(p.score, abs=1e-12)
    with pytest.raises(TypeError, match="use_cache must be True or False"):
        G.greedy(model, ["a"], 3, use_cache="no")


# --- scores and measures ---------------------------------------------------------------------------


def test_generation_scores_are_the_models_log_probabilities_and_entropies(sam_kn):
    [g] = G.sample(sam_kn, ["I"], 10, top_k=2, temperature=0.7, generator=torch.Generator().manual_seed(4))
    context = [sam_kn.vocab.bos_id, sam_kn.vocab.stoi["I"]]
    for token, logp, h in zip(g.ids, g.logprobs, g.entropies, strict=True):
        dist = sam_kn.next_token_logprobs(torch.tensor([context]))[0]
        assert logp == pytest.approx(dist[token].item()) and h == pytest.approx(G.entropy(dist).item())
        context.append(token)
    assert g.logprob == pytest.approx(sum(g.logprobs))


def test_entropy_of_a_uniform_distribution_is_ln_n_and_rises_with_temperature():
    assert G.entropy(torch.full((8,), -math.log(8))).item() == pytest.approx(math.log(8))
    scores = TableLM(list("abcdefgh"), seed=1).table[2]
    h = [G.entropy(G.scale_temperature(t)(scores[None], None).log_softmax(-1)).item() for t in (0.25, 0.5, 1, 2, 4)]
    assert h == sorted(h) and h[-1] < math.log(9)


def test_distinct_n_and_repetition_rate():
    assert G.distinct_n([["a", "b", "a", "b"]], 2) == pytest.approx(2 / 3)
    assert G.distinct_n([["a", "b"], ["a", "b"]], 1) == 0.5
    assert G.repetition_rate(["the", "cat", "the", "the"]) == 0.5 and G.repetition_rate([]) == 0.0


def test_the_ngram_model_and_the_mlp_decode_through_the_same_functions(sam_kn):
    from lmlib.mlp import MLPLM, MLPConfig
    mlp = MLPLM(MLPConfig(vocab_size=len(sam_kn.vocab)), sam_kn.vocab).eval()
    for model in (sam_kn, mlp):
        assert isinstance(model, LanguageModel)
        [g] = G.sample(model, ["I"], 6, top_p=0.9, generator=torch.Generator().manual_seed(0))
        assert len(g.ids) <= 6 and all(t not in ("<pad>", "<bos>", "<eos>") for t in g.tokens)


# --- bad input ----------------------------------------------------------------------------------


class Unnormalised(TableLM):
    def next_token_logprobs(self, contexts):
        return super().next_token_logprobs(contexts) + 0.5  # probabilities that sum to e^0.5


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m: G.sample(m, temperature=-0.1), ValueError, "temperature must be >= 0"),
        (lambda m: G.sample(m, top_k=0), ValueError, "top_k must be an integer >= 1"),
        (lambda m: G.sample(m, top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
        (lambda m: G.sample(m, top_p=1.5), ValueError, r"top_p must be in \(0, 1\]"),
        (lambda m: G.sample(m, min_p=2), ValueError, r"min_p must be in \(0, 1\]"),
        (lambda m: G.sample(m, repetition_penalty=0), ValueError, "repetition_penalty must be > 0"),
        (lambda m: G.beam_search(m, num_beams=0), ValueError, "num_beams"),
        (lambda m: G.beam_search(m, num_beams=2, num_return=3), ValueError, "num_return"),
        (lambda m: G.sample(m, max_tokens=0), ValueError, "max_tokens must be an integer >= 1"),
        (lambda m: G.sample(m, num_samples=0), ValueError, "num_samples"),
        (lambda m: G.sample(m, "I am"), TypeError, "list of tokens"),
        (lambda m: G.greedy(m, ["<eos>"]), ValueError, "may not contain"),
        (lambda m: G.greedy(Unnormalised(list("ab"))), ValueError, "sum to .* not 1"),
        (lambda m: G.greedy(object()), TypeError, "not a LanguageModel"),
    ],
)
def test_bad_input_gets_a_clear_error(sam_kn, call, error, message):
    with pytest.raises(error, match=message):
        call(sam_kn)


def test_unknown_prompt_words_are_read_as_unk_and_said(sam_kn):
    with pytest.warns(UserWarning, match=r"read as <unk>: \['zebra'\]"):
        g = G.greedy(sam_kn, ["I", "zebra"], 5)
    assert g.prompt == ["I", "<unk>"]


def test_suppressed_tokens_are_never_chosen(sam_kn):
    banned = ["I", "Sam", "<unk>"]
    gens = G.sample(sam_kn, ["I"], 10, num_samples=50, suppress=banned, generator=torch.Generator().manual_seed(0))
    gens += [G.greedy(sam_kn, ["am"], 10, suppress=banned)]
    gens += G.beam_search(sam_kn, ["am"], 10, num_beams=3, num_return=3, suppress=banned)
    assert all(not set(g.tokens) & set(banned) for g in gens)
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        G.greedy(sam_kn, suppress=["zebra"])


def test_a_draw_never_lands_on_a_token_of_probability_zero(monkeypatch):
    probs = torch.tensor([[0.1, 0.2, 0.0, 0.0], [0.0, 0.3, 0.0, 0.7]], dtype=torch.float64)
    draws = G.draw_tokens(probs.repeat(500, 1), torch.Generator().manual_seed(0)).view(500, 2)
    assert set(draws[:, 0].tolist()) == {0, 1} and set(draws[:, 1].tolist()) == {1, 3}
    # u * total can round up to the total itself; simulate it: the last token with p > 0 is drawn.
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.ones(*shape, dtype=kw.get("dtype")))
    assert G.draw_tokens(probs).tolist() == [1, 3]


# --- streaming and stop tokens ---------------------------------------------------------------


def test_stream_yields_each_token_when_asked_one_cache_step_each():
    model = TinyGRU(list("abcde"), seed=3)
    steps = []
    original = model.decode_step
    model.decode_step = lambda ids, cache: steps.append(ids.shape[1]) or original(ids, cache)
    tokens = G.stream(model, ["a", "b"], 12, temperature=0)
    assert steps == []  # nothing decoded until the first token is asked for
    first = next(tokens)
    assert steps == [3]  # <bos> a b, read once
    rest = list(tokens)
    assert steps == [3] + [1] * len(rest)  # then one new token per step, on the cache
    assert [first, *rest] == G.greedy(model, ["a", "b"], 12).ids


@pytest.mark.parametrize("settings", [{"temperature": 0}, {}, {"temperature": 0.7, "top_k": 3},
                                      {"top_p": 0.8, "repetition_penalty": 1.3}, {"min_p": 0.2}])
def test_stream_gives_the_ids_of_sample_and_greedy(sam_kn, settings):
    for model in (sam_kn, TinyGRU(list("abcde"), seed=3)):
        prompt = ["I"] if model is sam_kn else ["a"]
        streamed = list(G.stream(model, prompt, 15, generator=torch.Generator().manual_seed(2), **settings))
        [sampled] = G.sample(model, prompt, 15, generator=torch.Generator().manual_seed(2), **settings)
        assert streamed == sampled.ids
        if settings == {"temperature": 0}:
            assert streamed == G.greedy(model, prompt, 15).ids


def test_a_stop_token_ends_the_generation_as_eos_does():
    model = TinyGRU(list("abcde"), seed=3)
    free = G.greedy(model, ["a"], 20)
    stop = next(t for t in free.tokens[1:] if t != free.tokens[0])  # a token it writes, not first
    at = free.tokens.index(stop)
    stopped = G.greedy(model, ["a"], 20, stop=[stop])
    assert stopped.ids == free.ids[: at + 1] and stopped.finished and stopped.tokens == free.tokens[:at]
    assert list(G.stream(model, ["a"], 20, temperature=0, stop=[stop])) == stopped.ids
    samples = G.sample(model, ["a"], 20, num_samples=30, stop=[stop], generator=torch.Generator().manual_seed(0))
    for g in samples:  # each row ends at its first stop token (or <eos>), and only there
        ends = [i for i, t in enumerate(g.ids) if t in (model.vocab.stoi[stop], model.vocab.eos_id)]
        assert ends == ([len(g.ids) - 1] if g.finished else [])
    assert sum(g.finished for g in samples) > 0
    with pytest.raises(ValueError, match=r"cannot stop at tokens that are not in the model's vocabulary: \['z'\]"):
        G.greedy(model, ["a"], 5, stop=["z"])
    with pytest.raises(TypeError, match="stop must be a list of tokens"):
        G.sample(model, ["a"], 5, stop="b")


def test_stream_checks_its_settings_before_the_first_step():
    model = TinyGRU(list("abcde"), seed=3)
    for bad, error in [({"temperature": -1}, ValueError), ({"top_p": 1.5}, ValueError), ({"stop": ["z"]}, ValueError),
                       ({"suppress": "a"}, TypeError)]:
        with pytest.raises(error):
            G.stream(model, ["a"], 5, **bad)  # raised here, not when the first token is asked for
    with pytest.raises(ValueError, match="max_tokens"):
        G.stream(model, ["a"], 0)


# --- the tokens recorded before the decoding speed-ups ---------------------------------------------------------


def recorded_decodings(model) -> dict[str, list[list[int]]]:
    """The ids of greedy (with a repetition penalty), sample (3 rows that end at different steps), filtered
    sampling with a stop token, and stream, on fixed seeds: what ``RECORDED_GRU_TOKENS`` (and
    tests/test_transformer.py's ``RECORDED_GPT_TOKENS``) hold."""
    prompt = ["I", "am"]
    runs = {"greedy": [G.greedy(model, prompt, 30, repetition_penalty=1.5, suppress=["<eos>"]).ids]}
    for seed in (0, 1):
        seeded = {"generator": torch.Generator().manual_seed(seed)}
        runs[f"sample{seed}"] = [g.ids for g in G.sample(model, prompt, 20, num_samples=3, **seeded)]
        seeded = {"generator": torch.Generator().manual_seed(seed)}
        runs[f"filtered{seed}"] = [g.ids for g in G.sample(model, prompt, 20, temperature=0.7, top_k=5, top_p=0.9,
                                                           num_samples=2, stop=["am"], **seeded)]
        seeded = {"generator": torch.Generator().manual_seed(seed)}
        runs[f"stream{seed}"] = [list(G.stream(model, prompt, 20, temperature=1.3, min_p=0.05, **seeded))]
    return runs


# Made by main's lmlib.generate at commit af4bff3, before issue 27 cut the decoding loop's work per step (one
# transfer to Python a step, stop tokens checked in Python, the suppressed ids made once): every later change
# must keep them. The recurrent model here, the GPTs in tests/test_transformer.py (float64: the same on any CPU).
RECORDED_GRU_TOKENS = {"greedy": [[10, 1, 11, 7, 13, 4, 1, 1, 11, 5, 9, 7, 1, 11, 8, 7, 7, 1, 1, 11, 7, 1, 1, 11, 7,
                                   1, 1, 11, 7, 1]],
                       "sample0": [[13, 13, 3], [10, 9, 6, 5, 3], [7, 11, 8, 7, 5, 9, 7, 7, 6, 3]],
                       "filtered0": [[10, 4, 7, 1, 4, 3], [7, 11, 7, 3]],
                       "stream0": [[13, 10, 7, 13, 9, 11, 3]],
                       "sample1": [[1, 3], [4, 8, 7, 10, 8, 7, 7, 5, 10, 6, 1, 3], [4, 3]],
                       "filtered1": [[1, 4, 1, 7, 1, 4, 7, 4, 4, 4, 3], [3]],
                       "stream1": [[1, 4, 4, 3]]}


def test_decoding_gives_the_tokens_recorded_before_the_speed_ups():
    assert recorded_decodings(TinyGRU([w for s in SAM for w in s])) == RECORDED_GRU_TOKENS
