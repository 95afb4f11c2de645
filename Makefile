# Tenure — the commands a newcomer needs. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Quiet: the project's own build prints nothing; pip still shows warnings and errors.
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check
DATA_DIR ?= var
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test test-tools lint typecheck unit bench install install-runtime \
	install-bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The runtime dependencies only: what `make serve` needs (no test or build tools).
$(VENV)/.runtime-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

# The same virtualenv with the development extras (pytest, Playwright, mypy, ...).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	touch $(VENV)/.runtime-installed $@

install-runtime: $(VENV)/.runtime-installed

install: $(VENV)/.installed

## serve: install the runtime, then run the service on ./var/tenure.db (prints URL and bootstrap key)
serve: install-runtime
	$(BIN)/tenure serve --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

## test: install (the dev extras and, from Debian, the tools the tests drive), then lint,
## type-check and run the whole suite
test: test-tools install lint typecheck unit

## test-tools: Go, Node jose, SoftHSM2, Chromium and a reachable PostgreSQL (installed
## from Debian as root; otherwise one line says what to install)
test-tools:
	@scripts/test-tools

# lint-imports: the layers and the import rules of pyproject.toml ([tool.importlinter]).
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports --no-logo --no-cache

# mypy strict on src and bench; the benchmarks import their peers (eventsourcing,
# PyJWT), so this installs the bench extras.
typecheck: install-bench
	$(BIN)/mypy src bench

# Two workers, a test file each at a time (module fixtures stay in one process): most
# tests wait on fsyncs and subprocesses, so this halves the wall time on 2 cores.
# TENURE_REQUIRE_TOOLS=1: a test whose tool is missing fails instead of skipping.
TEST_WORKERS ?= 2
unit: test-tools install
	TENURE_REQUIRE_TOOLS=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PIP) install -e '.[dev,bench]'
	touch $@

install-bench: $(VENV)/.bench-installed

## bench: run the benchmarks; figures print next to a limit measured in the same run
bench: install-bench
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
