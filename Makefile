# Xindang — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export FLASK_APP := portal
# Without a terminal, pytest-xdist uses both cores.
PYTEST_WORKERS ?= 2

.PHONY: run test test-sqlite test-postgres test-e2e setup system-deps translations db clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 ($(PYTHON)) is needed"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) system-deps translations

system-deps:
	@bash scripts/system-deps.sh

translations: $(STAMP)
	@$(BIN)/pybabel -q compile -d portal/translations 2>/dev/null || true

db: setup
	$(BIN)/flask db upgrade

run: db
	$(BIN)/flask seed-demo --if-empty
	@echo "Serving Xindang on http://127.0.0.1:5000 (Ctrl-C to stop)"
	$(BIN)/flask run --host 127.0.0.1 --port 5000

test: setup
	@bash scripts/ensure-postgres.sh || true
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

# Each database: the suite on $(PYTEST_WORKERS) workers, then the browser journeys (tests/e2e) in
# one process of their own, so that their browser and live server do not share the two cores with
# the suite's workers (about a minute; screenshots in test-artifacts/e2e/).
test-sqlite: setup
	XINDANG_TEST_DB=sqlite $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --ignore=tests/e2e $(PYTEST_ARGS)
	XINDANG_TEST_DB=sqlite $(BIN)/python -m pytest -q -p no:xdist tests/e2e $(PYTEST_ARGS)

test-postgres: setup
	XINDANG_TEST_DB=postgresql $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --ignore=tests/e2e $(PYTEST_ARGS)
	XINDANG_TEST_DB=postgresql $(BIN)/python -m pytest -q -p no:xdist tests/e2e $(PYTEST_ARGS)

# The browser journeys alone, on both databases.
test-e2e: setup
	@bash scripts/ensure-postgres.sh || true
	XINDANG_TEST_DB=sqlite $(BIN)/python -m pytest -q -p no:xdist tests/e2e $(PYTEST_ARGS)
	XINDANG_TEST_DB=postgresql $(BIN)/python -m pytest -q -p no:xdist tests/e2e $(PYTEST_ARGS)

.PHONY: bench-load
# 100,000 loans, 50,000 documents, 20 users under gunicorn on loopback (bench/load.md); BENCH_ARGS="--db postgresql" …
bench-load: $(STAMP)
	$(BIN)/python bench/load.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache
