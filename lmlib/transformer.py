"""The Transformer language model (GPT): attention, positions, norms, the GPT-2 block and the modern block.

A GPT reads up to T = ``block_size`` tokens at once. Token t becomes a vector
x_t (its embedding, plus a learned position embedding in GPT-2), and n_layers
blocks refine all the vectors together. In each block every position first
looks at the positions before it (causal self-attention), then is transformed
on its own (the MLP); both are added to the block's input (residual
connections), after a normalisation (pre-norm):

    X <- X + MultiHead(Norm(X))
    X <- X + MLP(Norm(X))
    P(w_{t+1} | w_{<=t}) = softmax(W_out Norm(x_t))        (weight tying: W_out = E, the embedding)

Attention. With Q = X W_Q, K = X W_K, V = X W_V (one row per position),

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V,     M_ij = 0 if j <= i else -inf

row i of the result is an average of the rows of V, weighted by how well
query i matches each key; the causal mask M keeps a position from seeing the
future, which it is trained to predict. Multi-head attention runs h of these
side by side on slices of width d_k = d_model / h and concatenates them:

    head_i = Attention(X W_Q^i, X W_K^i, X W_V^i),   MultiHead(X) = [head_1; ..; head_h] W_O

With grouped-query attention (GQA) the h query heads share h_kv < h key/value
heads, h / h_kv queries per group, which shrinks the KV cache h / h_kv times.

One ``GPTConfig`` chooses between the two blocks the course compares:

    GPT-2 (2019)               learned absolute positions, LayerNorm, GELU MLP, biases
    modern (Llama-style)       rotary positions (RoPE), RMSNorm, SwiGLU MLP, no biases, optional GQA

and the smaller models the chapter builds up to it: ``n_layers=0`` with ``positions="none"`` is a bigram
model (each token's logits come from its own embedding only), and ``mlp="none"`` keeps only the
attention half of each block.

Decoding reads one token at a time through a KV cache (the keys and values of
the tokens already read, per layer), exposed through ``lmlib.lm``'s
``IncrementalDecoding`` so ``lmlib.generate`` uses it. The model sees at most
``block_size`` tokens: a longer context is cut to its last ``block_size``
tokens, and a longer sequence is scored with a sliding window
(``GPT.sliding_hidden_states``). ``GPT.from_hf`` and ``GPT.to_hf`` move weights
to and from Hugging Face's ``GPT2LMHeadModel`` and ``LlamaForCausalLM`` exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmlib._deps import require
from lmlib.neural import NeuralLM, log_softmax
from lmlib.tokenize import Vocab


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int  # len(vocab), specials included (or the Hugging Face model's vocabulary size)
    block_size: int = 128  # the context window: the most tokens the model reads at once
    d_model: int = 64  # the width of each position's vector
    n_layers: int = 2  # 0: no blocks, logits from each token's own embedding (with positions="none": a bigram)
    n_heads: int = 4  # h; each head has width d_k = d_model / h
    n_kv_heads: int | None = None  # key/value heads, h_kv (h_kv < h: grouped-query attention); None: h
    d_ff: int | None = None  # the MLP's hidden width; None: 4 d_model (GELU) or about 8/3 d_model (SwiGLU)
    positions: str = "learned"  # "learned" absolute positions (GPT-2), "rope" (rotary) or "none"
    norm: str = "layernorm"  # "layernorm" or "rmsnorm"
    mlp: str = "gelu"  # "gelu" (GPT-2's tanh approximation), "swiglu", or "none" (attention-only blocks)
    bias: bool = True  # biases in the linear layers and in LayerNorm
    tie_weights: bool = True  # the output layer is the token embedding
    dropout: float = 0.0  # on the embeddings and on each residual branch
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0  # RoPE's base: head coordinate pair i turns by t * theta^(-2i/d_k) at position t
    reset_at_bos: bool = False  # attention and positions restart at each <bos> of a training stream
    window_stride: int = 1  # s: past block_size tokens, the window moves s tokens at a time (GPT.window_start)
    fast: bool = True  # torch's fused F.scaled_dot_product_attention; False: the function written below

    @classmethod
    def modern(cls, vocab_size: int, **settings) -> GPTConfig:
        """The Llama-style block: RoPE, RMSNorm, SwiGLU, no biases (``settings`` override any field)."""
        block = {"positions": "rope", "norm": "rmsnorm", "mlp": "swiglu", "bias": False, "norm_eps": 1e-6}
        return cls(vocab_size, **{**block, **settings})

    @property
    def d_head(self) -> int:
        """d_k, the width of one head."""
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def ff_width(self) -> int:
        if self.d_ff is not None:
            return self.d_ff
        if self.mlp == "gelu":
            return 4 * self.d_model
        # SwiGLU has three matrices, not two: 2/3 of 4 d_model keeps the parameter count (rounded up to 8s).
        return 8 * math.ceil(self.d_model / 3)


def check_config(config: GPTConfig) -> None:
    """Raise ``ValueError`` naming the first setting a GPT cannot be built with."""
    choices = {"positions": ("learned", "rope", "none"), "norm": ("layernorm", "rmsnorm"),
               "mlp": ("gelu", "swiglu", "none")}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")
    if config.n_layers < 0:
        raise ValueError(f"n_layers must be >= 0, got {config.n_layers}")
    for name in ("vocab_size", "block_size", "d_model", "n_heads", "kv_heads", "ff_width"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.d_model % config.n_heads:
        raise ValueError(f"n_heads={config.n_heads} does not divide d_model={config.d_model}: each head gets "
                         f"d_model / n_heads dimensions; choose n_heads among {_divisors(config.d_model)}")
    if config.n_heads % config.kv_heads:
        raise ValueError(f"n_kv_heads={config.kv_heads} does not divide n_heads={config.n_heads}: each key/value "
                         f"head serves the same number of query heads; choose among {_divisors(config.n_heads)}")
    if config.positions == "rope" and config.d_head % 2:
        raise ValueError(f"RoPE turns pairs of coordinates, so d_model / n_heads must be even, got {config.d_head}")
    if not 0 <= config.dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")
    if not 1 <= config.window_stride <= config.block_size:
        raise ValueError(f"window_stride must be between 1 and block_size={config.block_size}, "
                         f"got {config.window_stride}")


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


# --- attention --------------------------------------------------------------------------------


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, written out.

    q [..., T_q, d_k], k [..., T_k, d_k], v [..., T_k, d_v] -> [..., T_q, d_v]. ``mask``
    (bool, broadcastable to [..., T_q, T_k]) is True where query i may look at key j; the
    other scores become -inf, so their weights are 0. Dividing by sqrt(d_k) keeps the
    scores' spread about 1 whatever the width (when q's and k's coordinates have variance
    about 1), so the softmax does not saturate. A query that may look at no key at all has
    no defined output (NaN).
    """
    d_k = q.shape[-1]
    # [..., T_q, T_k]: how well query i matches key j
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # [..., T_q, T_k], each row sums to 1
    return weights @ v  # [..., T_q, d_v]: the weights multiply V


