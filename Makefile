# Every target creates the virtual environment it needs; `make demo` and `make test` work on a fresh clone.
#   make quick      ruff + the fast test tier (pytest -m "not slow"), a few minutes: run it while changing code
#   make test       ruff, then scripts/test_all.sh: the full pytest suite (notebooks included) over 2 processes
#                   (PYTEST_WORKERS), while deploy/ci.sh runs the device runner's tests in environments without
#                   TensorFlow (.venv-deploy, and .venv-legacy with tflite-runtime) and scripts/wheel_check.sh
#                   installs both built wheels into a fresh venv and runs the CLI there
#   make notebooks  executes notebooks/*.ipynb in place with their full parameters, so they are committed with outputs
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist processes; each TensorFlow process also runs 2 intra-op threads
PYTEST_WORKERS ?= 2

.PHONY: demo quick test lint notebooks wheel-check bench clean

# keras-resnets requires resnet-edge (deploy/), which is not on PyPI: naming ./deploy on the same pip command
# line makes pip take it from the checkout and never from the index. The [jax] extra makes the JAX-backend tests
# (tests/test_backends.py) run rather than skip; the torch ones run when torch is in the venv (README, "Backends").
$(STAMP): setup.cfg pyproject.toml deploy/setup.cfg deploy/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./deploy -e ".[all,jax,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/keras-resnet demo

quick: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not slow"

test: $(STAMP)
	$(BIN)/ruff check .
	VENV=$(VENV) PYTEST_WORKERS=$(PYTEST_WORKERS) bash scripts/test_all.sh

lint: $(STAMP)
	$(BIN)/ruff check .

# Full-parameter runs (tens of minutes on a laptop CPU). Inline plots need the notebook backend: MPLBACKEND unset.
# Files the notebooks write go to notebooks/runs/ (git-ignored).
notebooks: $(STAMP)
	env -u MPLBACKEND $(BIN)/jupyter execute --inplace --timeout=-1 --kernel_name=python3 notebooks/*.ipynb

wheel-check:
	bash scripts/wheel_check.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .venv-deploy .venv-legacy
