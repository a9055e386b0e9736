"""One training loop for every neural model in lmlib, and the recipes that make the course's checkpoints.

Training minimises the cross-entropy of the next token, the mean of
-ln P(w_t | w_{<t}) over the predicted tokens of a batch, with AdamW:

    g_t = grad L(theta_{t-1})                        (clipped to a global norm <= g_max)
    m_t = b1 m_{t-1} + (1 - b1) g_t,   v_t = b2 v_{t-1} + (1 - b2) g_t^2
    theta_t = theta_{t-1} - lr_t (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t)) + eps) - lr_t wd theta_{t-1}

with weight decay (the last term, "decoupled" from the gradient) on weight
matrices only, and a learning rate lr_t that rises linearly for ``warmup``
steps and then follows a cosine down to ``min_lr_ratio * lr``. A model whose
``objective`` is ``"masked"`` (``lmlib.pretraining.MaskedLM``) is trained on
BERT's objective instead: its inputs are corrupted and the original tokens at
the chosen positions are scored, with no shift.

A model is an ``nn.Module`` that implements ``lmlib.lm.LanguageModel`` and maps
[B, T] ids to [B, T, V] next-token logits; recurrent models (``layout =
"sequential"``) take and return a state as well: ``model(ids, state) ->
(logits, state)``. Data is a *stream*: one 1-D tensor of ids, the training
sentences as ``<bos> w_1 .. w_n <eos>`` one after another.

The same ``train`` runs under ``torchrun --nproc_per_node=N`` with
DistributedDataParallel: each rank reads its own rows of every batch, the
gradients are averaged, and only rank 0 prints, evaluates and saves.

``python -m lmlib.train --list`` prints the recipes; ``python -m lmlib.train
RECIPE`` trains one and writes ``checkpoints/RECIPE.pt``, its SHA-256 and a
JSON training log; ``load_checkpoint(RECIPE)`` loads it for a chapter.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from lmlib import lm
from lmlib.neural import NeuralLM
from lmlib.tokenize import SPECIALS, BPETokenizer, Vocab
from lmlib.transformer import MODERN_BLOCK  # GPTConfig.modern's settings, as plain data for the recipes


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000  # optimizer steps of the whole schedule
    batch_size: int = 32  # B: rows per step, across all ranks
    block: int = 64  # T: tokens per row
    lr: float = 3e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup: int = 100  # steps of linear warm-up
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # max global gradient norm (0 = no clipping)
    eval_every: int = 200  # steps between validation evaluations (and one at the end)
    log_every: int = 10  # steps between history entries
    layout: str = "random"  # "random" windows, or "sequential" lanes for truncated BPTT
    seed: int = 0


# --- batching a token stream ---------------------------------------------------------------------

def random_windows(stream: torch.Tensor, batch_size: int, block: int, generator: torch.Generator) -> torch.Tensor:
    """[B, block + 1] contiguous windows of the stream at random offsets: x = w[:, :-1], y = w[:, 1:]."""
    offsets = torch.randint(0, len(stream) - block, (batch_size,), generator=generator)  # [B]
    return stream[offsets[:, None] + torch.arange(block + 1)]


def sequential_lanes(stream: torch.Tensor, batch_size: int, block: int) -> Iterator[torch.Tensor]:
    """The layout truncated BPTT needs: the stream cut into ``batch_size`` lanes read side by side.

    Lane b is the b-th contiguous piece of the stream; batch i holds tokens
    [i*block, (i+1)*block] of every lane, so row b of batch i+1 continues row b
    of batch i and a recurrent state can be carried across them. One pass over
    the stream; the tail that does not fill a whole block is dropped. The state
    flows across sentence ends (``<eos> <bos>``): a model that is evaluated
    sentence by sentence from a fresh state should reset its state at ``<bos>``.
    """
    lane = len(stream) // batch_size
    lanes = stream[: lane * batch_size].view(batch_size, lane)  # [B, L]
    for start in range(0, lane - block, block):
        yield lanes[:, start : start + block + 1]  # [B, block + 1]


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine decay to ``lr * min_lr_ratio``."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    low = config.lr * config.min_lr_ratio
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * min(1.0, progress)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay weight matrices only: no decay on biases, norms and embeddings (they are not 'weights' to shrink)."""
    no_decay = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if name.endswith("bias") or isinstance(module, (nn.Embedding, nn.LayerNorm)) or p.ndim < 2:
                no_decay.add(id(p))
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if id(p) not in no_decay], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0},
    ]


# --- the loop ------------------------------------------------------------------------------------

def train(
    model: NeuralLM,
    train_stream: torch.Tensor,
    valid_stream: torch.Tensor | None,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    resume: str | Path | None = None,
    max_steps: int | None = None,
    progress: bool | None = None,
    device: str = "cpu",
) -> dict:
    """Train ``model`` on ``train_stream`` and return its history (a dict of lists,
    JSON-ready).

    ``checkpoint``: a path where the full training state (model, optimizer,
    step, RNG, config) is written every ``eval_every`` steps and at the end.
    ``resume``: such a file to continue from. In one CPU process the result is
    bit-for-bit the uninterrupted run (tested). Under ``torchrun`` or on CUDA the
    data order, optimizer state and schedule resume exactly, but the dropout
    masks do not: only rank 0's CPU random state is saved.
    ``max_steps``: stop after that many steps of the schedule (which still spans
    ``config.steps``). ``progress``: a tqdm bar; by default on in a terminal or
    a notebook.
    """
    _check_training_inputs(model, train_stream, valid_stream, config)
    rank, world = _distributed(device)
    model.to(device)
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr,
                                  betas=config.betas)
    history, carry, step = _new_history(), None, 0
    # Dropout draws from the global generator; batches have their own. Each rank draws its
    # own masks, so with dropout a run on N ranks is equivalent to one process in
    # distribution, not bit for bit.
    torch.manual_seed(config.seed + rank)
    if resume is not None:
        if world > 1 and config.layout == "sequential":
            raise ValueError(
                "resuming a sequential-layout run under torchrun is not supported: the "
                "checkpoint holds rank 0's recurrent state only; resume it in one "
                "process, or restart")
        step, history, carry = _restore(resume, model, optimizer, config, device)
    net = model if world == 1 else nn.parallel.DistributedDataParallel(model)
    end = config.steps if max_steps is None else min(config.steps, max_steps)
    batches = _batches(train_stream, config, step, rank, world)
    bar = _progress_bar(step, end,
                        rank == 0 and (_interactive() if progress is None else progress))
    # Tokens and seconds count over the whole run, across resumes; the progress bar's rate
    # is this process's.
    seen, wall, cpu = (history[k][-1] if history[k] else 0
                       for k in ("tokens", "seconds", "cpu_seconds"))
    started, cpu_started, run_tokens = time.perf_counter(), time.process_time(), 0
    model.train()
    while step < end:
        window, fresh = next(batches)
        window = window.to(device)
        carry = None if fresh else carry
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        loss, mean_loss, n_targets, carry = _loss(net, model, window, carry, world)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        seen, run_tokens = seen + n_targets, run_tokens + n_targets
        if rank == 0:
            if (step % config.log_every == 0 or step % config.eval_every == 0
                    or step == end):
                history["step"].append(step)
                history["train_loss"].append(mean_loss)
                history["lr"].append(lr_at(step - 1, config))
                history["tokens"].append(seen)
                history["seconds"].append(wall + time.perf_counter() - started)
                history["cpu_seconds"].append(cpu + time.process_time() - cpu_started)
            if (valid_stream is not None
                    and (step % config.eval_every == 0 or step == end)):
                _evaluate(model, valid_stream, history, step)
            if checkpoint is not None and (step % config.eval_every == 0 or step == end):
                save_checkpoint(checkpoint, model, optimizer, config, step,
                                history, carry)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{mean_loss:.3f}",
                    tok_s=f"{run_tokens / (time.perf_counter() - started):.0f}")
    if bar is not None:
        bar.close()
    model.eval()
    return history


