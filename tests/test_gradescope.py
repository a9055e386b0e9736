"""The Gradescope autograder (grading/gradescope.py), run as Gradescope runs it, on this machine.

``make autograder``'s zip is unpacked into /autograder/source of a container-like root made
with bubblewrap: its own mount, pid, ipc, uts and network namespaces (no network at all),
run as root, seeing only the system (/usr, /etc, read-only), this machine's Python
(read-only), the image's /opt/lmgrader and its own /autograder and /tmp. setup.sh runs
there once (the image build), offline: the zip is built ``--offline``, so pip may take
packages only from the zip's wheels/ and from the image. The image comes with the course's
packages installed, as a teacher's own image could: /opt/lmgrader/venv is a virtual
environment whose site-packages is a hard-linked copy of this machine's (no 2.6 GB copy,
no download); setup.sh checks every pinned requirement there with ``pip install
--no-index`` and installs the one thing it lacks, the course package, from the zip's wheel
(replacing the editable install). What this does not cover: apt-get, and pip downloading
from PyPI, at Gradescope's image build (those steps are skipped here because bubblewrap
and the environment are already there), and Gradescope's own harness.

Then each submission gets a fresh container of that image: its notebook in
/autograder/submission, run_autograder run as root, and results.json checked against the
CSV that ``python -m grading grade`` (make grade) writes for the same notebooks, on this
machine: the solution, the blank notebook, a wrong one, the forging notebooks of
tests/test_grading.py and one aimed at Gradescope's layout (it reads what it can under
/autograder and /opt, writes forged results, and leaves a process behind).

Containers come in two kinds: one whose root keeps every capability, where the grader's
bubblewrap sandbox starts inside it (as ``make grade``), and one with Docker's default
capabilities only (no CAP_SYS_ADMIN), where bubblewrap cannot make namespaces and
student code runs as a user of its own (``sandbox.run_notebook(own_uid=True)``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pytest

from grading import exercises, grade, gradescope, sandbox
from grading.exercises import ROOT, Case, Exercise, Question, Step
from grading.grade import GradingError, Row
from tests import grading_submissions as gs

PILOT = "text_as_data"
INSTALL = gradescope.INSTALL_DIR
FIRST_SANDBOX_UID = 2_000_000_000  # sandbox._take_uid
DOCKER_CAPABILITIES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
CONTAINERS = {
    "namespaces": [],  # root keeps every capability: bubblewrap makes its sandbox inside
    "docker": ["--cap-drop", "ALL", *(a for c in DOCKER_CAPABILITIES for a in ("--cap-add", c))],
}
WORKERS = min(2, os.cpu_count() or 1)
STUDENT_EMAIL = "student-42@example.edu"  # in the fake submission_metadata.json: no report may hold it

# Forgeries aimed at Gradescope's layout, appended to the blank notebook: read whatever could hold tests
# or other students' data, report it wherever it can write, forge results.json and the grader, and leave a
# process behind that keeps forging them after the notebook's run.
GRADESCOPE_FORGER = f"""
import json, os, time, zipfile
found, refused = [], []
for top in ["/autograder", "{INSTALL}", os.path.expanduser("~")]:
    for folder, dirs, files in os.walk(top, onerror=lambda e: refused.append(e.filename)):
        dirs[:] = [d for d in dirs if d not in ("venv", "site-packages")]
        for name in files:
            path = os.path.join(folder, name)
            try:
                if name.endswith(".zip"):
                    with zipfile.ZipFile(path) as z:
                        found += [path + "!" + m + ": " + z.read(m).decode()[:4000] for m in z.namelist()]
                elif name.endswith((".py", ".json")):
                    text = open(path, errors="replace").read()
                    if "test = {{" in text or "@" in text:
                        found.append(path + ": " + text[:4000])
            except OSError as e:
                refused.append(path)
report = json.dumps({{"found": found, "refused": refused}})
for place in ["/tmp", "/dev/shm", "/autograder", "/autograder/results", "/autograder/submission",
              "/autograder/source", "{INSTALL}", os.path.expanduser("~")]:
    try:
        with open(os.path.join(place, "forger-report.json"), "w") as f:
            f.write(report)
    except OSError:
        pass

def forge():
    for path, text in [("/autograder/results/results.json", json.dumps({{"score": 1000.0, "tests": []}})),
                       ("/autograder/run_autograder", "#!/bin/sh\\necho forged\\n"),
                       ("{INSTALL}/grading/grade.py", "forged = True\\n")]:
        try:
            with open(path, "w") as f:
                f.write(text)
        except OSError:
            pass

forge()
if os.fork() == 0:  # a session of its own, out of the kernel's process group: it outlives a killpg
    os.setsid()
    if os.fork() == 0:
        for _ in range(600):
            forge()
            time.sleep(0.1)
    os._exit(0)
"""
FORGERS = ["hostile-patches-otter.ipynb", "hostile-always-equal.ipynb", "hostile-prints-success.ipynb",
           "hostile-rebinds-builtins.ipynb", "hostile-reads-hidden-tests.ipynb", "hostile-writes-outside.ipynb",
           "gradescope-forger.ipynb"]
HONEST = ["solution.ipynb", "blank.ipynb", "wrong-0.ipynb"]
# What each kind of container grades: everything where bubblewrap runs inside; where student code runs as a
# user of its own, the honest notebooks and the forgers that go for files, the results and the grader.
GRADED_IN = {"namespaces": [*HONEST, *FORGERS, "(nothing)"],
             "docker": [*HONEST, "hostile-patches-otter.ipynb", "hostile-reads-hidden-tests.ipynb",
                        "gradescope-forger.ipynb"]}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def in_container(kind: str, image: Path, container: Path, command: list[str], writable_install: bool = False,
                 timeout: float = 900) -> subprocess.CompletedProcess:
    """``command`` as root in a container-like root (see the module's docstring) of the given ``kind``."""
    args = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            *CONTAINERS[kind], "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--bind", str(container / "tmp"), "/tmp"]
    python = Path(sys.base_prefix)  # the image's venv is made from this machine's Python
    for parent in reversed(python.parents):
        if str(parent) != "/":
            args += ["--perms", "0755", "--dir", str(parent)]
    if not python.is_relative_to("/root"):
        args += ["--dir", "/root"]
    args += ["--perms", "0755", "--dir", "/opt",  # bwrap would make it 0700, which a container's /opt is not
             "--ro-bind", str(python), str(python),
             "--bind" if writable_install else "--ro-bind", str(image / INSTALL.lstrip("/")), INSTALL,
             "--bind", str(container / "autograder"), "/autograder", "--chdir", "/autograder"]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8"}
    return subprocess.run([*args, *command], env=env, capture_output=True, text=True, timeout=timeout)


def new_container(where: Path, autograder: Path) -> Path:
    """A fresh container's writable parts: a copy of the image's /autograder, and an empty /tmp."""
    where.mkdir()
    shutil.copytree(autograder, where / "autograder", symlinks=True)
    (where / "tmp").mkdir()
    os.chmod(where / "tmp", 0o1777)
    return where


# Gradescope runs setup.sh and run_autograder as root, and so does this simulation of it.
needs_root = pytest.mark.skipif(os.getuid() != 0, reason="the autograder runs as root in Gradescope's container: "
                                "its simulation needs root (CI runs as root)")


@pytest.fixture(scope="module")
def exercise() -> Exercise:
    return exercises.load(PILOT)


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory, exercise) -> Path:
    """``python -m grading autograder text_as_data --offline``, as ``make autograder`` runs it."""
    out = tmp_path_factory.mktemp("zip") / f"{PILOT}.zip"
    proc = subprocess.run([sys.executable, "-m", "grading", "autograder", PILOT, "--out", str(out), "--offline"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{out} ("), proc.stdout
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory, autograder_zip):
    """Gradescope's image build: the zip in /autograder/source, run_autograder copied to /autograder, setup.sh
    run as root in a container with Docker's capabilities and no network."""
    # Under _build/, beside .venv: its files are hard-linked into the image, which needs the same file system.
    (ROOT / "_build").mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="gradescope-image-", dir=ROOT / "_build"))
    source = root / "autograder" / "source"
    with zipfile.ZipFile(autograder_zip) as z:
        z.extractall(source)
        for info in z.infolist():
            os.chmod(source / info.filename, (info.external_attr >> 16) & 0o777 or 0o644)
    venv = root / INSTALL.lstrip("/") / "venv"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(Path(sys.base_prefix) / "bin" / version), "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    site = venv / "lib" / version / "site-packages"
    site.rmdir()
    linked = subprocess.run(["cp", "-al", sysconfig.get_paths()["purelib"], str(site)], capture_output=True, text=True)
    if linked.returncode != 0:
        shutil.rmtree(root)
        pytest.fail(f"cannot hard-link the environment's packages into {root} (another file system?): {linked.stderr}")
    shutil.copy2(source / "run_autograder", root / "autograder" / "run_autograder")  # as Gradescope does
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    setup = in_container("docker", root, root, ["/autograder/source/setup.sh"], writable_install=True)
    yield {"root": root, "setup": setup}
    shutil.rmtree(root)  # only unlinks: the hard-linked files of this machine's environment stay as they are


def submissions(exercise: Exercise, folder: Path) -> dict[str, bytes]:
    """The notebooks of GRADED_IN, as tests/test_grading.py makes them, and the Gradescope forger."""
    made = {s.name: s.data for s in [*gs.correctness(exercise), *gs.hostile(exercise, folder, "canary")]}
    blank = gs.load_nb(exercise.student_notebook)
    made["gradescope-forger.ipynb"] = gs.dump(gs.with_cell(blank, GRADESCOPE_FORGER))
    return {name: made[name] for name in [*HONEST, *FORGERS]}


def run_submission(kind: str, image: Path, where: Path, name: str, data: bytes | None) -> dict:
    """One submission, in a fresh container of the image: what run_autograder wrote and left."""
    container = new_container(where, image / "autograder")
    ag = container / "autograder"
    (ag / "submission").mkdir()
    if data is not None:
        (ag / "submission" / name).write_bytes(data)
    (ag / "submission_metadata.json").write_text(json.dumps({"users": [{"email": STUDENT_EMAIL}]}))
    (ag / "results").mkdir()
    before = {p: sha(p) for p in ag.rglob("*") if p.is_file() and "submission" not in p.parts}
    count_leftovers = (f"n=0; for d in /proc/[0-9]*; do u=$(stat -c %u $d 2>/dev/null) && "
                       f"[ \"$u\" -ge {FIRST_SANDBOX_UID} ] && n=$((n+1)); done; echo $n > /autograder/leftovers")
    proc = in_container(kind, image, container, ["/bin/bash", "-c", "/autograder/run_autograder "
                                                 f"> /autograder/results/stdout 2>&1; {count_leftovers}"])
    assert proc.returncode == 0, proc.stderr
    results = json.loads((ag / "results" / "results.json").read_text())
    return {"results": results, "stdout": (ag / "results" / "stdout").read_text(),
            "leftovers": int((ag / "leftovers").read_text()), "container": container,
            "changed": [str(p) for p, digest in before.items() if not p.is_file() or sha(p) != digest]}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, exercise, image):
    """Every notebook of GRADED_IN by ``python -m grading grade`` (bubblewrap, on this machine), and in the
    containers of each kind, WORKERS at a time."""
    folder = tmp_path_factory.mktemp("submissions")
    notebooks = submissions(exercise, folder)
    for name, data in notebooks.items():
        (folder / name).write_bytes(data)
    out = tmp_path_factory.mktemp("make-grade") / "grades.csv"
    # make grade as a teacher's checkout runs it: lmlib from the environment, as the kernels in its sandbox
    # import it (a checkout on PYTHONPATH that the environment does not install, such as a git worktree,
    # would reach the grader but not the kernels, which get no PYTHONPATH); this checkout's grading
    path = tmp_path_factory.mktemp("make-grade-path")
    (path / "grading").symlink_to(ROOT / "grading")
    proc = subprocess.run([sys.executable, "-m", "grading", "grade", str(folder), str(out), "--sandbox",
                           "bubblewrap", "--jobs", str(WORKERS)], capture_output=True, text=True, cwd=path,
                          env={**os.environ, "PYTHONPATH": str(path)})
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    feedback = {name: (grade.feedback_dir(out) / f"{name[:-6]}.txt").read_text() for name in rows}
    runs = tmp_path_factory.mktemp("containers")
    jobs = [(kind, name) for kind, names in GRADED_IN.items() for name in names]
    with ThreadPoolExecutor(WORKERS) as pool:
        done = pool.map(lambda job: run_submission(job[0], image["root"], runs / f"{job[0]}-{job[1]}", job[1],
                                                   notebooks.get(job[1])), jobs)
        in_containers = dict(zip(jobs, done, strict=True))
    return {"csv": rows, "feedback": feedback, "containers": in_containers}


