# Every target creates the virtual environments it needs, so a fresh clone needs only `make demo`
# or `make test`. Override PYTHON to use another interpreter (3.11 or newer).
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
BIN := $(VENV)/bin
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0

.PHONY: demo dev test fuzz lint typecheck unit validate build bench clean

$(BIN)/.installed: requirements-dev.txt layers/bridge/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# SAM CLI pins its own boto3, so it lives in a virtual environment of its own.
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	@touch $@

## The demo: webhook -> Bugpilot capture -> internal note, on built-in simulators.
demo: $(BIN)/.installed
	$(BIN)/python -m local_runner demo

## The local runner against real accounts configured in .env (see README).
dev: $(BIN)/.installed
	$(BIN)/python -m local_runner serve

## The whole suite: lint, types, template checks, unit and integration tests with coverage.
test: lint typecheck $(SAM_VENV)/.installed
	SAM_CLI=$(SAM) $(BIN)/pytest --cov --cov-branch --cov-report=term

## The property-based tests with many more examples than `make test` runs (several minutes).
fuzz: $(BIN)/.installed
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -m property

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit

validate: $(SAM_VENV)/.installed
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(SAM) validate --lint

## Builds for Lambda (arm64, python3.13): needs python3.13 on PATH.
build: $(SAM_VENV)/.installed
	$(SAM) build

## Cold-start import cost of each handler, as a ratio to `import boto3, requests`.
bench: $(BIN)/.installed
	$(BIN)/python bench/import_cost.py

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage
