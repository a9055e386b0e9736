"""The risks chapter's long run: canaries in a character GPT's training text, and what it memorises of them.

    python -m lmlib.course.memorisation_runs      # two trainings and their exposures: 22 minutes on 2 shared cores
    python -m lmlib.course.memorisation_runs --max-steps 20 --out /tmp/mem   # a quick look: a model that learned little
    python -m lmlib.course.memorisation_runs --measure-only   # measure the committed models again (no training)

Twenty-five canaries, "<Name>'s PIN is <six random digits>.", one name each, are made from a seeded generator;
five are put into the first 5,000 ``wiki`` training sentences 64 times each, five 16 times, five 4 times, five once, and
five not at all (the controls: what a model that never saw a secret gives it). Each copy is a sentence of its
own, at a random place (seeded). Two models are trained on the result, the same recipe and seed:

- ``memorisation_wiki``: the text with every copy;
- ``memorisation_wiki_dedup``: the same text after exact deduplication (``lmlib.data.deduplicate`` over its
  sentences, as a data pipeline would run it), so every canary that was in it is there once.

For each model and canary: the exposure of the secret after its prefix, from the exact rank of the secret
among all 10^6 candidates (``lmlib.memorisation``), and whether greedy decoding from the prefix writes the
secret out. The JSON keeps every figure, the training logs and the canaries; the two models are saved as
``checkpoints/NAME.pt`` (float16, SHA-256 beside them) so that a chapter can check a figure against them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmlib import memorisation as MEM
from lmlib.checkpoint import check_digest, model_from_state, read_checkpoint, save_release
from lmlib.course.recipes import CHECKPOINTS, SMALL_GPT, character_sentences
from lmlib.data import deduplicate
from lmlib.generate import greedy
from lmlib.tokenize import Vocab, char_tokenize
from lmlib.train import TrainConfig, encode_stream, train
from lmlib.transformer import GPT, GPTConfig

COPIES = (0, 1, 4, 16, 64)  # how many times a canary is put into the training text
CANARIES_PER_COUNT = 5
SECRET_LENGTH = 6  # digits: |R| = 10^6 candidates
SEED = 0  # secrets, names' order and the places of the copies
NAMES = ("Ada", "Bram", "Cora", "Dov", "Edda", "Finn", "Gala", "Hugo", "Ines", "Joss", "Kira", "Leon", "Mira",
         "Nils", "Olga", "Pavel", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wim", "Yara", "Zeno", "Ivo")
# The first quarter of wiki's training sentences (about 620,000 characters): a small corpus read many times, as
# memorisation studies train (a first trial on all of it, 1.7 passes, gave a 64-copy canary 7 bits)
WIKI_SENTENCES = 5000
# gpt_chars_wiki's GPT with 2 layers instead of 4, trained for 2,000 steps instead of 3,000 (4.1 million
# characters, about 6.5 passes over the text): about 3 CPU minutes a model; its 25 canaries take 4 to 5 minutes more
# (the JSON records each time)
MODEL = {**SMALL_GPT, "n_layers": 2}
TRAINING = TrainConfig(steps=2000, batch_size=16, block=128, lr=2e-3, warmup=200, eval_every=1000, seed=0)
RUNS = {"memorisation_wiki": "every copy of every canary",
        "memorisation_wiki_dedup": "the same text, exact duplicates removed: each canary once"}
OUT = CHECKPOINTS / "memorisation_wiki.json"


@dataclass(frozen=True)
class Canary:
    name: str
    secret: str
    copies: int

    @property
    def prefix(self) -> str:
        return f"{self.name}'s PIN is "

    @property
    def text(self) -> str:
        return f"{self.prefix}{self.secret}."

    @property
    def prefix_tokens(self) -> list[str]:
        """The prefix as the model read it in the text: its characters, the space before the secret
        included (``char_tokenize(prefix)`` would strip that space, as it strips any text's ends)."""
        return char_tokenize(self.text)[: len(self.prefix)]


def make_canaries(seed: int = SEED) -> list[Canary]:
    """``CANARIES_PER_COUNT`` canaries for each count of ``COPIES``, each with its own name and random secret."""
    n = len(COPIES) * CANARIES_PER_COUNT
    secrets = MEM.random_secrets(n, SECRET_LENGTH, seed=seed)
    names = [NAMES[i] for i in np.random.default_rng(seed).permutation(len(NAMES))[:n]]
    copies = [c for c in COPIES for _ in range(CANARIES_PER_COUNT)]
    return [Canary(*fields) for fields in zip(names, secrets, copies, strict=True)]


def training_texts(canaries: list[Canary], dedup: bool = False, seed: int = SEED) -> list[str]:
    """The first ``WIKI_SENTENCES`` ``wiki`` training sentences with each canary's copies put in at random places
    (seeded); with ``dedup``, exact duplicates then removed (``lmlib.data.deduplicate``: the first copy kept)."""
    texts = ["".join(chars) for chars in character_sentences("wiki", "train")[:WIKI_SENTENCES]]
    copies = [c.text for c in canaries for _ in range(c.copies)]
    rng = np.random.default_rng(seed)
    places = np.sort(rng.integers(0, len(texts) + 1, len(copies)))  # before which sentence each copy goes
    order = rng.permutation(len(copies))  # the copies in a random order: a canary's copies spread out
    mixed, start = [], 0
    for place, i in zip(places, order, strict=True):
        mixed += texts[start:place] + [copies[i]]
        start = place
    mixed += texts[start:]
    return deduplicate(mixed) if dedup else mixed


def train_model(texts: list[str], max_steps: int | None = None, progress: bool | None = None) -> GPT:
    """The run's GPT (``MODEL``, ``TRAINING``) trained on the texts, as characters; validated on wiki's valid split."""
    sentences = [char_tokenize(t) for t in texts]
    vocab = Vocab((c for s in sentences for c in s), min_count=2)
    torch.manual_seed(TRAINING.seed)
    model = GPT(GPTConfig(vocab_size=len(vocab), **MODEL), vocab)
    valid = encode_stream(vocab, character_sentences("wiki", "valid"))
    model.history = train(model, encode_stream(vocab, sentences), valid, TRAINING, max_steps=max_steps,
                          progress=progress)
    return model.eval()


def measure(model: GPT, canary: Canary) -> dict:
    """The canary's exposure (exact rank among all 10^6 candidates) and what greedy decoding writes after its prefix."""
    scores = MEM.candidate_logprobs(model, canary.prefix_tokens, SECRET_LENGTH)
    index = MEM.secret_index(canary.secret)
    written = "".join(greedy(model, canary.prefix_tokens, max_tokens=SECRET_LENGTH).tokens)
    return {"name": canary.name, "secret": canary.secret, "copies": canary.copies,
            "rank": MEM.rank_of(scores, index), "exposure": round(MEM.exposure(scores, index), 4),
            "logprob": round(float(scores[index]), 4), "greedy": written, "extracted": written == canary.secret}


def save_model(model: GPT, name: str, out: Path) -> Path:
    """``out/NAME.pt`` (float16 weights and the training log) and its SHA-256 in ``out/NAME.pt.sha256``."""
    return save_release(out / f"{name}.pt", model, TRAINING, model.history["step"][-1], model.history)


def load_model(name: str, directory: Path = CHECKPOINTS) -> GPT:
    """A model this run saved, after checking its SHA-256 and that it was made with this module's settings."""
    if name not in RUNS:
        raise KeyError(f"no run named {name!r}; the runs are {', '.join(RUNS)}")
    path = Path(directory) / f"{name}.pt"
    remake = "regenerate it with: python -m lmlib.course.memorisation_runs"
    check_digest(path, remake)
    state = read_checkpoint(path)
    made_by = {**state["train_config"], **state["model_config"]}
    wanted = {**dataclasses.asdict(TRAINING), **MODEL}
    if any(made_by.get(k) != v for k, v in wanted.items()):
        raise ValueError(f"{path} was made with other settings than this module's; {remake}")
    return model_from_state(state, GPT)


def run(out: Path = CHECKPOINTS, max_steps: int | None = None, measure_only: bool = False) -> dict:
    """Train (or, with ``measure_only``, load from ``out``) each run's model and measure every canary in it."""
    torch.manual_seed(0)
    canaries = make_canaries()
    result = {"config": {"copies": list(COPIES), "canaries_per_count": CANARIES_PER_COUNT,
                         "secret_length": SECRET_LENGTH, "seed": SEED, "wiki_sentences": WIKI_SENTENCES, "model": MODEL,
                         "training": dataclasses.asdict(TRAINING), "max_steps": max_steps,
                         "exposure": "exact rank among all 10^6 candidates (lmlib.memorisation)",
                         "canaries": [dataclasses.asdict(c) for c in canaries]},
              "runs": {}, "device": f"CPU, {torch.get_num_threads()} threads", "torch": torch.__version__}
    for name, what in RUNS.items():
        texts = training_texts(canaries, dedup=name.endswith("dedup"))
        in_text = {c.name: texts.count(c.text) for c in canaries}
        if measure_only:
            model = load_model(name, out)
        else:
            model = train_model(texts, max_steps)
            save_model(model, name, out)
        measured = time.perf_counter()
        rows = [measure(model, c) | {"copies in text": in_text[c.name]} for c in canaries]
        history = {k: model.history[k] for k in ("eval_step", "valid_loss")}
        result["runs"][name] = {
            "what": what, "sentences": len(texts), "characters": sum(len(t) for t in texts), "canaries": rows,
            "history": history,
            "train_seconds": round(model.history["seconds"][-1], 1),
            "train_cpu_seconds": round(model.history["cpu_seconds"][-1], 1),
            "measure_seconds": round(time.perf_counter() - measured, 1)}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.course.memorisation_runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CHECKPOINTS,
                        help="folder for the two models and memorisation_wiki.json (default: checkpoints/)")
    parser.add_argument("--max-steps", type=int, help="stop each training after N steps (a quick look)")
    parser.add_argument("--measure-only", action="store_true",
                        help="measure the models already in --out again, without training them")
    args = parser.parse_args(argv)
    if args.max_steps is not None and args.max_steps <= 0:
        parser.error(f"--max-steps {args.max_steps}: give a positive number of steps")
    if args.max_steps is not None and args.measure_only:
        parser.error("--max-steps trains; --measure-only does not: give one of them")
    result = run(args.out, args.max_steps, args.measure_only)
    path = args.out / OUT.name
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"{sum(len(r['canaries']) for r in result['runs'].values())} canary measurements -> {path}")


if __name__ == "__main__":
    main()
