# One command to run, one to test; each installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU torch from local disk first, so nothing pulls a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m service

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check service index tests bench
	$(VENV)/bin/mypy service index

bench: install
	$(PY) bench/latency.py

clean:
	rm -rf $(VENV) data build *.egg-info
