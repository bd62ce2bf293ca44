# The Cello chat workshop. `make help` lists every target.
#
# Targets that take a step number accept it both ways: `make step 4` and `make step N=4`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
# Written once the pinned requirements are installed; a newer requirements.txt reinstalls them.
INSTALLED := $(VENV)/.installed

# The first Python 3.12+ found (python3 first: pyenv's .python-version points it at 3.12).
PYTHON ?= $(shell for candidate in python3 python3.13 python3.12 python; do \
	$$candidate -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo $$candidate; break; }; \
	done)

# `make step 4`: the word after a numbered target is its argument, so make must not treat it as a target.
NUMBERED_TARGETS := step solution check hint reset solve diff watch
ifneq ($(filter $(firstword $(MAKECMDGOALS)),$(NUMBERED_TARGETS)),)
  ifneq ($(word 2,$(MAKECMDGOALS)),)
    N ?= $(word 2,$(MAKECMDGOALS))
    $(eval $(word 2,$(MAKECMDGOALS)):;@:)
  endif
endif

# Fails with one clear line unless N is a step number.
need-step = @case "$(N)" in [1-7]) ;; *) echo "make $@ needs a step number from 1 to 7, e.g. make $@ 4 (got '$(N)')" >&2; exit 2;; esac

.PHONY: help setup step solution check test

help: ## list every target
	@echo "Cello chat workshop. Targets (N is a step number, 1 to 7):"
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (\[N\] )?(.*)/\1\t\2\t\3/' | \
		awk -F'\t' '{ printf "  make %-18s %s\n", $$1 ($$2 != "" ? " N" : ""), $$3 }'

setup: $(INSTALLED) ## create .venv with Python 3.12+ and install the pinned dependencies

$(INSTALLED): requirements.txt
	@if [ -z "$(PYTHON)" ]; then \
		echo "No Python 3.12 or newer found: install one (python.org, your package manager, pyenv or uv), then run make setup PYTHON=/path/to/python3.12" >&2; \
		exit 1; fi
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
		echo "Replacing .venv: it was made with Python $$($(PY) -c 'import platform; print(platform.python_version())')"; \
		rm -rf $(VENV); fi
	@test -x $(PY) || { echo "Creating .venv with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo "Installing the pinned dependencies (requirements.txt)..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

step: $(INSTALLED) ## [N] run your steps/stepN at http://127.0.0.1:8000 (PORT=, HOST= change it; Ctrl-C stops it)
	$(need-step)
	@$(PY) -m workshop.serve steps/step$(N) --host $(HOST) --port $(PORT)

solution: $(INSTALLED) ## [N] run the finished solutions/stepN the same way
	$(need-step)
	@$(PY) -m workshop.serve solutions/step$(N) --host $(HOST) --port $(PORT)

check: $(INSTALLED) ## [N] self-grade your step N (same as pytest steps/stepN)
	$(need-step)
	@$(PY) -m pytest steps/step$(N)

test: $(INSTALLED) ## run the repository's whole test suite (what CI runs)
	@# The checks start `make step N` themselves: they must not inherit this make's jobserver and level.
	@env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(PY) -m pytest tests

.PHONY: docs docs-build
docs: $(INSTALLED) ## serve the guide at http://127.0.0.1:8001 (live reload; Ctrl-C stops it)
	@NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

docs-build: $(INSTALLED) ## build the guide into site/ with every warning an error (as make test does)
	@NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# Learner tools: workshop/progress.py, hints.py (texts in hints.toml), restore.py, diff.py, doctor.py, watch.py.
.PHONY: progress hint reset solve diff doctor watch
progress: $(INSTALLED) ## the seven steps: which pass, how many checks, and the next step to do (FRESH=1 reruns all)
	@$(PY) -m workshop.progress $(if $(FRESH),--fresh)

hint: $(INSTALLED) ## [N] a hint for step N, one more each time (AGAIN=1 starts over)
	$(need-step)
	@$(PY) -m workshop.hints $(N) $(if $(AGAIN),--again)

reset: $(INSTALLED) ## [N] put steps/stepN back to its starter (your version is saved in .backups/ first)
	$(need-step)
	@$(PY) -m workshop.restore reset $(N)

solve: $(INSTALLED) ## [N] put the finished step into steps/stepN (your version is saved in .backups/ first)
	$(need-step)
	@$(PY) -m workshop.restore solve $(N)

diff: $(INSTALLED) ## [N] your steps/stepN against the finished solutions/stepN
	$(need-step)
	@$(PY) -m workshop.diff $(N)

# No $(INSTALLED) here: the doctor must also run, and say why, when the set-up itself fails.
doctor: ## check this machine: Python, .venv, pins, ports 8000 and 8001, browser (PORT= checks another chat port)
	@$(or $(wildcard $(PY)),$(PYTHON),python3) -m workshop.doctor --port $(PORT)

watch: $(INSTALLED) ## [N] rerun step N's checks each time you save a file in steps/stepN (Ctrl-C stops)
	$(need-step)
	@$(PY) -m workshop.watch $(N)

# Instructor tools: workshop/demo.py, workshop/bots.py and bench/ (its results: docs/performance.md).
.PHONY: demo bots bench
demo: $(INSTALLED) ## the finished chat for a room: all interfaces, prints the addresses to open and who is in (PORT=)
	@$(PY) -m workshop.demo --port $(PORT)

bots: $(INSTALLED) ## N simulated participants (N=30 unless said) join the chat on PORT and talk at a human pace
	@$(PY) -m workshop.bots --count $(or $(N),30) --url http://127.0.0.1:$(PORT)

bench: $(INSTALLED) ## N participants (N=1000 unless said) on the finished chat and a reference server, in one run
	@$(PY) bench/run.py --participants $(or $(N),1000)
