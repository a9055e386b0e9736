"""Hugging Face interop for lmlib's GPT: weights and configs to and from ``GPT2LMHeadModel`` and ``LlamaForCausalLM``.

``gpt_from_hf(model, vocab)`` builds the lmlib ``GPT`` with the same weights (the same logits),
``gpt_to_hf(gpt)`` the Hugging Face model; both directions are exact (tests/test_transformer.py checks
the logits against Hugging Face's and the round trips). ``GPT.from_hf`` and ``GPT.to_hf`` call them.
A weight table (``gpt2_weight_names``, ``llama_weight_names``) names, for each lmlib tensor, the
Hugging Face tensors it is made of; a pair of config functions per architecture maps the settings
and refuses the options lmlib does not model.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lmlib._deps import require
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

