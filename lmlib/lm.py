"""The one seam between models and tools: the ``LanguageModel`` protocol.

A language model assigns a probability to a token sequence by the chain rule,

    P(w_1 .. w_n) = prod_{t=1}^{n+1} P(w_t | w_{<t}),   with w_0 = <bos>, w_{n+1} = <eos>,

so a model only has to answer two questions: the log-probability of each token
of a sequence given its prefix (teacher forcing: what perplexity needs), and the
distribution of the next token given a context (what decoding needs). Every
causal model in lmlib (n-gram, MLP, RNN and LSTM, GPT) answers both, so one
``perplexity`` serves them all, and one decoder (``lmlib.generate``).

Perplexity is the exponential of the cross-entropy per predicted token,

    PPL = exp( -1/N * sum_t ln P(w_t | w_{<t}) ),

where N counts every predicted token: each word and each sequence's ``<eos>``;
``<bos>`` is context only and is never predicted. Models with different
tokenizations predict different numbers of tokens for the same text, so they
are compared per character instead (``bits_per_character``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch

from lmlib.neural import NeuralLM, WindowedLM, is_state
from lmlib.tokenize import Vocab


class _WithVocab(type(Protocol)):
    def __instancecheck__(cls, obj: object) -> bool:
        # vocab None: a network without a vocabulary (GPT.from_hf(model)) or an unfitted n-gram model
        return super().__instancecheck__(obj) and getattr(obj, "vocab", None) is not None


@runtime_checkable
class LanguageModel(Protocol, metaclass=_WithVocab):
    """What every lmlib model provides. Log-probabilities are natural logs. ``vocab`` is not None:
    a model whose ``vocab`` is None (a bare network) is not a LanguageModel."""

    vocab: Vocab

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``ids`` [B, T] rows ``<bos> w_1 .. w_n <eos> <pad>..``.

        Returns [B, T-1]: entry (b, t-1) is ln P(ids[b, t] | ids[b, :t]). Entries
        whose target is ``<pad>`` are ignored by callers.
        """
        ...

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        """``contexts`` [B, T] (rows start with ``<bos>``, no padding) -> [B, V] log-probabilities."""
        ...


@runtime_checkable
class IncrementalDecoding(Protocol):
    """The optional extension for models that can read a context one token at a time.

    A Transformer keeps the keys and values of the tokens it has read (its KV
    cache); an RNN keeps its hidden state. With them, each new token costs one
    step instead of a pass over the whole context. ``lmlib.generate`` uses these
    two methods when a model has them and ``next_token_logprobs`` on the growing
    context otherwise; the two paths must give the same distributions, which
    ``check_language_model`` verifies. The cache is opaque to the decoder: only
    the model reads what is inside.
    """

    def decode_step(self, ids: torch.Tensor,
                    cache: object | None) -> tuple[torch.Tensor, object]:
        """Read tokens and predict the next one.

        With ``cache=None``, ``ids`` [B, T] is the whole context (rows start with
        ``<bos>``); otherwise ``ids`` [B, 1] holds the token appended to each row
        since ``cache`` was made. Returns the [B, V] next-token log-probabilities
        (equal to ``next_token_logprobs`` of the whole context) and the cache
        after reading ``ids``.
        """
        ...

    def reorder_cache(self, cache: object, rows: torch.Tensor) -> object:
        """Row i of the result is row ``rows[i]`` of ``cache``: rows may be dropped,
        repeated or permuted (beam search keeps its best beams, sampling drops finished
        samples)."""
        ...


def model_device(model: object) -> torch.device:
    """Where a model's weights are: ids for it are made there. A model that is not a
    ``torch.nn.Module`` (an n-gram table, ``UniformLM``) computes on the CPU."""
    if isinstance(model, torch.nn.Module):
        first = next(itertools.chain(model.parameters(), model.buffers()), None)  # not a list of them all
        if first is not None:
            return first.device
    return torch.device("cpu")


def encode_batch(vocab: Vocab, sequences: Sequence[Sequence[str]], eos: bool = True,
                 max_tokens: int | None = None) -> torch.Tensor:
    """Token lists -> [B, T] ids ``<bos> .. <eos>``, right-padded with ``<pad>``.

    ``eos=False`` leaves out ``<eos>`` (a classifier reads a text, it does not predict its end);
    ``max_tokens`` cuts each row to its first that many ids, ``<bos>`` included.
    """
    rows = [[vocab.bos_id, *vocab.encode(s), *([vocab.eos_id] if eos else [])][:max_tokens] for s in sequences]
    width = max(len(r) for r in rows)
    batch = torch.full((len(rows), width), vocab.pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        batch[i, : len(r)] = torch.tensor(r)
    return batch


def total_logprob(
    model: LanguageModel, sequences: Sequence[Sequence[str]], batch_size: int = 64
) -> tuple[float, int]:
    """Sum of ln P over every predicted token (words and ``<eos>``), and how many there were."""
    scores = token_logprobs(model, sequences, batch_size)
    return scores.sum().item(), len(scores)


def token_logprobs(model: LanguageModel, sequences: Sequence[Sequence[str]], batch_size: int = 64) -> torch.Tensor:
    """ln P of every predicted token of the sequences (words and ``<eos>``), in order: a float64 vector.

    Score a model once and derive what you need from it: the perplexity is
    ``exp(-scores.mean())``, and a mixture's scores come from ``mixture_logprobs``.
    """
    if isinstance(sequences, str):
        raise TypeError("sequences must be a list of token lists, e.g. [['the', 'cat'], ...], not a str")
    if not sequences:
        return torch.zeros(0, dtype=torch.float64)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))  # similar lengths: little padding
    batches = [encode_batch(model.vocab, [sequences[i] for i in order[a : a + batch_size]])
               for a in range(0, len(order), batch_size)]
    scores = torch.cat([_score_batch(model, ids) for ids in batches]).split([len(sequences[i]) + 1 for i in order])
    in_order = [scores[rank] for rank in sorted(range(len(order)), key=order.__getitem__)]
    return torch.cat(in_order)


def stream_logprob(model: LanguageModel, stream: torch.Tensor, batch_size: int = 64) -> tuple[float, int]:
    """``total_logprob`` for a 1-D stream of ids ``<bos> w_1 .. <eos> <bos> ..`` (what ``lmlib.train`` reads).

    The stream is cut before each ``<bos>`` and every piece is scored as its own
    sequence, so the result equals ``total_logprob`` of the same sentences.
    """
    if stream.ndim != 1 or len(stream) == 0 or int(stream[0]) != model.vocab.bos_id:
        raise ValueError("the stream must be a non-empty 1-D tensor of ids starting with <bos>")
    starts = torch.nonzero(stream == model.vocab.bos_id).flatten().tolist()
    pieces = [stream[a:b] for a, b in zip(starts, [*starts[1:], len(stream)], strict=True)]
    pieces.sort(key=len)  # batches of similar lengths waste little on padding
    batches = [torch.nn.utils.rnn.pad_sequence(pieces[i : i + batch_size], True, model.vocab.pad_id)
               for i in range(0, len(pieces), batch_size)]
    scores = torch.cat([_score_batch(model, ids) for ids in batches])
    return scores.sum().item(), len(scores)


def _score_batch(model: LanguageModel, ids: torch.Tensor) -> torch.Tensor:
    """ln P of the non-``<pad>`` targets of one [B, T] batch, row by row, as float64 on the CPU (the ids are
    moved to the model's device first)."""
    ids = ids.to(model_device(model))
    logp = model.sequence_logprobs(ids)  # [B, T-1]
    targets = ids[:, 1:]
    if logp.shape != targets.shape:
        raise ValueError(f"sequence_logprobs returned shape {tuple(logp.shape)}, expected {tuple(targets.shape)}")
    mask = targets != model.vocab.pad_id
    picked = logp[mask].double().cpu()
    if torch.isnan(picked).any():
        raise ValueError("the model returned NaN log-probabilities; check its normalisation")
    return picked


