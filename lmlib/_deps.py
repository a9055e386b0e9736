"""Optional imports with an error that says how to install what is missing."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

# import name -> pip name, for the packages lmlib reaches for lazily
_PIP_NAMES = {
    "gensim": "gensim",
    "numba": "numba",
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


def _missing(module: str) -> ImportError:
    pip_name = _PIP_NAMES.get(module.split(".")[0], module.split(".")[0])
    return ImportError(
        f"lmlib needs the package '{pip_name}' for this, and it is not installed. "
        f"Install it with `pip install {pip_name}`, or set up the whole course "
        f"environment with `make install` (pip install -e '.[course]')."
    )


def require(module: str) -> ModuleType:
    """Import ``module``, or raise ImportError naming the ``pip install`` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise _missing(module) from e


def package_dir(package: str) -> Path:
    """Where an installed package lives, found without importing it (gensim takes a second to import)."""
    try:
        spec = importlib.util.find_spec(package)
    except ValueError:  # a package set to None in sys.modules, as tests do to simulate its absence
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise _missing(package)
    return Path(spec.submodule_search_locations[0])