def causal_mask(t_q: int, t_k: int,
                device: torch.device | str | None = None) -> torch.Tensor:
    """[T_q, T_k] bool: the T_q queries are the last T_q of the T_k positions, and each
    may look at its own position and the earlier ones (T_q < T_k when earlier keys come
    from a KV cache)."""
    return (torch.ones(t_q, t_k, dtype=torch.bool, device=device)
            .tril(diagonal=t_k - t_q))


def padding_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """[B, T] ids -> [B, 1, 1, T] bool: False at ``<pad>`` keys, which no query may look at (combine with
    ``causal_mask`` by ``&``). Right padding needs none under a causal mask: real tokens never look right."""
    return (ids != pad_id)[:, None, None, :]


def sentence_mask(ids: torch.Tensor, bos_id: int) -> torch.Tensor:
    """[B, T] ids -> [B, 1, T, T] bool: causal, and a position looks only at its own sentence, the tokens
    from the last ``<bos>`` at or before it (the document masking of a packed training stream)."""
    sentence = (ids == bos_id).cumsum(dim=1)  # [B, T] how many <bos> so far
    same = sentence[:, :, None] == sentence[:, None, :]  # [B, T, T]
    return (same & causal_mask(ids.shape[1], ids.shape[1], ids.device))[:, None]


def sentence_positions(ids: torch.Tensor, bos_id: int) -> torch.Tensor:
    """[B, T] ids -> [B, T] each token's position counted from the last ``<bos>`` at or before it
    (from the row's start if there is none)."""
    index = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    last_bos = torch.where(ids == bos_id, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - last_bos


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, T, n d_k] -> [B, n, T, d_k]: head i is the i-th slice of d_k coordinates."""
    B, T, _ = x.shape
    return x.view(B, T, n_heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, h, T, d_k] -> [B, T, h d_k]: the heads' outputs side by side,
    [head_1; ..; head_h]."""
    B, h, T, d_k = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_k)


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[B, h_kv, T, d_k] -> [B, h_kv groups, T, d_k]: key/value head j serves query heads
    j*groups .. (j+1)*groups - 1 (Hugging Face's grouping)."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def multi_head_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                         is_causal: bool, fast: bool) -> torch.Tensor:
    """Every head at once: q [B, h, T_q, d_k], k and v [B, h_kv, T_k, d_k] -> [B, h, T_q, d_k].

    ``mask`` and ``is_causal`` mean what they mean to ``F.scaled_dot_product_attention``
    (``is_causal`` only with T_q = T_k); ``fast`` runs that fused kernel, otherwise the function above.
    """
    groups = q.shape[1] // k.shape[1]
    if fast:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=groups > 1)
    if is_causal:
        mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
    return scaled_dot_product_attention(q, repeat_kv(k, groups), repeat_kv(v, groups), mask)


