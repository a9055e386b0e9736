"""Recurrent language models: the RNN, the LSTM and the GRU, from their equations.

A recurrent network reads a sequence one token at a time and carries a state
h_t (the LSTM also a cell c_t) from each step to the next, so the prediction at
step t can depend on every earlier token, not on a fixed window of n-1:

    RNN (Elman):   h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

    LSTM:          i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)     input gate
                   f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)     forget gate
                   g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)        candidate cell
                   o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)     output gate
                   c_t = f_t * c_{t-1} + i_t * g_t
                   h_t = o_t * tanh(c_t)

    GRU:           r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)     reset gate
                   z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)     update gate
                   n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))  candidate state
                   h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    language model: x_t = E[w_t],  P(w_{t+1} | w_{<=t}) = softmax(U h_t + b)

The cells below hold their weights exactly as ``torch.nn.RNNCell``,
``torch.nn.LSTMCell`` and ``torch.nn.GRUCell`` do (``weight_ih`` [G*H, I],
``weight_hh`` [G*H, H], ``bias_ih``, ``bias_hh``; the LSTM's four gates stacked in
the order i, f, g, o, the GRU's three in the order r, z, n), so a ``state_dict``
moves between them unchanged and the tests compare them number for number.
``RNNLanguageModel`` keeps its weights in a ``torch.nn.LSTM`` (or ``torch.nn.GRU``,
``torch.nn.RNN``) and runs either the fast library kernel or the cells above on
the same weights (``RNNConfig.fast``).

``LSTMClassifier`` is the same LSTM read once over a whole text, with a sigmoid head
(the network of the articles' Keras code, parameter for parameter; it skips the padding,
which their model reads, as Keras's ``Embedding(mask_zero=True)`` would):

    z = w . h_n + b,   P(positive | text) = sigmoid(z),   h_n the state after the last word.

The training stream runs sentence after sentence (``<eos> <bos> ...``), while
perplexity is measured per sentence from a fresh state. So the model resets its
state at every ``<bos>``: it sees a sentence the same way in training and in
evaluation.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmlib.neural import NeuralLM, log_softmax
from lmlib.tokenize import Vocab

State = tuple[torch.Tensor, ...]  # RNN, GRU: (h,); LSTM: (h, c); each [L, B, H]


@dataclass(frozen=True)
class RNNConfig:
    vocab_size: int  # len(vocab), specials included
    cell: str = "lstm"  # "rnn" (tanh), "lstm" or "gru"
    d_embed: int = 64
    d_hidden: int = 128
    n_layers: int = 1
    dropout: float = 0.0  # on the embeddings, between layers and before the output layer
    tie_weights: bool = False  # output layer U = embedding E (needs d_embed == d_hidden)
    fast: bool = True  # torch.nn.LSTM / GRU / RNN kernels; False runs the cells written here


# --- the cells, from the equations --------------------------------------------------------------


def rnn_cell(
    x: torch.Tensor, h: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
    bias_ih: torch.Tensor, bias_hh: torch.Tensor,
) -> torch.Tensor:
    """One step of the tanh RNN: x [B, I], h [B, H] -> h' [B, H]."""
    return torch.tanh(x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh)


