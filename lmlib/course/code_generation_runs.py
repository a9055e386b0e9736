"""The code generation chapter's measure: the share of sampled functions that parse, by temperature.

One fixed protocol, so that the GPT and its n-gram baseline are measured alike:

1. the prompt is ``"def "`` (as characters): the start of a top-level function;
2. ``n`` samples per temperature are drawn together, from a ``torch.Generator`` seeded with ``seed``
   (the same seed at every temperature), ``<unk>`` never chosen, at most ``max_characters`` each;
3. each sample is cut where the function ends (``function_text``): before the first line that
   starts at column 0 after the ``def`` line (the first dedent to column 0), or at ``<eos>``, which
   ends each top-level block the models were trained on;
4. it passes if ``ast.parse`` accepts it. That is syntax only: whether the function runs, or does
   anything useful, is not checked (nothing is executed);
5. the share that passes gets a 95% Wilson interval (``lmlib.metrics.wilson_interval``).

A sample that reaches ``max_characters`` without ending counts as failing (reported as
"unfinished"), and one that copies its whole function from the training text is counted as a
copy (``ParseRate.copies``): a parse rate earned by copying is memory, not generation. The
protocol's ceiling is ``written_by_the_library``: the library's own functions, judged as if a
model had written them, fail where they are longer than ``max_characters``.

A row stops as soon as its function has ended (``StopAtFunctionEnd``): what follows the cut is
never judged, so drawing it would be wasted work; and the n-gram model remembers the
distributions of the contexts it has met (``NGramMemo``).

The chapter's one long computation is the GPT's log-probability of every character of the
test split (``module_logprobs``): 20 seconds of two CPU cores, twice that under
``MKL_CBWR=COMPATIBLE``. It is committed, with what it was computed from, and the chapter reads
it (``held_out_scores``) and recomputes a few modules in front of the reader:

    python -m lmlib.course.code_generation_runs            # writes checkpoints/code_generation_stdlib.json
    python -m lmlib.course.code_generation_runs --orders   # the Kneser-Ney baseline's order, chosen on valid

``--orders`` prints the baseline's validation bits per character by order (``kneser_ney_by_order``),
a few minutes.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from lmlib import data
from lmlib.course.recipes import CHECKPOINTS, code_characters, load_checkpoint
from lmlib.data import format_table
from lmlib.generate import sample
from lmlib.lm import IncrementalDecoding, LanguageModel, token_logprobs
from lmlib.metrics import Interval, wilson_interval
from lmlib.ngram import NGramLM

PROMPT = "def "
# A line at column 0 that starts with one of these does not end a function: the closing bracket
# of a signature written one parameter a line.
NOT_AN_END = (")", "]", "}")


def function_text(text: str) -> tuple[str, bool]:
    """``text`` (starting with a ``def`` line) cut before the first line after it that
    starts at column 0 (blank lines and ``NOT_AN_END`` lines aside), and whether there
    was one: whether the function ended.

    The rule reads indentation, not the grammar. A comment at column 0 ends the
    function, so one inside a body cuts it short, at a line break between statements,
    where what is left usually still parses. A string with lines at column 0 (a long
    message, a docstring written flush left) cuts it inside the string, and it fails.
    Of the 1,487 top-level functions of Python 3.11's standard library, each followed
    by another statement, 1,477 still parse after the cut: nine of the ten others
    hold such a string, one a line commented out at column 0 right after a ``try:``.
    """
    lines = text.split("\n")
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() and not line[0].isspace() and not line.startswith(NOT_AN_END):
            return "\n".join(lines[:i]).rstrip(), True
    return text.rstrip(), False


def parses(source: str) -> bool:
    """Whether ``ast.parse`` accepts the source: Python's own parser, this version's
    grammar. Syntax only: names, types and what the code does are not checked."""
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):  # a null byte; deep nesting
        return False
    return True


@dataclass(frozen=True)
class FunctionSample:
    text: str  # the prompt and the sample, cut where the function ends
    ended: bool  # it ended (a line at column 0, or <eos>) within the length allowed
    parses: bool  # ast.parse accepts it (False for one that did not end)


@dataclass(frozen=True)
class ParseRate:
    temperature: float
    samples: list[FunctionSample]
    interval: Interval  # the share that parses, with its Wilson interval
    copies: int  # samples that parse and occur whole in the training text

    @property
    def unfinished(self) -> int:
        return sum(not s.ended for s in self.samples)


def judged(continuation: str, finished: bool) -> FunctionSample:
    """Steps 3 and 4 for one continuation of ``PROMPT``: cut where the function ends, and
    parse. ``finished``: the model drew ``<eos>`` (the block, and so the function, ended)."""
    text, ended = function_text(PROMPT + continuation)
    ended = ended or finished
    return FunctionSample(text, ended, ended and parses(text))


def written_by_the_library(function: str, max_characters: int = 500) -> FunctionSample:
    """A real function (a top-level block that starts with ``PROMPT``) judged as if a model had
    written it after the prompt and then ``<eos>``: the protocol's ceiling. One longer than
    ``max_characters`` is cut off at the cap, unfinished, and fails, as a sample would."""
    if not function.startswith(PROMPT):
        raise ValueError(f"a function for the protocol starts with {PROMPT!r}, got {function[:30]!r}")
    continuation = function[len(PROMPT):]
    # its <eos> is drawn within the cap if the function and <eos> fit in max_characters tokens
    return judged(continuation[:max_characters], len(continuation) + 1 <= max_characters)


def ends_a_function(token: str) -> bool:
    """Whether a line that starts with ``token`` ends the function above it (``function_text``'s
    rule): it starts at column 0 (not white space) and is not a ``NOT_AN_END`` bracket."""
    return bool(token) and not token[0].isspace() and not token.startswith(NOT_AN_END)


class StopAtFunctionEnd:
    """``model``, with ``<eos>`` made certain once a row's function has ended: after a line
    break, a token at column 0 (``ends_a_function``). The protocol cuts there, so nothing after
    it is judged; this stops the row instead of drawing up to ``max_characters`` more tokens
    that would be thrown away (the role of a stopping criterion in Hugging Face's ``generate``).

    Cut, verdicts and distributions up to the cut are the model's own; only which random number
    each row draws changes, since a stopped row draws no more. ``stopping_at_function_end``
    picks this class or, for a model with a cache, ``IncrementalStopAtFunctionEnd``.
    """

    def __init__(self, model: LanguageModel):
        self.model, self.vocab = model, model.vocab
        self.newline = model.vocab.stoi.get("\n", -1)  # -1: no line breaks, no row ever stops early
        specials = {model.vocab.pad_id, model.vocab.bos_id, model.vocab.eos_id}
        self.ends = [i not in specials and ends_a_function(t) for i, t in enumerate(model.vocab.itos)]

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.sequence_logprobs(ids)

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        """[B, T] contexts -> [B, V]: the model's, or all on ``<eos>`` where the function has ended."""
        logp = self.model.next_token_logprobs(contexts)
        return self.stop_ended(logp, contexts[:, -2] if contexts.shape[1] > 1 else None, contexts[:, -1])

    def stop_ended(self, logp: torch.Tensor, before: torch.Tensor | None, last: torch.Tensor) -> torch.Tensor:
        """[B, V] log-probabilities, with the rows whose last two tokens are a line break and a
        token at column 0 (``before``, ``last``: [B] ids) replaced by certainty of ``<eos>``."""
        if before is None or self.newline < 0:
            return logp
        ends = torch.tensor(self.ends, device=logp.device)
        ended = (before == self.newline) & ends[last]  # [B]
        if not ended.any():
            return logp
        logp = logp.clone()
        logp[ended] = -math.inf
        logp[ended, self.vocab.eos_id] = 0.0
        return logp


class IncrementalStopAtFunctionEnd(StopAtFunctionEnd):
    """``StopAtFunctionEnd`` for a model that reads one token at a time (a GPT's KV cache): its
    cache is the model's, with each row's last token, which the next step needs."""

    def decode_step(self, ids: torch.Tensor, cache: tuple | None) -> tuple[torch.Tensor, tuple]:
        if cache is None:
            logp, state = self.model.decode_step(ids, None)
            before = ids[:, -2] if ids.shape[1] > 1 else None
        else:
            state, before = cache
            logp, state = self.model.decode_step(ids, state)
        return self.stop_ended(logp, before, ids[:, -1]), (state, ids[:, -1])

    def reorder_cache(self, cache: tuple, rows: torch.Tensor) -> tuple:
        state, last = cache
        return self.model.reorder_cache(state, rows), last[rows]


class NGramMemo:
    """An n-gram model whose next-token distributions are remembered by context. By the Markov
    assumption P(w | context) reads only the context's last n - 1 tokens (all of it, ``<bos>``
    included, when it is shorter), so a context met again costs a dictionary lookup instead of
    n table lookups. Sampling at low temperature meets many again: a row that goes round a loop
    of its likeliest phrases. The distributions are the model's own, bit for bit."""

    def __init__(self, model: NGramLM):
        self.model, self.vocab = model, model.vocab
        self.memo: dict[tuple[int, ...], torch.Tensor] = {}

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.sequence_logprobs(ids)

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        """[B, T] contexts (rows start with ``<bos>``) -> [B, V], each row read once per context."""
        n = self.model.order - 1
        keys = [tuple(row) for row in contexts[:, -n:].tolist()]  # the last n - 1 tokens, or all of a shorter row
        new = list({k: i for i, k in enumerate(keys) if k not in self.memo}.values())  # one row per new key
        if new:
            for i, logp in zip(new, self.model.next_token_logprobs(contexts[new]), strict=True):
                self.memo[keys[i]] = logp
        return torch.stack([self.memo[k] for k in keys])


def stopping_at_function_end(model: LanguageModel) -> StopAtFunctionEnd:
    """``model`` wrapped to stop each row where its function ends, keeping its cache if it has one."""
    if isinstance(model, IncrementalDecoding):
        return IncrementalStopAtFunctionEnd(model)
    return StopAtFunctionEnd(model)


def sample_functions(model: LanguageModel, temperature: float, n: int, *,
                     max_characters: int = 500, seed: int = 0) -> list[FunctionSample]:
    """``n`` functions sampled from a character-level model after ``PROMPT``, each cut
    where it ends and parsed: steps 1 to 4 of the protocol. A row stops where its function
    ends (``StopAtFunctionEnd``); an n-gram model remembers its distributions (``NGramMemo``).
    Neither changes a distribution the samples are drawn from."""
    if isinstance(model, NGramLM):
        model = NGramMemo(model)
    generations = sample(stopping_at_function_end(model), list(PROMPT), max_characters,
                         temperature=temperature, num_samples=n, suppress=["<unk>"],
                         generator=torch.Generator().manual_seed(seed))
    return [judged("".join(g.tokens), g.finished) for g in generations]


def parse_rates(model: LanguageModel, temperatures: Sequence[float], n: int,
                training_text: str = "", *, max_characters: int = 500,
                seed: int = 0) -> list[ParseRate]:
    """The protocol at each temperature: the samples, the share that parses with its
    Wilson interval, and how many of those occur whole in ``training_text`` (give it
    the training blocks, joined)."""
    rates = []
    for t in temperatures:
        samples = sample_functions(model, t, n, max_characters=max_characters, seed=seed)
        passed = sum(s.parses for s in samples)
        copies = sum(s.parses and s.text in training_text for s in samples)
        rates.append(ParseRate(t, samples, wilson_interval(passed, n), copies))
    return rates


# --- the held-out modules' scores ---------------------------------------------------------------

RECIPE = "gpt_chars_python_stdlib"
SCORES = CHECKPOINTS / "code_generation_stdlib.json"
COMMAND = "python -m lmlib.course.code_generation_runs"


def module_logprobs(model: LanguageModel, modules: Sequence[tuple[str, str]],
                    batch_size: int = 16) -> list[dict]:
    """Each module's total ln P under ``model``: its top-level blocks read apart, as characters,
    every character and each block's ``<eos>`` predicted. One dict per (name, source) module:
    ``{"module", "nats": -sum ln P, "characters": how many predicted}``. Batches of 16 blocks:
    on two CPU cores they score the test split faster than 64 do (measured)."""
    blocks = [[list(b) for b in data.python_blocks(source)] for _, source in modules]
    scores = token_logprobs(model, [b for bs in blocks for b in bs], batch_size)
    parts = scores.split([sum(len(b) + 1 for b in bs) for bs in blocks])
    return [{"module": name, "nats": -part.sum().item(), "characters": len(part)}
            for (name, _), part in zip(modules, parts, strict=True)]


def scores_inputs(recipe: str = RECIPE) -> dict:
    """What the scores are computed from: the checkpoint (its recorded SHA-256) and the library."""
    digest = (CHECKPOINTS / f"{recipe}.pt.sha256").read_text().split()[0]
    return {"recipe": recipe, "checkpoint_sha256": digest, "corpus": data.stdlib_fingerprint()}


def write_held_out_scores(path: Path = SCORES, recipe: str = RECIPE) -> dict:
    """Score the test split's modules with the recipe's checkpoint and write them, with their inputs."""
    results = {"command": COMMAND, **scores_inputs(recipe),
               "modules": module_logprobs(load_checkpoint(recipe), data.load_python_modules("test"))}
    Path(path).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


def stale_inputs(results: dict, recipe: str = RECIPE) -> list[str]:
    """What differs between the inputs ``results`` were computed from and this machine's."""
    here = scores_inputs(recipe)
    return [f"{key}: {results.get(key)!r} there, {here[key]!r} here" for key in here if results.get(key) != here[key]]


def held_out_scores(path: Path = SCORES, recipe: str = RECIPE) -> list[dict]:
    """The test modules' scores under the recipe's checkpoint (``module_logprobs``): the committed
    ones when they were computed from this checkpoint and this machine's library; otherwise, with a
    warning naming what differs, computed here (20 seconds of two CPU cores)."""
    results = json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).exists() else {}
    stale = stale_inputs(results, recipe) if results else [f"{path} is missing"]
    if not stale:
        return results["modules"]
    warnings.warn(f"the committed scores do not apply here ({'; '.join(stale)}): scoring the test split now; "
                  f"`{COMMAND}` writes them again", stacklevel=2)
    return module_logprobs(load_checkpoint(recipe), data.load_python_modules("test"))


