"""Keras backends besides TensorFlow: the builders, `train` (resume included), `evaluate` and the demo's training
path under KERAS_BACKEND=jax (CI installs jax: the `[jax]` extra) and, where torch is installed, under torch.

A process's Keras backend is fixed when Keras loads, so every JAX/PyTorch run is a subprocess; the TensorFlow
side of each comparison runs here (or in a subprocess with KERAS_BACKEND=tensorflow). Torch tests skip with the
reason when torch is missing: `pip install -e ".[torch]"` runs them (see the README, "Backends").
"""

from __future__ import annotations

import csv
import functools
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from training_helpers import ENV, popen, run

from keras_resnet.core.errors import ConfigError

JAX = pytest.param("jax", marks=pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                                   reason="jax is not installed: pip install -e '.[jax]'"))
TORCH = pytest.param("torch", marks=pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                                       reason="torch is not installed: pip install -e '.[torch]'"))
BACKENDS = [JAX, TORCH]


def _env(backend: str) -> dict:
    return {**ENV, "KERAS_BACKEND": backend}


def _history(folder) -> list[dict]:
    with open(os.path.join(folder, "history.csv")) as f:
        return list(csv.DictReader(f))


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


# ---- strategies and backend errors (no training) --------------------------------------------------------


def test_strategies_are_tensorflow_only(monkeypatch):
    from keras_resnet.train.distribute import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy("auto", backend="jax") is None  # no tf.distribute scope on JAX / PyTorch
    for name in ("mirrored", "multiworker"):
        with pytest.raises(ConfigError, match=f"--strategy {name} needs the TensorFlow backend"):
            make_strategy(name, backend="torch")
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    with pytest.raises(ConfigError, match="TF_CONFIG lists 2 workers"):
        make_strategy("auto", backend="jax")


