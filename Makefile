# Every target creates the virtual environment it needs; `make demo` and `make test` work on a fresh clone.
#   make quick      ruff + the fast test tier (pytest -m "not slow"), a few minutes: run it while changing code
#   make test       ruff, then scripts/test_all.sh: the full pytest suite (notebooks included) over 2 processes
#                   (PYTEST_WORKERS), while deploy/ci.sh runs the device runner's tests in environments without
#                   TensorFlow (.venv-deploy, and .venv-legacy with tflite-runtime) and scripts/wheel_check.sh
#                   installs both built wheels into a fresh venv and runs the CLI there
#   make notebooks  executes notebooks/*.ipynb in place with their full parameters, so they are committed with outputs
#   make peers      benchmarks/peers.py (training vs a plain PyTorch loop, backends, QAT, convert) in .venv-peers
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist processes; each TensorFlow process also runs 2 intra-op threads
PYTEST_WORKERS ?= 2

.PHONY: demo quick test lint notebooks wheel-check bench peers-venv peers clean

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

# The peer benchmark (benchmarks/peers.py, issue 23): keras-resnet train vs a plain PyTorch loop, the Keras backends,
# QAT vs float, convert vs Keras' export. torch is a benchmark-only dependency: it goes into .venv-peers (git-ignored,
# like every .venv*), never into .venv (whose tests would change: the torch-backend ones run where torch is) or CI.
# The torch wheel is the CPU build where pip finds one (elsewhere: PEERS_PIP_ARGS='--extra-index-url
# https://download.pytorch.org/whl/cpu'). make peers PEERS_ARGS='--repeats 1 --epochs 2' for a shorter run.
PEERS_VENV ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed
TORCH ?= torch==2.13.0
$(PEERS_STAMP): setup.cfg pyproject.toml deploy/setup.cfg deploy/pyproject.toml
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/pip install --quiet $(PEERS_PIP_ARGS) -e ./deploy -e ".[all,jax]" "$(TORCH)"
	touch $(PEERS_STAMP)

peers-venv: $(PEERS_STAMP)

peers: $(PEERS_STAMP)
	$(PEERS_VENV)/bin/python benchmarks/peers.py $(PEERS_ARGS)

clean:
	rm -rf $(VENV) .venv-deploy .venv-legacy $(PEERS_VENV)
