"""The seam between lmlib's neural networks and the tools that use them (scoring, decoding, training).

A network subclasses ``NeuralLM`` and writes only the network:

    hidden_states(ids [B, T], state) -> (h [B, T, d], state)   the layers, read after ``state`` (None: start)
    output(h [..., d]) -> [..., V]                              the output layer's logits

``NeuralLM`` turns these into ``lmlib.lm.LanguageModel``'s methods once, for every model:
``logits`` gives the tokens never predicted (``<pad>``, ``<bos>``) logit -inf, so each softmax runs over
the |V| others; ``sequence_logprobs`` runs the output layer only where the target is a token, in at
least float32 whatever the model's dtype (the tools move the ids to the model's device). ``forward``
is what the training loop calls: ids -> logits, or (logits, state) for a model that takes a state.
A model declares, as class attributes, what the training loop (``lmlib.train``) needs to know of it:

    takes_state    forward(ids, state) -> (logits, state): the state, a tuple of tensors, runs on from
                   block to block (an RNN)
    context_size   how many tokens a prediction reads (the MLP's window), which the loop needs to know
                   to skip the first targets of a row; None: every token before it (a WindowedLM's
                   window, a cache it reads through, is ``window``)
    objective      "causal" (predict the next token), "masked" (BERT's objective: the model also
                   has corrupt(ids) -> (inputs, labels) and stream_masked_logprob(stream, batch_size))
                   or "seq2seq" (an encoder-decoder scored on (source, target) pair rows:
                   ``lmlib.seq2seq``)
    input_tokens   tokens a vocabulary needs for the model beyond the text's (a masked LM's <mask>)

A ``NeuralLM`` has a ``config`` (an instance of its class's ``config_class``, a dataclass) and a
``vocab``, and ``cls(config, vocab)`` builds it: what ``lmlib.checkpoint`` saves and loads. ``vocab``
is None for a bare network (a GPT loaded from Hugging Face without one): it gives logits but is no
``LanguageModel``.

``WindowedLM`` is the adapter for a network that reads at most ``window`` tokens at once and whose
state is a cache of what it read (a Transformer's keys and values): it scores a longer text with a
sliding window and decodes one token at a time, moving the window when the context outgrows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lmlib.tokenize import Vocab


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log_softmax over the last axis in at least float32 (a half-precision model's logits are
    promoted, a float64 model's kept)."""
    return F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)


def is_state(state: object) -> bool:
    """Whether ``state`` has the type the seam asks of a carried state: a tuple of tensors."""
    return isinstance(state, tuple) and all(isinstance(s, torch.Tensor) for s in state)


def never_predicted_mask(vocab_size: int, vocab: Vocab) -> torch.Tensor:
    """[vocab_size] bool: True for ``<pad>`` and ``<bos>``, the tokens a model never predicts."""
    never = torch.zeros(vocab_size, dtype=torch.bool)
    never[[vocab.pad_id, vocab.bos_id]] = True
    return never


