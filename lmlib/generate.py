"""Decoding: turning a language model's next-token distributions into text.

A language model gives, for a context w_{<t}, a distribution P(w_t | w_{<t})
over the vocabulary. Decoding chooses a token from it, appends it, and asks
again, until ``<eos>`` (or another token given as ``stop``, e.g. a chat model's
``<|end|>``) or ``max_tokens``. Every strategy here is a function of the protocol
(``next_token_logprobs``, or ``decode_step`` for models that read one token at a
time, each new token one step on the model's cache), so one decoder serves the
n-gram model and the Transformer alike. ``stream`` yields the tokens one by one as
they are chosen (a chat shows the answer as it is written); ``greedy`` and
``sample`` run the same steps and collect them.

Sampling strategies reshape the scores s = ln P before drawing a token, the
way Hugging Face's logits processors do; each is a function
``(scores [B, V], ids [B, T]) -> scores [B, V]``, and they compose in order:

    temperature τ:   q_i ∝ exp(s_i / τ)                          (τ -> 0: greedy; τ = 1: the model)
    top-k:           keep the k most probable tokens
    top-p (nucleus): keep the smallest set of most probable tokens with total probability >= p
    min-p:           keep tokens with q_i >= p * max_j q_j
    repetition:      divide the probability of every token already in the context by a penalty

Beam search instead looks for the sequence y with the highest length-normalised
score  ln P(y | prompt) / |y|^alpha  (alpha = ``length_penalty``; |y| counts the
generated tokens, ``<eos>`` included).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from lmlib.lm import IncrementalDecoding, LanguageModel, model_device

Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (scores [B, V], ids [B, T]) -> scores [B, V]


@dataclass
class Generation:
    """One generated continuation and how the model scored it.

    ``ids`` are the generated token ids (the token that ended it, ``<eos>`` or a
    ``stop`` token, included when ``finished``; ``tokens`` leave it out);
    ``logprobs[t]`` is ln P(ids[t] | context) under the *model's* distribution
    (before any filter), and ``entropies[t]`` that distribution's entropy in nats.
    ``score`` is what the search ranked by (beam search: the length-normalised
    log-probability; otherwise the log-probability).
    """

    prompt: list[str]
    ids: list[int]
    tokens: list[str]
    logprobs: list[float]
    entropies: list[float]
    finished: bool
    score: float

    @property
    def logprob(self) -> float:
        """ln P(continuation | prompt): the sum of the per-token log-probabilities."""
        return math.fsum(self.logprobs)


# --- processors: reshape the scores before a token is drawn -----------------------------------


def scale_temperature(t: float) -> Processor:
    """Divide the log-probabilities by T: T < 1 sharpens the distribution, T > 1 flattens it."""
    if not t > 0:
        raise ValueError(f"temperature must be > 0 here (use greedy decoding for temperature 0), got {t}")
    return lambda scores, ids: scores / t


def keep_top_k(k: int) -> Processor:
    """Keep the k highest-scoring tokens (ties at the k-th score all kept); the rest get -inf."""
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"top_k must be an integer >= 1, got {k!r}")

    def top_k_of(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if k >= scores.shape[-1]:
            return scores
        kth = scores.topk(k, dim=-1).values[:, -1:]  # [B, 1]
        return scores.masked_fill(scores < kth, -math.inf)

    return top_k_of


def keep_top_p(p: float) -> Processor:
    """Nucleus: keep the most probable tokens until their total probability reaches p.

    The token that crosses p is kept, so the kept mass is >= p and the most
    probable token always survives; p = 1 keeps everything.
    """
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")

    def nucleus_of(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if p == 1:
            return scores
        # [B, V]
        sorted_scores, order = scores.sort(dim=-1, descending=True, stable=True)
        probs = sorted_scores.softmax(dim=-1)
        # probability of the more likely tokens
        mass_before = probs.cumsum(dim=-1) - probs
        drop = (torch.zeros_like(scores, dtype=torch.bool)
                .scatter(-1, order, mass_before >= p))
        return scores.masked_fill(drop, -math.inf)

    return nucleus_of


def keep_min_p(p: float) -> Processor:
    """Keep the tokens at least p times as probable as the most probable one."""
    if not 0 < p <= 1:
        raise ValueError(f"min_p must be in (0, 1], got {p}")

    def above_min_p(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        logq = scores.log_softmax(dim=-1)
        threshold = logq.max(dim=-1, keepdim=True).values + math.log(p)  # [B, 1]
        return scores.masked_fill(logq < threshold, -math.inf)

    return above_min_p


def penalise_repeats(penalty: float) -> Processor:
    """Divide the probability of every token already in the context (prompt included) by ``penalty``.

    This subtracts ln(penalty) from those tokens' log-probabilities. Hugging
    Face's version (from CTRL) divides positive logits and multiplies negative
    ones instead, which depends on the logits' arbitrary offset; on
    log-probabilities, which are all <= 0, it would only ever punish. The form
    here is the same for any offset. A penalty of 1 changes nothing; < 1
    encourages repetition.
    """
    if not penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (1 = no penalty), got {penalty}")

    def penalise_seen(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return scores - torch.zeros_like(scores).scatter_(-1, ids, math.log(penalty))  # once per seen token

    return penalise_seen


def suppress_tokens(token_ids: Sequence[int]) -> Processor:
    """Never choose these tokens (e.g. ``<unk>``, which stands for every rare word at once)."""
    banned = list(token_ids)
    made: dict[torch.device, torch.Tensor] = {}  # the ids as a tensor, made once per device (not at every step)

    def suppressed(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if scores.device not in made:
            made[scores.device] = torch.tensor(banned, dtype=torch.long, device=scores.device)
        return scores.index_fill(-1, made[scores.device], -math.inf)

    return suppressed


def processors(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               min_p: float | None = None, repetition_penalty: float = 1.0,
               suppress: Sequence[int] = ()) -> list[Processor]:
    """The processors for the usual settings, in Hugging Face's order: repetition penalty, suppressed
    tokens, temperature, top-k, top-p, min-p. The defaults change nothing."""
    chain = []
    if repetition_penalty != 1.0:
        chain.append(penalise_repeats(repetition_penalty))
    if len(suppress):
        chain.append(suppress_tokens(suppress))
    if temperature != 1.0:
        chain.append(scale_temperature(temperature))
    if top_k is not None:
        chain.append(keep_top_k(top_k))
    if top_p is not None:
        chain.append(keep_top_p(top_p))
    if min_p is not None:
        chain.append(keep_min_p(min_p))
    return chain


def sampling_distribution(scores: torch.Tensor, ids: torch.Tensor, chain: Sequence[Processor]) -> torch.Tensor:
    """Apply the processors in order and renormalise: [B, V] scores -> [B, V] probabilities to sample from."""
    for process in chain:
        scores = process(scores, ids)
    return scores.softmax(dim=-1)


def entropy(logprobs: torch.Tensor) -> torch.Tensor:
    """H = -sum_i p_i ln p_i in nats over the last dimension (0 ln 0 = 0)."""
    return -(logprobs.exp() * logprobs.clamp(min=torch.finfo(logprobs.dtype).min)).sum(dim=-1)


# --- the strategies ---------------------------------------------------------------------------


def greedy(model: LanguageModel, prompt: Sequence[str] = (), max_tokens: int = 30, *,
           repetition_penalty: float = 1.0, suppress: Sequence[str] = (), stop: Sequence[str] = (),
           use_cache: bool = True) -> Generation:
    """Always take the most probable next token (ties: the lowest id).

    ``stop`` lists tokens that end the generation as ``<eos>`` does (kept as its last id).
    ``use_cache=False`` re-reads the whole context at every step even when the model
    could read one token at a time (as ``use_cache`` in Hugging Face's ``generate``):
    the same tokens, more work; it is there to check the cache against.
    """
    chain = processors(repetition_penalty=repetition_penalty, suppress=_suppressed_ids(model, suppress))
    state = _Decoding(model, prompt, max_tokens, 1, use_cache, stop)
    return _decode(state, lambda scores, ids: _argmax(scores, ids, chain))[0]


def sample(
    model: LanguageModel,
    prompt: Sequence[str] = (),
    max_tokens: int = 30,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    suppress: Sequence[str] = (),
    stop: Sequence[str] = (),
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> list[Generation]:
    """Draw ``num_samples`` continuations of ``prompt``, each token from the processed
    distribution.

    Pass a seeded ``torch.Generator`` for reproducible samples. ``temperature=0``
    is greedy decoding (the limit T -> 0). ``suppress`` lists tokens never to choose,
    ``stop`` tokens that end a continuation as ``<eos>`` does.
    ``use_cache=False``: re-read the whole context at every step (see ``greedy``).
    """
    choose = _chooser(model, temperature, top_k, top_p, min_p, repetition_penalty,
                      suppress, generator)
    state = _Decoding(model, prompt, max_tokens, num_samples, use_cache, stop)
    return _decode(state, choose)


def stream(
    model: LanguageModel,
    prompt: Sequence[str] = (),
    max_tokens: int = 30,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    suppress: Sequence[str] = (),
    stop: Sequence[str] = (),
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> Iterator[int]:
    """One continuation of ``prompt``, yielded a token id at a time as each is chosen: the ids of
    ``sample(..., num_samples=1)`` with the same settings and generator (``temperature=0``: ``greedy``'s),
    the token that ends it (``<eos>`` or a ``stop`` token) last.

    Each id costs one model step, taken when the next id is asked for; a model with a cache
    (``decode_step``) reads only the new token. The settings are checked here, before the first step.
    """
    choose = _chooser(model, temperature, top_k, top_p, min_p, repetition_penalty, suppress,
                      generator)
    steps = _steps(_Decoding(model, prompt, max_tokens, 1, use_cache, stop), choose)
    return (chosen[0][0] for _, chosen, _ in steps)


def _chooser(model: LanguageModel, temperature: float, top_k: int | None,
             top_p: float | None, min_p: float | None, repetition_penalty: float,
             suppress: Sequence[str], generator: torch.Generator | None
             ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """How ``sample`` and ``stream`` pick each row's token from [B, V] log-probabilities:
    a draw from the processed distribution, or its most probable token at temperature 0.
    """
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    chain = processors(temperature or 1.0, top_k, top_p, min_p, repetition_penalty,
                       _suppressed_ids(model, suppress))
    if temperature == 0:  # the limit T -> 0: all the mass on the most probable token left
        return lambda scores, ids: _argmax(scores, ids, chain)

    def draw(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return draw_tokens(sampling_distribution(scores, ids, chain), generator)

    return draw


def draw_tokens(probs: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of [B, V] probabilities, by inverting the cumulative
    distribution.

    Draw u ~ Uniform[0, 1) and take the first token whose cumulative probability
    exceeds u (times the total, which absorbs rounding): token i is chosen with
    probability p_i, and a token with p_i = 0 never is. One random number per
    row, where ``torch.multinomial`` is several times slower over a large vocabulary.
    """
    cdf = probs.cumsum(dim=-1)  # [B, V]
    # drawn on the generator's device, so a CPU seed gives the same draws on any device
    where = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(probs.shape[0], 1, generator=generator, dtype=cdf.dtype, device=where)
    u = u.to(cdf.device) * cdf[:, -1:]  # [B, 1]
    chosen = torch.searchsorted(cdf, u, right=True)[:, 0]  # [B]
    # u * total can round up to the total itself: then take the last token with p_i > 0.
    last_possible = probs.shape[-1] - 1 - (probs.flip(-1) > 0).int().argmax(dim=-1)
    return torch.minimum(chosen, last_possible)


def beam_search(
    model: LanguageModel,
    prompt: Sequence[str] = (),
    max_tokens: int = 30,
    *,
    num_beams: int = 4,
    length_penalty: float = 1.0,
    num_return: int = 1,
    suppress: Sequence[str] = (),
    use_cache: bool = True,
) -> list[Generation]:
    """The ``num_return`` best continuations found keeping ``num_beams`` partial ones at each step.

    Each step extends every live beam by every token and keeps the ``num_beams``
    best extensions that do not end in ``<eos>``; an extension that ends in
    ``<eos>`` and ranks among the ``num_beams`` best is set aside as finished.
    The search stops when no live beam can still beat the ``num_return``-th best
    finished one (log-probabilities only fall as a sequence grows, which bounds
    the best score a beam can reach), or at ``max_tokens``, when the live beams
    join the finished ones as unfinished candidates. Ranked by
    ln P / |y|^length_penalty; with a beam wide enough to keep every sequence,
    the result is the exact best. ``use_cache=False``: re-read the whole context at every
    step (see ``greedy``).
    """
    if not (isinstance(num_beams, int) and num_beams >= 1):
        raise ValueError(f"num_beams (the beam width) must be an integer >= 1, got {num_beams!r}")
    if not 1 <= num_return <= num_beams:
        raise ValueError(f"num_return must be between 1 and num_beams={num_beams}, got {num_return}")
    state = _Decoding(model, prompt, max_tokens, 1, use_cache)
    banned = _suppressed_ids(model, suppress)
    eos = model.vocab.eos_id
    sums = torch.zeros(1, dtype=torch.float64, device=state.ids.device)  # [beams] ln P of each live beam
    banned_ids = torch.tensor(banned, dtype=torch.long, device=state.ids.device)
    history: list[list[tuple[int, float, float]]] = [[]]  # per live beam: (id, ln P, entropy) per step
    finished: list[Generation] = []

    def normalised(total: float, length: int) -> float:
        return total / length**length_penalty

    for length in range(1, max_tokens + 1):
        logp = state.next_logprobs()  # [beams, V]
        entropies = entropy(logp)
        candidates = (sums[:, None] + logp).index_fill(1, banned_ids, -math.inf)
        candidates = candidates.flatten()  # [beams * V]
        # Each beam has one <eos> extension, so the best 2 * num_beams hold num_beams that go on.
        ranked = candidates.topk(min(2 * num_beams, len(candidates)), sorted=True).indices
        ranked = ranked[torch.isfinite(candidates[ranked])]
        keep_beams, keep_ids = [], []
        for rank, flat in enumerate(ranked.tolist()):
            beam, token = divmod(flat, logp.shape[1])
            step = (token, logp[beam, token].item(), entropies[beam].item())
            if token == eos:
                if rank < num_beams:
                    finished.append(state.generation([*history[beam], step], True, normalised(
                        candidates[flat].item(), length)))
            elif len(keep_beams) < num_beams:
                keep_beams.append(beam)
                keep_ids.append(token)
            if len(keep_beams) == num_beams and rank >= num_beams:
                break
        finished.sort(key=lambda g: -g.score)
        del finished[num_return:]
        sums = candidates.view(logp.shape)[keep_beams, keep_ids]
        history = [[*history[b], (t, logp[b, t].item(), entropies[b].item())] for b, t in zip(keep_beams, keep_ids,
                                                                                              strict=True)]
        if not keep_beams or length == max_tokens:
            break
        best_reachable = max(_best_reachable(s, length, max_tokens, length_penalty) for s in sums.tolist())
        if len(finished) == num_return and best_reachable <= finished[-1].score:
            return finished  # no live beam can enter the result any more
        state.keep(torch.tensor(keep_beams, device=state.ids.device))
        state.append(torch.tensor(keep_ids, device=state.ids.device))
    live = [state.generation(h, False, normalised(s, len(h))) for h, s in zip(history, sums.tolist(), strict=True)]
    return sorted(finished + live, key=lambda g: -g.score)[:num_return]


def _suppressed_ids(model: LanguageModel, tokens: Sequence[str]) -> list[int]:
    return _token_ids(model, tokens, "suppress")


def _token_ids(model: LanguageModel, tokens: Sequence[str], option: str) -> list[int]:
    """The ids of the tokens given as ``option`` (``suppress``, ``stop``), each one checked to be in the vocabulary."""
    if isinstance(tokens, str):
        raise TypeError(f"{option} must be a list of tokens, e.g. [{tokens!r}], not a str")
    if not tokens:
        return []
    unknown = [t for t in tokens if t not in model.vocab.stoi]
    if unknown:
        verb = {"stop": "stop at"}.get(option, option)
        raise ValueError(f"cannot {verb} tokens that are not in the model's vocabulary: {unknown}")
    return model.vocab.encode(tokens)


def _best_reachable(total: float, length: int, max_tokens: int, alpha: float) -> float:
    """An upper bound on the normalised score of any completion of a live beam of ``length`` tokens with
    ln P = ``total``: the sum can only fall, so the bound takes the most favourable final length."""
    final = max_tokens if alpha >= 0 else length + 1
    return total / final**alpha


def _argmax(scores: torch.Tensor, ids: torch.Tensor, chain: Sequence[Processor]) -> torch.Tensor:
    for process in chain:
        scores = process(scores, ids)
    return scores.argmax(dim=-1)


def _decode(state: _Decoding, choose: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> list[Generation]:
    """Greedy's and sampling's loop: every row's steps (``_steps``) collected into a ``Generation``."""
    rows = state.ids.shape[0]
    steps: list[list[tuple[int, float, float]]] = [[] for _ in range(rows)]
    done: dict[int, bool] = {}
    for live, chosen, ended in _steps(state, choose):
        for row, step, end in zip(live, chosen, ended, strict=True):
            steps[row].append(step)
            if end:
                done[row] = True
    return [state.generation(steps[r], done.get(r, False)) for r in range(rows)]


def _steps(state: _Decoding, choose: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
           ) -> Iterator[tuple[list[int], list[tuple[int, float, float]], list[bool]]]:
    """Each step of decoding, as it is taken: which original rows are live, the (id, ln P, entropy) each
    chose (``choose`` picks from [live, V] log-probabilities), and which of them ended (``<eos>`` or a stop
    token). A row that ended leaves the batch; the next step runs when the next item is asked for."""
    live = list(range(state.ids.shape[0]))  # which original row each row of the state is
    for _ in range(state.max_tokens):
        logp = state.next_logprobs()  # [live, V]
        chosen = choose(logp, state.ids)  # [live]
        # [3, live]: id, ln P and entropy of each row, brought to Python at once (not three numbers a row)
        picked = torch.stack([chosen.to(logp.dtype), logp.gather(-1, chosen[:, None])[:, 0], entropy(logp)])
        steps = [(int(i), p, h) for i, p, h in zip(*picked.tolist(), strict=True)]
        ended = [step[0] in state.stop_ids for step in steps]
        yield live, steps, ended
        if any(ended):
            going = [row for row, e in enumerate(ended) if not e]
            live = [live[row] for row in going]
            if not live:
                return
            going = torch.tensor(going, device=chosen.device)
            state.keep(going)
            chosen = chosen[going]
        state.append(chosen)


class _Decoding:
    """The growing contexts of a batch of rows, read incrementally when the model can (and
    ``use_cache`` allows)."""

    def __init__(self, model: LanguageModel, prompt: Sequence[str], max_tokens: int, rows: int,
                 use_cache: bool = True, stop: Sequence[str] = ()):
        if not isinstance(model, LanguageModel):
            raise TypeError(f"{type(model).__name__} is not a LanguageModel (needs vocab and next_token_logprobs)")
        if not (isinstance(max_tokens, int) and max_tokens >= 1):
            raise ValueError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
        if not (isinstance(rows, int) and rows >= 1):
            raise ValueError(f"num_samples must be an integer >= 1, got {rows!r}")
        self.model, self.vocab, self.max_tokens = model, model.vocab, max_tokens
        self.prompt = _prompt_tokens(self.vocab, prompt)
        start = [self.vocab.bos_id, *self.vocab.encode(self.prompt)]
        self.ids = torch.tensor([start] * rows, device=model_device(model))  # [B, T]
        # the ids that end a row: <eos> and the stop tokens
        self.stop_ids = {self.vocab.eos_id, *_token_ids(model, stop, "stop")}
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache must be True or False, got {use_cache!r}")
        self.incremental = use_cache and isinstance(model, IncrementalDecoding)
        self.cache: object | None = None

    def next_logprobs(self) -> torch.Tensor:
        """[B, V] ln P(next token | each row's context), checked to be a distribution."""
        with torch.no_grad():
            if not self.incremental:
                logp = self.model.next_token_logprobs(self.ids)
            elif self.cache is None:
                logp, self.cache = self.model.decode_step(self.ids, None)
            else:
                logp, self.cache = self.model.decode_step(self.ids[:, -1:], self.cache)
        logp = logp.double()
        mass = logp.exp().sum(dim=-1).tolist()
        if not all(abs(m - 1) <= 1e-4 + 1e-5 for m in mass):  # torch.allclose(mass, 1, atol=1e-4), NaN fails
            raise ValueError(
                f"{type(self.model).__name__}'s next-token probabilities sum to {mass[:4]}, not 1: "
                "next_token_logprobs must return log-probabilities (e.g. log_softmax of the logits)")
        return logp

    def append(self, next_ids: torch.Tensor) -> None:
        self.ids = torch.cat([self.ids, next_ids[:, None]], dim=1)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep (reorder, repeat) these rows of the batch, in the context and in the model's cache."""
        self.ids = self.ids[rows]
        if self.cache is not None:
            self.cache = self.model.reorder_cache(self.cache, rows)

    def generation(self, steps: list[tuple[int, float, float]], finished: bool,
                   score: float | None = None) -> Generation:
        """A ``Generation`` from per-step (id, ln P, entropy); its score defaults to its ln P."""
        ids, logprobs = [s[0] for s in steps], [s[1] for s in steps]
        words = ids[:-1] if finished else ids
        return Generation(self.prompt, ids, self.vocab.decode(words), logprobs, [s[2] for s in steps],
                          finished, math.fsum(logprobs) if score is None else score)


def _prompt_tokens(vocab, prompt: Sequence[str]) -> list[str]:
    """The prompt's tokens, unknown ones replaced by ``<unk>`` (with a warning that names them)."""
    if isinstance(prompt, str):
        raise TypeError(f"prompt must be a list of tokens, e.g. {prompt.split()!r}, not the str {prompt!r}; "
                        "tokenize it the way the model's training text was")
    tokens = list(prompt)
    unknown = sorted({t for t in tokens if t not in vocab.stoi})
    if unknown:
        warnings.warn(f"prompt tokens not in the model's vocabulary, read as <unk>: {unknown}", stacklevel=3)
    specials = {t for t in tokens if t in ("<pad>", "<bos>", "<eos>")}
    if specials:
        raise ValueError(f"the prompt may not contain {sorted(specials)}: the decoder adds <bos> itself")
    return [t if t in vocab.stoi else "<unk>" for t in tokens]


# --- measures of generated text ---------------------------------------------------------------


def distinct_n(samples: Sequence[Sequence[str]], n: int) -> float:
    """Distinct-n: distinct n-grams / all n-grams over a set of samples (1 = no n-gram repeats)."""
    grams = [tuple(s[i : i + n]) for s in samples for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: Sequence[str]) -> float:
    """The share of tokens that already occurred earlier in the same sample."""
    seen: set[str] = set()
    repeats = 0
    for t in tokens:
        repeats += t in seen
        seen.add(t)
    return repeats / len(tokens) if tokens else 0.0
