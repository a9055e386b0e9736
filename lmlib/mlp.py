"""A neural probabilistic language model (Bengio, Ducharme, Vincent and Jauvin, 2003).

The n-gram model's question, P(w_t | w_{t-n+1} .. w_{t-1}), answered with
parameters instead of counts. Each of the n-1 previous tokens is looked up in
an embedding table C (one vector of size e per vocabulary entry), the vectors
are concatenated into x, and a tanh hidden layer and a softmax give the
distribution over the next token:

    x = [C(w_{t-n+1}); ...; C(w_{t-1})]              x in R^{(n-1) e}
    y = b + U tanh(d + H x)                           y in R^{|V|}
    P(w_t = i | w_{t-n+1} .. w_{t-1}) = softmax(y)_i

Similar words get similar rows of C, so what the model learns about one word
is shared with its neighbours: the distributed representation a count table
lacks. The paper's optional direct connections from x to the output
(``+ W x``) are left out, for simplicity.

The context is padded with ``<bos>`` on the left, and never reaches back past
a sentence's ``<bos>``, exactly like ``lmlib.ngram.NGramLM``: the first word of
a sentence is predicted from ``<bos> <bos> ...``. ``<pad>`` and ``<bos>`` are
never predicted, so the softmax runs over the |V| predictable tokens only and
the perplexities compare token for token with the n-gram models'.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmlib.neural import NeuralLM
from lmlib.tokenize import SPECIALS, Vocab


@dataclass(frozen=True)
class MLPConfig:
    vocab_size: int  # len(vocab), specials included
    context: int = 3  # n - 1 previous tokens
    d_embed: int = 32  # e: size of each token's vector in C
    d_hidden: int = 128  # size of the tanh layer
    dropout: float = 0.0


class MLPLM(NeuralLM):
    """Bengio-style MLP language model; a ``lmlib.neural.NeuralLM``, so a ``lmlib.lm.LanguageModel``.

    ``model(ids)`` maps [B, T] token ids to [B, T, V] logits, where position t
    predicts the token after ids[:, t] from ids[:, t-n+2 .. t]; the training
    loop (``lmlib.train``) uses that. ``context_size`` tells the loop how many
    tokens of left context a position needs before its prediction is exact.
    """

    config_class = MLPConfig

    def __init__(self, config: MLPConfig, vocab: Vocab):
        super().__init__()
        self.register_vocab(vocab, config.vocab_size)  # <pad>, <bos>: logit -inf, softmax over |V| tokens
        self.config = config
        self.context_size = config.context
        self.embed = nn.Embedding(config.vocab_size, config.d_embed)  # C
        self.hidden = nn.Linear(config.context * config.d_embed, config.d_hidden)  # H, d
        self.out = nn.Linear(config.d_hidden, config.vocab_size)  # U, b
        self.drop = nn.Dropout(config.dropout)
        self.apply(_init_weights)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T, V] logits for the token after each position."""
        return self.logits(self.hidden_states(ids)[0])

    def hidden_states(self, ids: torch.Tensor,
                      state: None = None) -> tuple[torch.Tensor, None]:
        """[B, T] token ids -> [B, T, d_hidden]: tanh(d + H x) at each position
        (and no state: the MLP reads a fixed window)."""
        # [B, T, n-1]: the n-1 ids before each position
        windows = context_windows(ids, self.config.context, self.vocab.bos_id)
        x = self.embed(windows).flatten(2)  # [B, T, (n-1) d]
        return torch.tanh(self.hidden(self.drop(x))), None

    def output(self, h: torch.Tensor) -> torch.Tensor:
        """[..., d_hidden] -> [..., V] logits b + U h."""
        return self.out(self.drop(h))

    # --- the LanguageModel protocol (sequence_logprobs: NeuralLM's) ---------------------------


