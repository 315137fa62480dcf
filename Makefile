# taskhub — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION ?= 0.13.9
HOST ?= 127.0.0.1
PORT ?= 8000
# Use uv from PATH when there is one; otherwise bootstrap it into .tools/ from PyPI.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: help install run test lint fmt migrate worker bench bench-scale clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

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

lint: install ## Ruff (lint + format check) and mypy --strict
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

clean: ## Remove the venv, caches and the embedded database
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache taskhub.db taskhub.db-*
