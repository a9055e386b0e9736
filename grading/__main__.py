"""Command line: ``python -m grading build`` (make exercises) and ``python -m grading grade``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grading import exercises
from grading.grade import GradingError, grade_folder
from grading.sandbox import Limits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="run each exercise source, otter-assign it, publish the student notebook")
    b.add_argument("names", nargs="*", help="exercise names (default: all in exercises/)")
    b.add_argument("--no-execute", action="store_true", help="use the saved outputs of the source as they are")
    g = sub.add_parser("grade", help="grade every .ipynb in a folder into a CSV")
    g.add_argument("submissions", type=Path)
    g.add_argument("out", type=Path, help="the CSV to write; feedback goes to <out>-feedback/")
    g.add_argument("--assignment", help="the exercise (default: the one the notebooks name)")
    g.add_argument("--jobs", type=int, help="submissions graded at once (default: CPU cores)")
    g.add_argument("--sandbox", choices=["auto", "bubblewrap", "none"], default="auto",
                   help="auto: bubblewrap if it works, else run unsandboxed with a loud warning")
    defaults = Limits()
    g.add_argument("--timeout", type=float, default=defaults.wall_s, help="seconds per submission")
    g.add_argument("--cell-timeout", type=float, default=defaults.cell_s, help="seconds per cell")
    g.add_argument("--memory-mb", type=int, default=defaults.memory_mb, help="address space per process")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            for name in args.names or exercises.names():
                ex = exercises.build(name, execute=not args.no_execute)
                print(f"{name}: {len(ex.questions)} questions, {ex.points:g} points -> "
                      f"exercises/student/{name}.ipynb, {exercises.autograder_zip(ex.build_dir)}")
        else:
            limits = Limits(wall_s=args.timeout, cell_s=args.cell_timeout, memory_mb=args.memory_mb)
            grade_folder(args.submissions, args.out, args.assignment, limits, args.sandbox, args.jobs)
    except (GradingError, exercises.ExerciseError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
