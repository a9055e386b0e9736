"""Fine-tuning: a classification head on a language model, what to freeze, and LoRA.

Head. A GPT reads a text ``<bos> w_1 .. w_n``; one vector summarises it, and a linear layer maps that vector
to class scores:

    P(y | text) = softmax(W h + b),   h = the final state of the last real token ("last": in a causal model
                                          the only position that has read the whole text)
                                      or the mean of the real tokens' final states ("mean")

LoRA (Hu et al., 2021). A frozen linear layer y = W x (W: d_out x d_in) gets a trainable low-rank update:

    y = W x + (alpha / r) B A x,      A: r x d_in (random),  B: d_out x r (zeros)

B = 0 at the start, so fine-tuning starts from exactly the pretrained model; only r (d_in + d_out) numbers
train instead of d_in d_out. ``merge`` folds the update into W (W <- W + (alpha / r) B A) so the merged model
costs nothing extra to run. The layout and initialisation are ``peft``'s (``lora_A``, ``lora_B``; A Kaiming-
uniform), so the same A and B give the same outputs as ``peft.get_peft_model`` (tests/test_finetune.py).
``merge_lora`` folds every update in and removes the adapters; ``train_token_rows`` also trains a few embedding rows
(new tokens, e.g. a chat's role tokens), as peft's ``trainable_token_indices``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

POOLINGS = ("last", "mean")


# --- the classification head ------------------------------------------------------------------------------


class GPTClassifier(nn.Module):
    """A GPT body with a linear head: [B, T] ids (``<bos>`` first, right-padded) ->
    [B, n_classes] logits."""

    def __init__(self, body: nn.Module, n_classes: int, pooling: str = "last"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if n_classes < 2:
            raise ValueError(
                f"a classifier needs at least 2 classes, got n_classes={n_classes}")
        self.body, self.pooling, self.n_classes = body, pooling, n_classes
        self.pad_id = body.vocab.pad_id
        self.head = nn.Linear(body.config.d_model, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.body.hidden_states(ids)[0]  # [B, T, d_model], final-normed
        real = ids != self.pad_id  # [B, T]
        if self.pooling == "last":
            last = real.sum(dim=1) - 1  # [B] the last real position (right padding)
            pooled = h[torch.arange(len(ids), device=ids.device), last]  # [B, d_model]
        else:
            pooled = (h * real[..., None]).sum(dim=1) / real.sum(dim=1, keepdim=True)
        return self.head(pooled)  # [B, n_classes]


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of [B, C] logits against [B] labels in 0..C-1 (other labels: a
    clear error)."""
    n_classes = logits.shape[-1]
    if (labels.dtype not in (torch.int64, torch.int32)
            or labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be integer classes in 0..{n_classes - 1}, got "
                         f"values {sorted(set(labels.tolist()))[:10]} "
                         f"(dtype {labels.dtype}): map them to class ids first")
    return F.cross_entropy(logits, labels.long())


def freeze_all_but(model: nn.Module, trainable: tuple[str, ...]) -> int:
    """Train only the parameters whose names start with one of ``trainable`` (e.g. ``("head.",)``: head-only
    fine-tuning); freeze the rest. Returns how many numbers will train."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trainable))
    return trainable_parameters(model)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- LoRA -------------------------------------------------------------------------------------------------


class LoRALinear(nn.Module):
    """y = W x + b + (alpha / r) B A x around a frozen ``nn.Linear`` (W, b); only A and B
    train."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        if (isinstance(r, bool) or not isinstance(r, int)
                or not 1 <= r <= min(base.in_features, base.out_features)):
            raise ValueError(
                f"LoRA rank r must be an integer between 1 and min(d_in, d_out) = "
                f"{min(base.in_features, base.out_features)} for this layer, got {r!r}")
        self.base, self.r, self.alpha, self.scale = base, r, alpha, alpha / r
        base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))  # [r, d_in]
        # [d_out, r]: 0, so the update starts at 0
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        # peft's (and nn.Linear's) initialisation
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)  # [..., d_out]
        if self.merged:
            return y
        # [..., d_in] -> [..., r] -> [..., d_out]
        return y + (x @ self.lora_A.T @ self.lora_B.T) * self.scale

    @torch.no_grad()
    def merge(self) -> None:
        """W <- W + (alpha / r) B A: the same outputs from one matrix."""
        if not self.merged:
            self.base.weight += self.scale * self.lora_B @ self.lora_A
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.scale * self.lora_B @ self.lora_A
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


def add_lora(model: nn.Module, r: int, alpha: float,
             targets: tuple[str, ...] = ("attn.qkv",)) -> list[str]:
    """Wrap every ``nn.Linear`` whose name ends with one of ``targets`` in a
    ``LoRALinear`` and freeze all other parameters (a head named ``head`` stays trainable,
    as peft's ``modules_to_save``). Returns the wrapped names."""
    wrapped = []
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.endswith(targets):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child,
                    LoRALinear(module, r, alpha))
            wrapped.append(name)
    if not wrapped:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if isinstance(m, nn.Linear)})
        raise ValueError(f"no nn.Linear layer's name ends with any of {targets}: name "
                         f"the layers to adapt, among {linear}")
    for name, p in model.named_parameters():
        p.requires_grad_(".lora_" in name or name.startswith("head."))
    return wrapped


def merge_lora(model: nn.Module) -> list[str]:
    """Fold each ``LoRALinear``'s update into its base layer (``merge``) and put that ``nn.Linear`` back in its
    place: the same outputs from a model without LoRA, which saves and loads as its plain class. Returns the
    merged names."""
    merged = []
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, module.base)
            merged.append(name)
    return merged


