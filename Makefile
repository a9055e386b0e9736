# The course's commands. `make book` and `make test` set up everything they need
# from a fresh clone: a virtual environment in .venv with the pinned course
# environment (pyproject.toml, extra "course") and lmlib installed editable.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

# Nothing in this course downloads at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Reference tools print their own download hints; keep them quiet and local.
export NLTK_DATA := $(CURDIR)/.venv/nltk_data

NOTEBOOKS := $(wildcard chapters/*.ipynb)

.PHONY: check-python install book serve lab test lint lint-workflows unit unit-lmlib grader-tests nbval nbval-exercises nbval-and-grader-tests book-strict execute clean assets \
  site-test site-and-pdf-tests bench checkpoints pdf pdf-test
.DEFAULT_GOAL := book

# The oldest Python the pinned packages install on (numpy 2.4, scipy 1.17, matplotlib 3.11,
# transformers 5 and hypothesis 6.170 all require 3.11); read from pyproject.toml's requires-python.
PYTHON_MIN := $(shell sed -n 's/^requires-python *= *">=\([0-9.]*\)".*/\1/p' pyproject.toml)
ifeq ($(PYTHON_MIN),)
$(error pyproject.toml has no requires-python = ">=X.Y" line, which the Makefile reads)
endif

# Checked before the virtual environment is made (and again if an old .venv is found), so an
# old Python fails here with a clear message, not deep inside pip. The version is compared in awk, so
# any interpreter that prints it (Python 2 included) gets the message.
check-python:
	@py="$(PYTHON)"; if [ -x $(BIN)/python ]; then py=$(BIN)/python; fi; \
	found=$$("$$py" -c 'import sys; print("%d.%d.%d" % tuple(sys.version_info[:3]))' 2>/dev/null) || { \
	  echo "make: cannot run '$$py' to create the course's virtual environment." >&2; \
	  echo "      Install Python $(PYTHON_MIN) or newer and run, e.g.: make PYTHON=python$(PYTHON_MIN)" >&2; exit 1; }; \
	awk -v found="$$found" -v need="$(PYTHON_MIN)" 'BEGIN { n = split(found, f, "."); split(need, r, "."); \
	  for (i = 1; i <= 3; i++) { if (f[i] + 0 != r[i] + 0) exit (f[i] + 0 > r[i] + 0) ? 0 : 1 } exit 0 }' || { \
	  echo "make: the course needs Python >= $(PYTHON_MIN), but '$$py' is Python $$found." >&2; \
	  echo "      Its pinned packages (numpy 2.4, scipy 1.17, matplotlib 3.11, transformers 5, ...) do not install on older ones." >&2; \
	  if [ "$$py" = "$(BIN)/python" ]; then \
	    echo "      $(VENV) was made with that Python: remove it (rm -rf $(VENV)) and run, e.g.: make PYTHON=python$(PYTHON_MIN)" >&2; \
	  else \
	    echo "      Run make with a newer Python, e.g.: make PYTHON=python$(PYTHON_MIN)  (or python3.12, python3.13)" >&2; fi; \
	  exit 1; }

$(STAMP): pyproject.toml | check-python
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[course]'
	@touch $@

install: $(STAMP)

# The website's browser assets (MathJax, require.js, the Jupyter widgets manager) come from
# the npm registry (package.json + package-lock.json), so the built site works offline;
# book/offline.py copies what the pages use into _build/html/_static/offline/. Without npm
# the book still builds, and its pages load those assets from CDNs (math needs internet).
NODE_STAMP := node_modules/.course-stamp

$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

assets:
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "make: npm (Node.js) was not found, so the website is built without its offline assets:"; \
	  echo "      its pages will load MathJax and the widgets manager from CDNs (math needs internet)."; \
	  echo "      Install Node.js (with npm) and run 'make book' again to serve them from the site."; \
	elif ! $(MAKE) -s --no-print-directory $(NODE_STAMP); then \
	  if [ "$${CI:-}" = true ]; then exit 1; fi; \
	  echo "make: 'npm ci' failed (no network?): building the website without its offline assets."; fi

book: $(STAMP) assets
	$(BIN)/jupyter-book build . --all
	@echo
	@echo "The course is built. Open _build/html/index.html in a browser, or run 'make serve'."

serve:
	@test -f _build/html/index.html || $(MAKE) book
	@echo "Serving the course on http://127.0.0.1:$(PORT)/ (Ctrl-C stops it)"
	$(BIN)/python -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

# JupyterLab at the repository root, so that both the chapters (chapters/) and the exercises
# to fill in (exercises/student/) are in its file browser. LAB_ARGS passes options, e.g.
# make lab LAB_ARGS=--no-browser
LAB_ARGS ?=
lab: $(STAMP)
	@echo "JupyterLab opens at the course's root folder: the chapters are in chapters/,"
	@echo "the exercises to fill in are in exercises/student/. Ctrl-C twice stops it."
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(LAB_ARGS)

lint: $(STAMP) lint-workflows
	$(BIN)/ruff check .

# The GitHub Actions workflows that publish the website: zizmor's security audits (every action
# pinned to a commit SHA, each job only the token permissions it uses, no credentials left in the
# checkout) and GitHub's workflow schema, vendored in check-jsonschema. Both run offline; any
# finding fails. tests/test_workflows.py shows that each catches what it should.
WORKFLOWS := $(wildcard .github/workflows/*.yml .github/workflows/*.yaml)

lint-workflows: $(STAMP)
	$(BIN)/zizmor --offline .github/workflows/
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)

# Two pytest workers (pytest-xdist) for the machine's two cores: one test module stays on one
# worker, so a module's fixtures are built once. UNIT_WORKERS=0 runs serially. The grader's tests
# run apart from the rest: their sandboxes grade two notebooks at once under wall-clock limits
# (10 s a cell in the tests), so they must not share the cores with two busy pytest workers.
# --durations lists the slowest tests in the log: where to look when make test nears its budget.
UNIT_WORKERS ?= 2
GRADER_TESTS := tests/test_grading.py tests/test_gradescope.py

unit: unit-lmlib grader-tests

unit-lmlib: $(STAMP)
	$(BIN)/pytest tests --ignore=tests/test_site.py $(addprefix --ignore=,$(GRADER_TESTS)) --durations=20 \
	  $(if $(filter 0,$(UNIT_WORKERS)),,-n $(UNIT_WORKERS) --dist loadscope)

grader-tests: $(STAMP)
	$(BIN)/pytest $(GRADER_TESTS) --durations=10

# What `make test` runs after the unit tests: the notebooks and, at the same time, the grader's tests.
# The grader's tests mostly wait (sandboxes and kernels starting, hangs running into their limits:
# about 85 CPU-s in 220 s), so beside the notebooks they cost little and save their whole wall time.
# The notebooks run at a lower priority (nice), so a sandboxed honest answer still gets the CPU it
# needs within its limit; nice changes scheduling only, never a result.
nbval-and-grader-tests: $(STAMP)
	@mkdir -p _build && rm -f _build/grader-tests.rc
	@{ $(MAKE) -s --no-print-directory grader-tests > _build/grader-tests.log 2>&1; \
	  echo $$? > _build/grader-tests.rc; } & \
	nice -n 10 $(MAKE) --no-print-directory nbval; nbval=$$?; wait; \
	echo "== the grader's tests (run beside the notebooks)"; cat _build/grader-tests.log; \
	[ $$nbval = 0 ] && [ "$$(cat _build/grader-tests.rc)" = 0 ]

EXERCISE_SOURCES := $(wildcard exercises/*.ipynb)
STUDENT_NOTEBOOKS := $(wildcard exercises/student/*.ipynb)
PLAIN_IPYTHON := _build/ipython-plain-repr

# Chapters and exercise sources: re-executed, outputs compared with the committed ones.
# The chapters run twice: with this CPU's own math kernels, then with MKL_CBWR=COMPATIBLE, which
# sends MKL (torch's BLAS on x86) down its baseline code path. Round-off differs between the two as
# it does between CPUs, so outputs that pass both hold on another machine too.
# The two chapter passes run at once: one pass keeps about 1.2 of the 2 cores busy (kernels start, cells
# wait on Python), so together they take little longer than one. OMP_WAIT_POLICY=PASSIVE makes idle
# OpenMP threads sleep instead of spinning, so the two passes' threads do not steal each other's cores
# (it changes scheduling only, never a result). The native pass is the shorter (MKL's own kernels are
# the fast ones), so the exercises run after it, while the other pass still runs. Each log is printed
# when all are done.
NBVAL_CHAPTERS = OMP_WAIT_POLICY=PASSIVE $(BIN)/pytest --nbval $(NOTEBOOKS) \
  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

nbval: $(STAMP)
	@mkdir -p _build/nbval && rm -f _build/nbval/*.rc
	@start=$$(date +%s); \
	{ rc=0; $(NBVAL_CHAPTERS) > _build/nbval/native.log 2>&1 || rc=$$?; echo $$rc > _build/nbval/native.rc; \
	  rc=0; $(MAKE) -s --no-print-directory nbval-exercises > _build/nbval/exercises.log 2>&1 || rc=$$?; \
	  echo $$rc > _build/nbval/exercises.rc; } & \
	{ rc=0; MKL_CBWR=COMPATIBLE $(NBVAL_CHAPTERS) > _build/nbval/compatible.log 2>&1 || rc=$$?; \
	  echo $$rc > _build/nbval/compatible.rc; } & \
	wait; \
	for pass in native compatible; do \
	  echo "== nbval, chapters, $$pass math kernels$$( [ $$pass = compatible ] && echo ' (MKL_CBWR=COMPATIBLE)')"; \
	  cat _build/nbval/$$pass.log; done; \
	echo "== nbval, exercises (run after the native pass)"; cat _build/nbval/exercises.log; \
	echo "== the chapters' two passes and the exercises took $$(( $$(date +%s) - start )) s"; \
	for log in native compatible exercises; do [ "$$(cat _build/nbval/$$log.rc)" = 0 ]; done

# An exercise source's saved outputs are its tests' expected answers, written as plain repr
# (what otter compares), so its kernel runs with IPython's pretty-printer off.
# Student notebooks have no saved outputs: they must run top to bottom without an error.
nbval-exercises: $(STAMP)
	@mkdir -p $(PLAIN_IPYTHON)/profile_default
	@echo "c.PlainTextFormatter.pprint = False" > $(PLAIN_IPYTHON)/profile_default/ipython_kernel_config.py
	IPYTHONDIR=$(CURDIR)/$(PLAIN_IPYTHON) $(BIN)/pytest --nbval $(EXERCISE_SOURCES) \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider
	$(BIN)/pytest --nbval-lax $(STUDENT_NOTEBOOKS) -p no:cacheprovider
	@rm -f exercises/student/.OTTER_LOG

book-strict: $(STAMP) assets
	$(BIN)/jupyter-book build . --all -W -n --keep-going

# Browser tests of the strictly built site (headless Debian Chromium, network blocked);
# screenshots of every page go to _build/screenshots/. Skipped, loudly, without Chromium,
# except in CI (CI=true), where that fails.
# Two workers, each with its own browser and server: a page's checks mostly wait on the browser.
SITE_TESTS = $(BIN)/pytest tests/test_site.py -p no:cacheprovider $(if $(filter 0,$(UNIT_WORKERS)),,-n $(UNIT_WORKERS))
NO_CHROMIUM_NOTE = command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
  [ -n "$${CHROMIUM:-}" ] || echo "*** make site-test: NO CHROMIUM FOUND, the browser tests of the website were SKIPPED (apt-get install chromium) ***"

site-test: book-strict
	$(SITE_TESTS)
	@$(NO_CHROMIUM_NOTE)

# What `make test` runs last: the site's browser tests and, beside them, the PDF (`make pdf`) and its tests
# (tests/test_pdf.py, required to find the PDF). The PDF's build and print run at a lower priority (nice), so the
# site's tests, which wait on widgets and math within time limits, keep the CPU they need; it costs about a minute
# more than the site's tests alone, against two when run after them.
site-and-pdf-tests: book-strict
	@mkdir -p _build && rm -f _build/pdf-test.rc
	@{ nice -n 10 $(MAKE) -s --no-print-directory pdf-test > _build/pdf-test.log 2>&1; \
	  echo $$? > _build/pdf-test.rc; } & \
	$(SITE_TESTS); site=$$?; wait; $(NO_CHROMIUM_NOTE); \
	echo "== the PDF and its tests (run beside the site's)"; cat _build/pdf-test.log; \
	[ $$site = 0 ] && [ "$$(cat _build/pdf-test.rc)" = 0 ]

pdf-test: pdf
	COURSE_REQUIRE_PDF=1 $(BIN)/pytest tests/test_pdf.py -p no:cacheprovider

# The whole course as one PDF, _build/pdf/course.pdf (book/pdf.py): the book built as one page (Jupyter
# Book's singlehtml builder, with the site's offline MathJax and widget manager) and printed by headless
# Debian Chromium, with a contents list, page numbers and bookmarks. Offline, no LaTeX. It reuses what an
# earlier build of the book parsed (_build/.doctrees), so after `make book` it only writes and prints.
# The next `make book` links the PDF from every page's download menu. tests/test_pdf.py checks it.
pdf: $(STAMP) assets
	$(BIN)/jupyter-book build . --builder singlehtml
	$(BIN)/python book/pdf.py _build/singlehtml _build/pdf/course.pdf

# Side-by-side benchmarks: each benchmarks/*_bench.py writes benchmarks/results/<name>.md,
# which the Benchmarks appendix page shows. Commit the results.
# Retrain every recipe of lmlib.course.recipes (minutes each on a laptop CPU) and rewrite checkpoints/:
# NAME.pt (weights), NAME.pt.sha256, NAME.json (training log). Commit them; chapters load them.
checkpoints: $(STAMP)
	@for recipe in $$($(BIN)/python -c "from lmlib.course.recipes import RECIPES; print(*RECIPES)"); do \
	  echo "== $$recipe"; $(BIN)/python -m lmlib.course.recipes $$recipe || exit 1; done

bench: $(STAMP)
	@shopt -s nullglob; scripts=(benchmarks/*_bench.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "make bench: no benchmarks/*_bench.py yet"; fi; \
	for script in "$${scripts[@]}"; do echo "== $$script"; $(BIN)/python "$$script"; done

test: lint unit-lmlib nbval-and-grader-tests book-strict site-and-pdf-tests
	@echo "make test: all checks passed."

# Re-run every chapter and store its outputs (do this after changing code a chapter calls).
execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.timeout=300 $(NOTEBOOKS)

# Graded exercises (exercises/teachers.md). `make exercises` runs each source in exercises/,
# then `otter assign`s it: student notebooks to exercises/student/ (commit them), autograder
# bundles to _build/exercises/. `make grade` grades a folder of submissions in a sandbox.
.PHONY: exercises grade grade-args autograder
exercises: $(STAMP)
	$(BIN)/python -m grading build

grade: grade-args $(STAMP)
	$(BIN)/python -m grading grade "$(SUBMISSIONS)" "$(OUT)" $(if $(ASSIGNMENT),--assignment "$(ASSIGNMENT)") \
	  $(if $(RESUME),--resume)

grade-args:
	@if [ -z "$(SUBMISSIONS)" ] || [ -z "$(OUT)" ]; then \
	  echo "usage: make grade SUBMISSIONS=<folder of submitted .ipynb files> OUT=<grades.csv> [ASSIGNMENT=<exercise>]" >&2; \
	  echo "       [RESUME=1]" >&2; \
	  echo "       grades every .ipynb in the folder; feedback goes beside the CSV, in <grades>-feedback/" >&2; \
	  echo "       RESUME=1 after an interrupted run: keeps what it graded (<grades>.csv.partial.jsonl)" >&2; \
	  exit 2; fi

# A Gradescope autograder zip that runs this grader (not otter's) for one exercise, written to
# _build/gradescope/EXERCISE.zip; WHEELHOUSE=<folder of wheels> bundles them, so that Gradescope's
# image builds without PyPI (exercises/teachers.md, "Two routes").
autograder: $(STAMP)
	@if [ -z "$(EXERCISE)" ]; then \
	  echo "usage: make autograder EXERCISE=<exercise> [WHEELHOUSE=<folder of wheels>] [OUT=<file.zip>]" >&2; \
	  echo "       [HIDDEN_VISIBILITY=hidden|after_due_date|after_published|visible]" >&2; exit 2; fi
	$(BIN)/python -m grading autograder "$(EXERCISE)" $(if $(WHEELHOUSE),--wheelhouse "$(WHEELHOUSE)") \
	  $(if $(OUT),--out "$(OUT)") $(if $(HIDDEN_VISIBILITY),--hidden-visibility "$(HIDDEN_VISIBILITY)")

clean:
	rm -rf _build
