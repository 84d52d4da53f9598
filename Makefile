# One venv, created on first use. torch is pinned to the CPU build that ships on this disk;
# installing it before the package keeps pip from pulling a multi-GB CUDA build.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-slow lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,distributed]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/coinfer demo

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

test-slow: setup
	$(VENV)/bin/pytest -m slow

bench: setup
	$(PY) benchmarks/bench_partition.py
	$(PY) benchmarks/bench_policies.py
	$(PY) benchmarks/bench_multi.py
	$(PY) benchmarks/bench_runtime.py
	$(PY) benchmarks/bench_hostile.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