def train_token_rows(model: nn.Module, token_ids: list[int]) -> int:
    """Train the embedding rows of ``token_ids`` (with tied weights, their output rows too) and no other row, as
    peft's ``LoraConfig(trainable_token_indices=...)``: new tokens a frozen model must learn (a chat's role tokens,
    which start as the mean row, ``lmlib.chat.grow_embedding``). The other rows' gradient is zero, so AdamW without
    weight decay (``lmlib.train`` decays no embedding) leaves them as they are. Returns how many numbers train."""
    embedding = model.token_embedding.weight  # [V, d]
    if model.lm_head.weight is not embedding:
        raise ValueError("train_token_rows trains tied embeddings (tie_weights=True): an untied output layer is "
                         "weight-decayed, which would move its frozen rows")
    if not token_ids or not all(0 <= i < len(embedding) for i in token_ids):
        raise ValueError(f"token_ids must be ids of the embedding's {len(embedding)} rows, got {token_ids!r}")
    rows = torch.zeros(len(embedding), 1, dtype=embedding.dtype, device=embedding.device)  # [V, 1]
    rows[list(token_ids)] = 1
    embedding.requires_grad_(True)
    embedding.register_hook(lambda grad: grad * rows)
    return trainable_parameters(model) - embedding.numel() + len(set(token_ids)) * embedding.shape[1]


# --- data and the training loop ---------------------------------------------------------------------------


def stratified_subset(labels: list, n: int, seed: int) -> list[int]:
    """Indices of ``n`` examples drawn without replacement, each class in its share of ``labels`` (rounded; the
    remainder from the largest classes), so a learning curve's small sets are balanced like the full one."""
    if not 1 <= n <= len(labels):
        raise ValueError(f"asked for {n} labelled examples but the training split has {len(labels)}: "
                         f"use 1 <= n <= {len(labels)}")
    generator = torch.Generator().manual_seed(seed)
    by_class: dict = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    classes = sorted(by_class, key=lambda c: -len(by_class[c]))
    quota = {c: n * len(by_class[c]) // len(labels) for c in classes}
    for c in classes[: n - sum(quota.values())]:
        quota[c] += 1
    picked = []
    for c in classes:
        picked += [by_class[c][j] for j in torch.randperm(len(by_class[c]), generator=generator)[: quota[c]]]
    return sorted(picked)


def check_vocabulary(model_vocab, vocab) -> None:
    """Raise unless ``vocab`` is the model's own: a text encoded with another vocabulary means other tokens."""
    if vocab.itos != model_vocab.itos:
        shorter = min(len(vocab), len(model_vocab))
        differ = next((i for i in range(shorter) if vocab.itos[i] != model_vocab.itos[i]), shorter)
        raise ValueError(f"the texts were encoded with another vocabulary than the model's ({len(vocab)} vs "
                         f"{len(model_vocab)} entries, first difference at id {differ}): encode them with the "
                         "checkpoint's own vocabulary, model.vocab")


def train_classifier(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor,
                     epochs: int, lr: float, batch_size: int = 32, seed: int = 0,
                     weight_decay: float = 0.01) -> list[float]:
    """AdamW on the trainable parameters, shuffled mini-batches, ``epochs`` passes;
    returns each epoch's mean loss.

    ``model`` maps [B, T] right-padded ids to [B, C] logits and has a ``pad_id``; it
    trains where it lives (CPU or GPU), the batches are moved there.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameter is trainable: unfreeze the head at least "
                         "(freeze_all_but(model, ('head.',)))")
    device = params[0].device
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    model.train()
    losses = []
    for _ in range(epochs):
        order, total = torch.randperm(len(ids), generator=generator), 0.0
        for start in range(0, len(ids), batch_size):
            rows = order[start : start + batch_size]
            batch = trim_padding(ids[rows], model.pad_id).to(device)
            loss = classification_loss(model(batch), labels[rows].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(ids))
    model.eval()
    return losses


def trim_padding(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """[B, T] right-padded ids without the columns that are padding in every row (they change nothing)."""
    return ids[:, : int((ids != pad_id).sum(dim=1).max())]


@torch.no_grad()
def predict(model: nn.Module, ids: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """[N] predicted classes (on the CPU), in batches on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(trim_padding(ids[a : a + batch_size], model.pad_id).to(device)).argmax(dim=-1).cpu()
                      for a in range(0, len(ids), batch_size)])


@torch.no_grad()
def predict_proba(model: nn.Module, ids: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """[N, C] class probabilities, the softmax of the logits (on the CPU), in batches on the model's device;
    ``predict`` is their argmax."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(trim_padding(ids[a : a + batch_size], model.pad_id).to(device)).softmax(dim=-1).cpu()
                      for a in range(0, len(ids), batch_size)])


def accuracy(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor, batch_size: int = 128) -> float:
    return (predict(model, ids, batch_size) == labels).float().mean().item()


class HFClassifier(nn.Module):
    """A Hugging Face ``AutoModelForSequenceClassification`` behind the same call as ``GPTClassifier``:
    [B, T] right-padded ids -> [B, C] logits, the attention mask made from ``pad_id``, so the same
    ``train_classifier`` and ``accuracy`` serve both."""

    def __init__(self, model: nn.Module, pad_id: int):
        super().__init__()
        self.model, self.pad_id = model, pad_id

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=(ids != self.pad_id).long()).logits
