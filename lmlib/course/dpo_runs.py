"""The assistant chapter's DPO run: the full SFT model taught by preference pairs made from its own answers, for a
few values of beta; each trained policy scored as the SFT models are.

    python -m lmlib.course.dpo_runs             # the run: checkpoints/dpo_bpe_wiki.{pt,json}
    python -m lmlib.course.dpo_runs --quick     # a quick look (fewer pairs and steps, one beta), in /tmp/dpo

The model: ``sft_bpe_wiki`` (``lmlib.course.sft_runs``), the policy and, frozen, the reference. Its dropout is
switched off for DPO, as TRL's ``DPOTrainer`` does by default: with dropout the policy's log-probabilities would
differ from the reference's at the same weights, and every margin would start as noise.

The pairs (``lmlib.dpo.make_preference_pairs``): for a seeded subset of the English SFT training records (and of
the validation records, for held-out pairs), ``SAMPLES`` answers sampled from the SFT model at temperature 1
(``lmlib.dpo.sample_answers``); the chosen answer is a sample that ``verify`` accepts (else the reference answer),
the rejected one a sample it rejects (else the chosen answer corrupted). The JSON counts where the answers came from.

The sweep (``lmlib.dpo.beta_sweep``): for each beta, a copy of the policy trained by ``lmlib.train`` with the DPO
loss on the same batches; on the held-out pairs its DPO loss, implicit rewards, margin and accuracy, and its KL to
the reference (``lmlib.dpo.sequence_kl``, nats per answer sampled from the policy). Each trained policy is saved
as a release (float16) and scored as saved, with ``lmlib.course.sft_runs.score`` (greedy answers, exact match and
in-format share per family): on the validation records, which pick the beta that is kept, and on the test split
of every family (``last``, never trained on, included), the numbers of the SFT table. The kept policy is
``checkpoints/dpo_bpe_wiki.pt`` (a plain GPT, its SHA-256 beside it), all the results ``dpo_bpe_wiki.json``.

What the committed run found (685 s of wall time on two shared CPU cores: 123 s sampling, 393 s for the three
betas' 300 steps, 169 s scoring; the JSON records it). The SFT model answers its own training prompts far better
than new ones (it has read each of them 12.5 times): 70 % of the training pairs' chosen answers are its samples,
24 % of the held-out pairs'. DPO fits the training pairs (final batch loss 0.46, 0.25, 0.04 for beta 0.1, 0.3,
1.0) but not the held-out ones: their loss ends above ln 2 (0.90, 1.20, 1.53), their accuracy near a coin flip
(0.53, 0.54, 0.51), and both implicit rewards fall (the chosen answers lose probability too). The KL to the
reference shrinks as beta grows (4.9, 3.3, 1.5 nats per answer), as the KL penalty's weight says it should. Exact
match on the test split's trained families does not rise: 12.44 % after SFT, 10.34, 11.15 and 10.99 % after DPO
(beta 1.0 kept: 14.4 % on the 160 validation records, against SFT's 17.5 %); ``last`` stays at 1 %.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from lmlib.checkpoint import check_digest, model_from_state, read_checkpoint, save_release
from lmlib.course import sft_runs as SR
from lmlib.course.recipes import CHECKPOINTS
from lmlib.dpo import PreferencePair, SweepPoint, beta_sweep, make_preference_pairs, sample_answers
from lmlib.instructions import Record, verify
from lmlib.tokenize import BPETokenizer
from lmlib.train import TrainConfig
from lmlib.transformer import GPT

NAME = "dpo_bpe_wiki"
BASE = "sft_bpe_wiki"  # the SFT run whose model is the policy and the reference
SEED = 0  # the record subsets, the samples, the pairs' choices and the KL's samples
MAX_TOKENS = 32  # of a sampled answer (sft_runs.score answers with as many)
QUICK_OUT = Path(tempfile.gettempdir()) / "dpo"


@dataclass(frozen=True)
class Settings:
    train_records: int  # SFT training records whose samples make the training pairs
    valid_records: int  # validation records: the held-out pairs, and the records that pick beta
    test_records: int | None  # test records scored (None: all of them, as the SFT table)
    samples: int  # answers sampled per prompt
    betas: tuple[float, ...]
    kl_samples: int  # answers sampled per held-out prompt for the KL
    training: TrainConfig


FULL = Settings(train_records=960, valid_records=160, test_records=None, samples=4, betas=(0.1, 0.3, 1.0),
                kl_samples=4, training=TrainConfig(steps=300, batch_size=16, block=SR.WINDOW, lr=1e-4, warmup=30,
                                                   eval_every=300, log_every=10, seed=0))
QUICK = dataclasses.replace(FULL, train_records=64, valid_records=32, test_records=64, betas=(0.1,),
                            training=dataclasses.replace(FULL.training, steps=20, warmup=2, eval_every=20))


# --- the model and the data ----------------------------------------------------------------------------------


def sft_model() -> tuple[BPETokenizer, GPT]:
    """(the chat tokenizer, the SFT model with its dropout switched off)."""
    tokenizer, _ = SR.base_model()
    sft = SR.load_model(BASE)
    model = GPT(dataclasses.replace(sft.config, dropout=0.0), sft.vocab)
    model.load_state_dict(sft.state_dict())
    return tokenizer, model.eval()


def subset(records: list[Record], n: int | None, seed: int = SEED) -> list[Record]:
    """A seeded choice of ``n`` records (all of them if ``n`` is None or not smaller), in their order."""
    if n is None or n >= len(records):
        return list(records)
    chosen = set(random.Random(seed).sample(range(len(records)), n))
    return [r for i, r in enumerate(records) if i in chosen]


def preference_data(model: GPT, tokenizer: BPETokenizer, records: list[Record],
                    settings: Settings) -> tuple[list[PreferencePair], dict]:
    """The pairs made from the model's own samples for ``records``, and what they are made of."""
    samples = sample_answers(model, tokenizer, records, settings.samples, MAX_TOKENS, 1.0, SEED)
    pairs = make_preference_pairs(records, samples, SEED)
    right = Counter(r.task for r in records for a in samples[r.id] if verify(r, a))
    drawn = Counter(r.task for r in records for _ in samples[r.id])
    stats = {"records": len(records), "pairs": len(pairs),
             "samples_correct": {task: round(right[task] / drawn[task], 4) for task in sorted(drawn)},
             "chosen_from": dict(Counter(p.chosen_from for p in pairs)),
             "rejected_from": dict(Counter(p.rejected_from for p in pairs))}
    return pairs, stats


