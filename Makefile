# crypto-checkout — every target installs what it needs first; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
PYTEST      := $(VENV)/bin/pytest
STAMP       := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install infra up down status sim workers test test-unit test-component \
        test-integration test-fuzz test-browser test-faults lint typecheck bench clean-state \
        promtool backup

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml scripts/install.sh
	@bash scripts/install.sh
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its test tools

infra: install ## Start Kafka, PostgreSQL and Redis on loopback (reuses running ones)
	@bash scripts/infra.sh up all

up: infra ## Bring up the whole platform locally and print where to look
	@bash scripts/platform.sh up

down: ## Stop everything `make up` started
	@bash scripts/platform.sh down
	@bash scripts/infra.sh down all

status: ## What listens where
	@bash scripts/infra.sh status
	@bash scripts/platform.sh status

sim: install ## Start the Tron node simulator on 127.0.0.1:8090
	@bash scripts/platform.sh up sim

workers: infra ## Start the workers (web on 6066 and 6067)
	@bash scripts/platform.sh up workers

test: infra ## Run every test tier (unit, component, integration, fuzz, browser, faults) against real services
	@$(MAKE) --no-print-directory test-unit test-component test-integration test-fuzz test-browser \
		test-faults

test-unit: install ## Unit tier: pure domain logic
	$(PYTEST) -m unit $(PYTEST_ARGS)

test-component: install promtool ## Component tier: one agent, view or service in-process; the alert rules (promtool)
	$(PYTEST) -m component $(PYTEST_ARGS)

promtool: ## Install promtool (Debian's prometheus package; the daemon stays off) for the alert rules' tests
	@bash scripts/promtool.sh

test-integration: infra ## Integration tier: real Kafka, PostgreSQL, Redis, Tron simulator
	$(PYTEST) -m integration $(PYTEST_ARGS)

test-fuzz: infra ## Fuzz tier: schemathesis against a live worker over all of /openapi.json
	$(PYTEST) -m fuzz $(PYTEST_ARGS)

test-browser: infra ## Browser tier: the payment page and the dashboard in headless Chromium
	@bash scripts/infra.sh up browser
	$(PYTEST) -m browser $(PYTEST_ARGS)

test-faults: infra ## Fault tier: a 3-broker cluster, PostgreSQL and Redis of its own under load; kill, stop, reconcile (docs/reliability.md)
	$(PYTEST) -m faults -s $(PYTEST_ARGS)

lint: install ## ruff (lint and format check), mypy, and the import rules of docs/architecture.md
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app agents web tables tron_sim telegram_sim sms_sim
	$(VENV)/bin/lint-imports

backup: ## Take an encrypted base backup of the local PostgreSQL now, then apply retention (docs/operations.md)
	@bash scripts/backup.sh

bench: infra ## Benchmarks under bench/ (figures and ratios against a baseline)
	@for bench in bench/bench_*.py; do echo "== $$bench"; $(PY) $$bench || exit 1; done

clean-state: down ## Stop everything and delete all local data (Kafka, PostgreSQL, worker state)
	rm -rf .local/kafka/cluster-* .local/postgres .local/postgres-[0-9]* .local/redis .local/redis-[0-9]* \
		.local/worker-data .local/sim
