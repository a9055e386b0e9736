"""The efficiency chapter's distillation run: a small GPT trained on the text alone, and the same GPT trained to
match a larger course model's distribution (``lmlib.distill``).

    python -m lmlib.course.distillation_runs               # writes checkpoints/distillation_wiki.json
    python -m lmlib.course.distillation_runs --max-steps 20 --out /tmp/d.json   # a quick look

The teacher is the course's ``gpt_chars_wiki`` (0.84 M parameters). Each student is the GPT-2 block of
``lmlib.course.scaling_runs`` at ``STUDENT``'s size (about a fifth of the teacher's parameters), built
with the teacher's vocabulary from the same seed and trained on the same batches (``TRAINING``: the
scaling runs' 1,000 steps of 16 x 128 characters); only the loss differs, (1 - lambda) CE +
lambda tau^2 KL(p_T || p_S), for each (lambda, tau) of ``STUDENTS``. The JSON keeps each model's
bits per character on the ``wiki`` test split, and, for each student against the one trained on the
text alone, the difference with a 95 % paired bootstrap interval over the test sentences
(``lmlib.metrics.paired_bootstrap``), so the chapter trains nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from lmlib.course.recipes import CHECKPOINTS, character_sentences, load_checkpoint
from lmlib.course.scaling_runs import TRAINING, model_config, non_embedding_parameters
from lmlib.distill import Distillation
from lmlib.lm import token_logprobs
from lmlib.metrics import paired_bootstrap
from lmlib.train import encode_stream, train
from lmlib.transformer import GPT

OUT = CHECKPOINTS / "distillation_wiki.json"
TEACHER = "gpt_chars_wiki"
STUDENT = (64, 3, 4)  # d_model, n_layers, n_heads: one of the scaling runs' sizes
# name -> (lambda, tau): the weight of the KL term and the temperature
STUDENTS = {"text only": (0.0, 1.0), "teacher only (KL)": (1.0, 1.0), "half and half": (0.5, 1.0)}


def sentence_bits(model, sentences: list[list[str]]) -> np.ndarray:
    """-log2 P of each sentence (its characters and its <eos>) under the model: [len(sentences)]."""
    scores = token_logprobs(model, sentences).split([len(s) + 1 for s in sentences])
    return np.array([-s.sum().item() / math.log(2) for s in scores])


def pooled_bpc(items: list[tuple[float, int]]) -> float:
    """Bits per character of (bits, characters) pairs, one a sentence (its <eos> counted as one character, the
    line break that ends it): the pooled ratio, not a mean of ratios."""
    bits, chars = np.asarray(items, dtype=np.float64).T
    return float(bits.sum() / chars.sum())


def run(max_steps: int | None = None, device: str = "cpu") -> dict:
    start = time.perf_counter()
    teacher = load_checkpoint(TEACHER).float().to(device)
    vocab = teacher.vocab
    train_stream, valid_stream = (encode_stream(vocab, character_sentences("wiki", split))
                                  for split in ("train", "valid"))
    test = character_sentences("wiki", "test")
    chars = [len(s) + 1 for s in test]
    # per test sentence: (bits, characters)
    scored = {"teacher": list(zip(sentence_bits(teacher.eval(), test), chars, strict=True))}
    rows = {"teacher": {"parameters": teacher.num_parameters(), "non_embedding_parameters":
                        non_embedding_parameters(teacher)}}
    for name, (weight, temperature) in STUDENTS.items():
        torch.manual_seed(TRAINING.seed)
        student = GPT(model_config(len(vocab), *STUDENT), vocab)
        # lambda = 0 needs no teacher: the plain loop, the same steps (tests/test_distill.py checks they agree)
        model = student if weight == 0 else Distillation(student, teacher, weight=weight, temperature=temperature)
        began = time.perf_counter()
        history = train(model, train_stream, valid_stream, TRAINING, max_steps=max_steps, progress=False,
                        device=device)
        student.to("cpu").eval()
        scored[name] = list(zip(sentence_bits(student, test), chars, strict=True))
        rows[name] = {"kl_weight": weight, "temperature": temperature, "parameters": student.num_parameters(),
                      "non_embedding_parameters": non_embedding_parameters(student),
                      "valid_loss": round(history["valid_loss"][-1], 6),
                      "train_seconds": round(time.perf_counter() - began, 1),
                      "history": {key: [round(v, 6) for v in values] for key, values in history.items()}}
        print(f"{name}: test {pooled_bpc(scored[name]):.4f} bits per character", flush=True)
    teacher.to("cpu")
    for name, row in rows.items():
        row["test_bpc"] = round(pooled_bpc(scored[name]), 6)
        if name not in ("teacher", "text only"):  # against the student trained on the text alone, sentence by sentence
            comparison = paired_bootstrap(scored["text only"], scored[name], pooled_bpc, seed=0)
            row["minus_text_only"] = {"difference": round(comparison.difference, 6), "low": round(comparison.low, 6),
                                      "high": round(comparison.high, 6), "p_value": comparison.p_value}
    return {"teacher": TEACHER, "student": dict(zip(("d_model", "n_layers", "n_heads"), STUDENT, strict=True)),
            "students": {k: list(v) for k, v in STUDENTS.items()}, "training": dataclasses.asdict(TRAINING),
            "max_steps": max_steps, "test_sentences": len(test), "test_characters": sum(chars),
            "models": rows, "wall_seconds": round(time.perf_counter() - start, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "device": f"CPU, {torch.get_num_threads()} threads" if device == "cpu" else device,
            "torch": torch.__version__}


def load_results(path: Path = OUT) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; regenerate it with: python -m lmlib.course.distillation_runs")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.course.distillation_runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, help="stop each run after N steps (a quick look)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the JSON goes (default: {OUT})")
    args = parser.parse_args(argv)
    if args.max_steps is not None and args.max_steps <= 0:
        parser.error(f"--max-steps {args.max_steps}: give a positive number of steps")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to this PyTorch build; use --device cpu")
    result = run(args.max_steps, args.device)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{len(STUDENTS)} students in {result['wall_seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
