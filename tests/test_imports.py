"""What importing lmlib costs: the foundations and the n-gram model load without torch.

torch takes about a second to import, longer than counting a corpus's n-grams, so the modules
that need no tensors must not import it: ``lmlib.data`` and ``lmlib.tokenize`` (the foundations),
and ``lmlib.ngram``, whose fit and fast path (``token_logprobs``, ``sentence_logprobs``) are numpy;
only its protocol methods, which return tensors, import torch when called. Each check runs in a
fresh interpreter, where nothing has imported torch yet.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(code: str) -> str:
    """Run ``code`` in a fresh Python from the repository root; its stdout (a failure shows its stderr)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("module", ["lmlib.ngram", "lmlib.data", "lmlib.tokenize"])
def test_importing_does_not_import_torch(module):
    run(f"import {module}, sys; assert 'torch' not in sys.modules, 'importing {module} imported torch'")


def test_an_ngram_model_fits_and_scores_without_torch():
    run("import sys\n"
        "from lmlib.ngram import NGramLM\n"
        "model = NGramLM(3).fit([['a', 'b'], ['b', 'a', 'a']])\n"
        "model.token_logprobs([['a', 'b', 'z']]), model.sentence_logprobs([['b'], []])\n"
        "model.logprob('b', ['<s>', 'a']), model.unseen_fraction([['a', 'b']])\n"
        "assert 'torch' not in sys.modules, 'fitting or scoring an n-gram model imported torch'")


def test_the_protocol_methods_import_torch_when_called():
    out = run("import numpy as np\n"
              "from lmlib.ngram import NGramLM\n"
              "model = NGramLM(2).fit([['a', 'b']])\n"
              "forced = model.sequence_logprobs(np.array([[2, 4, 5, 3]]))\n"
              "print(type(forced).__name__, len(model.predict_next(['a'], k=2)))\n"
              "print(float(model.perplexity([['a', 'b']])) > 1)")
    assert out.split() == ["Tensor", "2", "True"]
