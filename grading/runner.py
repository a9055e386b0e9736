"""Run one notebook in a fresh kernel, then ask the kernel for the test values.

This file runs INSIDE the sandbox (see ``sandbox.py``), started by the trusted
grader with a JSON request on stdin. Nothing it reports is trusted: student
code runs in the same sandbox and may tamper with this process, the kernel or
the result file. The grader therefore only reads plain data from
the result file (a descriptor it passes in) and checks every value itself.

Before any student code runs, this process lowers its own resource limits
(inherited by the kernel and everything it starts) and, when started as root,
drops to the unprivileged uid it was given. It imports only the standard
library and ``jupyter_client``.

Cells that only run otter's checks are skipped, and otter's first cell binds
``otter`` and ``grader`` to stand-ins that import otter when first used, which
most notebooks never do: that import was most of a light notebook's time.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import resource
import sys
import time

PROBE_RESULTS = re.compile(r"@@grading-probe-results@@(.*?)@@end@@", re.DOTALL)
INTERRUPT_GRACE_S = 5  # after an interrupt, how long a cell gets to stop before the next one
# A cell that only runs otter's own checks: grader.check("q2"), grader.check_all(). The trusted
# probe runs every test anyway, so grading skips these cells: a function that hangs then costs
# one cell limit where it is called elsewhere, and its question's tests, not three cell limits.
CHECK_LINE = re.compile(r"""\s*(grader\.check\(\s*["']\w+["']\s*\)|grader\.check_all\(\s*\))\s*;?\s*(#.*)?""")
# otter's first cell, `import otter` and `grader = otter.Notebook("NAME.ipynb")`, is there for the check
# cells, which grading skips. Importing otter costs each kernel more CPU time than a light notebook's
# own cells (it imports nbconvert and pandas), so grading binds the same two names to stand-ins that
# import otter and make the Notebook the first time the student's own code uses them.
OTTER_INIT_LINES = [re.compile(r"\s*import otter\s*;?\s*(#.*)?"),
                    re.compile(r"""\s*grader\s*=\s*otter\.Notebook\(\s*("[^"\\]*"|'[^'\\]*')?\s*\)\s*;?\s*(#.*)?""")]
LAZY_OTTER_CELL = """def _grading_lazy_otter(arguments):
    import importlib
    import importlib.util
    import types

    if importlib.util.find_spec("otter") is None:
        import otter  # raises as the cell itself would
    namespace = get_ipython().user_ns
    made = {{}}

    def real(name, make):
        if name not in made:
            made[name] = make()
        return made[name]

    class OtterOnFirstUse(types.ModuleType):
        \"\"\"The otter module, imported the first time one of its names is looked up.\"\"\"

        def __getattr__(self, attribute):
            otter = real("otter", lambda: importlib.import_module("otter"))
            if namespace.get("otter") is self:
                namespace["otter"] = otter
            return getattr(otter, attribute)

    class NotebookOnFirstUse:
        \"\"\"otter.Notebook(*arguments), made the first time one of its names is looked up.\"\"\"

        def __getattr__(self, attribute):
            notebook = real("grader", lambda: importlib.import_module("otter").Notebook(*arguments))
            if namespace.get("grader") is self:
                namespace["grader"] = notebook
            return getattr(notebook, attribute)

    return OtterOnFirstUse("otter"), NotebookOnFirstUse()


otter, grader = _grading_lazy_otter({arguments!r})
del _grading_lazy_otter
"""
# The probe runs in a namespace of its own, with the real builtins: whatever the notebook bound
# (list = ..., from torch import *) stays in the notebook's namespace. `import` finds __import__
# through the frame's builtins, which a student's globals cannot shadow by accident.
PROBE_CELL = """import builtins as _grading_builtins
_grading_builtins.exec(_grading_builtins.compile({source!r}, "<grading probe>", "exec"),
                       {{"__builtins__": _grading_builtins, "__name__": "grading_probe"}})
"""


def set_limits(limits: dict) -> None:
    mb = 1024 * 1024
    wanted = {
        resource.RLIMIT_AS: (limits["memory_mb"] * mb,) * 2,
        resource.RLIMIT_CPU: (limits["cpu_s"], limits["cpu_s"] + 5),
        resource.RLIMIT_FSIZE: (limits["file_mb"] * mb,) * 2,
        resource.RLIMIT_NOFILE: (512, 512),
        resource.RLIMIT_CORE: (0, 0),
    }
    if limits["nproc"] is not None:
        wanted[resource.RLIMIT_NPROC] = (limits["nproc"],) * 2
    for which, soft_hard in wanted.items():
        resource.setrlimit(which, soft_hard)


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit("could not drop privileges")


def is_check_cell(source: str) -> bool:
    lines = [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    return bool(lines) and all(CHECK_LINE.fullmatch(line) for line in lines)


def lazy_otter_cell(source: str) -> str | None:
    """The stand-in for otter's first cell (``LAZY_OTTER_CELL``), or None if ``source`` is not that cell."""
    lines = [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    if len(lines) != 2 or not all(p.fullmatch(line) for p, line in zip(OTTER_INIT_LINES, lines, strict=True)):
        return None
    name = OTTER_INIT_LINES[1].fullmatch(lines[1]).group(1)
    return LAZY_OTTER_CELL.format(arguments=(ast.literal_eval(name),) if name else ())


def code_cells(path: str) -> list[tuple[int, str]]:
    """(cell number counted from 1 among all cells, source) of each code cell."""
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    cells = []
    for number, cell in enumerate(nb["cells"], start=1):
        if cell.get("cell_type") == "code":
            src = cell.get("source", "")
            cells.append((number, "".join(src) if isinstance(src, list) else src))
    return cells


class KernelDied(Exception):
    pass


def address_space_left_mb(pid: int | None, limit_mb: float) -> float | None:
    """How much of the address-space limit (``memory_mb``) the process ``pid`` has not used, in MB; None if unknown.
    A notebook whose memory grew until the limit stopped it (a list that grows in a loop) still holds nearly all
    of it after its cells; one whose single huge allocation failed holds none of it."""
    try:
        with open(f"/proc/{int(pid)}/status", encoding="ascii", errors="replace") as f:
            size_kb = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError, TypeError, IndexError):
        return None
    return round(limit_mb - size_kb / 1024, 1)


def execute(km, kc, code: str, timeout: float, collect_stdout: bool = False) -> dict:
    """Run ``code`` in the kernel; interrupt it (SIGINT) when it runs past ``timeout`` seconds."""
    msg_id = kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
    deadline, interrupted = time.monotonic() + timeout, 0
    reply = None
    while reply is None:
        try:
            msg = kc.get_shell_msg(timeout=1)
        except queue.Empty:
            if not km.is_alive():
                raise KernelDied() from None
            if time.monotonic() > deadline:
                if interrupted >= 3:
                    raise TimeoutError("the kernel ignores interrupts") from None
                km.interrupt_kernel()
                interrupted += 1
                deadline = time.monotonic() + INTERRUPT_GRACE_S
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            reply = msg["content"]
    out = {"status": reply.get("status"), "interrupted": interrupted > 0}
    if reply.get("status") == "error":
        out["error"] = f"{reply.get('ename', '')}: {reply.get('evalue', '')}"[:300]
    # Drain this cell's output messages (and keep stdout when asked for it).
    stdout, idle_deadline = [], time.monotonic() + 10
    while time.monotonic() < idle_deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            break
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if collect_stdout and msg["msg_type"] == "stream" and msg["content"].get("name") == "stdout":
            stdout.append(msg["content"].get("text", ""))
        if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
            break
    if collect_stdout:
        out["stdout"] = "".join(stdout)
    return out


def run(request: dict, result: dict) -> None:
    from jupyter_client import KernelManager

    workdir = request["workdir"]
    cells = code_cells(os.path.join(workdir, request["notebook"]))
    # Unix sockets in the submission's directory: the kernel needs no network at all.
    os.makedirs(os.path.join(workdir, ".grading"), exist_ok=True)
    km = KernelManager(kernel_name="python3", transport="ipc",
                       ip=os.path.join(workdir, ".grading", "kernel"))
    km.start_kernel(cwd=workdir)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        cells_deadline = time.monotonic() + request["cells_budget_s"]
        for number, source in cells:
            if not source.strip() or is_check_cell(source):
                continue
            if time.monotonic() > cells_deadline:  # the tests still run, on what is defined so far
                result["cells_not_run_from"] = number
                break
            try:
                out = execute(km, kc, lazy_otter_cell(source) or source, request["cell_timeout_s"])
            except KernelDied:
                result["died_in_cell"] = number
                return
            except TimeoutError:
                result["hung_in_cell"] = number
                return
            if out["status"] != "ok" or out["interrupted"]:
                result["cells"].append({"cell": number, **out})
        kernel_pid = getattr(getattr(km.provisioner, "process", None), "pid", None)
        result["memory_left_mb"] = address_space_left_mb(kernel_pid, request["limits"]["memory_mb"])
        with open(os.path.join(os.path.dirname(__file__), "kernel_probe.py"), encoding="utf-8") as f:
            source = f.read()
        source += f"\n_grading_probe({json.dumps(request['probes'])!r}, {request['probe_timeout_s']})\n"
        probe = PROBE_CELL.format(source=source)
        budget = request["probe_timeout_s"] * max(1, request["probe_steps"]) + 30
        try:
            out = execute(km, kc, probe, budget, collect_stdout=True)
        except KernelDied:
            result["died_in_cell"] = "tests"
            return
        except TimeoutError:
            result["hung_in_cell"] = "tests"
            return
        found = PROBE_RESULTS.findall(out.get("stdout", ""))
        result["probes"] = found[-1] if found else None
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> None:
    request = json.load(sys.stdin)
    os.set_inheritable(request["result_fd"], False)  # the kernel must not inherit it
    set_limits(request["limits"])
    if request.get("uid") is not None and os.getuid() == 0:
        drop_privileges(request["uid"])
    result = {"cells": [], "died_in_cell": None, "hung_in_cell": None, "probes": None}
    try:
        run(request, result)
    except Exception as e:  # reported to the grader as a crash, with this reason
        result["runner_error"] = f"{type(e).__name__}: {e}"[:300]
    usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    result["cpu_s"] = sum(u.ru_utime + u.ru_stime for u in usage)  # for the timing summary only
    with os.fdopen(request["result_fd"], "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
