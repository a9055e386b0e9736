"""Grade a folder of submitted notebooks into a CSV: the trusted side of the grader.

This process never runs student code. For each submission it checks the file
(JSON, notebook format, assignment), runs it in a sandbox (``sandbox.py``),
and receives, as untrusted JSON, the repr of each test expression's value. It
parses those with ``ast.literal_eval`` (which can only build plain built-in
values: numbers, strings, lists, tuples, dicts, sets, booleans, None) and
compares them with the reference values, which never leave this process.
A value passes only if it equals the reference and has the same types
throughout (``True`` is not ``1``, ``(1, 2)`` is not ``[1, 2]``).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import hashlib
import json
import os
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from grading import exercises, sandbox
from grading.exercises import Case, Exercise

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
MAX_VALUE_CHARS = 200_000


class GradingError(Exception):
    """Bad input to the grader itself (not a bad submission); the message says what to do."""


@dataclass
class Row:
    file: str
    # ok, timeout, crashed, not a notebook, symbolic link, wrong assignment, too large, error
    status: str = "ok"
    reason: str = ""
    points: dict[str, float] = field(default_factory=dict)
    feedback: list[str] = field(default_factory=list)
    # question -> (passed, its feedback line) for each of its test cases, in order (a hosted autograder
    # shows public and hidden tests apart: gradescope.py); empty when the notebook was not scored
    cases: dict[str, list[tuple[bool, str]]] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_s: float = 0.0

    @property
    def total(self) -> float:
        return round(sum(self.points.values()), 6)


# --- comparing untrusted values ------------------------------------------------------------------

def same(a: object, b: object) -> bool:
    """Equal values with the same types throughout (exact built-in types only)."""
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def parse_value(text: object) -> object:
    """A value the kernel sent as the repr of plain data; ValueError if it is anything else."""
    if type(text) is not str or len(text) > MAX_VALUE_CHARS:
        raise ValueError("the kernel did not return a value")
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError("the kernel returned something that is not plain data") from None


def short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def score_case(case: Case, steps: object) -> tuple[bool, str]:
    """(passed, what to tell the student) for one test case, from the kernel's step reports."""
    if type(steps) is not list:
        return False, "no result came back for this test"
    for i, step in enumerate(case.steps):
        report = steps[i] if i < len(steps) else None
        if type(report) is not dict:
            return False, "no result came back for this test"
        if type(report.get("error")) is str:
            wanted = f"\n      expected: {short(step.expected)}" if step.check else ""
            return False, f"`{step.code.strip()}` raised {report['error']}{wanted}"
        if not step.check:
            continue
        try:
            got = parse_value(report.get("value"))
        except ValueError as e:
            return False, f"`{step.code.strip()}`: {e}"
        if not same(got, step.expected):
            return False, (f"`{step.code.strip()}`\n      expected: {short(step.expected)}"
                           f"\n      got:      {short(got)}")
    return True, "passed"


def score(exercise: Exercise, probe_results: object, row: Row) -> None:
    reports = probe_results if type(probe_results) is list else []
    k = 0
    for q in exercise.questions:
        earned, lines, cases = 0.0, [], []
        passed_all = True
        for case in q.cases:
            ok, message = score_case(case, reports[k] if k < len(reports) else None)
            k += 1
            passed_all &= ok
            earned += case.points if ok else 0.0
            label = f"hidden test {case.number}" if case.hidden else f"test {case.number}"
            if ok:
                lines.append(f"  {label}: passed")
            elif case.hidden:
                lines.append(f"  {label}: failed")
            else:
                hint = f"\n      hint: {case.failure_message}" if case.failure_message else ""
                lines.append(f"  {label}: failed: {message}{hint}")
            cases.append((ok, lines[-1]))
        if q.all_or_nothing and not passed_all:
            earned = 0.0
        row.points[q.name] = round(earned, 6)
        row.cases[q.name] = cases
        row.feedback += [f"{q.name}: {fmt(earned)} / {fmt(q.points)}", *lines]


def fmt(x: float) -> str:
    return f"{round(x, 3):g}"


# --- one submission ------------------------------------------------------------------------------

def probes_of(exercise: Exercise) -> list:
    """What the kernel is asked to evaluate, question by question: the tests' code, never their
    expected values. It reports one list of step results per case, in order."""
    return [[[{"code": s.code, "check": s.check} for s in case.steps] for case in q.cases]
            for q in exercise.questions]


