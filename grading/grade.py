"""Grade a folder of submitted notebooks into a CSV: the trusted side of the grader.

This process never runs student code. For each submission it checks the file
(JSON, notebook format, assignment), runs it in a sandbox (``sandbox.py``),
and receives, as untrusted JSON, the repr of each test expression's value. It
parses those with ``ast.literal_eval`` (which can only build plain built-in
values: numbers, strings, lists, tuples, dicts, sets, booleans, None) and
compares them with the reference values, which never leave this process.
A value passes only if it equals the reference and has the same types
throughout (``True`` is not ``1``, ``(1, 2)`` is not ``[1, 2]``).

A class at a time (``grade_submissions``): each finished submission is appended to a journal
beside the CSV (``OUT.csv.partial.jsonl``, flushed to disk), so that a run stopped by SIGINT or
SIGTERM loses nothing: it kills its sandboxes, writes no CSV, and ``--resume`` grades only what
the journal lacks (a file whose content changed since is graded again). The CSV and the
feedback files are each written whole or not at all (a temporary file, then ``os.replace``).
A submission removed from the folder during grading is reported in its row, one added is named
on stderr. Identical answers are flagged in the CSV (a hash of the answer cells), not judged.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import csv
import dataclasses
import hashlib
import json
import os
import signal
import sys
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grading import exercises, sandbox
from grading.exercises import Case, Exercise

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
# warnings.catch_warnings swaps the process's filters, so two threads inside it at once can restore each
# other's: one nbformat warning then escapes (grade_one runs on --jobs threads). One thread at a time.
_WARNINGS = threading.Lock()
MAX_VALUE_CHARS = 200_000


class GradingError(Exception):
    """Bad input to the grader itself (not a bad submission); the message says what to do."""


@dataclass
class Row:
    file: str
    # ok, timeout, out of memory, crashed, not a notebook, symbolic link, wrong assignment, too large, error
    status: str = "ok"
    reason: str = ""
    points: dict[str, float] = field(default_factory=dict)
    feedback: list[str] = field(default_factory=list)
    # question -> (passed, its feedback line) for each of its test cases, in order (a hosted autograder
    # shows public and hidden tests apart: gradescope.py); empty when the notebook was not scored
    cases: dict[str, list[tuple[bool, str]]] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_s: float = 0.0
    sha256: str = ""  # of the bytes graded ("" where none were read: a link, a folder, a file too large)
    answers: str = ""  # a short hash of the answer cells ("" where there are none: a blank notebook)
    same_answers: list[str] = field(default_factory=list)  # the other files with the same ``answers``

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


def read_notebook(path: Path, exercise: Exercise, row: Row, distributed: frozenset[str] = frozenset()) -> str | None:
    """The submission as nbformat-4 JSON text, or None with ``row`` saying why it is not gradable.

    ``row.sha256`` gets the hash of the bytes read, ``row.answers`` that of its answer cells: the code cells
    that are not among ``distributed`` (``distributed_cells``)."""
    import nbformat
    from nbformat.warnings import MissingIDFieldWarning

    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        row.status, row.reason = "too large", f"{size:,} bytes; the limit is {MAX_NOTEBOOK_BYTES:,}"
        return None
    raw = path.read_bytes()  # read once: what is hashed is what is graded
    row.sha256 = hashlib.sha256(raw).hexdigest()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        row.status, row.reason = "not a notebook", f"not valid JSON ({str(e)[:120]})"
        return None
    try:
        if type(data) is not dict:
            raise ValueError("the JSON is not an object")
        with _WARNINGS, warnings.catch_warnings():
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
    row.answers = answers_hash(nb.cells, distributed)
    with _WARNINGS, warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingIDFieldWarning)
        return nbformat.writes(nb)


def _normalized_code(cell: dict) -> str:
    """A code cell's source with its whitespace runs made one space ("" for other cells)."""
    if cell.get("cell_type") != "code":
        return ""
    source = cell.get("source", "")
    return " ".join(("".join(source) if isinstance(source, list) else str(source)).split())