@pytest.mark.parametrize("backend, message", [
    ("foo", "KERAS_BACKEND=foo is not supported: keras-resnet runs on tensorflow, jax, torch"),
    pytest.param("torch", "KERAS_BACKEND=torch, but torch is not installed (pip install 'keras-resnets[torch]')",
                 marks=pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")),
])
def test_an_unusable_backend_is_one_error_line(tmp_path, backend, message):
    for args in (["train", "--epochs", "1", "--output", str(tmp_path / "out")], ["evaluate", "m.keras"]):
        result = run(*args, env=_env(backend), timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.strip() == f"keras-resnet {args[0]}: error: {message}"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the command imports TensorFlow and JAX before it refuses
@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_refuses_a_tensorflow_strategy(tmp_path, backend):
    result = run("train", "--epochs", "1", "--strategy", "mirrored", "--output", str(tmp_path / "out"),
                 env=_env(backend), timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert (f"keras-resnet train: error: --strategy mirrored needs the TensorFlow backend (tf.distribute); this is "
            f"the {backend} backend") in result.stderr
    assert not (tmp_path / "out").exists()


# ---- every builder family: the same weights give the same outputs under JAX as under TensorFlow ------------

CIFAR_FAMILIES = {  # name: (model, build options): v1 basic (option A; option C), V2, plain, highway
    "resnet20": ("resnet20", {}),
    "resnet20-shortcut-C": ("resnet20", {"shortcut": "C", "zero_init": True}),
    "resnet20v2": ("resnet20v2", {}),
    "plain20": ("plain20", {}),
    "highway20": ("highway20", {}),
    "resnet18": ("resnet18", {}),  # the ImageNet stem and basic blocks
}
BOTTLENECK_FAMILIES = {  # ImageNet bottlenecks (quarter width: the same graph, less arithmetic): v1, v1.5, D, V2
    "resnet50": ("resnet50", {"width": 0.25}),
    "resnet50-v1.5": ("resnet50", {"variant": "v1.5", "width": 0.25}),
    "resnet50d": ("resnet50", {"variant": "d", "width": 0.25}),
    "resnet50v2": ("resnet50v2", {"width": 0.25}),
}
INPUT = (32, 32, 3)

FORWARD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    from keras_resnet.model.registry import build_model
    folder, families = sys.argv[1], json.loads(sys.argv[2])
    x = np.load(folder + "/x.npy")
    for key, (name, options) in families.items():
        model = build_model(name, weights=None, input_shape=x.shape[1:], classes=10, classifier_activation=None,
                            **options)
        model.load_weights(f"{folder}/{key}.weights.h5")
        np.save(f"{folder}/{key}-out.npy", model.predict(x, verbose=0))  # one compiled graph, not op by op
    print(json.dumps({"backend": keras.backend.backend()}))
""")


def _randomize(model, rng) -> None:
    """Give the zero or constant weights (biases, BN betas and moving statistics, zero-init gammas) random values,
    so that every layer's arithmetic shows in the output."""
    for variable in model.weights:
        value = np.asarray(variable.numpy())
        if "variance" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, value.shape).astype("float32"))
        elif not value.any() or "moving_mean" in variable.path:
            variable.assign(rng.normal(0, 0.1, value.shape).astype("float32"))


@functools.cache
def _forward(group: str, folder: str) -> dict:
    """Each family of ``group`` built here (TensorFlow) with random weights, saved, then built by name, loaded and
    run in one JAX process: ``{family: (tensorflow output, jax output)}``."""
    import keras

    from keras_resnet.model.registry import build_model

    families = CIFAR_FAMILIES if group == "cifar" else BOTTLENECK_FAMILIES
    x = np.random.default_rng(0).normal(size=(2, *INPUT)).astype("float32")
    np.save(os.path.join(folder, "x.npy"), x)
    reference = {}
    for key, (name, options) in families.items():
        model = build_model(name, weights=None, input_shape=INPUT, classes=10, classifier_activation=None, **options)
        _randomize(model, np.random.default_rng(1))
        model.save_weights(os.path.join(folder, f"{key}.weights.h5"))
        reference[key] = keras.ops.convert_to_numpy(model(x, training=False))
    result = subprocess.run([sys.executable, "-c", FORWARD, folder, json.dumps(families)], env=_env("jax"),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _last_json(result.stdout)["backend"] == "jax"
    return {key: (reference[key], np.load(os.path.join(folder, f"{key}-out.npy"))) for key in families}


NO_JAX = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed: "
                                                                              "pip install -e '.[jax]'")


@pytest.fixture(scope="module")
def forward_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("forward")


@NO_JAX
@pytest.mark.parametrize("family", [*CIFAR_FAMILIES, *(pytest.param(f, marks=pytest.mark.slow)
                                                       for f in BOTTLENECK_FAMILIES)])
def test_builders_run_under_jax_as_under_tensorflow(forward_folder, family):
    group = "cifar" if family in CIFAR_FAMILIES else "bottleneck"
    (forward_folder / group).mkdir(exist_ok=True)
    expected, got = _forward(group, str(forward_folder / group))[family]
    assert got.shape == expected.shape == (2, 10)
    assert np.isfinite(expected).all() and np.ptp(expected) > 1e-3  # the random weights reach the logits
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


# ---- train (killed and resumed), evaluate under both backends ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_resume_and_evaluate(tmp_path, backend):
    from keras_resnet.model.schedules import ResNetSchedule

    out = tmp_path / "run"
    epochs, batch, limit = 3, 32, 128
    args = ["train", "--model", "resnet20", "--dataset", "digits", "--epochs", str(epochs), "--limit", str(limit),
            "--batch-size", str(batch), "--verbose", "2", "--json", "--output", str(out)]
    state = out / "backup" / "state.json"
    process = popen(*args, env=_env(backend))
    deadline, epoch = time.time() + 900, 0
    while time.time() < deadline and process.poll() is None and epoch < 1:
        try:
            epoch = json.loads(state.read_text())["epoch"]
        except (OSError, ValueError):
            time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed: " + process.communicate()[1][-2000:]
    process.send_signal(signal.SIGKILL)
    process.communicate()
    killed_at = json.loads(state.read_text())["epoch"]
    assert 1 <= killed_at < epochs

    result = run(*args, env=_env(backend), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    version = importlib.metadata.version(backend)
    start_line = next(line for line in result.stdout.splitlines() if "resuming after epoch" in line)
    assert f"backend {backend} {version}, " in start_line and f"; resuming after epoch {killed_at};" in start_line
    summary = _last_json(result.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["backend"] == {"name": backend, "version": version}
    assert summary["distribution"] == {"strategy": "default", "replicas": 1}
    assert summary["epochs_completed"] == epochs and summary["resumed_at_epochs"] == [killed_at]
    rows = _history(out)
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    # The optimizer's step counter came back with the backup: each epoch's learning rate is the schedule's value
    # after epoch × steps steps (a fresh optimizer would repeat epoch 1's rate after the resume).
    steps = limit // batch
    schedule = ResNetSchedule(0.1 * batch / 128, epochs * steps)
    expected = [float(schedule(e * steps)) for e in range(1, epochs + 1)]
    assert len(set(expected)) == epochs
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx(expected, rel=1e-6)
    assert any((out / "logs" / "train").iterdir())  # TensorBoard on this backend too

    evaluated = {}
    for where in (backend, "tensorflow"):
        result = run("evaluate", str(out / "best.keras"), "--dataset", "digits", "--json", env=_env(where),
                     timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        evaluated[where] = _last_json(result.stdout)
        assert evaluated[where]["backend"]["name"] == where
        assert f"backend {where} " in result.stdout.splitlines()[0]
    ours, tf = evaluated[backend], evaluated["tensorflow"]
    assert ours["images"] == tf["images"] == summary["data"]["test"]
    assert ours["accuracy"] == tf["accuracy"]
    assert ours["loss"] == pytest.approx(tf["loss"], rel=1e-4)
    # ...and the run's own test figure (model.evaluate on the backend) is the same model on the same images.
    assert summary["test_accuracy"] == pytest.approx(ours["accuracy"], abs=1e-6)


DEMO_TRAINING = textwrap.dedent("""
    import dataclasses, json, sys
    from keras_resnet.demo import story as demo
    from keras_resnet.train import loop as train
    from keras_resnet.spec.commands import DemoSettings
    recipe = dataclasses.replace(demo.recipe_for(DemoSettings(epochs=1, batch_size=32)), limit=64)
    print(json.dumps(train.train(recipe, sys.argv[1], verbose=0)))
""")


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_demo_training_path(tmp_path, backend):
    """The demo's recipe (cosine schedule, label smoothing: one-hot labels from the tf.data pipeline)."""
    result = subprocess.run([sys.executable, "-c", DEMO_TRAINING, str(tmp_path / "train")], env=_env(backend),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = _last_json(result.stdout)
    assert summary["backend"]["name"] == backend
    assert summary["recipe"]["label_smoothing"] > 0 and summary["recipe"]["loss"] == "categorical_crossentropy"
    assert summary["epochs_completed"] == 1 and 0 <= summary["test_accuracy"] <= 1
    assert all(os.path.isfile(summary["files"][name]) for name in ("best.keras", "history.csv", "curves.png"))