def perplexity(model: LanguageModel, sequences: Sequence[Sequence[str]], batch_size: int = 64) -> float:
    """exp of the mean negative log-probability per predicted token (``<eos>`` counted).

    A token the model gives probability 0 makes the perplexity ``inf`` (not NaN).
    """
    total, count = total_logprob(model, sequences, batch_size)
    if count == 0:
        raise ValueError("no tokens to score: pass at least one sequence")
    return math.exp(-total / count) if math.isfinite(total) else math.inf


def bits_per_character(
    model: LanguageModel, texts: Sequence[str], tokenize: Callable[[str], list[str]], batch_size: int = 64
) -> float:
    """Total -log2 P of the texts under the model, divided by their characters.

    Each text counts ``len(text) + 1`` characters: the ``<eos>`` the model
    predicts stands for the line break that ends the text. This is comparable
    across tokenizations because the text, not the tokens, is the denominator.
    """
    total, _ = total_logprob(model, [tokenize(t) for t in texts], batch_size)
    chars = sum(len(t) + 1 for t in texts)
    return -total / math.log(2) / chars


class UniformLM:
    """The baseline that knows nothing: every predictable token is equally likely.

    Predictable tokens are all but ``<pad>`` and ``<bos>``; with V of them the
    perplexity of any text is exactly V.
    """

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self._logp = torch.full((len(vocab),), -math.log(len(vocab) - 2), dtype=torch.float64)
        self._logp[[vocab.pad_id, vocab.bos_id]] = -math.inf

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        return self._logp.expand(contexts.shape[0], -1)  # [B, V]

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        return self._logp[ids[:, 1:]]  # [B, T-1]


class MixtureLM:
    """A linear interpolation of language models that share one vocabulary:

        P(w | h) = sum_i lambda_i P_i(w | h),   lambda_i >= 0,  sum_i lambda_i = 1.

    Bengio et al. (2003) mixed their MLP with a trigram model this way: the two
    make different mistakes, so the mixture beats both. Choose the weights on
    validation text (``MixtureLM.tune``), never on the test set.
    """

    def __init__(self, models: Sequence[LanguageModel], weights: Sequence[float]):
        if len(models) != len(weights) or not models:
            raise ValueError(f"need one weight per model, got {len(models)} models and {len(weights)} weights")
        if any(w < 0 for w in weights) or abs(sum(weights) - 1) > 1e-9:
            raise ValueError(f"weights must be >= 0 and sum to 1, got {list(weights)}")
        if any(m.vocab.itos != models[0].vocab.itos for m in models):
            raise ValueError("the models must share one vocabulary (same tokens, same ids) to be mixed")
        self.models, self.weights, self.vocab = list(models), list(weights), models[0].vocab

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        return mixture_logprobs([m.sequence_logprobs(ids) for m in self.models], self.weights)  # [B, T-1]

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        return mixture_logprobs([m.next_token_logprobs(contexts) for m in self.models], self.weights)  # [B, V]

    @classmethod
    def tune(cls, models: Sequence[LanguageModel], valid: Sequence[Sequence[str]], grid: int = 20) -> MixtureLM:
        """Two models, mixed with the weight that ``best_mixture_weight`` picks on the validation text."""
        if len(models) != 2:
            raise ValueError("tune mixes exactly two models")
        weight = best_mixture_weight(*(token_logprobs(m, valid) for m in models), grid=grid)
        return cls(models, [weight, 1 - weight])


