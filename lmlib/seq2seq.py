"""The encoder-decoder Transformer of "Attention is all you need" (Vaswani et al., 2017), from lmlib's GPT blocks.

A translation model reads a source x = x_1 .. x_S and predicts a target y = y_1 .. y_n <eos> one token at a time:

    P(y | x) = prod_{t=1}^{n+1} P(y_t | y_{<t}, x),     y_0 = <bos>

The *encoder* reads the whole source at once, every position looking at every other (no causal mask; no
position looks at a source ``<pad>``). The *decoder* is a causal language model of the target that, in every
block, also looks at the encoder's output M (one vector per source token) by *cross-attention*: its queries come
from the target, its keys and values from the source,

    CrossAttention(X, M) = softmax((X W_Q)(M W_K)^T / sqrt(d_k) + M_pad) (M W_V),    M_pad = -inf at source <pad>

(multi-headed as self-attention is). With E the token embedding (one matrix for source, target and output) and
P_enc, P_dec learned position embeddings:

    H^0 = Norm_emb(c E[x] + P_enc)                           c = sqrt(d_model) with scale_embedding, else 1
    H   <- H + SelfAttn(Norm(H));   H <- H + MLP(Norm(H))                          encoder block, n_encoder_layers times
    X^0 = Norm_emb(c E[y_{<t}] + P_dec)
    X   <- X + CausalSelfAttn(Norm(X));  X <- X + CrossAttn(Norm(X), M);  X <- X + MLP(Norm(X))   decoder block
    P(y_t | y_{<t}, x) = softmax(E x_{t-1})                  (weight tying: the output layer is E)

That is the pre-norm layout (``norm_first=True``, GPT-2's and mBART's; each stack then ends with one more Norm,
and M is the encoder's normed output). The paper's, and BART's, is post-norm (``norm_first=False``, the
default): the norm comes after each residual sum, H <- Norm(H + SelfAttn(H)), and so on. The blocks are
lmlib.transformer's GPT-2 block (LayerNorm, GELU MLP, biases; ``Block``, ``CausalSelfAttention``, ``MLP``); the
decoder block adds ``CrossAttention`` and its norm. Where this differs from the paper it follows BART, so that the
weights map exactly onto Hugging Face's ``BartForConditionalGeneration`` (post-norm) and
``MBartForConditionalGeneration`` (pre-norm) (``lmlib.hf``): learned positions instead of sinusoids, a LayerNorm on
the embeddings (Norm_emb), GELU (its tanh form) instead of ReLU.

Training is teacher forcing, -sum_t ln P(y_t | y_{<t}, x) over the targets of a batch of (source, target) pairs
(``lmlib.train`` with ``objective = "seq2seq"``; the pairs are rows made by ``encode_pairs``).

Decoding reads the source once: ``encode`` turns the encoder's output into each decoder layer's cross-attention
keys and values (``EncoderMemory``), and each new target token then costs one query per layer against them and
against the decoder's own cache of keys and values (``DecoderState``). ``model.condition(source)`` is the model
conditioned on one source, P(y | x) as a ``lmlib.lm.LanguageModel`` of the targets with ``IncrementalDecoding``,
so ``lmlib.generate``'s greedy decoding, sampling and beam search translate with it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from lmlib.neural import NeuralLM, log_softmax
from lmlib.tokenize import BOS, EOS, PAD, Vocab
from lmlib.transformer import (
    GPT2_BLOCK,
    KV,
    Block,
    GPTConfig,
    KVCache,
    _init_weights,
    causal_mask,
    check_config,
    make_norm,
    merge_heads,
    multi_head_attention,
    split_heads,
)


@dataclass(frozen=True)
class Seq2SeqConfig:
    vocab_size: int  # len(vocab), specials included: one vocabulary for source and target
    max_positions: int = 128  # the most source tokens, and the most target tokens, the model reads
    d_model: int = 64
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    n_heads: int = 4  # h, in every attention (encoder, decoder, cross); d_k = d_model / h
    d_ff: int | None = None  # the MLP's hidden width; None: 4 d_model
    norm_first: bool = False  # False: post-norm (the paper's, BART's); True: pre-norm (GPT-2's, mBART's)
    scale_embedding: bool = False  # multiply the token embeddings by sqrt(d_model) (the paper; BART's default: no)
    dropout: float = 0.0  # on the embeddings and on each residual branch
    norm_eps: float = 1e-5
    fast: bool = True  # torch's fused attention kernel; False: lmlib.transformer's written-out attention

    def __post_init__(self):
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)

    def block_config(self) -> GPTConfig:
        """The settings of the blocks, as the ``GPTConfig`` that lmlib.transformer's modules read: the GPT-2 block
        (LayerNorm, GELU, biases) of this width."""
        return GPTConfig(self.vocab_size, block_size=self.max_positions, d_model=self.d_model,
                         n_layers=self.n_decoder_layers, n_heads=self.n_heads, d_ff=self.d_ff, dropout=self.dropout,
                         fast=self.fast, **{**GPT2_BLOCK, "norm_eps": self.norm_eps})


def check_seq2seq_config(config: Seq2SeqConfig) -> None:
    """Raise ``ValueError`` naming the first setting a Seq2Seq cannot be built with."""
    if config.n_encoder_layers < 0:
        raise ValueError(f"n_encoder_layers must be >= 0, got {config.n_encoder_layers}")
    if config.n_decoder_layers < 1:
        raise ValueError(f"n_decoder_layers must be >= 1 (the decoder's cross-attention is where it reads the "
                         f"source), got {config.n_decoder_layers}")
    if config.max_positions < 2:
        raise ValueError(f"max_positions must be >= 2 (a target is at least <bos> and one token), "
                         f"got {config.max_positions}")
    check_config(config.block_config())


# --- the blocks ---------------------------------------------------------------------------------


class CrossAttention(nn.Module):
    """MultiHead(X, M) = [head_1; ..; head_h] W_O, head_i = Attention(X W_Q^i, M W_K^i, M W_V^i): the queries
    from the decoder's vectors X, the keys and values from the encoder's output M. W_K and W_V are stacked in
    one ``kv`` layer (K rows, then V), computed once per source (``keys_values``)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_heads, self.fast = config.n_heads, config.fast
        width = config.n_heads * config.d_head
        self.q = nn.Linear(config.d_model, width, bias=config.bias)  # W_Q
        self.kv = nn.Linear(config.d_model, 2 * width, bias=config.bias)  # W_K, W_V
        self.proj = nn.Linear(width, config.d_model, bias=config.bias)  # W_O
        self.drop = nn.Dropout(config.dropout)
        # cross_attention_weights sets keep_weights for one pass: weights [B, h, T, S]
        self.keep_weights, self.weights = False, None

    def keys_values(self, memory: torch.Tensor) -> KV:
        """M [B, S, d_model] -> its keys and values, each [B, h, S, d_k]."""
        k, v = self.kv(memory).chunk(2, dim=-1)
        return split_heads(k, self.n_heads), split_heads(v, self.n_heads)

    def forward(self, x: torch.Tensor, memory: KV, source_mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, d_model], the source's keys and values, source_mask [B, 1, 1, S]
        (False at <pad>) -> [B, T, d_model]."""
        q = split_heads(self.q(x), self.n_heads)  # [B, h, T, d_k]
        # no causal mask: every target position may read the whole source
        y, weights = multi_head_attention(q, *memory, source_mask, False, self.fast,
                                          self.keep_weights)
        if self.keep_weights:
            self.weights = weights
        return self.drop(self.proj(merge_heads(y)))


class EncoderBlock(Block):
    """lmlib.transformer's ``Block`` (its norms, attention and MLP), composed pre- or post-norm:

        pre-norm:   H <- H + SelfAttn(Norm(H));  H <- H + MLP(Norm(H))
        post-norm:  H <- Norm(H + SelfAttn(H));  H <- Norm(H + MLP(H))

    The attention reads in both directions: no causal mask, only the source's padding mask."""

    def __init__(self, config: GPTConfig, norm_first: bool):
        super().__init__(config)
        self.norm_first = norm_first

    def branch_input(self, x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        """What a sub-layer reads: Norm(x) (pre-norm), or x itself (post-norm)."""
        return norm(x) if self.norm_first else x

    def residual(self, x: torch.Tensor, branch: torch.Tensor,
                 norm: nn.Module) -> torch.Tensor:
        """The sub-layer's output ``branch`` added back: x + branch (pre-norm),
        or Norm(x + branch) (post-norm)."""
        return x + branch if self.norm_first else norm(x + branch)

    def forward(self, x: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        """x [B, S, d_model], source_mask [B, 1, 1, S] -> [B, S, d_model]."""
        attended, _ = self.attn(self.branch_input(x, self.attn_norm), None, source_mask, False)
        x = self.residual(x, attended, self.attn_norm)
        return self.residual(x, self.mlp(self.branch_input(x, self.mlp_norm)), self.mlp_norm)


class DecoderBlock(EncoderBlock):
    """The encoder block with causal self-attention and, between it and the MLP, cross-attention over the
    encoder's output (with its own norm, ``cross_norm``)."""

    def __init__(self, config: GPTConfig, norm_first: bool):
        super().__init__(config, norm_first)
        self.cross_norm, self.cross_attn = make_norm(config), CrossAttention(config)

    def forward(self, x: torch.Tensor, memory: KV, source_mask: torch.Tensor,
                mask: torch.Tensor | None, is_causal: bool,
                past: KV | None = None) -> tuple[torch.Tensor, KV]:
        """x [B, T, d_model] (read after ``past``, the keys and values of the target tokens
        before them) -> ([B, T, d_model], the self-attention's keys and values, past
        included)."""
        attended, kv = self.attn(self.branch_input(x, self.attn_norm), None, mask, is_causal,
                                 past)
        x = self.residual(x, attended, self.attn_norm)
        crossed = self.cross_attn(self.branch_input(x, self.cross_norm), memory, source_mask)
        x = self.residual(x, crossed, self.cross_norm)
        mlp = self.mlp(self.branch_input(x, self.mlp_norm))
        return self.residual(x, mlp, self.mlp_norm), kv


# --- what decoding carries ----------------------------------------------------------------------


@dataclass
class EncoderMemory:
    """What the decoder reads of a batch of sources: per decoder layer, the cross-attention's keys and values of
    the encoder's output [B, h, S, d_k], and the source padding mask [B, 1, 1, S] (False at <pad>)."""

    layers: list[KV]
    source_mask: torch.Tensor

    def reorder(self, rows: torch.Tensor) -> EncoderMemory:
        return EncoderMemory([(k[rows], v[rows]) for k, v in self.layers], self.source_mask[rows])

    def expand(self, rows: int) -> EncoderMemory:
        """One source's memory ([1, ..]) seen as ``rows`` identical rows (views, no copies)."""
        def wide(t: torch.Tensor) -> torch.Tensor:
            return t.expand(rows, *t.shape[1:])

        return EncoderMemory([(wide(k), wide(v)) for k, v in self.layers], wide(self.source_mask))


@dataclass
class DecoderState:
    """The decoder's state: the sources' memory and the keys and values of the target tokens read so far
    (None: none yet)."""

    memory: EncoderMemory
    cache: KVCache | None = None

    @property
    def length(self) -> int:
        """Target tokens read: the next one's position."""
        return 0 if self.cache is None else self.cache.length

    def reorder(self, rows: torch.Tensor) -> DecoderState:
        return DecoderState(self.memory.reorder(rows), None if self.cache is None else self.cache.reorder(rows))


# --- the model ----------------------------------------------------------------------------------


class Seq2Seq(NeuralLM):
    """An encoder-decoder Transformer. ``model(source, target)`` maps [B, S] source ids and [B, T] target ids
    (``<bos> y_1 ..``) to [B, T, V] logits, position t predicting the target token after target[:, t]: what
    ``lmlib.train`` trains (``objective = "seq2seq"``, on ``encode_pairs`` rows).

    Sources are right-padded with ``<pad>`` (a source row ends with ``<eos>``: ``encode_pairs``); without a
    vocabulary (``Seq2Seq.from_hf(model)``) pass ``source_mask``, as Hugging Face's ``attention_mask``. The
    model itself is not a language model: ``model.condition(source_tokens)`` is P(y | x) for one source.
    """

    config_class = Seq2SeqConfig
    objective = "seq2seq"  # how lmlib.train scores it: rows of (source, target) pairs

    def __init__(self, config: Seq2SeqConfig, vocab: Vocab | None = None):
        super().__init__()
        check_seq2seq_config(config)
        self.register_vocab(vocab, config.vocab_size)  # <pad>, <bos>: logit -inf, never predicted
        self.config = config
        block, d = config.block_config(), config.d_model
        self.token_embedding = nn.Embedding(config.vocab_size, d)  # E: source, target and output
        self.embedding_scale = math.sqrt(d) if config.scale_embedding else 1.0
        self.encoder_positions = nn.Embedding(config.max_positions, d)
        self.decoder_positions = nn.Embedding(config.max_positions, d)
        self.encoder_embedding_norm, self.decoder_embedding_norm = make_norm(block), make_norm(block)
        self.drop = nn.Dropout(config.dropout)
        self.encoder_blocks = nn.ModuleList(EncoderBlock(block, config.norm_first)
                                            for _ in range(config.n_encoder_layers))
        self.decoder_blocks = nn.ModuleList(DecoderBlock(block, config.norm_first)
                                            for _ in range(config.n_decoder_layers))
        # Pre-norm leaves the last block's sum un-normed: each stack ends with one more norm (GPT's final_norm).
        self.encoder_final_norm = make_norm(block) if config.norm_first else None
        self.decoder_final_norm = make_norm(block) if config.norm_first else None
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)  # W_out = E
        self.lm_head.weight = self.token_embedding.weight
        self.apply(_init_weights)  # GPT-2's (and BART's): N(0, 0.02) weights, zero biases

    def forward(self, source: torch.Tensor, target: torch.Tensor,
                source_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, S] source ids, [B, T] target ids -> [B, T, V] logits of the target token after each position."""
        h, _ = self.hidden_states(target, DecoderState(self.encode(source, source_mask)))
        return self.logits(h)

    def encode(self, source: torch.Tensor, source_mask: torch.Tensor | None = None) -> EncoderMemory:
        """Read [B, S] source ids (``source_mask`` [B, S] True at real tokens; default: not ``<pad>``) -> each
        decoder layer's cross-attention keys and values of the encoder's output, and the padding mask."""
        if source.ndim != 2 or source.shape[1] == 0:
            raise ValueError(f"the source must be [B, S] ids with S >= 1, got shape {tuple(source.shape)}: "
                             "an empty source has nothing to translate")
        if source.shape[1] > self.config.max_positions:
            raise ValueError(f"the source has {source.shape[1]} tokens but the model reads at most "
                             f"max_positions={self.config.max_positions}: shorten it, or train a model with more "
                             "positions")
        if source_mask is None:
            source_mask = source != self.require_vocab("encode without a source_mask").pad_id
        if not bool(source_mask.any(dim=1).all()):
            raise ValueError("a source row is all padding: every source needs at least one token")
        mask = source_mask[:, None, None, :]  # [B, 1, 1, S]
        h = self.embed(source, self.encoder_positions, self.encoder_embedding_norm, 0)  # [B, S, d_model]
        for block in self.encoder_blocks:
            h = block(h, mask)
        if self.encoder_final_norm is not None:
            h = self.encoder_final_norm(h)
        return EncoderMemory([block.cross_attn.keys_values(h) for block in self.decoder_blocks], mask)

    def embed(self, ids: torch.Tensor, positions: nn.Embedding, norm: nn.Module, start: int) -> torch.Tensor:
        """[B, T] ids at positions start .. start + T - 1 -> [B, T, d_model]: Norm_emb(c E[ids] + P[positions])."""
        where = torch.arange(start, start + ids.shape[1], device=ids.device)
        return self.drop(norm(self.token_embedding(ids) * self.embedding_scale + positions(where)))

    def hidden_states(self, ids: torch.Tensor, state: DecoderState | None = None) -> tuple[torch.Tensor, DecoderState]:
        """[B, T] target ids read after the tokens in ``state`` (which holds the sources' ``EncoderMemory``) ->
        ([B, T, d_model] the decoder's final vectors, the state after them)."""
        if not isinstance(state, DecoderState):
            raise TypeError("the decoder reads a target given a source: pass DecoderState(model.encode(source)), "
                            "or decode with model.condition(source_tokens)")
        start = state.length
        if start + ids.shape[1] > self.config.max_positions:
            raise ValueError(f"the decoder reads at most max_positions={self.config.max_positions} target tokens, "
                             f"got {start + ids.shape[1]}: decode with max_tokens <= "
                             f"{self.config.max_positions - 1} (the <bos> takes a position)")
        memory = state.memory
        if memory.source_mask.shape[0] != ids.shape[0]:
            raise ValueError(f"{ids.shape[0]} target rows for {memory.source_mask.shape[0]} sources")
        x = self.embed(ids, self.decoder_positions, self.decoder_embedding_norm, start)  # [B, T, d_model]
        T = ids.shape[1]
        if start == 0:
            mask, is_causal = None, True  # the fused kernel's own causal mask
        elif T == 1:
            mask, is_causal = None, False  # one new token may look at every token read
        else:
            mask, is_causal = causal_mask(T, start + T, ids.device), False  # the new tokens are the last T
        layers = []
        for i, block in enumerate(self.decoder_blocks):
            past = None if state.cache is None else state.cache.layers[i]
            x, kv = block(x, memory.layers[i], memory.source_mask, mask, is_causal, past)
            layers.append(kv)
        if self.decoder_final_norm is not None:
            x = self.decoder_final_norm(x)
        return x, DecoderState(memory, KVCache(layers, start + T))

    def output(self, h: torch.Tensor) -> torch.Tensor:
        """[..., d_model] -> [..., V] logits W_out h."""
        return self.lm_head(h)

    # --- the language model of the targets of one source --------------------------------------

    def condition(self, source: Sequence[str]) -> ConditionalLM:
        """The model conditioned on one source (a list of tokens; ``<eos>`` is added):
        P(y | x) as a LanguageModel with IncrementalDecoding, which ``lmlib.generate``
        decodes. A token not in the vocabulary is an error (a character the model never read
        would be ``<unk>``, which stands for every such character: the translation would be
        a guess)."""
        ids = torch.tensor([self.source_ids(source)], device=self.lm_head.weight.device)
        return ConditionalLM(self, ids)  # encodes the source once

    def source_ids(self, source: Sequence[str]) -> list[int]:
        """One source's ids as the encoder reads them, ``<eos>`` added; checked as ``condition`` checks it."""
        vocab = self.require_vocab("source_ids")
        if isinstance(source, str):
            raise TypeError(f"source must be a list of tokens, e.g. {list(source[:8])!r}, not the str {source!r}: "
                            "tokenize it as the training sources were (lmlib.numerals.tokenize)")
        if len(source) == 0:
            raise ValueError("the source is empty: there is nothing to translate")
        unknown = sorted({t for t in source if t not in vocab.stoi})
        if unknown:
            raise ValueError(f"source tokens not in the model's vocabulary: {unknown}; the model was trained on "
                             f"{len(vocab) - 4} tokens (model.vocab.itos)")
        specials = sorted({t for t in source if t in (PAD, BOS, EOS)})
        if specials:
            raise ValueError(f"the source may not contain {specials}: <eos> is added after it")
        return [*vocab.encode(source), vocab.eos_id]

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        raise TypeError(self._needs_source("sequence_logprobs"))

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        raise TypeError(self._needs_source("next_token_logprobs"))

    @staticmethod
    def _needs_source(method: str) -> str:
        return (f"{method}: a Seq2Seq model predicts a target given a source; model.condition(source_tokens) is the "
                "language model of the targets of that source (score, generate and beam-search with it)")

    # --- training data: (source, target) rows -------------------------------------------------

    def pair_inputs(self, rows: torch.Tensor
                    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``encode_pairs`` rows [B, L] -> ((source [B, S], decoder input [B, T]),
        targets [B, T]): the decoder reads ``<bos> y_1 .. y_n`` and predicts
        ``y_1 .. y_n <eos>`` (teacher forcing). What ``lmlib.train`` calls for a batch."""
        source, target = split_pair_rows(rows, self.require_vocab("pair_inputs"))
        return (source, target[:, :-1]), target[:, 1:]

    @torch.no_grad()
    def pairs_logprob(self, rows: torch.Tensor, batch_size: int = 32) -> tuple[float, int]:
        """(sum of ln P(y_t | y_{<t}, x), number of target tokens) over ``encode_pairs`` rows: every target
        token and each target's ``<eos>`` (what ``lmlib.train`` evaluates)."""
        total, count = 0.0, 0
        for batch in rows.split(batch_size):
            (source, inputs), targets = self.pair_inputs(batch.to(self.lm_head.weight.device))
            h, _ = self.hidden_states(inputs, DecoderState(self.encode(source)))
            total += self.target_logprobs(h, targets).double().sum().item()
            count += int((targets != self.vocab.pad_id).sum())
        return total, count

    # --- Hugging Face interop (lmlib.hf) -------------------------------------------------------

    @classmethod
    def from_hf(cls, model: nn.Module, vocab: Vocab | None = None) -> Seq2Seq:
        """``lmlib.hf.seq2seq_from_hf``: the Seq2Seq with the weights of a ``BartForConditionalGeneration`` or
        ``MBartForConditionalGeneration``."""
        from lmlib.hf import seq2seq_from_hf

        return seq2seq_from_hf(model, vocab)

    def to_hf(self) -> nn.Module:
        """``lmlib.hf.seq2seq_to_hf``: this model as a ``BartForConditionalGeneration`` (post-norm) or
        ``MBartForConditionalGeneration`` (pre-norm)."""
        from lmlib.hf import seq2seq_to_hf

        return seq2seq_to_hf(self)


class ConditionalLM(nn.Module):
    """A ``Seq2Seq`` conditioned on one source x: P(y | x) as a ``lmlib.lm.LanguageModel`` of the targets, with
    ``IncrementalDecoding``. The source is encoded once, here; ``decode_step`` reads target tokens after a
    ``DecoderState`` whose memory is that one source's, seen as many times as there are rows (beams, samples).

    It is a module holding the model, so the tools find the model's device; it is no ``NeuralLM`` (it has no
    config of its own: ``Seq2Seq.condition`` makes it).
    """

    def __init__(self, model: Seq2Seq, source: torch.Tensor):
        super().__init__()
        self.model, self.vocab, self.source = model, model.vocab, source  # source [1, S]
        with torch.no_grad():
            self.memory = model.encode(source)

    def start(self, rows: int) -> DecoderState:
        """The decoder's state before any target token, for ``rows`` rows."""
        return DecoderState(self.memory.expand(rows))

    @torch.no_grad()
    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] targets ``<bos> y_1 .. <eos> <pad>..`` -> [B, T-1]: ln P(ids[t] | ids[:t], x); 0 at ``<pad>``."""
        ids = ids.to(self.source.device)
        h, _ = self.model.hidden_states(ids[:, :-1], self.start(ids.shape[0]))
        return self.model.target_logprobs(h, ids[:, 1:])

    @torch.no_grad()
    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        """[B, T] target prefixes (rows start with ``<bos>``) -> [B, V] ln P(next target token | prefix, x)."""
        return self.decode_step(contexts, None)[0]

    @torch.no_grad()
    def decode_step(self, ids: torch.Tensor, cache: DecoderState | None) -> tuple[torch.Tensor, DecoderState]:
        """Read ``ids`` after the target tokens in ``cache`` (None: ``ids`` is the whole prefix) -> ([B, V] next-token
        log-probabilities, the state after them): each new token costs one query per layer."""
        ids = ids.to(self.source.device)
        h, state = self.model.hidden_states(ids, self.start(ids.shape[0]) if cache is None else cache)
        return log_softmax(self.model.logits(h[:, -1])), state

    def reorder_cache(self, cache: DecoderState, rows: torch.Tensor) -> DecoderState:
        return cache.reorder(rows.to(self.source.device))


@torch.no_grad()
def cross_attention_weights(model: Seq2Seq, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B, S] source and [B, T] target ids -> [B, n_decoder_layers, h, T, S]: how much each target position's query
    weighs each source token in every decoder layer and head (what the chapter plots as an alignment)."""
    layers = [block.cross_attn for block in model.decoder_blocks]
    for attn in layers:
        attn.keep_weights = True
    try:
        model(source, target)
        return torch.stack([attn.weights for attn in layers], dim=1)
    finally:
        for attn in layers:
            attn.keep_weights, attn.weights = False, None



@torch.no_grad()
def greedy_translate(model: Seq2Seq, sources: Sequence[Sequence[str]], max_tokens: int = 40,
                     batch_size: int = 512) -> list[list[str]]:
    """The greedy translation of each source (a list of tokens), ``batch_size`` sources at a time: the tokens
    ``lmlib.generate.greedy(model.condition(source), max_tokens=max_tokens)`` gives one source at a time (the
    most probable next token, ties to the lowest id, until ``<eos>`` or ``max_tokens``), with one model call
    per step for the whole batch. The sources of a batch are right-padded, and the padding mask keeps every
    source's translation its own."""
    vocab = model.require_vocab("greedy_translate")
    device = model.lm_head.weight.device
    translations = []
    for start in range(0, len(sources), batch_size):
        batch = [torch.tensor(model.source_ids(source), device=device)
                 for source in sources[start : start + batch_size]]
        ids = torch.full((len(batch), max(map(len, batch))), vocab.pad_id, dtype=torch.long, device=device)
        for i, source in enumerate(batch):
            ids[i, : len(source)] = source
        state = DecoderState(model.encode(ids))
        token = torch.full((len(batch), 1), vocab.bos_id, dtype=torch.long, device=device)
        steps, done = [], torch.zeros(len(batch), dtype=torch.bool, device=device)
        for _ in range(max_tokens):
            h, state = model.hidden_states(token, state)
            token = model.logits(h[:, -1]).argmax(dim=-1, keepdim=True)  # [B, 1]; ties: the first, lowest id
            steps.append(token[:, 0])
            done |= token[:, 0] == vocab.eos_id
            if bool(done.all()):
                break
        for row in torch.stack(steps, dim=1).tolist():
            out = row[: row.index(vocab.eos_id)] if vocab.eos_id in row else row
            translations.append(vocab.decode(out))
    return translations


# --- (source, target) pairs as rows -------------------------------------------------------------


def encode_pairs(vocab: Vocab, pairs: Sequence[tuple[Sequence[str], Sequence[str]]],
                 max_positions: int | None = None) -> torch.Tensor:
    """(source tokens, target tokens) pairs -> [N, S + T] ids, one pair a row:

        x_1 .. x_m <eos> <pad> ..   <bos> y_1 .. y_n <eos> <pad> ..
        |------- S columns -------| |---------- T columns ---------|

    Every source is padded to the same S columns, so the ``<bos>`` column splits every row
    (``split_pair_rows``). Tokens not in ``vocab`` become ``<unk>`` (as in ``lmlib.train.encode_stream``);
    ``max_positions``: refuse a source or target the model could not read.
    """
    if not pairs:
        raise ValueError("no pairs to encode")
    empty = next((i for i, (x, y) in enumerate(pairs) if not len(x) or not len(y)), None)
    if empty is not None:
        raise ValueError(f"pair {empty} has an empty source or target: {pairs[empty]!r}")
    sources = [[*vocab.encode(x), vocab.eos_id] for x, _ in pairs]
    targets = [[vocab.bos_id, *vocab.encode(y), vocab.eos_id] for _, y in pairs]
    S, T = max(map(len, sources)), max(map(len, targets))
    if max_positions is not None and max(S, T - 1) > max_positions:
        raise ValueError(f"a pair needs {S} source or {T - 1} target positions, more than max_positions="
                         f"{max_positions}: drop the long pairs or give the model more positions")
    rows = torch.full((len(pairs), S + T), vocab.pad_id, dtype=torch.long)
    for i, (x, y) in enumerate(zip(sources, targets, strict=True)):
        rows[i, : len(x)], rows[i, S : S + len(y)] = torch.tensor(x), torch.tensor(y)
    return rows


def split_pair_rows(rows: torch.Tensor, vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
    """``encode_pairs`` rows [B, L] -> (sources [B, S], targets [B, T] ``<bos> y <eos>``), each cut after its last
    column that is not all padding (a batch of short pairs reads fewer positions)."""
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError(f"pair rows must be a non-empty [N, L] tensor (lmlib.seq2seq.encode_pairs), got shape "
                         f"{tuple(rows.shape)}")
    split = int((rows[0] == vocab.bos_id).nonzero()[0]) if (rows[0] == vocab.bos_id).any() else 0
    if split == 0 or not bool((rows[:, split] == vocab.bos_id).all()):
        raise ValueError("these are not encode_pairs rows: every row needs its target's <bos> in the same column, "
                         "after a source of at least one token")
    return _trim(rows[:, :split], vocab.pad_id), _trim(rows[:, split:], vocab.pad_id)


def _trim(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Drop the trailing columns that hold only ``<pad>``."""
    used = (ids != pad_id).any(dim=0).nonzero()
    return ids[:, : int(used[-1]) + 1]