def lstm_cell(
    x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], weight_ih: torch.Tensor,
    weight_hh: torch.Tensor, bias_ih: torch.Tensor, bias_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the LSTM: x [B, I], state (h, c) each [B, H] -> (h', c')."""
    h, c = state
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # [B, 4H]
    i, f, g, o = gates.chunk(4, dim=-1)  # PyTorch's order
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def gru_cell(
    x: torch.Tensor, h: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
    bias_ih: torch.Tensor, bias_hh: torch.Tensor,
) -> torch.Tensor:
    """One step of the GRU: x [B, I], h [B, H] -> h' [B, H].

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      reset gate
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)      update gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   candidate state
    h' = (1 - z) * n + z * h
    """
    from_x = x @ weight_ih.T + bias_ih  # [B, 3H]
    from_h = h @ weight_hh.T + bias_hh  # [B, 3H], kept apart: r scales only its n part
    x_r, x_z, x_n = from_x.chunk(3, dim=-1)  # PyTorch's order: r, z, n
    h_r, h_z, h_n = from_h.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h  # z near 1 keeps the old state, near 0 takes the candidate


class RNNCell(nn.Module):
    """``torch.nn.RNNCell`` (tanh), written out: same parameters, same initialisation, same outputs."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size))
        _uniform_like_pytorch(self, hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, I], h [B, H] (None: zeros) -> h' [B, H]."""
        _check_step(self, x, [] if h is None else [h])
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        return rnn_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class LSTMCell(nn.Module):
    """``torch.nn.LSTMCell``, written out: same parameters (gates i, f, g, o), same outputs."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        _uniform_like_pytorch(self, hidden_size)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, I], state (h, c) each [B, H] (None: zeros) -> (h', c')."""
        _check_step(self, x, [] if state is None else list(state))
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        return lstm_cell(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


def _check_step(cell: nn.Module, x: torch.Tensor, state: list[torch.Tensor]) -> None:
    """Clear errors for the mistakes a cell would otherwise report as a matrix-shape mismatch."""
    name = type(cell).__name__
    inputs = cell.weight_ih.shape[1]
    if x.ndim != 2 or x.shape[1] != inputs:
        raise ValueError(f"{name} expects x of shape [batch, {inputs}], got {tuple(x.shape)}")
    if x.dtype != cell.weight_ih.dtype:
        raise TypeError(f"{name} has {cell.weight_ih.dtype} weights but x is {x.dtype}: "
                        "convert one, e.g. x.to(cell.weight_ih.dtype)")
    for s in state:
        if s.shape != (x.shape[0], cell.hidden_size):
            raise ValueError(f"{name} expects a hidden state of shape [{x.shape[0]}, {cell.hidden_size}] "
                             f"(batch, hidden_size), got {tuple(s.shape)}")


def _uniform_like_pytorch(module: nn.Module, hidden_size: int) -> None:
    bound = 1 / math.sqrt(hidden_size)  # PyTorch's initialisation of its recurrent cells
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


class ResetSteps(NamedTuple):
    """Where the tokens of a [B, T] block go once a reset step is inserted before each ``<bos>`` past
    column 0 and hold steps fill each row to T + K steps (K the most resets in a row)."""

    index: torch.Tensor  # [B, T + K] each step's input: a token (its index in the flattened block), or
    #                      B*T (reset) or B*T + 1 (hold)
    tokens: torch.Tensor  # [B*T] each token's step in the flattened [B * (T + K)] steps


SATURATE = 1e4  # a gate pre-activation this far below (above) 0 makes sigmoid exactly 0 (1) in float32 and float64


def _reset_steps(starts: torch.Tensor) -> ResetSteps:
    """The steps of a block whose ``starts`` [B, T] are True at each ``<bos>``."""
    B, T = starts.shape
    columns = torch.arange(T, device=starts.device)
    inside = starts & (columns > 0)  # [B, T] the <bos> that need a reset step
    column = columns + inside.cumsum(1)  # [B, T] each token's step
    K = int(column[:, -1].max()) - (T - 1)
    index = torch.full((B, T + K), B * T + 1, device=starts.device)  # hold steps, unless a token or reset
    index.scatter_(1, column, torch.arange(B * T, device=starts.device).view(B, T))
    index[inside.nonzero()[:, 0], column[inside] - 1] = B * T  # the reset step just before its <bos>
    row_start = torch.arange(B, device=starts.device)[:, None] * (T + K)  # [B, 1]
    return ResetSteps(index, (row_start + column).flatten())


def _control_weights(weight_ih: torch.Tensor) -> torch.Tensor:
    """[4H, 2]: the LSTM's input weights from the reset and the hold channel, gates i, f, g, o.

    reset: i = f = 0, so c' = 0 and h' = o * tanh(0) = 0;  hold: i = 0, f = 1, so c' = c.
    """
    gates = torch.tensor([[-1, -1], [-1, 1], [0, 0], [0, 0]], dtype=weight_ih.dtype, device=weight_ih.device)
    return (SATURATE * gates).repeat_interleave(weight_ih.shape[0] // 4, dim=0)


# --- the language model -------------------------------------------------------------------------

KERNELS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}  # RNNConfig.cell -> the library kernel


class RNNLanguageModel(NeuralLM):
    """Embedding -> recurrent layers -> linear output; a ``lmlib.neural.NeuralLM``, so a
    ``lmlib.lm.LanguageModel``, with its ``IncrementalDecoding`` extension (the cache is the
    recurrent state).

    ``model(ids, state)`` maps [B, T] ids and the state after the previous block
    (None: zeros) to [B, T, V] logits and the state after the block: what
    ``lmlib.train``'s sequential layout carries from batch to batch (truncated
    backpropagation through time).
    """

    takes_state = True
    config_class = RNNConfig

    def __init__(self, config: RNNConfig, vocab: Vocab):
        super().__init__()
        if config.cell not in KERNELS:
            raise ValueError(f"cell must be 'rnn', 'lstm' or 'gru', got {config.cell!r}")
        if config.tie_weights and config.d_embed != config.d_hidden:
            raise ValueError(f"tie_weights needs d_embed == d_hidden, got {config.d_embed} and {config.d_hidden}")
        if config.n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {config.n_layers}")
        self.register_vocab(vocab, config.vocab_size)  # <pad>, <bos>: logit -inf, softmax over |V| tokens
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_embed)
        kernel = KERNELS[config.cell]
        between = config.dropout if config.n_layers > 1 else 0.0
        self.rnn = kernel(config.d_embed, config.d_hidden, config.n_layers, dropout=between, batch_first=True)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.d_hidden, config.vocab_size)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.zeros_(self.out.bias)
        if config.tie_weights:
            self.out.weight = self.embed.weight

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """[B, T] ids, state -> [B, T, V] logits for the token after each position, and the new state."""
        h, state = self.hidden_states(ids, state)
        return self.logits(h), state

    def hidden_states(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """[B, T] ids, state -> [B, T, H] the last layer's h_t at each position, and the new state."""
        x = self.drop(self.embed(ids))  # [B, T, E]
        starts = ids == self.vocab.bos_id  # the state resets before reading each <bos>
        recur = self._recur_fast if self.config.fast else self._recur_cells
        return recur(x, starts, self._zero_state(ids.shape[0], x) if state is None else state)

    def output(self, h: torch.Tensor) -> torch.Tensor:
        """[..., H] states -> [..., V] logits U h + b."""
        return self.out(self.drop(h))

    def _recur_cells(self, x: torch.Tensor, starts: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The teaching path: the cells above, one time step and one layer at a time."""
        lstm = self.config.cell == "lstm"
        h, c = list(state[0].unbind(0)), list(state[1].unbind(0)) if lstm else None  # per layer, [B, H]
        outputs = []
        for t in range(x.shape[1]):
            keep = (~starts[:, t, None]).to(x.dtype)  # 0 where a sentence starts: fresh state
            inp = x[:, t]
            for k in range(self.config.n_layers):
                w = [getattr(self.rnn, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                if lstm:
                    h[k], c[k] = lstm_cell(inp, (h[k] * keep, c[k] * keep), *w)
                else:
                    h[k] = (gru_cell if self.config.cell == "gru" else rnn_cell)(inp, h[k] * keep, *w)
                inp = h[k] if k == self.config.n_layers - 1 else self.rnn_dropout(h[k])
            outputs.append(inp)
        return torch.stack(outputs, dim=1), (torch.stack(h), torch.stack(c)) if lstm else (torch.stack(h),)

    def rnn_dropout(self, h: torch.Tensor) -> torch.Tensor:
        """Dropout between layers, as ``torch.nn.LSTM(dropout=p)`` applies it."""
        return F.dropout(h, self.rnn.dropout, self.training)

    def _recur_fast(self, x: torch.Tensor, starts: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The library kernel, with the resets at ``<bos>``. A row that starts with ``<bos>`` starts from zeros;
        a block with no other ``<bos>`` (scoring, decoding: one sentence per row) runs in one call. The kernel
        cannot reset one row in the middle of a call, so a block that crosses sentences runs as follows.

        The LSTM, one call per layer: its gates can empty the cell. Before each ``<bos>`` the layer reads one
        extra *reset step*, an input channel whose weights drive the input and forget gates to exactly 0, so
        c = 0 * c + 0 * g = 0 and h = o * tanh(0) = 0, and the sentence starts from zeros, its gradient stopping
        there too. Rows with fewer resets end with *hold steps* (i = 0, f = 1: c kept) to an equal length.
        The other cells cannot empty themselves: the block is cut in time wherever some row starts a sentence,
        and the kernel runs over each piece in turn (about ``B`` calls per block of characters).
        Cutting had trained the LSTM at 0.76x a bare loop, packing the sentences as separate sequences
        at 0.25x (benchmarks/rnn_bench.py).
        """
        keep = (~starts[None, :, :1]).to(x.dtype)  # [1, B, 1] 0 where a row starts with <bos>: fresh state
        state = tuple(s * keep for s in state)
        lstm = self.config.cell == "lstm"
        if not starts[:, 1:].any():  # no sentence starts inside a row: one call
            out, final = self.rnn(x, state if lstm else state[0])
            return out, final if lstm else (final,)
        if lstm:
            return self._recur_lstm_resets(x, _reset_steps(starts), state)
        return self._recur_cut(x, starts, state)

    def _recur_lstm_resets(self, x: torch.Tensor, steps: ResetSteps, state: State) -> tuple[torch.Tensor, State]:
        """The LSTM over a block with reset and hold steps inserted, one kernel call per layer."""
        B, T, _ = x.shape
        h, c = [], []
        for k in range(self.config.n_layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(self.rnn, f"{name}_l{k}")
                                      for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            control = F.pad(torch.eye(2, dtype=x.dtype, device=x.device), (x.shape[-1], 0))  # [2, I + 2]
            inputs = torch.cat([F.pad(x.flatten(0, 1), (0, 2)), control])[steps.index]  # [B, T + K, I + 2]
            weights = {"weight_ih_l0": torch.cat([w_ih, _control_weights(w_ih)], dim=1),
                       "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
            kernel = _lstm_kernel(inputs.shape[-1], self.config.d_hidden)  # has no numbers itself
            out, (_, c_k) = torch.func.functional_call(kernel, weights, (inputs, (state[0][k:k + 1],
                                                                                  state[1][k:k + 1])))
            out = out.flatten(0, 1)[steps.tokens].view(B, T, -1)  # [B, T, H]: the tokens' steps alone
            h.append(out[:, -1])  # the state after the last token; c is held to the end
            c.append(c_k[0])
            x = out if k == self.config.n_layers - 1 else self.rnn_dropout(out)
        return x, (torch.stack(h), torch.stack(c))

    def _recur_cut(self, x: torch.Tensor, starts: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The block cut in time at every column where some row starts a sentence, one kernel call per piece."""
        T, lstm = x.shape[1], self.config.cell == "lstm"
        keep = (~starts).to(x.dtype)  # [B, T] 0 where a sentence starts: fresh state
        cuts = sorted({0, T, *starts[:, 1:].nonzero()[:, 1].add(1).tolist()})
        outputs = []
        for a, b in itertools.pairwise(cuts):
            k = keep[None, :, a, None]  # [1, B, 1]
            state = tuple(s * k for s in state)
            out, state = self.rnn(x[:, a:b], state if lstm else state[0])  # [B, b - a, H]
            state = state if lstm else (state,)  # the kernel's h alone, as the one-tensor tuple
            outputs.append(out)
        return torch.cat(outputs, dim=1), state

    def _zero_state(self, batch: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros(self.config.n_layers, batch, self.config.d_hidden)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else (zeros,)

    # --- the LanguageModel protocol (sequence_logprobs: NeuralLM's) and its incremental extension ----

    @torch.no_grad()
    def decode_step(self, ids: torch.Tensor, cache: State | None) -> tuple[torch.Tensor, State]:
        """Read ``ids`` [B, T] from the state ``cache`` (None: a fresh start) -> ([B, V] next-token log-probabilities,
        the state after them)."""
        logits, state = self(ids, cache)
        return log_softmax(logits[:, -1]), state

    def reorder_cache(self, cache: State, rows: torch.Tensor) -> State:
        return tuple(s[:, rows] for s in cache)



def gradient_by_distance(model: RNNLanguageModel, ids: torch.Tensor) -> torch.Tensor:
    """How much the last prediction's loss still depends on each earlier input: the norm of

        dL_T / dx_t,   t = 1 .. T,   L_T = -ln P(ids[:, T] | ids[:, :T]),  x_t = E[ids[:, t-1]],

    averaged over the batch ([T], first entry the input farthest back). Products of T - t
    Jacobians dh_k/dh_{k-1} carry the gradient back; in a tanh RNN they shrink (or blow up)
    geometrically, the LSTM's additive cell path lets it through. No <bos> resets here.
    """
    x = model.embed(ids[:, :-1]).detach().requires_grad_()  # [B, T, E]
    recur = model._recur_fast if model.config.fast else model._recur_cells
    h, _ = recur(x, torch.zeros_like(ids[:, :-1], dtype=torch.bool), model._zero_state(ids.shape[0], x))
    loss = F.cross_entropy(model.logits(h[:, -1]), ids[:, -1])
    (grad,) = torch.autograd.grad(loss, x)
    return grad.norm(dim=-1).mean(dim=0)  # [T]


def bptt_grad_w_hh(
    x: torch.Tensor, h0: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
    bias_ih: torch.Tensor, bias_hh: torch.Tensor, dloss_dh: torch.Tensor,
) -> torch.Tensor:
    """dL/dW_hh of the tanh RNN, L = sum_t L_t, by the BPTT sum written out term by term:

        dL/dW_hh = sum_{t=1..T} sum_{s=1..t} ((1 - h_s^2) * delta_ts) h_{s-1}^T,
        delta_ts = dL_t/dh_s = (dh_t/dh_{t-1} ... dh_{s+1}/dh_s)^T dL_t/dh_t,
        dh_j/dh_{j-1} = diag(1 - h_j^2) W_hh.

    x [B, T, I], h0 [B, H], dloss_dh [B, T, H]: entry t is dL_t/dh_t, the gradient of the
    loss at step t through its own prediction only. Returns [H, H], summed over the batch.
    For reading, not for training: O(T^2) steps, where autograd's backward pass is O(T).
    """
    hs = [h0]  # h_0 .. h_T
    for t in range(x.shape[1]):
        hs.append(rnn_cell(x[:, t], hs[-1], weight_ih, weight_hh, bias_ih, bias_hh))
    grad = torch.zeros_like(weight_hh)  # [H, H]
    for t in range(1, x.shape[1] + 1):  # the loss at step t ...
        delta = dloss_dh[:, t - 1]  # [B, H] dL_t/dh_t
        for s in range(t, 0, -1):  # ... reaches the use of W_hh at step s = t, t-1, .., 1
            through_tanh = delta * (1 - hs[s] ** 2)  # [B, H]: past the tanh of step s
            grad += through_tanh.T @ hs[s - 1]  # the term (t, s): W_hh multiplied h_{s-1}
            delta = through_tanh @ weight_hh  # one Jacobian further back: dL_t/dh_{s-1}
    return grad


@torch.no_grad()
def lstm_trace(model: RNNLanguageModel, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """The first LSTM layer's gates and states at every step of ``ids`` [B, T], read from a zero
    state with no ``<bos>`` resets (as ``gradient_by_distance`` reads them).

    Returns 'i', 'f', 'g', 'o' (after their sigmoid or tanh), 'c' and 'h', each [B, T, H];
    entry t holds step t's values, so c[:, t] = f[:, t] * c[:, t-1] + i[:, t] * g[:, t].
    """
    if model.config.cell != "lstm":
        raise ValueError(f"lstm_trace needs an LSTM, got cell={model.config.cell!r}")
    w_ih, w_hh, b_ih, b_hh = (getattr(model.rnn, f"{name}_l0")
                              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    x = model.embed(ids)  # [B, T, E]
    h = c = x.new_zeros(ids.shape[0], model.config.d_hidden)  # [B, H]
    trace: dict[str, list[torch.Tensor]] = {name: [] for name in "ifgoch"}
    for t in range(ids.shape[1]):
        gates = x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # [B, 4H], as lstm_cell computes them
        i, f, g, o = gates.chunk(4, dim=-1)
        h, c = lstm_cell(x[:, t], (h, c), w_ih, w_hh, b_ih, b_hh)
        values = (i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid(), c, h)
        for name, value in zip("ifgoch", values, strict=True):
            trace[name].append(value)
    return {name: torch.stack(values, dim=1) for name, values in trace.items()}


# --- a classifier: the LSTM read once over a text, and a sigmoid head ------------------------------------


@dataclass(frozen=True)
class LSTMClassifierConfig:
    vocab_size: int  # ids 0 .. vocab_size - 1, 0 the padding (Keras's Tokenizer numbers words from 1)
    d_embed: int = 128
    d_hidden: int = 64
    pad_id: int = 0


def lstm_states(x: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
                bias: torch.Tensor, fast: bool = True) -> torch.Tensor:
    """h_t at every step of a one-layer LSTM from a zero state: x [B, T, I] -> [B, T, H].

    One bias per gate (Keras's layout): PyTorch's b_ih + b_hh only ever appear as
    their sum, so this is ``torch.nn.LSTM`` with b_ih = ``bias`` and b_hh = 0; ``fast``
    runs that kernel on these tensors, ``fast=False`` runs ``lstm_cell`` step by step.
    """
    zero = torch.zeros_like(bias)
    if x.shape[1] == 0:  # no step to take (the kernel refuses an empty sequence)
        return x.new_zeros(x.shape[0], 0, weight_hh.shape[1])
    if not fast:
        h = c = x.new_zeros(x.shape[0], weight_hh.shape[1])  # [B, H]
        states = []
        for t in range(x.shape[1]):
            h, c = lstm_cell(x[:, t], (h, c), weight_ih, weight_hh, bias, zero)
            states.append(h)
        return torch.stack(states, dim=1)
    kernel = _lstm_kernel(weight_ih.shape[1], weight_hh.shape[1])  # has no numbers itself
    weights = {"weight_ih_l0": weight_ih, "weight_hh_l0": weight_hh,
               "bias_ih_l0": bias, "bias_hh_l0": zero}
    return torch.func.functional_call(kernel, weights, (x,))[0]


@functools.cache
def _lstm_kernel(input_size: int, hidden_size: int) -> nn.LSTM:
    return nn.LSTM(input_size, hidden_size, batch_first=True, device="meta")


class LSTMClassifier(nn.Module):
    """Embedding -> LSTM -> one logit: [B, T] right-padded ids -> [B, 2] logits (0, z).

        x_t = E[w_t],   h_t = LSTM(x_t, h_{t-1}),   z = w . h_n + b,
        P(positive | text) = sigmoid(z),
        loss = -y ln sigmoid(z) - (1 - y) ln(1 - sigmoid(z))

    with h_n the state after the text's last real token (padding is not read, as with
    Keras's ``Embedding(mask_zero=True)``; a text with no known word keeps h_0 = 0).
    Returning (0, z) makes it a two-class classifier like the others: softmax((0, z)) =
    (1 - sigmoid(z), sigmoid(z)), so the cross-entropy of ``lmlib.finetune`` is exactly
    the binary cross-entropy above, and ``finetune.train_classifier`` and ``predict``
    serve it unchanged. Parameters as Keras's ``Embedding``, ``LSTM`` (one bias per
    gate) and ``Dense(1)``.
    """

    def __init__(self, config: LSTMClassifierConfig):
        super().__init__()
        V, E, H = config.vocab_size, config.d_embed, config.d_hidden
        if min(V, E, H) < 1 or not 0 <= config.pad_id < V:
            raise ValueError("need vocab_size, d_embed, d_hidden >= 1 and "
                             f"0 <= pad_id < vocab_size, got {config}")
        self.config, self.pad_id = config, config.pad_id
        self.embed = nn.Embedding(V, E)
        self.weight_ih = nn.Parameter(torch.empty(4 * H, E))  # i f g o; Keras: kernel.T
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))  # Keras: recurrent_kernel.T
        self.bias = nn.Parameter(torch.empty(4 * H))
        self.head = nn.Linear(H, 1)  # Keras: Dense(1)
        nn.init.uniform_(self.embed.weight, -0.05, 0.05)  # Keras's Embedding initialiser
        for p in (self.weight_ih, self.weight_hh, self.bias):
            nn.init.uniform_(p, -1 / math.sqrt(H), 1 / math.sqrt(H))  # torch.nn.LSTM's

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B, 2] logits (0, z)."""
        return F.pad(self.logit(ids)[:, None], (1, 0))

    def logit(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] right-padded ids -> [B] z, the log-odds of the positive class."""
        lengths = _real_lengths(ids, self.pad_id, self.config.vocab_size)  # [B]
        x = self.embed(ids)  # [B, T, E]
        h = lstm_states(x, self.weight_ih, self.weight_hh, self.bias)  # [B, T, H]
        h = F.pad(h, (0, 0, 1, 0))  # [B, 1 + T, H]: h_0 = 0 first, so h[:, n] is h_n
        last = h[torch.arange(len(ids), device=ids.device), lengths]  # [B, H]
        return self.head(last).squeeze(-1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _real_lengths(ids: torch.Tensor, pad_id: int, vocab_size: int) -> torch.Tensor:
    """Each row's number of real tokens, after checking that ``ids`` are right-padded ids."""
    if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"expected [batch, time] integer ids, got {tuple(ids.shape)} {ids.dtype}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids must be in 0 .. {vocab_size - 1}, got {int(ids.min())} .. {int(ids.max())}: "
                         "encode with the vocabulary the model was built for")
    real = ids != pad_id
    lengths = real.sum(dim=1)
    if (real != (torch.arange(ids.shape[1], device=ids.device) < lengths[:, None])).any():
        raise ValueError("ids must be right-padded (padding only after the text); Keras's pad_sequences pads "
                         "in front by default: use padding='post'")
    return lengths