# --- files ---------------------------------------------------------------------------------------------------


def save_model(model: GPT, point: SweepPoint, training: TrainConfig, path: Path) -> Path:
    """``path`` (float16 weights and the training log) and its SHA-256 beside it."""
    return save_release(path, model, training, point.history["step"][-1], point.history)


def load_model(directory: Path = CHECKPOINTS, training: TrainConfig = FULL.training) -> GPT:
    """The kept policy, after checking its SHA-256 and that it was trained with ``training``."""
    path = Path(directory) / f"{NAME}.pt"
    remake = "regenerate it with: python -m lmlib.course.dpo_runs"
    check_digest(path, remake)
    state = read_checkpoint(path)
    if state["train_config"] != dataclasses.asdict(training):
        raise ValueError(f"{path} was trained with other settings than this module's; {remake}")
    return model_from_state(state, GPT)


def released(model: GPT, point: SweepPoint, training: TrainConfig) -> GPT:
    """``model`` as its release file holds it (float16 weights, read back): the model a checkpoint would score."""
    with tempfile.TemporaryDirectory() as folder:
        path = save_model(model, point, training, Path(folder) / f"{NAME}.pt")
        return model_from_state(read_checkpoint(path), GPT)


def load_results(directory: Path = CHECKPOINTS) -> dict:
    path = Path(directory) / f"{NAME}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; regenerate it with: python -m lmlib.course.dpo_runs")
    return json.loads(path.read_text(encoding="utf-8"))


# --- the run -------------------------------------------------------------------------------------------------


def exact_matches(scores: dict) -> dict:
    """``sft_runs.score``'s result, less its examples: exact match per family and on the trained families."""
    return {"exact_match_trained_families": scores["exact_match_trained_families"],
            "exact_match": {task: row["exact_match"] for task, row in scores["families"].items()}}


