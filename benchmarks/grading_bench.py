"""A class of 300: ``python -m grading grade`` (``make grade``) on 300 submissions of one exercise.

    .venv/bin/python benchmarks/grading_bench.py        # writes benchmarks/results/grading.md

The class: submissions of the pilot exercise (``text_as_data``) built from the grader tests'
notebooks (``tests/grading_submissions.py``) in a fixed mix (``MIX``, per 100 students): the
solution as a student submits it, its alternative right answers, its wrong answers, the untouched
student notebook, crashers, hangs and forgeries; every student's notebook but the blank ones and
the non-notebooks gets a cell of its own (``submitted_by = ...``), so that only the copies planted
here (``COPIES`` students hand in another's file) have the same answer cells. The order is
shuffled with a fixed seed.

The folder is graded once by ``python -m grading grade`` with its default ``--jobs`` (one per core)
and ``--cell-timeout 5`` (so a hang costs 5 s, not 30). Measured:

- wall time, submissions per second;
- CPU seconds per submission: the grader's (and bwrap's) from ``getrusage(RUSAGE_CHILDREN)`` of
  this process around the run, plus the processes inside the sandboxes, sampled: bwrap reads its
  command's exit status from its init process without reaping it, so the sandboxes' CPU time never
  reaches the grader's rusage. Every 0.25 s each process below bwrap is read from
  ``/proc/PID/stat`` (its own user + system time), and its last reading counts (a lower bound: a
  process's last 0.25 s is missed). The sandboxes' own report (the runner's rusage) is shown beside;
- peak memory of the whole run: every 0.25 s, the processes under the grader (sandboxes, runners,
  kernels) are listed from ``/proc`` and their ``Pss`` (proportional set size: a shared page counts
  once, split among the processes sharing it) and ``Rss`` (shared pages counted in each) summed
  from ``/proc/PID/smaps_rollup``; the peak of each sum over the samples (a peak shorter than
  0.25 s can be missed);
- the CSV against grading each file alone: a sample of ``--sample`` files (one of each kind, then
  evenly spread) is graded again, each in a folder of its own, and its row compared with the
  class CSV's row, every column but ``same_answers_as`` (which names other files of the folder).

Timings are wall-clock on whatever machine runs this; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grading import exercises, grade, sandbox  # noqa: E402
from tests import grading_submissions as gs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "grading.md"
EXERCISE = "text_as_data"
CELL_TIMEOUT_S = 5.0
# kind -> (students per 100, what it is, what the grader should make of it)
MIX = {
    "solution": (38, "the solution, as a student submits it", "ok, full marks"),
    "right": (10, "alternative right answers (the tests' right-0..2, in turn)", "ok, full marks"),
    "wrong": (20, "wrong answers (the tests' wrong-0..8, in turn)", "ok, points lost"),
    "blank": (10, "the student notebook, untouched", "ok, 0"),
    "os-exit": (3, "`os._exit(0)` in a cell", "crashed, 0"),
    "memory-creep": (1, "allocates 50 MB chunks for ever", "out of memory, 0"),
    "not-json": (2, "a file cut short (not JSON)", "not a notebook, 0"),
    "infinite-loop": (3, "`while True: pass` after the answers", "ok, full marks (cell interrupted)"),
    "sleeps": (3, "`time.sleep(3600)` after the answers", "ok, full marks (cell interrupted)"),
    "ignores-interrupt": (1, "a loop that ignores SIGINT", "timeout, 0"),
    "patches-otter": (2, "patches otter's test runner (forgery)", "ok, 0"),
    "always-equal": (2, "answers whose `__eq__` always says yes (forgery)", "ok, 0"),
    "prints-success": (2, "prints 'All tests passed!' (forgery)", "ok, 0"),
    "rebinds-builtins": (1, "the solution, with `isinstance`, `round`, `max` rebound", "ok, full marks"),
    "reads-hidden-tests": (2, "looks for the solutions and hidden tests (forgery)", "ok, 0"),
}
HOSTILE = {"os-exit": "hostile-os-exit", "memory-creep": "hostile-memory-creep", "not-json": "broken-invalid-json",
           "infinite-loop": "hostile-infinite-loop", "ignores-interrupt": "hostile-loop-ignores-interrupt",
           "patches-otter": "hostile-patches-otter", "always-equal": "hostile-always-equal",
           "prints-success": "hostile-prints-success", "rebinds-builtins": "hostile-rebinds-builtins",
           "reads-hidden-tests": "hostile-reads-hidden-tests"}
COPIES = 5  # per 300: a "solution" student hands in another "solution" student's file, byte for byte


def build_class(folder: Path, n: int) -> dict[str, str]:
    """``n`` submissions in ``folder``: file name -> kind (a copy's kind is "copy of FILE")."""
    ex = exercises.load(EXERCISE)
    blank = gs.load_nb(ex.student_notebook)
    solution = gs.answered(gs.load_nb(ex.solution_notebook), blank)
    tests_subs = {s.name[:-6]: s.data for s in gs.correctness(ex) + gs.hostile(ex, folder, "bench-canary")}
    rights = sorted(k for k in tests_subs if k.startswith("right-"))
    wrongs = sorted(k for k in tests_subs if k.startswith("wrong-"))
    kinds = [kind for kind, (per_100, _, _) in MIX.items() for _ in range(round(per_100 * n / 100))][:n]
    kinds += ["solution"] * (n - len(kinds))
    random.Random(0).shuffle(kinds)
    made, seen = {}, Counter()
    for i, kind in enumerate(kinds):
        name = f"{i + 1:03d}-{kind}.ipynb"
        if kind == "blank":
            data = gs.dump(blank)
        elif kind == "not-json":
            data = tests_subs[HOSTILE[kind]]
        else:
            if kind == "solution":
                nb = solution
            elif kind == "sleeps":
                nb = gs.with_cell(solution, "import time\ntime.sleep(3600)")
            elif kind in ("right", "wrong"):
                pool = rights if kind == "right" else wrongs
                nb = json.loads(tests_subs[pool[seen[kind] % len(pool)]])
            else:
                nb = json.loads(tests_subs[HOSTILE[kind]])
            data = gs.dump(gs.with_cell(nb, f"submitted_by = {name[:3]!r}"))
        seen[kind] += 1
        (folder / name).write_bytes(data)
        made[name] = kind
    solutions = [name for name, kind in made.items() if kind == "solution"]
    k = max(1, round(COPIES * n / 300))
    for original, copy in zip(solutions[:k], solutions[len(solutions) - k:], strict=True):
        shutil.copyfile(folder / original, folder / copy)
        made[copy] = f"copy of {original}"
    return made


def processes_under(pid: int) -> dict[int, list[bytes]]:
    """pid -> the fields of /proc/PID/stat after the command name, for ``pid`` and every process under it."""
    stats: dict[int, list[bytes]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            stats[int(entry)] = stat[stat.rfind(b")") + 2:].split()
    children: dict[int, list[int]] = {}
    for child, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(child)
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            found[p] = stats[p]
            todo += children.get(p, [])
    return found


def memory_kb(pids: list[int]) -> tuple[int, int]:
    """(sum of Pss, sum of Rss) in kB over ``pids``, from smaps_rollup."""
    pss = rss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:  # ended meanwhile
            continue
        pss += int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1)) if "Pss:" in text else 0
        rss += int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1)) if "Rss:" in text else 0
    return pss, rss