def _loss(net, model, window: torch.Tensor, carry, world: int):
    """The rank's summed cross-entropy, scaled so that DDP's gradient average is the
    global-batch mean.

    Returns (that loss, the global-batch mean loss as a float, the global number of
    targets, the state).
    """
    x, y = window[:, :-1], window[:, 1:]  # [b, T]
    if model.objective == "masked":
        # BERT's objective: y holds the chosen tokens of x (no shift), -100 elsewhere
        x, y = model.corrupt(x)
    if model.takes_state:
        logits, carry = net(x, carry)
    else:
        logits = net(x)  # [b, T, V]
    # <bos> is never predicted
    ignore = (y == model.vocab.pad_id) | (y == model.vocab.bos_id) | (y == -100)
    context = model.context_size
    if context and context > 1:
        ignore[:, : context - 1] = True  # their context reaches back before the window
    targets = y.masked_fill(ignore, -100)
    summed = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                             ignore_index=-100, reduction="sum")
    stats = torch.stack([summed.detach(), (~ignore).sum().to(summed.dtype)])
    if world > 1:
        dist.all_reduce(stats)
    if stats[1] == 0:
        raise ValueError("a batch has no predictable targets: make the block longer "
                         "than the model's context")
    if carry is not None:
        carry = (tuple(c.detach() for c in carry) if isinstance(carry, tuple)
                 else carry.detach())
    return summed * world / stats[1], (stats[0] / stats[1]).item(), int(stats[1]), carry


def _batches(stream: torch.Tensor, config: TrainConfig, step: int, rank: int, world: int):
    """Yield (this rank's rows of the batch for each step from ``step`` on, whether the state must reset)."""
    rows = slice(rank, None, world)
    if config.layout == "random":
        while True:  # each step's batch depends on (seed, step) only: resumable, the same for every world size
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            yield random_windows(stream, config.batch_size, config.block, generator)[rows], False
            step += 1
    lanes = list(sequential_lanes(stream, config.batch_size, config.block))  # views, no copies
    while True:  # epoch after epoch; the state resets at the start of each pass
        i = step % len(lanes)
        yield lanes[i][rows], i == 0
        step += 1


def _evaluate(model: nn.Module, stream: torch.Tensor, history: dict, step: int) -> None:
    model.eval()
    if model.objective == "masked":
        total, count = model.stream_masked_logprob(stream, batch_size=32)  # the same draws every time
    else:
        total, count = lm.stream_logprob(model, stream, batch_size=32)
    model.train()
    history["eval_step"].append(step)
    history["valid_loss"].append(-total / count)
    history["valid_ppl"].append(math.exp(-total / count))


def _new_history() -> dict:
    """Per logged step: train loss, learning rate, predicted tokens seen and wall / CPU seconds so far;
    per evaluation: validation loss and perplexity."""
    keys = ("step", "train_loss", "lr", "tokens", "seconds", "cpu_seconds", "eval_step", "valid_loss", "valid_ppl")
    return {k: [] for k in keys}


def _interactive() -> bool:
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def _progress_bar(step: int, end: int, show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=end, initial=step, unit="step", dynamic_ncols=True)


