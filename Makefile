# Paystream: `make run` brings up the whole platform; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
UV := $(VENV)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
STAMP := $(VENV)/.synced
PYPROJECTS := pyproject.toml $(wildcard shared/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml)

.PHONY: run test test-embedded lint migrate bench install clean chaos

# The part of the suite that exercises the stores themselves, for a run on the embedded pair (what
# `make run` uses) when `make test` ran on other servers (.ci/run).
EMBEDDED_SUITE := shared/tests tests/test_outbox_crash_recovery.py tests/test_relay_failover.py \
	services/payment-processor/tests/test_processor_e2e.py services/notifier/tests/test_notifier_processes.py \
	tools/payctl/tests/test_payctl_liveness.py

run: $(STAMP)
	$(VENV)/bin/python -m paystream_devstack.devrun

# Two workers (the machine has two cores and most tests wait on processes, not CPU); the fault and
# browser tests keep to one of them (see paystream_devstack.testing.plugin).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-embedded: $(STAMP)
	$(VENV)/bin/python -m pytest $(EMBEDDED_SUITE) $(PYTEST_ARGS)

chaos: $(STAMP)
	$(VENV)/bin/python -m pytest -m chaos $(PYTEST_ARGS)

# Every package, strictly (pyproject.toml: [tool.mypy] strict = true).
PACKAGE_SOURCES := shared/src services/api/src services/payment-processor/src \
	services/webhook-dispatcher/src services/notifier/src tools/payctl/src tools/devstack/src

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(PACKAGE_SOURCES)

migrate: $(STAMP)
	$(VENV)/bin/python -m paystream.migrations

bench: $(STAMP)
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

install: $(STAMP)

$(STAMP): uv.lock $(PYPROJECTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.4,<1"
	$(UV) sync --frozen --inexact --all-packages --group dev --group bench --python $(VENV)/bin/python
	touch $(STAMP)

uv.lock: $(PYPROJECTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.4,<1"
	$(UV) lock --python $(VENV)/bin/python
	touch uv.lock

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
