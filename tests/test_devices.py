"""lmlib makes every tensor that meets a model's data on that data's device.

No GPU is needed to catch most mistakes: a factory call such as ``torch.zeros(shape)`` makes a
CPU tensor, and on a GPU the next operation with the model's tensors fails. So every factory
call in lmlib either says where (``device=``), derives from a tensor (``x.new_zeros``,
``torch.zeros_like``: not factories here), builds a parameter (moved with its module), or is in
``CPU_BY_DESIGN`` with the reason its tensor never meets a model's data on another device.
A new factory call without ``device=`` fails this test until it does one of these.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from lmlib.course.recipes import RECIPES
from lmlib.lm import model_device

LMLIB = Path(__file__).resolve().parent.parent / "lmlib"
FACTORIES = {"zeros", "ones", "full", "empty", "arange", "tensor", "rand", "randn", "randint", "eye", "linspace"}

# (module, enclosing function): why its tensors may be made on the CPU.
CPU_BY_DESIGN = {
    ("word2vec", "*"): "Word2Vec trains on the CPU only (its hand-written SGD, like gensim's)",
    ("ngram", "*"): "counts and n-gram tables live on the CPU",
    ("course.finetune_runs", "*"): "the course's long runs build CPU batches, moved to the device by fine_tune",
    ("lm", "encode_batch"): "CPU ids; _score_batch moves them to the model's device",
    ("lm", "token_logprobs"): "an empty result, on the CPU like every result of the scorers",
    ("lm", "UniformLM.__init__"): "UniformLM has no weights: it computes on the CPU",
    ("lm", "mixture_logprobs"): "mixes the CPU scores the scorers return",
    ("lm", "_check_reordered_cache"): "check_language_model's probe ids, for a model on the CPU",
    ("train", "random_windows"): "windows of the CPU training stream; the loop moves each batch",
    ("train", "encode_stream"): "the CPU training stream",
    ("train", "_batches"): "row indices into the CPU training stream, from a CPU generator; the loop moves each batch",
    ("dpo", "response_batch"): "CPU rows of prompt and response ids; completion_logprobs moves them to the model",
    ("sft", "collate"): "CPU batches of chats; sft_loss and the training loop move them to the model's device",
    ("seq2seq", "encode_pairs"): "CPU rows of (source, target) training pairs; the loop moves each batch",
    ("retrieval", "embed"): "filled from sentence_embeddings' CPU output, which is cached with numpy",
    ("transformer", "rope_angles"): "a table made once; the model registers it as a buffer, which moves with it",
    ("neural", "never_predicted_mask"): "registered as a buffer, which moves with its module",
    ("pretraining", "mask_tokens"): "masks CPU batches with a CPU generator (the collator's), before they move",
    ("pretraining", "training_flops_per_token"): "made on the meta device (a torch.device context)",
    ("analysis", "activation_curves"): "a plot's x values, on the CPU",
    ("analysis", "optimizer_paths"): "a toy two-parameter optimisation, on the CPU",
    ("course.viz", "*"): "the chapters' plots, on the CPU",
    ("word2vec", "_unit_vector"): "vectors of gensim or lmlib, compared on the CPU",
}


def _factory_calls(path: Path):
    """(enclosing function as Class.method, line, call name) of torch factory calls without device=."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node, scope: list[str], in_parameter: bool):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = [*scope, node.name]
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "Parameter":
                in_parameter = True
            elif (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "torch"
                  and func.attr in FACTORIES and not in_parameter
                  and not any(k.arg == "device" for k in node.keywords)):
                found.append((".".join(s for s in scope if s) or "<module>", node.lineno, func.attr))
        for child in ast.iter_child_nodes(node):
            visit(child, scope, in_parameter)

    visit(tree, [], False)
    return found


def _module(path: Path) -> str:
    """lmlib/course/viz.py -> "course.viz"."""
    return ".".join(path.relative_to(LMLIB).with_suffix("").parts)


def _allowed_by(key: tuple[str, str], module: str, scope: str) -> bool:
    m, pattern = key
    return m == module and (pattern == "*" or scope == pattern or scope.startswith(pattern + "."))


def _allowed(module: str, scope: str) -> bool:
    return any(_allowed_by(key, module, scope) for key in CPU_BY_DESIGN)