def distributed_cells(exercise: Exercise) -> frozenset[str]:
    """The code cells of the notebook the students were given (exercises/student/NAME.ipynb, or the build's
    where the course's is not there), whitespace-normalised: a submission's other code cells are its answers."""
    for path in (exercises.STUDENT_DIR / f"{exercise.name}.ipynb", exercise.student_notebook):
        if path.is_file():
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            return frozenset(_normalized_code(c) for c in cells)
    return frozenset()


def answers_hash(cells: list[dict], distributed: frozenset[str]) -> str:
    """12 hex digits of the sha256 of a notebook's answer cells: its non-empty code cells, whitespace-normalised,
    that are not in the distributed notebook, in order; "" where there are none (a blank submission). Two
    submissions with the same answers have the same hash whatever their outputs, metadata or spacing."""
    answers = [code for code in map(_normalized_code, cells) if code and code not in distributed]
    return hashlib.sha256("\n\0".join(answers).encode()).hexdigest()[:12] if answers else ""


def mark_duplicates(rows: list[Row]) -> None:
    """``row.same_answers``: the other files whose answer cells hash the same (flagged, not judged)."""
    files = defaultdict(list)
    for r in rows:
        if r.answers:
            files[r.answers].append(r.file)
    for r in rows:
        r.same_answers = [f for f in files.get(r.answers, []) if f != r.file] if r.answers else []


def grade_one(path: Path, exercise: Exercise, limits: sandbox.Limits, boxed: bool, own_uid: bool = False,
              distributed: frozenset[str] = frozenset()) -> Row:
    row, start = Row(path.name), time.monotonic()
    try:
        if path.is_symlink():  # graded as what it points to, a link could submit anyone's file
            notebook, row.status = None, "symbolic link"
            row.reason = (f"a symbolic link (to {_link_target(path)}), not a file: not graded; "
                          "put the submitted file itself in the folder")
        elif path.is_file():
            notebook = read_notebook(path, exercise, row, distributed)
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


#: A notebook "used up" its memory when a cell reached the memory limit (MemoryError) and, after its cells, the
#: kernel still held all but less than this share of it: memory that grows until the limit stops it (a list
#: appended to in a loop) and stays. Its tests would run in a kernel with no memory to spare, so it is not
#: graded, as a run past the time limit is not. A single allocation too large to make fails at once and takes
#: nothing: its notebook is graded, with a note. (A kernel that imported torch holds about 1 GB of 2 GB.)
MEMORY_USED_UP = 1 / 4


def _memory_errors(cells: list) -> list[object]:
    """The cells that raised MemoryError: they reached the memory limit."""
    return [c.get("cell") for c in cells if type(c) is dict and str(c.get("error", "")).startswith("MemoryError")]


def interpret(exercise: Exercise, run: sandbox.RunResult, limits: sandbox.Limits, row: Row) -> None:
    notes = [row.reason] if row.reason else []
    r = run.result
    cells = r.get("cells") if r is not None and type(r.get("cells")) is list else []
    out_of_memory = _memory_errors(cells)
    where = ", ".join(str(c)[:6] for c in out_of_memory[:5])
    left = r.get("memory_left_mb") if r is not None else None
    used_up = out_of_memory and type(left) in (int, float) and left < MEMORY_USED_UP * limits.memory_mb
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
    elif r.get("died_in_cell") is not None and out_of_memory:
        row.status = "out of memory"
        died = r["died_in_cell"] if type(r["died_in_cell"]) in (int, str) else "?"
        notes.insert(0, f"cell {where} reached the memory limit ({limits.memory_mb} MB per process), "
                        f"then the kernel died in cell {str(died)[:10]}")
    elif r.get("died_in_cell") is not None:
        row.status = "crashed"
        died = r["died_in_cell"] if type(r["died_in_cell"]) in (int, str) else "?"
        notes.insert(0, f"the kernel died in cell {str(died)[:10]} "
                        "(os._exit, a crash, or a resource limit)")
    elif used_up:
        row.status = "out of memory"
        notes.insert(0, f"cell {where} used up the memory limit ({limits.memory_mb} MB per process) and kept it: "
                        f"{fmt(left)} MB were left for the tests; free what you no longer need (del) or use less")
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
        errors = [c for c in cells if type(c) is dict and c.get("status") == "error"]
        stopped = [c for c in cells if type(c) is dict and c.get("interrupted") is True]
        if stopped:
            notes.append("stopped after the cell time limit: cell "
                         + ", ".join(str(c.get("cell"))[:6] for c in stopped[:5]))
        if r.get("cells_not_run_from") is not None:
            notes.append(f"the cells used up the {fmt(limits.wall_s)} s limit: cells from "
                         f"{str(r['cells_not_run_from'])[:6]} on were not run")
        if out_of_memory:
            notes.append(f"cell {where} reached the memory limit ({limits.memory_mb} MB per process)")
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