def _distributed(device: str) -> tuple[int, int]:
    """(rank, world size): join the process group when started by ``torchrun``, else (0, 1)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _check_training_inputs(model, train_stream, valid_stream, config: TrainConfig) -> None:
    if not isinstance(model, NeuralLM) or not isinstance(model, lm.LanguageModel):
        raise TypeError(
            f"{type(model).__name__} cannot be trained: a model must be a lmlib.neural.NeuralLM (an nn.Module with "
            "hidden_states and output, which declares takes_state, context_size and objective) with a vocab, "
            "and map [B, T] ids to logits"
        )
    for name in ("steps", "batch_size", "block", "eval_every", "log_every"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"TrainConfig.{name} must be an integer > 0, got {value!r}")
    if not config.lr > 0:
        raise ValueError(f"TrainConfig.lr must be > 0, got {config.lr!r} (try 1e-3)")
    if config.layout not in ("random", "sequential"):
        raise ValueError(f"TrainConfig.layout must be 'random' or 'sequential', got {config.layout!r}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if config.batch_size % world:
        raise ValueError(
            f"batch_size {config.batch_size} does not split over {world} ranks: each rank reads batch_size / ranks "
            f"rows, so run torchrun with a --nproc_per_node that divides {config.batch_size}"
        )
    for name, stream in (("train_stream", train_stream), ("valid_stream", valid_stream)):
        if stream is None and name == "valid_stream":
            continue
        if not isinstance(stream, torch.Tensor) or stream.ndim != 1 or stream.dtype != torch.long:
            raise TypeError(f"{name} must be a 1-D LongTensor of token ids (see lmlib.train.encode_stream)")
    need = config.block + 1 if config.layout == "random" else config.batch_size * (config.block + 1)
    if len(train_stream) < need:
        raise ValueError(
            f"train_stream has {len(train_stream)} tokens, too short for block={config.block}"
            f"{f' and {config.batch_size} lanes' if config.layout == 'sequential' else ''}: it needs at least {need}; "
            "use a smaller block (or batch) or more data"
        )


def encode_stream(vocab: Vocab, sentences: list[list[str]]) -> torch.Tensor:
    """Sentences (token lists) -> one stream ``<bos> w_1 .. <eos> <bos> ..`` of ids."""
    ids = []
    for sentence in sentences:
        ids += [vocab.bos_id, *vocab.encode(sentence), vocab.eos_id]
    return torch.tensor(ids, dtype=torch.long)


# --- checkpoints ---------------------------------------------------------------------------------

FORMAT = "lmlib-checkpoint-1"


def save_checkpoint(
    path, model, optimizer, config: TrainConfig, step: int, history: dict, carry=None, half: bool = False
) -> Path:
    """Everything that decides the next step, in one ``torch.save`` file, written atomically.

    ``half``: store the weights in float16 (a release file for chapters, half the size; no optimizer).
    """
    weights = model.state_dict()
    if half:
        weights = _to_half(weights)
    state = {
        "format": FORMAT,
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


def check_config(saved: dict, model: nn.Module, path: Path) -> None:
    """Raise if the checkpoint was made for a model with another configuration, naming the keys that differ."""
    current = dataclasses.asdict(model.config)
    differ = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
    if differ:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs model {current.get(k)!r}" for k in differ)
        raise ValueError(f"{path} was saved from a model with another configuration ({detail})")


def _restore(path, model, optimizer, config: TrainConfig, device: str):
    path = Path(path)
    state = read_checkpoint(path)
    check_config(state["model_config"], model, path)
    if state["train_config"] != dataclasses.asdict(config):
        differ = sorted(k for k, v in dataclasses.asdict(config).items() if state["train_config"].get(k) != v)
        raise ValueError(f"{path} was trained with another TrainConfig (differs in: {', '.join(differ)})")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    carry = state["carry"]
    if carry is not None:
        carry = tuple(c.to(device) for c in carry) if isinstance(carry, (tuple, list)) else carry.to(device)
    return state["step"], state["history"], carry


# --- recipes -------------------------------------------------------------------------------------

CHECKPOINTS = Path(os.environ.get("LMLIB_CHECKPOINTS", Path(__file__).resolve().parent.parent / "checkpoints"))


@dataclass(frozen=True)
class Recipe:
    """Everything that makes a checkpoint: data, tokenization, model, optimisation, seed."""

    name: str
    description: str
    corpus: str  # an lmlib.data corpus
    tokenization: str  # a key of TOKENIZATIONS
    min_count: int  # rarer training tokens become <unk> (unused where the tokenization has its own vocabulary: "bpe")
    model: str  # a key of MODELS
    model_config: dict = field(default_factory=dict)
    train: TrainConfig = TrainConfig()


def lowercase_word_sentences(corpus: str, split: str) -> list[list[str]]:
    """The n-gram chapter's tokenization, shared by every word-level model compared with it:
    sentences from ``split_sentences``, each lower-cased and split by ``word_tokenize``."""
    from lmlib.data import load_corpus
    from lmlib.tokenize import split_sentences, word_tokenize

    return [word_tokenize(s, lowercase=True) for doc in load_corpus(corpus, split) for s in split_sentences(doc)]


def character_sentences(corpus: str, split: str) -> list[list[str]]:
    """Sentences as characters, case kept: English keeps its spaces (one per whitespace run), Chinese
    (``peoples_daily``) has none between its characters."""
    from lmlib.data import load_corpus
    from lmlib.tokenize import char_tokenize, split_sentences

    zh = corpus == "peoples_daily"
    return [char_tokenize(s, keep_spaces=not zh) for doc in load_corpus(corpus, split)
            for s in split_sentences(doc, lang="zh" if zh else "en")]


BPE_VOCAB_SIZE = 4000  # entries of the byte-level BPE behind the "bpe" tokenization (bytes and specials included)


@functools.lru_cache(maxsize=4)
def bpe_tokenizer(corpus: str) -> BPETokenizer:
    """The course's byte-level BPE (``BPETokenizer``, ``BPE_VOCAB_SIZE`` entries), trained on the
    corpus's training sentences; training is deterministic, so every call makes the same merges."""
    return BPETokenizer.train(_plain_sentences(corpus, "train"), vocab_size=BPE_VOCAB_SIZE)


