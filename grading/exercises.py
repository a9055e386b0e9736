"""Exercises: otter-assign sources in ``exercises/``, built into student notebooks and bundles.

``exercises/NAME.ipynb`` is the one source of an exercise (otter-assign format:
instructions, solutions, public and ``# HIDDEN`` tests). ``build`` runs it top
to bottom (so each test cell's saved output is the solution's value), runs
``otter assign`` into ``_build/exercises/NAME/`` (student notebook, solution
notebook, autograder zip for a hosted autograder) and copies the student
notebook to ``exercises/student/NAME.ipynb``, where learners find it.

``load`` reads the tests back from otter's autograder zip, so the tests that
``grader.check`` runs in the notebook, the hosted autograder runs and the trusted
grader runs are the same. Each test case is a doctest: statements, then
expressions whose expected output is the repr of plain data. For the trusted
grader an expression is a probe (evaluated in the student's kernel) and its
expected output, parsed with ``ast.literal_eval``, is the reference value,
which never leaves the grader.
"""

from __future__ import annotations

import ast
import doctest
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
STUDENT_DIR = EXERCISES / "student"
BUILD = ROOT / "_build" / "exercises"


class ExerciseError(Exception):
    """An exercise source or its tests cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Step:
    code: str
    expected: object = None  # the reference value when ``check``
    check: bool = False


@dataclass(frozen=True)
class Case:
    question: str
    number: int  # from 1, within the question
    hidden: bool
    points: float
    steps: tuple[Step, ...]
    failure_message: str | None = None


@dataclass(frozen=True)
class Question:
    name: str
    all_or_nothing: bool
    cases: tuple[Case, ...]

    @property
    def points(self) -> float:
        return round(sum(c.points for c in self.cases), 6)  # as a submission's score is rounded: 7 x 3/7 is 3


@dataclass(frozen=True)
class Exercise:
    name: str
    build_dir: Path
    questions: tuple[Question, ...]

    @property
    def student_notebook(self) -> Path:
        return self.build_dir / "student" / f"{self.name}.ipynb"

    @property
    def solution_notebook(self) -> Path:
        return self.build_dir / "autograder" / f"{self.name}.ipynb"

    @property
    def points(self) -> float:
        return round(sum(q.points for q in self.questions), 6)


def names() -> list[str]:
    return sorted(p.stem for p in EXERCISES.glob("*.ipynb"))


def source(name: str) -> Path:
    path = EXERCISES / f"{name}.ipynb"
    if not path.is_file():
        raise ExerciseError(f"there is no exercise {name!r}; the exercises are: {', '.join(names())}")
    return path


# --- building ------------------------------------------------------------------------------------

def execute_source(name: str) -> None:
    """Run the source top to bottom and save it, so each test's output is the solution's value.

    Outputs are plain ``repr`` (IPython's pretty printer would wrap long lists,
    and doctest compares with ``repr``).
    """
    import nbformat
    from nbclient import NotebookClient

    path = source(name)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                   extra_arguments=["--PlainTextFormatter.pprint=False"],
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)


def _requirements() -> str:
    """lmlib's pinned dependencies (pyproject.toml), for the hosted autograder's image."""
    import tomllib  # Python 3.11+

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return "\n".join(deps) + "\n"


def _bundle_lmlib(build_dir: Path) -> None:
    """Add lmlib's source to the autograder zip: otter copies ``files/`` next to each submission. Its JSON
    resources come too: the applications exercise's tests read the retrieval questions (wiki_qa.json)."""
    lmlib = ROOT / "lmlib"
    with zipfile.ZipFile(autograder_zip(build_dir), "a") as zf:
        for path in sorted([*lmlib.rglob("*.py"), *(lmlib / "resources").glob("*.json")]):
            zf.write(path, f"files/lmlib/{path.relative_to(ROOT / 'lmlib').as_posix()}")


def assign(name: str, out: Path, run_tests: bool = True) -> None:
    """``otter assign`` the source into ``out`` (replaced)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    BUILD.mkdir(parents=True, exist_ok=True)
    # Replaced in one step: exercises built at the same time read it while another one writes it.
    with tempfile.NamedTemporaryFile("w", dir=BUILD, prefix=".requirements-", delete=False) as f:
        f.write(_requirements())
    os.chmod(f.name, 0o644)
    os.replace(f.name, BUILD / "requirements.txt")
    cmd = [sys.executable, "-m", "otter", "assign", str(source(name)), str(out), "--no-pdfs"]
    if not run_tests:
        cmd.append("--no-run-tests")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=EXERCISES)
    if proc.returncode != 0:
        raise ExerciseError(
            f"otter assign failed for exercises/{name}.ipynb. If a test's expected output is "
            f"stale, run `make exercises` (it re-runs the source first).\n{proc.stdout}{proc.stderr}"
        )
    _bundle_lmlib(out)


def normalized_student_notebook(path: Path) -> dict:
    """Otter's student notebook with stable cell ids (otter makes random ones for its cells)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"cell-{i:02d}"
        cell.get("metadata", {}).pop("execution", None)
    return nb


