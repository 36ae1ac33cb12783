# Paystream: `make run` brings up the whole platform; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
UV := $(VENV)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
STAMP := $(VENV)/.synced
PYPROJECTS := pyproject.toml $(wildcard shared/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml)

.PHONY: run test lint migrate bench install clean chaos

run: $(STAMP)
	$(VENV)/bin/python -m paystream_devstack.devrun

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

chaos: $(STAMP)
	$(VENV)/bin/python -m pytest -m chaos $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check shared
	$(VENV)/bin/mypy shared/src

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
