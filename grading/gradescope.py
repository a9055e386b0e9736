"""A Gradescope autograder that runs this grader, not otter's: ``make autograder EXERCISE=NAME``.

Otter's own Gradescope bundle (``_build/exercises/NAME/autograder/``) scores inside the
student's kernel, so a notebook that patches otter, or reads the hidden tests beside it,
forges its score there. This one keeps the trust boundary of ``make grade``: the
submission is graded by ``grade.grade_folder``, the same code path, so the notebook
runs isolated, the kernel is asked only for the tests' values, and the scores are
decided in the root process, which never runs student code.

The zip (``build_zip``), in Gradescope's format:

- ``setup.sh`` (run once, as root, when Gradescope builds the image; the internet is
  there then): installs bubblewrap and a Python >= 3.11 if missing, makes
  ``/opt/lmgrader/venv`` and installs ``requirements.txt`` and the course package's
  wheel into it (from PyPI, or only from ``wheels/`` when the zip was built with a
  wheelhouse or ``offline``), copies ``grading/`` to ``/opt/lmgrader/grading``, parses
  lmlib's corpora into ``/opt/lmgrader/cache``, and makes ``/autograder/source``
  readable by root only;
- ``run_autograder`` (run per submission, as root): ``python -m grading gradescope-run``;
- ``requirements.txt``: lmlib's pinned dependencies and the grader's (otter-grader,
  which reads the tests, and ipykernel), as pinned in ``pyproject.toml``;
- ``wheels/``: the course package (lmlib) built into a wheel, and with
  ``wheelhouse`` every wheel of that folder;
- ``grading/``: this package; ``config.json``: the exercise, the limits, when students
  see the hidden tests' results;
- ``exercise/``: the tests, hidden ones with their expected values, as otter-assign
  wrote them (no solution, no source notebook).

In the image, ``/opt/lmgrader`` is readable by all (the code, environment and corpora
that the runner and the kernel need; nothing secret) and ``/autograder/source`` by root
only. Student code never runs as root. It runs (``isolation``):

- in the bubblewrap sandbox, as in ``make grade``, where the container lets bubblewrap
  make namespaces: it sees only ``/opt/lmgrader`` and system files, has no network,
  and cannot see the grader's processes;
- otherwise (Docker's default profile forbids namespaces) as an unprivileged uid of its
  own (``sandbox.run_notebook(own_uid=True)``), with the same limits: it cannot read the
  tests (root only), write the results or the grader's files, or signal the grader, and
  all its processes are killed when its run ends; but it has the network, and can read
  what is readable by all, which holds nothing secret.

Either way, the kernel gets the tests' code, never their expected values.

``results_json`` writes Gradescope's schema: one test per question, or two where a
question has public and hidden tests (the hidden part shown to students as
``hidden_visibility`` says: never, after the due date, once grades are published, or
at once); each with its score, its maximum and the lines that the feedback file of
``make grade`` has for those tests. The total is ``make grade``'s.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import asdict
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from grading import exercises, grade, sandbox
from grading.exercises import ROOT, Exercise
from grading.grade import GradingError, Row

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")  # Gradescope's, for tests and stdout
GRADER_PACKAGES = ("otter-grader", "ipykernel")  # what the grader needs besides lmlib's own dependencies
OUT_DIR = ROOT / "_build" / "gradescope"
INSTALL_DIR = "/opt/lmgrader"  # in the image: readable by all, nothing secret
CONFIG = "config.json"
TESTS_DIR = "exercise"  # in the zip, under /autograder/source: root only

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image. It installs the course's
# grader for exercise {exercise} (made by `make autograder`; see exercises/teachers.md).
set -euo pipefail
umask 022  # what is installed below is readable by all: student code runs as another user where bwrap cannot
SOURCE=/autograder/source
GRADER={install_dir}
OFFLINE={offline}  # 1: packages come from wheels/ or the image itself, never from an index

# bubblewrap (the sandbox; run_autograder falls back to a user of its own where the container forbids it)
# and a Python >= 3.11 with venv, to make the environment with (an image may come with it made)
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
python=""
if [ ! -x "$GRADER/venv/bin/python" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      python=$candidate
      break
    fi
  done
  if [ -z "$python" ]; then
    python=python3.11
    missing+=(python3.11 python3.11-venv)
  elif ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=("$("$python" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')")
  fi
fi
if [ ${{#missing[@]}} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${{missing[@]}}"
fi

mkdir -p "$GRADER"
[ -x "$GRADER/venv/bin/python" ] || "$python" -m venv "$GRADER/venv"
pip=("$GRADER/venv/bin/python" -m pip install --disable-pip-version-check --no-input --find-links "$SOURCE/wheels")
if [ "$OFFLINE" = 1 ]; then pip+=(--no-index); fi
"${{pip[@]}}" -r "$SOURCE/requirements.txt"
"${{pip[@]}}" --no-deps --force-reinstall "$SOURCE/wheels/{course_wheel}"
rm -rf "$GRADER/grading"
cp -r "$SOURCE/grading" "$GRADER/grading"
# lmlib's corpora, parsed once here rather than in each submission's run
LMLIB_CACHE="$GRADER/cache" "$GRADER/venv/bin/python" -m lmlib.data >/dev/null
"$GRADER/venv/bin/python" -m compileall -q "$GRADER/grading"
chmod -R go+rX,go-w "$GRADER/grading" "$GRADER/cache"
# The tests, hidden ones with their expected values: root only. Student code never runs as root.
chmod -R go-rwx "$SOURCE"
cd "$GRADER" && "$GRADER/venv/bin/python" -m grading gradescope-run --check --source "$SOURCE"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for each submission, as root, in a fresh container of the image setup.sh made.
# What Gradescope puts beside the submission (names, e-mails, earlier results) is for root only.
chmod -f go-rwx /autograder/submission /autograder/submission_metadata.json 2>/dev/null || true
cd {install_dir}
export LMLIB_CACHE={install_dir}/cache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec {install_dir}/venv/bin/python -m grading gradescope-run --source /autograder/source \
  --submission /autograder/submission --results /autograder/results
"""