def _file_sha256(path: Path) -> str:
    """The hash of a regular file that the grader would read ("" for a link, a folder, a pipe, a file too large)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return ""
        return sha256(path)
    except OSError:  # removed meanwhile
        return ""


# --- the journal: what an interrupted run keeps ------------------------------------------------------

JOURNAL_VERSION = 1


def journal_path(out: Path) -> Path:
    """Beside the CSV: one JSON line per graded submission, while a run is going on or was interrupted."""
    return out.with_name(out.name + ".partial.jsonl")


def _canonical(value: object) -> object:
    """``value`` (the tests: dataclasses of plain data) as JSON whose text does not depend on set order."""
    if dataclasses.is_dataclass(value):
        return [type(value).__name__, *(_canonical(getattr(value, f.name)) for f in dataclasses.fields(value))]
    if isinstance(value, (set, frozenset)):
        return ["set", sorted(json.dumps(_canonical(v)) for v in value)]
    if isinstance(value, dict):
        return ["dict", [[_canonical(k), _canonical(v)] for k, v in value.items()]]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_canonical(v) for v in value]]
    return [type(value).__name__, repr(value)]


def journal_header(exercise: Exercise, limits: sandbox.Limits, isolation: str, submissions: Path) -> dict:
    """What a journal's rows were graded with: a run resumes them only with the same."""
    tests = json.dumps(_canonical(exercise.questions)).encode()
    return {"journal": JOURNAL_VERSION, "exercise": exercise.name, "tests": hashlib.sha256(tests).hexdigest()[:16],
            "limits": asdict(limits), "isolation": isolation, "submissions": str(submissions.resolve())}


def _row_from_record(record: dict) -> Row:
    row = Row(**record)
    row.cases = {q: [(bool(ok), str(line)) for ok, line in cases] for q, cases in row.cases.items()}
    if type(row.file) is not str or type(row.points) is not dict or type(row.sha256) is not str:
        raise TypeError("not a row")
    return row


def read_journal(path: Path) -> tuple[dict, dict[str, Row]]:
    """(header, rows by file name) of a journal. A line that is not whole (the grader was killed while writing it)
    is skipped: its submission is graded again."""
    header, rows = None, {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f):
            try:
                record = json.loads(line)
                if number == 0:
                    header = record
                else:
                    row = _row_from_record(record)
                    rows[row.file] = row
            except (ValueError, TypeError, AttributeError):
                continue
    if type(header) is not dict or header.get("journal") != JOURNAL_VERSION:
        raise GradingError(f"{path} is not a journal this grader wrote: delete it, then grade again")
    return header, rows


class Journal:
    """The journal being written: the header and the rows kept from an interrupted run (written afresh, so a
    line cut short is dropped), then one line per graded submission, each flushed and fsynced."""

    def __init__(self, path: Path, header: dict, kept: list[Row]):
        self.path = path
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for record in [header, *map(asdict, kept)]:
                f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def add(self, row: Row) -> None:
        self.file.write(json.dumps(asdict(row)) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self, remove: bool = False) -> None:
        self.file.close()
        if remove:
            self.path.unlink()


