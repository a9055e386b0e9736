"""Supervised fine-tuning (SFT): a pretrained language model taught to answer, by training on chats whose answers
are given.

A chat becomes token ids and labels (``lmlib.chat.chat_ids_and_labels``): a token's label is the token itself
where the assistant writes it (its text and the ``<|end|>`` after it), ``IGNORE_INDEX`` (-100, not scored)
everywhere else. The loss is pretraining's next-token cross-entropy, the same teacher forcing (every position reads
the true tokens before it, ``lmlib.pretraining.causal_lm_loss``), scored on the assistant's tokens only:

    L_SFT = -(1 / |A|) sum_{t in A} ln P(x_t | x_<t),      A = {t : labels[t] != -100}, over the whole batch

a mean over the batch's assistant tokens, not over its chats (a long answer weighs more than a short one, as in
TRL's ``SFTTrainer``). The whole-sequence variant (``on="all"``) scores every token after ``<bos>``:

    L_all = -(1 / |R|) sum_{t in R} ln P(x_t | x_<t),      R = the chat's real tokens after <bos>

and so also trains the model to write the user's instructions, which it never has to.

Batches. ``collate`` right-pads a batch's chats with ``<pad>`` (label -100 there) into Hugging Face's three
tensors. lmlib's GPT needs no attention mask: with the padding on the right and a causal mask, no real token ever
looks at it (``lmlib.transformer.padding_mask``); the mask is for a Hugging Face model.

Training. ``SFT`` wraps a GPT as a model whose ``objective`` is ``"sft"``: ``lmlib.train`` reads its data as rows
(``sft_rows``: each chat's ids, then its labels) through ``SFT.pair_inputs``, as it reads a seq2seq model's
(source, target) rows, and scores the targets with its one cross-entropy. Full SFT is
``train(SFT(gpt), rows, valid_rows, config)``; LoRA SFT the same after ``lmlib.finetune.add_lora(gpt, ...)``.
``respond`` is what the fine-tuned model answers: greedy decoding after ``<|assistant|>`` up to ``<|end|>``.

Cross-checks (tests/test_sft.py): ``sft_loss`` equals the loss of TRL's ``SFTTrainer(assistant_only_loss=True)``
(its own ``compute_loss`` on the batch its own collator makes) to 1e-6, ``on="all"`` the same trainer's without
that option, both on the same network (``GPT.to_hf``; the Hugging Face model has no way to give ``<pad>`` and
``<bos>`` the -inf logit of a course GPT, so lmlib's side is the network without its vocabulary), and a step of
``lmlib.train`` computes ``sft_loss``. ``trl_trainer`` sets that reference up, for the tests and for
benchmarks/sft_bench.py, which times a step of each.

Bad input: a record with an empty answer, or a chat longer than the model's window (``encode_records``, through
``lmlib.instructions.check_record``), a chat with no assistant token, or an unknown ``on`` raise ``ValueError``
naming the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from lmlib._deps import require
from lmlib.chat import CHAT_TOKENS, chat_ids, chat_ids_and_labels, save_chat_tokenizer
from lmlib.generate import greedy
from lmlib.instructions import Record, check_record
from lmlib.lm import model_device
from lmlib.neural import NeuralLM
from lmlib.pretraining import IGNORE_INDEX, causal_lm_loss
from lmlib.tokenize import BPETokenizer

LOSS_ON = ("assistant", "all")  # the tokens SFT scores: the assistant's (L_SFT), or every token (L_all)
Example = tuple[list[int], list[int]]  # (ids, labels) of one chat


# --- data: records -> (ids, labels) -> batches -------------------------------------------------------------------


def encode_records(records: Sequence[Record], tokenizer: BPETokenizer, window: int) -> list[Example]:
    """Each record's chat as (ids, labels) (``chat_ids_and_labels``), after ``check_record``: a non-empty answer,
    and the whole chat at most ``window`` tokens (a model's ``block_size``)."""
    def length(messages: list[dict[str, str]]) -> int:
        return len(chat_ids(messages, tokenizer))

    return [chat_ids_and_labels(check_record(r, window, length).messages(), tokenizer) for r in records]


def collate(examples: Sequence[Example], pad_id: int,
            width: int | None = None) -> dict[str, torch.Tensor]:
    """(ids, labels) of chats -> ``input_ids``, ``labels`` and ``attention_mask``, each
    [B, T]: right-padded with ``pad_id`` (label -100, mask 0) to the longest chat, or to
    ``width`` columns."""
    _check_examples(examples, width)
    T = max(len(ids) for ids, _ in examples) if width is None else width
    input_ids = torch.full((len(examples), T), pad_id, dtype=torch.long)  # [B, T]
    labels = torch.full((len(examples), T), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros(len(examples), T, dtype=torch.long)
    for b, (ids, chat_labels) in enumerate(examples):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        labels[b, : len(ids)] = torch.tensor(chat_labels)
        attention_mask[b, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def _check_examples(examples: Sequence[Example], width: int | None) -> None:
    if not examples:
        raise ValueError("no chats to collate: a batch needs at least one (ids, labels) pair")
    for i, (ids, labels) in enumerate(examples):
        if len(ids) != len(labels):
            raise ValueError(f"chat {i} has {len(ids)} ids but {len(labels)} labels: give one label per token "
                             "(lmlib.chat.chat_ids_and_labels)")
        if all(label == IGNORE_INDEX for label in labels):
            raise ValueError(f"chat {i} has no assistant token to learn (every label is {IGNORE_INDEX}): end its "
                             "chat with the assistant's answer, or leave it out")
        if width is not None and len(ids) > width:
            raise ValueError(f"chat {i} is {len(ids)} tokens, longer than the width {width}: leave it out "
                             "(lmlib.instructions.within_window) or widen the rows")


def labels_on(batch: dict[str, torch.Tensor], on: str = "assistant") -> torch.Tensor:
    """[B, T] the labels SFT scores: the batch's own (the assistant's tokens), or,
    ``on="all"``, every real token (-100 at the padding only)."""
    _check_on(on)
    if on == "assistant":
        return batch["labels"]
    return batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)


def _check_on(on: str) -> None:
    if on not in LOSS_ON:
        raise ValueError(f"on must be one of {LOSS_ON} (the assistant's tokens, or every token), got {on!r}")


# --- the loss ------------------------------------------------------------------------------------------------


def sft_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor],
             on: str = "assistant") -> torch.Tensor:
    """L_SFT (``on="assistant"``) or L_all (``on="all"``) of ``model`` ([B, T] ids ->
    [B, T, V] logits) on a ``collate`` batch: the mean of -ln P(x_t | x_<t) over the
    scored tokens of the whole batch."""
    device = model_device(model)  # collate builds the batch on the CPU
    labels = labels_on(batch, on).to(device)  # [B, T], aligned with the ids
    logits = model(batch["input_ids"].to(device))  # [B, T, V]
    # pretraining's loss: position t scored on labels[:, t + 1]; with pad_id = -100 the
    # labels' -100 are skipped
    return causal_lm_loss(logits, labels, pad_id=IGNORE_INDEX)