# --- rotary positions (RoPE) ------------------------------------------------------------------
#
# RoPE (Su et al., 2021) encodes position t by turning each pair of a query's (and a key's)
# coordinates by the angle t * theta_i, theta_i = theta^(-2i/d_k). A turn by t*theta_i of the
# query and by s*theta_i of the key changes their dot product only through t - s: attention
# scores depend on how far apart two tokens are, not on where they are.
#
# Which coordinates form a pair is a convention. The paper and Meta's original Llama code pair
# neighbours, (x_0, x_1), (x_2, x_3), ... ("interleaved"); Hugging Face pairs the two halves,
# (x_i, x_{i + d_k/2}), and turns them with ``rotate_half``. The two are the same computation on
# coordinates listed in another order: applying one permutation to both q and k leaves q . k
# unchanged, so a checkpoint moves between the layouts by permuting the rows of W_Q and W_K within
# each head (as HF's Llama conversion script does). lmlib uses HF's halves, so ``from_hf`` copies
# the weights unchanged; tests/test_transformer.py checks the two layouts against each other.


def rope_angles(n_positions: int, d_head: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the angles t * theta^(-2i/d_k), each [n_positions, d_k]: frequency i is written
    at coordinates i and i + d_k/2, the two halves ``rotate_half`` pairs. Computed in float32, as HF does."""
    inv_freq = 1.0 / theta ** (torch.arange(0, d_head, 2, dtype=torch.float32) / d_head)  # [d_k/2]
    angles = torch.arange(n_positions, dtype=torch.float32)[:, None] * inv_freq  # [T, d_k/2]
    angles = torch.cat([angles, angles], dim=-1)  # [T, d_k]
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[..., d_k] -> [..., d_k]: (x_1, x_2) -> (-x_2, x_1) for the halves x_1, x_2: a quarter turn of
    every pair (x_i, x_{i + d_k/2})."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn every pair of coordinates by its angle: x [B, h, T, d_k], cos and sin [T, d_k]
    (or [B, 1, T, d_k])."""
    return x * cos + rotate_half(x) * sin


# --- norms and MLP ----------------------------------------------------------------------------


class LayerNorm(nn.Module):
    """LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * g + b, over each vector's
    d_model coordinates (b optional)."""

    def __init__(self, d: int, eps: float, bias: bool):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{len(self.weight)}, eps={self.eps}, bias={self.bias is not None}"


class RMSNorm(nn.Module):
    """RMSNorm(x) = x / sqrt(mean(x^2) + eps) * g: LayerNorm without the centring or the
    bias (Zhang and Sennrich, 2019); computed in at least float32, as Llama does."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = x.to(torch.promote_types(x.dtype, torch.float32))
        normed = wide * torch.rsqrt(
            wide.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{len(self.weight)}, eps={self.eps}"


def make_norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.d_model, config.norm_eps)
    return LayerNorm(config.d_model, config.norm_eps, config.bias)


class MLP(nn.Module):
    """The position-wise network, applied to each position on its own:

        GELU (GPT-2):    MLP(x) = W_2 gelu(W_1 x + b_1) + b_2
        SwiGLU:          MLP(x) = W_2 (silu(W_gate x) * (W_up x)),
                         silu(z) = z sigmoid(z)

    For SwiGLU, ``fc`` holds W_gate and W_up stacked (gate rows first), so both come from
    one matmul.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.gated = config.mlp == "swiglu"
        width = config.ff_width
        self.fc = nn.Linear(config.d_model, 2 * width if self.gated else width,
                            bias=config.bias)
        self.proj = nn.Linear(width, config.d_model, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)  # [B, T, (2) d_ff]
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate="tanh")
        return self.drop(self.proj(h))  # [B, T, d_model]


# --- the attention module and the block -------------------------------------------------------


KV = tuple[torch.Tensor, torch.Tensor]  # one layer's keys and values, each [B, h_kv, T, d_k]


