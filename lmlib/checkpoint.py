"""Checkpoint files: a model's configuration, vocabulary and weights, and the state of its training.

A checkpoint is one ``torch.save`` dict, read back with ``weights_only=True``
(tensors and plain data only, so loading runs no code from the file):

    format        "lmlib-checkpoint-1"
    model_class   the model's class, "module.Class" (files made before it was recorded lack it)
    model_config  dataclasses.asdict(model.config)
    vocab         model.vocab.itos
    model         the weights (model.state_dict())
    train_config, optimizer, step, history, rng, carry
                  what ``lmlib.train.train`` needs to resume bit for bit

It goes through the seam of ``lmlib.neural``: a ``NeuralLM`` has a ``config``
(a dataclass), a ``vocab`` and a ``config_class``, and ``cls(config, vocab)``
builds it, so ``load_model(path, cls)`` rebuilds any of them. The course's
named, hash-checked checkpoints (``load_checkpoint("gpt_chars_wiki")``) are
``lmlib.course.recipes``: each is a *release* file (``save_release``: float16 weights and the
SHA-256 beside it in ``NAME.pt.sha256``), checked by ``check_digest`` before it is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lmlib.neural import NeuralLM
from lmlib.tokenize import Vocab

if TYPE_CHECKING:  # a type hint only: lmlib.train imports this module
    from lmlib.train import TrainConfig

FORMAT = "lmlib-checkpoint-1"


def save_checkpoint(
    path, model: NeuralLM, optimizer, config: TrainConfig, step: int, history: dict, carry=None, half: bool = False
) -> Path:
    """Everything that decides the next step, in one ``torch.save`` file, written atomically.

    ``half``: store the weights in float16 (a release file for chapters, half the size; no optimizer).
    """
    if model.vocab is None:
        raise ValueError(f"this {type(model).__name__} has no vocabulary (e.g. GPT.from_hf(model) without vocab=): "
                         "a checkpoint stores one, to rebuild the model; pass the course Vocab its ids mean")
    weights = model.state_dict()
    if half:
        weights = _to_half(weights)
    state = {
        "format": FORMAT,
        "model_class": _class_name(type(model)),
        "model_config": dataclasses.asdict(model.config),
        "train_config": dataclasses.asdict(config),
        "vocab": list(model.vocab.itos),
        "model": weights,
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "step": step,
        "history": history,
        "rng": torch.get_rng_state(),
        "carry": carry,
    }
    return _atomic_save(state, Path(path))


def _to_half(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors in float16. Tied weights (one tensor under two names, e.g. an embedding
    shared with the output layer) stay one tensor, so the file stores them once."""
    halves: dict[tuple, torch.Tensor] = {}
    out = {}
    for name, v in weights.items():
        if v.is_floating_point():
            key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.stride())
            v = halves[key] if key in halves else halves.setdefault(key, v.half())
        out[name] = v
    return out


def _atomic_save(state: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)  # a crash mid-write leaves the old file, never half a new one
    return path


def save_release(path: str | Path, model: NeuralLM, config: TrainConfig, step: int, history: dict) -> Path:
    """A checkpoint for chapters to load: float16 weights and no optimizer (half the size), and its SHA-256
    in ``PATH.sha256`` (``sha256sum``'s format), which ``check_digest`` compares before the file is read."""
    weights = save_checkpoint(path, model, None, config, step, history, half=True)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    weights.with_name(weights.name + ".sha256").write_text(f"{digest}  {weights.name}\n")
    return weights


def check_digest(path: str | Path, remake: str, required: bool = True) -> None:
    """Raise unless ``path`` has the SHA-256 recorded beside it in ``PATH.sha256``; ``remake`` ends each message
    (how to make the file again). ``required=False``: a file without a ``.sha256`` passes unchecked."""
    path = Path(path)
    digest_file = path.with_name(path.name + ".sha256")
    if not path.exists() or (required and not digest_file.exists()):
        raise FileNotFoundError(f"{path} or its .sha256 is missing; {remake}")
    if not digest_file.exists():
        return
    expected = digest_file.read_text().split()[0]
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise ValueError(f"{path} has SHA-256 {actual[:12]}..., not the {expected[:12]}... recorded in "
                         f"{digest_file.name}: the file is altered or corrupt; {remake}")


def read_checkpoint(path: str | Path) -> dict:
    """The dict in a checkpoint file, loaded with ``weights_only=True`` (tensors and plain data only)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"{path} is not a readable lmlib checkpoint ({type(e).__name__}: {e}); regenerate it") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an lmlib checkpoint (format {FORMAT!r}); regenerate it")
    return state


def check_saved_config(saved: dict, model: NeuralLM, path: Path) -> None:
    """Raise if the checkpoint was made for a model with another configuration, naming the keys that differ."""
    current = dataclasses.asdict(model.config)
    try:  # the saved settings with their defaults resolved as the config class resolves them (None -> a width)
        saved = dataclasses.asdict(type(model.config)(**saved))
    except TypeError:
        pass  # a key this version does not know: compared as saved, and named below
    differ = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
    if differ:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs model {current.get(k)!r}" for k in differ)
        raise ValueError(f"{path} was saved from a model with another configuration ({detail})")


def restore_training(path, model: NeuralLM, optimizer, config: TrainConfig, device: str):
    """Load a training state saved by ``save_checkpoint`` into ``model`` and ``optimizer`` (after checking they
    are the ones it was made with) and the global RNG; return (step, history, the carried state on ``device``)."""
    path = Path(path)
    state = read_checkpoint(path)
    if state["optimizer"] is None:
        raise ValueError(f"{path} is a release file (weights only, no optimizer state): resume from the "
                         "NAME.state.pt that training wrote beside it")
    check_saved_config(state["model_config"], model, path)
    if state["train_config"] != dataclasses.asdict(config):
        differ = sorted(k for k, v in dataclasses.asdict(config).items() if state["train_config"].get(k) != v)
        raise ValueError(f"{path} was trained with another TrainConfig (differs in: {', '.join(differ)})")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    carry = None if state["carry"] is None else tuple(c.to(device) for c in state["carry"])
    return state["step"], state["history"], carry


def load_model(path: str | Path, model_class: type[NeuralLM]) -> NeuralLM:
    """The model saved at ``path`` as a ``model_class`` (its weights in float32, in eval mode)."""
    return model_from_state(read_checkpoint(path), model_class)


def model_from_state(state: dict, model_class: type[NeuralLM]) -> NeuralLM:
    """Rebuild ``model_class(config, vocab)`` from a checkpoint's dict and load its weights (float16 release
    files come back as float32); the training history travels as ``model.history``."""
    saved = state.get("model_class")
    if saved is not None and saved != _class_name(model_class):
        raise ValueError(f"the checkpoint holds a {saved}, not a {_class_name(model_class)}: "
                         "load it with its own class")
    config = model_class.config_class(**state["model_config"])
    model = model_class(config, Vocab.from_itos(state["vocab"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
    model.history = state["history"]
    return model.eval()


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
