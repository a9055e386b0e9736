"""Run one untrusted notebook in a bubblewrap sandbox, with limits, and read back plain data.

The sandbox (Debian's ``bubblewrap``, ``bwrap``) gives each submission:

- its own fresh temporary directory as the only writable place (removed afterwards);
- read-only views of only what a kernel needs: the system libraries, Python, the
  course's virtual environment, ``lmlib`` and its corpus cache; the exercise
  sources, solutions and hidden expected values are not there at all;
- no network (a new network namespace with only loopback), its own process
  namespace (it cannot see or signal other processes; everything in it dies with
  it) and, when the grader runs as root, an unprivileged uid of its own;
- resource limits set before student code runs (``runner.set_limits``):
  address space, processes (fork bombs), CPU seconds, file size; and a
  wall-clock limit enforced from outside by killing the whole sandbox.

Without bubblewrap the same runner still applies the limits, but student code can
read and write whatever the grader's user can: ``run_notebook`` then prints a
loud warning (``sandbox="none"``). A grader running as root in a container that
forbids namespaces (a hosted autograder: ``gradescope.py``) can still run the
notebook as an unprivileged uid of its own (``own_uid``): it then reads only what
is readable by all, writes only its directory and the world-writable ones, cannot
signal the grader, and none of its processes outlives the run; but it has the
network and sees the container's files and processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

GRADING_DIR = Path(__file__).resolve().parent
BOX_WORKDIR = "/submission"  # where the submission's directory appears inside the sandbox
MAX_RESULT_BYTES = 8 * 1024 * 1024
UNSANDBOXED_WARNING = (
    "WARNING: bubblewrap (bwrap) is not available, so student code runs WITHOUT a sandbox: "
    "it can read the solutions and hidden tests and write outside its directory. Only resource "
    "and time limits apply" + (" (and, as root, no process limit)" if os.getuid() == 0 else "")
    + ". Install it (Debian/Ubuntu: sudo apt-get install bubblewrap)."
)


@dataclass(frozen=True)
class Limits:
    wall_s: float = 120  # the notebook's cells, all together; later cells are not run
    cell_s: float = 30  # one cell, then the kernel is interrupted and the next cell runs
    probe_s: float = 10  # one test expression; one that runs past it ends its question's tests
    memory_mb: int = 2048  # address space of each process
    nproc: int = 64  # processes and threads (per sandbox uid)
    file_mb: int = 64  # largest file a submission may write


    def whole_run_s(self, probe_steps: int) -> float:
        """When the sandbox is killed from outside: the cells' time, every test's, and start-up.

        The tests get time of their own, so a notebook whose cells used up ``wall_s`` is still
        graded; only a run that ignores every interrupt reaches this limit."""
        return self.wall_s + self.probe_s * probe_steps + 60


@dataclass
class RunResult:
    result: dict | None  # what runner.py wrote: untrusted, validated by the caller
    timed_out: bool
    exit_code: int | None
    log_tail: str
    whole_run_s: float  # the limit after which the sandbox was (or would have been) killed


def bwrap_works() -> tuple[bool, str]:
    """Whether bubblewrap can start a sandbox here (it may be installed but not permitted)."""
    if shutil.which("bwrap") is None:
        return False, "bwrap is not installed"
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp:
        for sub in ("work", "tmp"):
            os.mkdir(os.path.join(tmp, sub))
        try:
            proc = subprocess.run([*_bwrap_args(Path(tmp)), sys.executable, "-c", "pass"],
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, str(e)
    return proc.returncode == 0, proc.stderr.strip()


def _read_only_paths() -> list[Path]:
    import lmlib
    import lmlib.data

    paths = [Path(sys.base_prefix), Path(sys.prefix), Path(lmlib.__file__).resolve().parent,
             GRADING_DIR, lmlib.data.cache_dir().resolve()]
    return [p for p in dict.fromkeys(paths)]


def _bwrap_args(workdir: Path) -> list[str]:
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid",
            "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if os.getuid() == 0:
        # Root keeps no capability but the two needed to switch to the sandbox's own uid.
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/nsswitch.conf",
              "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/localtime", "/etc/ssl"):
        args += ["--ro-bind-try", f, f]
    # The sandbox's own /tmp first: the read-only binds below then land on top of it, so a
    # course checkout, venv or cache that lives under /tmp stays visible inside the sandbox.
    args += ["--bind", str(workdir / "tmp"), "/tmp"]
    made = set()
    for path in _read_only_paths():
        for parent in reversed(path.parents):  # bwrap would create missing parents as 0700
            if str(parent) not in made and str(parent) != "/":
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(path), str(path)]
    args += ["--dev", "/dev", "--proc", "/proc",
             "--bind", str(workdir / "work"), BOX_WORKDIR, "--chdir", BOX_WORKDIR]
    return args


_uid_lock = threading.Lock()
_uids_in_use: set[int] = set()


def _take_uid() -> int:
    """A uid no other running sandbox uses: process limits count per uid."""
    base = 2_000_000_000 + (os.getpid() % 100_000) * 1000
    with _uid_lock:
        uid = next(u for u in range(base, base + 1000) if u not in _uids_in_use)
        _uids_in_use.add(uid)
    return uid


def _release_uid(uid: int | None) -> None:
    with _uid_lock:
        _uids_in_use.discard(uid)


def _environment(work: str, tmp: str) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": work, "TMPDIR": tmp, "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2", "MPLBACKEND": "Agg",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "LMLIB_CACHE": f"{work}/.cache/lmlib",
        "JUPYTER_PLATFORM_DIRS": "1", "IPYTHONDIR": f"{work}/.ipython",
        "JUPYTER_RUNTIME_DIR": f"{work}/.grading/runtime",
    }


def _link_corpus_cache(target: Path) -> None:
    """lmlib's parsed corpora, linked read-only; a corpus not parsed yet is parsed in the sandbox."""
    import lmlib.data

    target.mkdir(parents=True)
    for f in lmlib.data.cache_dir().resolve().glob("*.json"):
        (target / f.name).symlink_to(f)


