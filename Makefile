# importer: developer commands. `make` (or `make help`) lists them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SIZE ?= 10000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install test test-resilience lint format demo bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "importer needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with dev extras

test: $(STAMP) ## run the test suite (quick resilience subset included)
	$(BIN)/python -m pytest -q -m "not resilience or quick" $(PYTEST_ARGS)

test-resilience: $(STAMP) ## run the full resilience suite (tests/resilience)
	$(BIN)/python -m pytest -q tests/resilience $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check, ruff format --check, mypy --strict on importer/
	$(BIN)/ruff check importer tests bench
	$(BIN)/ruff format --check importer tests bench
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatter and autofixes
	$(BIN)/ruff check --fix importer tests bench
	$(BIN)/ruff format importer tests bench

demo: $(STAMP) ## run the main job end to end on the built-in sandbox
	$(BIN)/importer demo

bench: $(STAMP) ## measure request cost, time and memory (SIZE=1000|10000|100000|all)
	$(BIN)/python bench/run.py --size $(SIZE)

clean: ## remove the virtualenv, caches and generated files
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov *.egg-info build dist bench/out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