def bpe_sentences(corpus: str, split: str) -> list[list[str]]:
    """Sentences as BPE tokens (``bpe_tokenizer``; a space is part of the token after it: ``Ġthe``).

    The sentences are ``character_sentences``' texts, so bits per character compare across the two."""
    bpe = bpe_tokenizer(corpus)
    return [bpe.encode(s) for s in _plain_sentences(corpus, split)]


def bpe_vocab(corpus: str) -> Vocab:
    """``bpe_tokenizer(corpus)``'s own vocabulary as a course ``Vocab``: id i is the tokenizer's id i (its special
    tokens come first, in the course's order), so the model's ids are the ones a Hugging Face tokenizer made
    from the same ``tokenizers`` file gives."""
    itos = bpe_tokenizer(corpus).tokens_by_id()
    if tuple(itos[: len(SPECIALS)]) != SPECIALS:
        raise ValueError(f"the BPE tokenizer's first ids are {itos[:4]}, not the course's special tokens {SPECIALS}")
    return Vocab.from_itos(itos)


def _plain_sentences(corpus: str, split: str) -> list[str]:
    return ["".join(chars) for chars in character_sentences(corpus, split)]


TOKENIZATIONS: dict[str, Callable[[str, str], list[list[str]]]] = {
    "words_lower": lowercase_word_sentences, "chars": character_sentences, "bpe": bpe_sentences}
# Tokenizations that come with their own vocabulary (a recipe's min_count does not apply to them).
TOKENIZER_VOCABULARIES: dict[str, Callable[[str], Vocab]] = {"bpe": bpe_vocab}


def _mlp():
    from lmlib.mlp import MLPLM, MLPConfig

    return MLPConfig, MLPLM


def _rnn():
    from lmlib.rnn import RNNConfig, RNNLanguageModel

    return RNNConfig, RNNLanguageModel


def _gpt():
    from lmlib.transformer import GPT, GPTConfig

    return GPTConfig, GPT


