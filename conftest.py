"""Per-notebook wall time for nbval runs (``make nbval``, ``pytest --nbval chapters/X.ipynb``).

nbval reports one test per cell; the budget is per notebook (each chapter <= 90 s on two
cores), so the run's summary adds up each notebook's cells (kernel start-up included, in
its first cell's set-up) and lists the notebooks, slowest first. It reports; it never fails
a test on time: timings depend on the machine and its load.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

BUDGET_S = 90.0
_seconds: defaultdict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _seconds:
        return
    terminalreporter.section("seconds per notebook (wall, this run)")
    for path, seconds in sorted(_seconds.items(), key=lambda item: -item[1]):
        flag = f"   over the {BUDGET_S:.0f} s budget" if seconds > BUDGET_S else ""
        terminalreporter.write_line(f"{seconds:7.1f}  {Path(path).as_posix()}{flag}")
    terminalreporter.write_line(f"{sum(_seconds.values()):7.1f}  in all, {len(_seconds)} notebooks")
