"""The scaling chapter's long run: six character-level GPTs of growing size, trained alike, and their losses.

    python -m lmlib.course.scaling_runs                  # writes checkpoints/scaling_wiki.json
    python -m lmlib.course.scaling_runs --max-steps 20 --out /tmp/s.json   # a quick look

Each model is ``gpt_chars_wiki``'s GPT-2 block at another width and depth (``SIZES``), trained on the
same data (the ``wiki`` training characters, ``gpt_chars_wiki``'s vocabulary) with the same token
budget, schedule and seed (``TRAINING``: 1,000 steps of 16 x 128 tokens, 0.9 times the length of the
training text; the windows start at random places, so some text is read twice and some never,
``reads_per_character``), without dropout. The JSON keeps each model's parameters,
its validation loss (nats per character, the predicted ``<eos>`` counted) and its training log, so the
chapter fits the law without training anything.

N is counted as Kaplan et al. (2020) count it: the parameters *without* the token and position
embeddings (``non_embedding_parameters``), since with them the small models' losses do not fall on
one line. D is the tokens the run trains on, steps x batch x block (``lmlib.pretraining.training_tokens``),
and C = 6 N D (``training_compute``).

``fit_power_law`` fits L(N) = (N_c / N)^alpha by least squares on log L against log N, with a 95 %
interval for alpha from the fit's standard error; ``fit_power_law_with_floor`` fits
L(N) = E + (N_c / N)^alpha, the form with an irreducible loss E. C = 6 N D leaves out attention and
the output layer, which at these sizes are not small: ``lmlib.pretraining.training_flops_per_token``
counts them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmlib.course.recipes import CHECKPOINTS, GPT_CHARS_WIKI, SMALL_GPT, recipe_data
from lmlib.pretraining import training_compute, training_tokens
from lmlib.train import TrainConfig, _batches, train
from lmlib.transformer import GPT, GPTConfig

OUT = CHECKPOINTS / "scaling_wiki.json"

# (d_model, n_layers, n_heads): about 2.4 times more non-embedding parameters from one to the next, from
# 13 thousand to 0.8 million; heads of width 16. The largest has gpt_chars_wiki's width and depth (and
# parameters: it has 4 heads of 32 where this has 8 of 16).
SIZES: tuple[tuple[int, int, int], ...] = ((32, 1, 2), (32, 2, 2), (48, 2, 3), (64, 3, 4), (96, 3, 6), (128, 4, 8))
TRAINING = TrainConfig(steps=1000, batch_size=16, block=128, lr=2e-3, warmup=100, eval_every=1000, log_every=20,
                       seed=0)
DROPOUT = 0.0  # less than one pass over the text: nothing to regularise against


def model_config(vocab_size: int, d_model: int, n_layers: int, n_heads: int) -> GPTConfig:
    """``gpt_chars_wiki``'s configuration (GPT-2 block, window 128, sentences read apart) at another size."""
    settings = {**SMALL_GPT, "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "dropout": DROPOUT}
    return GPTConfig(vocab_size=vocab_size, **settings)


def non_embedding_parameters(model: GPT) -> int:
    """Kaplan et al.'s N: every parameter except the token and position embeddings
    (the output layer, tied to the token embedding, is left out with it)."""
    embeddings = model.token_embedding.weight.numel()
    if model.position_embedding is not None:
        embeddings += model.position_embedding.weight.numel()
    return model.num_parameters() - embeddings


def reads_per_character(stream_length: int, config: TrainConfig = TRAINING) -> np.ndarray:
    """[stream_length] how many of a run's windows read each position of a training stream of that length (as
    input or as target): the windows ``lmlib.train`` draws, each step's at random offsets from (seed, step), read
    from a stream whose tokens are their own positions."""
    if config.layout != "random":
        raise ValueError(f"reads_per_character counts random windows; this config's layout is {config.layout!r}")
    positions = torch.arange(stream_length, device="cpu")  # the stream whose token t is t
    batches = _batches(positions, config, 0, 0, 1)  # the loop's own batches, from step 0, one process
    windows = torch.cat([next(batches)[0] for _ in range(config.steps)])  # [steps * B, block + 1]
    return np.bincount(windows.flatten().numpy(), minlength=stream_length)


def train_size(d_model: int, n_layers: int, n_heads: int, data: tuple, config: TrainConfig = TRAINING,
               max_steps: int | None = None, device: str = "cpu") -> dict:
    """Train one size on ``data`` = (vocab, train stream, valid stream); its counts, losses and log."""
    vocab, train_stream, valid_stream = data
    torch.manual_seed(config.seed)
    model = GPT(model_config(len(vocab), d_model, n_layers, n_heads), vocab)
    history = train(model, train_stream, valid_stream, config, max_steps=max_steps, progress=False, device=device)
    n, d = non_embedding_parameters(model), training_tokens(config)
    return {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "parameters": model.num_parameters(),
            "non_embedding_parameters": n, "tokens": d, "compute": training_compute(n, d),
            "valid_loss": history["valid_loss"][-1], "valid_bpc": history["valid_loss"][-1] / math.log(2),
            "history": {key: [round(v, 6) for v in values] for key, values in history.items()}}


def run(sizes: tuple[tuple[int, int, int], ...] = SIZES, max_steps: int | None = None, device: str = "cpu") -> dict:
    data = recipe_data(GPT_CHARS_WIKI)  # gpt_chars_wiki's vocabulary and streams
    start = time.perf_counter()
    rows = []
    for size in sizes:
        rows.append(train_size(*size, data, max_steps=max_steps, device=device))
        print(f"d_model {size[0]}, {size[1]} layers: N = {rows[-1]['non_embedding_parameters']:,}, "
              f"valid loss {rows[-1]['valid_loss']:.4f}", flush=True)
    return {"training": dataclasses.asdict(TRAINING), "dropout": DROPOUT, "data": GPT_CHARS_WIKI.name,
            "max_steps": max_steps, "runs": rows, "wall_seconds": round(time.perf_counter() - start, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "device": f"CPU, {torch.get_num_threads()} threads" if device == "cpu" else device,
            "torch": torch.__version__}


# --- fitting the law -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLaw:
    """L(N) = E + (N_c / N)^alpha (E = 0 for the pure power law), with alpha's 95 % interval."""

    alpha: float
    alpha_low: float
    alpha_high: float
    n_c: float
    floor: float = 0.0  # E, the irreducible loss

    def __call__(self, n):
        return self.floor + (self.n_c / np.asarray(n, dtype=np.float64)) ** self.alpha


def fit_power_law(n, loss, confidence: float = 0.95) -> PowerLaw:
    """L = (N_c / N)^alpha, i.e. ln L = alpha ln N_c - alpha ln N: a straight line on
    log-log axes, fitted by least squares. alpha's interval is the slope +- t times its
    standard error, Student's t with len(n) - 2 degrees of freedom: it measures how well
    one line fits these points, not how the points would move with another seed."""
    from scipy import stats

    x, y = _logs(n, loss, at_least=3)
    fit = stats.linregress(x, y)  # y = intercept + slope x
    alpha = -float(fit.slope)
    half = float(stats.t.ppf((1 + confidence) / 2, len(x) - 2) * fit.stderr)
    return PowerLaw(alpha, alpha - half, alpha + half, math.exp(fit.intercept / alpha))


def fit_power_law_with_floor(n, loss, confidence: float = 0.95) -> PowerLaw:
    """L = E + (N_c / N)^alpha by nonlinear least squares (scipy's curve_fit on ln N; 0 <= E <= min L). alpha's
    interval is alpha +- t times its standard error from the fit's covariance, Student's t with len(n) - 3 degrees
    of freedom (three numbers fitted). Three numbers from few points: the fit can be poorly determined, which the
    interval then shows; with E at a bound the interval is only indicative."""
    from scipy import optimize, stats

    x, _ = _logs(n, loss, at_least=4)
    loss = np.asarray(loss, dtype=np.float64)

    def law(log_n, floor, alpha, log_n_c):
        return floor + np.exp(alpha * (log_n_c - log_n))

    start = fit_power_law(n, loss)
    (floor, alpha, log_n_c), cov = optimize.curve_fit(
        law, x, loss, p0=(0.5 * loss.min(), start.alpha * 2, math.log(start.n_c)),
        bounds=([0, 0, -np.inf], [loss.min(), np.inf, np.inf]), maxfev=20_000)
    half = stats.t.ppf((1 + confidence) / 2, len(x) - 3) * math.sqrt(cov[1, 1])
    return PowerLaw(float(alpha), float(alpha - half), float(alpha + half), math.exp(log_n_c), float(floor))


def _logs(n, loss, at_least: int) -> tuple[np.ndarray, np.ndarray]:
    n, loss = np.asarray(n, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    if n.shape != loss.shape or n.ndim != 1:
        raise ValueError(f"n and loss must be two 1-D sequences of one length, got shapes {n.shape} and {loss.shape}")
    if len(n) < at_least:
        raise ValueError(f"this fit needs at least {at_least} points, got {len(n)}")
    if (n <= 0).any() or (loss <= 0).any():
        raise ValueError("a power law is fitted on logarithms: every N and every loss must be > 0")
    return np.log(n), np.log(loss)


def load_results(path: Path = OUT) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; regenerate it with: python -m lmlib.course.scaling_runs")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.course.scaling_runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, help="stop each run after N steps (a quick look; the schedule "
                                                      "still spans 1,000)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the JSON goes (default: {OUT})")
    args = parser.parse_args(argv)
    if args.max_steps is not None and args.max_steps <= 0:
        parser.error(f"--max-steps {args.max_steps}: give a positive number of steps")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to this PyTorch build; use --device cpu")
    result = run(max_steps=args.max_steps, device=args.device)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{len(result['runs'])} models in {result['wall_seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
