# The project's commands. On a fresh machine with Python 3.10+ each target creates what it needs:
# a bootstrap venv with a pinned uv, then one environment per Airflow line from its committed lock.
#   make demo              the collector end to end against the bundled emulators
#   make test              the whole test suite (AIRFLOW=2 for the Airflow 2.11 line); installs Debian's PostgreSQL
#                          and Redis servers and Chromium first when missing (as root: make postgres-server
#                          redis-server chromium)
#   make lint              ruff + mypy
#   make bench             benchmarks (not part of the test suite): speed, memory, the late-records request cost,
#                          the coverage view's build and render
#   make bench-catchup     a backlog caught up on a real Airflow 3 at MDCA's pace, and live windows' freshness
#   make faults            the fault matrix at full size: one row per fault, exit 1 if one loses, doubles or needs a human
#   make lock              recompile the locks after a dependency change

PYTHON ?= python3
AIRFLOW ?= 3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := $(if $(filter 2,$(AIRFLOW)),.venv-af2,.venv)
LOCK := requirements/airflow$(AIRFLOW).lock.txt
PYTEST_ARGS ?=

.PHONY: env demo test lint format bench bench-catchup faults lock clean postgres-server redis-server chromium

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# The stamp is rebuilt whenever the lock or the metadata of either project changes. Both are installed editable: the
# provider and the emulators (emulator/, the mdca-emulator distribution the tests, the demo and the benchmarks use).
# Bytecode is compiled at install, as pip does for the Docker image: every Airflow task is a process that imports
# Airflow and the provider, and where PYTHONDONTWRITEBYTECODE is set nothing would ever cache the compiled modules
# (each task compiled Airflow's sources again, seconds of CPU).
$(VENV)/.synced: $(LOCK) pyproject.toml emulator/pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet --compile-bytecode $(LOCK)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps -e . -e ./emulator
	$(VENV)/bin/python -m compileall -q airflow_provider_mdca emulator/mdca_emulator
	touch $@

env: $(VENV)/.synced

# The demo runs Airflow 3 whatever AIRFLOW says (its api-server, scheduler and backfill are Airflow 3's).
demo:
	@$(MAKE) --no-print-directory env AIRFLOW=3
	.venv/bin/python scripts/demo.py $(DEMO_ARGS)

test: $(VENV)/.synced node_modules/.bin/azurite-blob postgres-server redis-server chromium
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# A Debian package the tests need, installed when $(1) finds it missing if we are root; otherwise this says what to
# install (the tests fail without it: they are never skipped). $(call debian_package,<check>,<package>,<what for>)
define debian_package
	@if $(1) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's $(2) for $(3) (apt-get install $(2))"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(2); \
	else \
		echo "make test needs Debian's $(2) for $(3) (not found: $(1)): as root run" \
			"apt-get install -y --no-install-recommends $(2) and make test again" >&2; \
		exit 1; \
	fi
endef

# PostgreSQL's server for the end-to-end backfill with Airflow's metadata on PostgreSQL: the test starts its own
# cluster on 127.0.0.1 from Debian's binaries (/usr/lib/postgresql/<version>/bin, tests/e2e/postgres.py).
postgres-server:
	$(call debian_package,ls /usr/lib/postgresql/*/bin/postgres /usr/lib/postgresql/*/bin/initdb,postgresql,tests/e2e)

# Redis's server, the Celery broker of the end-to-end CeleryExecutor cluster (tests/e2e/test_celery_cluster.py): the
# test starts its own on 127.0.0.1 from Debian's binary (tests/harness/redis_server.py).
redis-server:
	$(call debian_package,test -x /usr/bin/redis-server,redis-server,tests/e2e)

# Debian's Chromium, the browser of the real-browser tests of Airflow 3's UI (tests/browser): Playwright drives it
# through its executable (tests/harness/browser.py), never a browser of its own (no `playwright install`).
chromium:
	$(call debian_package,test -x /usr/bin/chromium,chromium,tests/browser)

# Test-only Node tools from the committed package-lock.json: Azurite, the Azure Storage emulator that the abfs://
# staging tests start on 127.0.0.1 (tests/integration/conftest.py). Reinstalled when the lock changes.
node_modules/.bin/azurite-blob: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.synced
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_fetch.py $(BENCH_ARGS)
	$(VENV)/bin/python bench/bench_ship.py
	$(VENV)/bin/python bench/bench_pipeline.py $(PIPELINE_ARGS)
	$(VENV)/bin/python bench/bench_late.py $(LATE_ARGS)
	$(VENV)/bin/python bench/bench_coverage.py

# Catch-up at the API's pace (bench/bench_catchup.py): 100 windows a windowed service behind, caught up by a real
# Airflow 3 (SQLite) against the emulators at 30 requests a minute, then live one-minute windows; the provider's DAG
# shape and the classic one (bench/classic_shape.py). About an hour. CATCHUP_ARGS="--windows 20 --shapes current".
bench-catchup: $(VENV)/.synced
	.venv/bin/python bench/bench_catchup.py $(CATCHUP_ARGS)

# The fault matrix (bench/faults.py): the in-task cases of tests/harness/fault_matrix.py at full size, plus the SIGKILL
# and Devo-outage cases of tests/harness/crashes.py and outages.py (a live Airflow 3 on SQLite: nothing to install).
# FAULTS_ARGS=--quick for the test suite's size, --only NAME for one case, --list for the names.
faults: $(VENV)/.synced
	$(VENV)/bin/python bench/faults.py $(FAULTS_ARGS)

lock: | $(UV)
	$(UV) pip compile pyproject.toml requirements/airflow3.in --extra test --extra dev --universal \
		--python-version 3.10 --generate-hashes --quiet -o requirements/airflow3.lock.txt
	$(UV) pip compile pyproject.toml requirements/airflow2.in --extra test --extra dev --universal \
		--python-version 3.10 --generate-hashes --quiet -o requirements/airflow2.lock.txt
	# The Dockerfile's: the provider, Airflow 3 and the StatsD client only (no test or dev tools), for the image's
	# Python.
	$(UV) pip compile pyproject.toml requirements/airflow3.in --extra statsd --universal \
		--python-version 3.11 --generate-hashes --quiet -o requirements/image.lock.txt

clean:
	rm -rf $(TOOLS) .venv .venv-af2 .pytest_cache .mypy_cache .ruff_cache
