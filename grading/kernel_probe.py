# Runs INSIDE the student's kernel, after the student's cells (sent by runner.py).
#
# For every test case it evaluates the test's code in a copy of the notebook's
# namespace and prints the values of the checked expressions as Python literals
# (repr of exact built-in types only). It never sees an expected value and never
# decides pass or fail: the trusted grader does that. Student code can tamper
# with all of this; the worst it can do is report values of its own choosing,
# which is no better than computing them.
#
# runner.py executes this file in a namespace of its own whose __builtins__ is the real
# builtins module, not in the notebook's: a student's `list = [...]`, `for round in ...` or
# `from torch import *` (which rebinds compile, float, int, bool) never reaches this code.
# Each question gets its own time: a test that runs past timeout_s ends its question (the
# question's later tests are not run), and the next question is probed as usual.


def _grading_probe(request_json, timeout_s):
    import builtins
    import contextlib
    import io
    import json
    import math
    import signal

    max_chars = 200_000
    scalars = (type(None), bool, int, float, str)

    def literal(value, depth=0):
        t = type(value)
        if depth > 32:
            raise ValueError("the value is nested too deeply")
        if t is float and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        if t in scalars:
            return t.__repr__(value)
        if t is list or t is tuple:
            items = [literal(v, depth + 1) for v in value]
            if t is tuple:
                return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
            return "[" + ", ".join(items) + "]"
        if t is dict:
            return "{" + ", ".join(f"{literal(k, depth + 1)}: {literal(v, depth + 1)}"
                                   for k, v in value.items()) + "}"
        if t is set:
            return "{" + ", ".join(sorted(literal(v, depth + 1) for v in value)) + "}" if value else "set()"
        name = f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__
        base = next((b.__name__ for b in t.__mro__[1:] if b in (*scalars, list, tuple, dict, set)), None)
        hint = f" (a subclass of {base})" if base else ""
        raise TypeError(f"returned a {name}{hint}, not plain data (int, float, str, list, ...)")

    def describe(error):
        try:
            return f"{type(error).__name__}: {error}"[:300]
        except BaseException:
            return type(error).__name__

    class ProbeTimeout(BaseException):
        pass

    def on_alarm(signum, frame):
        raise ProbeTimeout()

    def run_case(case, base):
        """The case's step reports, and whether a step ran out of time."""
        ns, steps = dict(base), []
        for step in case:
            sink = io.StringIO()
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout_s)
                with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                    if step["check"]:
                        value = literal(eval(compile(step["code"], "<test>", "eval"), ns))
                        if len(value) > max_chars:
                            raise ValueError(f"the value is longer than {max_chars} characters")
                        steps.append({"value": value})
                    else:
                        exec(compile(step["code"], "<test>", "exec"), ns)
                        steps.append({})
            except ProbeTimeout:
                steps.append({"error": f"took longer than {timeout_s} s"})
                return steps, True
            except BaseException as e:  # noqa: B036 (a test may raise anything, even SystemExit)
                steps.append({"error": describe(e)})
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if "error" in steps[-1]:
                break
        return steps, False

    from IPython import get_ipython

    request = json.loads(request_json)
    user_ns = get_ipython().user_ns
    # Names a student rebound (list = ..., sum = ...) do not leak into the tests.
    base = {k: v for k, v in user_ns.items() if not hasattr(builtins, k)}
    base["__builtins__"] = builtins
    signal.signal(signal.SIGALRM, on_alarm)
    results = []
    for question in request:
        hung = False
        for case in question:
            if hung:  # the same function would most likely hang again: the question ends here
                results.append([{"error": f"not run: an earlier test of this question took longer "
                                          f"than {timeout_s} s"}])
                continue
            steps, hung = run_case(case, base)
            results.append(steps)
    # Delimited at both ends: C libraries may write to the same stream (it is captured at fd level).
    print("\n@@grading-probe-results@@" + json.dumps(results) + "@@end@@", flush=True)