def grade_class(folder: Path, out: Path) -> dict:
    """``python -m grading grade`` on the folder, sampling the memory of every process under it."""
    command = [sys.executable, "-m", "grading", "grade", str(folder), str(out), "--cell-timeout", str(CELL_TIMEOUT_S)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    peak = {"pss": 0, "rss": 0, "processes": 0, "samples": 0}
    sandboxed_cpu: dict[tuple[int, bytes], float] = {}  # (pid, start time) -> its own CPU seconds, last seen
    tick = os.sysconf("SC_CLK_TCK")
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sample():
        while proc.poll() is None:
            tree = processes_under(proc.pid)
            pss, rss = memory_kb(list(tree))
            peak.update(pss=max(peak["pss"], pss), rss=max(peak["rss"], rss),
                        processes=max(peak["processes"], len(tree)), samples=peak["samples"] + 1)
            for pid, fields in tree.items():
                if pid != proc.pid and int(fields[1]) != proc.pid:  # inside a sandbox: below bwrap
                    sandboxed_cpu[pid, fields[19]] = (int(fields[11]) + int(fields[12])) / tick
            time.sleep(0.25)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.monotonic() - start
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"grading failed ({proc.returncode}):\n{stderr}")
    inside = float(re.search(r"; ([\d.]+) CPU s per submission in the", stdout).group(1))
    grader_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"wall": wall, "cpu": grader_cpu + sum(sandboxed_cpu.values()), "grader_cpu": grader_cpu,
            "sandboxed_cpu": sum(sandboxed_cpu.values()), "cpu_inside_per": inside, "peak": peak,
            "stdout": stdout, "stderr": stderr,
            "load": (load_before, os.getloadavg()[0]), "command": command}