def _reusable(journal: Path, header: dict, paths: list[Path]) -> tuple[dict[str, Row], list[str]]:
    """The journal's rows whose file is still in the folder with the content graded, and notes for the teacher."""
    written, rows = read_journal(journal)
    differ = [f"{key} {written.get(key)!r} (now {value!r})" for key, value in header.items()
              if written.get(key) != value]
    if differ:
        raise GradingError(f"{journal} was written by a run with another {'; '.join(differ)}: resume with the "
                           "same exercise, options and folder, or delete it to grade everything again")
    names = {p.name: p for p in paths}
    kept = {name: row for name, row in rows.items()
            if name in names and row.sha256 and _file_sha256(names[name]) == row.sha256}
    notes = []
    if gone := sorted(set(rows) - set(names)):
        notes.append(f"{len(gone)} file(s) graded before are no longer in the folder, so not in the CSV: "
                     + ", ".join(gone[:10]) + (" ..." if len(gone) > 10 else ""))
    if changed := sorted(name for name, row in rows.items() if name in names and name not in kept and row.sha256):
        notes.append(f"{len(changed)} file(s) changed since they were graded, graded again: "
                     + ", ".join(changed[:10]) + (" ..." if len(changed) > 10 else ""))
    return kept, notes


# --- stopping on SIGINT or SIGTERM ----------------------------------------------------------------

class Interrupted(Exception):
    """Grading stopped on SIGINT or SIGTERM: the finished rows are in the journal, no CSV was written."""

    def __init__(self, signum: int, graded: int, total: int, journal: Path, out: Path):
        self.signum, self.graded, self.total, self.journal = signum, graded, total, journal
        super().__init__(
            f"interrupted by {signal.Signals(signum).name}: {graded} of {total} submissions graded, kept in "
            f"{journal}; {out} was not written (an earlier one is left as it was). To grade the other "
            f"{total - graded}, run the same command again with --resume (make grade ... RESUME=1)")


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, caught: list[int]):
    """SIGINT and SIGTERM set ``stop`` (only the main thread can take signals; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        caught.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def _process_tree() -> dict[int, list[int]]:
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            children[int(stat[stat.rfind(b")") + 2:].split()[1])].append(int(entry))
    return children


def _is_sandbox(pid: int) -> bool:
    """A process sandbox.run_notebook started: bwrap, or the runner itself where there is no bubblewrap."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return argv[:1] == [b"bwrap"] or str(sandbox.GRADING_DIR / "runner.py").encode() in argv


def kill_sandboxes() -> int:
    """SIGKILL every sandbox this process started and every process under each: ``run_notebook`` starts each in
    a session of its own (so a terminal's Ctrl-C never reaches it), and the kernel in a session of its own too
    (jupyter_client), so killing the process group would miss it without bubblewrap. The threads waiting on
    them then clean up as after a timeout. Returns how many processes were signalled."""
    children = _process_tree()
    roots = [pid for pid in children.get(os.getpid(), []) if _is_sandbox(pid)]
    tree, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    for pid in roots:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(tree)


# --- progress -------------------------------------------------------------------------------------

def show_progress(stream=None) -> bool:
    """A progress bar only for someone watching: stderr is a terminal, and CI is not set."""
    stream = sys.stderr if stream is None else stream
    return stream.isatty() and os.environ.get("CI", "").lower() in ("", "0", "false")


def _counts(rows) -> str:
    return ", ".join(f"{n} {s}" for s, n in Counter(r.status for r in rows).most_common())


# --- a folder ---------------------------------------------------------------------------------------

@dataclass
class Graded:
    rows: list[Row]  # one per submission in the folder at the start, by file name: the CSV's rows
    added: list[str]  # files that appeared in the folder during grading: not graded (the journal is kept)
    reused: int  # rows taken from an interrupted run's journal (resume)


def grade_folder(submissions: Path, out: Path, assignment: str | Exercise | None = None,
                 limits: sandbox.Limits | None = None, use_sandbox: str = "auto",
                 jobs: int | None = None, quiet: bool = False, pool: Executor | None = None,
                 resume: bool = False, on_row: Callable[[Row], None] | None = None) -> list[Row]:
    """``grade_submissions``' rows."""
    return grade_submissions(submissions, out, assignment, limits, use_sandbox, jobs, quiet, pool, resume,
                             on_row).rows


def grade_submissions(submissions: Path, out: Path, assignment: str | Exercise | None = None,
                      limits: sandbox.Limits | None = None, use_sandbox: str = "auto",
                      jobs: int | None = None, quiet: bool = False, pool: Executor | None = None,
                      resume: bool = False, on_row: Callable[[Row], None] | None = None) -> Graded:
    """Grade every ``*.ipynb`` in ``submissions`` into the CSV ``out`` (and feedback beside it).

    Only regular files are graded: a symbolic link, a folder or a pipe gets a row that says so.
    ``jobs`` submissions run at once (default: one per CPU core); folders graded at the same time
    can share one ``pool`` instead, so that no core waits for the last submission of a folder.
    ``assignment`` may be a loaded ``Exercise`` (a hosted autograder has its tests, not the sources), and
    ``use_sandbox="uid"`` runs each notebook, without bubblewrap, as an unprivileged uid of its own: it
    keeps out only what is not readable by all, as in the hosted autograder's container (gradescope.py).

    Each graded row goes to the journal (``journal_path(out)``) as it comes, and ``on_row(row)`` is called
    (in this thread). On SIGINT or SIGTERM (when called from the main thread) no new submission starts, the
    running sandboxes are killed, no CSV is written, and ``Interrupted`` is raised: ``resume=True`` then
    reuses the journal's rows whose file is unchanged and grades the rest; the CSV is the same as one
    uninterrupted run's. A journal present without ``resume`` is an error.
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
    journal = journal_path(out)
    if journal.exists() and not resume:
        raise GradingError(f"{journal} holds the submissions an earlier run graded (it was interrupted, or files "
                           "were added during it): pass --resume "
                           "(make grade ... RESUME=1) to keep them and grade the rest, or delete it to grade "
                           "everything again")
    out.parent.mkdir(parents=True, exist_ok=True)

    if isinstance(assignment, Exercise):
        exercise = assignment
    else:
        exercise = exercises.load(choose_assignment(paths, assignment))
    boxed, own_uid = _sandbox_mode(use_sandbox), use_sandbox == "uid"
    header = journal_header(exercise, limits, "bubblewrap" if boxed else "uid" if own_uid else "none", submissions)
    kept, notes = _reusable(journal, header, paths) if journal.exists() else ({}, [])
    for note in notes:
        print(f"resuming: {note}", file=sys.stderr)
    log = Journal(journal, header, list(kept.values()))
    distributed = distributed_cells(exercise)
    rows: dict[str, Row] = dict(kept)
    todo = [p for p in paths if p.name not in kept]
    stop, caught = threading.Event(), []

    def job(path: Path) -> Row | None:
        if stop.is_set():
            return None
        row = grade_one(path, exercise, limits, boxed, own_uid, distributed)
        return None if stop.is_set() else row  # its sandbox may have been killed: graded again on resume

    bar = None
    if not quiet and show_progress():
        from tqdm import tqdm

        bar = tqdm(total=len(paths), initial=len(kept), unit="nb", desc=exercise.name, file=sys.stderr,
                   dynamic_ncols=True)
        bar.set_postfix_str(_counts(rows.values()))
    start = time.monotonic()
    jobs = jobs or os.cpu_count() or 1
    try:
        with (ThreadPoolExecutor(max_workers=jobs) if pool is None else contextlib.nullcontext(pool) as runs,
              _stop_on_signals(stop, caught)):
            futures = {runs.submit(job, p): p for p in todo}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                    for future in sorted(done, key=futures.get):
                        row = None if future.cancelled() else future.result()
                        if row is None or stop.is_set():  # kept: what finished before the signal
                            continue
                        log.add(row)
                        rows[row.file] = row
                        if bar is not None:
                            bar.set_postfix_str(_counts(rows.values()), refresh=False)
                            bar.update()
                        if on_row is not None:
                            on_row(row)
                    if stop.is_set():  # no new submission starts; the running ones are killed (again, if
                        for future in pending:  # one started its sandbox after the last look)
                            future.cancel()
                        kill_sandboxes()
            except BaseException:  # the grader's own failure: stop as on a signal, before the pool waits
                stop.set()
                for future in pending:
                    future.cancel()
                if pool is None:  # a shared pool's other sandboxes are not this folder's to kill
                    kill_sandboxes()
                raise
    except BaseException:
        log.close()  # kept: what it holds is graded
        raise
    finally:
        if bar is not None:
            bar.close()
    if stop.is_set():
        log.close()
        raise Interrupted(caught[0], len(rows), len(paths), journal, out)
    elapsed = time.monotonic() - start

    now = sorted(submissions.glob("*.ipynb"))
    added = sorted(p.name for p in set(now) - set(paths))
    final = []
    for p in paths:
        row = copy.deepcopy(rows[p.name])  # the journal keeps the row as graded
        if p not in now:
            was = (f"it was graded before that: {row.status}, {fmt(row.total)} of {fmt(exercise.points)} points"
                   if row.sha256 else "before it was graded")
            row.status, row.reason = "removed", f"the file was removed from the folder during grading ({was})"
            row.points = dict.fromkeys(row.points, 0.0)
        elif row.sha256 and _file_sha256(p) != row.sha256:  # cannot happen through the sandbox; say so if it does
            row.status, row.reason = "error", "THE SUBMISSION FILE CHANGED DURING GRADING"
            row.points = dict.fromkeys(row.points, 0.0)
        if not boxed:
            row.reason = "; ".join(x for x in (OWN_UID if own_uid else "UNSANDBOXED", row.reason) if x)
        final.append(row)
    mark_duplicates(final)
    write_feedback(exercise, final, out, boxed, own_uid)
    write_csv(exercise, final, out)
    log.close(remove=not added)  # what was graded is in the CSV; for files added meanwhile, resume needs it
    if not quiet:
        print_summary(exercise, final, out, elapsed, jobs, boxed, own_uid, len(kept))
    if added:
        print(f"{len(added)} file(s) were added to {submissions} during grading and are NOT in {out}: "
              + ", ".join(added[:20]) + (" ..." if len(added) > 20 else "")
              + f"\nrun the same command again with --resume (make grade ... RESUME=1) to grade them too "
              f"({journal} keeps the {len(final)} graded)", file=sys.stderr)
    return Graded(final, added, len(kept))


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


def _replace_atomically(path: Path, write: Callable) -> None:
    """``write(f)`` into a temporary file beside ``path``, then rename it over ``path``: a reader (or a run
    killed meanwhile) finds the old file whole or the new one whole, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


MAX_LISTED = 10  # files named in a row's same_answers_as


def write_csv(exercise: Exercise, rows: list[Row], out: Path) -> None:
    def write(f):
        w = csv.writer(f)
        w.writerow(["file", *(q.name for q in exercise.questions), "total", "status", "reason",
                    "answers_hash", "same_answers_as"])
        for r in rows:
            same = r.same_answers[:MAX_LISTED] + ([f"and {len(r.same_answers) - MAX_LISTED} more"]
                                                  if len(r.same_answers) > MAX_LISTED else [])
            w.writerow([text_cell(r.file), *(fmt(r.points[q.name]) for q in exercise.questions),
                        fmt(r.total), r.status, text_cell(r.reason), r.answers, text_cell("; ".join(same))])

    _replace_atomically(out, write)


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
        _replace_atomically(folder / (Path(r.file).stem + ".txt"), lambda f, text=text: f.write("\n".join(text) + "\n"))


def print_summary(exercise: Exercise, rows: list[Row], out: Path, elapsed: float,
                  jobs: int, boxed: bool, own_uid: bool = False, reused: int = 0) -> None:
    graded = len(rows) - reused
    cpu = sum(r.cpu_s for r in rows)  # the reused rows' figures come from the journal
    print(f"graded {graded} submissions of {exercise.name} in {elapsed:.1f} s "
          f"({elapsed / max(graded, 1):.1f} s per submission, {jobs} in parallel; "
          f"{cpu / len(rows):.1f} CPU s per submission in the "
          f"{'bubblewrap sandbox' if boxed else 'runs as a user of its own' if own_uid else 'UNSANDBOXED runs'})"
          + (f"; and {reused} from the journal of an earlier run (--resume)" if reused else ""))
    print("  " + _counts(rows))
    if shared := [r for r in rows if r.same_answers]:
        print(f"  {len(shared)} submissions have the same answers as another one: see same_answers_as")
    print(f"  grades: {out}\n  feedback: {feedback_dir(out)}/")
    if not boxed and not own_uid:
        print(sandbox.UNSANDBOXED_WARNING, file=sys.stderr)
