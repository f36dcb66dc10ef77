# Two commands on a fresh machine (Python 3.11): `make pipeline` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup pipeline test lint lock bench clean

setup: $(STAMP)

# Reinstall only when the lock file or the project metadata changed.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --requirement requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	@touch $@

pipeline: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

# Re-resolve every dependency (all extras) in a scratch venv and pin the exact versions.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip==26.3
	.lock-venv/bin/python -m pip install --quiet ".[pipeline,dev]"
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^trino-query-predictor' > requirements.lock
	rm -rf .lock-venv

bench: setup
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
