"""Command line: ``python -m grading build`` (make exercises), ``grade`` (make grade), ``autograder``
(make autograder: a Gradescope zip) and ``gradescope-run`` (what that zip runs for each submission)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grading import exercises, gradescope
from grading.grade import GradingError, Interrupted, grade_submissions
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
    g.add_argument("--resume", action="store_true",
                   help="after an interrupted run: keep what its journal (<out>.partial.jsonl) holds, grade the rest")
    defaults = Limits()
    g.add_argument("--timeout", type=float, default=defaults.wall_s, help="seconds per submission")
    g.add_argument("--cell-timeout", type=float, default=defaults.cell_s, help="seconds per cell")
    g.add_argument("--memory-mb", type=int, default=defaults.memory_mb, help="address space per process")
    a = sub.add_parser("autograder", help="a Gradescope autograder zip that runs this grader for one exercise")
    a.add_argument("name", nargs="?", help="the exercise")
    a.add_argument("--out", type=Path, help="the zip to write (default: _build/gradescope/NAME.zip)")
    a.add_argument("--wheelhouse", type=Path, help="a folder of wheels for every requirement, bundled: the image "
                   "then builds without an index")
    a.add_argument("--offline", action="store_true", help="install from the zip's wheels and what the image has "
                   "only, never from an index (implied by --wheelhouse)")
    a.add_argument("--hidden-visibility", choices=gradescope.VISIBILITIES, default="after_published",
                   help="when students see their hidden tests' results (default: once grades are published)")
    a.add_argument("--requirements", action="store_true", help="print the image's requirements and stop")
    for option, dest, kind, value, what in [("--timeout", "wall_s", float, defaults.wall_s, "seconds of cells"),
                                            ("--cell-timeout", "cell_s", float, defaults.cell_s, "seconds per cell"),
                                            ("--memory-mb", "memory_mb", int, defaults.memory_mb, "address space")]:
        a.add_argument(option, dest=dest, type=kind, default=value, help=what)
    r = sub.add_parser("gradescope-run", help="(in the autograder's image) grade /autograder/submission")
    r.add_argument("--source", type=Path, default=Path("/autograder/source"))
    r.add_argument("--submission", type=Path, default=Path("/autograder/submission"))
    r.add_argument("--results", type=Path, default=Path("/autograder/results"))
    r.add_argument("--check", action="store_true", help="only load the tests and say how student code will run")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            for name in args.names or exercises.names():
                ex = exercises.build(name, execute=not args.no_execute)
                print(f"{name}: {len(ex.questions)} questions, {ex.points:g} points -> "
                      f"exercises/student/{name}.ipynb, {exercises.autograder_zip(ex.build_dir)}")
        elif args.command == "grade":
            limits = Limits(wall_s=args.timeout, cell_s=args.cell_timeout, memory_mb=args.memory_mb)
            graded = grade_submissions(args.submissions, args.out, args.assignment, limits, args.sandbox, args.jobs,
                                       resume=args.resume)
            if graded.added:  # the CSV lacks them: a script must not take it for the whole class
                return 3
        elif args.command == "autograder":
            if args.requirements:
                print("\n".join(gradescope.requirements()))
                return 0
            if not args.name:
                raise GradingError(f"name the exercise: one of {', '.join(exercises.names())}")
            limits = Limits(wall_s=args.wall_s, cell_s=args.cell_s, memory_mb=args.memory_mb)
            out = gradescope.build_zip(args.name, args.out, args.wheelhouse, args.offline, args.hidden_visibility,
                                       limits)
            print(f"{out} ({out.stat().st_size / 1e6:.1f} MB): upload it as the autograder of a Gradescope "
                  "programming assignment (exercises/teachers.md)")
        elif args.check:
            gradescope.check(args.source)
        else:
            gradescope.run(args.source, args.submission, args.results)
    except (GradingError, exercises.ExerciseError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:  # the sandboxes are killed, the journal kept, no CSV written
        print(f"\n{e}", file=sys.stderr)
        return 128 + e.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