def sample_of(kinds: dict[str, str], size: int) -> list[str]:
    """One file of each kind (copies included), then files spread evenly over the rest."""
    chosen = list({kind if not kind.startswith("copy") else "copy": name for name, kind in
                   sorted(kinds.items(), reverse=True)}.values())
    rest = [name for name in sorted(kinds) if name not in chosen]
    step = max(1, len(rest) // max(1, size - len(chosen)))
    return sorted(chosen + rest[::step][: max(0, size - len(chosen))])


def grade_alone(folder: Path, names: list[str], work: Path) -> dict[str, dict]:
    """Each file in a folder of its own, graded by ``grade.grade_folder`` (the CLI's code) with the same limits,
    the folders sharing one pool of sandboxes (one per core, as the class run had)."""
    limits = sandbox.Limits(cell_s=CELL_TIMEOUT_S)
    alone = {}
    for name in names:
        (work / name[:-6]).mkdir(parents=True)
        shutil.copyfile(folder / name, work / name[:-6] / name)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool, ThreadPoolExecutor(len(names)) as folders:
        list(folders.map(lambda name: grade.grade_folder(work / name[:-6], work / f"{name[:-6]}.csv", EXERCISE,
                                                         limits, quiet=True, pool=pool), names))
    for name in names:
        with open(work / f"{name[:-6]}.csv", newline="") as f:
            (alone[name],) = csv.DictReader(f)
    return alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="submissions (default 300)")
    parser.add_argument("--sample", type=int, default=20, help="files graded again alone (default 20)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grading-bench-") as tmp:
        folder, out = Path(tmp) / "class", Path(tmp) / "grades" / "grades.csv"
        folder.mkdir()
        kinds = build_class(folder, args.n)
        print(f"{len(kinds)} submissions in {folder}; grading ...", flush=True)
        run = grade_class(folder, out)
        print(run["stdout"], run["stderr"], flush=True)
        with open(out, newline="") as f:
            table = {r["file"]: r for r in csv.DictReader(f)}
        chosen = sample_of(kinds, args.sample)
        print(f"grading {len(chosen)} of them alone ...", flush=True)
        alone = grade_alone(folder, chosen, Path(tmp) / "alone")
    same = {name: {k: v for k, v in alone[name].items() if k != "same_answers_as"}
            == {k: v for k, v in table[name].items() if k != "same_answers_as"} for name in chosen}
    write_report(args, kinds, table, run, chosen, same, alone)


