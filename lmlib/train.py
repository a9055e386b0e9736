"""One training loop for every neural model in lmlib.

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
the chosen positions are scored, with no shift. A model whose ``objective`` is
``"seq2seq"`` (``lmlib.seq2seq.Seq2Seq``) reads (source, target) pairs: its data
is a 2-D tensor, one pair a row (``lmlib.seq2seq.encode_pairs``), each batch
``batch_size`` random rows, and it predicts every target token from the source
and the target tokens before it (teacher forcing). A model whose ``objective`` is ``"sft"``
(``lmlib.sft.SFT``) reads chats the same way, one a row (``lmlib.sft.sft_rows``: its ids and its labels), and
predicts the tokens its labels keep (the assistant's). Both read their rows through ``model.pair_inputs`` and are
evaluated by ``model.pairs_logprob`` (``PAIR_OBJECTIVES``). A model whose ``objective`` is
``"distill"`` (``lmlib.distill.Distillation``) is a student with a frozen teacher: its loss
mixes the cross-entropy with the KL divergence from the teacher's distribution. A model whose ``objective`` is
``"dpo"`` (``lmlib.dpo.DPO``) is a policy with a frozen reference: its data is a 2-D tensor of preference pairs,
one a row (``lmlib.dpo.pair_rows``), and its loss is DPO's.

A model is a ``lmlib.neural.NeuralLM``: it maps [B, T] ids to [B, T, V]
logits (of the next token; of the hidden token itself for a masked LM) and declares what the loop needs to know of it
(``takes_state``, ``context_size``, ``objective``); a model that takes a state
(an RNN, ``layout = "sequential"``) maps ``model(ids, state) -> (logits,
state)``, the state a tuple of tensors. Data is a *stream*: one 1-D tensor of ids, the training
sentences as ``<bos> w_1 .. w_n <eos>`` one after another.

The same ``train`` runs under ``torchrun --nproc_per_node=N`` with
DistributedDataParallel: each rank reads its own rows of every batch, the
gradients are averaged, and only rank 0 prints, evaluates and saves.

``checkpoint=`` writes the whole training state with ``lmlib.checkpoint`` and
``resume=`` continues from it, bit for bit in one CPU process. The course's
recipes, which make its checkpoints, are ``lmlib.course.recipes`` (``python -m
lmlib.course.recipes --list``); this module imports no model.

``with training_precision(model, "bf16"): train(model, ...)`` is mixed precision, opt-in: the training steps'
forward pass runs under ``torch.autocast`` (matrix products in bfloat16, accumulated in float32; the loss in
float32), while the weights, their gradients and AdamW's moments stay float32 (the master weights). Validation
stays float32. The default, float32 throughout, is the one that reproduces across CPUs: bfloat16 kernels round
differently from one CPU to the next.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from lmlib import lm
from lmlib.checkpoint import restore_training, save_checkpoint
from lmlib.neural import NeuralLM, is_state
from lmlib.show import interactive, progress_bar
from lmlib.tokenize import Vocab

# Objectives whose data are rows of (input, target) pairs, not a token stream: the model's pair_inputs(rows) gives
# what the network reads and the targets it predicts (-100: not scored), its pairs_logprob(rows) the evaluation.
PAIR_OBJECTIVES = ("seq2seq", "sft")
# The row data of every objective that reads rows (DPO's too, though it reads its pairs itself: _preference_loss).
PAIR_ROWS = {"seq2seq": "(source, target) rows for a seq2seq model (see lmlib.seq2seq.encode_pairs)",
             "sft": "(ids, labels) rows of chats for an SFT model (see lmlib.sft.sft_rows)",
             "dpo": "preference pairs for DPO, one pair a row (see lmlib.dpo.pair_rows)"}

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


# --- precision -----------------------------------------------------------------------------------

# The precisions a training run may ask for: the autocast dtype of its forward pass (None: float32 throughout).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


@contextlib.contextmanager
def training_precision(model: nn.Module, precision: str = "fp32") -> Iterator[None]:
    """Within: ``model``'s forward pass in training mode runs under ``torch.autocast`` to ``precision``.

    "bf16": the matrix products (linear layers, attention) read bfloat16 copies of their inputs and
    weights and accumulate in float32; norms, softmax and ``_loss``'s cross-entropy stay float32, and so
    do the parameters, their gradients and the optimizer's state. The backward pass runs outside
    autocast, in the dtypes the forward pass chose. In eval mode (``_evaluate``) the forward pass is
    float32, so validation losses compare across precisions. "fp32" changes nothing.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        yield
        return
    shadowed = model.__dict__.get("forward")  # an outer training_precision's, restored on the way out
    forward = model.forward

    def autocast_forward(*args, **kwargs):
        device_type = lm.model_device(model).type  # where it is now: train() may have moved it
        with torch.autocast(device_type, dtype=dtype, enabled=model.training):
            return forward(*args, **kwargs)

    model.forward = autocast_forward
    try:
        yield
    finally:
        if shadowed is None:
            del model.forward  # the class's forward again
        else:
            model.forward = shadowed


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
    device: str | None = None,
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
    a notebook. ``device``: where to train (default: where the model is).
    """
    _check_training_inputs(model, train_stream, valid_stream, config)
    device = str(lm.model_device(model)) if device is None else device
    rank, world, device = _distributed(device)
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
        step, history, carry = restore_training(resume, model, optimizer, config, device)
    net = model if world == 1 else nn.parallel.DistributedDataParallel(model)
    end = config.steps if max_steps is None else min(config.steps, max_steps)
    batches = _batches(train_stream, config, step, rank, world)
    show = rank == 0 and (interactive() if progress is None else progress)
    bar = progress_bar(end, show, unit="step", initial=step)
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
    if model.objective == "dpo":  # lmlib.dpo: rows of pairs, and DPO's summed loss
        return _preference_loss(net, model, window, world)
    x, y = window[:, :-1], window[:, 1:]  # [b, T]
    if model.objective == "masked":
        # BERT's objective: y holds the chosen tokens of x (no shift), -100 elsewhere
        x, y = model.corrupt(x)
    if model.objective in PAIR_OBJECTIVES:  # rows: the network's inputs, and the targets
        inputs, y = model.pair_inputs(window)
        logits = net(*inputs)
    elif model.takes_state:
        logits, carry = net(x, carry)
        _check_state(model, carry)
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
    if model.objective == "distill":  # lmlib.distill: the loss mixes in KL to a teacher
        summed = model.distillation_loss(x, logits, targets, summed)  # (logged: the CE)
    if carry is not None:  # truncated BPTT: the state goes on, its gradient stops here
        carry = tuple(c.detach() for c in carry)
    return summed * world / stats[1], (stats[0] / stats[1]).item(), int(stats[1]), carry


def _preference_loss(net, model, rows: torch.Tensor, world: int):
    """``_loss`` for a ``lmlib.dpo.DPO`` model: the rank's summed DPO loss over its pairs, scaled to the global
    mean; the pairs count as the targets. The policy's forward pass goes through ``net`` (DDP)."""
    summed = model.pair_losses(rows, net(rows)).losses.sum()
    stats = torch.stack([summed.detach(), summed.new_tensor(len(rows))])
    if world > 1:
        dist.all_reduce(stats)
    return summed * world / stats[1], (stats[0] / stats[1]).item(), int(stats[1]), None