# --- the zip and the image ---------------------------------------------------------------------------

def test_zip_is_in_gradescopes_format_and_holds_no_solution(autograder_zip, exercise):
    with zipfile.ZipFile(autograder_zip) as z:
        names = set(z.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
        otter = zipfile.ZipFile(exercises.autograder_zip(exercise.build_dir))
        tests = zipfile.ZipFile(z.open(f"exercise/autograder/{PILOT}-autograder_tests.zip"))
        assert {n: tests.read(n) for n in tests.namelist()} == \
            {n: otter.read(n) for n in otter.namelist() if n.startswith("tests/")}
        assert z.read("requirements.txt").decode().split() == gradescope.requirements()
        config = json.loads(z.read("config.json"))
        setup = z.read("setup.sh").decode()
        text = b"".join(z.read(n) for n in names if not n.endswith((".zip", ".whl")))
    assert {"setup.sh", "run_autograder", "requirements.txt", "config.json"} <= names
    assert modes["setup.sh"] == modes["run_autograder"] == 0o755
    assert {f"grading/{p.name}" for p in sandbox.GRADING_DIR.glob("*.py")} <= names
    assert [n for n in names if n.startswith("wheels/")] == [n for n in names if n.startswith("wheels/lmlib-")]
    assert config == {"exercise": PILOT, "hidden_visibility": "after_published", "limits": asdict(sandbox.Limits())}
    assert b"BEGIN SOLUTION" not in text and not [n for n in names if n.endswith(".ipynb")]
    assert "\nOFFLINE=1 " in setup and f"/wheels/{lmlib_wheel(names)}\"" in setup  # built --offline


def lmlib_wheel(names: set[str]) -> str:
    (wheel,) = [n.removeprefix("wheels/") for n in names if n.startswith("wheels/lmlib-")]
    return wheel


@needs_root
def test_setup_runs_offline_and_installs_the_course_wheel(image):
    setup, root = image["setup"], image["root"]
    assert setup.returncode == 0, setup.stdout + setup.stderr
    # Docker's capabilities: no namespaces for bubblewrap, so student code will run as a user of its own
    assert f"autograder for {PILOT}: 4 questions" in setup.stdout and "as a user of its own" in setup.stdout
    site = next((root / INSTALL.lstrip("/") / "venv" / "lib").glob("python3.*/site-packages"))
    assert (site / "lmlib" / "__init__.py").is_file() and (site / "lmlib" / "resources" / "wiki_qa.json").is_file()
    assert not list(site.glob("__editable__*lmlib*")), "the editable lmlib of this machine is still there"
    assert (root / INSTALL.lstrip("/") / "grading" / "runner.py").is_file()
    assert list((root / INSTALL.lstrip("/") / "cache").glob("news-*.json")), "lmlib's corpora were not parsed"
    assert stat.S_IMODE(os.stat(root / "autograder" / "source").st_mode) == 0o700
    assert not [p for p in (root / "autograder" / "source").rglob("*") if p.stat().st_mode & 0o077]


# --- results.json against make grade's CSV ------------------------------------------------------------

def question_tests(results: dict, question: str) -> list[dict]:
    return [t for t in results["tests"] if t["name"] == question or t["name"].startswith(question + ":")]


@needs_root
@pytest.mark.parametrize("kind", list(CONTAINERS))
def test_results_json_scores_what_make_grade_scores(graded, exercise, kind):
    """Per question, in total and in status, for every notebook: Gradescope's results.json in the container
    says what make grade's CSV says on this machine; and its tests hold the feedback file's lines."""
    for name in GRADED_IN[kind]:
        if name == "(nothing)":
            continue
        run, row = graded["containers"][(kind, name)], graded["csv"][name]
        results = run["results"]
        assert results["extra_data"]["status"] == row["status"], (kind, name, results["output"], row["reason"])
        assert grade.fmt(results["score"]) == row["total"], (kind, name, results, row)
        for q in exercise.questions:
            tests = question_tests(results, q.name)
            assert grade.fmt(sum(t["score"] for t in tests)) == row[q.name], (kind, name, q.name, tests)
            assert round(sum(t["max_score"] for t in tests), 6) == q.points
        feedback = graded["feedback"][name].splitlines()
        status = results["output"].replace(f"{grade.OWN_UID}; ", "").replace(f" ({grade.OWN_UID})", "")
        assert status == feedback[1], (kind, name)
        assert row["status"] == "ok", (kind, name, row["reason"])
        shown = {line for t in results["tests"] for line in t["output"].splitlines()}
        case_lines = {line for line in feedback[3:] if line.startswith("  ")}  # under each "q1: 2 / 3"
        assert case_lines and case_lines <= shown, (kind, name, case_lines - shown)


@needs_root
@pytest.mark.parametrize("kind", list(CONTAINERS))
def test_results_json_follows_gradescopes_schema_and_hides_hidden_tests(graded, exercise, kind):
    steps = [(case, step) for q in exercise.questions for case in q.cases for step in case.steps]
    public_values = {grade.short(s.expected) for c, s in steps if s.check and not c.hidden}
    hidden = [s for c, s in steps if c.hidden]
    for name in GRADED_IN[kind]:
        results = graded["containers"][(kind, name)]["results"]
        assert results["stdout_visibility"] == "hidden" and results["output_format"] == "text"
        assert round(sum(t["score"] for t in results["tests"]), 6) == results["score"]
        assert round(sum(t["max_score"] for t in results["tests"]), 6) == exercise.points
        for t in results["tests"]:
            assert set(t) == {"name", "score", "max_score", "output", "visibility"}, t
            assert t["visibility"] == ("after_published" if t["name"].endswith("hidden tests") else "visible"), t
            for step in hidden:
                assert step.code.strip() not in t["output"], "a hidden test's code is shown"
                if step.check and grade.short(step.expected) not in public_values:
                    assert f"expected: {grade.short(step.expected)}" not in t["output"], "a hidden value is shown"
        assert results["extra_data"]["isolated_by"] == {"namespaces": "bubblewrap", "docker": "uid"}[kind]


@needs_root
def test_nothing_submitted_scores_zero_and_says_what_to_upload(graded, exercise):
    results = graded["containers"][("namespaces", "(nothing)")]["results"]
    assert results["score"] == 0 and f"no notebook was submitted: upload {PILOT}.ipynb" in results["output"]


@needs_root
@pytest.mark.parametrize("kind", list(CONTAINERS))
def test_forgers_reach_neither_tests_nor_results_nor_grader(graded, kind):
    """The Gradescope forger gets make grade's 0 points; results.json, run_autograder and the sources are the
    grader's; no report of what it read holds a test or the metadata; no process of it is left."""
    for name in GRADED_IN[kind]:
        run = graded["containers"][(kind, name)]
        assert run["changed"] == [], (kind, name, run["changed"])
        assert run["leftovers"] == 0, (kind, name)
    forger = graded["containers"][(kind, "gradescope-forger.ipynb")]
    assert forger["results"]["score"] == 0 and forger["results"]["extra_data"]["exercise"] == PILOT
    reports = [p for p in forger["container"].rglob("forger-report.json")]
    for path in reports:
        report = json.loads(path.read_text())
        assert not [f for f in report["found"] if "test = {" in f or STUDENT_EMAIL in f], (kind, path, report)
    if kind == "docker":  # as a user of its own, it ran in the container and was refused the tests
        (report,) = [json.loads(p.read_text()) for p in reports]
        assert {"/autograder/source", "/autograder/submission"} <= set(report["refused"]), report
        assert "/autograder/submission_metadata.json" in report["refused"], report
    else:  # in bubblewrap, /autograder is not there at all, and what it wrote went with its sandbox
        assert reports == []


# --- results.json from rows (no container) -------------------------------------------------------------

def toy_exercise() -> Exercise:
    def case(question, number, hidden, points=1.0):
        return Case(question, number, hidden, points, (Step("f()", 1, check=True),))
    return Exercise("toy", Path("."), (
        Question("q1", False, (case("q1", 1, False), case("q1", 2, True), case("q1", 3, False))),
        Question("q2", True, (case("q2", 1, False), case("q2", 2, True))),
        Question("q3", False, (case("q3", 1, False, 2.0),)),
    ))


def test_results_json_splits_public_and_hidden_tests():
    ex = toy_exercise()
    row = Row("a.ipynb", points={"q1": 2.0, "q2": 0.0, "q3": 2.0}, cases={
        "q1": [(True, "  test 1: passed"), (False, "  hidden test 2: failed"), (True, "  test 3: passed")],
        "q2": [(True, "  test 1: passed"), (False, "  hidden test 2: failed")],
        "q3": [(True, "  test 1: passed")]})
    results = gradescope.results_json(ex, row, "after_due_date")
    assert [(t["name"], t["score"], t["max_score"], t["visibility"]) for t in results["tests"]] == [
        ("q1: public tests", 2.0, 2.0, "visible"), ("q1: hidden tests", 0.0, 1.0, "after_due_date"),
        ("q2", 0.0, 2.0, "after_due_date"),  # all or nothing: one score, shown when the hidden tests are
        ("q3", 2.0, 2.0, "visible")]
    assert results["tests"][0]["output"] == "  test 1: passed\n  test 3: passed"
    assert results["score"] == 4.0 and results["output"] == "status: ok"


def test_results_json_of_a_notebook_that_was_not_graded():
    ex = toy_exercise()
    row = Row("a.ipynb", status="timeout", reason="cell 3 ran past the 30 s cell limit",
              points={"q1": 0.0, "q2": 0.0, "q3": 0.0})
    results = gradescope.results_json(ex, row)
    assert results["score"] == 0 and all(t["score"] == 0 for t in results["tests"])
    assert results["tests"][0]["output"] == "not graded: status: timeout (cell 3 ran past the 30 s cell limit)"


def test_the_submitted_notebook_is_found(tmp_path):
    assert gradescope.find_submission(tmp_path, "toy") == (None, "no notebook was submitted: upload toy.ipynb")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "toy-checkpoint.ipynb").write_text("{}")
    (tmp_path / "mine.ipynb").write_text("{}")
    assert gradescope.find_submission(tmp_path, "toy") == (tmp_path / "mine.ipynb", "")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.ipynb").write_text("{}")
    path, note = gradescope.find_submission(tmp_path, "toy")
    assert path is None and "upload only toy.ipynb" in note
    (tmp_path / "toy.ipynb").write_text("{}")
    assert gradescope.find_submission(tmp_path, "toy")[0] == tmp_path / "toy.ipynb"