def context_windows(ids: torch.Tensor, context: int, bos_id: int) -> torch.Tensor:
    """[B, T] ids -> [B, T, context]: the ``context`` tokens ending at each position.

    Positions before the start of the row read as ``<bos>``, and so does every
    token before the last ``<bos>`` at or before the position, so a context
    never crosses a sentence start (as in an n-gram model).
    """
    B, T = ids.shape
    # [B, T + n-2]
    padded = torch.cat([ids.new_full((B, context - 1), bos_id), ids], dim=1)
    windows = padded.unfold(1, context, 1)  # [B, T, n-1]: windows[b, t, -1] = ids[b, t]
    # Index of the most recent <bos> at or before each position, in padded coordinates.
    where = torch.arange(T + context - 1, device=ids.device).expand(B, -1)
    # [B, T + n-2]
    last_bos = (torch.where(padded == bos_id, where, torch.zeros_like(where))
                .cummax(dim=1).values)
    last_bos = last_bos[:, context - 1 :, None]  # [B, T, 1]
    # [T, n-1]
    position = (torch.arange(T, device=ids.device)[:, None]
                + torch.arange(context, device=ids.device))
    return windows.masked_fill(position < last_bos, bos_id)


def hidden_layer_as_conv1d(model: MLPLM) -> nn.Conv1d:
    """The MLP's hidden layer d + H x as a causal 1-D convolution over the embeddings.

    Split H [d_hidden, (n-1) e] into n-1 blocks of e columns, H_1 .. H_{n-1}, one per
    context slot, oldest first. The pre-activation for predicting w_t is then

        d + H x = d + sum_{j=1}^{n-1} H_j C(w_{t-n+j}),

    the same n-1 blocks at every t: a Conv1d with kernel size n-1 and
    weight[o, c, j-1] = H[o, (j-1) e + c]. Run over the embedded ids [B, e, T + n-2],
    left-padded with n-2 ``<bos>``, output t reads ids t-n+2 .. t only (causal) and
    equals the pre-activation that ``model.hidden_states`` puts through tanh at position
    t (the one that predicts the id after t), for rows that each hold one sentence
    ``<bos> .. <eos> <pad>..`` (``context_windows`` also blanks what precedes a later
    ``<bos>``; a convolution does not).
    """
    context, e = model.config.context, model.config.d_embed
    H, d = model.hidden.weight.detach(), model.hidden.bias.detach()  # [d_hidden, (n-1) e]
    # On the meta device: a real Conv1d's random init would draw from torch's generator.
    conv = nn.Conv1d(e, H.shape[0], kernel_size=context, device="meta")
    # [d_hidden, (n-1) e] -> [d_hidden, n-1, e] -> [d_hidden, e, n-1]: weight[o, c, j]
    conv.weight = nn.Parameter(H.reshape(H.shape[0], context, e).transpose(1, 2).clone())
    conv.bias = nn.Parameter(d.clone())
    return conv


def nearest_neighbours(
    embeddings: torch.Tensor, vocab: Vocab, word: str, k: int = 5, among: int | None = None
) -> list[tuple[str, float]]:
    """The k tokens whose rows of ``embeddings`` [V, d] are closest to ``word``'s by cosine similarity.

    cos(u, v) = u . v / (|u| |v|); the word itself and the special tokens are left out. ``among``:
    only the ``among`` most frequent tokens are candidates (a ``Vocab``'s ids are in order of
    training frequency); a word seen a handful of times has a vector that has barely moved from
    its random start, so it is a neighbour of anything by chance.
    """
    if word not in vocab:
        raise KeyError(f"{word!r} is not in the vocabulary (it maps to <unk>): pick a word seen min_count times")
    unit = F.normalize(embeddings.detach().float(), dim=1)  # [V, d]
    similarity = unit @ unit[vocab.stoi[word]]  # [V]
    similarity[[vocab.stoi[word], vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id]] = -2.0
    if among is not None:
        similarity[among + len(SPECIALS) :] = -2.0
    top = torch.topk(similarity, k)
    return [(vocab.itos[i], round(float(s), 4)) for s, i in zip(top.values, top.indices.tolist(), strict=True)]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=module.in_features**-0.5)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=1.0)