# --- training with lmlib.train -------------------------------------------------------------------------------


def sft_rows(examples: Sequence[Example], pad_id: int, width: int) -> torch.Tensor:
    """[N, 2 width] the rows ``lmlib.train`` reads for an ``SFT`` model: each chat's ids, right-padded to ``width``
    columns, then its labels (-100 at the padding)."""
    batch = collate(examples, pad_id, width)
    return torch.cat([batch["input_ids"], batch["labels"]], dim=1)


def rows_batch(rows: torch.Tensor, pad_id: int) -> dict[str, torch.Tensor]:
    """``sft_rows`` rows [B, 2 width] -> the ``collate`` batch they hold, without the columns that are padding in
    every row (a batch of short chats reads fewer positions)."""
    if rows.ndim != 2 or rows.shape[1] % 2 or rows.shape[0] == 0:
        raise ValueError(f"SFT rows are a non-empty [N, 2 width] tensor (lmlib.sft.sft_rows), got shape "
                         f"{tuple(rows.shape)}")
    ids, labels = rows.chunk(2, dim=1)  # [B, width] each
    real = ids != pad_id
    T = int(real.any(dim=0).nonzero().max()) + 1
    return {"input_ids": ids[:, :T], "labels": labels[:, :T], "attention_mask": real[:, :T].long()}