# --- the baseline's order ------------------------------------------------------------------------

def kneser_ney_by_order(train: Sequence[Sequence[str]], valid: Sequence[Sequence[str]],
                        orders: Sequence[int], smoothing: str = "modified_kneser_ney",
                        min_count: int = 2) -> list[dict]:
    """Bits per character on ``valid`` of a Kneser-Ney n-gram of each order fitted on ``train``
    (character lists, ``<eos>`` counted as a character): how the chapter chose its baseline."""
    rows = []
    for order in orders:
        model = NGramLM(order, smoothing, min_count=min_count).fit(train)
        scores = token_logprobs(model, valid)
        rows.append({"order": order, "smoothing": smoothing,
                     "bits per character": round(-scores.mean().item() / math.log(2), 3)})
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=COMMAND, description="The code generation chapter's long runs: the GPT's "
                                     f"scores of the test modules (writes {SCORES.name}), or with --orders the "
                                     "Kneser-Ney baseline's validation bits per character by order.")
    parser.add_argument("--orders", type=int, nargs="*", help="print the baseline's table for these orders "
                        "(none given: 6 8 10 12 16 20) instead of writing the scores; a few minutes")
    parser.add_argument("--out", type=Path, default=SCORES)
    args = parser.parse_args(argv)
    if args.orders is None:
        results = write_held_out_scores(args.out)
        print(f"wrote {args.out}: {len(results['modules'])} test modules")
        return
    train = code_characters("python_stdlib", "train")
    valid = code_characters("python_stdlib", "valid")
    rows = kneser_ney_by_order(train, valid, args.orders or [6, 8, 10, 12, 16, 20])
    rows += kneser_ney_by_order(train, valid, [10], smoothing="kneser_ney")
    print(format_table(rows))


if __name__ == "__main__":
    main()
