# The two Quick-start commands (each installs what it needs into .venv first):
#   make demo   -- the main job on generated data (train, evaluate, plot, export, deploy); MODEL=lsnet for
#                  the change-detection demo
#   make test   -- the test suite (small shapes, generated data): 26.5 min for 427 tests at 1 thread with a
#                  benchmark on the second core, of which 8.2 min were the five small training alignments now
#                  behind --full (PYTEST_ARGS=--full runs them, and every full-size check)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?= danet

.PHONY: install test demo align align-full lint

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: install
	$(PY) tools/demo.py --model $(MODEL) --out demo_output

align: install
	$(PY) -m alignment.check_all --size small

align-full: install
	$(PY) -m alignment.check_all --size full --jobs 2

lint: install
	$(PY) -m ruff check .