# --- building the zip ----------------------------------------------------------------------------

def _name(requirement: str) -> str:
    """A requirement's project name, normalized (PEP 503): ``Otter_Grader==7.0`` -> ``otter-grader``."""
    return canonicalize_name(Requirement(requirement).name)


def requirements() -> list[str]:
    """lmlib's pinned dependencies and the grader's own packages, as ``pyproject.toml`` pins them."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    course = {_name(r): r for r in project["optional-dependencies"]["course"]}
    missing = [p for p in GRADER_PACKAGES if p not in course]
    if missing:
        raise GradingError(f"pyproject.toml's course extra does not pin {', '.join(missing)}, which the grader needs")
    return [*project["dependencies"], *(course[p] for p in GRADER_PACKAGES)]


def _wheels_of(wheelhouse: Path, wanted: list[str]) -> list[Path]:
    """The wheels in ``wheelhouse``, refused with the fix when one of the requirements has none there."""
    if not wheelhouse.is_dir():
        raise GradingError(f"WHEELHOUSE={wheelhouse} is not a folder of wheels: make one with "
                           "`python -m grading autograder --requirements > requirements.txt` and "
                           f"`pip wheel -r requirements.txt -w {wheelhouse}`, run with the Python of the image")
    wheels = sorted(wheelhouse.glob("*.whl"))
    have = {_name(w.name.split("-")[0]) for w in wheels}
    lacking = [r for r in wanted if _name(r) not in have]
    if lacking:
        raise GradingError(f"WHEELHOUSE={wheelhouse} has no wheel for {', '.join(lacking)}: add them with "
                           f"`pip wheel -r requirements.txt -w {wheelhouse}` (requirements from "
                           "`python -m grading autograder --requirements`)")
    return wheels


def _course_wheel(folder: Path) -> Path:
    """lmlib as a wheel, built offline from a copy of its sources (nothing is written into the checkout)."""
    src, out = folder / "src", folder / "wheel"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "lmlib", src / "lmlib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True)
    wheels = sorted(out.glob("lmlib-*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise GradingError(f"could not build lmlib's wheel (pip wheel):\n{proc.stdout}{proc.stderr}")
    return wheels[0]


def _tests_zip(exercise: Exercise) -> bytes:
    """The tests of otter's autograder zip, and nothing else of it, as ``exercises.load`` reads them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(exercises.autograder_zip(exercise.build_dir)) as otter, \
            zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as tests:
        for member in otter.namelist():
            if member.startswith("tests/") and member.endswith(".py"):
                tests.writestr(member, otter.read(member))
    return buffer.getvalue()