def test_every_factory_call_says_its_device_or_why_not():
    offenders = [f"lmlib/{path.relative_to(LMLIB)}:{line} torch.{name}(...) in {scope}"
                 for path in sorted(LMLIB.rglob("*.py"))
                 for scope, line, name in _factory_calls(path) if not _allowed(_module(path), scope)]
    assert not offenders, ("tensors made on the CPU where they may meet a model on another device; pass "
                           "device= (or use x.new_zeros / torch.zeros_like), or add the function to "
                           "CPU_BY_DESIGN with the reason:\n  " + "\n  ".join(offenders))


def test_every_reason_given_still_applies():
    calls = {(_module(path), scope) for path in LMLIB.rglob("*.py") for scope, _, _ in _factory_calls(path)}
    unused = [key for key in CPU_BY_DESIGN if not any(_allowed_by(key, m, s) for m, s in calls)]
    assert not unused, f"CPU_BY_DESIGN entries that match no factory call any more (remove them): {unused}"


def test_the_scan_finds_a_factory_call_without_a_device(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("import torch\nfrom torch import nn\n\nclass M:\n    def f(self, x):\n"
                      "        a = torch.zeros(3)\n        b = torch.zeros(3, device=x.device)\n"
                      "        c = nn.Parameter(torch.empty(3))\n        return a, b, c\n")
    assert _factory_calls(source) == [("M.f", 6, "zeros")]


def test_model_device_is_where_the_weights_are():
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(object()) == torch.device("cpu")  # an n-gram table: no weights, the CPU
    assert model_device(torch.nn.Linear(2, 2, device="meta")) == torch.device("meta")


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@needs_cuda
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_recipe_trains_and_evaluates_a_few_steps_on_cuda(name, tmp_path):
    from lmlib.course.recipes import run_recipe

    path = run_recipe(RECIPES[name], out=tmp_path, max_steps=3, device="cuda", progress=False)
    assert path.exists()


@needs_cuda
def test_scoring_and_decoding_on_cuda():
    from lmlib.course.recipes import load_checkpoint
    from lmlib.generate import beam_search, greedy, sample
    from lmlib.lm import token_logprobs

    model = load_checkpoint("gpt_words_wiki").eval()
    sentences = [["the", "history", "of", "the", "city"], ["it", "is", "a", "small", "town"]]
    on_cpu = token_logprobs(model, sentences)
    model.to("cuda")
    assert torch.allclose(token_logprobs(model, sentences), on_cpu, atol=1e-4)
    assert greedy(model, ["the"], max_tokens=5).tokens == greedy(model, ["the"], max_tokens=5, use_cache=False).tokens
    beam_search(model, ["the"], max_tokens=5, num_beams=3)
    sample(model, ["the"], max_tokens=5, generator=torch.Generator().manual_seed(0))


@needs_cuda
@pytest.mark.parametrize("way", ["full", "LoRA"])
def test_fine_tuning_on_cuda(way):
    from lmlib.course.recipes import load_checkpoint
    from lmlib.finetune import GPTClassifier, accuracy, add_lora, train_classifier
    from lmlib.lm import encode_batch

    body = load_checkpoint("gpt_chars_peoples_daily")
    torch.manual_seed(0)
    model = GPTClassifier(body, n_classes=2, pooling="mean")
    if way == "LoRA":
        add_lora(model, r=4, alpha=8)
    texts = [list("很好用，质量不错"), list("太差了，不会再买"), list("非常满意"), list("退货了，很失望")] * 4
    ids, labels = encode_batch(body.vocab, texts), torch.tensor([1, 0, 1, 0] * 4)
    model.to("cuda")
    losses = train_classifier(model, ids, labels, epochs=3, lr=1e-3, batch_size=8)
    assert losses[-1] < losses[0]
    assert 0.0 <= accuracy(model, ids, labels) <= 1.0  # predicts on the GPU, returns CPU results


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="2 processes on GPUs need 2 CUDA devices (one each)")
def test_torchrun_two_processes_on_two_gpus_match_one_process(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    script, env = root / "tests" / "train_script.py", {**os.environ, "PYTHONPATH": str(root)}
    torchrun = Path(sys.executable).parent / "torchrun"
    subprocess.run([sys.executable, str(script), str(tmp_path / "one.pt"), "--device", "cuda"], check=True, env=env)
    subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", str(script), str(tmp_path / "two.pt"),
                    "--device", "cuda"], check=True, env=env, capture_output=True)
    one, two = (torch.load(tmp_path / f, weights_only=True)["history"] for f in ("one.pt", "two.pt"))
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)

