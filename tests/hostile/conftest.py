"""Shared fixtures of the hostile-input suite (see docs/security.md): small honest models to mutate, and a way to
measure the peak memory of refusing a file in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
ENV.pop("KERAS_RESNET_DEBUG", None)


@pytest.fixture(scope="session")
def small_keras(tmp_path_factory) -> str:
    """A tiny Keras 3 model as a .keras file."""
    keras = pytest.importorskip("keras")
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x))
    path = str(tmp_path_factory.mktemp("models") / "small.keras")
    model.save(path)
    return path


@pytest.fixture(scope="session")
def resnet_keras(tmp_path_factory) -> str:
    """A keras_resnet training model (ChannelPadding, Normalization) compiled with SGD + ResNetSchedule, saved as
    train() saves it: every class keras_resnet writes must pass the allow-list."""
    pytest.importorskip("keras")
    from keras_resnet.data import datasets as data_lib
    from keras_resnet.spec.recipe import Recipe
    from keras_resnet.train.recipe import compile_model, model_for_dataset

    info = data_lib.info("digits")
    model = model_for_dataset("resnet20", info)
    compile_model(model, Recipe(model="resnet20", dataset="digits", epochs=2), 10, info.num_classes)
    path = str(tmp_path_factory.mktemp("models") / "resnet20.keras")
    model.save(path)
    return path


def run_python(code: str, *, timeout: float = 300) -> dict:
    """Run ``code`` in a fresh interpreter; it sets ``RESULT`` (a dict), printed as JSON with ``peak_mb`` (the
    child's peak resident set) and ``stderr`` added."""
    wrapper = textwrap.dedent(code) + textwrap.dedent("""
        _hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]  # reset by exec, unlike ru_maxrss
        print(json.dumps({**RESULT, "peak_mb": int(_hwm.split()[1]) / 1024}))
    """)
    done = subprocess.run([sys.executable, "-c", "import json\n" + wrapper], capture_output=True, text=True,
                          timeout=timeout, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result
