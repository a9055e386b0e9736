"""Optional imports with an error that says how to install what is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

# import name -> pip name, for the packages lmlib reaches for lazily
_PIP_NAMES = {
    "gensim": "gensim",
    "snownlp": "snownlp",
    "jieba": "jieba",
    "tokenizers": "tokenizers",
    "transformers": "transformers",
    "nltk": "nltk",
    "kenlm": "kenlm",
    "sacrebleu": "sacrebleu",
    "matplotlib": "matplotlib",
    "ipywidgets": "ipywidgets",
}


def require(module: str) -> ModuleType:
    """Import ``module``, or raise ImportError naming the ``pip install`` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pip_name = _PIP_NAMES.get(module.split(".")[0], module.split(".")[0])
        raise ImportError(
            f"lmlib needs the package '{pip_name}' for this, and it is not installed. "
            f"Install it with `pip install {pip_name}`, or set up the whole course "
            f"environment with `make install` (pip install -e '.[course]')."
        ) from e