class NeuralLM(nn.Module):
    """A neural language model: the network's ``hidden_states`` and ``output``, made a ``LanguageModel``.

    Subclasses call ``register_vocab`` in ``__init__`` (it checks the sizes and registers the mask of
    the tokens never predicted). ``sequence_logprobs`` and ``next_token_logprobs`` come from here; a
    model with a state it can read on from (``IncrementalDecoding``) writes ``decode_step`` and
    ``reorder_cache``, which depend on its state's layout (``WindowedLM`` writes them for a cache of
    keys and values).
    """

    takes_state: ClassVar[bool] = False
    config_class: ClassVar[type]
    context_size: int | None = None
    objective: ClassVar[str] = "causal"
    input_tokens: ClassVar[tuple[str, ...]] = ()
    vocab: Vocab | None
    never_predicted: torch.Tensor | None

    def register_vocab(self, vocab: Vocab | None, vocab_size: int) -> None:
        """Keep ``vocab`` (None: a network without one, e.g. loaded from Hugging Face; it gives logits
        but is no LanguageModel) and the buffer of the tokens it never predicts."""
        if vocab is not None and len(vocab) != vocab_size:
            raise ValueError(f"config.vocab_size is {vocab_size} but the vocabulary has {len(vocab)} entries")
        self.vocab = vocab
        never = None if vocab is None else never_predicted_mask(vocab_size, vocab)
        self.register_buffer("never_predicted", never, persistent=False)

    def hidden_states(self, ids: torch.Tensor, state: object | None = None) -> tuple[torch.Tensor, object]:
        raise NotImplementedError

    def output(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """[..., d] -> [..., V] the output layer's logits, -inf for the tokens never
        predicted (a model without a vocabulary has none)."""
        logits = self.output(h)
        if self.never_predicted is None:
            return logits
        # in place: no second [..., V] tensor
        return logits.masked_fill_(self.never_predicted, float("-inf"))

    @torch.no_grad()
    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        """[B, T] contexts (rows start with ``<bos>``) -> [B, V] ln P(next token | context): the last
        position's distribution after reading the context from the start (a model with a finite
        ``context_size`` reads only that many tokens, all a prediction depends on)."""
        if self.context_size is not None:
            contexts = contexts[:, -self.context_size :]
        return log_softmax(self.logits(self.hidden_states(contexts)[0])[:, -1])

    def scoring_hidden_states(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B, T, d]: each position's vector for scoring a whole text (a Transformer
        slides its window over a text longer than it)."""
        return self.hidden_states(ids)[0]

    @torch.no_grad()
    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] rows ``<bos> w_1 .. <eos> <pad>..`` -> [B, T-1], entry t-1 = ln P(ids[t] | ids[:t]).

        The output layer runs only where the target is a token (most of a batch of sentences of
        unequal length is padding); entries with a ``<pad>`` target are 0.
        """
        return self.target_logprobs(self.scoring_hidden_states(ids[:, :-1]), ids[:, 1:])

    def target_logprobs(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """[B, T, d] vectors and [B, T] targets -> [B, T] ln P(target), 0 where the target is ``<pad>``."""
        real = targets != self.vocab.pad_id
        logp = log_softmax(self.logits(h[real])).gather(-1, targets[real][:, None]).squeeze(-1)  # [N]
        return logp.new_zeros(targets.shape).masked_scatter(real, logp)

    def num_parameters(self) -> int:
        """Parameters, a tied matrix counted once."""
        return sum(p.numel() for p in self.parameters())

    def require_vocab(self, method: str) -> Vocab:
        """The vocabulary, or an error saying why ``method`` needs one."""
        if self.vocab is None:
            raise ValueError(f"{method} needs the model's vocabulary, and this {type(self).__name__} has none "
                             "(e.g. made by GPT.from_hf(model) without vocab=): it gives logits, model(ids), and "
                             "decode_step; to score tokens, pass the course Vocab its ids mean: "
                             "GPT.from_hf(model, vocab)")
        return self.vocab


@dataclass
class WindowCache:
    """What ``WindowedLM.decode_step`` carries from one token to the next: the network's state after
    reading the window's tokens ``ids`` [B, T] (a Transformer: their keys and values), and where the
    window starts in the context, ``start``."""

    state: object  # has reorder(rows): the network's cache, row i its row rows[i]
    ids: torch.Tensor
    start: int = 0

    def reorder(self, rows: torch.Tensor) -> WindowCache:
        return WindowCache(self.state.reorder(rows), self.ids[rows], self.start)


class WindowedLM(NeuralLM):
    """A ``NeuralLM`` that reads at most W = ``window`` tokens at once, with a cache as its state:
    ``hidden_states(ids, state)`` reads ``ids`` after the tokens the state holds (at most W in all).

    A context longer than W is read through the window that starts at ``window_start``: the window moves
    by s = ``window_stride`` tokens at a time, so the model is one conditional distribution whether it
    scores a whole text (``sequence_logprobs``), predicts one token (``next_token_logprobs``) or decodes
    with its cache (``decode_step``, ``lmlib.lm.IncrementalDecoding``; the cache is a ``WindowCache``).
    A network whose cache cannot be extended across some tokens (a Transformer that reads sentences
    apart, past a ``<bos>``) says so in ``reads_apart``; the window is then read again.
    """

    window: int
    window_stride: int = 1

    def reads_apart(self, ids: torch.Tensor) -> bool:
        """Whether [B, T] ids hold a boundary the cached state cannot be extended across."""
        return False

    def window_start(self, n: int, stride: int | None = None) -> int:
        """Where the window that predicts the token after n context tokens starts: 0 while n <= W, then
        on the grid s, 2s, 3s, .. (s = ``stride``, default ``window_stride``): the first start that
        leaves at most W tokens, so the token is predicted from n - start tokens, between W - s + 1 and W.

        s = 1 gives every token the full window (each token costs a pass when scoring a long text); s = W
        cuts the text into blocks (one pass per W tokens, the least context); s = W/2 costs at most two
        passes per W tokens and keeps at least W/2 tokens of context.
        """
        W = self.window
        s = self.window_stride if stride is None else stride
        return 0 if n <= W else s * math.ceil((n - W) / s)

    def scoring_hidden_states(self, ids: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        """[B, T] ids, any T -> [B, T, d], position t read through the window ``window_start(t + 1)``.

        One pass when T <= W; otherwise the window [a, a + W) for a = s, 2s, .. supplies its last s
        positions, the ones it is the window of. Only the rows with tokens there are read (a batch's long
        sentences, not its padding). Positions count from each window's start.
        """
        W, T = self.window, ids.shape[1]
        s = self.window_stride if stride is None else stride
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= W:
            raise ValueError(f"cannot slide the window with stride={s!r}: a sequence of {T} tokens "
                             f"is scored in windows of block_size={W}, moved by a stride between 1 and {W}")
        first = self.hidden_states(ids[:, :W])[0]  # [B, min(T, W), d]
        if T <= W:
            return first
        out = first.new_zeros(ids.shape[0], T, first.shape[-1])
        out[:, :W] = first
        for a in range(s, T - W + s, s):
            kept = slice(a + W - s, min(a + W, T))  # the positions this window is the window of
            rows = torch.arange(ids.shape[0], device=ids.device)
            if self.vocab is not None:
                rows = rows[(ids[:, kept] != self.vocab.pad_id).any(dim=1)]
            if len(rows):
                out[rows, kept] = self.hidden_states(ids[rows, a : a + W])[0][:, W - s :]
        return out

    @torch.no_grad()
    def sequence_logprobs(self, ids: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        """[B, T] rows ``<bos> w_1 .. <eos> <pad>..`` -> [B, T-1], entry t-1 = ln P(ids[t] | ids[:t]).

        Rows longer than the window are read with a sliding window (``scoring_hidden_states``). The
        padding needs no attention mask (right padding: no real token looks right); the output layer
        runs only where the target is a token, and entries with a ``<pad>`` target are 0.
        """
        self.require_vocab("sequence_logprobs")
        return self.target_logprobs(self.scoring_hidden_states(ids[:, :-1], stride), ids[:, 1:])

    @torch.no_grad()
    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        """[B, T] contexts (rows start with ``<bos>``) -> [B, V] ln P(next token | the window's tokens)."""
        self.require_vocab("next_token_logprobs")
        return self.decode_step(contexts, None)[0]

    @torch.no_grad()
    def decode_step(self, ids: torch.Tensor, cache: WindowCache | None) -> tuple[torch.Tensor, WindowCache]:
        """Read ``ids`` after the tokens in ``cache`` (None: ``ids`` is the whole context) -> ([B, V] next-token
        log-probabilities, the cache after them).

        Each new token costs one position's work: its query looks at the cached keys and values. When the
        context outgrows the window, the window moves (``window_start``) and the tokens left in it are
        re-read: the kept tokens' cached vectors were computed while they could still see the dropped ones,
        and positions count from the window's start. With stride s that happens every s tokens.
        """
        if cache is None:
            start = self.window_start(ids.shape[1])
            return self._read(ids[:, start:], start)
        seen = torch.cat([cache.ids, ids], dim=1)  # [B, T_window + T]
        start = self.window_start(cache.start + seen.shape[1])
        if start != cache.start or self.reads_apart(seen):  # a new window, or a boundary inside: re-read
            return self._read(seen[:, start - cache.start :], start)
        h, state = self.hidden_states(ids, cache.state)
        return log_softmax(self.logits(h[:, -1])), WindowCache(state, seen, start)

    def _read(self, window: torch.Tensor, start: int) -> tuple[torch.Tensor, WindowCache]:
        h, state = self.hidden_states(window)
        return log_softmax(self.logits(h[:, -1])), WindowCache(state, window, start)

    def reorder_cache(self, cache: WindowCache, rows: torch.Tensor) -> WindowCache:
        return cache.reorder(rows)
