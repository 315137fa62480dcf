# taskhub — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION ?= 0.13.9
HOST ?= 127.0.0.1
PORT ?= 8000
# Use uv from PATH when there is one; otherwise bootstrap it into .tools/ from PyPI.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: help install run test lint fmt migrate worker bench bench-scale bench-scaleout clients clients-check clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch $@

install: .venv/.synced ## Install uv (if missing), the venv and the locked dependencies

run: install ## Migrate, then serve the API on $(HOST):$(PORT) (embedded shape unless configured)
	$(UV) run --frozen taskhub migrate
	$(UV) run --frozen taskhub serve --host $(HOST) --port $(PORT)

test: install ## Run the whole test suite (both shapes; PostgreSQL/Redis tests skip if absent)
	$(UV) run --frozen pytest -n auto --dist loadfile

lint: install ## Ruff (lint + format check) and mypy --strict (src, tests, bench)
	$(UV) run --frozen ruff check src tests bench
	$(UV) run --frozen ruff format --check src tests bench
	$(UV) run --frozen mypy

fmt: install ## Format and auto-fix
	$(UV) run --frozen ruff format src tests bench
	$(UV) run --frozen ruff check --fix src tests bench

migrate: install ## Apply the migrations to DATABASE_URL
	$(UV) run --frozen taskhub migrate

worker: install ## Run one event worker (needs DATABASE_URL and REDIS_URL)
	$(UV) run --frozen taskhub worker

bench: install ## Benchmark the full stack (1 server + worker) against the floor server (bench/)
	@command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk"; exit 1; }
	$(UV) run --frozen python bench/run.py

bench-scale: install ## Every list at 10k and 1M rows (PostgreSQL), SQLite at 100k, writes before/after (bench/scale.py)
	@command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk"; exit 1; }
	$(UV) run --frozen python bench/scale.py

bench-scaleout: install ## Orders/s: 1 partition × 1 worker against 8 × 4, single Redis and a local cluster
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { echo "redis-server and redis-cli are required"; exit 1; }
	$(UV) run --frozen python bench/scaleout.py

TS := clients/typescript

# The npm tools (openapi-typescript, typescript, Redocly), exactly as package-lock.json pins them.
$(TS)/node_modules/.package-lock.json: $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund --loglevel=error

clients: install $(TS)/node_modules/.package-lock.json ## Regenerate clients/ (OpenAPI document, Python and TypeScript clients) from the app
	$(UV) run --frozen python clients/export_openapi.py clients/openapi.json
	rm -rf clients/python.new
	$(UV) run --frozen openapi-python-client generate --path clients/openapi.json \
		--output-path clients/python.new --config clients/python-config.yaml --meta uv
	rm -rf clients/python && mv clients/python.new clients/python
	cd $(TS) && npx --no-install openapi-typescript ../openapi.json --default-non-nullable false \
		--output src/schema.d.ts
	cd $(TS) && npx --no-install tsc -p tsconfig.json

clients-check: clients ## Fail if the committed clients differ from freshly generated ones (CI)
	@stale=$$(git status --porcelain -- clients); if [ -n "$$stale" ]; then \
		echo "$$stale"; echo "clients/ is stale: run 'make clients' and commit the result"; \
		exit 1; fi

clean: ## Remove the venv, caches and the embedded database
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache taskhub.db taskhub.db-*
	rm -rf $(TS)/node_modules $(TS)/dist
