"""The teacher's grading tools around otter-grader (kept out of lmlib, which learners import).

``python -m grading build``  (``make exercises``)
    exercises/NAME.ipynb (otter-assign source) -> exercises/student/NAME.ipynb and
    _build/exercises/NAME/ (solution notebook, otter autograder zip). See ``exercises.py``.

``python -m grading grade SUBMISSIONS OUT``  (``make grade``)
    every .ipynb in SUBMISSIONS -> OUT (CSV) and OUT-feedback/. See ``grade.py``.

The trust boundary, on one page
-------------------------------
Trusted (``grade.py``, ``exercises.py``, ``sandbox.py``): the grader process. It reads
the tests from otter's autograder zip: each test is statements plus expressions whose
expected output (the solution's, saved in the source notebook) is the repr of plain
data. It never imports or executes student code.

Untrusted (``runner.py``, ``kernel_probe.py`` and the student's kernel): everything in
the sandbox. ``sandbox.run_notebook`` copies the submission into a fresh directory and
starts ``runner.py`` under bubblewrap (own mount, pid, network, ipc namespaces; only that
directory writable; no exercise sources, solutions or bundles mounted; an unprivileged
uid when run as root), with a wall-clock limit enforced from outside. The runner sets
rlimits (memory, processes, CPU, file size), runs the notebook's cells in a fresh
kernel (interrupting cells that run too long), then sends ``kernel_probe.py`` with the
tests' *code only*. The kernel answers with the repr of each checked value, built from
exact built-in types. The expected values never enter the sandbox.

Back in the trusted process, ``grade.score`` parses each answer with
``ast.literal_eval`` (it can only build numbers, strings, tuples, lists, dicts, sets,
booleans and None), compares it with the expected value (equal, same types
throughout), and adds up otter's points. Whatever the student's code does to the
kernel, the runner or the result file, it can only change the values reported, and
a value passes only if it is the right one.
"""