def _own_process_count() -> int:
    """Processes and threads of this uid now (RLIMIT_NPROC counts them all without a sandbox)."""
    count = 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == os.getuid():
                count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return count


def _remove(path: Path) -> None:
    def make_writable(func, p, _exc):
        os.chmod(os.path.dirname(p), 0o700)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, 0o700)
        func(p)

    shutil.rmtree(path, onerror=make_writable)


def _kill_all_processes_of(uid: int) -> None:
    """End every process of ``uid``: without a pid namespace, one started in a new session outlives killpg.
    kill(-1) sent as that uid reaches all of its processes and no other."""
    subprocess.run([sys.executable, "-I", "-c", "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\n"
                    "except ProcessLookupError:\n    pass"], user=uid, group=uid, extra_groups=[], env={},
                   capture_output=True, timeout=60, check=False)


def run_notebook(notebook: str, name: str, probes: list, limits: Limits, sandbox: bool,
                 own_uid: bool = False) -> RunResult:
    """Execute ``notebook`` (JSON text) as ``name`` in a fresh sandbox, then evaluate ``probes``:
    per question, its test cases, each a list of steps (``{"code", "check"}``).

    ``own_uid`` (without the sandbox, as root): run it as an unprivileged uid of its own."""
    workdir = Path(tempfile.mkdtemp(prefix="grading-"))
    (workdir / "work").mkdir()
    (workdir / "tmp").mkdir()
    (workdir / "work" / name).write_text(notebook, encoding="utf-8")
    _link_corpus_cache(workdir / "work" / ".cache" / "lmlib")
    startup = workdir / "work" / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    # otter (imported by the notebook's first cell) imports jsonschema, which compiles an IRI
    # grammar (rfc3987_syntax) at import: 2 CPU seconds per kernel that no notebook needs.
    (startup / "00-grading.py").write_text('import sys\nsys.modules.setdefault("rfc3987_syntax", None)\n')
    uid = _take_uid() if (sandbox or own_uid) and os.getuid() == 0 else None
    if uid is not None:
        for p in [workdir / "work", workdir / "tmp", *(workdir / "work").rglob("*")]:
            os.chown(p, uid, uid, follow_symlinks=False)
        if not sandbox:  # its uid reaches work/ and tmp/ by name; result.json stays the grader's alone
            os.chmod(workdir, 0o711)
    inside = BOX_WORKDIR if sandbox else str(workdir / "work")
    tmp = "/tmp" if sandbox else str(workdir / "tmp")
    nproc = limits.nproc if (sandbox or uid is not None) else _own_process_count() + limits.nproc
    result_fd = os.open(workdir / "result.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    probe_steps = sum(len(case) for question in probes for case in question)
    whole_run_s = limits.whole_run_s(probe_steps)
    request = {
        "workdir": inside, "notebook": name, "uid": uid, "probes": probes, "result_fd": result_fd,
        "probe_steps": probe_steps, "cells_budget_s": limits.wall_s,
        "cell_timeout_s": limits.cell_s, "probe_timeout_s": limits.probe_s,
        "limits": {**asdict(limits), "cpu_s": int(whole_run_s) + 5,
                   "nproc": None if (os.getuid() == 0 and uid is None) else nproc},
    }
    runner = [sys.executable, "-I", str(GRADING_DIR / "runner.py")]
    cmd = [*_bwrap_args(workdir), *runner] if sandbox else runner
    timed_out, exit_code = False, None
    try:
        with open(workdir / "log.txt", "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=str(workdir / "work"), env=_environment(inside, tmp),
                                    start_new_session=True, pass_fds=(result_fd,))
            os.close(result_fd)
            try:
                proc.stdin.write(json.dumps(request).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                exit_code = proc.wait(timeout=whole_run_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:  # the whole process group; in a sandbox, everything in it dies with bwrap
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if uid is not None and not sandbox:  # and what left the group, before the result is read
                    _kill_all_processes_of(uid)
                proc.wait()
        result = None
        # The grader's own file, outside the directory the sandbox can reach: no link to follow.
        with open(workdir / "result.json", "rb") as f:
            data = f.read(MAX_RESULT_BYTES + 1)
        if not timed_out and len(data) <= MAX_RESULT_BYTES:
            try:
                result = json.loads(data)
            except (ValueError, RecursionError):
                result = None
        with open(workdir / "log.txt", "rb") as f:
            f.seek(max(0, os.path.getsize(workdir / "log.txt") - 2000))
            log_tail = f.read().decode("utf-8", "replace")
        return RunResult(result if isinstance(result, dict) else None, timed_out, exit_code, log_tail,
                         whole_run_s)
    finally:
        _remove(workdir)
        _release_uid(uid)
