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

This file is the network. ``GPT.hidden_states(ids, past)`` reads ids after a ``KVCache`` (the keys
and values of the tokens already read, per layer); ``lmlib.neural.WindowedLM`` turns that into
scoring with a sliding window over texts longer than ``block_size`` and decoding one token at a
time (``IncrementalDecoding``, which ``lmlib.generate`` uses). ``lmlib.hf`` moves the weights to and
from Hugging Face's ``GPT2LMHeadModel`` and ``LlamaForCausalLM`` exactly (``GPT.from_hf``, ``GPT.to_hf``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmlib.neural import WindowedLM
from lmlib.tokenize import Vocab

# The Llama-style block (GPTConfig.modern; the recipes of lmlib.course.recipes use it): rotary positions,
# RMSNorm, SwiGLU, no biases.
MODERN_BLOCK = {"positions": "rope", "norm": "rmsnorm", "mlp": "swiglu", "bias": False, "norm_eps": 1e-6}
# GPT-2's block: GPTConfig's defaults.
GPT2_BLOCK = {"positions": "learned", "norm": "layernorm", "mlp": "gelu", "bias": True, "norm_eps": 1e-5}


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int  # len(vocab), specials included (or the Hugging Face model's vocabulary size)
    block_size: int = 128  # the context window: the most tokens the model reads at once
    d_model: int = 64  # the width of each position's vector
    n_layers: int = 2  # 0: no blocks, logits from each token's own embedding (with positions="none": a bigram)
    n_heads: int = 4  # h; each head has width d_k = d_model / h
    n_kv_heads: int | None = None  # key/value heads, h_kv (h_kv < h: grouped-query attention); None: set to h
    d_ff: int | None = None  # the MLP's hidden width; None: set to 4 d_model (GELU) or about 8/3 d_model (SwiGLU)
    positions: str = "learned"  # "learned" absolute positions (GPT-2), "rope" (rotary) or "none"
    norm: str = "layernorm"  # "layernorm" or "rmsnorm"
    mlp: str = "gelu"  # "gelu" (GPT-2's tanh approximation), "swiglu", or "none" (attention-only blocks)
    bias: bool = True  # biases in the linear layers and in LayerNorm
    tie_weights: bool = True  # the output layer is the token embedding
    dropout: float = 0.0  # on the embeddings and on each residual branch
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0  # RoPE's base: head coordinate pair i turns by t * theta^(-2i/d_k) at position t
    reset_at_bos: bool = False  # attention and positions restart at each <bos> of a training stream
    window_stride: int = 1  # s: past block_size tokens, the window moves s tokens at a time (WindowedLM.window_start)
    fast: bool = True  # torch's fused F.scaled_dot_product_attention; False: the function written below

    def __post_init__(self):
        """The defaults that depend on other fields, set once: a config holds the numbers the model uses.
        (``dataclasses.replace`` keeps them: give n_kv_heads or d_ff again when changing n_heads or d_model.)"""
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        if self.d_ff is None:
            # SwiGLU has three matrices, not two: 2/3 of 4 d_model keeps the parameter count (rounded up to 8s).
            gelu = self.mlp == "gelu"
            object.__setattr__(self, "d_ff", 4 * self.d_model if gelu else 8 * math.ceil(self.d_model / 3))

    @classmethod
    def modern(cls, vocab_size: int, **settings) -> GPTConfig:
        """The Llama-style block, ``MODERN_BLOCK`` (``settings`` override any field)."""
        return cls(vocab_size, **{**MODERN_BLOCK, **settings})

    @property
    def d_head(self) -> int:
        """d_k, the width of one head."""
        return self.d_model // self.n_heads


def check_config(config: GPTConfig) -> None:
    """Raise ``ValueError`` naming the first setting a GPT cannot be built with."""
    choices = {"positions": ("learned", "rope", "none"), "norm": ("layernorm", "rmsnorm"),
               "mlp": ("gelu", "swiglu", "none")}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")
    if config.n_layers < 0:
        raise ValueError(f"n_layers must be >= 0, got {config.n_layers}")
    for name in ("vocab_size", "block_size", "d_model", "n_heads", "n_kv_heads", "d_ff"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.d_model % config.n_heads:
        raise ValueError(f"n_heads={config.n_heads} does not divide d_model={config.d_model}: each head gets "
                         f"d_model / n_heads dimensions; choose n_heads among {_divisors(config.d_model)}")
    if config.n_heads % config.n_kv_heads:
        raise ValueError(f"n_kv_heads={config.n_kv_heads} does not divide n_heads={config.n_heads}: each key/value "
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

    q [..., T_q, d_k], k [..., T_k, d_k], v [..., T_k, d_v] -> [..., T_q, d_v]: row i
    is the average of the rows of V weighted by ``attention_probs``, query i's weights.
    """
    return attention_probs(q, k, mask) @ v  # [..., T_q, d_v]: the weights multiply V


def attention_probs(q: torch.Tensor, k: torch.Tensor,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """The attention weights softmax(Q K^T / sqrt(d_k)): q [..., T_q, d_k],
    k [..., T_k, d_k] -> [..., T_q, T_k], row i query i's distribution over the keys.

    ``mask`` (bool, broadcastable to [..., T_q, T_k]) is True where query i may look at
    key j; the other scores become -inf, so their weights are 0. Dividing by sqrt(d_k)
    keeps the scores' spread about 1 whatever the width (when q's and k's coordinates
    have variance about 1), so the softmax does not saturate. A query that may look at
    no key at all has no defined weights (NaN).
    """
    d_k = q.shape[-1]
    # [..., T_q, T_k]: how well query i matches key j
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)  # [..., T_q, T_k], each row sums to 1


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
                         is_causal: bool, fast: bool,
                         need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every head at once: q [B, h, T_q, d_k], k and v [B, h_kv, T_k, d_k] -> ([B, h, T_q, d_k], the
    weights [B, h, T_q, T_k] if ``need_weights``, else None).

    ``mask`` and ``is_causal`` mean what they mean to ``F.scaled_dot_product_attention``
    (``is_causal`` only with T_q = T_k); ``fast`` runs that fused kernel, otherwise the functions above.
    The fused kernel does not return its weights: ``need_weights`` takes them from ``attention_probs``
    on the same q, k and mask.
    """
    groups = q.shape[1] // k.shape[1]
    if fast:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=groups > 1)
        if not need_weights:
            return y, None
    if is_causal:
        mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
    weights = attention_probs(q, repeat_kv(k, groups), mask)  # [B, h, T_q, T_k]
    if not fast:
        y = weights @ repeat_kv(v, groups)  # scaled_dot_product_attention
    return y, weights if need_weights else None


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
        width = config.d_ff
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
            config.n_heads, config.n_kv_heads, config.fast)
        # Q, K, V
        self.widths = [config.n_heads * config.d_head,
                       *[config.n_kv_heads * config.d_head] * 2]
        self.qkv = nn.Linear(config.d_model, sum(self.widths), bias=config.bias)
        # W_O
        self.proj = nn.Linear(config.n_heads * config.d_head, config.d_model,
                              bias=config.bias)
        self.drop = nn.Dropout(config.dropout)
        # attention_weights sets keep_weights for one pass: weights [B, h, T_q, T_k]
        self.keep_weights, self.weights = False, None

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None, is_causal: bool,
                past: KV | None = None) -> tuple[torch.Tensor, KV]:
        """x [B, T, d_model] -> ([B, T, d_model], the keys and values of the past and
        these T tokens)."""
        q, k, v = self.queries_keys_values(x, rope)
        if past is not None:  # the tokens read before: their keys and values were cached
            # [B, h_kv, T_past + T, d_k]
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        # [B, h, T, d_k]
        y, weights = multi_head_attention(q, k, v, mask, is_causal, self.fast,
                                          self.keep_weights)
        if self.keep_weights:
            self.weights = weights
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
    """GPT's state after reading T tokens: per layer, their keys and values [B, h_kv, T, d_k]."""

    layers: list[KV]
    length: int  # T: the next token's position

    def reorder(self, rows: torch.Tensor) -> KVCache:
        return KVCache([(k[rows], v[rows]) for k, v in self.layers], self.length)


# --- the model --------------------------------------------------------------------------------


