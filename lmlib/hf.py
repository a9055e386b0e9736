"""Hugging Face interop: lmlib's GPT to and from ``GPT2LMHeadModel`` and ``LlamaForCausalLM``, its encoder-decoder
(``lmlib.seq2seq.Seq2Seq``) to and from ``BartForConditionalGeneration`` and ``MBartForConditionalGeneration``.

``gpt_from_hf(model, vocab)`` builds the lmlib ``GPT`` with the same weights (the same logits),
``gpt_to_hf(gpt)`` the Hugging Face model; both directions are exact (tests/test_transformer.py checks
the logits against Hugging Face's and the round trips). ``GPT.from_hf`` and ``GPT.to_hf`` call them.
A weight table (``gpt2_weight_names``, ``llama_weight_names``) names, for each lmlib tensor, the
Hugging Face tensors it is made of; a pair of config functions per architecture maps the settings
and refuses the options lmlib does not model.

The encoder-decoder: ``seq2seq_from_hf`` and ``seq2seq_to_hf`` (``Seq2Seq.from_hf``, ``Seq2Seq.to_hf``), exact in
both directions too (tests/test_seq2seq.py: logits with padded sources, and ``generate``'s greedy and beam
search). BART is the post-norm layout (``norm_first=False``), mBART the pre-norm one; both have learned positions
and a LayerNorm on the embeddings, which lmlib's ``Seq2Seq`` has for that reason.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lmlib._deps import require
from lmlib.neural import never_predicted_mask
from lmlib.seq2seq import Seq2Seq, Seq2SeqConfig
from lmlib.tokenize import Vocab
from lmlib.transformer import GPT, GPT2_BLOCK, MODERN_BLOCK, GPTConfig


def gpt_from_hf(model: nn.Module, vocab: Vocab | None = None) -> GPT:
    """The same network as a Hugging Face ``GPT2LMHeadModel`` or ``LlamaForCausalLM``, with its weights
    (same logits, same dtype and device; in eval mode).

    ``vocab``: the course ``Vocab`` whose ids the model was trained on (e.g. a model saved by
    ``gpt_to_hf``); then the result is a LanguageModel. Without it the result is a bare network:
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
    ours = GPT(config, vocab).to(like.device, like.dtype)
    names = HF_ARCHITECTURES[kind]["weight_names"](config)
    ours.load_state_dict(_weights_from_hf(model.state_dict(), names))
    return ours.eval()


def gpt_to_hf(gpt: GPT) -> nn.Module:
    """``gpt`` as a Hugging Face ``GPT2LMHeadModel`` (the GPT-2 block) or ``LlamaForCausalLM`` (the
    modern block): the same weights and logits (bar the -inf of the never-predicted tokens).

    The HF model has no ``reset_at_bos`` (same outputs on rows with one leading ``<bos>``, as in
    scoring and decoding) and no residual dropout in Llama.
    """
    kind = "GPT2LMHeadModel" if gpt.config.positions == "learned" else "LlamaForCausalLM"
    hf_config = HF_ARCHITECTURES[kind]["config_to_hf"](gpt.config, gpt.vocab)
    weight = gpt.lm_head.weight
    theirs = getattr(require("transformers"), kind)(hf_config).to(weight.device, weight.dtype)
    names = HF_ARCHITECTURES[kind]["weight_names"](gpt.config)
    theirs.load_state_dict(_weights_to_hf(gpt.state_dict(), theirs.state_dict(), names))
    return theirs.eval()


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
    block = {**{k: GPT2_BLOCK[k] for k in ("norm", "mlp", "bias")}, "n_kv_heads": config.n_heads}
    _require_block(config, block, "GPT2LMHeadModel")
    n_inner = None if config.d_ff == 4 * config.d_model else config.d_ff  # None: HF's default, 4 n_embd
    return require("transformers").GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.d_model, n_layer=config.n_layers,
        n_head=config.n_heads, n_inner=n_inner, activation_function="gelu_new", layer_norm_epsilon=config.norm_eps,
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
    return GPTConfig.modern(hf.vocab_size, block_size=hf.max_position_embeddings, d_model=hf.hidden_size,
                            n_layers=hf.num_hidden_layers, n_heads=hf.num_attention_heads,
                            n_kv_heads=hf.num_key_value_heads, d_ff=hf.intermediate_size, norm_eps=hf.rms_norm_eps,
                            rope_theta=float(rope["rope_theta"]), bias=hf.attention_bias,
                            tie_weights=hf.tie_word_embeddings)


def llama_config_to_hf(config: GPTConfig, vocab: Vocab | None):
    _require_block(config, {k: MODERN_BLOCK[k] for k in ("positions", "norm", "mlp")}, "LlamaForCausalLM")
    return require("transformers").LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model, intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads, num_key_value_heads=config.n_kv_heads,
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


def _refuse(unsupported: dict[str, bool], hf, supported: str, who: str = "GPT.from_hf") -> None:
    bad = [f"{name}={getattr(hf, name)!r}" for name, is_bad in unsupported.items() if is_bad]
    if bad:
        raise ValueError(f"{who} cannot reproduce this model ({', '.join(bad)}); it supports {supported}")


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



# --- the encoder-decoder: BART (post-norm) and mBART (pre-norm) -------------------------------------
#
# BART's layers are lmlib's blocks with the norm after each residual sum; mBART's put it before, and end each
# stack with one more LayerNorm (``layer_norm``), as lmlib's pre-norm Seq2Seq does. The tensor names are the
# same in both. Attention keeps q_proj, k_proj, v_proj apart (nn.Linear's layout); lmlib stacks Q, K, V in
# ``qkv`` and a cross-attention's K, V in ``kv``. One embedding matrix (``model.shared``) is the encoder's, the
# decoder's and the output layer's.

SEQ2SEQ_ARCHITECTURES = {"BartForConditionalGeneration": False, "MBartForConditionalGeneration": True}  # norm_first
# BartLearnedPositionalEmbedding reads row position + 2 (fairseq's layout): rows 0 and 1 are never read.
BART_POSITION_OFFSET = 2
BART_GELU = ("gelu_pytorch_tanh", "gelu_new")  # GELU's tanh form, lmlib's MLP; BART's default "gelu" is the erf form


def seq2seq_from_hf(model: nn.Module, vocab: Vocab | None = None) -> Seq2Seq:
    """The same network as a Hugging Face ``BartForConditionalGeneration`` (post-norm) or
    ``MBartForConditionalGeneration`` (pre-norm), with its weights (same logits, dtype and device; in eval mode).

    ``vocab``: the course ``Vocab`` the model's ids mean (e.g. a model saved by ``seq2seq_to_hf``); without it the
    result gives logits (``model(source, target, source_mask)``) but cannot ``condition`` on a source's tokens.
    ``dropout`` (training only) is BART's ``dropout``; its ``attention_dropout``, ``activation_dropout`` and layer
    drop have no counterpart here. ``final_logits_bias`` must be 0, or -inf at the vocabulary's never-predicted
    tokens (what ``seq2seq_to_hf`` writes): lmlib's output layer has no bias.
    """
    transformers = require("transformers")
    kind = next((k for k in SEQ2SEQ_ARCHITECTURES if isinstance(model, getattr(transformers, k))), None)
    if kind is None:
        raise TypeError(f"Seq2Seq.from_hf supports {' and '.join(SEQ2SEQ_ARCHITECTURES)}, got "
                        f"{type(model).__name__}; other architectures need their own weight table")
    config = bart_config_from_hf(model.config, SEQ2SEQ_ARCHITECTURES[kind])
    if vocab is not None and len(vocab) != config.vocab_size:
        raise ValueError(f"the vocabulary has {len(vocab)} entries but the {kind} has {config.vocab_size} rows of "
                         "embeddings: pass the Vocab the model was trained with")
    _check_final_logits_bias(model.final_logits_bias, vocab)
    like = next(model.parameters())
    ours = Seq2Seq(config, vocab).to(like.device, like.dtype)
    theirs = model.state_dict()
    weights = _weights_from_hf(theirs, bart_weight_names(config))
    for side in ("encoder", "decoder"):
        weights[f"{side}_positions.weight"] = theirs[f"model.{side}.embed_positions.weight"][BART_POSITION_OFFSET:]
    ours.load_state_dict(weights)
    return ours.eval()


def seq2seq_to_hf(model: Seq2Seq) -> nn.Module:
    """``model`` as a Hugging Face ``BartForConditionalGeneration`` (post-norm) or ``MBartForConditionalGeneration``
    (pre-norm): the same weights and logits. The tokens lmlib never predicts (``<pad>``, ``<bos>``) get -inf in
    ``final_logits_bias``, so HF's logits are lmlib's, -inf included, and its generate scores (beam search sums
    log-probabilities) the same distributions. ``decoder_start_token_id`` is ``<bos>``."""
    config = model.config
    kind = next(k for k, norm_first in SEQ2SEQ_ARCHITECTURES.items() if norm_first == config.norm_first)
    hf_config = bart_config_to_hf(config, model.vocab, kind)
    weight = model.lm_head.weight
    theirs = getattr(require("transformers"), kind)(hf_config).to(weight.device, weight.dtype)
    state, ours = theirs.state_dict(), model.state_dict()
    weights = _weights_to_hf(ours, state, bart_weight_names(config))
    for side in ("encoder", "decoder"):
        name = f"model.{side}.embed_positions.weight"  # HF's own rows 0 and 1, unread, then lmlib's positions
        weights[name] = torch.cat([state[name][:BART_POSITION_OFFSET], ours[f"{side}_positions.weight"]])
    bias = torch.zeros_like(state["final_logits_bias"])
    if model.never_predicted is not None:
        bias[:, model.never_predicted] = float("-inf")
    weights["final_logits_bias"] = bias
    theirs.load_state_dict(weights)
    return theirs.eval()