def _check_state(model: NeuralLM, state) -> None:
    if not is_state(state):
        raise TypeError(f"{type(model).__name__} returned a state of type {type(state).__name__}: a model that "
                        "takes_state returns its state as a tuple of tensors (lmlib.neural)")


def _batches(stream: torch.Tensor, config: TrainConfig, step: int, rank: int, world: int):
    """Yield (this rank's rows of the batch for each step from ``step`` on, whether the state must reset)."""
    rows = slice(rank, None, world)
    if stream.ndim == 2:  # one example a row (seq2seq pairs, SFT chats): random rows, by (seed, step) as below
        while True:
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            yield stream[torch.randint(0, len(stream), (config.batch_size,), generator=generator)][rows], True
            step += 1
    if config.layout == "random":
        while True:  # each step's batch depends on (seed, step) only: resumable, the same for every world size
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            # unrelated windows: a model that takes a state starts each one fresh
            yield random_windows(stream, config.batch_size, config.block, generator)[rows], True
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
    elif model.objective in PAIR_OBJECTIVES:
        total, count = model.pairs_logprob(stream, batch_size=32)
    elif model.objective == "dpo":  # the mean DPO loss of the pairs
        total, count = model.preference_logprob(stream, batch_size=32)
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


def _distributed(device: str) -> tuple[int, int, str]:
    """(rank, world size, this process's device): join the process group when started by ``torchrun``,
    each process on its own GPU (``cuda`` becomes cuda:LOCAL_RANK); else (0, 1, device)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1, device
    if device == "cuda":  # NCCL needs one GPU per process
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


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
    rows = PAIR_ROWS.get(model.objective)
    pairs = rows is not None
    for name, stream in (("train_stream", train_stream), ("valid_stream", valid_stream)):
        if stream is None and name == "valid_stream":
            continue
        if not isinstance(stream, torch.Tensor) or stream.ndim != 1 + pairs or stream.dtype != torch.long:
            raise TypeError(f"{name} must be a 2-D LongTensor of {rows}" if pairs else
                            f"{name} must be a 1-D LongTensor of token ids (see lmlib.train.encode_stream)")
    if pairs:  # batches draw rows with replacement: any number of rows will do
        if config.layout != "random" or len(train_stream) == 0:
            raise ValueError(f"a {model.objective} model trains on random rows, {rows}: layout='random' and at "
                             "least one row")
        return
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
