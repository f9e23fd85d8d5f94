# The two commands of the README:
#   make quickstart   set up .venv and run the quickstart experiment on the embedded defaults
#   make test         set up .venv, start the local test services (SLURM, PostgreSQL) and run the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup quickstart test test-fast services services-down lint clean-runs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

quickstart: setup
	DVC_NO_ANALYTICS=1 $(BIN)/vjepa-exp run experiments/quickstart.yaml

services:
	@bash .ci/services-up.sh || echo "test services not started: SLURM and PostgreSQL tests will skip (CI fails them)"

services-down:
	-@bash .ci/services-down.sh

# pytest exits 5 when it collects no test; that is not a failure of the code under test.
test: setup services
	$(BIN)/pytest; rc=$$?; [ $$rc -eq 5 ] && echo "no tests collected" && rc=0; exit $$rc

test-fast: setup
	$(BIN)/pytest -m "not slurm and not postgres and not slow"; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean-runs:
	rm -rf runs .vjepa/logs
