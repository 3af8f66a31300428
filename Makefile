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

venv: $(VENV)/.installed

# Reinstalled when pyproject.toml changes; `pip install -e` keeps the code live.
# `server`: billy's own dependencies (the base install is only the producer SDK's).
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "billy needs $(PYTHON) (Python >= 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[server,dev]'
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
