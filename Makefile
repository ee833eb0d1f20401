# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv and installs what it needs.
# torch 2.13.0 is installed first (a CPU wheel where one is provided), so nothing pulls a CUDA build;
# torchvision is never installed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flexip-installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo studio test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[studio,test,lint]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/flexip demo

# FlexIP Studio on http://127.0.0.1:7860 (the miniworld preset, offline)
studio: $(STAMP)
	$(VENV)/bin/flexip studio

test: $(STAMP)
	$(PY) -m pytest -q

# ruff (lint + format check) and the import-linter contracts in pyproject.toml (the package layers)
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/step_overhead.py --threads 1 --rounds 7
	$(PY) benchmarks/feature_cache.py
	$(PY) benchmarks/studio_latency.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
