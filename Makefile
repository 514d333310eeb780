# Two commands: `make run` serves API + workers on SQLite; `make test` installs and runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/execution-service serve

# The suite runs on SQLite, then again on PostgreSQL when TEST_DATABASE_URL is set.
test: $(STAMP)
	@echo "==> tests on SQLite"
	EXEC_TEST_DATABASE=sqlite $(PY) -m pytest -q
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "==> tests on PostgreSQL ($$TEST_DATABASE_URL)"; \
		EXEC_TEST_DATABASE="$$TEST_DATABASE_URL" $(PY) -m pytest -q || exit 1; \
		echo "==> the suite passed on: SQLite and PostgreSQL"; \
	else \
		echo "==> the suite passed on: SQLite only (set TEST_DATABASE_URL to run it on PostgreSQL too)"; \
	fi

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
