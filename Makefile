# The two Quick-start commands (each installs what it needs into .venv first):
#   make demo   -- the main job on generated data (train, evaluate, plot, export)
#   make test   -- the test suite (small shapes, generated data; ~7 min on 2 idle CPU cores)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

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
	$(PY) tools/demo.py --out demo_output

align: install
	$(PY) -m alignment.check_all --size small

align-full: install
	$(PY) -m alignment.check_all --size full

lint: install
	$(PY) -m ruff check .