def read_notebook(path: Path, exercise: Exercise, row: Row) -> str | None:
    """The submission as nbformat-4 JSON text, or None with ``row`` saying why it is not gradable."""
    import nbformat
    from nbformat.warnings import MissingIDFieldWarning

    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        row.status, row.reason = "too large", f"{size:,} bytes; the limit is {MAX_NOTEBOOK_BYTES:,}"
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        row.status, row.reason = "not a notebook", f"not valid JSON ({str(e)[:120]})"
        return None
    try:
        if type(data) is not dict:
            raise ValueError("the JSON is not an object")
        with warnings.catch_warnings():
            # Cells without ids (older editors, hand-made notebooks) are valid enough to grade:
            # the runner numbers cells itself. nbformat would warn once per such notebook.
            warnings.simplefilter("ignore", MissingIDFieldWarning)
            nb = nbformat.reads(json.dumps(data), as_version=4)
            nbformat.validate(nb)
    except Exception as e:
        row.status, row.reason = "not a notebook", f"not a Jupyter notebook ({str(e).splitlines()[0][:120]})"
        return None
    notes = []
    otter = nb.metadata.get("otter")
    name = otter.get("assignment_name") if isinstance(otter, dict) else None
    if name is None:
        notes.append(f"no otter metadata (graded as {exercise.name})")
    elif name != exercise.name:
        row.status, row.reason = "wrong assignment", f"this notebook is for {str(name)[:60]!r}, not {exercise.name!r}"
        return None
    spec = nb.metadata.get("kernelspec")
    kernel = spec.get("name") if isinstance(spec, dict) else None
    if kernel != "python3":
        notes.append(f"asks for kernel {str(kernel)[:40]!r}; ran with python3")
    row.reason = "; ".join(notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingIDFieldWarning)
        return nbformat.writes(nb)


def grade_one(path: Path, exercise: Exercise, limits: sandbox.Limits, boxed: bool, own_uid: bool = False) -> Row:
    row, start = Row(path.name), time.monotonic()
    try:
        if path.is_symlink():  # graded as what it points to, a link could submit anyone's file
            notebook, row.status = None, "symbolic link"
            row.reason = (f"a symbolic link (to {_link_target(path)}), not a file: not graded; "
                          "put the submitted file itself in the folder")
        elif path.is_file():
            notebook = read_notebook(path, exercise, row)
        else:  # a folder, a device or a pipe named *.ipynb: nothing to read
            notebook, row.status, row.reason = None, "not a notebook", "not a regular file"
        if notebook is not None:
            run = sandbox.run_notebook(notebook, f"{exercise.name}.ipynb", probes_of(exercise),
                                       limits, boxed, own_uid)
            interpret(exercise, run, limits, row)
            cpu = (run.result or {}).get("cpu_s")  # reported from inside: for the summary only
            row.cpu_s = float(cpu) if type(cpu) in (int, float) else 0.0
    except Exception as e:  # a bug in the grader must not lose the other submissions
        row.status, row.reason = "error", f"grader error: {type(e).__name__}: {e}"
    for q in exercise.questions:
        row.points.setdefault(q.name, 0.0)
    if row.status != "ok":
        row.points = dict.fromkeys(row.points, 0.0)
    row.seconds = time.monotonic() - start
    return row


def _link_target(path: Path) -> str:
    try:
        return str(os.readlink(path))[:200]
    except OSError:
        return "?"


def interpret(exercise: Exercise, run: sandbox.RunResult, limits: sandbox.Limits, row: Row) -> None:
    notes = [row.reason] if row.reason else []
    r = run.result
    if run.timed_out:
        row.status = "timeout"
        notes.insert(0, f"still running after the whole run's limit ({fmt(run.whole_run_s)} s)")
    elif r is None:
        row.status = "crashed"
        last = run.log_tail.strip().splitlines()[-1:] or [""]
        notes.insert(0, f"the run ended without results (exit code {run.exit_code}) {last[0][:160]}")
    elif r.get("hung_in_cell") is not None:
        row.status = "timeout"
        notes.insert(0, f"cell {str(r['hung_in_cell'])[:10]} ran past the {fmt(limits.cell_s)} s "
                        "cell limit and ignored interrupts")
    elif r.get("died_in_cell") is not None:
        row.status = "crashed"
        where = r["died_in_cell"] if type(r["died_in_cell"]) in (int, str) else "?"
        notes.insert(0, f"the kernel died in cell {str(where)[:10]} "
                        "(os._exit, a crash, or a resource limit)")
    elif type(r.get("probes")) is not str:
        row.status = "crashed"
        error = r.get("runner_error")
        notes.insert(0, "the kernel returned no test results"
                        + (f" ({str(error)[:160]})" if error else ""))
    else:
        try:
            probe_results = json.loads(r["probes"])
        except (ValueError, RecursionError):
            probe_results = None
        score(exercise, probe_results, row)
        cells = r.get("cells") if type(r.get("cells")) is list else []
        errors = [c for c in cells if type(c) is dict and c.get("status") == "error"]
        stopped = [c for c in cells if type(c) is dict and c.get("interrupted") is True]
        if stopped:
            notes.append("stopped after the cell time limit: cell "
                         + ", ".join(str(c.get("cell"))[:6] for c in stopped[:5]))
        if r.get("cells_not_run_from") is not None:
            notes.append(f"the cells used up the {fmt(limits.wall_s)} s limit: cells from "
                         f"{str(r['cells_not_run_from'])[:6]} on were not run")
        if errors:
            notes.append(f"{len(errors)} cell(s) raised errors, first: cell "
                         f"{str(errors[0].get('cell'))[:6]}: {str(errors[0].get('error'))[:120]}")
    row.reason = "; ".join(n for n in notes if n)


# --- a folder ------------------------------------------------------------------------------------

def choose_assignment(paths: list[Path], assignment: str | None) -> str:
    known = exercises.names()
    if assignment is not None:
        if assignment not in known:
            raise GradingError(f"unknown assignment {assignment!r}; the exercises are: {', '.join(known)}")
        return assignment
    named = Counter()
    for p in paths:
        try:
            if not p.is_symlink() and p.is_file() and p.stat().st_size <= MAX_NOTEBOOK_BYTES:
                name = json.loads(p.read_bytes())["metadata"]["otter"]["assignment_name"]
                if name in known:
                    named[name] += 1
        except Exception:
            pass
    if not named:
        if len(known) == 1:
            return known[0]
        raise GradingError("no submission names a known assignment in its otter metadata: "
                           f"pass ASSIGNMENT=<one of {', '.join(known)}>")
    name, count = named.most_common(1)[0]
    if len(named) > 1:
        print(f"grading as {name!r} (named by {count} of {len(paths)} notebooks); "
              "pass ASSIGNMENT=<name> to choose another", file=sys.stderr)
    return name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def grade_folder(submissions: Path, out: Path, assignment: str | Exercise | None = None,
                 limits: sandbox.Limits | None = None, use_sandbox: str = "auto",
                 jobs: int | None = None, quiet: bool = False, pool: Executor | None = None) -> list[Row]:
    """Grade every ``*.ipynb`` in ``submissions`` into the CSV ``out`` (and feedback beside it).

    Only regular files are graded: a symbolic link, a folder or a pipe gets a row that says so.
    ``jobs`` submissions run at once (default: one per CPU core); folders graded at the same time
    can share one ``pool`` instead, so that no core waits for the last submission of a folder.
    ``assignment`` may be a loaded ``Exercise`` (a hosted autograder has its tests, not the sources), and
    ``use_sandbox="uid"`` runs each notebook, without bubblewrap, as an unprivileged uid of its own: it
    keeps out only what is not readable by all, as in the hosted autograder's container (gradescope.py).
    """
    submissions, out, limits = Path(submissions), Path(out), limits or sandbox.Limits()
    if not submissions.is_dir():
        raise GradingError(f"SUBMISSIONS={submissions} is not a folder: give the folder that "
                           "holds the submitted .ipynb files")
    paths = sorted(submissions.glob("*.ipynb"))
    if not paths:
        raise GradingError(f"there is no .ipynb file in {submissions} (subfolders are not searched)")
    if out.suffix.lower() != ".csv":
        raise GradingError(f"OUT={out} should name a .csv file, e.g. OUT=grades.csv")
    if out.resolve().parent == submissions.resolve():
        raise GradingError("write OUT outside the SUBMISSIONS folder, so grades and feedback "
                           "are never mixed with submissions")
    out.parent.mkdir(parents=True, exist_ok=True)

    if isinstance(assignment, Exercise):
        exercise = assignment
    else:
        exercise = exercises.load(choose_assignment(paths, assignment))
    boxed, own_uid = _sandbox_mode(use_sandbox), use_sandbox == "uid"

    before = {p: sha256(p) for p in paths if p.is_file() and not p.is_symlink()}
    start = time.monotonic()
    jobs = jobs or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=jobs) if pool is None else contextlib.nullcontext(pool) as runs:
        rows = list(runs.map(lambda p: grade_one(p, exercise, limits, boxed, own_uid), paths))
    elapsed = time.monotonic() - start
    for row, p in zip(rows, paths, strict=True):
        if p in before and sha256(p) != before[p]:  # cannot happen through the sandbox; say so if it ever does
            row.status, row.reason = "error", "THE SUBMISSION FILE CHANGED DURING GRADING"
            row.points = dict.fromkeys(row.points, 0.0)
    if not boxed:
        for row in rows:
            row.reason = "; ".join(x for x in (OWN_UID if own_uid else "UNSANDBOXED", row.reason) if x)
    write_csv(exercise, rows, out)
    write_feedback(exercise, rows, out, boxed, own_uid)
    if not quiet:
        print_summary(exercise, rows, out, elapsed, jobs, boxed, own_uid)
    return rows


OWN_UID = "no bubblewrap: ran as a user of its own"


def _sandbox_mode(use_sandbox: str) -> bool:
    if use_sandbox == "uid":
        if os.getuid() != 0:
            raise GradingError("use_sandbox='uid' runs each notebook as an unprivileged user of its own, which "
                               "only root can do: run the grader as root, or use bubblewrap")
        return False
    if use_sandbox == "none":
        print(sandbox.UNSANDBOXED_WARNING, file=sys.stderr)
        return False
    works, why = sandbox.bwrap_works()
    if works:
        return True
    if use_sandbox == "bubblewrap":
        raise GradingError(f"bubblewrap cannot start a sandbox here: {why}")
    print(f"\n{'!' * 100}\n{sandbox.UNSANDBOXED_WARNING}\n({why})\n{'!' * 100}\n", file=sys.stderr)
    return False


def text_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: file names and reasons carry student-chosen text."""
    text = " ".join(text.split())
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def write_csv(exercise: Exercise, rows: list[Row], out: Path) -> None:
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", *(q.name for q in exercise.questions), "total", "status", "reason"])
        for r in rows:
            w.writerow([text_cell(r.file), *(fmt(r.points[q.name]) for q in exercise.questions),
                        fmt(r.total), r.status, text_cell(r.reason)])
    os.replace(tmp, out)


def feedback_dir(out: Path) -> Path:
    return out.with_name(out.stem + "-feedback")


def write_feedback(exercise: Exercise, rows: list[Row], out: Path, boxed: bool, own_uid: bool = False) -> None:
    folder = feedback_dir(out)
    folder.mkdir(exist_ok=True)
    for r in rows:
        text = [f"{r.file}: {fmt(r.total)} / {fmt(exercise.points)} points ({exercise.name})",
                f"status: {r.status}" + (f" ({r.reason})" if r.reason else ""), "", *r.feedback]
        if not boxed:
            text.insert(0, f"(graded {'without bubblewrap, as a user of its own' if own_uid else 'WITHOUT a sandbox'})")
        (folder / (Path(r.file).stem + ".txt")).write_text("\n".join(text) + "\n", encoding="utf-8")


def print_summary(exercise: Exercise, rows: list[Row], out: Path, elapsed: float,
                  jobs: int, boxed: bool, own_uid: bool = False) -> None:
    statuses = Counter(r.status for r in rows)
    cpu = sum(r.cpu_s for r in rows)
    print(f"graded {len(rows)} submissions of {exercise.name} in {elapsed:.1f} s "
          f"({elapsed / len(rows):.1f} s per submission, {jobs} in parallel; "
          f"{cpu / len(rows):.1f} CPU s per submission in the "
          f"{'bubblewrap sandbox' if boxed else 'runs as a user of its own' if own_uid else 'UNSANDBOXED runs'})")
    print("  " + ", ".join(f"{n} {s}" for s, n in statuses.most_common()))
    print(f"  grades: {out}\n  feedback: {feedback_dir(out)}/")
    if not boxed and not own_uid:
        print(sandbox.UNSANDBOXED_WARNING, file=sys.stderr)