def _masked_lm():
    from lmlib.pretraining import MaskedLM
    from lmlib.transformer import GPTConfig

    return GPTConfig, MaskedLM


MODELS: dict[str, Callable[[], tuple[type, type]]] = {"mlp": _mlp, "rnn": _rnn, "gpt": _gpt,
                                                      "masked_lm": _masked_lm}

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            name="mlp_wiki",
            description="Bengio MLP LM, 4-gram context, on wiki words (the n-gram chapter's vocabulary)",
            corpus="wiki",
            tokenization="words_lower",
            min_count=2,
            model="mlp",
            model_config={"context": 3, "d_embed": 32, "d_hidden": 96, "dropout": 0.1},
            train=TrainConfig(steps=3000, batch_size=16, block=64, lr=3e-3, warmup=100, eval_every=500, seed=0),
        ),
        Recipe(
            name="lstm_words_wiki",
            description="LSTM LM on wiki words (the n-gram chapter's vocabulary), tied embeddings",
            corpus="wiki",
            tokenization="words_lower",
            min_count=2,
            model="rnn",
            model_config={"cell": "lstm", "d_embed": 128, "d_hidden": 128, "dropout": 0.2, "tie_weights": True},
            train=TrainConfig(steps=3000, batch_size=16, block=64, lr=3e-3, warmup=100, eval_every=500, seed=0,
                              layout="sequential"),
        ),
        Recipe(
            name="lstm_chars_wiki",
            description="character-level LSTM LM on wiki (case and spaces kept)",
            corpus="wiki",
            tokenization="chars",
            min_count=2,
            model="rnn",
            model_config={"cell": "lstm", "d_embed": 32, "d_hidden": 256, "dropout": 0.1},
            train=TrainConfig(steps=2000, batch_size=32, block=128, lr=3e-3, warmup=100, eval_every=500, seed=0,
                              layout="sequential"),
        ),
        Recipe(
            name="lstm_chars_peoples_daily",
            description="character-level LSTM LM on People's Daily (Chinese characters)",
            corpus="peoples_daily",
            tokenization="chars",
            min_count=2,
            model="rnn",
            model_config={"cell": "lstm", "d_embed": 64, "d_hidden": 256, "dropout": 0.1},
            train=TrainConfig(steps=2000, batch_size=16, block=128, lr=3e-3, warmup=100, eval_every=500, seed=0,
                              layout="sequential"),
        ),
        Recipe(
            name="gpt_chars_wiki",
            description="character-level GPT (GPT-2 block) on wiki (case and spaces kept)",
            corpus="wiki",
            tokenization="chars",
            min_count=2,
            model="gpt",
            model_config={"block_size": 128, "d_model": 128, "n_layers": 4, "n_heads": 4, "dropout": 0.1,
                          "reset_at_bos": True, "window_stride": 64},
            train=TrainConfig(steps=3000, batch_size=16, block=128, lr=2e-3, warmup=200, eval_every=1000, seed=0),
        ),
        Recipe(  # gpt_chars_wiki with the modern block: the chapter's measured GPT-2 vs modern comparison
            name="gpt_chars_wiki_modern",
            description="character-level GPT (modern block) on wiki (case and spaces kept): gpt_chars_wiki's twin",
            corpus="wiki",
            tokenization="chars",
            min_count=2,
            model="gpt",
            model_config={**MODERN_BLOCK, "block_size": 128, "d_model": 128, "n_layers": 4, "n_heads": 4,
                          "dropout": 0.1, "reset_at_bos": True, "window_stride": 64},
            train=TrainConfig(steps=3000, batch_size=16, block=128, lr=2e-3, warmup=200, eval_every=1000, seed=0),
        ),
        Recipe(
            name="gpt_bpe_wiki",
            description="GPT (GPT-2 block) on wiki, byte-level BPE tokens (bpe_tokenizer's 4,000 ids)",
            corpus="wiki",
            tokenization="bpe",
            min_count=1,
            model="gpt",
            model_config={"block_size": 128, "d_model": 128, "n_layers": 4, "n_heads": 4, "dropout": 0.1,
                          "reset_at_bos": True, "window_stride": 64},
            train=TrainConfig(steps=3000, batch_size=16, block=128, lr=2e-3, warmup=200, eval_every=1000, seed=0),
        ),
        Recipe(
            name="gpt_words_wiki",
            description="GPT (modern block) on wiki words (the n-gram chapter's vocabulary), tied embeddings",
            corpus="wiki",
            tokenization="words_lower",
            min_count=2,
            model="gpt",
            model_config={**MODERN_BLOCK, "block_size": 64, "d_model": 96, "n_layers": 4, "n_heads": 4,
                          "dropout": 0.2, "reset_at_bos": True, "window_stride": 32},
            train=TrainConfig(steps=3000, batch_size=16, block=64, lr=2e-3, warmup=200, eval_every=1000, seed=0),
        ),
        Recipe(
            name="gpt_chars_peoples_daily",
            description="character-level GPT (modern block) on People's Daily (Chinese characters)",
            corpus="peoples_daily",
            tokenization="chars",
            min_count=2,
            model="gpt",
            model_config={**MODERN_BLOCK, "block_size": 128, "d_model": 128, "n_layers": 4, "n_heads": 4,
                          "dropout": 0.1, "reset_at_bos": True, "window_stride": 64},
            train=TrainConfig(steps=3000, batch_size=16, block=128, lr=2e-3, warmup=200, eval_every=1000, seed=0),
        ),
        Recipe(
            name="masked_chars_wiki",
            description="masked LM (BERT's objective: the GPT body without the causal mask, rotary positions) "
                        "on wiki characters",
            corpus="wiki",
            tokenization="chars",
            min_count=2,
            model="masked_lm",
            # gpt_chars_wiki's size, with rotary positions: without the causal mask, learned positions kept the
            # model at the unigram plateau (a trial with d_model=64, 2 layers, 400 steps: valid loss 2.94 with
            # learned positions, 2.17 with RoPE)
            model_config={"block_size": 128, "d_model": 128, "n_layers": 4, "n_heads": 4, "dropout": 0.1,
                          "positions": "rope"},
            train=TrainConfig(steps=2000, batch_size=16, block=128, lr=2e-3, warmup=200, eval_every=1000, seed=0),
        ),
    ]
}


