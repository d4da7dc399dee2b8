# Every target creates the virtual environments it needs, so a fresh clone needs only `make demo`
# or `make test`. Override PYTHON to use another interpreter (3.11 or newer).
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
BIN := $(VENV)/bin
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

# Which deployed stack `deploy`, `secret`, `doctor` and `redrive` work on: ENV=default|staging|prod.
# The names are samconfig.toml's stack_name of each config env (tests/ops keeps them equal).
ENV ?= default
# The helpdesk `make demo` runs with (any of local_runner.simulators.HELPDESK_SIMULATORS).
HELPDESK ?= zendesk
STACK_default := capture-bridge
STACK_staging := capture-bridge-staging
STACK_prod := capture-bridge-prod
STACK = $(or $(STACK_$(ENV)),$(error unknown ENV=$(ENV); use default, staging or prod))
# The region of every target: REGION=…, else AWS_REGION, else AWS_DEFAULT_REGION; empty means the
# region of your AWS profile. It is passed on as --region because SAM CLI and its botocore read
# AWS_DEFAULT_REGION only. samconfig.toml names no region (see there).
REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION))
REGION_ARG = $(if $(REGION),--region $(REGION))
OPS := $(BIN)/python -m ops
STACK_ARGS = --stack $(STACK) $(REGION_ARG)

# An empty requirements.txt per function would only trade this warning for another one
# ("Skipping copy operation ...") on every cached build, so it is explained instead.
BUILD_NOTE := note: sam build warns 'requirements.txt file not found' once per function: \
	expected, their dependencies are the layer's (layers/bridge/requirements.txt).

.PHONY: help demo panel dev local-env test fuzz lint typecheck checkov chromium unit validate build deploy preflight \
	secret doctor redrive app bench cost clean

## Lists the targets with what each one does.
help:
	@awk '/^## /{text=substr($$0, 4); next} \
		/^[a-z][a-z-]*:/{if (text != "") printf "  make %-10s %s\n", substr($$1, 1, length($$1) - 1), text} \
		{text=""}' $(firstword $(MAKEFILE_LIST))

# The pinned requirements, then the project itself for its `capture-bridge` command: editable, and
# --no-deps because its dependencies are those pinned requirements.
$(BIN)/.installed: requirements-dev.txt layers/bridge/requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

# SAM CLI pins its own boto3, so it lives in a virtual environment of its own.
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	@touch $@

# Checkov pins dependencies that conflict with ours and SAM CLI's, so it too has its own
# virtual environment; requirements-checkov.txt pins its version.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

## The demo: webhook -> capture -> internal note, on built-in simulators (HELPDESK=zendesk|...).
demo: $(BIN)/.installed
	$(BIN)/python -m local_runner demo --helpdesk $(HELPDESK)

## The Zendesk sidebar app on the demo's simulators, no account needed (until Ctrl-C).
panel: $(BIN)/.installed
	$(BIN)/python -m local_runner panel

## The local runner against real accounts configured in .env (see README).
dev: $(BIN)/.installed
	$(BIN)/python -m local_runner serve

## env.json for `sam local invoke` from .env, and its table in DynamoDB Local (see docs/local.md).
local-env: $(BIN)/.installed
	$(BIN)/python -m local_runner sam-env $(if $(ENDPOINT),--endpoint $(ENDPOINT))

## The whole suite: lint, types, Checkov, template checks, unit, integration and browser tests.
test: lint typecheck checkov chromium $(SAM_VENV)/.installed
	SAM_CLI=$(SAM) CHECKOV=$(CHECKOV) $(BIN)/pytest --cov --cov-branch --cov-report=term

# Debian's Chromium (no browser download); where it cannot be installed, the suite says so.
## Chromium for the browser suite (tests/browser), from Debian's packages.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo -n"; \
	  { command -v apt-get >/dev/null 2>&1 && $$sudo apt-get update -qq && \
	    $$sudo apt-get install -y -qq chromium; } || \
	  echo "note: chromium could not be installed; the browser suite will be skipped"; }

## The property-based tests with many more examples than `make test` runs (several minutes).
fuzz: $(BIN)/.installed
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -m property

## ruff lint and format check.
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## mypy (strict).
typecheck: $(BIN)/.installed
	$(BIN)/mypy

## Checkov on template.yaml: fails on any failing check not waived in the template with a reason.
checkov: $(CHECKOV_VENV)/.installed
	$(CHECKOV) --file template.yaml --framework cloudformation --skip-download --compact --quiet

## The unit tests alone.
unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit

## `sam validate --lint` on template.yaml.
validate: $(SAM_VENV)/.installed
	AWS_DEFAULT_REGION=$(or $(REGION),us-east-1) $(SAM) validate --lint

## Builds for Lambda (arm64, python3.13): needs python3.13 on PATH (checked first).
build: $(BIN)/.installed $(SAM_VENV)/.installed
	@$(OPS) preflight --build
	@echo "$(BUILD_NOTE)"
	$(SAM) build

## Checks what a deploy needs (python3.13, AWS credentials and region, samconfig.toml), offline.
preflight: $(BIN)/.installed
	$(OPS) preflight --env $(ENV) $(REGION_ARG)

## Deploys the stack of ENV (default, staging, prod; see samconfig.toml): sam build, sam deploy.
deploy: $(BIN)/.installed $(SAM_VENV)/.installed
	$(OPS) preflight --env $(ENV) $(REGION_ARG)
	@echo "$(BUILD_NOTE)"
	$(SAM) build
	$(SAM) deploy --config-env $(ENV) $(REGION_ARG)

## Sets credentials in the stack's secret, keeping the other keys (asks for each, hidden).
secret: $(BIN)/.installed
	$(OPS) secret $(STACK_ARGS)

## Checks the deployed stack: status, settings, secret keys, a read-only call per integration.
doctor: $(BIN)/.installed
	$(OPS) doctor $(STACK_ARGS)

## Lists the resolver's dead letters, runs it once, and deletes them if that run succeeds.
redrive: $(BIN)/.installed
	$(OPS) redrive $(STACK_ARGS)

## The Zendesk sidebar app's zip in dist/ for API_URL=… (else the ENV stack's SessionsApiUrl).
app: $(BIN)/.installed
	$(OPS) app $(if $(API_URL),--api-url $(API_URL),$(STACK_ARGS))

# matplotlib for `make bench`'s plots, in .venv only (never in the Lambda layer).
$(BIN)/.bench-installed: bench/requirements.txt $(BIN)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $@

## Every figure of issue 26 §4 (under 10 minutes): bench/results.md and the plots in bench/plots/.
bench: $(BIN)/.bench-installed
	$(BIN)/python bench/run.py

## What 10,000 captures a month cost in AWS, from calls and log bytes measured end to end.
cost: $(BIN)/.installed
	$(BIN)/python bench/capture_cost.py

## Removes the virtual environments and build output.
clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage
