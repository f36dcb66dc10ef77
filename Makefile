# Two commands on a fresh machine (Python 3.11): `make pipeline` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup pipeline test lint fire-rates lock bench bench-pipeline bench-featurize bench-predict bench-service bench-scale bench-oracle spark-package clean plot-assets check-plots

# A foreign SQL corpus for the tests (tests/foreign_log.py): the sdist of the sqlglot version
# pinned in requirements.lock (its wheel has no tests/fixtures), checked against this sha256.
SQLGLOT_VERSION := $(shell sed -n 's/^sqlglot==//p' requirements.lock 2>/dev/null)
SQLGLOT_SDIST_SHA256 := b8e344042c85d7baa1d0d827127dfe1611ce9ac59bceab6fe370665baeb14ce7
CORPUS := .cache/corpus/sqlglot-$(SQLGLOT_VERSION).tar.gz

setup: $(STAMP)

# Reinstall only when the lock file, the project metadata or the compiled featurizer core
# (Cython, built by `pip install -e .`) changed.
$(STAMP): requirements.lock pyproject.toml setup.py query_predictor/core/_textscan.pyx
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --requirement requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	@touch $@

$(CORPUS): requirements.lock | $(STAMP)
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: --dest $(@D) \
		sqlglot==$(SQLGLOT_VERSION)
	@echo "$(SQLGLOT_SDIST_SHA256)  $@" | sha256sum --check --quiet \
		|| { echo "$@: sha256 differs from SQLGLOT_SDIST_SHA256 in the Makefile"; rm -f $@; exit 1; }
	@touch $@

# The params check, the last stages and what they need: `generate` runs only while
# data_loading.raw_path is its output (data/raw), so a pipeline over your own log never
# generates one.
PIPELINE_TARGETS := check_params evaluate replay

pipeline: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro $(PIPELINE_TARGETS)

# Two pytest-xdist workers (one per core here); the tests on the e2e first run share one.
TEST_WORKERS ?= 2
test: setup $(CORPUS)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: setup
	$(BIN)/ruff check .

# Each base feature's fire rate on the synthetic log (data/raw after `make pipeline`, else one
# generated at 2,000 queries a day) beside the foreign log of tests/foreign_log.py, into
# docs/feature_fire_rates.json and docs/features.md.
FOREIGN_LOG := .cache/foreign-log
fire-rates: setup $(CORPUS)
	$(BIN)/python -m tests.foreign_log --out $(FOREIGN_LOG)
	$(BIN)/python scripts/fire_rates.py --foreign $(FOREIGN_LOG) $(if $(wildcard data/raw),--synthetic data/raw)

# Re-resolve every dependency (all extras) in a scratch venv and pin the exact versions.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip==26.3
	.lock-venv/bin/python -m pip install --quiet ".[pipeline,spark,dev]"
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^trino-query-predictor' > requirements.lock
	rm -rf .lock-venv

# Vega builds for viewing and checking `dvc plots` pages offline (npm registry, pinned lock).
plot-assets: scripts/plots/node_modules/.package-lock.json

scripts/plots/node_modules/.package-lock.json: scripts/plots/package-lock.json
	cd scripts/plots && npm ci --no-audit --no-fund --ignore-scripts --silent

# Render `dvc plots show` and check in headless Chromium that every plot drew.
check-plots: setup plot-assets
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/check_plots.py --screenshot plots-html/plots.png

# Stage times and memory (scratch copy), then, on this workspace's pipeline outputs (run
# `make pipeline` first), the featurizer, one prediction in process, and the HTTP service.
bench: bench-pipeline bench-featurize bench-predict bench-service bench-scale bench-oracle

bench-pipeline: setup
	$(BIN)/python benchmarks/pipeline.py

# load, zero_cost, split, featurize with polars and Spark (local mode) at 1x and 10x the
# default log: long (10x is about 11.5 M raw queries and an hour of CPU to generate);
# SCALES="--scale 1 --scale 3" for less.
# SCALE_WORK=/some/dir keeps the generated logs there and reuses them on the next run.
SCALES ?= --scale 1 --scale 10
bench-scale: setup
	$(BIN)/python benchmarks/scale.py $(SCALES) $(if $(SCALE_WORK),--work $(SCALE_WORK))

# The share of test rows a router that knew the generator's latents must route to catch 98 %
# of the heavy ones (data/raw, splits and features of `make pipeline`; a few minutes, one core).
# e.g. make bench-oracle BENCH_ARGS="--draws 128 --out oracle.json"
bench-oracle: setup
	$(BIN)/python benchmarks/oracle_bound.py $(BENCH_ARGS)

# e.g. make bench-service BENCH_ARGS="--rates 500,1000 --workers 2"
bench-featurize bench-predict bench-service: bench-%: setup
	$(BIN)/python benchmarks/$*.py $(BENCH_ARGS)

# What a Spark cluster needs (docs/spark.md): the package wheel with its compiled featurizer,
# and a packed environment for spark.archives (the lock's packages plus that wheel).
spark-package: setup
	rm -rf dist && mkdir -p dist
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .
	$(PYTHON) -m venv dist/env
	dist/env/bin/python -m pip install --quiet --upgrade pip==26.3
	dist/env/bin/python -m pip install --quiet --requirement requirements.lock
	dist/env/bin/python -m pip install --quiet --no-deps dist/*.whl
	$(BIN)/venv-pack --prefix dist/env --output dist/query-predictor-env.tar.gz --force
	rm -rf dist/env
	@ls -l dist

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dist