def write_report(args, kinds, table, run, chosen, same, alone) -> None:
    ex = exercises.load(EXERCISE)
    n = len(kinds)
    by_kind: dict[str, list[dict]] = {}
    for name, kind in kinds.items():
        by_kind.setdefault("copy" if kind.startswith("copy") else kind, []).append(table[name])
    flagged = sorted(name for name, r in table.items() if r["same_answers_as"])
    planted = sorted({name for name, kind in kinds.items() if kind.startswith("copy")}
                     | {kind[len("copy of "):] for kind in kinds.values() if kind.startswith("copy")})
    cpus, mem_total = os.cpu_count(), int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    peak = run["peak"]
    lines = [
        "# Grading a class: 300 submissions through `make grade`",
        "",
        f"Generated by `python benchmarks/grading_bench.py` on {date.today()}; Python {platform.python_version()}, "
        f"{cpus} CPUs ({platform.machine()}), {mem_total / 1024**2:.0f} GB of memory; bubblewrap sandbox.",
        f"Command: `python -m grading grade CLASS grades.csv --cell-timeout {CELL_TIMEOUT_S:g}` (default `--jobs`: "
        f"{cpus}, one per core; other limits at their defaults: {sandbox.Limits().wall_s:g} s of cells, "
        f"{sandbox.Limits().memory_mb} MB of address space per process).",
        f"Load average (1 min) before and after: {run['load'][0]:.1f} and {run['load'][1]:.1f} on {cpus} cores "
        "(wall-clock figures on a shared machine are noisy).",
        "",
        f"## The class: {n} submissions of `{EXERCISE}`, in a fixed mix",
        "",
        "| kind | students | what it is | expected | graded as (status: count; points) |",
        "|---|---|---|---|---|",
    ]
    for kind, (_, what, expected) in [*MIX.items(), ("copy", (0, "another student's solution file, byte for byte",
                                                                  "as that file, flagged"))]:
        rows = by_kind.get(kind, [])
        if not rows:  # a class smaller than 100 may lack a kind
            continue
        statuses = ", ".join(f"{s}: {c}" for s, c in Counter(r["status"] for r in rows).most_common())
        totals = sorted({float(r["total"]) for r in rows})
        points = f"{totals[0]:g}" if len(totals) == 1 else f"{totals[0]:g} to {totals[-1]:g}"
        lines.append(f"| {kind} | {len(rows)} | {what} | {expected} | {statuses}; {points} of {ex.points:g} |")
    per_sub_cpu = run["cpu"] / n
    lines += [
        "",
        "## Figures",
        "",
        "| measure | value |",
        "|---|---|",
        f"| wall time | {run['wall']:.0f} s ({run['wall'] / 60:.1f} min) |",
        f"| submissions per second | {n / run['wall']:.2f} |",
        f"| CPU seconds per submission, the grader and every process under it | {per_sub_cpu:.2f} |",
        f"| of which the grader process and bwrap | {run['grader_cpu'] / n:.2f} |",
        f"| of which inside the sandboxes (sampled) | {run['sandboxed_cpu'] / n:.2f} |",
        f"| inside the sandboxes, as their runners report it (killed runs report nothing) | "
        f"{run['cpu_inside_per']:.1f} |",
        f"| peak memory of the whole run, sum of PSS | {peak['pss'] / 1024:.0f} MB |",
        f"| peak memory, sum of RSS (shared pages counted in each process) | {peak['rss'] / 1024:.0f} MB |",
        f"| most processes at once under the grader | {peak['processes']} |",
        f"| memory samples (every 0.25 s) | {peak['samples']} |",
        "",
        f"The grader's summary: `{run['stdout'].splitlines()[0]}`",
        "",
        "CPU time: the grader's and bwrap's from `getrusage(RUSAGE_CHILDREN)` of the benchmark around the run; the "
        "sandboxes' (bwrap's init, the runner, the kernel) sampled every 0.25 s from `/proc/PID/stat`, each process's "
        "last reading (bwrap takes its command's exit status from its init process without reaping it, so their "
        "time never adds up into the grader's rusage). Memory: every 0.25 s the "
        "processes under the grader are listed from `/proc` and their `Pss` and `Rss` (from `/proc/PID/smaps_rollup`) "
        "summed; the table gives the largest sums. PSS splits each shared page among the processes that map it, so "
        "its sum is what the run occupies; RSS counts a shared page (Python, torch's libraries) once per process.",
        "",
        "## Duplicates",
        "",
        f"{len(flagged)} rows have a `same_answers_as` entry; the {len(planted)} files of the {len(planted) // 2} "
        f"planted copies are {'exactly those' if flagged == planted else 'NOT exactly those: ' + ', '.join(flagged)}. "
        "The blank notebooks (no answer cells) and the files that are not notebooks have no hash and are not flagged.",
        "",
        "## The class CSV against grading each file alone",
        "",
        f"{sum(same.values())} of {len(chosen)} sampled rows are equal, every column but `same_answers_as` "
        "(which names the other files of the folder): "
        + ", ".join(f"`{name}`" + ("" if same[name] else " (DIFFERS)") for name in chosen) + ".",
    ]
    differ = [name for name in chosen if not same[name]]
    for name in differ:
        lines += ["", f"- `{name}`: class `{table[name]}`, alone `{alone[name]}`"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
