# Tenure — the commands a newcomer needs. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= var
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test lint typecheck unit bench install install-bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## serve: install, then run the service on ./var/tenure.db (prints URL and bootstrap key)
serve: install
	$(BIN)/tenure serve --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

## test: install, then lint, type-check and run the whole suite
test: install lint typecheck unit

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy src

# Two workers, a test file each at a time (module fixtures stay in one process): most
# tests wait on fsyncs and subprocesses, so this halves the wall time on 2 cores.
TEST_WORKERS ?= 2
unit: install
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

install-bench: $(VENV)/.bench-installed

## bench: run the benchmarks; figures print next to a limit measured in the same run
bench: install-bench
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
