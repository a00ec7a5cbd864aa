# Sentinel Training: the two commands.  `make demo` and `make test` set everything up.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Tests run on 2 cores in CI: keep torch from oversubscribing them.
export OMP_NUM_THREADS ?= 2

.PHONY: demo test lint format bench stack clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@command -v kubectl >/dev/null || { command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl; } || \
		echo 'kubectl missing (tests/deploy run kubectl kustomize): apt-get install kubectl' >&2
	@touch $(STAMP)

demo: $(STAMP)  ## Embedded stack + the main job, end to end
	$(PY) -m workers.dev --demo

stack: $(STAMP)  ## Embedded stack only (Temporal + UI, S3, workers) until Ctrl-C
	$(PY) -m workers.dev

test: $(STAMP) lint  ## Lint, then the whole suite against the real servers
	$(PY) -m pytest -q

lint: $(STAMP)  ## Style, the house rules (.importlinter) and types
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)  ## Benchmarks (not tests): prints ratios measured side by side
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .state .pytest_cache .ruff_cache .mypy_cache