class GPT(WindowedLM):
    """A decoder-only Transformer language model. The network: embeddings, blocks, final norm, output
    layer; scoring, the sliding window and decoding with the KV cache come from ``lmlib.neural.WindowedLM``
    (W = ``block_size``, s = ``window_stride``). With a course ``Vocab`` it is a ``lmlib.lm.LanguageModel``
    with ``IncrementalDecoding``.

    ``model(ids)`` maps [B, T] ids (T <= block_size) to [B, T, V] logits, position t predicting the
    token after ids[:, t]: what ``lmlib.train`` trains. With a vocabulary, ``<pad>`` and ``<bos>`` get
    logit -inf (never predicted), as in lmlib's other models. Without one (``GPT.from_hf(model)``,
    ``vocab`` None) the model gives logits (``model(ids)``) and reads ids incrementally
    (``decode_step``), but it is no LanguageModel and lmlib's tools refuse it.
    """

    config_class = GPTConfig

    def __init__(self, config: GPTConfig, vocab: Vocab | None = None):
        super().__init__()
        check_config(config)
        if config.reset_at_bos and vocab is None:
            raise ValueError("reset_at_bos needs a vocabulary: it restarts at the vocabulary's <bos>")
        self.register_vocab(vocab, config.vocab_size)  # <pad>, <bos>: logit -inf, softmax over |V| tokens
        self.config = config
        self.window, self.window_stride = config.block_size, config.window_stride
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
                      past: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """[B, T] ids read after the cached ``past`` (None: from the start) ->
        [B, T, d_model] the final normed vectors, and the cache after them (every
        layer's keys and values, past included)."""
        start = 0 if past is None else past.length
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
        return self.final_norm(x), KVCache(layers, start + ids.shape[1])

    def _layout(self, ids: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
        """Positions ([T] or [B, T]), attention mask and is_causal for T tokens read after ``start`` cached ones."""
        T = ids.shape[1]
        if start == 0 and self.reads_apart(ids):
            return sentence_positions(ids, self.vocab.bos_id), sentence_mask(ids, self.vocab.bos_id), False
        positions = torch.arange(start, start + T, device=ids.device)
        if start == 0:
            return positions, None, True  # the fused kernel's own causal mask
        if T == 1:
            return positions, None, False  # one new token may look at everything read
        return positions, causal_mask(T, start + T, ids.device), False

    def reads_apart(self, ids: torch.Tensor) -> bool:
        """With ``reset_at_bos``: whether a ``<bos>`` after the first position starts a sentence that
        attention and positions restart at (``_layout``; ``decode_step`` then re-reads the window)."""
        return (self.config.reset_at_bos and ids.shape[1] > 1
                and bool((ids[:, 1:] == self.vocab.bos_id).any()))

    def output(self, h: torch.Tensor) -> torch.Tensor:
        """[..., d_model] -> [..., V] logits W_out h."""
        return self.lm_head(h)

    # --- Hugging Face interop (lmlib.hf) ---------------------------------------------------------

    @classmethod
    def from_hf(cls, model: nn.Module, vocab: Vocab | None = None) -> GPT:
        """``lmlib.hf.gpt_from_hf``: the GPT with the weights of a ``GPT2LMHeadModel`` or ``LlamaForCausalLM``."""
        from lmlib.hf import gpt_from_hf

        return gpt_from_hf(model, vocab)

    def to_hf(self) -> nn.Module:
        """``lmlib.hf.gpt_to_hf``: this GPT as a ``GPT2LMHeadModel`` or ``LlamaForCausalLM``."""
        from lmlib.hf import gpt_to_hf

        return gpt_to_hf(self)


@torch.no_grad()
def attention_weights(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    """[B, T] ids (T <= block_size) -> [B, n_layers, h, T, T]: every head's weights softmax(Q K^T / sqrt(d_k) + M),
    row i the distribution of query i over the keys, as the model computes them when it reads ``ids``.

    Each attention layer keeps its weights for one pass (``keep_weights``): ``multi_head_attention`` gives
    them, from the queries, keys and mask the layer attends with.
    """
    if not model.blocks:
        raise ValueError("this GPT has n_layers=0: no attention, so no attention weights")
    layers = [block.attn for block in model.blocks]
    for attn in layers:
        attn.keep_weights = True
    try:
        model.hidden_states(ids)
        return torch.stack([attn.weights for attn in layers], dim=1)
    finally:
        for attn in layers:
            attn.keep_weights, attn.weights = False, None


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: N(0, 0.02) weights and embeddings, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
