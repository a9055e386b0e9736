"""lmlib.course.code_generation_runs: the parse-rate protocol's cut and its parser check, run end to end on an
n-gram model that can only copy (its interval, ``lmlib.metrics.wilson_interval``, is tested in test_metrics.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lmlib import data
from lmlib.course import code_generation_runs as C
from lmlib.course.recipes import load_checkpoint
from lmlib.generate import sample
from lmlib.lm import IncrementalDecoding, token_logprobs
from lmlib.ngram import NGramLM
from lmlib.tokenize import Vocab
from lmlib.transformer import GPT, GPTConfig


def test_function_text_ends_at_the_first_dedent_to_column_0():
    body = "def f(x):\n    y = x\n\n    return y"
    assert C.function_text(body + "\n\nprint(f(1))\n") == (body, True)
    assert C.function_text(body + "\n# a comment at column 0\n    z = 1") == (body, True)
    signature = "def g(\n    a,\n    b,\n):\n    return a + b"  # one parameter a line: "):" continues it
    assert C.function_text(signature + "\nclass C: pass") == (signature, True)
    assert C.function_text("def h(): return 1\nx = h()") == ("def h(): return 1", True)
    assert C.function_text("def k():\n    return (1 +\n") == ("def k():\n    return (1 +", False)


def test_the_stdlibs_own_functions_still_parse_after_the_cut():
    functions = [b for b in data.load_python_blocks("all") if b.startswith("def ")]
    cut = [C.function_text(f + "\n\nx = 1\n") for f in functions]
    assert len(functions) > 1000 and all(ended for _, ended in cut)
    assert sum(C.parses(text) for text, _ in cut) >= 0.99 * len(functions)  # misses: strings at column 0


def test_parses_is_pythons_parser():
    assert C.parses("def f():\n    return 1")
    assert not C.parses("def f():\n    return (1")
    assert not C.parses("def f():\nreturn 1")  # the body must be indented
    assert not C.parses("def f():\n    x = '\0'\n" + "\0")  # a null byte: ValueError, counted as a failure


def test_the_protocol_end_to_end_on_a_model_that_can_only_copy():
    """An order-32 MLE n-gram trained on two functions can only copy them (its context spans each
    whole): greedy decoding gives the more frequent one every time; sampling at temperature 1 mixes the
    two, the same way for the same seed; every sample ends (at <eos>), parses, and is a copy."""
    add, sub = "def add(a, b):\n    return a + b", "def sub(a, b):\n    return a - b"
    model = NGramLM(32, "mle").fit([list(add), list(add), list(sub)])
    [greedy] = C.parse_rates(model, [0], n=3, training_text=add + "\n" + sub, max_characters=60)
    assert [s.text for s in greedy.samples] == [add] * 3
    assert greedy.interval.estimate == 1.0 and greedy.copies == 3 and greedy.unfinished == 0
    first = C.parse_rates(model, [1.0], n=20, max_characters=60, seed=7)[0]
    assert first == C.parse_rates(model, [1.0], n=20, max_characters=60, seed=7)[0]
    assert {s.text for s in first.samples} == {add, sub} and first.interval.estimate == 1.0
    assert first.copies == 0  # no training text given: copies are not counted
    short = C.sample_functions(model, 0, 2, max_characters=5)
    assert all(not s.ended and not s.parses for s in short)  # cut off at the cap: unfinished, a failure


def test_the_stop_rule_is_the_cuts_rule():
    """StopAtFunctionEnd stops a row at the first token after a line break that ends_a_function: the very
    place function_text cuts, on every function of the library followed by a statement, and on edge cases."""
    functions = [b for b in data.load_python_blocks("all") if b.startswith("def ")]
    edge = ["def g(\n    a,\n):\n    return a\n\n\n)\nx", "def h():\n    pass\n\n   \n\tx\ny", "def k(): pass\n#\n"]
    for text in [f + "\n\nx = 1\n" for f in functions] + edge:
        stop = next(i for i in range(1, len(text)) if text[i - 1] == "\n" and C.ends_a_function(text[i]))
        assert C.function_text(text) == (text[: stop - 1].rstrip(), True)
    assert not any(C.ends_a_function(t) for t in ["", " ", "\t", "\n", ")", "]", "}"])
    assert all(C.ends_a_function(t) for t in ["x", "#", "@", "'", "<unk>"])


def test_stopping_at_function_end_changes_no_verdict():
    """Greedy decoding of a model that copies a block going on after its function: with or without the stop,
    the same function, ended and parsed; with it, the row ends right after the column-0 token, with <eos>."""
    block = "def f(a):\n    return a\nx = f(1)\nprint(x)"
    model = NGramLM(48, "mle").fit([list(block)])
    stopped = C.stopping_at_function_end(model)
    assert type(stopped) is C.StopAtFunctionEnd  # an n-gram model has no cache
    [plain] = sample(model, list(C.PROMPT), 60, temperature=0)
    [early] = sample(stopped, list(C.PROMPT), 60, temperature=0)
    assert "".join(plain.tokens) == block[4:] and plain.finished
    assert "".join(early.tokens) == block[4:block.index("\nx") + 2] and early.finished
    assert C.judged("".join(plain.tokens), True) == C.judged("".join(early.tokens), True)
    assert C.judged("".join(early.tokens), True) == C.FunctionSample("def f(a):\n    return a", True, True)


def test_the_stop_keeps_a_gpts_cache_and_its_samples():
    """On a GPT (which reads through a KV cache) the wrapper decodes incrementally, and every sample it
    draws is the unwrapped model's, up to the cut, at each step's own distribution."""
    torch.manual_seed(0)
    text = "def f(a):\n    return a\nx = 1\n"
    vocab = Vocab(list(text))
    gpt = GPT(GPTConfig(vocab_size=len(vocab), block_size=16, d_model=16, n_layers=1, n_heads=2,
                        window_stride=8), vocab).eval()
    stopped = C.stopping_at_function_end(gpt)
    assert isinstance(stopped, C.IncrementalStopAtFunctionEnd) and isinstance(stopped, IncrementalDecoding)
    stops = 0
    for g in sample(stopped, list(C.PROMPT), 40, num_samples=8, generator=torch.Generator().manual_seed(1)):
        ids = [vocab.bos_id, *vocab.encode(C.PROMPT), *g.ids]
        expected = gpt.sequence_logprobs(torch.tensor([ids]))[0, len(C.PROMPT):].double()  # [len(g.ids)]
        text = C.PROMPT + "".join(g.tokens)
        forced = g.finished and text[-2] == "\n" and C.ends_a_function(text[-1])  # then <eos> had probability 1
        n = len(g.ids) - forced
        assert torch.tensor(g.logprobs[:n], dtype=torch.float64) == pytest.approx(expected[:n], abs=1e-5)
        assert not any(text[i - 1] == "\n" and C.ends_a_function(text[i])  # it stopped at the first end
                       for i in range(1, len(text) - 1))
        stops += forced
    assert stops > 0


def test_the_librarys_own_functions_are_the_ceiling():
    short, long = "def f():\n    return 1", "def g():\n" + "    x = 1\n" * 60 + "    return x"
    assert C.written_by_the_library(short) == C.FunctionSample(short, True, True)
    assert C.written_by_the_library(long) == C.FunctionSample(long[:504].rstrip(), False, False)  # past the cap
    exact = "def h():\n    return 12345"  # 21 characters after the prompt, then <eos>: 22 tokens
    assert C.written_by_the_library(exact, max_characters=22).parses
    assert not C.written_by_the_library(exact, max_characters=21).ended
    with pytest.raises(ValueError, match="starts with 'def '"):
        C.written_by_the_library("class A: pass")


def test_kneser_ney_by_order_is_bits_per_character():
    train = [list(b) for b in data.load_python_blocks("train")[:200]]
    valid = [list(b) for b in data.load_python_blocks("valid")[:50]]
    rows = C.kneser_ney_by_order(train, valid, [2, 4])
    model = NGramLM(4, "modified_kneser_ney", min_count=2).fit(train)
    bits = -token_logprobs(model, valid).mean().item() / math.log(2)
    assert [r["order"] for r in rows] == [2, 4] and rows[1]["bits per character"] == round(bits, 3)
    assert rows[0]["bits per character"] > rows[1]["bits per character"]


def test_the_ngram_memo_gives_the_models_own_distributions():
    blocks = [list(b) for b in data.load_python_blocks("train")[:300]]
    model = NGramLM(6, "modified_kneser_ney", min_count=2).fit(blocks)
    contexts = torch.tensor([[model.vocab.bos_id, *model.vocab.encode(list(t))] for t in
                             ["def f(self, x", "def g(self, x", "class A(B, C)", "    return x,"]])
    for width in (1, 2, 3, 6, 9, contexts.shape[1]):  # shorter than n - 1 = 5 tokens after <bos>, and longer
        memo = C.NGramMemo(model)
        ours, theirs = memo.next_token_logprobs(contexts[:, :width]), model.next_token_logprobs(contexts[:, :width])
        assert torch.equal(ours, theirs)
    assert len(memo.memo) == 3  # the first two rows end in the same 5 tokens: one context, read once
    kwargs = {"temperature": 0.7, "num_samples": 12, "suppress": ["<unk>"]}
    plain = sample(model, list(C.PROMPT), 80, generator=torch.Generator().manual_seed(3), **kwargs)
    remembered = sample(C.NGramMemo(model), list(C.PROMPT), 80, generator=torch.Generator().manual_seed(3), **kwargs)
    assert [g.ids for g in plain] == [g.ids for g in remembered]


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(C.SCORES.read_text(encoding="utf-8"))


def test_the_committed_scores_are_those_of_the_checkpoint_and_library_here(committed):
    assert C.stale_inputs(committed) == [], f"rerun {C.COMMAND}"
    modules = data.load_python_modules("test")
    assert [m["module"] for m in committed["modules"]] == [name for name, _ in modules]
    assert [m["characters"] for m in committed["modules"]] == \
        [sum(len(b) + 1 for b in data.python_blocks(source)) for _, source in modules]
    altered = {**committed, "checkpoint_sha256": "0" * 64}
    assert [s.split(":")[0] for s in C.stale_inputs(altered)] == ["checkpoint_sha256"]


def test_the_committed_scores_recompute():
    """The GPT's scores of the three smallest test modules, recomputed: equal to the committed ones (the
    chapter recomputes the six smallest in front of the reader, under both of nbval's math kernels; any
    change of checkpoint or library shows in the inputs checked above)."""
    committed = {m["module"]: m for m in C.held_out_scores()}
    small = sorted(data.load_python_modules("test"), key=lambda module: len(module[1]))[:3]
    for m in C.module_logprobs(load_checkpoint(C.RECIPE), small):
        assert m["characters"] == committed[m["module"]]["characters"]
        assert m["nats"] == pytest.approx(committed[m["module"]]["nats"], rel=1e-6)


def test_module_logprobs_adds_up_each_modules_blocks():
    modules = [("a", "x = 1\n\n\ndef f():\n    return 2\n"), ("b", "y = 3\n")]
    model = NGramLM(3, "kneser_ney").fit([list(b) for _, src in modules for b in data.python_blocks(src)])
    rows = C.module_logprobs(model, modules)
    blocks = [list(b) for b in ["x = 1", "def f():\n    return 2", "y = 3"]]
    scores = token_logprobs(model, blocks)
    assert [r["characters"] for r in rows] == [6 + 22, 6] and len(scores) == 34
    assert rows[0]["nats"] == pytest.approx(-scores[:28].sum().item())
    assert rows[1]["nats"] == pytest.approx(-scores[28:].sum().item())


def test_stale_scores_are_computed_again_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "module_logprobs", lambda model, modules: "computed here")
    monkeypatch.setattr(C, "load_checkpoint", lambda recipe: None)
    path = tmp_path / "scores.json"
    with pytest.warns(UserWarning, match="is missing"):
        assert C.held_out_scores(path) == "computed here"
    path.write_text(json.dumps({**C.scores_inputs(), "modules": "committed"}), encoding="utf-8")
    assert C.held_out_scores(path) == "committed"
    path.write_text(json.dumps({**C.scores_inputs(), "corpus": {"python": "3.12.0"}, "modules": "committed"}))
    with pytest.warns(UserWarning, match="corpus: .*3.12.0"):
        assert C.held_out_scores(path) == "computed here"
