"""The seam between lmlib's neural networks and the tools that use them (scoring, decoding, training).

A network subclasses ``NeuralLM`` and writes only the network:

    hidden_states(ids [B, T], state) -> (h [B, T, d], state)   the layers, read after ``state`` (None: start)
    output(h [..., d]) -> [..., V]                              the output layer's logits

``NeuralLM`` turns these into ``lmlib.lm.LanguageModel``'s methods once, for every model:
``logits`` gives the tokens never predicted (``<pad>``, ``<bos>``) logit -inf, so each softmax runs over
the |V| others; ``sequence_logprobs`` runs the output layer only where the target is a token, in at
least float32 whatever the model's dtype, on the device of the ids. It declares, as class
attributes, what the training loop (``lmlib.train``) needs to know of a model:

    takes_state    forward(ids, state) -> (logits, state): the state, a tuple of tensors, runs on from
                   block to block (an RNN)
    context_size   how many tokens a prediction reads (the MLP's window); None: every token before it
    objective      "causal" (predict the next token) or "masked" (BERT's objective)
    input_tokens   tokens a vocabulary needs for the model beyond the text's (a masked LM's <mask>)

A ``NeuralLM`` has a ``config`` (an instance of its class's ``config_class``, a dataclass) and a
``vocab``, and ``cls(config, vocab)`` builds it: what ``lmlib.checkpoint`` saves and loads.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lmlib.tokenize import Vocab


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log_softmax over the last axis in at least float32 (a half-precision model's logits are
    promoted, a float64 model's kept)."""
    return F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)


def never_predicted_mask(vocab_size: int, vocab: Vocab) -> torch.Tensor:
    """[vocab_size] bool: True for ``<pad>`` and ``<bos>``, the tokens a model never predicts."""
    never = torch.zeros(vocab_size, dtype=torch.bool)
    never[[vocab.pad_id, vocab.bos_id]] = True
    return never


class NeuralLM(nn.Module):
    """A neural language model: the network's ``hidden_states`` and ``output``, made a ``LanguageModel``.

    Subclasses call ``register_vocab`` in ``__init__`` (it checks the sizes and registers the mask of
    the tokens never predicted) and write ``next_token_logprobs`` (and, for ``IncrementalDecoding``,
    ``decode_step`` and ``reorder_cache``) from ``logits`` and ``log_softmax``.
    """

    takes_state: ClassVar[bool] = False
    config_class: ClassVar[type]
    context_size: int | None = None
    objective: ClassVar[str] = "causal"
    input_tokens: ClassVar[tuple[str, ...]] = ()
    vocab: Vocab
    never_predicted: torch.Tensor | None

    def register_vocab(self, vocab: Vocab | None, vocab_size: int) -> None:
        """Keep ``vocab`` (None: a network without one, e.g. loaded from Hugging Face; it gives logits
        but is no LanguageModel) and the buffer of the tokens it never predicts."""
        if vocab is not None and len(vocab) != vocab_size:
            raise ValueError(f"config.vocab_size is {vocab_size} but the vocabulary has {len(vocab)} entries")
        if vocab is not None:
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
