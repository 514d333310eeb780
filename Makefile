# Two commands: `make run` serves API + workers on SQLite; `make test` installs and runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install lint bench clean lock test-fanout

# Installs are reproducible: every dependency is pinned by constraints.txt (`make lock` renews it).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/execution-service serve

# The suite runs on SQLite, then again on PostgreSQL when TEST_DATABASE_URL is set. There it
# creates its own databases (named after TEST_DATABASE_URL's, with the run's id), drops them at
# the end, and holds at most 20 connections (tests/pg.py). Durations are printed per database.
test: $(STAMP)
	@echo "==> tests on SQLite"
	@start=$$(date +%s); EXEC_TEST_DATABASE=sqlite $(PY) -m pytest -q || exit 1; \
	echo "$$(( $$(date +%s) - start ))" > .test-duration-sqlite
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "==> tests on PostgreSQL ($$TEST_DATABASE_URL: a fresh database of this run, dropped after)"; \
		start=$$(date +%s); \
		EXEC_TEST_DATABASE="$$TEST_DATABASE_URL" $(PY) -m pytest -q || exit 1; \
		echo "$$(( $$(date +%s) - start ))" > .test-duration-postgresql; \
		echo "==> the suite passed on: SQLite ($$(cat .test-duration-sqlite) s) and PostgreSQL ($$(cat .test-duration-postgresql) s)"; \
	else \
		echo "==> the suite passed on: SQLite only ($$(cat .test-duration-sqlite) s; set TEST_DATABASE_URL to run it on PostgreSQL too)"; \
	fi
	@rm -f .test-duration-sqlite .test-duration-postgresql

# Style, types, and the architecture: import-linter's contracts (pyproject.toml) hold the layers.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests migrations benchmarks
	$(VENV)/bin/ruff format --check src tests migrations benchmarks
	$(VENV)/bin/mypy src
	$(VENV)/bin/lint-imports

# Benchmarks (issue #7; not part of `make test`): SQLite, and PostgreSQL when reachable
# (BENCH_POSTGRES_URL, default postgres@127.0.0.1:5432). Rewrites the README's results table.
# `make bench BENCH_ARGS="--only fanout --db postgres --quick"` picks and shrinks.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

# Issue #19's fan-out at full size: 1,000 ccxt accounts over two API processes and a worker
# sharing a Redis budget, on PostgreSQL (TEST_DATABASE_URL, default postgres@127.0.0.1) and
# Redis (127.0.0.1:6379). `make test` runs the same test with 150 accounts.
FANOUT_ACCOUNTS ?= 1000
test-fanout: $(STAMP)
	EXEC_TEST_FANOUT_ACCOUNTS=$(FANOUT_ACCOUNTS) \
	EXEC_TEST_DATABASE="$${TEST_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/postgres}" \
	$(PY) -m pytest -q -s tests/budget/test_fanout_processes.py

# The newest versions pyproject.toml allows, pinned again.
lock: $(STAMP)
	$(PY) -m pip install --quiet --upgrade -e '.[dev]'
	{ echo "# pip freeze of a make install; renew with make lock"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^execution-service'; } > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