def bart_weight_names(config: Seq2SeqConfig) -> WeightNames:
    """BART's (and mBART's) tensors for each of lmlib's Seq2Seq (positions apart: ``BART_POSITION_OFFSET``)."""
    names = [("lm_head.weight", ["lm_head.weight"], False)]
    names += [("token_embedding.weight", [f"model.{hf}.weight"], False)  # one matrix, under three names in HF
              for hf in ("shared", "encoder.embed_tokens", "decoder.embed_tokens")]
    layer = [("attn.qkv", [f"self_attn.{p}_proj" for p in "qkv"]), ("attn.proj", ["self_attn.out_proj"]),
             ("attn_norm", ["self_attn_layer_norm"]), ("mlp.fc", ["fc1"]), ("mlp.proj", ["fc2"]),
             ("mlp_norm", ["final_layer_norm"])]
    cross = [("cross_attn.q", ["encoder_attn.q_proj"]),
             ("cross_attn.kv", ["encoder_attn.k_proj", "encoder_attn.v_proj"]),
             ("cross_attn.proj", ["encoder_attn.out_proj"]), ("cross_norm", ["encoder_attn_layer_norm"])]
    for side, n_layers, parts in (("encoder", config.n_encoder_layers, layer),
                                  ("decoder", config.n_decoder_layers, layer + cross)):
        stack = [(f"{side}_embedding_norm", [f"model.{side}.layernorm_embedding"])]
        if config.norm_first:
            stack.append((f"{side}_final_norm", [f"model.{side}.layer_norm"]))
        stack += [(f"{side}_blocks.{i}.{ours}", [f"model.{side}.layers.{i}.{t}" for t in theirs])
                  for i in range(n_layers) for ours, theirs in parts]
        names += [(f"{ours}.{kind}", [f"{t}.{kind}" for t in theirs], False)
                  for ours, theirs in stack for kind in ("weight", "bias")]
    return names


def bart_config_from_hf(hf, norm_first: bool) -> Seq2SeqConfig:
    """A ``BartConfig`` or ``MBartConfig`` as a ``Seq2SeqConfig``; raises for the options lmlib does not model."""
    unsupported = {"activation_function": hf.activation_function not in BART_GELU,
                   "decoder_attention_heads": hf.decoder_attention_heads != hf.encoder_attention_heads,
                   "decoder_ffn_dim": hf.decoder_ffn_dim != hf.encoder_ffn_dim,
                   "tie_word_embeddings": not hf.tie_word_embeddings}
    _refuse(unsupported, hf, f"activation_function in {BART_GELU}, the same heads and MLP width in encoder and "
                             "decoder, and one embedding for the inputs and the output", who="Seq2Seq.from_hf")
    return Seq2SeqConfig(hf.vocab_size, max_positions=hf.max_position_embeddings, d_model=hf.d_model,
                         n_encoder_layers=hf.encoder_layers, n_decoder_layers=hf.decoder_layers,
                         n_heads=hf.encoder_attention_heads, d_ff=hf.encoder_ffn_dim, norm_first=norm_first,
                         scale_embedding=hf.scale_embedding, dropout=float(hf.dropout))


def bart_config_to_hf(config: Seq2SeqConfig, vocab: Vocab | None, kind: str):
    if config.norm_eps != 1e-5:
        raise ValueError(f"to_hf: BART's LayerNorms have eps 1e-5, this model's norm_eps={config.norm_eps}")
    hf_config = getattr(require("transformers"), kind.replace("ForConditionalGeneration", "Config"))
    return hf_config(
        vocab_size=config.vocab_size, max_position_embeddings=config.max_positions, d_model=config.d_model,
        encoder_layers=config.n_encoder_layers, decoder_layers=config.n_decoder_layers,
        encoder_attention_heads=config.n_heads, decoder_attention_heads=config.n_heads,
        encoder_ffn_dim=config.d_ff, decoder_ffn_dim=config.d_ff, activation_function=BART_GELU[0],
        dropout=config.dropout, attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.0,
        decoder_layerdrop=0.0, scale_embedding=config.scale_embedding, tie_word_embeddings=True,
        forced_eos_token_id=None, decoder_start_token_id=None if vocab is None else vocab.bos_id,
        **_special_ids(vocab))


def _check_final_logits_bias(bias: torch.Tensor, vocab: Vocab | None) -> None:
    bias = bias.flatten()
    allowed = bias == 0
    if vocab is not None:
        allowed |= never_predicted_mask(len(bias), vocab).to(bias.device) & bias.isneginf()
    if not bool(allowed.all()):
        raise ValueError("Seq2Seq.from_hf cannot reproduce this model: its final_logits_bias is not 0 (lmlib's output "
                         "layer has no bias; -inf is allowed only at <pad> and <bos>, with the vocab passed)")
