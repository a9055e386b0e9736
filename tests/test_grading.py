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

Sandbox runs are most of this file's time, so the submissions are few and
light: answers are graded as a student submits them (without the teacher's
cross-checks), alternative right answers share notebooks, and so do wrong
answers to questions whose tests cannot reach each other's answers (see
``grading_submissions.packed_wrong_answers``); all folders share one pool.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from grading import exercises, grade, sandbox
from grading.exercises import ROOT
from tests import grading_submissions as gs

PILOT = "text_as_data"
LIMITS = sandbox.Limits(wall_s=90, cell_s=10)  # shorter than the defaults: hostile runs are slow
PILOT_LIMITS = sandbox.Limits(wall_s=90, cell_s=5)  # shorter still: the pilot's honest cells take well under 1 s
# Limits by folder: shorter ones where submissions run into them (the pilot's hostile ones, the one that hangs);
# the other folders get the defaults, which no honest cell comes near, even on a busy machine.
FOLDER_LIMITS = {PILOT: PILOT_LIMITS, gs.HANGS[0]: LIMITS}
CANARY = "grading-canary-written-by-a-submission"
# Processes at once, one per core: sandboxes (all folders share them, as `make grade` runs one per core), and
# otter assign or nbconvert processes, which run while no sandbox does, so no cell limit is hit because of them.
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


@pytest.fixture(scope="module")
def built(without_iri_grammar):
    """Every exercise, loaded; built first (otter assign) where its build is missing or stale, as on a fresh
    clone: one otter process per exercise, WORKERS at once, before any sandbox runs."""
    names = exercises.names()
    with pytest.MonkeyPatch.context() as mp, ThreadPoolExecutor(max_workers=WORKERS) as pool:
        mp.setenv("PYTHONPATH", without_iri_grammar)  # for the otter processes
        return dict(zip(names, pool.map(exercises.load, names), strict=True))


def submissions_folder(ex: exercises.Exercise, tmp_path_factory) -> dict:
    """One exercise's submissions: right (in several forms), blank and wrong answers (and, for the pilot,
    hostile ones), written to a folder of their own."""
    folder = tmp_path_factory.mktemp(f"submissions-{ex.name}")
    subs = gs.correctness(ex) + gs.styles(ex) + (gs.hostile(ex, folder, CANARY) if ex.name == PILOT else [])
    for s in subs:
        (folder / s.name).write_bytes(s.data)
    if ex.name == PILOT:  # named like notebooks, but no file to read
        (folder / "broken-a-folder.ipynb").mkdir()
        os.mkfifo(folder / "broken-a-pipe.ipynb")
    protected = [*(p for p in folder.iterdir() if p.is_file()), ROOT / "exercises" / f"{ex.name}.ipynb"]
    return {"exercise": ex, "subs": {s.name: s for s in subs}, "folder": folder,
            "out": tmp_path_factory.mktemp(f"grades-{ex.name}") / "grades.csv",
            "before": {p: sha(p) for p in protected}}


@pytest.fixture(scope="module")
def all_graded(built, tmp_path_factory):
    """Every exercise's folder, graded by ``grade.grade_folder`` as ``make grade`` does, all folders at once
    through one pool of WORKERS sandboxes (no core waits for the last submission of a folder); what the
    grader prints or warns meanwhile is captured. A folder whose grading raised raises in its tests only."""
    folders = {name: submissions_folder(ex, tmp_path_factory) for name, ex in built.items()}
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as warned, contextlib.redirect_stderr(printed), \
            ThreadPoolExecutor(max_workers=WORKERS) as sandboxes, ThreadPoolExecutor(len(folders)) as graders:
        warnings.simplefilter("default")
        grading = {name: graders.submit(grade.grade_folder, f["folder"], f["out"], use_sandbox="bubblewrap",
                                        limits=FOLDER_LIMITS.get(name, sandbox.Limits()),
                                        quiet=True, pool=sandboxes)
                   for name, f in folders.items()}
        wait(grading.values())
    return {name: {**f, "rows": grading[name], "warned": warned, "stderr": printed.getvalue()}
            for name, f in folders.items()}


