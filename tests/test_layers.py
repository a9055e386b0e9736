"""lmlib's import graph runs one way: foundations -> the seam -> models -> tools -> the course.

A module imports lmlib modules of its own layer or of the layers before it, never after
(a lazy import inside a function counts; an ``if TYPE_CHECKING:`` import, which never runs, does
not). The training loop and the checkpoint files import no model: they know a model only through
the seam (``lmlib.neural.NeuralLM``). A new module fails ``test_every_module_has_a_layer`` until it
is placed in ``LAYERS``; the README's table of layers says the same.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

LMLIB = Path(__file__).resolve().parent.parent / "lmlib"

LAYERS = {  # in order: a module may import from its own layer and the ones before it
    "foundations": {"_deps", "data", "tokenize", "bpe", "show", "answers", "metrics", "numerals", "instructions"},
    "the seam": {"lm", "neural"},
    "models": {"ngram", "mlp", "rnn", "transformer", "seq2seq", "hf", "pretraining", "word2vec", "word2vec_numba"},
    "tools": {"train", "checkpoint", "generate", "finetune", "analysis", "summarize", "retrieval", "quantize",
              "distill", "memorisation", "calibration", "probing", "chat", "sft", "dpo"},
    "the course": {"course", "course.recipes", "course.finetune_runs", "course.summarization_runs",
                   "course.classification_runs", "course.code_generation_runs",
                   "course.league", "course.scaling_runs",
                   "course.distillation_runs", "course.memorisation_runs", "course.sft_runs", "course.dpo_runs",
                   "course.viz", "course.chat_cli"},
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}
MODEL_FREE = {"train", "checkpoint"}  # they meet models only through lmlib.neural


def module_name(path: Path) -> str:
    """lmlib/course/viz.py -> "course.viz"; lmlib/course/__init__.py -> "course"."""
    parts = path.relative_to(LMLIB).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lmlib_imports(source: str) -> set[str]:
    """The lmlib modules a source imports when it runs (top level or inside functions)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return  # type hints only: never imported at run time
        if isinstance(node, ast.Import):
            found.update(a.name.removeprefix("lmlib.") for a in node.names if a.name.startswith("lmlib."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "lmlib":  # from lmlib import generate, lm
                found.update(a.name for a in node.names if a.name != "__version__")
            elif node.module.startswith("lmlib."):
                found.add(node.module.removeprefix("lmlib."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): lmlib_imports(p.read_text(encoding="utf-8")) for p in sorted(LMLIB.rglob("*.py"))
            if module_name(p)}


def upward(imports: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} ({_layer(m)}) imports {i} ({_layer(i)})" for m, targets in imports.items()
                  for i in targets if RANK[i] > RANK[m])


def _layer(module: str) -> str:
    return list(LAYERS)[RANK[module]]


def test_every_module_has_a_layer():
    unplaced = sorted(set(graph()) - set(RANK))
    assert not unplaced, f"place these modules in a layer of LAYERS (and the README's table): {unplaced}"
    gone = sorted(set(RANK) - set(graph()))
    assert not gone, f"LAYERS names modules that do not exist (remove them): {gone}"


def test_no_module_imports_a_later_layer():
    imports = graph()
    assert not upward(imports), "imports that point up the layers:\n  " + "\n  ".join(upward(imports))


def test_the_training_loop_and_checkpoints_import_no_model():
    imports = graph()
    for module in MODEL_FREE:
        models = sorted(i for i in imports[module] if i in LAYERS["models"])
        assert not models, f"lmlib.{module} imports the models {models}: it must know them only through lmlib.neural"


def test_the_scan_sees_lazy_imports_and_skips_type_hints():
    source = ("from typing import TYPE_CHECKING\nfrom lmlib import lm\nif TYPE_CHECKING:\n"
              "    from lmlib.train import TrainConfig\n\ndef f():\n    from lmlib.course.recipes import RECIPES\n"
              "    import lmlib.generate\n")
    assert lmlib_imports(source) == {"lm", "course.recipes", "generate"}


def test_an_import_up_the_layers_is_reported():
    with pytest.raises(AssertionError, match=r"transformer \(models\) imports course.recipes \(the course\)"):
        imports = {**graph(), "transformer": {"neural", "course.recipes"}}
        assert not upward(imports), "\n".join(upward(imports))


def test_the_graph_is_what_the_readme_shows():
    readme = (LMLIB.parent / "README.md").read_text(encoding="utf-8")
    for layer, modules in LAYERS.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| {layer} |")), None)
        assert row is not None, f"the README's table of layers has no row for {layer!r}"
        shown = {m.rstrip("/") for m in re.findall(r"`([^`]+)`", row.split("|")[2])}
        assert shown == modules, f"README row {layer!r} shows {sorted(shown)}, LAYERS has {sorted(modules)}"


def test_the_graph_is_what_the_package_docstring_shows():
    import lmlib

    lines = lmlib.__doc__.split("\n")
    for layer, modules in LAYERS.items():
        start = next((i for i, line in enumerate(lines) if line.strip().startswith(layer + "  ")), None)
        assert start is not None, f"lmlib/__init__.py's docstring has no line for the layer {layer!r}"
        text = lines[start].strip().removeprefix(layer)
        for more in lines[start + 1:]:  # a layer's list may run on, indented, until the next layer
            if not more.startswith(" " * 18) or not more.strip():
                break
            text += " " + more.strip()
        if layer == "the course":  # course/ (recipes, viz): ... -> course, course.recipes, course.viz
            inside = re.search(r"\(([^)]*)\)", text).group(1)
            shown = {"course"} | {f"course.{m.strip()}" for m in inside.split(",")}
        else:
            shown = {m.strip() for m in text.split(",")}
        assert shown == modules, f"lmlib's docstring lists {sorted(shown)} for {layer!r}, LAYERS has {sorted(modules)}"
