# Two commands on a fresh machine with Python >= 3.11 and make: `make demo` and `make test`.
# Bootstrap: a virtualenv, uv installed into it with pip, then `uv sync --frozen` from uv.lock.
# Every step is a file target, so re-running does nothing that is already done.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
SCALE ?= 1
SEED ?= 42

export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1
# Write every installed module's bytecode at install time: a Python started with
# PYTHONDONTWRITEBYTECODE (as on this project's machines) otherwise compiles dbt, Prefect and
# their dependencies from source in every process (`haven status` 3.6 s, not 1.2 s; README).
export UV_COMPILE_BYTECODE := 1

.PHONY: setup demo test lint format clean browser java postgres

setup: $(VENV)/.synced

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; set PYTHON=python3.11 (or newer) and run make again.")'
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(BIN)/uv pyproject.toml uv.lock
	$(BIN)/uv sync --frozen --python $(BIN)/python
	@touch $@

demo: setup
	$(BIN)/haven up
	$(BIN)/haven source init --scale $(SCALE) --seed $(SEED)
	$(BIN)/haven run

# The browser tests drive Debian's chromium; install it when we can (root with apt), else they skip.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium not installed and not root: the browser tests will be skipped"; fi; }

# The managed-PostgreSQL tests run against a separately installed server: Debian's postgresql
# package (only its binaries are used; the tests start a throwaway cluster); else they skip.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's postgresql for the managed-PostgreSQL tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
		else echo "postgresql not installed and not root: the managed-PostgreSQL tests will be skipped"; fi; }

# The Spark engine needs Java 17+; install Debian's when we can (root with apt), else its tests skip.
java:
	@command -v java >/dev/null 2>&1 || [ -n "$$JAVA_HOME" ] || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's openjdk-17-jre-headless for the Spark engine"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
		else echo "java not installed and not root: the Spark tests will be skipped"; fi; }

# The Spark tests first, alone: their cluster keeps both cores busy, and beside another module
# they took 1.5x as long. Then the other modules on TEST_PROCESSES processes (pytest-xdist, a
# module per process at a time, each with its own embedded PostgreSQL and dbt target directory;
# TEST_PROCESSES=0 runs them in one), handed out slowest first (tests/python/conftest.py).
TEST_PROCESSES ?= 2
SPARK_TESTS := tests/python/test_spark.py

test: setup browser java postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(SPARK_TESTS)
	$(BIN)/pytest --numprocesses $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder --ignore $(SPARK_TESTS)

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	-$(BIN)/haven down
	rm -rf .haven $(VENV)