class SFT(NeuralLM):
    """A causal language model fine-tuned on chats by ``lmlib.train``: its loss is ``sft_loss`` (``on``: the
    assistant's tokens, or all), on ``sft_rows``. The network, scoring and decoding are the wrapped model's, so
    evaluation and ``respond`` measure it; afterwards ``.model`` is the fine-tuned model. Only the parameters that
    require a gradient train (after ``lmlib.finetune.add_lora``: the adapters)."""

    objective = "sft"

    def __init__(self, model: NeuralLM, on: str = "assistant"):
        super().__init__()
        if model.vocab is None or model.takes_state or model.objective != "causal":
            raise ValueError("SFT fine-tunes a causal model that takes no state (a GPT) and has a vocabulary: "
                             "the one the chat tokenizer's ids mean (lmlib.chat.add_chat_tokens)")
        _check_on(on)
        self.model, self.on = model, on
        self.config, self.context_size = model.config, model.context_size
        self.register_vocab(model.vocab, len(model.vocab))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B, T, V] the model's logits (what ``lmlib.train``'s cross-entropy reads)."""
        return self.model(ids)

    def hidden_states(self, ids: torch.Tensor, state: object | None = None) -> tuple[torch.Tensor, object]:
        return self.model.hidden_states(ids, state)

    def output(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.output(h)

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.sequence_logprobs(ids)  # the model's own scoring (a GPT's sliding window)

    def pair_inputs(self, rows: torch.Tensor) -> tuple[tuple[torch.Tensor], torch.Tensor]:
        """``sft_rows`` rows [B, 2 width] -> ((ids [B, T-1],), targets [B, T-1]): position t reads the ids up to
        t and predicts the label after it (teacher forcing; -100: not scored). What ``lmlib.train`` calls."""
        batch = rows_batch(rows, self.vocab.pad_id)
        labels = labels_on(batch, self.on)
        return (batch["input_ids"][:, :-1],), labels[:, 1:]

    @torch.no_grad()
    def pairs_logprob(self, rows: torch.Tensor, batch_size: int = 32) -> tuple[float, int]:
        """(sum of ln P(x_t | x_<t), number of tokens) over the scored tokens of ``sft_rows`` rows: what
        ``lmlib.train`` evaluates (-sum / number is ``sft_loss`` over all the rows)."""
        total, count = 0.0, 0
        for chunk in rows.split(batch_size):
            batch = rows_batch(chunk.to(self.never_predicted.device), self.vocab.pad_id)
            n = int((labels_on(batch, self.on)[:, 1:] != IGNORE_INDEX).sum())
            total -= sft_loss(self.model, batch, self.on).double().item() * n
            count += n
        return total, count


# --- the reference: TRL's SFTTrainer ----------------------------------------------------------------------


def trl_trainer(tokenizer: BPETokenizer, model: NeuralLM, records: Sequence[Record], folder: str | Path,
                assistant_only: bool = True, **settings):
    """TRL's ``SFTTrainer`` on the records' chats, as lmlib's SFT is checked and timed against it: the model
    converted to Hugging Face (``model.to_hf()``, a copy), the chat tokenizer's folder (``save_chat_tokenizer``),
    the loss on the assistant's tokens (``assistant_only_loss``) or, ``assistant_only=False``, on every token; on the
    CPU, no logging, everything it writes under ``folder``. ``settings`` go to ``trl.SFTConfig`` (learning rate,
    ...)."""
    trl, transformers, datasets = require("trl"), require("transformers"), require("datasets")
    saved = save_chat_tokenizer(tokenizer, Path(folder) / "tokenizer")
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(saved, local_files_only=True)
    args = trl.SFTConfig(output_dir=str(Path(folder) / "trainer"), assistant_only_loss=assistant_only,
                         report_to="none", max_length=None, use_cpu=True, **settings)
    return trl.SFTTrainer(model=model.to_hf(), args=args, processing_class=hf_tokenizer,
                          train_dataset=datasets.Dataset.from_list([{"messages": r.messages()} for r in records]))


# --- answering -----------------------------------------------------------------------------------------------


@torch.no_grad()
def respond(model: NeuralLM, tokenizer: BPETokenizer, messages: Sequence[dict[str, str]],
            max_tokens: int = 32) -> str:
    """The model's answer to a chat that ends with the user's turn: greedy decoding (``lmlib.generate.greedy``)
    after ``<|assistant|>``, up to the first ``<|end|>`` (or another special token: a role, ``<eos>``), at most
    ``max_tokens`` tokens."""
    ids = chat_ids(messages, tokenizer, add_generation_prompt=True)
    if model.vocab is None or model.vocab.itos != tokenizer.tokens_by_id():
        raise ValueError("the model's vocabulary is not the chat tokenizer's: grow the model with "
                         "lmlib.chat.add_chat_tokens(tokenizer, model) and answer with the tokenizer it returns")
    # decoding ends at the first special token; greedy puts <bos> first, and .tokens leave out the token that ended it
    generation = greedy(model, [model.vocab.itos[i] for i in ids[1:]], max_tokens, stop=list(CHAT_TOKENS))
    return tokenizer.decode(model.vocab.encode(generation.tokens))