def write_student_notebook(name: str, build_dir: Path) -> Path:
    STUDENT_DIR.mkdir(exist_ok=True)
    target = STUDENT_DIR / f"{name}.ipynb"
    nb = normalized_student_notebook(build_dir / "student" / f"{name}.ipynb")
    target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def _stamp(name: str) -> str:
    """What a build is made from: the source, otter's version and this file (how otter is run)."""
    import otter

    h = hashlib.sha256(source(name).read_bytes())
    h.update(otter.__version__.encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def build(name: str, execute: bool = True) -> Exercise:
    """``make exercises`` for one exercise."""
    if execute:
        execute_source(name)
    out = BUILD / name
    assign(name, out)
    exercise = _read(name, out)  # validates the tests before anything is published
    write_student_notebook(name, out)
    (out / ".stamp").write_text(_stamp(name))
    return exercise


def load(name: str) -> Exercise:
    """The built exercise; re-run ``otter assign`` when the source changed since the last build."""
    out = BUILD / name
    stamp = out / ".stamp"
    if not (stamp.is_file() and stamp.read_text() == _stamp(name)):
        print(f"building exercise {name} (otter assign) ...", file=sys.stderr)
        assign(name, out)
        stamp.write_text(_stamp(name))
    return _read(name, out)


# --- reading the tests ---------------------------------------------------------------------------

def autograder_zip(build_dir: Path) -> Path:
    zips = sorted((build_dir / "autograder").glob("*-autograder_*.zip"))
    if not zips:
        raise ExerciseError(f"no autograder zip in {build_dir}/autograder: run `make exercises`")
    return zips[-1]


def _test_spec(text: str, where: str) -> dict:
    """The ``test = {...}`` dict of an OK-format test file, read without executing it."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["test"]:
            return ast.literal_eval(node.value)
    raise ExerciseError(f"{where} has no `test = {{...}}`: only OK-format tests are supported")


_VERDICTS = {"isclose", "allclose", "array_equal", "isinstance", "issubclass", "all", "any"}


def _is_verdict(node: ast.expr) -> bool:
    """``x == 5``, ``np.isclose(x, 5)``, ...: a pass/fail decided in the student's kernel."""
    if isinstance(node, (ast.Tuple, ast.List)):
        return any(_is_verdict(e) for e in node.elts)
    if isinstance(node, (ast.Compare, ast.BoolOp)) or (
            isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
        return True
    func = node.func if isinstance(node, ast.Call) else None
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in _VERDICTS


def _steps(code: str, where: str) -> tuple[Step, ...]:
    steps = []
    for ex in doctest.DocTestParser().get_examples(code):
        if ex.exc_msg is not None:
            raise ExerciseError(f"{where}: tests that expect an exception are not supported")
        if not ex.want.strip():
            steps.append(Step(ex.source))
            continue
        try:
            expression = ast.parse(ex.source, mode="eval").body
        except SyntaxError:
            raise ExerciseError(f"{where}: `{ex.source.strip()}` has an expected output "
                                "but is not an expression") from None
        if _is_verdict(expression):
            raise ExerciseError(
                f"{where}: `{ex.source.strip()}` computes a verdict in the student's kernel, where "
                "it can be forged. End the test with the value itself (`x`, expected output `5`), "
                "not a comparison (`x == 5`, expected output `True`): the grader compares."
            )
        try:
            expected = ast.literal_eval(ex.want.strip())
        except (ValueError, SyntaxError):
            raise ExerciseError(
                f"{where}: the expected output {ex.want.strip()[:80]!r} is not plain data. Make the "
                "test return built-in values that every right form of the answer (a NumPy scalar or "
                "array, a tuple, a dict) turns into, e.g. `round(float(x), 4)`, "
                "`[round(float(v), 4) for v in xs]`, `sorted((k, int(n)) for k, n in counts.items())` "
                "(exercises/teachers.md)"
            ) from None
        steps.append(Step(ex.source, expected, check=True))
    if not any(s.check for s in steps):
        raise ExerciseError(f"{where}: a test case must check at least one expression's value")
    return tuple(steps)


def _check_points_add_up(exercise: str, question: str, case_points: list[float]) -> None:
    """Otter adds a question's per-test points as floats, unrounded, on the notebook and on a hosted
    autograder: 3 points over 7 tests shows as 2.9999999999999996 of 3."""
    total = 0.0
    for points in case_points:
        total += points
    if total != round(total, 6):
        raise ExerciseError(
            f"{exercise} {question}: otter splits its points over {len(case_points)} test cases and adds them "
            f"up to {total!r}, not {round(total, 6)!r}: give the question a number of test cases that its "
            "points divide exactly (3 points: 2, 3, 4, 5, 6, 8 or 9 cases; 2 points: 2, 3, 4, 5 or 8), "
            "or merge two cases into one"
        )


def _read(name: str, build_dir: Path) -> Exercise:
    from otter.test_files.ok_test import OKTestFile

    questions = []
    with zipfile.ZipFile(autograder_zip(build_dir)) as z:
        for member in sorted(n for n in z.namelist() if n.startswith("tests/") and n.endswith(".py")):
            spec = _test_spec(z.read(member).decode("utf-8"), member)
            test_file = OKTestFile.from_spec(spec)  # otter's own point resolution
            cases = tuple(
                Case(test_file.name, i, tc.hidden, float(tc.points),
                     _steps(tc.body, f"{name} {test_file.name} test {i}"), tc.failure_message)
                for i, tc in enumerate(test_file.test_cases, start=1)
            )
            _check_points_add_up(name, test_file.name, [tc.points for tc in test_file.test_cases])
            questions.append(Question(test_file.name, bool(test_file.all_or_nothing), cases))
    if not questions:
        raise ExerciseError(f"exercise {name} has no tests")
    questions.sort(key=lambda q: (len(q.name), q.name))  # q2 before q10
    return Exercise(name, build_dir, tuple(questions))
