# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install system-deps run test test-fast lint bench data lock clean-artifacts help

help:
	@echo "make run    set up .venv, regenerate data/ if missing, run the whole pipeline"
	@echo "make test   set up .venv and run the test suite (slow tests included)"
	@echo "make test-fast   the suite without tests marked slow"
	@echo "make lint   ruff"
	@echo "make bench  the benchmarks in bench/ (tables + JSON under bench/results/)"
	@echo "make lock   regenerate dvc.yaml and dvc.lock (after changing code or params)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Headless Chromium renders the audit HTML report in its test; installed from Debian's
# packages when missing and apt is usable (the test skips with a reason otherwise).
system-deps:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
		{ [ "$$(id -u)" = 0 ] && (apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || true; }

data: install
	$(BIN)/scenellm data ensure

run: install
	$(BIN)/scenellm run

# pytest-xdist spreads the tests over the machine's cores (at most TEST_WORKERS; every test
# keeps to one torch thread, see tests/conftest.py); TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n auto --maxprocesses $(TEST_WORKERS))

test: install system-deps
	$(PYTEST)

test-fast: install
	$(PYTEST) -m "not slow"

lint: install
	$(BIN)/ruff check src flows tests bench

bench: install
	@mkdir -p bench/results
	@for script in bench/bench_*.py; do \
		echo "== $$script"; \
		$(BIN)/python $$script --json bench/results/$$(basename $$script .py).json || exit 1; \
	done

# dvc.yaml from the stage declarations, then dvc.lock from a `dvc repro` that reuses the
# fingerprinted stage store (tests/stages/test_dvc.py checks both against the tree).
lock: install
	$(BIN)/scenellm dvc yaml
	$(BIN)/scenellm data ensure
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

clean-artifacts:
	rm -rf .scenellm
