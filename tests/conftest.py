"""Test tiers: ``pytest -m "not slow"`` is the quick tier (builders, options, parsing, metadata, errors, CLI
parsing; a few minutes on two cores); ``pytest`` runs everything (training, conversion, tfmot, notebooks, the demo).

A test is ``slow`` when it trains, converts to TFLite, runs tfmot, executes a notebook, runs a command-line
subprocess that imports TensorFlow, or takes more than about 5 s on two cores.
"""

from __future__ import annotations


def pytest_configure(config):
    # Registered here as well as in setup.cfg (if it is there), so the marker is known however pytest is started.
    config.addinivalue_line("markers", "slow: trains, converts, runs tfmot, notebooks or TensorFlow subprocesses, "
                                       "or takes > ~5 s; skip with -m 'not slow'")
