# The Cello chat workshop. `make help` lists every target.
#
# Every target is an alias of `python -m workshop ...` (workshop/cli.py), which also works
# without make (Windows: `py -m workshop step 4`). A step or chapter goes after the target,
# both ways: `make step 4`, `make step room`, `make step N=4`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

# The first Python 3.12+ found (python3 first: pyenv's .python-version points it at 3.12);
# `python -m workshop` itself says what to install when there is none.
PYTHON ?= $(shell for candidate in python3 python3.13 python3.12 python; do \
	$$candidate -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && \
	{ echo $$candidate; break; }; done)
# .venv's Python once it exists (the command checks its pins), else the one found above.
VENV_PYTHON := $(wildcard .venv/bin/python)
WORKSHOP := $(or $(VENV_PYTHON),$(PYTHON),python3) -m workshop

# The steps and chapters, as workshop/course.toml lists them (the one list): for `make help`.
STEP_KEYS := $(shell sed -n 's/^key = "\(.*\)"/\1/p' workshop/course.toml)

# `make step 4`: the word after a target that takes a step is its argument, not a target.
STEP_TARGETS := step solution check hint reset solve diff watch demo plan
ifneq ($(filter $(firstword $(MAKECMDGOALS)),$(STEP_TARGETS)),)
  ifneq ($(word 2,$(MAKECMDGOALS)),)
    N ?= $(word 2,$(MAKECMDGOALS))
    $(eval $(word 2,$(MAKECMDGOALS)):;@:)
  endif
endif
# A missing step is reported by the command itself, with the list of steps.
STEP_ARG = $(or $(N),$(STEP),missing-step)

.PHONY: help setup step solution check test docs docs-build progress hint reset solve \
	diff doctor watch demo bots bench lint dashboard share plan

help: ## list every target
	@echo "Cello chat workshop. Targets (N: a step or chapter: $(STEP_KEYS)):"
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | \
		sed -E 's/^([a-z-]+):.*## (\[N\] )?(.*)/\1\t\2\t\3/' | \
		awk -F'\t' '{ printf "  make %-18s %s\n", $$1 ($$2 != "" ? " N" : ""), $$3 }'
	@echo "Without make: python -m workshop --help (Windows: py -m workshop --help)."

setup: ## create .venv with Python 3.12+ and install the pinned packages
	@$(WORKSHOP) setup

step: ## [N] run your steps/N at http://127.0.0.1:8000 (PORT=, HOST= change it)
	@$(WORKSHOP) step $(STEP_ARG)

solution: ## [N] run the finished solutions/N the same way
	@$(WORKSHOP) solution $(STEP_ARG)

check: ## [N] self-grade your step N (same as pytest steps/N)
	@$(WORKSHOP) check $(STEP_ARG)

test: ## run the repository's whole test suite (what CI runs)
	@$(WORKSHOP) test

docs: ## serve the guide at http://127.0.0.1:8001 (live reload; Ctrl-C stops it)
	@$(WORKSHOP) docs

docs-build: ## build the guide into site/, every warning an error (as make test does)
	@$(WORKSHOP) docs --build

progress: ## every step: which pass, how many checks, what is next (FRESH=1 reruns all)
	@$(WORKSHOP) progress $(if $(FRESH),--fresh)

hint: ## [N] a hint for step N, one more each time (AGAIN=1 starts over, ALL=1 all seen)
	@$(WORKSHOP) hint $(STEP_ARG) $(if $(AGAIN),--again) $(if $(ALL),--all)

reset: ## [N] put steps/N back to its starter (yours is saved in .backups/ first)
	@$(WORKSHOP) reset $(STEP_ARG)

solve: ## [N] put the finished step into steps/N (yours is saved in .backups/ first)
	@$(WORKSHOP) solve $(STEP_ARG)

diff: ## [N] your steps/N against the finished solutions/N
	@$(WORKSHOP) diff $(STEP_ARG)

doctor: ## check this machine: Python, .venv, pins, ports, browser (PORT= another port)
	@$(WORKSHOP) doctor

watch: ## [N] rerun step N's checks each time you save a file in it (Ctrl-C stops)
	@$(WORKSHOP) watch $(STEP_ARG)

demo: ## [N] serve a checkpoint (the finished chat unless N) to the room, on all interfaces
	@$(WORKSHOP) demo $(if $(N)$(STEP),$(STEP_ARG))

bots: ## N simulated participants (N=30 unless said) join the chat on PORT and talk
	@$(WORKSHOP) bots --count $(or $(N),30) --url http://127.0.0.1:$(PORT)

bench: ## N participants (N=1000 unless said) on the finished chat and a reference server (PROCESSES=2, HISTORY=1)
	@$(WORKSHOP) bench --participants $(or $(N),1000)$(if $(HISTORY), --history)$(if $(PROCESSES), --processes $(PROCESSES))

lint: ## for maintainers: ruff check, ruff format --check and mypy, as CI runs them
	@$(WORKSHOP) lint

# The instructor's cockpit (workshop/cockpit/) and the learners' opt-in sharing (workshop/share.py).
dashboard: ## the instructor's cockpit: projector view and the class's progress, live
	@$(WORKSHOP) dashboard

# HOST here is the instructor's address, given on the command line: not this Makefile's
# default, nor the HOST it exports to the commands it runs.
share: ## share your check results with the instructor (HOST=their address NAME=you; OFF=1)
	@$(WORKSHOP) share $(if $(filter command line,$(origin HOST)),--host "$(HOST)") \
		$(if $(NAME),--name "$(NAME)") $(if $(OFF),--off)

plan: ## [N] the timed plan of a session of N minutes (90 unless said; 180 too)
	@$(WORKSHOP) plan $(or $(N),90)