@pytest.fixture(scope="module", params=exercises.names())
def graded(request, all_graded):
    """One exercise's graded folder (rows by file name)."""
    folder = all_graded[request.param]
    return {**folder, "rows": {r.file: r for r in folder["rows"].result()}}


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
    """Wrong answers share a notebook only where no question's tests reach another's answers (see the next
    test): each question with a wrong answer in the notebook loses points, every other one keeps them all."""
    ex = graded["exercise"]
    wrongs = gs.WRONG_ANSWERS.get(ex.name, {})
    assert set(wrongs) == {q.name for q in ex.questions}, "every question needs a wrong answer"
    packed = gs.packed_wrong_answers(ex)
    assert sorted((q, i) for answers in packed for q, i in answers.items()) == \
        sorted((q, i) for q, cases in wrongs.items() for i in range(len(cases))), "each wrong answer graded once"
    for k, answers in enumerate(packed):
        row = graded["rows"][f"wrong-{k}.ipynb"]
        given = {q: wrongs[q][i][0] for q, i in answers.items()}
        for q in ex.questions:
            if q.name in answers:
                assert row.points[q.name] < q.points, f"{q.name} ({given[q.name]}) kept its points"
            else:
                assert row.points[q.name] == q.points, f"wrong-{k} ({given}) cost {q.name} points"


@pytest.mark.parametrize("name", exercises.names())
def test_wrong_answers_share_a_notebook_only_when_no_tests_reach_the_other_answers(name):
    """Why a notebook of several wrong answers shows what one notebook per wrong answer showed: in each such
    notebook, as graded, no question's tests reach a name that another question's wrong answer defines, nor
    data that another question's tests reach (gs.tied). Questions whose tests do reach each other's answers
    get one notebook per wrong answer, where a double penalty shows."""
    ex = exercises.load(name)
    solution, blank = gs.load_nb(ex.solution_notebook), gs.load_nb(ex.student_notebook)
    for k, answers in enumerate(gs.packed_wrong_answers(ex)):
        deps = gs.dependencies(gs.with_wrong_answers(ex, gs.answered(solution, blank), answers))
        for a in answers:
            for b in answers:
                assert a >= b or not gs.tied(ex, deps, a, b), (f"wrong-{k}", gs.tied(ex, deps, a, b))


def test_what_the_tests_reach_follows_names_cells_and_data():
    """gs.dependencies on a small notebook: through functions, cells that stop at an error and changed data."""
    nb = {"cells": [gs.code_cell(src) for src in [
        "import numpy as np\nfrom collections import Counter",
        "def f(x):\n    m = np.max(x)  # a local, not the global m\n    return x - m",
        "def g(x):\n    return helper(x) + 1\n\ndef helper(x):\n    return f(x)",
        "m = 3\ntable = f(np.ones(2))\nafter_f = 2",  # after_f is only bound if f did not raise
        "counts = Counter()\ncounts.update([h(1)])",  # h may change counts
        "def h(x):\n    return [y for y in range(x) if y != m]",
        "%time unrelated = 1\n%time timed = h(3)",
        "%%capture shown\ncaptured = g(2)",
    ]]}
    deps = gs.dependencies(nb)
    assert "h" in deps.reach(["timed"]) and "f" in deps.reach(["captured"]) and "g" in deps.reach(["shown"])
    assert not deps.unread and gs.dependencies({"cells": [gs.code_cell("%run other.py")]}).unread == ("%run",)
    assert "f" in deps.reach(["g(1)"]) and "helper" in deps.reach(["g(1)"])
    assert "f" not in deps.reach(["h(2)"]) and "m" in deps.reach(["h(2)"])
    assert "f" in deps.reach(["after_f"]) and "f" in deps.reach(["table[0]"])
    assert "h" in deps.reach(["sorted(counts)"])
    assert "f" not in deps.reach(["unrelated"])
    assert {"m", "table", "after_f", "counts", "unrelated", "timed", "shown"} <= deps.data and "f" not in deps.data


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
        assert graded["rows"][gs.wrong_notebook(graded["exercise"], "q3", i)].points["q3"] == q3.points / 2


def test_notebook_without_cell_ids_is_graded_without_warnings(graded):
    """nbformat warns about cells without ids; the teacher should see only the grader's summary."""
    name = gs.without_cell_ids(graded["exercise"])
    assert not [c for c in json.loads(graded["subs"][name].data)["cells"] if "id" in c]
    row = graded["rows"][name]
    assert (row.status, row.reason, row.total) == ("ok", "", graded["exercise"].points)
    assert not [w for w in graded["warned"] if "MissingIDField" in type(w.message).__name__ + str(w.message)]
    assert "Warning" not in graded["stderr"], graded["stderr"]


def test_grade_book_has_one_row_per_submission(graded):
    ex, out = graded["exercise"], graded["out"]
    with open(out, newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["file", *(q.name for q in ex.questions), "total", "status", "reason", "answers_hash",
                              "same_answers_as"]
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


def test_committed_student_notebook_is_up_to_date(built):
    """exercises/student/NAME.ipynb is what otter assign makes of exercises/NAME.ipynb. ``built`` ran otter assign
    on every exercise whose build was not made from this very source, otter version and grading/exercises.py
    (exercises.load's stamp), as on every fresh clone: its student notebook is otter's for the source as it is."""
    for name, ex in built.items():
        fresh = exercises.normalized_student_notebook(ex.student_notebook)
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
def in_notebook_runs(tmp_path_factory, without_iri_grammar, built):
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


def test_otter_is_imported_only_when_the_notebook_uses_it():
    """The sandbox skips importing otter in the notebook's first cell (the check cells it is for are skipped);
    a student's own use of ``otter`` or ``grader`` gets the real ones."""
    nb = gs.load_nb(exercises.STUDENT_DIR / f"{PILOT}.ipynb")
    nb["cells"] = nb["cells"][:1] + [gs.code_cell(src) for src in [
        "import sys\nloaded = sorted(m for m in ('otter', 'pandas', 'nbconvert') if m in sys.modules)",
        "version = otter.__version__\nresults = grader.check  # a student's own use",
    ]]
    facts = {"loaded": [], "version": otter_version(), "type(otter).__name__": "module",
             "(type(grader).__module__, type(grader).__name__)": ("otter.check.notebook", "Notebook")}
    probes = [[[{"code": code, "check": True}]] for code in facts]
    run = sandbox.run_notebook(json.dumps(nb), f"{PILOT}.ipynb", probes, LIMITS, sandbox.bwrap_works()[0])
    assert run.result["cells"] == [], run.result["cells"]
    results = json.loads(run.result["probes"])
    assert {code: grade.parse_value(got.get("value")) for code, (got,) in zip(facts, results, strict=True)} == facts


def otter_version() -> str:
    import otter

    return otter.__version__


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


def test_memory_used_up_is_named_not_graded_as_wrong(tmp_path):
    """Memory that grows until the memory limit stops it, and stays, gets the status "out of memory" and feedback
    that says so, not "ok" with the points its starved tests lost; an allocation too large to make, which fails at
    once and keeps nothing, is graded (with a note), as is memory freed after the limit stopped it."""
    if not sandbox.bwrap_works()[0]:
        pytest.fail("bubblewrap cannot start a sandbox here (install it: apt-get install bubblewrap)")
    step = exercises.Step("answer()", expected=2, check=True)
    ex = exercises.Exercise("memory", tmp_path, (exercises.Question("q1", False, (
        exercises.Case("q1", 1, False, 1.0, (step,)),)),))
    creep = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024**2))"
    notebooks = {
        "creeps.ipynb": [creep],
        "creeps-then-frees.ipynb": [creep, "del chunks"],
        "huge-allocation.ipynb": ["huge = bytearray(64 * 1024**3)"],
    }
    limits = sandbox.Limits(wall_s=60, cell_s=10)
    rows = {}
    for name, cells in notebooks.items():
        nb = gs.code_cell("def answer():\n    return 2")
        notebook = {"cells": [nb, *map(gs.code_cell, cells)], "metadata": {"kernelspec": {
            "name": "python3", "display_name": "Python 3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
        (tmp_path / name).write_bytes(gs.dump(notebook))
        rows[name] = grade.grade_one(tmp_path / name, ex, limits, boxed=True)
    row = rows["creeps.ipynb"]
    assert (row.status, row.total) == ("out of memory", 0), row.reason
    assert f"cell 2 used up the memory limit ({limits.memory_mb} MB per process)" in row.reason, row.reason
    for name in ("creeps-then-frees.ipynb", "huge-allocation.ipynb"):
        assert (rows[name].status, rows[name].total) == ("ok", 1.0), rows[name].reason
        assert f"cell 2 reached the memory limit ({limits.memory_mb} MB per process)" in rows[name].reason
    grade.write_feedback(ex, list(rows.values()), tmp_path / "grades.csv", boxed=True)
    feedback = (tmp_path / "grades-feedback" / "creeps.txt").read_text()
    assert "0 / 1 points" in feedback and "status: out of memory (cell 2 used up the memory limit" in feedback


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


def test_points_that_otter_cannot_add_up_exactly_are_refused():
    """Otter sums a question's per-test points unrounded: 3 points over 7 tests would show 2.9999999999999996."""
    with pytest.raises(exercises.ExerciseError, match="7 test cases .* 2.9999999999999996"):
        exercises._check_points_add_up("applications", "q2", [3 / 7] * 7)
    with pytest.raises(exercises.ExerciseError, match="merge two cases"):
        exercises._check_points_add_up("tokenization", "q3", [2 / 6] * 6)
    exercises._check_points_add_up("applications", "q2", [3 / 6] * 6)
    exercises._check_points_add_up("applications", "q3", [2 / 5] * 5)


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
    # Two folders graded at once: the reader runs every solution cell it finds (seconds), while the loop that
    # ignores interrupts is killed after its cell limit and three interrupts (5 s each): a short limit for it.
    limits = {"hostile-reads-hidden-tests.ipynb": LIMITS, "hostile-loop-ignores-interrupt.ipynb": sandbox.Limits(
        wall_s=LIMITS.wall_s, cell_s=1)}
    for name in limits:
        (folder / name[:-6]).mkdir()
        (folder / name[:-6] / name).write_bytes(subs[name].data)
    with ThreadPoolExecutor(len(limits)) as pool:
        results = pool.map(lambda name: grade.grade_folder(folder / name[:-6], tmp_path / f"{name[:-6]}.csv",
                                                           limits=limits[name], use_sandbox="none"), limits)
        rows = {r.file: r for folder_rows in results for r in folder_rows}
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


# --- a class, not a handful: duplicates, the journal, interruptions, a folder that changes -------------------

@pilot_only
def test_identical_answers_are_flagged_not_judged(graded):
    """The pilot's folder holds the solution three times over (as it is, with a foreign kernel name, without otter's
    metadata): the same answer cells, so the same hash, each row naming the other two; their grades are their own.
    The blank notebook has no answer cells: no hash, not flagged."""
    rows, out = graded["rows"], graded["out"]
    copies = ["solution.ipynb", "broken-unknown-kernel.ipynb", "broken-no-otter-metadata.ipynb"]
    digest = rows["solution.ipynb"].answers
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    with open(out, newline="") as f:
        table = {r["file"]: r for r in csv.DictReader(f)}
    for name in copies:
        assert rows[name].answers == table[name]["answers_hash"] == digest
        assert table[name]["same_answers_as"] == "; ".join(sorted(set(copies) - {name})), table[name]
    assert (rows["blank.ipynb"].answers, table["blank.ipynb"]["same_answers_as"]) == ("", "")
    assert rows["wrong-0.ipynb"].answers not in ("", digest)
    assert rows["broken-wrong-assignment.ipynb"].answers == ""  # another exercise's answers: not compared
    assert [r for r in table.values() if r["answers_hash"] == digest] == [table[name] for name in sorted(copies)]


def test_answers_hash_ignores_spacing_outputs_and_metadata_only():
    ex = exercises.load(PILOT)
    distributed = grade.distributed_cells(ex)
    solution = gs.load_nb(ex.solution_notebook)
    digest = grade.answers_hash(solution["cells"], distributed)
    respaced = json.loads(json.dumps(solution))
    for cell in respaced["cells"]:
        if cell["cell_type"] == "code":
            cell["source"] = "\n\n" + "".join(cell["source"]).replace("\n", "  \n").replace(" = ", "   =  ")
            cell["outputs"], cell["execution_count"] = [], 7
    respaced["metadata"] = {}
    assert grade.answers_hash(respaced["cells"], distributed) == digest
    assert grade.answers_hash(gs.with_cell(solution, "x = 1")["cells"], distributed) != digest
    assert grade.answers_hash(gs.load_nb(exercises.STUDENT_DIR / f"{PILOT}.ipynb")["cells"], distributed) == ""


def not_json(folder: Path, *names: str) -> None:
    """Submissions graded without a sandbox (not JSON): the journal's tests need no kernel."""
    for name in names:
        (folder / name).write_text('{"cells": [')


def test_interrupt_keeps_what_was_graded_and_resume_grades_the_rest(tmp_path, capsys):
    """SIGINT after the first row (from the grading loop's hook, in this process): no new submission starts, no
    CSV is written, the journal has that row, Interrupted says how to go on. The journal then refuses a run without
    resume and a resume with other limits; a resume grades only the rest, writes the CSV, removes the journal."""
    folder, out = tmp_path / "subs", tmp_path / "grades" / "grades.csv"
    folder.mkdir()
    not_json(folder, "a.ipynb", "b.ipynb", "c.ipynb")
    graded = []

    def interrupt_after_the_first(row):
        graded.append(row.file)
        if len(graded) == 1:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(grade.Interrupted, match=r"SIGINT: 1 of 3 .*--resume") as stopped:
        grade.grade_folder(folder, out, PILOT, jobs=1, on_row=interrupt_after_the_first, quiet=True)
    assert stopped.value.signum == signal.SIGINT and graded == ["a.ipynb"] and not out.exists()
    journal = grade.journal_path(out)
    header, rows = grade.read_journal(journal)
    assert header["exercise"] == PILOT and list(rows) == ["a.ipynb"]
    with pytest.raises(grade.GradingError, match="pass --resume .* or delete it"):
        grade.grade_folder(folder, out, PILOT, quiet=True)
    with pytest.raises(grade.GradingError, match="another limits"):
        grade.grade_folder(folder, out, PILOT, limits=LIMITS, resume=True, quiet=True)
    with open(journal, "a") as f:
        f.write('{"file": "b.ipynb", "stat')  # a line cut short when the grader was killed: graded again
    resumed = grade.grade_submissions(folder, out, PILOT, jobs=1, resume=True, on_row=lambda r: graded.append(r.file))
    assert graded == ["a.ipynb", "b.ipynb", "c.ipynb"] and resumed.reused == 1
    assert [r.file for r in resumed.rows] == ["a.ipynb", "b.ipynb", "c.ipynb"] and not journal.exists()
    assert "and 1 from the journal of an earlier run" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 4


def test_a_folder_that_changes_during_grading_is_reported(tmp_path, capsys):
    """A file removed during grading gets a row that says so (and 0 points); one added is named, with how to grade
    it: the journal is kept, and a resume grades that file only. A file whose content changed is graded again."""
    folder, out = tmp_path / "subs", tmp_path / "grades.csv"
    folder.mkdir()
    not_json(folder, "a.ipynb", "b.ipynb", "c.ipynb")

    def change_the_folder(row):
        if row.file == "a.ipynb":
            (folder / "c.ipynb").unlink()
            not_json(folder, "d.ipynb")

    graded = grade.grade_submissions(folder, out, PILOT, jobs=1, on_row=change_the_folder, quiet=True)
    removed = graded.rows[2]
    assert (removed.file, removed.status, removed.total) == ("c.ipynb", "removed", 0)
    assert "removed from the folder during grading" in removed.reason
    assert graded.added == ["d.ipynb"]
    assert re.search(r"added to .* during grading and are NOT in .*: d\.ipynb\n.*--resume", capsys.readouterr().err)
    with open(out, newline="") as f:
        assert [(r["file"], r["status"]) for r in csv.DictReader(f)] == [
            ("a.ipynb", "not a notebook"), ("b.ipynb", "not a notebook"), ("c.ipynb", "removed")]
    (folder / "b.ipynb").write_text("[]")  # changed since it was graded
    again = []
    resumed = grade.grade_submissions(folder, out, PILOT, resume=True, on_row=lambda r: again.append(r.file),
                                      quiet=True)
    assert sorted(again) == ["b.ipynb", "d.ipynb"] and [r.file for r in resumed.rows] == ["a.ipynb", "b.ipynb",
                                                                                          "d.ipynb"]
    assert "changed since they were graded, graded again: b.ipynb" in capsys.readouterr().err


def test_progress_bar_only_for_a_terminal_outside_ci(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    assert grade.show_progress(Terminal()) and not grade.show_progress(io.StringIO())
    monkeypatch.setenv("CI", "true")
    assert not grade.show_progress(Terminal())


def _processes_under(pid: int) -> dict[int, tuple[str, bytes]]:
    """pid -> (start time, command line) of every process under ``pid``."""
    stats = {}
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_bytes() if entry.isdigit() else None
            if stat:
                fields = stat[stat.rfind(b")") + 2:].split()
                stats[int(entry)] = (int(fields[1]), fields[19], Path(f"/proc/{entry}/cmdline").read_bytes())
    under, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, start, cmdline) in stats.items():
            if ppid == parent and child not in under:
                under[child] = (start, cmdline)
                todo.append(child)
    return under


def _still_running(pid: int, start: bytes) -> bool:
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        fields = stat[stat.rfind(b")") + 2:].split()
        return fields[19] == start and fields[0] != b"Z"
    return False


@pytest.fixture(scope="module")
def small_class(built, tmp_path_factory):
    """Four pilot submissions, graded one at a time in this order: the blank notebook, one that is not JSON, one
    that sleeps 3 s in a cell (the sandbox a SIGTERM finds running), the solution; graded without interruption
    by `python -m grading grade` meanwhile (the reference), started at once."""
    ex = built[PILOT]
    folder = tmp_path_factory.mktemp("small-class")
    blank = gs.load_nb(ex.student_notebook)
    (folder / "a-blank.ipynb").write_bytes(gs.dump(blank))
    not_json(folder, "b-not-json.ipynb")
    (folder / "c-sleeps.ipynb").write_bytes(gs.dump(gs.with_cell(blank, "import time\ntime.sleep(3)", at=2)))
    (folder / "d-solution.ipynb").write_bytes(gs.dump(gs.answered(gs.load_nb(ex.solution_notebook), blank)))
    reference = tmp_path_factory.mktemp("small-class-reference") / "grades.csv"
    command = [sys.executable, "-m", "grading", "grade", str(folder), "--sandbox", "bubblewrap", "--jobs", "1",
               "--timeout", str(PILOT_LIMITS.wall_s), "--cell-timeout", str(PILOT_LIMITS.cell_s)]
    whole = subprocess.Popen([*command[:5], str(reference), *command[5:]], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    yield {"folder": folder, "command": command, "reference": reference, "whole": whole}
    whole.kill()
    whole.communicate()


@pytest.fixture(scope="module")
def interrupted(small_class, tmp_path_factory):
    """`python -m grading grade` sent SIGTERM while the sleeping submission's kernel runs (the two before it are in
    the journal), over an earlier CSV; the processes under it just before, and what it printed."""
    out = tmp_path_factory.mktemp("small-class-interrupted") / "grades.csv"
    out.write_text("an earlier grade book\n")
    proc = subprocess.Popen([*small_class["command"][:5], str(out), *small_class["command"][5:]], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal, deadline = grade.journal_path(out), time.monotonic() + 120
    while True:  # the first two are journaled, so a kernel running now is the sleeping submission's
        under = _processes_under(proc.pid)
        if (journal.exists() and len(journal.read_text().splitlines()) == 3
                and any(b"ipykernel" in cmdline for _, cmdline in under.values())):
            break
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    return {"out": out, "journal": journal, "returncode": proc.returncode, "stderr": stderr, "under": under}


def test_sigterm_halfway_leaves_the_journal_and_no_process(interrupted):
    assert interrupted["returncode"] == 128 + signal.SIGTERM, interrupted["stderr"]
    assert interrupted["out"].read_text() == "an earlier grade book\n"  # as it was: no CSV half-written
    assert not list(interrupted["out"].parent.glob("*.tmp"))
    _, rows = grade.read_journal(interrupted["journal"])
    assert list(rows) == ["a-blank.ipynb", "b-not-json.ipynb"]
    assert "interrupted by SIGTERM: 2 of 4 submissions graded" in interrupted["stderr"]
    assert "--resume" in interrupted["stderr"]
    names = [cmdline.split(b"\0")[0] for _, cmdline in interrupted["under"].values()]
    assert b"bwrap" in names, names  # what the signal found running: bwrap, the runner, the kernel
    left = {pid: cmdline for pid, (start, cmdline) in interrupted["under"].items() if _still_running(pid, start)}
    assert not left, left


def test_resumed_run_writes_what_an_uninterrupted_run_writes(small_class, interrupted):
    out = interrupted["out"]
    proc = subprocess.run([*small_class["command"][:5], str(out), *small_class["command"][5:], "--resume"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"graded 2 submissions of {PILOT} in ") and "and 2 from the journal" in proc.stdout
    assert not interrupted["journal"].exists()
    stdout, stderr = small_class["whole"].communicate(timeout=300)
    assert small_class["whole"].returncode == 0, stderr
    reference = small_class["reference"]
    assert out.read_text() == reference.read_text()
    with open(out, newline="") as f:
        solution = next(r for r in csv.DictReader(f) if r["file"] == "d-solution.ipynb")
    assert (solution["status"], float(solution["total"])) == ("ok", exercises.load(PILOT).points)
    feedback = {p.name: p.read_text() for p in grade.feedback_dir(out).iterdir()}
    assert feedback == {p.name: p.read_text() for p in grade.feedback_dir(reference).iterdir()}
    assert len(feedback) == 4