def recipe_named(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"no recipe named {name!r}; the recipes are {', '.join(RECIPES)} (python -m lmlib.train --list)")
    return RECIPES[name]


def recipe_data(recipe: Recipe) -> tuple[Vocab, torch.Tensor, torch.Tensor]:
    """The recipe's vocabulary (from its training split) and its train and valid streams."""
    tokenize = TOKENIZATIONS[recipe.tokenization]
    train_sents, valid_sents = tokenize(recipe.corpus, "train"), tokenize(recipe.corpus, "valid")
    if recipe.tokenization in TOKENIZER_VOCABULARIES:
        vocab = TOKENIZER_VOCABULARIES[recipe.tokenization](recipe.corpus)
    else:
        vocab = Vocab((t for s in train_sents for t in s), min_count=recipe.min_count)
    for token in getattr(MODELS[recipe.model]()[1], "input_tokens", ()):  # e.g. a masked LM's <mask>
        vocab = Vocab.from_itos([*vocab.itos, token])
    return vocab, encode_stream(vocab, train_sents), encode_stream(vocab, valid_sents)


def build_model(recipe: Recipe, vocab: Vocab) -> nn.Module:
    """A freshly initialised model of the recipe (seeded by the recipe)."""
    config_class, model_class = MODELS[recipe.model]()
    torch.manual_seed(recipe.train.seed)
    return model_class(config_class(vocab_size=len(vocab), **recipe.model_config), vocab)


