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
export PYTHONHASHSEED := 0
# Reference tools print their own download hints; keep them quiet and local.
export NLTK_DATA := $(CURDIR)/.venv/nltk_data

NOTEBOOKS := $(wildcard chapters/*.ipynb)

.PHONY: install book serve lab test lint unit nbval book-strict execute clean
.DEFAULT_GOAL := book

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[course]'
	@touch $@

install: $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --all
	@echo
	@echo "The course is built. Open _build/html/index.html in a browser, or run 'make serve'."

serve:
	@test -f _build/html/index.html || $(MAKE) book
	@echo "Serving the course on http://127.0.0.1:$(PORT)/ (Ctrl-C stops it)"
	$(BIN)/python -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

lab: $(STAMP)
	$(BIN)/jupyter lab chapters

lint: $(STAMP)
	$(BIN)/ruff check lmlib tests benchmarks

unit: $(STAMP)
	$(BIN)/pytest tests

nbval: $(STAMP)
	$(BIN)/pytest --nbval $(NOTEBOOKS) --sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

book-strict: $(STAMP)
	$(BIN)/jupyter-book build . --all -W -n --keep-going

test: lint unit nbval book-strict
	@echo "make test: all checks passed."

# Re-run every chapter and store its outputs (do this after changing code a chapter calls).
execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.timeout=300 $(NOTEBOOKS)

clean:
	rm -rf _build