class CausalSelfAttention(nn.Module):
    """MultiHead(X) = [head_1; ..; head_h] W_O with causal heads; W_Q, W_K, W_V stacked in
    one ``qkv`` layer (Q rows, then K, then V), so the three come from one matmul."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.fast = (
            config.n_heads, config.kv_heads, config.fast)
        # Q, K, V
        self.widths = [config.n_heads * config.d_head,
                       *[config.kv_heads * config.d_head] * 2]
        self.qkv = nn.Linear(config.d_model, sum(self.widths), bias=config.bias)
        # W_O
        self.proj = nn.Linear(config.n_heads * config.d_head, config.d_model,
                              bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None, is_causal: bool,
                past: KV | None = None) -> tuple[torch.Tensor, KV]:
        """x [B, T, d_model] -> ([B, T, d_model], the keys and values of the past and
        these T tokens)."""
        q, k, v = self.queries_keys_values(x, rope)
        if past is not None:  # the tokens read before: their keys and values were cached
            # [B, h_kv, T_past + T, d_k]
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = multi_head_attention(q, k, v, mask, is_causal, self.fast)  # [B, h, T, d_k]
        return self.drop(self.proj(merge_heads(y))), (k, v)

    def queries_keys_values(self, x: torch.Tensor,
                            rope: tuple[torch.Tensor, torch.Tensor] | None):
        """x [B, T, d_model] -> Q [B, h, T, d_k], K and V [B, h_kv, T, d_k], positions
        applied (RoPE)."""
        q, k, v = self.qkv(x).split(self.widths, dim=-1)
        q = split_heads(q, self.n_heads)
        k, v = split_heads(k, self.n_kv_heads), split_heads(v, self.n_kv_heads)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v


class Block(nn.Module):
    """X <- X + MultiHead(Norm(X)); X <- X + MLP(Norm(X))  (pre-norm residual block;
    with mlp="none", the first update only)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn_norm, self.attn = make_norm(config), CausalSelfAttention(config)
        attention_only = config.mlp == "none"  # the chapter's build-up
        self.mlp_norm = None if attention_only else make_norm(config)
        self.mlp = None if attention_only else MLP(config)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None, is_causal: bool,
                past: KV | None = None) -> tuple[torch.Tensor, KV]:
        attended, kv = self.attn(self.attn_norm(x), rope, mask, is_causal, past)
        x = x + attended
        if self.mlp is None:
            return x, kv
        return x + self.mlp(self.mlp_norm(x)), kv


@dataclass
class KVCache:
    """What ``GPT.decode_step`` carries from one token to the next: per layer, the keys and values
    [B, h_kv, T, d_k] of the tokens in the window, those tokens, ``ids`` [B, T], and where the window
    starts in the context, ``start``."""

    layers: list[KV]
    ids: torch.Tensor
    start: int = 0

    def reorder(self, rows: torch.Tensor) -> KVCache:
        return KVCache([(k[rows], v[rows]) for k, v in self.layers], self.ids[rows], self.start)


# --- the language model -----------------------------------------------------------------------


