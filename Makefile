# Two commands: `make run` (set up and start the portal) and `make test` (set up and test).
# Every target creates what it needs first and is safe to run again.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
STAMP := $(VENV)/.installed
FRONTEND_STAMP := frontend/dist/.built
FRONTEND_SRC := $(shell find frontend/src frontend/public -type f 2>/dev/null) frontend/package.json frontend/vite.config.ts frontend/tsconfig.json

.PHONY: help run test lint bench setup frontend migrate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

frontend/node_modules/.package-lock.json: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

$(FRONTEND_STAMP): frontend/node_modules/.package-lock.json $(FRONTEND_SRC)
	cd frontend && npm run build
	touch $@

setup: $(STAMP) $(FRONTEND_STAMP) ## create .venv, install Python and npm packages, build the front end

frontend: $(FRONTEND_STAMP) ## build the front end (Vite)

migrate: setup ## create or upgrade the database
	$(MANAGE) migrate --noinput -v 0
	$(MANAGE) collectstatic --noinput -v 0

run: migrate ## set everything up and start the portal with its workers on http://127.0.0.1:8000
	$(MANAGE) ensure_admin
	$(MANAGE) seed_demo
	$(MANAGE) run_portal

test: lint ## set up and run every test (lint, import contracts, migrations check, pytest)
	$(MANAGE) makemigrations --check --dry-run -v 0
	$(MANAGE) spectacular --validate --fail-on-warn --file /dev/null
	$(VENV)/bin/pytest

lint: setup ## ruff, import-linter and the TypeScript checker
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	cd frontend && npm run typecheck

bench: setup ## run the benchmarks in bench/ (prints ratios measured side by side)
	$(PY) bench/ingest.py
	$(PY) bench/model.py
	$(PY) bench/pipeline.py
	$(PY) bench/review_api.py
	$(PY) bench/reports.py
	$(PY) bench/queue_recall.py

clean: ## remove the virtual environment, the front-end build and the local data
	rm -rf $(VENV) frontend/node_modules frontend/dist var
