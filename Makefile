# One venv, created on first use. torch is pinned to the CPU build that ships on this disk;
# installing it before the package keeps pip from pulling a multi-GB CUDA build.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-slow lint bench bench-live clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[full,dev,distributed,export,serving]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/coinfer demo

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

# two workers (the machines this runs on have two cores), each test file on one worker: the
# tests hold under a busy host, and files keep their fixtures (trained models) to themselves
test: lint
	$(VENV)/bin/pytest -n 2 --dist loadfile

test-slow: setup
	$(VENV)/bin/pytest -m slow

bench: setup
	$(PY) benchmarks/bench_partition.py
	$(PY) benchmarks/bench_policies.py
	$(PY) benchmarks/bench_multi.py
	$(PY) benchmarks/bench_runtime.py
	$(PY) benchmarks/bench_hostile.py

# every system live against its simulation (about 45 minutes: AlexNet's tasks take seconds)
bench-live: setup
	$(PY) benchmarks/bench_live_edgent.py
	$(PY) benchmarks/bench_live_stopping.py --models mlp:rpi3 --tasks 1000
	$(PY) benchmarks/bench_live_stopping.py --models alexnet:edge-pc/8 --tasks 300 --policies stopping,fixed-split,edge-only,device-only

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
