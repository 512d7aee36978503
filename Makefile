# Interestflow — every target bootstraps .venv from requirements.txt first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# the demo's shop (tiny, small, default) and how many simulated days it lives after the set-up
SIZE ?= small
DAYS ?= 3
SEED ?= 7
# a local folder of prebuilt wheels (the CPU build of torch) is used when present
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
REQ_HASH := $(shell sha1sum requirements.txt | cut -c1-12)
STAMP := $(VENV)/.installed-$(REQ_HASH)

.DEFAULT_GOAL := help
.PHONY: help bootstrap demo test test-fast lint format typecheck airflow bench system-deps clean ui-screenshot dbt-parse dbt-docs dbt-freshness

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(FIND_LINKS) -r requirements.txt
	@rm -f $(VENV)/.installed-*; touch $@

bootstrap: $(STAMP) ## create .venv (Python 3.11) and install the pinned requirements

system-deps: ## Debian packages some tests need (headless Chromium, docker-compose for config checks)
	@bash scripts/system-deps.sh

# The demo runs every task in this one process. Each dbt task builds dbt's adapter, whose behaviour
# flags look up their caller with inspect.stack(); for a frame without a source file, such as
# `python -m`'s two <frozen runpy> frames under everything, that scans all of sys.modules (about
# 10,000 once TensorFlow and torch are loaded). Loading runpy from its file removes those frames.
demo: bootstrap ## generate a shop (SIZE=small), run every DAG, then DAYS=3 simulated shop days
	$(BIN)/python -X frozen_modules=off -m ml demo --size $(SIZE) --days $(DAYS) --seed $(SEED)

test: bootstrap system-deps ## the whole test suite (what CI runs)
	$(BIN)/python -m pytest

test-fast: bootstrap ## unit tests only
	$(BIN)/python -m pytest -m "unit"

lint: bootstrap ## ruff lint and format check
	$(BIN)/ruff check ml dags plugins tests
	$(BIN)/ruff format --check ml dags plugins tests

format: bootstrap ## ruff format and autofix
	$(BIN)/ruff format ml dags plugins tests
	$(BIN)/ruff check --fix ml dags plugins tests

typecheck: bootstrap ## mypy on ml/
	$(BIN)/mypy ml

dbt-parse: bootstrap ## re-parse dbt/ so a running Airflow shows new or edited models (build_features' tasks)
	$(BIN)/python -m ml dbt parse

dbt-docs: bootstrap ## dbt docs generate; served in the Airflow UI under Browse > dbt Docs (Interestflow)
	$(BIN)/python -m ml dbt docs

dbt-freshness: bootstrap ## dbt source freshness of the raw landing tables (exit 1 when stale)
	$(BIN)/python -m ml dbt freshness

airflow: bootstrap ## start Airflow (api-server, scheduler, ...) on http://127.0.0.1:8080
	$(BIN)/python -m ml airflow standalone

ui-screenshot: bootstrap ## screenshot the Interestflow page of a running `make airflow` into .interestflow/
	$(BIN)/python -m ml.ui.browser

bench: bootstrap ## list the benchmarks (python -m ml bench NAME --help)
	$(BIN)/python -m ml bench --help

clean: ## remove local state (.airflow, .interestflow) but keep .venv
	rm -rf .airflow .interestflow dbt/target dbt/logs

.PHONY: scale-up scale-down compose-config secrets

scale-up: bootstrap ## Airflow with CeleryExecutor (2 workers) on local PostgreSQL + Redis (docs/scale-out.md)
	@bash scripts/scale-up.sh

scale-down: ## stop exactly what scale-up started
	@bash scripts/scale-down.sh

secrets: ## generate the secrets docker-compose.yml requires into .env (git-ignored, mode 0600; keeps existing ones)
	@$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) -m ml.orchestration.scaleout compose-secrets .env

compose-config: system-deps ## validate docker-compose.yml (needs docker-compose, not a Docker engine)
	docker-compose -f docker-compose.yml config --quiet
