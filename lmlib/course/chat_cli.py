"""Chat with a chat model in the terminal: the answer appears token by token as the model writes it.

    python -m lmlib.course.chat_cli sft_bpe_wiki                  # checkpoints/sft_bpe_wiki.pt
    python -m lmlib.course.chat_cli path/to/model.pt --tokenizer path/to/tokenizer.json
    python -m lmlib.course.chat_cli sft_bpe_wiki --temperature 0.8 --top-p 0.9 --seed 1 --max-tokens 48

A chat model is a checkpoint (``lmlib.checkpoint``'s format) whose vocabulary holds the chat tokens
(``lmlib.chat.CHAT_TOKENS``) and is its tokenizer's: the course's is the wiki byte-level BPE with the chat tokens
(the default ``--tokenizer``), the SFT models' (``python -m lmlib.course.sft_runs``). A checkpoint without the chat
tokens (a pretrained model, never fine-tuned on chats) is refused, by name, with the fix.

Each turn. The chat (an optional ``--system`` message, then user and assistant turns) is formatted by
``lmlib.chat.chat_ids`` with the generation prompt ``<|assistant|>``, and ``lmlib.generate.stream`` writes the
answer one token at a time on the model's KV cache (``decode_step``: each new token one step), until the model
ends its turn with ``<|end|>`` (or any other special token: a role, ``<eos>``) or writes ``--max-tokens``
tokens. Greedy by default (``--temperature 0``); sampling draws from one generator seeded by ``--seed``, so a
session with the same inputs gives the same answers.

The window. The model reads at most W = ``block_size`` tokens, and the chat must leave room for a whole answer:

    len(chat_ids(chat)) + max_tokens <= W

When the next prompt would not fit, the oldest whole turns (a user message and its answer) are dropped, the system
message kept, and the chat says how many. ``/reset`` forgets the chat (and reseeds the sampler: the chat starts
over); ``/quit``, end of input (Ctrl-D) or Ctrl-C end it.

``Chat`` holds the conversation for the CLI and for the chapter's chat box (``lmlib.course.viz.chat_box``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import torch

from lmlib.chat import CHAT_TOKENS, chat_ids, chat_token_ids, with_chat_tokens
from lmlib.checkpoint import check_digest, model_from_state, read_checkpoint
from lmlib.course.recipes import CHECKPOINTS, RECIPES, bpe_tokenizer
from lmlib.generate import stream
from lmlib.neural import NeuralLM
from lmlib.tokenize import BPETokenizer

MAKE_CHAT_MODEL = "python -m lmlib.course.sft_runs sft_bpe_wiki"  # writes checkpoints/sft_bpe_wiki.pt
TOKENIZER_CORPUS = "wiki"  # the course's chat models read its byte-level BPE (lmlib.course.recipes.bpe_tokenizer)
HELP = "/reset forgets the chat, /quit (or Ctrl-D) ends it"
FORGOTTEN = "the chat is forgotten: a new one begins"


@dataclass(frozen=True)
class Decoding:
    """How each answer is decoded (``lmlib.generate.stream``'s settings): temperature 0 is greedy."""

    max_tokens: int = 32
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    seed: int = 0

    def describe(self) -> str:
        if self.temperature == 0:
            how = "greedy"
        else:
            how = f"sampled at temperature {self.temperature:g}" + "".join(
                f", {name} {value:g}" for name, value in (("top-k", self.top_k), ("top-p", self.top_p)) if value)
            how += f", seed {self.seed}"
        if self.repetition_penalty != 1.0:
            how += f", repetition penalty {self.repetition_penalty:g}"
        return f"answers of up to {self.max_tokens} tokens, {how}"


# --- the conversation ------------------------------------------------------------------------------------------


def fit_to_window(messages: list[dict[str, str]], length: Callable[[list[dict[str, str]]], int],
                  limit: int) -> tuple[list[dict[str, str]], int]:
    """(the chat with its oldest whole turns dropped until ``length(chat) <= limit``, how many turns were dropped).

    ``messages`` is an optional system message, then user and assistant turns, ending with the user's new
    message; a turn is a user message and the assistant's answer to it, dropped together so the chat still
    alternates. The system message and the new message are always kept: ``ValueError`` if they alone are too long.
    """
    system = messages[:1] if messages[0]["role"] == "system" else []
    turns = messages[len(system):]
    dropped = 0
    while length([*system, *turns]) > limit:
        if len(turns) == 1:
            raise ValueError(f"the message is too long: with {'the system message and ' if system else ''}room for "
                             f"the answer it needs {length([*system, *turns]) - limit} tokens more than the "
                             "window holds; write a shorter message (or give the answer less room: --max-tokens)")
        turns = turns[2:]
        dropped += 1
    return [*system, *turns], dropped


class Chat:
    """A conversation with a chat model: its messages, kept within the window, and answers written token by token.

    ``answer = chat.ask(text)`` adds the user's message (dropping the oldest turns if the chat would not fit:
    ``answer.dropped``); iterating ``answer`` yields the answer's text piece by piece as it is decoded, and the
    chat keeps the answer as the assistant's turn once it is written (or interrupted).
    """

    def __init__(self, model: NeuralLM, tokenizer: BPETokenizer, decoding: Decoding = Decoding(),
                 system: str | None = None):
        check_chat_model(model, tokenizer)
        self.model, self.tokenizer, self.decoding = model.eval(), tokenizer, decoding
        self.system = [{"role": "system", "content": system}] if system else []
        self.window: int | None = getattr(model, "window", None)
        # every special token ends the answer: <|end|>, a role, <eos> (and <bos>, <pad>, <unk>: never text)
        self.stop = sorted(t.content for t in tokenizer.tokenizer.get_added_tokens_decoder().values() if t.special)
        self.turns: list[dict[str, str]] = []  # user and assistant messages, alternating
        self.reset()
        if self.window is not None:  # the shortest chat must leave room for a whole answer
            self.fit([*self.system, {"role": "user", "content": "?"}])

    @property
    def messages(self) -> list[dict[str, str]]:
        return [*self.system, *self.turns]

    def reset(self) -> None:
        """Forget the chat (the system message stays) and reseed the sampler: the chat starts over."""
        self.turns = []
        self.generator = torch.Generator().manual_seed(self.decoding.seed)

    def prompt_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The ids the model reads before it answers: the chat, then ``<|assistant|>``."""
        return chat_ids(messages, self.tokenizer, add_generation_prompt=True)

    def fit(self, messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], int]:
        """``fit_to_window`` with room for an answer of ``max_tokens`` tokens in the model's window."""
        if self.window is None:
            return messages, 0
        limit = self.window - self.decoding.max_tokens
        if limit < 1:
            raise ValueError(f"max_tokens={self.decoding.max_tokens} leaves no room for the chat in the model's "
                             f"window of {self.window} tokens: ask for shorter answers (--max-tokens)")
        return fit_to_window(messages, lambda m: len(self.prompt_ids(m)), limit)

    def ask(self, text: str) -> Answer:
        """Add the user's message and return the answer to it, to be read (decoded) by iterating it.
        ``ValueError`` (and the chat unchanged) if the message is not valid chat text or cannot fit."""
        messages, dropped = self.fit([*self.messages, {"role": "user", "content": text}])
        ids = self.prompt_ids(messages)  # checks the text: no special tokens in it
        self.turns = messages[len(self.system):]
        return Answer(self, ids, dropped)

    def keep(self, answer: Answer) -> None:
        """Record a written answer as the assistant's turn; an empty one is left out with the message it answers
        (a chat has no empty message)."""
        if answer.text.strip():
            self.turns.append({"role": "assistant", "content": answer.text})
        else:
            self.turns.pop()


class Answer:
    """The answer to one message: iterate it for the text as it is decoded; then ``text``, ``ids`` (the answer's
    ids, without the token that ended it), ``ended`` (the model ended its turn) and ``cut`` (it reached
    ``max_tokens`` first) say what was written, and ``dropped`` how many old turns made room for it."""

    def __init__(self, chat: Chat, prompt_ids: list[int], dropped: int):
        self.chat, self.prompt_ids, self.dropped = chat, prompt_ids, dropped
        self.ids: list[int] = []
        self.text, self.ended, self.done = "", False, False

    @property
    def cut(self) -> bool:
        return self.done and not self.ended and len(self.ids) == self.chat.decoding.max_tokens

    def notes_before(self) -> list[str]:
        """What the chat says before the answer: the turns it dropped to make room."""
        n = self.dropped
        return [f"the chat outgrew the window of {self.chat.window} tokens: the oldest {n} "
                f"turn{'s' if n > 1 else ''} dropped"] if n else []

    def notes_after(self) -> list[str]:
        """What the chat says after the answer: cut at the longest answer allowed, or left out as empty."""
        if self.cut:
            return [f"cut at {self.chat.decoding.max_tokens} tokens, the longest answer allowed (max_tokens)"]
        return [] if self.text.strip() or not self.done else ["an empty answer: this turn is left out of the chat"]

    def __iter__(self) -> Iterator[str]:
        if self.done:
            raise RuntimeError("this answer has been read; ask the chat again")
        chat, d = self.chat, self.chat.decoding
        vocab = chat.model.vocab
        tokens = [vocab.itos[i] for i in self.prompt_ids[1:]]  # the decoder puts <bos> first itself
        stop_ids = set(vocab.encode(chat.stop))
        try:
            for i in stream(chat.model, tokens, d.max_tokens, temperature=d.temperature, top_k=d.top_k,
                            top_p=d.top_p, repetition_penalty=d.repetition_penalty, stop=chat.stop,
                            generator=chat.generator):
                if i in stop_ids:
                    self.ended = True
                    break
                self.ids.append(i)
                text = chat.tokenizer.decode(self.ids)
                if not text.endswith("\ufffd"):  # a character whose bytes are not all written yet waits
                    piece, self.text = text[len(self.text):], text
                    yield piece
            text = chat.tokenizer.decode(self.ids)
            if text != self.text:  # cut inside a character: its bytes so far
                piece, self.text = text[len(self.text):], text
                yield piece
        finally:  # written to the end, or interrupted: the chat keeps what was written
            self.done = True
            chat.keep(self)


# --- loading a chat model --------------------------------------------------------------------------------------


def checkpoint_path(checkpoint: str | Path, directory: Path | None = None) -> Path:
    """The file a CHECKPOINT argument names: a path, or a name in ``checkpoints/`` (``sft_bpe_wiki`` ->
    ``checkpoints/sft_bpe_wiki.pt``); ``FileNotFoundError`` naming both places and how to make a chat model."""
    path = Path(checkpoint)
    if path.is_file():
        return path
    named = (CHECKPOINTS if directory is None else Path(directory)) / f"{checkpoint}.pt"
    if path.suffix != ".pt" and len(path.parts) == 1 and named.is_file():
        return named
    remake = (f"python -m lmlib.course.recipes {checkpoint}" if str(checkpoint) in RECIPES else MAKE_CHAT_MODEL)
    raise FileNotFoundError(f"no checkpoint {str(checkpoint)!r}: neither that file nor {named} exists; give the path "
                            f"of a chat model's .pt file, or make the course's: {remake}")


def read_model(path: Path) -> NeuralLM:
    """The model in an lmlib checkpoint file, after checking the SHA-256 recorded beside it (if one is)."""
    check_digest(path, "regenerate it with the command that made it (the course's chat model: "
                       f"{MAKE_CHAT_MODEL})", required=False)
    state = read_checkpoint(path)  # ValueError for a file that is not an lmlib checkpoint
    module, _, name = state.get("model_class", "lmlib.transformer.GPT").rpartition(".")
    if not module.startswith("lmlib."):
        raise ValueError(f"{path} holds a {module}.{name}, not an lmlib model: chat with an lmlib checkpoint")
    return model_from_state(state, getattr(importlib.import_module(module), name))


def load_tokenizer(path: str | Path | None = None) -> BPETokenizer:
    """A tokenizer from ``path`` (a ``tokenizer.json`` or the folder ``lmlib.chat.save_chat_tokenizer`` wrote), or,
    with none, the course's: the wiki byte-level BPE with the chat tokens."""
    if path is None:
        return with_chat_tokens(bpe_tokenizer(TOKENIZER_CORPUS))
    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no tokenizer at {path}: give a tokenizer.json, or the folder that holds one")
    return BPETokenizer.load(file)


def check_chat_model(model: NeuralLM, tokenizer: BPETokenizer, where: str = "the model") -> None:
    """Raise ``ValueError`` unless ``model`` is a chat model (``check_chat_vocabulary``) that reads ``tokenizer``'s
    ids."""
    check_chat_vocabulary(model, where)
    chat_token_ids(tokenizer)  # the tokenizer has the chat tokens too
    ours, theirs = model.vocab.itos, tokenizer.tokens_by_id()
    if ours != theirs:
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
                     min(len(ours), len(theirs)))
        raise ValueError(f"{where}'s vocabulary ({len(ours)} tokens) is not the tokenizer's ({len(theirs)}; they "
                         f"first differ at id {first}): give the tokenizer the model was trained with (--tokenizer: "
                         "its tokenizer.json, or the folder lmlib.chat.save_chat_tokenizer wrote)")


def check_chat_vocabulary(model: NeuralLM, where: str = "the model") -> None:
    """Raise ``ValueError`` unless the model's vocabulary holds the chat tokens: a foreign checkpoint (a language
    model never fine-tuned on chats) is refused, with the fix."""
    if model.vocab is None:
        raise ValueError(f"{where} has no vocabulary: load it from its checkpoint, which holds one")
    missing = [t for t in CHAT_TOKENS if t not in model.vocab.stoi]
    if missing:
        raise ValueError(f"{where} is not a chat model: its vocabulary has no {', '.join(missing)} (a language model "
                         "never given the chat tokens and fine-tuned on chats). Chat with a fine-tuned model "
                         f"({MAKE_CHAT_MODEL} makes one), or give this one the chat tokens "
                         "(lmlib.chat.add_chat_tokens) and fine-tune it on chats (lmlib.sft)")


def load_chat(checkpoint: str | Path, tokenizer: str | Path | None = None, decoding: Decoding = Decoding(),
              system: str | None = None, directory: Path | None = None) -> Chat:
    """A ``Chat`` with the chat model a CHECKPOINT argument names (``checkpoint_path``) and its tokenizer
    (``load_tokenizer``)."""
    path = checkpoint_path(checkpoint, directory)
    model = read_model(path)
    check_chat_vocabulary(model, str(path))  # before the course tokenizer is made (seconds)
    chat_tokenizer = load_tokenizer(tokenizer)
    check_chat_model(model, chat_tokenizer, str(path))
    return Chat(model, chat_tokenizer, decoding, system)


# --- the command line ------------------------------------------------------------------------------------------


def run(chat: Chat, read: Callable[[str], str] = input, out: TextIO = sys.stdout) -> None:
    """The chat loop: read a line, answer it as it is decoded, until ``/quit`` or the end of the input."""

    def say(text: str = "", end: str = "\n") -> None:
        out.write(text + end)
        out.flush()

    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            say()
            return
        if line in ("/quit", "/exit"):
            return
        if line == "/reset":
            chat.reset()
            say(f"[{FORGOTTEN}]")
            continue
        if line.startswith("/"):
            say(f"[no command {line.split()[0]}: {HELP}]")
            continue
        if not line:
            continue
        try:
            answer = chat.ask(line)
        except ValueError as e:
            say(f"[{e}]")
            continue
        for note in answer.notes_before():
            say(f"[{note}]")
        say("assistant> ", end="")
        try:
            for piece in answer:
                say(piece, end="")
        except KeyboardInterrupt:
            say(" [interrupted]")
            continue
        say()
        for note in answer.notes_after():
            say(f"[{note}]")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _at_least_zero(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _above_zero(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lmlib.course.chat_cli",
                                     description=f"Chat with a chat model in the terminal ({HELP}).")
    parser.add_argument("checkpoint", help="a chat model: the path of its .pt file, or its name in checkpoints/ "
                                           "(e.g. sft_bpe_wiki)")
    parser.add_argument("--tokenizer", type=Path, help="its tokenizer: a tokenizer.json or the folder holding one "
                                                       "(default: the course's wiki BPE with the chat tokens)")
    parser.add_argument("--system", help="a system message, kept at the head of the chat")
    parser.add_argument("--max-tokens", type=_positive_int, default=Decoding.max_tokens,
                        help=f"the longest answer, in tokens (default {Decoding.max_tokens})")
    parser.add_argument("--temperature", type=_at_least_zero, default=Decoding.temperature,
                        help="0 (the default) is greedy; above 0, sample")
    parser.add_argument("--top-k", type=_positive_int, help="sample from the k most probable tokens")
    parser.add_argument("--top-p", type=_probability, help="sample from the nucleus of probability p")
    parser.add_argument("--repetition-penalty", type=_above_zero, default=Decoding.repetition_penalty,
                        help="divide the probability of tokens already in the chat by this (default 1: none)")
    parser.add_argument("--seed", type=int, default=Decoding.seed, help="the sampler's seed (default 0)")
    return parser


def main(argv: list[str] | None = None) -> None:
    p = parser()
    args = p.parse_args(argv)
    decoding = Decoding(args.max_tokens, args.temperature, args.top_k, args.top_p, args.repetition_penalty, args.seed)
    try:
        chat = load_chat(args.checkpoint, args.tokenizer, decoding, args.system)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    model = chat.model
    window = f"a window of {chat.window} tokens" if chat.window else "no window"
    print(f"Chatting with {args.checkpoint} ({model.num_parameters():,} parameters, {window}; "
          f"{decoding.describe()}); {HELP}.", flush=True)
    run(chat, input if sys.stdin.isatty() else _echoed_input)


def _echoed_input(prompt: str) -> str:
    """``input`` for a script piped in: the line is shown after the prompt, as a terminal shows what is typed."""
    line = input(prompt)
    print(line, flush=True)
    return line


if __name__ == "__main__":
    main()