def run_recipe(recipe: Recipe, out: Path = CHECKPOINTS, max_steps: int | None = None, device: str = "cpu",
               resume: Path | None = None, progress: bool | None = None) -> Path:
    """Train a recipe; write OUT/NAME.pt (weights), OUT/NAME.pt.sha256, OUT/NAME.json (log), OUT/NAME.state.pt."""
    vocab, train_stream, valid_stream = recipe_data(recipe)
    model = build_model(recipe, vocab)
    state = out / f"{recipe.name}.state.pt"
    history = train(model, train_stream, valid_stream, recipe.train, checkpoint=state, resume=resume,
                    max_steps=max_steps, progress=progress, device=device)
    if int(os.environ.get("RANK", "0")) != 0:
        return out / f"{recipe.name}.pt"
    model.to("cpu")
    # The release file keeps float16 weights only, to stay within the course's 5 MB per checkpoint.
    weights = save_checkpoint(out / f"{recipe.name}.pt", model, None, recipe.train, history["step"][-1], history,
                              half=True)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    (out / f"{recipe.name}.pt.sha256").write_text(f"{digest}  {weights.name}\n")
    log = {"recipe": recipe.name, "parameters": model.num_parameters(), **history}
    (out / f"{recipe.name}.json").write_text(json.dumps(log, indent=1) + "\n")
    return weights


def load_checkpoint(name: str, directory: Path | None = None) -> nn.Module:
    """The model a recipe made, from ``checkpoints/NAME.pt``, after checking its recorded SHA-256."""
    recipe = recipe_named(name)
    directory = CHECKPOINTS if directory is None else Path(directory)
    path, digest_file = directory / f"{name}.pt", directory / f"{name}.pt.sha256"
    remake = f"regenerate it with: python -m lmlib.train {name}  (or: make checkpoints)"
    if not path.exists() or not digest_file.exists():
        raise FileNotFoundError(f"{path} or its .sha256 is missing; {remake}")
    expected = digest_file.read_text().split()[0]
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise ValueError(f"{path} has SHA-256 {actual[:12]}..., not the recorded {expected[:12]}...: "
                         f"the file is altered or corrupt; {remake}")
    state = read_checkpoint(path)
    made_by = {**state["train_config"], **state["model_config"]}
    wanted = {**dataclasses.asdict(recipe.train), **recipe.model_config}
    differ = sorted(k for k in wanted if made_by.get(k) != wanted[k])
    if differ:
        detail = ", ".join(f"{k}: file {made_by.get(k)!r} vs recipe {wanted[k]!r}" for k in differ)
        raise ValueError(f"{path} was not made by recipe {name!r} as it stands ({detail}); {remake}")
    vocab = Vocab.from_itos(state["vocab"])
    config_class, model_class = MODELS[recipe.model]()
    model = model_class(config_class(**state["model_config"]), vocab)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
    model.history = state["history"]
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.train", description="Train one of lmlib's recipes.")
    parser.add_argument("recipe", nargs="?", help="the recipe's name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--out", type=Path, default=CHECKPOINTS, help="output folder (default: checkpoints/)")
    parser.add_argument("--max-steps", type=int, help="stop after N steps (the schedule still spans the recipe's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--resume", type=Path, help="a NAME.state.pt to continue from")
    args = parser.parse_args(argv)
    if args.list or not args.recipe:
        for r in RECIPES.values():
            print(f"{r.name:<{max(map(len, RECIPES))}}  {r.description} ({r.train.steps} steps)")
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to this PyTorch build; use --device cpu")
    if args.max_steps is not None and args.max_steps <= 0:
        parser.error("--max-steps must be > 0")
    try:
        recipe = recipe_named(args.recipe)
    except KeyError as e:
        parser.error(e.args[0])
    path = run_recipe(recipe, args.out, args.max_steps, args.device, args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