def test_requirements_are_the_pinned_ones():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = gradescope.requirements()
    assert wanted[:len(project["dependencies"])] == project["dependencies"]
    assert set(wanted[len(project["dependencies"]):]) <= set(project["optional-dependencies"]["course"])
    assert [gradescope._name(r) for r in wanted[-2:]] == ["otter-grader", "ipykernel"]


def test_bad_options_are_refused_with_the_fix(tmp_path):
    with pytest.raises(GradingError, match="not one of Gradescope's"):
        gradescope.build_zip(PILOT, tmp_path / "a.zip", hidden_visibility="later")
    with pytest.raises(GradingError, match="not a folder of wheels"):
        gradescope.build_zip(PILOT, tmp_path / "a.zip", wheelhouse=tmp_path / "missing")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"")
    with pytest.raises(GradingError, match=r"no wheel for torch==2\.13\.0, scipy.*pip wheel -r requirements.txt"):
        gradescope.build_zip(PILOT, tmp_path / "a.zip", wheelhouse=tmp_path / "wheels")
    with pytest.raises(GradingError, match=r"\.zip"):
        gradescope.build_zip(PILOT, tmp_path / "a.tar")
    proc = subprocess.run([sys.executable, "-m", "grading", "autograder"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "name the exercise" in proc.stderr