class GPT(NeuralLM):
    """A decoder-only Transformer language model, a ``lmlib.neural.NeuralLM``: with a course ``Vocab`` it
    implements ``lmlib.lm.LanguageModel`` and its ``IncrementalDecoding`` extension (the cache is a
    ``KVCache``).

    ``model(ids)`` maps [B, T] ids (T <= block_size) to [B, T, V] logits, position t predicting the
    token after ids[:, t]: what ``lmlib.train`` trains. With a vocabulary, ``<pad>`` and ``<bos>`` get
    logit -inf (never predicted), as in lmlib's other models. Without one (``GPT.from_hf(model)``) the
    model has no ``vocab`` attribute, so it is not a LanguageModel and lmlib's tools refuse it; it still
    gives logits (``model(ids)``) and reads ids incrementally (``decode_step``).

    A context longer than the window W = block_size is read through the window that starts at
    ``window_start``: the window moves by ``config.window_stride`` tokens at a time, so the model is one
    conditional distribution whether it scores a whole text (``sequence_logprobs``), predicts one token
    (``next_token_logprobs``) or decodes with its cache (``decode_step``).
    """

    config_class = GPTConfig

    def __init__(self, config: GPTConfig, vocab: Vocab | None = None):
        super().__init__()
        check_config(config)
        if config.reset_at_bos and vocab is None:
            raise ValueError("reset_at_bos needs a vocabulary: it restarts at the vocabulary's <bos>")
        self.register_vocab(vocab, config.vocab_size)  # <pad>, <bos>: logit -inf, softmax over |V| tokens
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)  # E
        self.position_embedding = nn.Embedding(config.block_size, config.d_model) if config.positions == "learned" \
            else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = make_norm(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)  # W_out
        if config.tie_weights:
            self.lm_head.weight = self.token_embedding.weight
        if config.positions == "rope":
            cos, sin = rope_angles(config.block_size, config.d_head, config.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)  # [block_size, d_k]
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(_init_weights)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # GPT-2: the residual branches' output layers, 1/sqrt(2 n_layers)
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layers))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B, T, V] logits for the token after each position."""
        return self.logits(self.hidden_states(ids)[0])

    def hidden_states(self, ids: torch.Tensor,
                      past: KVCache | None = None) -> tuple[torch.Tensor, list[KV]]:
        """[B, T] ids read after the cached ``past`` (None: from the start) ->
        [B, T, d_model] the final normed vectors, and every layer's keys and values (past
        included)."""
        start = 0 if past is None else past.ids.shape[1]
        if start + ids.shape[1] > self.config.block_size:
            raise ValueError(
                f"the model reads at most block_size={self.config.block_size} tokens at "
                f"once, got {start + ids.shape[1]}: score longer sequences with "
                "sequence_logprobs (it slides a window), or train with "
                "TrainConfig.block <= block_size")
        positions, mask, is_causal = self._layout(ids, start)
        x = self.token_embedding(ids)  # [B, T, d_model]
        if self.position_embedding is not None:
            x = x + self.position_embedding(positions)
        rope = None
        if self.config.positions == "rope":
            # [T, d_k] or [B, T, d_k]
            cos, sin = self.rope_cos[positions], self.rope_sin[positions]
            rope = (cos, sin) if positions.ndim == 1 else (cos[:, None], sin[:, None])
        x = self.drop(x)
        layers = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, rope, mask, is_causal,
                          None if past is None else past.layers[i])
            layers.append(kv)
        return self.final_norm(x), layers

    def _layout(self, ids: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
        """Positions ([T] or [B, T]), attention mask and is_causal for T tokens read after ``start`` cached ones."""
        T = ids.shape[1]
        if start == 0 and self.config.reset_at_bos and T > 1 and (ids[:, 1:] == self.vocab.bos_id).any():
            return sentence_positions(ids, self.vocab.bos_id), sentence_mask(ids, self.vocab.bos_id), False
        positions = torch.arange(start, start + T, device=ids.device)
        if start == 0:
            return positions, None, True  # the fused kernel's own causal mask
        if T == 1:
            return positions, None, False  # one new token may look at everything read
        return positions, causal_mask(T, start + T, ids.device), False

    def output(self, h: torch.Tensor) -> torch.Tensor:
        """[..., d_model] -> [..., V] logits W_out h."""
        return self.lm_head(h)

    def window_start(self, n: int, stride: int | None = None) -> int:
        """Where the window that predicts the token after n context tokens starts: 0 while n <= W
        (= block_size), then on the grid s, 2s, 3s, .. (s = ``stride``, default ``config.window_stride``):
        the first start that leaves at most W tokens, so the token is predicted from n - start tokens,
        between W - s + 1 and W of them.

        s = 1 gives every token the full window (each token costs a pass when scoring a long text); s = W
        cuts the text into blocks (one pass per W tokens, the least context); s = W/2 costs at most two
        passes per W tokens and keeps at least W/2 tokens of context.
        """
        W = self.config.block_size
        s = self.config.window_stride if stride is None else stride
        return 0 if n <= W else s * math.ceil((n - W) / s)

    def sliding_hidden_states(self, ids: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        """[B, T] ids, any T -> [B, T, d_model], position t read through the window ``window_start(t + 1)``.

        One pass when T <= W; otherwise the window [a, a + W) for a = s, 2s, .. supplies its last s
        positions, the ones it is the window of. Only the rows with tokens there are read (a batch's long
        sentences, not its padding). Learned positions count from each window's start.
        """
        W, T = self.config.block_size, ids.shape[1]
        s = self.config.window_stride if stride is None else stride
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= W:
            raise ValueError(f"cannot slide the window with stride={s!r}: a sequence of {T} tokens "
                             f"is scored in windows of block_size={W}, moved by a stride between 1 and {W}")
        first = self.hidden_states(ids[:, :W])[0]  # [B, min(T, W), d_model]
        if T <= W:
            return first
        out = first.new_zeros(ids.shape[0], T, first.shape[-1])
        out[:, :W] = first
        for a in range(s, T - W + s, s):
            kept = slice(a + W - s, min(a + W, T))  # the positions this window is the window of
            rows = torch.arange(ids.shape[0], device=ids.device)
            if hasattr(self, "vocab"):
                rows = rows[(ids[:, kept] != self.vocab.pad_id).any(dim=1)]
            if len(rows):
                out[rows, kept] = self.hidden_states(ids[rows, a : a + W])[0][:, W - s :]
        return out

    # --- the LanguageModel protocol and its incremental extension ------------------------------

    @torch.no_grad()
    def sequence_logprobs(self, ids: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        """[B, T] rows ``<bos> w_1 .. <eos> <pad>..`` -> [B, T-1], entry t-1 = ln P(ids[t] | ids[:t]).

        Rows longer than the window are read with a sliding window (``sliding_hidden_states``). The
        padding needs no attention mask (right padding: no real token looks right); the output layer
        runs only where the target is a token, and entries with a ``<pad>`` target are 0.
        """
        self._require_vocab("sequence_logprobs")
        return self.target_logprobs(self.sliding_hidden_states(ids[:, :-1], stride), ids[:, 1:])

    @torch.no_grad()
    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        """[B, T] contexts (rows start with ``<bos>``) -> [B, V] ln P(next token | the window's tokens)."""
        self._require_vocab("next_token_logprobs")
        return self.decode_step(contexts, None)[0]

    @torch.no_grad()
    def decode_step(self, ids: torch.Tensor, cache: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        """Read ``ids`` after the tokens in ``cache`` (None: ``ids`` is the whole context) -> ([B, V] next-token
        log-probabilities, the cache after them).

        Each new token costs one position's work: its query looks at the cached keys and values. When the
        context outgrows the window, the window moves (``window_start``) and the tokens left in it are
        re-read: the kept tokens' cached vectors were computed while they could still see the dropped ones,
        and learned positions count from the window's start. With stride s that happens every s tokens.
        """
        if cache is None:
            start = self.window_start(ids.shape[1])
            return self._read(ids[:, start:], start)
        seen = torch.cat([cache.ids, ids], dim=1)  # [B, T_window + T]
        start = self.window_start(cache.start + seen.shape[1])
        restarts = self.config.reset_at_bos and bool((seen[:, 1:] == self.vocab.bos_id).any())
        if start != cache.start or restarts:  # a new window, or a sentence start inside: masks change, re-read
            return self._read(seen[:, start - cache.start :], start)
        h, layers = self.hidden_states(ids, cache)
        return log_softmax(self.logits(h[:, -1])), KVCache(layers, seen, start)

    def _read(self, window: torch.Tensor, start: int) -> tuple[torch.Tensor, KVCache]:
        h, layers = self.hidden_states(window)
        return log_softmax(self.logits(h[:, -1])), KVCache(layers, window, start)

    def reorder_cache(self, cache: KVCache, rows: torch.Tensor) -> KVCache:
        return cache.reorder(rows)

    def _require_vocab(self, method: str) -> Vocab:
        if not hasattr(self, "vocab"):
            raise ValueError(f"{method} needs the model's vocabulary, and this GPT has none (e.g. made by "
                             "GPT.from_hf(model) without vocab=): it gives logits, model(ids), and decode_step; "
                             "to score tokens, pass the course Vocab its ids mean: GPT.from_hf(model, vocab)")
        return self.vocab

    # --- Hugging Face interop -------------------------------------------------------------------

    @classmethod
    def from_hf(cls, model: nn.Module, vocab: Vocab | None = None) -> GPT:
        """The same network as a Hugging Face ``GPT2LMHeadModel`` or ``LlamaForCausalLM``, with its weights
        (same logits, same dtype and device; in eval mode).

        ``vocab``: the course ``Vocab`` whose ids the model was trained on (e.g. a model saved by
        ``to_hf``); then the result is a LanguageModel. Without it the result is a bare network:
        ``model(ids)`` gives HF's logits, but lmlib's tools cannot score or decode token lists with it,
        because the ids of an HF tokenizer mean nothing to lmlib's ``Vocab``. ``dropout`` (training
        only) is GPT-2's ``resid_pdrop``; HF's dropout on the attention weights has no counterpart here.
        """
        kind = _hf_kind(model)
        config = HF_ARCHITECTURES[kind]["config_from_hf"](model.config)
        if vocab is not None and len(vocab) != config.vocab_size:
            raise ValueError(f"the vocabulary has {len(vocab)} entries but the {kind} has {config.vocab_size} "
                             "rows of embeddings: pass the Vocab the model was trained with")
        like = next(model.parameters())
        ours = cls(config, vocab).to(like.device, like.dtype)
        names = HF_ARCHITECTURES[kind]["weight_names"](config)
        ours.load_state_dict(_weights_from_hf(model.state_dict(), names))
        return ours.eval()

    def to_hf(self) -> nn.Module:
        """This model as a Hugging Face ``GPT2LMHeadModel`` (the GPT-2 block) or ``LlamaForCausalLM`` (the
        modern block): the same weights and logits (bar the -inf of the never-predicted tokens).

        The HF model has no ``reset_at_bos`` (same outputs on rows with one leading ``<bos>``, as in
        scoring and decoding) and no residual dropout in Llama.
        """
        kind = "GPT2LMHeadModel" if self.config.positions == "learned" else "LlamaForCausalLM"
        hf_config = HF_ARCHITECTURES[kind]["config_to_hf"](self.config, getattr(self, "vocab", None))
        weight = self.lm_head.weight
        theirs = getattr(require("transformers"), kind)(hf_config).to(weight.device, weight.dtype)
        names = HF_ARCHITECTURES[kind]["weight_names"](self.config)
        theirs.load_state_dict(_weights_to_hf(self.state_dict(), theirs.state_dict(), names))
        return theirs.eval()


@torch.no_grad()
def attention_weights(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    """[B, T] ids (T <= block_size) -> [B, n_layers, h, T, T]: every head's weights softmax(Q K^T / sqrt(d_k) + M),
    row i the distribution of query i over the keys, as the model computes them when it reads ``ids``.

    The fused kernel does not return its weights, so each layer's attention input is caught on its way in
    (a forward pre-hook) and its queries and keys recomputed from it.
    """
    if not model.blocks:
        raise ValueError("this GPT has n_layers=0: no attention, so no attention weights")
    maps = []

    def record(attn: CausalSelfAttention, args: tuple) -> None:
        x, rope, mask, is_causal, _ = args  # x [B, T, d_model], normed
        q, k, _ = attn.queries_keys_values(x, rope)  # [B, h, T, d_k], [B, h_kv, T, d_k]
        k = repeat_kv(k, attn.n_heads // attn.n_kv_heads)
        if is_causal:
            mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [B, h, T, T]
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        maps.append(scores.softmax(dim=-1))

    hooks = [block.attn.register_forward_pre_hook(record) for block in model.blocks]
    try:
        model.hidden_states(ids)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(maps, dim=1)


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: N(0, 0.02) weights and embeddings, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)


# --- Hugging Face weight layouts --------------------------------------------------------------
#
# A weight table lists, for each lmlib tensor, the HF tensors it is made of and whether they are
# stored transposed. GPT-2 keeps its linear layers in ``Conv1D`` modules, which compute x W + b
# with W stored [in, out], the transpose of ``nn.Linear``'s [out, in] (x W^T + b); its c_attn
# already stacks W_Q, W_K, W_V like lmlib's qkv. Llama keeps q_proj, k_proj, v_proj (and
# gate_proj, up_proj) apart, in nn.Linear's layout; lmlib stacks them along the output rows.

WeightNames = list[tuple[str, list[str], bool]]  # (lmlib name, HF names stacked in order, HF stores transposed)


def gpt2_weight_names(config: GPTConfig) -> WeightNames:
    names = [("token_embedding.weight", ["transformer.wte.weight"], False),
             ("position_embedding.weight", ["transformer.wpe.weight"], False),
             ("final_norm.weight", ["transformer.ln_f.weight"], False),
             ("final_norm.bias", ["transformer.ln_f.bias"], False),
             ("lm_head.weight", ["lm_head.weight"], False)]
    pairs = [("attn_norm", "ln_1"), ("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"),
             ("mlp_norm", "ln_2"), ("mlp.fc", "mlp.c_fc"), ("mlp.proj", "mlp.c_proj")]
    for i in range(config.n_layers):
        for ours, theirs in pairs:
            conv1d = not ours.endswith("norm")
            names.append((f"blocks.{i}.{ours}.weight", [f"transformer.h.{i}.{theirs}.weight"], conv1d))
            names.append((f"blocks.{i}.{ours}.bias", [f"transformer.h.{i}.{theirs}.bias"], False))
    return names


def llama_weight_names(config: GPTConfig) -> WeightNames:
    names = [("token_embedding.weight", ["model.embed_tokens.weight"], False),
             ("final_norm.weight", ["model.norm.weight"], False),
             ("lm_head.weight", ["lm_head.weight"], False)]
    for i in range(config.n_layers):
        hf = f"model.layers.{i}."
        kinds = ["weight", "bias"] if config.bias else ["weight"]
        names += [(f"blocks.{i}.attn_norm.weight", [hf + "input_layernorm.weight"], False),
                  (f"blocks.{i}.mlp_norm.weight", [hf + "post_attention_layernorm.weight"], False)]
        for kind in kinds:
            names += [(f"blocks.{i}.attn.qkv.{kind}", [f"{hf}self_attn.{p}_proj.{kind}" for p in "qkv"], False),
                      (f"blocks.{i}.attn.proj.{kind}", [f"{hf}self_attn.o_proj.{kind}"], False),
                      (f"blocks.{i}.mlp.fc.{kind}", [f"{hf}mlp.gate_proj.{kind}", f"{hf}mlp.up_proj.{kind}"], False),
                      (f"blocks.{i}.mlp.proj.{kind}", [f"{hf}mlp.down_proj.{kind}"], False)]
    return names


def _weights_from_hf(theirs: dict[str, torch.Tensor], names: WeightNames) -> dict[str, torch.Tensor]:
    return {ours: torch.cat([theirs[n].T if transposed else theirs[n] for n in parts])
            for ours, parts, transposed in names}


def _weights_to_hf(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor],
                   names: WeightNames) -> dict[str, torch.Tensor]:
    """HF's state dict filled from lmlib's; the shapes of HF's own tensors say where to cut stacked ones."""
    out = {}
    for name, parts, transposed in names:
        rows = [theirs[n].shape[1] if transposed else theirs[n].shape[0] for n in parts]
        for n, piece in zip(parts, ours[name].split(rows), strict=True):
            out[n] = piece.T.contiguous() if transposed else piece
    return out


def gpt2_config_from_hf(hf) -> GPTConfig:
    """A ``GPT2Config`` as a ``GPTConfig``; raises for the GPT-2 options lmlib does not model."""
    unsupported = {"activation_function": hf.activation_function not in ("gelu_new", "gelu_pytorch_tanh"),
                   "scale_attn_weights": not hf.scale_attn_weights,
                   "scale_attn_by_inverse_layer_idx": hf.scale_attn_by_inverse_layer_idx,
                   "add_cross_attention": hf.add_cross_attention}
    _refuse(unsupported, hf, "GPT2LMHeadModel with activation_function='gelu_new', scale_attn_weights=True, "
                             "no layer-index scaling and no cross-attention")
    return GPTConfig(hf.vocab_size, block_size=hf.n_positions, d_model=hf.n_embd, n_layers=hf.n_layer,
                     n_heads=hf.n_head, d_ff=hf.n_inner, norm_eps=hf.layer_norm_epsilon,
                     tie_weights=hf.tie_word_embeddings, dropout=float(hf.resid_pdrop))


def gpt2_config_to_hf(config: GPTConfig, vocab: Vocab | None):
    block = {"norm": "layernorm", "mlp": "gelu", "bias": True, "kv_heads": config.n_heads}
    _require_block(config, block, "GPT2LMHeadModel")
    return require("transformers").GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.d_model, n_layer=config.n_layers,
        n_head=config.n_heads, n_inner=config.d_ff, activation_function="gelu_new", layer_norm_epsilon=config.norm_eps,
        resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=0.0, tie_word_embeddings=config.tie_weights,
        **_special_ids(vocab))


def llama_config_from_hf(hf) -> GPTConfig:
    """A ``LlamaConfig`` as a ``GPTConfig``; raises for the Llama options lmlib does not model."""
    rope = hf.rope_parameters or {"rope_type": "default", "rope_theta": 10000.0}
    unsupported = {"rope_parameters": rope.get("rope_type", "default") != "default",
                   "hidden_act": hf.hidden_act != "silu",
                   "attention_bias": hf.attention_bias != hf.mlp_bias,
                   "head_dim": hf.head_dim != hf.hidden_size // hf.num_attention_heads}
    _refuse(unsupported, hf, "LlamaForCausalLM with default RoPE (no scaling), hidden_act='silu', "
                             "attention_bias == mlp_bias and head_dim = hidden_size / num_attention_heads")
    # n_kv_heads and d_ff stay None (their defaults) when they have the default values: configs round-trip exactly.
    kv_heads = None if hf.num_key_value_heads == hf.num_attention_heads else hf.num_key_value_heads
    config = GPTConfig.modern(hf.vocab_size, block_size=hf.max_position_embeddings, d_model=hf.hidden_size,
                              n_layers=hf.num_hidden_layers, n_heads=hf.num_attention_heads, n_kv_heads=kv_heads,
                              norm_eps=hf.rms_norm_eps, rope_theta=float(rope["rope_theta"]), bias=hf.attention_bias,
                              tie_weights=hf.tie_word_embeddings)
    return config if config.ff_width == hf.intermediate_size else replace(config, d_ff=hf.intermediate_size)


def llama_config_to_hf(config: GPTConfig, vocab: Vocab | None):
    _require_block(config, {"positions": "rope", "norm": "rmsnorm", "mlp": "swiglu"}, "LlamaForCausalLM")
    return require("transformers").LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model, intermediate_size=config.ff_width,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads, num_key_value_heads=config.kv_heads,
        head_dim=config.d_head, max_position_embeddings=config.block_size, rms_norm_eps=config.norm_eps,
        attention_bias=config.bias, mlp_bias=config.bias, tie_word_embeddings=config.tie_weights,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta}, **_special_ids(vocab))


HF_ARCHITECTURES = {
    "GPT2LMHeadModel": {"config_from_hf": gpt2_config_from_hf, "config_to_hf": gpt2_config_to_hf,
                        "weight_names": gpt2_weight_names},
    "LlamaForCausalLM": {"config_from_hf": llama_config_from_hf, "config_to_hf": llama_config_to_hf,
                         "weight_names": llama_weight_names},
}


def _hf_kind(model: object) -> str:
    """Which supported Hugging Face class ``model`` is; raises naming the supported ones."""
    transformers = require("transformers")
    for kind in HF_ARCHITECTURES:
        if isinstance(model, getattr(transformers, kind)):
            return kind
    raise TypeError(f"GPT.from_hf supports {' and '.join(HF_ARCHITECTURES)}, got {type(model).__name__}; "
                    "other architectures need their own weight table")


def _refuse(unsupported: dict[str, bool], hf, supported: str) -> None:
    bad = [f"{name}={getattr(hf, name)!r}" for name, is_bad in unsupported.items() if is_bad]
    if bad:
        raise ValueError(f"GPT.from_hf cannot reproduce this model ({', '.join(bad)}); it supports {supported}")


def _require_block(config: GPTConfig, block: dict, kind: str) -> None:
    differ = [f"{k}={getattr(config, k)!r} (needs {v!r})" for k, v in block.items() if getattr(config, k) != v]
    if differ:
        raise ValueError(f"to_hf: with positions={config.positions!r} the model would be a {kind}, which has no "
                         f"{', '.join(differ)}; Hugging Face has the GPT-2 block (learned, layernorm, gelu, biases) "
                         "and the Llama block (rope, rmsnorm, swiglu), not mixes of the two")


def _special_ids(vocab: Vocab | None) -> dict[str, int | None]:
    if vocab is None:
        return {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
    return {"bos_token_id": vocab.bos_id, "eos_token_id": vocab.eos_id, "pad_token_id": vocab.pad_id}