def mixture_logprobs(logprobs: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """ln sum_i lambda_i exp(logprobs_i), element by element, computed stably with logsumexp."""
    stacked = torch.stack([lp.double() for lp in logprobs])  # [M, ...]
    log_weights = torch.tensor(weights, dtype=torch.float64).log()  # log(0) = -inf: that model drops out
    return torch.logsumexp(stacked + log_weights.view(-1, *[1] * (stacked.ndim - 1)), dim=0)


def best_mixture_weight(first: torch.Tensor, second: torch.Tensor, grid: int = 20) -> float:
    """The weight lambda in {0, 1/grid, .., 1} of the first model that maximises the mixture's likelihood
    of the tokens both were scored on (``token_logprobs`` of the same validation text)."""
    return min((i / grid for i in range(grid + 1)), key=lambda w: -mixture_logprobs([first, second], [w, 1 - w]).sum())


class ProtocolError(AssertionError):
    """A model breaks the LanguageModel contract."""


def check_language_model(
    model: LanguageModel, sequences: Sequence[Sequence[str]], atol: float = 1e-5
) -> None:
    """Check a model against the protocol on some sequences; raise ``ProtocolError`` if broken.

    For every prefix of every sequence: the next-token distribution has shape
    [V], no NaN, and sums to 1 (``logsumexp == 0`` within ``atol``); and
    ``sequence_logprobs`` (teacher forcing) gives the same log-probability as
    ``next_token_logprobs`` for the token that actually follows. Model tests
    call this on seen and unseen contexts. A model with the ``IncrementalDecoding``
    extension must give the same distributions when it reads each sequence one
    token at a time, and after ``reorder_cache`` has permuted and repeated rows of
    a batch (checked on the first two sequences). A ``lmlib.neural.NeuralLM`` is first checked
    against that seam (``_check_neural_seam``), on the first sequence.
    """
    if not isinstance(model, LanguageModel):
        raise ProtocolError(f"{type(model).__name__} lacks vocab, sequence_logprobs or next_token_logprobs")
    if isinstance(model, NeuralLM):
        _check_neural_seam(model, sequences, atol)
    V = len(model.vocab)
    incremental = isinstance(model, IncrementalDecoding)
    for seq in sequences:
        ids = encode_batch(model.vocab, [seq])  # [1, T]
        forced = model.sequence_logprobs(ids)[0]  # [T-1]
        cache = None
        for t in range(1, ids.shape[1]):
            dist = model.next_token_logprobs(ids[:, :t])[0]  # [V]
            where = f"after context {model.vocab.decode(ids[0, :t].tolist())}"
            if incremental:
                stepped, cache = model.decode_step(ids[:, :t] if cache is None else ids[:, t - 1 : t], cache)
                _check_same_distribution(stepped[0], dist, atol, f"decode_step (one token at a time) {where}")
            if dist.shape != (V,):
                raise ProtocolError(f"next_token_logprobs has shape {tuple(dist.shape)}, expected ({V},) {where}")
            if torch.isnan(dist).any():
                raise ProtocolError(f"next-token log-probabilities contain NaN {where}")
            mass = torch.logsumexp(dist.double(), 0).exp().item()
            if abs(mass - 1) > atol:
                raise ProtocolError(f"next-token probabilities sum to {mass:.8f}, not 1, {where}")
            want, got = dist[ids[0, t]].item(), forced[t - 1].item()
            same = want == got or abs(want - got) <= atol * max(1.0, abs(want))
            if not same:
                raise ProtocolError(
                    f"sequence_logprobs gives {got:.8f} but next_token_logprobs gives {want:.8f} "
                    f"for {model.vocab.itos[ids[0, t]]!r} {where}"
                )
    if incremental:
        _check_reordered_cache(model, sequences, atol)


@torch.no_grad()
def _check_neural_seam(model: NeuralLM, sequences: Sequence[Sequence[str]], atol: float) -> None:
    """What ``lmlib.neural`` asks of a network beyond the protocol: its declarations; ``hidden_states``
    giving (h [B, T, d], state), the state a tuple of tensors that carries a text on from block to block
    when the model ``takes_state``; and ``cls(config, vocab)`` rebuilding it, as checkpoints do."""
    declared = {"takes_state": isinstance(model.takes_state, bool),
                "context_size": model.context_size is None or (isinstance(model.context_size, int)
                                                               and model.context_size >= 1),
                "objective": model.objective in ("causal", "masked"),
                "config": isinstance(model.config, model.config_class)}
    if not all(declared.values()):
        wrong = [k for k, ok in declared.items() if not ok]
        raise ProtocolError(f"{type(model).__name__} declares {', '.join(wrong)} wrongly: see lmlib.neural")
    ids = encode_batch(model.vocab, sequences[:1]).to(model_device(model))  # [1, T]
    if isinstance(model, WindowedLM):
        ids = ids[:, : model.window]  # what hidden_states reads at once
    was_training = model.training
    model.eval()
    try:
        # fork_rng: building the copy draws initial weights, which must not move the caller's random stream
        with torch.random.fork_rng(devices=[]):
            _check_hidden_states(model, ids, atol)
    finally:
        model.train(was_training)


def _check_hidden_states(model: NeuralLM, ids: torch.Tensor, atol: float) -> None:
    out = model.hidden_states(ids)
    if not (isinstance(out, tuple) and len(out) == 2 and out[0].shape[:2] == ids.shape):
        raise ProtocolError(f"{type(model).__name__}.hidden_states must return (h [B, T, d], state)")
    h, state = out
    if model.takes_state:
        if not is_state(state):
            raise ProtocolError(f"{type(model).__name__}'s state is a {type(state).__name__}, "
                                "not a tuple of tensors")
        cut = ids.shape[1] // 2
        carried = model.hidden_states(ids[:, cut:], model.hidden_states(ids[:, :cut])[1])[0]
        _check_close(carried, h[:, cut:], atol, "hidden_states read in two blocks, the state carried")
    like = next(model.parameters())  # the rebuilt model takes its dtype and device
    rebuilt = type(model)(model.config, model.vocab).to(like).eval()
    rebuilt.load_state_dict(model.state_dict())
    _check_close(rebuilt.hidden_states(ids)[0], h, atol, "the model rebuilt as cls(config, vocab)")


def _check_close(got: torch.Tensor, want: torch.Tensor, atol: float, where: str) -> None:
    gap = (got.double() - want.double()).abs().max().item() if want.numel() else 0.0
    if gap > atol:
        raise ProtocolError(f"{where}: hidden states differ from a single reading by up to {gap:.3g}")


def _check_reordered_cache(model: IncrementalDecoding, sequences: Sequence[Sequence[str]], atol: float) -> None:
    """Read two different prefixes as a batch, reorder the cache to rows (1, 0, 0), read one more token each,
    and compare with the plain path on the reordered rows."""
    rows = [[model.vocab.bos_id, *model.vocab.encode(s), model.vocab.eos_id] for s in sequences[:2]]
    length = min(map(len, rows))
    ids = torch.tensor([r[:length] for r in rows])  # [2, L]
    if len(rows) < 2 or length < 3 or torch.equal(ids[0], ids[1]):
        return
    _, cache = model.decode_step(ids[:, :-1], None)
    order = torch.tensor([1, 0, 0])
    stepped, _ = model.decode_step(ids[order, -1:], model.reorder_cache(cache, order))
    want = model.next_token_logprobs(ids[order])
    for i in range(3):
        _check_same_distribution(stepped[i], want[i], atol, f"decode_step after reorder_cache(rows=[1, 0, 0]), row {i}")


def _check_same_distribution(got: torch.Tensor, want: torch.Tensor, atol: float, where: str) -> None:
    """Raise ``ProtocolError`` unless two [V] log-probability vectors agree (the same -inf entries included)."""
    got, want = got.double(), want.double()
    if got.shape != want.shape or not torch.equal(torch.isinf(got), torch.isinf(want)):
        raise ProtocolError(f"{where}: a different support (shape or -inf entries) than next_token_logprobs")
    finite = torch.isfinite(want)
    gap = (got[finite] - want[finite]).abs().max().item() if finite.any() else 0.0
    if gap > atol:
        raise ProtocolError(f"{where}: log-probabilities differ from next_token_logprobs by up to {gap:.3g}")
