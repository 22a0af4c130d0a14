# motcua: two commands from a fresh clone — `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test browsers postgres soak lint bench bench-quick format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# htmx is served by the box itself; it comes from its npm registry package at build time and
# is never committed (edge/static/vendor/ is ignored by git, bundled into the wheel).
HTMX_VERSION := 2.0.8
HTMX := edge/static/vendor/htmx.min.js

$(HTMX):
	mkdir -p $(dir $@)
	cd $(dir $@) && npm pack --silent htmx.org@$(HTMX_VERSION) >/dev/null \
	  && tar -xzf htmx.org-$(HTMX_VERSION).tgz package/dist/htmx.min.js \
	  && mv package/dist/htmx.min.js htmx.min.js && rm -rf package htmx.org-$(HTMX_VERSION).tgz

$(STAMP): pyproject.toml $(HTMX) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml $(HTMX) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

## run: create the virtualenv, install, start what exists (later: the demo)
run: $(STAMP)
	$(BIN)/motcua demo

# The browser tests drive Debian's Chromium through Playwright (never `playwright install`:
# it downloads a browser build, which an offline or closed machine cannot). Installed only when
# missing; CI runs as root on a clean machine, a developer may need sudo.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get update && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

## browsers: Debian's Chromium for the browser tests (tests/browser/)
browsers: $(CHROMIUM)

# The PostgreSQL tests (the city hub on PostgreSQL, issue 12) start their own throwaway
# cluster from Debian's server binaries (tests/integration/pgcluster.py): installed only when
# missing, as Chromium is. MOTCUA_TEST_POSTGRES_URL points the tests at an existing server instead.
PG_BINARIES := /usr/lib/postgresql/*/bin/postgres

## postgres: Debian's PostgreSQL server binaries for the PostgreSQL tests
postgres:
	@ls $(PG_BINARIES) >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; }

## test: install what the tests need and run the whole suite
test: $(DEV_STAMP) browsers postgres
	$(BIN)/python -m pytest -n 2 -q

## soak: the long runs of issue 6, by hand (two hours or more on two cores; one at a time, so
## each prints its summary): 1,000 SIGKILLs of a box and the city, hundreds of fault schedules,
## 20x the fuzzing and schemathesis budgets, the disk faults 100 times, the topology state
## machine at 10x its CI budget, then the 5-minute edge load with sync and the full 103-node
## fleet run. Results: docs/RELIABILITY.md.
SOAK_TESTS := tests/integration/test_crash_soak.py tests/integration/test_fault_schedules.py \
	tests/integration/test_disk_faults.py tests/edge/test_schemathesis.py \
	tests/central/test_schemathesis.py tests/fuzz tests/sync/test_topology.py

soak: $(DEV_STAMP) browsers postgres
	MOTCUA_SOAK=1 $(BIN)/python -m pytest -q -s -p no:cacheprovider $(SOAK_TESTS)
	$(BIN)/python bench/edge_soak.py
	$(BIN)/python bench/central_fleet.py

## lint: ruff (lint + format check) and mypy (strict on every package)
lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: every benchmark under bench/, each printing one JSON object
bench: $(STAMP)
	@for b in bench/[!_]*.py; do echo "# $$b" >&2; $(BIN)/python $$b || exit 1; done

bench-quick: $(STAMP)
	@for b in bench/[!_]*.py; do echo "# $$b --quick" >&2; $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
