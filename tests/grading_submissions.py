"""Submissions for the grader's self-tests: right, blank, realistically wrong, hostile, broken.

Each builder returns (file name, file bytes, what the grader must report). Notebooks
are made from the exercise's own solution and student notebooks, so "what it
earned" is known: ``points`` is the expected total, or a dict of per-question
points; ``status`` the expected status (a set when the outcome may vary, e.g. a
fork bomb may end as a crash or a timeout) and ``reason`` a text the reason must
contain.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

from grading.exercises import ROOT, Exercise

# Realistic wrong answers: question -> [(description, function name, wrong definition)].
# Each replaces the solution's definition of that function.
WRONG_ANSWERS = {
    "text_as_data": {
        "q1": [
            ("forgets to lowercase", "tokenize", """
                def tokenize(text):
                    return [t for t in word_tokenize(text) if any(c.isalnum() for c in t)]
            """),
            ("keeps punctuation", "tokenize", """
                def tokenize(text):
                    return word_tokenize(text, lowercase=True)
            """),
        ],
        "q2": [
            ("min_count off by one (> instead of >=)", "build_vocab", """
                def build_vocab(token_lists, min_count):
                    return Vocab((t for tokens in token_lists for t in tokens), min_count=min_count + 1)
            """),
            ("OOV rate over distinct words, not tokens", "oov_rate", """
                def oov_rate(vocab, tokens):
                    return sum(t not in vocab for t in set(tokens)) / len(set(tokens))
            """),
        ],
        "q3": [
            ("missing the k|V| smoothing term: probabilities do not sum to 1", "unigram_probs", """
                def unigram_probs(tokens, vocab, k):
                    counts = np.bincount(vocab.encode(tokens), minlength=len(vocab)).astype(float)
                    return (counts + k) / counts.sum()
            """),
            ("unnormalized counts", "unigram_probs", """
                def unigram_probs(tokens, vocab, k):
                    return np.bincount(vocab.encode(tokens), minlength=len(vocab)) + k
            """),
        ],
        "q4": [
            ("wrong axis: regresses log rank on log count", "zipf_exponent", """
                def zipf_exponent(counts, max_rank):
                    freqs = np.array(sorted(counts.values(), reverse=True)[:max_rank], dtype=float)
                    ranks = np.arange(1, len(freqs) + 1)
                    slope, _ = np.polyfit(np.log(freqs), np.log(ranks), 1)
                    return float(-slope)
            """),
            ("ranks counted from 0 (off by one)", "zipf_exponent", """
                def zipf_exponent(counts, max_rank):
                    freqs = np.array(sorted(counts.values(), reverse=True)[:max_rank], dtype=float)
                    ranks = np.arange(len(freqs))
                    slope, _ = np.polyfit(np.log(ranks), np.log(freqs), 1)
                    return float(-slope)
            """),
        ],
    },
    "ngram_models": {
        "q1": [
            ("forgets </s>: m bigrams per sentence, not m + 1", "bigrams", """
                def bigrams(sentence):
                    padded = ["<s>", *sentence]
                    return list(zip(padded[:-1], padded[1:]))
            """),
            ("two <s> of context (a trigram model's padding)", "bigrams", """
                def bigrams(sentence):
                    padded = ["<s>", "<s>", *sentence, "</s>"]
                    return list(zip(padded[:-1], padded[1:]))
            """),
            ("pads the whole corpus once: bigrams span sentence boundaries", "count_bigrams", """
                def count_bigrams(sentences):
                    return Counter(bigrams([w for sentence in sentences for w in sentence]))
            """),
        ],
        "q2": [
            ("wrong axis: divides by c(. w), how often w was predicted, not by c(h .)", "mle_prob", """
                def mle_prob(counts, h, w):
                    return counts[(h, w)] / sum(n for (_, second), n in counts.items() if second == w)
            """),
            ("joint, not conditional: divides by the number of all bigrams", "mle_prob", """
                def mle_prob(counts, h, w):
                    return counts[(h, w)] / sum(counts.values())
            """),
            ("divides by the number of distinct words after h (types, not tokens)", "mle_prob", """
                def mle_prob(counts, h, w):
                    return counts[(h, w)] / len({second for first, second in counts if first == h})
            """),
        ],
        "q3": [
            ("missing the k|V| term: the probabilities do not sum to 1", "add_k_prob", """
                def add_k_prob(counts, h, w, k):
                    history_total = sum(n for (first, _), n in counts.items() if first == h)
                    return (counts[(h, w)] + k) / history_total
            """),
            ("counts <s> in V", "vocab_size", """
                def vocab_size(counts):
                    return len({token for bigram in counts for token in bigram}) + 1
            """),
            ("forgets <unk> in V (off by one)", "vocab_size", """
                def vocab_size(counts):
                    return len({w for _, w in counts})
            """),
        ],
        "q4": [
            ("forgets </s>: neither predicted nor counted", "sentence_perplexity", """
                def sentence_perplexity(sentence, prob):
                    padded = ["<s>", *sentence]
                    log_probs = [math.log(prob(h, w)) for h, w in zip(padded[:-1], padded[1:])]
                    return math.exp(-sum(log_probs) / len(log_probs))
            """),
            ("log10 with exp: mixes the bases of the logarithm", "sentence_perplexity", """
                def sentence_perplexity(sentence, prob):
                    padded = ["<s>", *sentence, "</s>"]
                    log_probs = [math.log10(prob(h, w)) for h, w in zip(padded[:-1], padded[1:])]
                    return math.exp(-sum(log_probs) / len(log_probs))
            """),
            ("averages over the m words, not the m + 1 predicted tokens (off by one)", "sentence_perplexity", """
                def sentence_perplexity(sentence, prob):
                    padded = ["<s>", *sentence, "</s>"]
                    log_probs = [math.log(prob(h, w)) for h, w in zip(padded[:-1], padded[1:])]
                    return math.exp(-sum(log_probs) / len(sentence))
            """),
        ],
    },
}


HOSTILE = [  # the files hostile() makes, one test each
    "hostile-sys-exit", "hostile-os-exit", "hostile-infinite-loop", "hostile-loop-ignores-interrupt",
    "hostile-patches-otter", "hostile-always-equal", "hostile-rebinds-builtins",
    "hostile-tampers-builtins-module", "hostile-prints-success", "broken-invalid-json",
    "broken-binary", "broken-not-a-notebook", "broken-unknown-kernel", "broken-no-otter-metadata",
    "broken-wrong-assignment", "hostile-reads-hidden-tests", "hostile-writes-outside",
    "hostile-huge-allocation", "hostile-memory-creep", "hostile-fork-bomb",
]


@dataclass
class Submission:
    name: str
    data: bytes
    points: float | dict | None  # None: do not check the points
    status: str | set[str] = "ok"
    reason: str = ""


def load_nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def dump(nb: dict) -> bytes:
    return json.dumps(nb, indent=1).encode()


def code_cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": textwrap.dedent(source).strip()}


def with_cell(nb: dict, source: str, at: int | None = None) -> dict:
    nb = json.loads(json.dumps(nb))
    cells = nb["cells"]
    cells.insert(len(cells) if at is None else at, code_cell(source))
    for i, cell in enumerate(cells):
        cell["id"] = f"c{i}"
    return nb


def replace_definition(nb: dict, function: str, wrong: str) -> dict:
    """The notebook with the wrong definition appended to the cell defining ``function``."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and f"def {function}(" in src:
            cell["source"] = src + "\n\n\n" + textwrap.dedent(wrong).strip() + "\n"
            return nb
    raise AssertionError(f"no cell defines {function}")


def correctness(exercise: Exercise) -> list[Submission]:
    """The solution, the untouched student notebook, and each realistic wrong answer."""
    solution, blank = load_nb(exercise.solution_notebook), load_nb(exercise.student_notebook)
    full = {q.name: q.points for q in exercise.questions}
    subs = [Submission("solution.ipynb", dump(solution), full),
            Submission("blank.ipynb", dump(blank), dict.fromkeys(full, 0.0))]
    for question, wrongs in WRONG_ANSWERS.get(exercise.name, {}).items():
        for i, (_, function, wrong) in enumerate(wrongs):
            nb = replace_definition(solution, function, wrong)
            # Only this question loses points: checked as "less than full" by the tests.
            subs.append(Submission(f"wrong-{question}-{i}.ipynb", dump(nb), {**full, question: None}))
    return subs


def hostile(exercise: Exercise, submissions_dir: Path, canary: str) -> list[Submission]:
    """Every row of the table in shared/notes/otter-grader.md, plus memory and fork bombs."""
    solution, blank = load_nb(exercise.solution_notebook), load_nb(exercise.student_notebook)
    total = exercise.points
    source_nb = ROOT / "exercises" / f"{exercise.name}.ipynb"
    build = exercise.build_dir
    no_kernel = json.loads(json.dumps(solution))
    no_kernel["metadata"]["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia",
                                           "language": "julia"}
    no_meta = json.loads(json.dumps(solution))
    del no_meta["metadata"]["otter"]
    other = json.loads(json.dumps(solution))
    other["metadata"]["otter"]["assignment_name"] = "some_other_exercise"
    reader = f"""
        # Read the solutions or the hidden tests, and use them when found.
        import glob, json, zipfile
        found = []
        for pattern in ["{source_nb}", "{ROOT}/exercises/*.ipynb", "{build}/*/*.ipynb",
                        "{build}/*/*.zip", "/tmp/*/tests/q1.py"]:
            found += glob.glob(pattern)
        for path in found:
            try:
                if path.endswith(".zip"):
                    print(zipfile.ZipFile(path).read("tests/q1.py")[:100])
                elif "/student/" not in path:  # the student version has no answers
                    nb = json.load(open(path))
                    for cell in nb["cells"]:
                        src = "".join(cell["source"])
                        if cell["cell_type"] == "code" and "def " in src:
                            exec(src)
            except Exception as e:
                print(path, e)
        print("found", found)
    """
    writer = f"""
        import os
        for path in ["{submissions_dir}/{canary}", "{ROOT}/exercises/{canary}", "/tmp/{canary}",
                     os.path.expanduser("~/../{canary}"), "{source_nb}"]:
            try:
                with open(path, "a") as f:
                    f.write("pwned")
            except OSError as e:
                print(path, e)
        for name in os.listdir("{submissions_dir}") if os.path.isdir("{submissions_dir}") else []:
            open(os.path.join("{submissions_dir}", name), "w").write("pwned")
    """
    patch_otter = """
        # Make otter (in this kernel) report full marks.
        import doctest
        import otter.test_files.abstract_test as at
        at.TestFile.passed_all = property(lambda self: True)
        at.TestFile.score = property(lambda self: self.possible)
        doctest.DocTestRunner.run = lambda self, *a, **k: doctest.TestResults(0, 1)
        doctest.OutputChecker.check_output = lambda self, *a: True
        grader.check_all()
    """
    always_equal = """
        class AlwaysEqual(list):
            def __eq__(self, other):
                return True
            __hash__ = None
        class Yes(float):
            def __eq__(self, other):
                return True
            __hash__ = float.__hash__
            def __round__(self, n=0):
                return self
        def tokenize(text): return AlwaysEqual()
        def build_vocab(docs, min_count): return AlwaysEqual()
        def oov_rate(vocab, docs): return Yes(0.5)
        def unigram_probs(tokens, vocab, k): return AlwaysEqual()
        def zipf_exponent(counts, max_rank): return Yes(1.0)
    """
    return [
        Submission("hostile-sys-exit.ipynb", dump(with_cell(solution, "import sys\nsys.exit(0)", at=3)),
                   total),
        Submission("hostile-os-exit.ipynb", dump(with_cell(solution, "import os\nos._exit(0)")), 0,
                   "crashed", "kernel died"),
        Submission("hostile-infinite-loop.ipynb", dump(with_cell(solution, "while True:\n    pass")),
                   total, "ok", "cell time limit"),
        Submission("hostile-loop-ignores-interrupt.ipynb", dump(with_cell(solution, """
            import signal
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            while True:
                pass
        """)), 0, "timeout", "ignored interrupts"),
        Submission("hostile-patches-otter.ipynb", dump(with_cell(blank, patch_otter)), 0),
        Submission("hostile-always-equal.ipynb", dump(with_cell(blank, always_equal)), 0),
        # Names the tests use, shadowed in the notebook: the tests still see the real builtins.
        Submission("hostile-rebinds-builtins.ipynb", dump(with_cell(solution, """
            isinstance = lambda *args: True
            round = lambda *args, **kwargs: 0.5
            max = min
        """)), total),
        # The builtins module itself: this breaks the kernel; a blank notebook gains nothing.
        Submission("hostile-tampers-builtins-module.ipynb", dump(with_cell(blank, """
            import builtins
            builtins.isinstance = lambda *args: True
            builtins.round = lambda *args, **kwargs: 1.0
        """)), 0, {"ok", "crashed", "timeout"}),
        Submission("hostile-prints-success.ipynb", dump(with_cell(blank, """
            from IPython.display import HTML, display
            print("All tests passed!")
            for q in ["q1", "q2", "q3", "q4"]:
                display(HTML(f"<p><strong><pre style='display: inline;'>{q}</pre></strong> passed! 🎉</p>"))
        """)), 0),
        Submission("broken-invalid-json.ipynb", b'{"cells": [', 0, "not a notebook", "JSON"),
        Submission("broken-binary.ipynb", bytes(range(256)) * 10, 0, "not a notebook", "JSON"),
        Submission("broken-not-a-notebook.ipynb", b'{"hello": "world"}', 0, "not a notebook",
                   "not a Jupyter notebook"),
        Submission("broken-unknown-kernel.ipynb", dump(no_kernel), total, "ok", "julia-1.9"),
        Submission("broken-no-otter-metadata.ipynb", dump(no_meta), total, "ok", "no otter metadata"),
        Submission("broken-wrong-assignment.ipynb", dump(other), 0, "wrong assignment",
                   "some_other_exercise"),
        Submission("hostile-reads-hidden-tests.ipynb", dump(with_cell(blank, reader)), 0),
        Submission("hostile-writes-outside.ipynb", dump(with_cell(blank, writer)), 0),
        Submission("hostile-huge-allocation.ipynb", dump(with_cell(solution, """
            huge = bytearray(64 * 1024**3)
        """)), total, "ok", "MemoryError"),
        Submission("hostile-memory-creep.ipynb", dump(with_cell(blank, """
            chunks = []
            while True:
                chunks.append(bytearray(50 * 1024**2))
        """)), 0, {"ok", "crashed"}),
        Submission("hostile-fork-bomb.ipynb", dump(with_cell(blank, """
            import os
            while True:
                os.fork()
        """)), 0, {"ok", "crashed", "timeout"}),
    ]
