# Set-up is two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
ADV := $(VENV)/bin/advmnist
# The first Python >= 3.11 on PATH (override with `make PYTHON=/path/to/python3.12 run`).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done)

.PHONY: run test data bench lint docs clean tutorial

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.11 not found (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: otherwise pip may pick a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.installed
	# [dev] also brings Foolbox 3.3.4 and ART 1.20.1, the PGD peers of `make bench` (no torch dependency)
	$(PY) -m pip install -q -e '.[dev]'
	# reference implementations for the cross-check tests; --no-deps: they would pull torchvision
	$(PY) -m pip install -q --no-deps torchattacks==3.5.1 pyautoattack==0.2.0
	@touch $@

data: $(VENV)/.installed
	$(ADV) data

run: data
	$(ADV) run --resume --out runs/seed-study

test: $(VENV)/.dev
	$(ADV) data --quiet
	# pytest exits 5 when it collects nothing: that is a failure here, not a pass
	$(PY) -m pytest -q --durations=25; rc=$$?; if [ $$rc -eq 5 ]; then echo "error: no tests collected"; exit 1; fi; exit $$rc

bench: $(VENV)/.dev data
	$(ADV) bench --out docs/benchmarks.md

# The HTML API reference (pdoc) in build/api/ (git-ignored); any warning fails it. `make test` builds it too.
docs: $(VENV)/.dev
	$(PY) -W error scripts/api_docs.py build/api

# executes docs/tutorial.ipynb (a few minutes) and writes the rendered copy docs/tutorial.md + docs/tutorial_files/
tutorial: $(VENV)/.dev data
	$(PY) scripts/render_tutorial.py

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
