# Every target creates the virtual environment it needs; `make demo` and `make test` work on a fresh clone.
# `make test` runs the package tests (notebooks included) in .venv, then deploy/ci.sh runs the device
# runner's tests in environments without TensorFlow (.venv-deploy, and .venv-legacy with tflite-runtime).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): setup.cfg pyproject.toml deploy/setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./deploy -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/keras-resnet demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q
	bash deploy/ci.sh

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .venv-deploy .venv-legacy
