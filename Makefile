# The project's commands. On a fresh machine with Python 3.10+ each target creates what it needs:
# a bootstrap venv with a pinned uv, then one environment per Airflow line from its committed lock.
#   make demo              the collector end to end against the bundled emulators
#   make test              the whole test suite (AIRFLOW=2 for the Airflow 2.11 line)
#   make lint              ruff + mypy
#   make bench             benchmarks (not part of the test suite)
#   make lock              recompile the locks after a dependency change

PYTHON ?= python3
AIRFLOW ?= 3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := $(if $(filter 2,$(AIRFLOW)),.venv-af2,.venv)
LOCK := requirements/airflow$(AIRFLOW).lock.txt
PYTEST_ARGS ?=

.PHONY: env demo test lint format bench lock clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# The stamp is rebuilt whenever the lock or the project metadata changes.
$(VENV)/.synced: $(LOCK) pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet $(LOCK)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps -e .
	touch $@

env: $(VENV)/.synced

demo: $(VENV)/.synced
	$(VENV)/bin/python scripts/demo.py $(DEMO_ARGS)

test: $(VENV)/.synced
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

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

lock: | $(UV)
	$(UV) pip compile pyproject.toml requirements/airflow3.in --extra test --extra dev --universal \
		--python-version 3.10 --generate-hashes --quiet -o requirements/airflow3.lock.txt
	$(UV) pip compile pyproject.toml requirements/airflow2.in --extra test --extra dev --universal \
		--python-version 3.10 --generate-hashes --quiet -o requirements/airflow2.lock.txt

clean:
	rm -rf $(TOOLS) .venv .venv-af2 .pytest_cache .mypy_cache .ruff_cache