def run(settings: Settings = FULL, out: Path = CHECKPOINTS) -> dict:
    """Sample, pair, sweep beta, score every trained policy as saved; save the one the validation records pick
    as ``out/dpo_bpe_wiki.pt``. Returns the JSON's dict."""
    started = time.perf_counter()
    torch.manual_seed(SEED)
    tokenizer, policy = sft_model()
    records = {"train": subset(SR.sft_records(tokenizer, "train"), settings.train_records),
               "valid": subset(SR.sft_records(tokenizer, "valid"), settings.valid_records),
               "test": subset(SR.scored_records(tokenizer), settings.test_records)}
    train_pairs, train_stats = preference_data(policy, tokenizer, records["train"], settings)
    valid_pairs, valid_stats = preference_data(policy, tokenizer, records["valid"], settings)
    sampled = time.perf_counter()
    points = beta_sweep(policy, train_pairs, tokenizer, settings.betas, settings.training, valid_pairs,
                        settings.kl_samples, MAX_TOKENS)
    swept = time.perf_counter()
    results, models = [], []
    for point in points:
        model = released(point.policy, point, settings.training)
        models.append(model)
        valid, test = (SR.score(model, tokenizer, records[split], MAX_TOKENS) for split in ("valid", "test"))
        history = {k: [round(v, 6) for v in point.history[k]] for k in ("step", "train_loss", "lr")}
        results.append({"beta": point.beta, "train_loss": round(point.history["train_loss"][-1], 6),
                        "valid_pairs": {"loss": point.loss, "chosen_reward": point.chosen_reward,
                                        "rejected_reward": point.rejected_reward, "margin": point.margin,
                                        "accuracy": point.accuracy},
                        "kl": point.kl, "kl_stderr": point.kl_stderr,
                        "valid": exact_matches(valid), "test": test, "history": history,
                        "train_seconds": round(point.history["seconds"][-1], 1)})
    best = max(range(len(results)), key=lambda i: results[i]["valid"]["exact_match_trained_families"])
    out.mkdir(parents=True, exist_ok=True)
    save_model(models[best], points[best], settings.training, out / f"{NAME}.pt")
    # the SFT model's scores: its table's on the whole test split, measured here on a part of it
    sft_test = SR.load_results(BASE)["test"] if settings.test_records is None else SR.score(
        policy, tokenizer, records["test"], MAX_TOKENS)
    return {"run": NAME, "description": "DPO on the full SFT model's own samples, a beta sweep", "base": BASE,
            "seed": SEED, "max_tokens": MAX_TOKENS, "settings": dataclasses.asdict(settings),
            "parameters": policy.num_parameters(),
            "data": {"train": train_stats, "valid": valid_stats, "test": {"records": len(records["test"])}},
            "sft": {"valid": exact_matches(SR.score(policy, tokenizer, records["valid"], MAX_TOKENS)),
                    "test": exact_matches(sft_test)},
            "betas": results, "best_beta": results[best]["beta"],
            "seconds": {"sampling": round(sampled - started, 1), "sweep": round(swept - sampled, 1),
                        "scoring": round(time.perf_counter() - swept, 1),
                        "wall": round(time.perf_counter() - started, 1)},
            "device": f"CPU, {torch.get_num_threads()} threads", "torch": torch.__version__}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.course.dpo_runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"a quick look: fewer pairs and steps, one beta "
                                                             f"(default output {QUICK_OUT})")
    parser.add_argument("--out", type=Path, help="output folder (default: checkpoints/)")
    args = parser.parse_args(argv)
    out = args.out or (QUICK_OUT if args.quick else CHECKPOINTS)
    result = run(QUICK if args.quick else FULL, out)
    path = out / f"{NAME}.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for row in result["betas"]:
        print(f"beta {row['beta']}: held-out margin {row['valid_pairs']['margin']:.3f}, accuracy "
              f"{row['valid_pairs']['accuracy']:.3f}, KL {row['kl']:.3f}, exact match "
              f"{row['test']['exact_match_trained_families']} on the trained families")
    print(f"kept beta {result['best_beta']} -> {out / NAME}.pt, {path}")


if __name__ == "__main__":
    main()
