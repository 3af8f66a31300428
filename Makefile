# billy: two commands for a new user.
#   make demo   set everything up (venv, Kafka, PostgreSQL) and run billy with a short demo
#   make test   set everything up and run the whole test suite (unit, integration, fault smoke)
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
BILLY := $(VENV)/bin/billy

.PHONY: help venv demo test test-unit bench fault-long fuzz-long run check nightly

help:
	@echo "make demo   - set up everything and run billy's demo"
	@echo "make test   - set up everything and run all tests"
	@echo "make up | down | status - the local Kafka + PostgreSQL stack"
	@echo "make run    - billy with every role in one process (after make up)"
	@echo "make check  - the check gate: lint, format, types, layer rules, shellcheck"
	@echo "make bench  - benchmarks (on demand; prints figures)"

venv: $(VENV)/.installed $(VENV)/.compiled

# Reinstalled when pyproject.toml changes; `pip install -e` keeps the code live.
# `server`: billy's own dependencies (the base install is only the producer SDK's).
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "billy needs $(PYTHON) (Python >= 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[server,dev]'
	touch $@

# The ledger's hot path compiled with mypyc (billy_core/compiled.py names the modules), rebuilt
# when one of them changes: an extension runs instead of its source. BILLY_COMPILE=0 removes
# the build and runs the sources as they are (same behaviour, slower).
BILLY_COMPILE ?= 1
COMPILED_SOURCES := $(shell sed -n 's/^    "\([a-z_/]*\.py\)",$$/\1/p' billy_core/compiled.py)

$(VENV)/.compiled: $(VENV)/.installed billy_core/compiled.py $(COMPILED_SOURCES) $(VENV)/.compile-$(BILLY_COMPILE)
	@if [ "$(BILLY_COMPILE)" = 0 ]; then $(VENV)/bin/python -m billy_core.compiled clean >/dev/null; \
	elif ! command -v cc >/dev/null; then $(VENV)/bin/python -m billy_core.compiled clean >/dev/null; \
	echo "no C compiler (apt-get install gcc): the hot path runs interpreted"; \
	else echo "compiling the hot path (mypyc, ~40 s; build/compile.log)"; mkdir -p build; \
	$(VENV)/bin/python -m billy_core.compiled build >build/compile.log 2>&1 \
	|| { cat build/compile.log; exit 1; }; fi
	touch $@

# Which way the last build went: switching BILLY_COMPILE rebuilds (or cleans).
$(VENV)/.compile-%: $(VENV)/.installed
	@rm -f $(VENV)/.compile-*
	touch $@

demo: venv up
	$(BILLY) --log-level WARNING demo

run: venv up
	$(BILLY) run

test: venv up
	$(VENV)/bin/pytest -q

test-unit: venv
	$(VENV)/bin/pytest -q tests/unit

# The check gate: nothing lands unless it is green (.ci/run runs it before the tests).
SHELL_SCRIPTS := deploy/stack.sh .ci/run bench/compare.sh bench/pgledger.sh bench/broker_gc.sh

check: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	@command -v shellcheck >/dev/null || { echo "make check needs shellcheck (apt-get install shellcheck)"; exit 1; }
	shellcheck $(SHELL_SCRIPTS)

# Deeper property tests (hypothesis profile "deep"), for a nightly run.
nightly: venv
	BILLY_HYPOTHESIS_PROFILE=deep $(VENV)/bin/pytest -q tests/unit

bench: venv up
	$(VENV)/bin/python -m bench.run

fault-long: venv up
	BILLY_FAULT_PROFILE=long $(VENV)/bin/pytest -q --timeout 1800 tests/fault

# The fuzz tier's long profile (>= 10,000 bad records; the short one runs in `make test`).
fuzz-long: venv up
	BILLY_FUZZ_PROFILE=long $(VENV)/bin/pytest -q -s tests/fuzz

# ---- local stack: Kafka + PostgreSQL on 127.0.0.1 (deploy/stack.sh, deploy/README.md) ----
STACK := deploy/stack.sh

.PHONY: up down status

up:
	@bash $(STACK) up

down:
	@bash $(STACK) down

status:
	@bash $(STACK) status
# ---- end local stack ----
