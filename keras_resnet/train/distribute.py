"""Where a run executes: the Keras backend of the process and the tf.distribute strategy (:func:`make_strategy`).

Runs use the Keras backend of the process (``KERAS_BACKEND``: tensorflow, jax or torch; ``summary.json`` names it).
tf.distribute strategies exist on TensorFlow only: on JAX and PyTorch a run is one process on Keras' default device.
With ``MultiWorkerMirroredStrategy`` only the chief (:func:`is_chief`) writes the run's files.
"""

from __future__ import annotations

import json
import os

from keras_resnet.core import compat
from keras_resnet.core.errors import ConfigError
from keras_resnet.spec.recipe import STRATEGIES

# The package that implements each Keras backend, for the version reported in summary.json and the console.
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy",
                    "openvino": "openvino"}


def backend_info() -> dict:
    """``{"name": "jax", "version": "0.10.2"}``: the Keras backend this process runs (``KERAS_BACKEND``)."""
    import keras

    name = keras.backend.backend()
    return {"name": name, "version": compat.version_of(BACKEND_PACKAGES.get(name, name))}


def backend_text(info: dict | None = None) -> str:
    info = info or backend_info()
    return f"{info['name']} {info['version']}" if info.get("version") else info["name"]


def make_strategy(name: str = "auto", backend: str | None = None):
    """``auto``: MultiWorkerMirrored if TF_CONFIG names several tasks, Mirrored on several GPUs, else default.

    tf.distribute strategies exist on the TensorFlow backend only. On JAX and PyTorch ``auto`` means no strategy
    (``None``: one process, Keras' default device) and any other strategy is refused, as is a TF_CONFIG that
    names several workers (each process would silently train a model of its own).
    """
    if name not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; got {name!r}")
    backend = backend or backend_info()["name"]
    cluster = _tf_config().get("cluster", {})
    workers = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
    if backend != "tensorflow":
        if name != "auto":
            raise ConfigError(f"--strategy {name} needs the TensorFlow backend (tf.distribute); this is the "
                              f"{backend} backend (KERAS_BACKEND={backend}). Use --strategy auto, or "
                              "KERAS_BACKEND=tensorflow")
        if workers > 1:
            raise ConfigError(f"TF_CONFIG lists {workers} workers, but multi-worker training needs the TensorFlow "
                              f"backend; this is the {backend} backend. Unset TF_CONFIG or use "
                              "KERAS_BACKEND=tensorflow")
        return None
    import tensorflow as tf

    if name == "multiworker" or (name == "auto" and workers > 1):
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError("--strategy multiworker needs TF_CONFIG (cluster and task) in the environment; "
                            "see docs/training.md")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" and not gpus:  # no GPU: mirror over the logical CPUs (tests; one CPU is one replica)
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if name == "mirrored" or len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _tf_config() -> dict:
    try:
        return json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {error}") from error


def is_multiworker(strategy) -> bool:
    """Whether ``strategy`` is a ``MultiWorkerMirroredStrategy`` (False for ``None``: JAX / PyTorch)."""
    if strategy is None:
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def strategy_name(strategy) -> str:
    """The strategy's class name for ``summary.json``; ``default`` for TensorFlow's default one and for none."""
    if strategy is None:  # JAX / PyTorch: no tf.distribute strategy, one device
        return "default"
    if is_multiworker(strategy):
        return "MultiWorkerMirroredStrategy"
    return "default" if compat.is_default_strategy(strategy) else type(strategy).__name__


def is_chief(strategy=None) -> bool:
    """Whether this process writes the run's files (the chief; worker 0 when the cluster has no chief)."""
    config = _tf_config()
    task = config.get("task", {})
    kind, index = task.get("type"), int(task.get("index", 0))
    if strategy is None or kind is None or not is_multiworker(strategy):
        return True
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in config.get("cluster", {}))
