"""The grader is tested, not trusted.

For every exercise: the solution scores full marks, the untouched student
notebook scores zero, each realistic wrong answer loses points in its own
question only, and each realistic alternative right answer (NumPy instead of
pure Python, a tuple instead of a list, another algorithm) earns its question's
full points, in ``make grade`` and in the notebook's ``grader.check``. For the
pilot exercise, every hostile or broken submission from
shared/notes/otter-grader.md (plus memory and fork bombs) is graded in the same
folder as honest ones: each gets what it earned with a reason, the others are
still graded, and no submission file is modified. All of it goes through the
real sandbox (bubblewrap, as installed by .ci/run).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from grading import exercises, grade, sandbox
from grading.exercises import ROOT
from tests import grading_submissions as gs

PILOT = "text_as_data"
LIMITS = sandbox.Limits(wall_s=90, cell_s=10)  # shorter than the defaults: hostile runs are slow
CANARY = "grading-canary-written-by-a-submission"
# Work that runs one process at a time (otter assign, nbconvert) runs this many at once: no sandbox
# runs meanwhile, so no cell limit can be hit because of it.
WORKERS = os.cpu_count() or 1


@pytest.fixture(scope="module")
def without_iri_grammar(tmp_path_factory) -> str:
    """A PYTHONPATH for the tests' otter and nbconvert processes (and their kernels) in which jsonschema finds no
    ``rfc3987_syntax``: that optional module compiles an IRI grammar at import (about 2 CPU seconds per process)
    for a format check that nbformat and otter never use. The sandbox skips it the same way (sandbox.py)."""
    stub = tmp_path_factory.mktemp("without-iri-grammar")
    (stub / "rfc3987_syntax").mkdir()
    (stub / "rfc3987_syntax" / "__init__.py").write_text('raise ImportError("skipped by tests/test_grading.py")\n')
    return os.pathsep.join(p for p in [str(stub), os.environ.get("PYTHONPATH", "")] if p)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module", params=exercises.names())
def graded(request, tmp_path_factory):
    """Grade one folder per exercise: right (in several forms), blank and wrong answers (and, for the pilot,
    hostile ones); what the grader prints or warns is captured."""
    ex = exercises.load(request.param)
    folder = tmp_path_factory.mktemp(f"submissions-{ex.name}")
    subs = gs.correctness(ex) + gs.styles(ex) + (gs.hostile(ex, folder, CANARY) if ex.name == PILOT else [])
    for s in subs:
        (folder / s.name).write_bytes(s.data)
    if ex.name == PILOT:  # named like notebooks, but no file to read
        (folder / "broken-a-folder.ipynb").mkdir()
        os.mkfifo(folder / "broken-a-pipe.ipynb")
    protected = [*(p for p in folder.iterdir() if p.is_file()), ROOT / "exercises" / f"{ex.name}.ipynb"]
    before = {p: sha(p) for p in protected}
    out = tmp_path_factory.mktemp(f"grades-{ex.name}") / "grades.csv"
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as warned, contextlib.redirect_stderr(printed):
        warnings.simplefilter("default")
        rows = grade.grade_folder(folder, out, limits=LIMITS, use_sandbox="bubblewrap", quiet=True)
    return {"exercise": ex, "rows": {r.file: r for r in rows}, "subs": {s.name: s for s in subs},
            "folder": folder, "out": out, "before": before, "warned": warned, "stderr": printed.getvalue()}


def test_solution_scores_full_marks(graded):
    ex, row = graded["exercise"], graded["rows"]["solution.ipynb"]
    assert (row.status, row.reason) == ("ok", "")
    assert row.points == {q.name: q.points for q in ex.questions}
    assert row.total == ex.points > 0


def test_untouched_student_notebook_scores_zero(graded):
    row = graded["rows"]["blank.ipynb"]
    assert row.status == "ok"
    assert row.total == 0
    assert set(row.points) == {q.name for q in graded["exercise"].questions}


def test_each_wrong_answer_loses_points_in_its_question_only(graded):
    ex = graded["exercise"]
    wrongs = gs.WRONG_ANSWERS.get(ex.name, {})
    assert set(wrongs) == {q.name for q in ex.questions}, "every question needs a wrong answer"
    for question, cases in wrongs.items():
        for i, (what, _, _) in enumerate(cases):
            row = graded["rows"][f"wrong-{question}-{i}.ipynb"]
            for q in ex.questions:
                if q.name == question:
                    assert row.points[q.name] < q.points, f"{question} ({what}) kept its points"
                else:
                    assert row.points[q.name] == q.points, f"{question} ({what}) cost {q.name} points"


def test_each_alternative_right_answer_earns_full_points(graded):
    """NumPy scalars and arrays, tuples, loops, other algorithms: a right answer never loses points."""
    ex = graded["exercise"]
    alternatives = gs.ALTERNATIVE_ANSWERS.get(ex.name, {})
    assert set(alternatives) == {q.name for q in ex.questions}, "every question needs alternative answers"
    assert all(len(a) >= 2 for a in alternatives.values()), "every question needs two alternatives or more"
    for j in range(max(map(len, alternatives.values()))):
        row = graded["rows"][f"right-{j}.ipynb"]
        assert (row.status, row.reason) == ("ok", ""), (f"right-{j}", gs.alternatives_in(ex, j), row.reason)
        for question, what in gs.alternatives_in(ex, j).items():
            q = next(q for q in ex.questions if q.name == question)
            assert row.points[question] == q.points, f"{question}: the right answer ({what}) lost points"


def test_right_answers_in_any_style_earn_their_points(graded):
    """Builtins the notebook shadows, a float64 default, a function that hangs (its question only)."""
    for sub in gs.styles(graded["exercise"]):
        row = graded["rows"][sub.name]
        assert (row.status, row.points) == (sub.status, sub.points), (sub.name, row.reason, row.feedback)
        assert sub.reason in row.reason, (sub.name, row.reason)


@pytest.mark.parametrize("graded", ["finetuning"], indirect=True)
def test_lora_tests_tell_a_missing_scale_apart(graded):
    """No LoRA test has r = 1, so a forward pass without alpha / r fails every forward test; only the merge
    tests (which call the solution's lora_merge in that notebook) pass: half of q3's points, not more."""
    q3 = next(q for q in graded["exercise"].questions if q.name == "q3")
    missing_scale = [i for i, (what, _, _) in enumerate(gs.WRONG_ANSWERS["finetuning"]["q3"]) if "omitted" in what]
    assert missing_scale, "no wrong answer omits the scale"
    for i in missing_scale:
        assert graded["rows"][f"wrong-q3-{i}.ipynb"].points["q3"] == q3.points / 2


def test_notebook_without_cell_ids_is_graded_without_warnings(graded):
    """nbformat warns about cells without ids; the teacher should see only the grader's summary."""
    row = graded["rows"]["solution-without-cell-ids.ipynb"]
    assert (row.status, row.total) == ("ok", graded["exercise"].points), row.reason
    assert not [w for w in graded["warned"] if "MissingIDField" in type(w.message).__name__ + str(w.message)]
    assert "Warning" not in graded["stderr"], graded["stderr"]


def test_grade_book_has_one_row_per_submission(graded):
    ex, out = graded["exercise"], graded["out"]
    with open(out, newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["file", *(q.name for q in ex.questions), "total", "status", "reason"]
    assert sorted(r["file"] for r in table) == sorted(p.name for p in graded["folder"].iterdir())
    solution = next(r for r in table if r["file"] == "solution.ipynb")
    assert float(solution["total"]) == ex.points
    feedback = grade.feedback_dir(out)
    assert sorted(p.name for p in feedback.iterdir()) == sorted(r["file"][:-6] + ".txt" for r in table)


def test_feedback_shows_public_failures_and_hides_hidden_answers(graded):
    ex = graded["exercise"]
    text = (grade.feedback_dir(graded["out"]) / "blank.txt").read_text()
    public = ex.questions[0].cases[0]
    assert not public.hidden
    # a blank answer (None) either comes back as None or makes the test raise: both show what was expected
    assert f"expected: {grade.short(public.steps[-1].expected)}" in text
    for q in ex.questions:
        for case in q.cases:
            for step in case.steps:
                if case.hidden and step.check:
                    assert repr(step.expected) not in text, "a hidden expected value leaked"
                    assert step.code.strip() not in text, "a hidden test leaked"


# Hostile and broken submissions are graded once, in the pilot exercise's folder (beside its
# honest submissions), so these tests take only the pilot's graded folder.
pilot_only = pytest.mark.parametrize("graded", [PILOT], indirect=True)


@pilot_only
@pytest.mark.parametrize("name", gs.HOSTILE)
def test_hostile_or_broken_submission(graded, name):
    sub, row = graded["subs"][f"{name}.ipynb"], graded["rows"][f"{name}.ipynb"]
    statuses = sub.status if isinstance(sub.status, set) else {sub.status}
    assert row.status in statuses, row.reason
    assert sub.reason in row.reason
    assert row.total == sub.points, row.reason


@pilot_only
def test_entries_that_are_not_files_get_a_row(graded):
    for name in ["broken-a-folder.ipynb", "broken-a-pipe.ipynb"]:
        row = graded["rows"][name]
        assert (row.status, row.reason, row.total) == ("not a notebook", "not a regular file", 0)


@pilot_only
def test_hostile_list_matches_the_builders(graded):
    assert sorted(s.removesuffix(".ipynb") for s in graded["subs"] if s.startswith(("hostile", "broken"))) \
        == sorted(gs.HOSTILE)


def test_other_submissions_still_graded_and_nothing_modified(graded):
    rows = graded["rows"]
    assert rows["solution.ipynb"].total == graded["exercise"].points
    for path, digest in graded["before"].items():
        assert sha(path) == digest, f"{path} was modified"
    assert {p.name for p in graded["folder"].iterdir()} >= set(graded["subs"])
    assert len(list(graded["folder"].iterdir())) == len(graded["rows"])
    for place in [graded["folder"], ROOT / "exercises", Path("/tmp")]:
        assert not (place / CANARY).exists(), f"a submission wrote {place / CANARY}"
    assert not [r for r in rows.values() if r.status == "error"], "the grader itself failed"


def test_make_grade_prints_only_its_summary_and_does_not_grade_links(tmp_path):
    """`make grade`'s command line: a symbolic link gets a row, not a grade (a link to the exercise
    source would otherwise earn its solutions' marks), and nbformat's warnings about cells without
    ids stay quiet: the teacher sees the grader's summary only."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    blank = gs.load_nb(exercises.STUDENT_DIR / f"{PILOT}.ipynb")
    for cell in blank["cells"]:
        cell.pop("id", None)
    (folder / "student.ipynb").write_bytes(gs.dump(blank))
    links = {
        "link-to-the-exercise-source.ipynb": ROOT / "exercises" / f"{PILOT}.ipynb",
        "link-to-a-submission.ipynb": Path("student.ipynb"),
        "link-to-nothing.ipynb": tmp_path / "missing.ipynb",
        "link-to-a-folder.ipynb": tmp_path,
    }
    for name, target in links.items():
        (folder / name).symlink_to(target)
    out = tmp_path / "grades.csv"
    proc = subprocess.run([sys.executable, "-m", "grading", "grade", str(folder), str(out), "--sandbox",
                           "bubblewrap", "--timeout", str(LIMITS.wall_s), "--cell-timeout", str(LIMITS.cell_s)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if not line.startswith("building exercise")] == []
    assert proc.stdout.startswith(f"graded 5 submissions of {PILOT} in "), proc.stdout
    assert "arning" not in proc.stdout
    with open(out, newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert (rows["student.ipynb"]["status"], rows["student.ipynb"]["reason"]) == ("ok", "")
    for name, target in links.items():
        row = rows[name]
        assert (row["status"], float(row["total"])) == ("symbolic link", 0), row
        assert "not graded" in row["reason"] and str(target) in row["reason"], row


def test_committed_student_notebook_is_up_to_date(tmp_path, monkeypatch, without_iri_grammar):
    monkeypatch.setenv("PYTHONPATH", without_iri_grammar)  # for the otter processes
    names = exercises.names()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:  # one otter process per exercise, WORKERS at once
        list(pool.map(lambda name: exercises.assign(name, tmp_path / name, run_tests=False), names))
    for name in names:
        fresh = exercises.normalized_student_notebook(tmp_path / name / "student" / f"{name}.ipynb")
        committed = exercises.STUDENT_DIR / f"{name}.ipynb"
        assert committed.is_file(), f"run `make exercises` to create {committed}"
        assert json.loads(committed.read_text()) == fresh, \
            f"{committed} is out of date with exercises/{name}.ipynb: run `make exercises`"


# Appended to the committed student notebook, after its own (blank) cells have run: for the solution,
# each alternative right answer and each wrong answer, define the solution's functions, then the
# answer's, and score the question with grader.check (the public tests, as a student sees them) and
# with otter's own run of all the tests from the autograder zip (what a hosted autograder does).
CHECK_ANSWERS = """
import json, os, tempfile, zipfile
from otter.test_files.ok_test import OKTestFile
tests_dir = tempfile.mkdtemp()
with zipfile.ZipFile({zip!r}) as z:
    z.extractall(tests_dir, [n for n in z.namelist() if n.startswith("tests/")])
results = []
for kind, question, what, code in json.loads({answers!r}):
    for definition in json.loads({definitions!r}):
        exec(definition, globals())
    exec(code, globals())
    public = grader.check(question, global_env=globals())
    every = OKTestFile.from_file(os.path.join(tests_dir, "tests", question + ".py"))
    every.run(globals())
    shown = public.summary() if public.score < public.possible else ""
    results.append([kind, question, what, public.score, public.possible, every.score, every.possible, shown])
with open("answers-checked.json", "w") as f:
    json.dump(results, f)
"""


def run_in_notebook(name: str, folder: Path, pythonpath: str) -> dict:
    """The student notebook run by nbconvert (blank answers), then every answer checked inside it."""
    ex = exercises.load(name)
    solution = gs.load_nb(ex.solution_notebook)
    definitions = ["".join(c["source"]) for c in solution["cells"]
                   if c["cell_type"] == "code" and re.search(r"^def \w+\(", "".join(c["source"]), re.M)]
    answers = [["right", q.name, "the solution", ""] for q in ex.questions]
    for kind, table in [("right", gs.ALTERNATIVE_ANSWERS), ("wrong", gs.WRONG_ANSWERS)]:
        answers += [[kind, question, what, textwrap.dedent(code)]
                    for question, cases in table.get(ex.name, {}).items() for what, _, code in cases]
    nb = gs.load_nb(exercises.STUDENT_DIR / f"{ex.name}.ipynb")
    check = CHECK_ANSWERS.format(zip=str(exercises.autograder_zip(ex.build_dir)), answers=json.dumps(answers),
                                 definitions=json.dumps(definitions))
    path = folder / f"{ex.name}.ipynb"
    path.write_bytes(gs.dump(gs.with_cell(nb, check)))
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                    "--inplace", str(path)], check=True, capture_output=True, cwd=folder,
                   env={**os.environ, "PYTHONPATH": pythonpath})
    return {"exercise": ex, "cells": json.loads(path.read_text())["cells"],
            "checked": json.loads((folder / "answers-checked.json").read_text())}


@pytest.fixture(scope="module")
def in_notebook_runs(tmp_path_factory, without_iri_grammar):
    """Every exercise's ``run_in_notebook``, all started at the first request, WORKERS at a time (each is one
    nbconvert and one kernel); a run that fails raises in the tests of its exercise only."""
    folders = {name: tmp_path_factory.mktemp(f"in-notebook-{name}") for name in exercises.names()}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        yield {name: pool.submit(run_in_notebook, name, folder, without_iri_grammar)
               for name, folder in folders.items()}
        pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="module", params=exercises.names())
def in_notebook(request, in_notebook_runs):
    return in_notebook_runs[request.param].result()


def test_student_notebook_runs_with_nbconvert_and_checks_help(in_notebook):
    """A learner's first run: blank answers fail their checks gracefully, showing what was expected."""
    outputs = [o for c in in_notebook["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = json.dumps(outputs)
    # a blank answer is None, which the tests cannot turn into a number or a list: the check shows the
    # expected value and the error (a wrong value shows expected and got: see the next test)
    assert "Expecting:" in text and "Failed example:" in text and "NoneType" in text


def test_answers_in_grader_check_and_in_otters_run_of_all_tests(in_notebook):
    """Right answers in every form earn full points in the notebook too; wrong ones lose points."""
    ex, checked = in_notebook["exercise"], in_notebook["checked"]
    n_right = len(ex.questions) + sum(map(len, gs.ALTERNATIVE_ANSWERS[ex.name].values()))
    assert len(checked) == n_right + sum(map(len, gs.WRONG_ANSWERS[ex.name].values()))
    points = {q.name: q.points for q in ex.questions}
    for kind, question, what, public, public_possible, every, every_possible, shown in checked:
        assert every_possible == points[question]
        if kind == "right":
            assert public == public_possible > 0, f"{question} ({what}): grader.check refused a right answer"
            assert every == every_possible, f"{question} ({what}): otter's run of all the tests took points"
        else:
            assert every < every_possible, f"{question} ({what}): a wrong answer kept its points in otter"
            if public < public_possible:  # what the student sees: the expected value and theirs
                assert "Expected:" in shown and "Got:" in shown, (question, what, shown)


def test_sandbox_isolation():
    """What student code sees: no privileges, no network, no course files but lmlib, its limits."""
    if not sandbox.bwrap_works()[0]:
        pytest.fail("bubblewrap cannot start a sandbox here (install it: apt-get install bubblewrap)")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "a", "metadata": {}, "outputs": [],
                     "source": "import os, resource, socket"}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    facts = {
        "os.getuid() != 0 and os.geteuid() != 0": "True",
        "[l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapPrm', 'CapEff'))]":
            "['0000000000000000', '0000000000000000']",
        f"os.path.exists({str(ROOT / 'exercises')!r}) or os.path.exists({str(exercises.BUILD)!r})": "False",
        "len([p for p in os.listdir('/proc') if p.isdigit()]) <= 4": "True",  # bwrap, runner, kernel
        "resource.getrlimit(resource.RLIMIT_NPROC)[0] == 64": "True",
        "socket.create_connection(('1.1.1.1', 80), timeout=5)": "OSError",
        f"open({str(ROOT / 'lmlib' / 'x')!r}, 'w')": "OSError",
        "open(os.path.expanduser('~/written.txt'), 'w').write('ok')": "2",
        "os.setuid(0)": "PermissionError",
    }
    probes = [[[{"code": code, "check": True}]] for code in facts]  # each fact a question of one case
    run = sandbox.run_notebook(json.dumps(nb), "facts.ipynb", probes, sandbox.Limits(), True)
    results = json.loads(run.result["probes"])
    for (code, want), (got,) in zip(facts.items(), results, strict=True):
        assert got.get("value", got.get("error", "")).startswith(want), (code, got)


def test_every_exercise_is_on_the_website():
    toc, index = (ROOT / "_toc.yml").read_text(), (ROOT / "exercises" / "index.md").read_text()
    for name in exercises.names():
        assert f"exercises/student/{name}" in toc, f"add exercises/student/{name} to _toc.yml"
        assert f"student/{name}.ipynb" in index, f"list {name} on exercises/index.md"


@pytest.mark.parametrize("test, problem", [
    (">>> f(1)\narray([1, 2])", "not plain data"),
    (">>> x = f(1)\n>>> x == [1, 2]\nTrue", "verdict"),
    (">>> np.isclose(f(1), 0.5)\nTrue", "verdict"),
    (">>> (len(x), x[0] == 'a')\n(2, True)", "verdict"),
    (">>> x = f(1)\n1", "not an expression"),
    (">>> f(1)\nTraceback (most recent call last):\nValueError: no", "exception"),
    (">>> x = f(1)", "at least one"),
])
def test_tests_that_the_grader_cannot_check_are_refused(test, problem):
    with pytest.raises(exercises.ExerciseError, match=problem):
        exercises._steps(test, "q1 test 1")
    assert exercises._steps(">>> x = f(1)\n>>> (len(x), round(x[0], 4))\n(2, 0.5)", "q1 test 1")[1].expected \
        == (2, 0.5)


def test_exact_plain_data_only():
    assert grade.same([1, (2, "a")], [1, (2, "a")])
    assert not grade.same([1, 2], (1, 2))
    assert not grade.same(True, 1) and not grade.same(1, 1.0)
    assert not grade.same({"a": [1]}, {"a": [True]})
    with pytest.raises(ValueError):
        grade.parse_value("__import__('os').system('true')")
    with pytest.raises(ValueError):
        grade.parse_value("[" * 100_000)
    with pytest.raises(ValueError):
        grade.parse_value(["not", "a", "string"])
    assert grade.parse_value("{'a': (1, 2.5, None)}") == {"a": (1, 2.5, None)}


def test_bad_input_is_refused_with_the_fix(tmp_path):
    with pytest.raises(grade.GradingError, match="not a folder"):
        grade.grade_folder(tmp_path / "missing", tmp_path / "g.csv")
    with pytest.raises(grade.GradingError, match="no .ipynb"):
        grade.grade_folder(tmp_path, tmp_path / "out" / "g.csv")
    (tmp_path / "a.ipynb").write_text("{}")
    with pytest.raises(grade.GradingError, match=".csv"):
        grade.grade_folder(tmp_path, tmp_path / "out" / "g.txt")
    with pytest.raises(grade.GradingError, match="outside"):
        grade.grade_folder(tmp_path, tmp_path / "g.csv")
    with pytest.raises(grade.GradingError, match="unknown assignment"):
        grade.grade_folder(tmp_path, tmp_path / "out" / "g.csv", assignment="nope")
    proc = subprocess.run([sys.executable, "-m", "grading", "grade", str(tmp_path / "missing"), "g.csv"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "not a folder" in proc.stderr


def test_without_bubblewrap_it_says_so_and_still_limits(tmp_path, capsys):
    """The fallback: loud warning, limits and timeouts still apply; the sandbox is what stops reading."""
    ex = exercises.load(PILOT)
    folder = tmp_path / "subs"
    folder.mkdir()
    subs = {s.name: s for s in gs.hostile(ex, folder, CANARY)}
    for name in ["hostile-reads-hidden-tests.ipynb", "hostile-loop-ignores-interrupt.ipynb"]:
        (folder / name).write_bytes(subs[name].data)
    rows = {r.file: r for r in grade.grade_folder(folder, tmp_path / "g.csv", limits=LIMITS,
                                                  use_sandbox="none")}
    assert "WITHOUT a sandbox" in capsys.readouterr().err
    assert all(r.reason.startswith("UNSANDBOXED") for r in rows.values())
    assert rows["hostile-loop-ignores-interrupt.ipynb"].status == "timeout"
    # Unsandboxed, this submission reads the solutions and forges full marks; sandboxed it got 0.
    assert rows["hostile-reads-hidden-tests.ipynb"].total == ex.points


def test_sandbox_sees_a_course_checkout_under_tmp(tmp_path, monkeypatch):
    """A clone under /tmp (its venv, lmlib, the corpus cache) must stay visible under the sandbox's own /tmp."""
    if not sandbox.bwrap_works()[0]:
        pytest.skip("bubblewrap cannot start a sandbox on this machine")
    assert str(tmp_path).startswith("/tmp/")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "marker.txt").write_text("visible")
    real_paths = sandbox._read_only_paths
    monkeypatch.setattr(sandbox, "_read_only_paths", lambda: [*real_paths(), checkout])
    workdir = tmp_path / "box"
    (workdir / "work").mkdir(parents=True)
    (workdir / "tmp").mkdir()
    args = sandbox._bwrap_args(workdir)
    proc = subprocess.run([*args, "/bin/cat", str(checkout / "marker.txt")], capture_output=True, text=True,
                          timeout=30)
    assert (proc.returncode, proc.stdout) == (0, "visible"), proc.stderr
    # and the sandbox's /tmp is still its own: nothing written there reaches the host's /tmp
    proc = subprocess.run([*args, "/bin/sh", "-c", "echo x > /tmp/escaped && ls /tmp"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert not Path("/tmp/escaped").exists() and (workdir / "tmp" / "escaped").exists()