def _add(zf: zipfile.ZipFile, name: str, data: bytes | str, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    zf.writestr(info, data)


def build_zip(name: str, out: Path | None = None, wheelhouse: Path | None = None, offline: bool = False,
              hidden_visibility: str = "after_published", limits: sandbox.Limits | None = None) -> Path:
    """``make autograder``: the Gradescope zip for exercise ``name`` (default ``_build/gradescope/NAME.zip``).

    ``wheelhouse``: a folder of wheels for every requirement, bundled so that the image builds without an
    index; ``offline`` alone: the image already has the packages (setup.sh checks them, installs nothing
    but lmlib). Otherwise setup.sh installs the requirements from PyPI when Gradescope builds the image.
    """
    if hidden_visibility not in VISIBILITIES:
        raise GradingError(f"hidden tests' visibility {hidden_visibility!r} is not one of Gradescope's: "
                           f"{', '.join(VISIBILITIES)}")
    out = Path(out) if out is not None else OUT_DIR / f"{name}.zip"
    if out.suffix != ".zip":
        raise GradingError(f"OUT={out} should name a .zip file, e.g. OUT={name}-gradescope.zip")
    wanted = requirements()
    bundled = _wheels_of(Path(wheelhouse), wanted) if wheelhouse is not None else []
    exercise = exercises.load(name)  # ExerciseError, with the list of exercises, for an unknown name
    config = {"exercise": exercise.name, "hidden_visibility": hidden_visibility,
              "limits": asdict(limits or sandbox.Limits())}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="autograder-") as tmp:
        course = _course_wheel(Path(tmp))
        with zipfile.ZipFile(partial, "w") as zf:
            _add(zf, "setup.sh", SETUP_SH.format(exercise=exercise.name, install_dir=INSTALL_DIR,
                                                 offline=int(offline or bool(bundled)), course_wheel=course.name),
                 executable=True)
            _add(zf, "run_autograder", RUN_AUTOGRADER.format(install_dir=INSTALL_DIR), executable=True)
            _add(zf, "requirements.txt", "\n".join(wanted) + "\n")
            _add(zf, CONFIG, json.dumps(config, indent=1) + "\n")
            for path in sorted(sandbox.GRADING_DIR.glob("*.py")):
                _add(zf, f"grading/{path.name}", path.read_bytes())
            _add(zf, f"{TESTS_DIR}/autograder/{exercise.name}-autograder_tests.zip", _tests_zip(exercise))
            for wheel in [course, *(w for w in bundled if not w.name.startswith("lmlib-"))]:
                _add(zf, f"wheels/{wheel.name}", wheel.read_bytes())
    os.replace(partial, out)
    return out


# --- grading one submission, inside the image -----------------------------------------------------

def load(source: Path) -> tuple[dict, Exercise]:
    """The zip's config and the exercise's tests (from ``/autograder/source``)."""
    config = json.loads((source / CONFIG).read_text())
    # otter (which reads the tests) imports jsonschema, which compiles an IRI grammar (rfc3987_syntax) at
    # import for a format check that otter never makes: 2 CPU seconds per submission (as in sandbox.py)
    sys.modules.setdefault("rfc3987_syntax", None)
    return config, exercises._read(config["exercise"], source / TESTS_DIR)


def isolation() -> tuple[str | None, str]:
    """How student code will run here: ``"bubblewrap"``, ``"uid"`` (root, in a container that forbids
    namespaces), or None (neither: nothing is graded), and why bubblewrap cannot be used."""
    works, why = sandbox.bwrap_works()
    if works:
        return "bubblewrap", ""
    return ("uid" if os.getuid() == 0 else None), why or "bubblewrap cannot start a sandbox"


def find_submission(folder: Path, name: str) -> tuple[Path | None, str]:
    """The notebook to grade in Gradescope's submission folder, or None and what the student should do."""
    found = []
    for top, dirs, files in os.walk(folder):  # links to folders are not followed
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
        found += [Path(top) / f for f in sorted(files) if f.endswith(".ipynb")]
    listed = ", ".join(str(p.relative_to(folder)) for p in found[:10])
    if not found:
        return None, f"no notebook was submitted: upload {name}.ipynb"
    if len(found) == 1:
        return found[0], ""
    named = [p for p in found if p.name == f"{name}.ipynb"]
    if len(named) == 1:
        return named[0], f"graded {named[0].relative_to(folder)} of the notebooks submitted ({listed})"
    return None, f"{len(found)} notebooks were submitted ({listed}): upload only {name}.ipynb"


def _groups(exercise: Exercise) -> list[tuple[str, str, list[int], bool]]:
    """(question, test name, case indices, hidden) per Gradescope test: a question's public and hidden
    tests apart, unless it is all-or-nothing (its score is one) or has only one kind."""
    groups = []
    for q in exercise.questions:
        hidden = [i for i, c in enumerate(q.cases) if c.hidden]
        public = [i for i, c in enumerate(q.cases) if not c.hidden]
        if q.all_or_nothing or not hidden or not public:
            groups.append((q.name, q.name, list(range(len(q.cases))), bool(hidden)))
        else:
            groups += [(q.name, f"{q.name}: public tests", public, False),
                       (q.name, f"{q.name}: hidden tests", hidden, True)]
    return groups


def status_line(row: Row) -> str:
    """The feedback file's status line (``grade.write_feedback``)."""
    return f"status: {row.status}" + (f" ({row.reason})" if row.reason else "")


def results_json(exercise: Exercise, row: Row, hidden_visibility: str = "after_published",
                 isolated_by: str = "bubblewrap") -> dict:
    """Gradescope's results.json for one graded row: scores as ``make grade`` gives them, and its feedback
    lines, public ones shown at once, hidden ones as ``hidden_visibility`` says."""
    graded = row.status == "ok"
    questions = {q.name: q for q in exercise.questions}
    tests = []
    for question, title, indices, hidden in _groups(exercise):
        q, cases = questions[question], row.cases.get(question, []) if graded else []
        max_score = round(sum(q.cases[i].points for i in indices), 6)
        if len(indices) == len(q.cases):  # the whole question: its points (all-or-nothing included)
            score = row.points.get(question, 0.0)
        else:
            score = round(sum((q.cases[i].points for i in indices if i < len(cases) and cases[i][0]), 0.0), 6)
        lines = [cases[i][1] for i in indices if i < len(cases)]
        tests.append({"name": title, "score": score if graded else 0.0, "max_score": max_score,
                      "output": "\n".join(lines) if lines else f"not graded: {status_line(row)}",
                      "visibility": hidden_visibility if hidden else "visible"})
    return {
        "score": row.total, "execution_time": round(row.seconds),
        "output": status_line(row),
        # student-made text (error messages, file names) is shown as text, never rendered
        "output_format": "text", "test_output_format": "text", "test_name_format": "text",
        "visibility": "visible", "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"exercise": exercise.name, "file": row.file, "status": row.status,
                       "isolated_by": isolated_by},
    }


def failure_json(message: str, detail: str = "") -> dict:
    """results.json when the autograder itself could not grade: 0 points and a message for the student."""
    return {"score": 0.0, "output": message, "output_format": "text", "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [{"name": "Autograder", "status": "failed", "output": message, "visibility": "visible"}],
            "extra_data": {"error": detail[-4000:]}}


def _write(results_dir: Path, results: dict) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "results.json"
    partial = results_dir / ".results.json.partial"
    partial.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


HOW = {"bubblewrap": "in bubblewrap", "uid": "as a user of its own", None: "NOWHERE: nothing is graded"}


def _grade(source: Path, submission_dir: Path) -> dict:
    config, exercise = load(source)
    isolated_by, why = isolation()
    print(f"{exercise.name}: {len(exercise.questions)} questions, {exercise.points:g} points; student code runs "
          f"{HOW[isolated_by]}" + (f" (bubblewrap: {why})" if why else ""))
    if isolated_by is None:
        return failure_json("The autograder cannot isolate your notebook here, so it did not run it; tell your "
                            "instructor.", f"bubblewrap: {why}; and not root, so no user of its own either")
    path, note = find_submission(submission_dir, exercise.name)
    if path is None:
        row = Row("(none)", status="no notebook", reason=note,
                  points={q.name: 0.0 for q in exercise.questions})
        return results_json(exercise, row, config["hidden_visibility"], isolated_by)
    with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
        folder, out = Path(tmp) / "submission", Path(tmp) / "grades" / "grades.csv"
        folder.mkdir()
        shutil.copy2(path, folder / path.name, follow_symlinks=False)  # a link is reported, not followed
        (row,) = grade.grade_folder(folder, out, exercise, sandbox.Limits(**config["limits"]), isolated_by,
                                    jobs=1, quiet=True)
        print(out.read_text(encoding="utf-8"))  # for the instructor: stdout is hidden from students
        print((grade.feedback_dir(out) / f"{Path(row.file).stem}.txt").read_text(encoding="utf-8"))
    if note:
        row.reason = "; ".join(x for x in (row.reason, note) if x)
    return results_json(exercise, row, config["hidden_visibility"], isolated_by)


def run(source: Path, submission_dir: Path, results_dir: Path) -> dict:
    """``run_autograder``: grade the notebook in ``submission_dir`` with ``grade.grade_folder`` and write
    ``results_dir/results.json``, whatever happens."""
    try:
        results = _grade(source, submission_dir)
    except Exception as e:  # the student still gets a results.json, the instructor the traceback
        traceback.print_exc()
        results = failure_json("The autograder failed before it could grade your notebook; tell your instructor.",
                               f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    _write(results_dir, results)
    return results


def check(source: Path) -> None:
    """setup.sh's last step: the tests load and the grader starts; says how student code will run."""
    config, exercise = load(source)
    isolated_by, why = isolation()
    print(f"autograder for {exercise.name}: {len(exercise.questions)} questions, {exercise.points:g} points, "
          f"hidden tests' results shown: {config['hidden_visibility']}; student code runs {HOW[isolated_by]}"
          + (f" (bubblewrap: {why})" if why else ""))
