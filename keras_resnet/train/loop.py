"""Training with He et al.'s recipe: ``keras-resnet train`` and :func:`train`.

Recipe (He et al. 2015, CIFAR-10): SGD with momentum 0.9, learning rate 0.1 per 128 images
(``lr = 0.1 · batch / 128``), weight decay 1e-4 (the builders' ``weight_decay``, gradient ``wd · w``),
learning rate ÷10 at 50% and 75% of the training steps (or ``schedule="cosine"``), optional constant
warm-up at lr/10 (their ResNet-110 trick), 4-pixel pad + random crop + horizontal flip.

Everything a run writes lives in its output folder::

    best.keras  last.keras  history.csv  summary.json  curves.png  logs/ (TensorBoard)  backup/

``backup/`` makes a run resumable: a run killed at any moment (SIGKILL included) and restarted with
the same arguments continues after its last completed epoch. After every epoch the model (with its
optimizer state) is saved to ``backup/``, then ``backup/state.json`` is replaced atomically (the commit
point), then ``last.keras``, ``best.keras`` and ``history.csv`` are published from the committed state.

Runs on the Keras backend of the process (``KERAS_BACKEND``: tensorflow, jax or torch; ``summary.json`` names
it). The tf.data pipelines feed every backend; tf.distribute strategies exist on TensorFlow only (see
:func:`make_strategy`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import importlib.util
import io
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from keras_resnet.core import compat, runlock
from keras_resnet.core.errors import ConfigError, DataError, OutputError
from keras_resnet.core.files import atomic_path, atomic_write, publish, save_figure
from keras_resnet.data import datasets as data_lib
from keras_resnet.data import pipeline
from keras_resnet.model.schedules import ResNetSchedule
from keras_resnet.spec.recipe import STRATEGIES, Recipe
from keras_resnet.spec.specs import model_spec, normalize_name

STATE_VERSION = 1


# ---- model -----------------------------------------------------------------------------------------------


def model_for_dataset(name: str, info: data_lib.DatasetInfo, *, mean=None, variance=None,
                      mixed_precision: bool = False, **builder_kwargs):
    """``Input (float32 pixels 0–255) → Normalization(name="normalization") → builder`` as one functional model.

    The per-channel constants default to ``info.mean``/``info.variance`` (the training split's), so a
    saved model carries them and is fed raw pixels. The model is named after the builder (e.g. "resnet20").
    With ``mixed_precision`` the layers compute in float16 and the classifier in float32.
    """
    import keras

    from keras_resnet.model.registry import build_model

    key, _ = model_spec(name)
    mean = info.mean if mean is None else mean
    variance = info.variance if variance is None else variance
    kwargs = {"classes": info.num_classes, "weights": None, **builder_kwargs}
    with _dtype_policy("mixed_float16" if mixed_precision else None):
        inputs = keras.Input(info.image_shape, name="image")
        x = keras.layers.Normalization(mean=list(mean), variance=list(variance), name="normalization")(inputs)
        model = build_model(key, input_tensor=x, name=key, **kwargs)
        if mixed_precision:  # softmax and the loss in float32: rebuild the classifier with a float32 policy
            def clone(layer):
                config = layer.get_config()
                if layer.name == "predictions":
                    config["dtype"] = "float32"
                return layer.__class__.from_config(config)

            model = keras.models.clone_model(model, clone_function=clone)
    return model


def finetune_model(source, info: data_lib.DatasetInfo, *, weight_decay: float = 0.0):
    """A trainable copy of ``source`` (a loaded Keras model) for ``info``'s dataset: the same layers and weights
    (its ``normalization`` layer, e.g. an imported model's ImageNet mean/std, included), L2 ``weight_decay`` on
    its kernels like the builders', and a new ``predictions`` classifier (same activation, random init) when the
    class count differs. Raises ConfigError when the image shapes differ or no classifier is found."""
    import keras

    shape = tuple(source.inputs[0].shape[1:])
    if None not in shape and shape != tuple(info.image_shape):
        raise ConfigError(f"the model takes {shape} images but {info.name} gives {tuple(info.image_shape)}: pass "
                          f"--image-size {shape[0]} (folder datasets)")
    decay = keras.regularizers.L2(weight_decay / 2) if weight_decay else None  # gradient wd · w, as blocks.py

    def clone(layer):
        config = layer.get_config()
        if decay is not None and "kernel_regularizer" in config:
            config["kernel_regularizer"] = keras.regularizers.serialize(decay)
        return layer.__class__.from_config(config)

    model = keras.models.clone_model(source, clone_function=clone)
    model.set_weights(source.get_weights())
    try:
        head = model.get_layer("predictions")
    except ValueError:
        raise ConfigError(f"{source.name} has no 'predictions' layer to fine-tune") from None
    if int(head.units) == info.num_classes:
        return model
    config = {**head.get_config(), "units": info.num_classes}
    config.pop("kernel_initializer", None)
    config.pop("bias_initializer", None)
    outputs = head.__class__.from_config(config)(head.input)
    return keras.Model(model.inputs, outputs, name=model.name)


@contextlib.contextmanager
def _dtype_policy(policy: str | None):
    import keras

    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def compile_model(model, recipe: Recipe, steps_per_epoch: int, num_classes: int) -> None:
    """SGD + momentum with the recipe's schedule, sparse cross-entropy, accuracy (and top-5 above 5 classes).

    One-hot targets (label smoothing, mixup/cutmix, BCE: ``recipe.one_hot``) take the categorical loss and
    metrics. ``loss="bce"``: Keras' BinaryCrossentropy, which on a softmax output reads the classifier's logits
    (Keras' ``_keras_logits``), so it is timm's sigmoid BCE on the logits (tests/test_recipe.py checks the value).
    ``ema_decay``: the optimizer keeps the moving average (Keras' ``use_ema``), saved with its state.
    """
    import keras

    schedule = ResNetSchedule(
        recipe.base_lr(), recipe.epochs * steps_per_epoch, int(round(recipe.warmup_epochs * steps_per_epoch)),
        recipe.base_lr() * recipe.warmup_factor, recipe.schedule)
    metrics: list[Any] = ["accuracy"]
    if num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"))
    if recipe.one_hot:  # Keras' smoothing needs one-hot labels: see one_hot_labels()
        if recipe.loss == "bce":  # smoothing timm's way, in the targets (smooth_labels): Keras' BCE one is binary
            loss = keras.losses.BinaryCrossentropy()
        else:
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if num_classes > 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"))
    else:
        loss = "sparse_categorical_crossentropy"
    ema = {"use_ema": True, "ema_momentum": recipe.ema_decay} if recipe.ema_decay else {}
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=recipe.momentum, **ema), loss=loss,
                  metrics=metrics)


def one_hot_labels(dataset, num_classes: int):
    """``(image, int label)`` batches → ``(image, one-hot label)``, for the label-smoothed loss."""
    import tensorflow as tf

    return dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)


def smooth_labels(dataset, smoothing: float, num_classes: int):
    """One-hot/soft label rows ``y`` → ``y · (1 − s) + s / K`` (timm's smoothing, for the BCE loss)."""
    import tensorflow as tf

    return dataset.map(lambda x, y: (x, y * (1.0 - smoothing) + smoothing / num_classes),
                       num_parallel_calls=tf.data.AUTOTUNE)


def ema_variables(model) -> list[tuple]:
    """``(model variable, its moving average)`` pairs of a model compiled with ``ema_decay``."""
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # LossScaleOptimizer wraps it
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not getattr(optimizer, "use_ema", False) or averages is None:
        raise ConfigError("the model's optimizer keeps no moving average of the weights (ema_decay is off)")
    return [(v, a) for v, a in zip(optimizer._trainable_variables, averages, strict=True) if a is not None]


def swap_ema(model) -> None:
    """Exchange the model's trainable weights with their moving averages (twice: back as before)."""
    for variable, average in ema_variables(model):
        value = variable.numpy()
        variable.assign(average)
        average.assign(value)


# ---- backend ---------------------------------------------------------------------------------------------

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


# ---- distribution ----------------------------------------------------------------------------------------


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


def _is_multiworker(strategy) -> bool:
    if strategy is None:
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _strategy_name(strategy) -> str:
    if strategy is None:  # JAX / PyTorch: no tf.distribute strategy, one device
        return "default"
    if _is_multiworker(strategy):
        return "MultiWorkerMirroredStrategy"
    name = type(strategy).__name__
    return "default" if name.startswith("_Default") else name


def is_chief(strategy=None) -> bool:
    """Whether this process writes the run's files (the chief; worker 0 when the cluster has no chief)."""
    config = _tf_config()
    task = config.get("task", {})
    kind, index = task.get("type"), int(task.get("index", 0))
    if strategy is None or kind is None or not _is_multiworker(strategy):
        return True
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in config.get("cluster", {}))


# ---- files -----------------------------------------------------------------------------------------------


def _save_model(model, path: str) -> None:
    with atomic_path(path) as tmp:  # the temporary name keeps the .keras suffix Keras requires
        model.save(tmp)


def _history_csv(rows: list[dict]) -> str:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def plot_curves(rows: list[dict], path: str, title: str = "") -> None:
    """Loss and accuracy per epoch (train and validation) as a PNG, written atomically."""
    # No pyplot: the caller's backend (a notebook's inline one) is left alone.
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for prefix, style in (("", "--"), ("val_", "-")):
            values = [r.get(prefix + metric) for r in rows]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, label=("validation " if prefix else "train ") + metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


# ---- the run state: backup, history, best ---------------------------------------------------------------


class RunState:
    """The committed progress of a run in ``OUTPUT/backup/state.json`` and the files published from it."""

    def __init__(self, output: str, write: bool):
        self.output = output
        self.backup = os.path.join(output, "backup")
        self.write = write
        self.epoch = 0
        self.rows: list[dict] = []
        self.best: dict | None = None  # {"epoch", "value", "file"}
        self.last_file: str | None = None
        self.resume_file: str | None = None  # with EMA: the raw weights + optimizer; last_file holds the averages
        self.train_time = 0.0
        self.recipe: dict | None = None
        self.starts: list[int] = []

    @property
    def path(self) -> str:
        return os.path.join(self.backup, "state.json")

    def restore(self, recipe: dict) -> bool:
        if not os.path.isfile(self.path):
            return False
        try:
            with open(self.path) as f:
                state = json.load(f)
            self.epoch, self.rows, self.best = state["epoch"], state["history"], state["best"]
            self.last_file, self.train_time, self.recipe = state["last_file"], state["train_time_s"], state["recipe"]
            self.starts = state.get("starts", [])
            self.resume_file = state.get("resume_file")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"cannot resume: {self.path} is unreadable ({error}); delete {self.backup} to restart"
                            ) from error
        defaults = asdict(Recipe())  # fields added since the run started count with their default value
        saved = {**defaults, **self.recipe} if isinstance(self.recipe, dict) else self.recipe
        if saved != recipe:
            changed = sorted(k for k in set(recipe) | set(saved) if recipe.get(k) != saved.get(k))
            raise ConfigError(f"{self.output} holds a run with different arguments ({', '.join(changed)}); "
                            f"use another --output or delete the folder")
        return True

    def commit(self) -> None:
        if not self.write:
            return
        state = {"version": STATE_VERSION, "epoch": self.epoch, "history": self.rows, "best": self.best,
                 "last_file": self.last_file, "train_time_s": self.train_time, "recipe": self.recipe,
                 "starts": self.starts, "resume_file": self.resume_file}
        atomic_write(self.path, json.dumps(state, indent=1))
        self.publish()

    def publish(self) -> None:
        """Make last.keras, best.keras, history.csv match the committed state; drop stale backups."""
        if not self.write:
            return
        if self.last_file:
            publish(os.path.join(self.backup, self.last_file), os.path.join(self.output, "last.keras"))
        if self.best:
            publish(os.path.join(self.backup, self.best["file"]), os.path.join(self.output, "best.keras"))
        atomic_write(os.path.join(self.output, "history.csv"), _history_csv(self.rows))
        keep = {"state.json", self.last_file, self.resume_file, self.best and self.best["file"]}
        for name in os.listdir(self.backup):
            if name not in keep:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.backup, name))


def check_finite_losses(logs: dict, epoch: int, state: RunState, shown: str) -> None:
    """Raise :class:`ConfigError` when an epoch ended with a NaN or infinite loss: the run stops there, and the
    committed state (last.keras, best.keras, backup/) stays at the last good epoch."""
    bad = {k: logs[k] for k in ("loss", "val_loss") if k in logs and not math.isfinite(float(logs[k]))}
    if not bad:
        return
    what = ", ".join(f"{k} {float(v)}" for k, v in bad.items())
    kept = (f"{shown} keeps epoch {state.epoch}, the last good one" if state.epoch else
            "no epoch completed, so nothing was saved")
    raise ConfigError(f"training diverged at epoch {epoch} ({what}); stopped: {kept}. Try a lower --lr (with "
                      "another --output: a run resumes only with its own arguments)")


@functools.cache
def _callback_class():
    import keras

    class EpochEnd(keras.callbacks.Callback):
        """Times each epoch, logs the learning rate, then saves the backup and commits the run state."""

        def __init__(self, state: RunState, model_dir: str, n_train: int, monitor: str = "val_accuracy",
                     shown: str | None = None, ema: bool = False):
            super().__init__()
            self.state, self.model_dir, self.n_train, self.monitor = state, model_dir, n_train, monitor
            self.ema = ema  # validate and publish the moving average of the weights
            self.shown = shown or state.output
            self.epoch_times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            self.t_train = None

        def on_test_begin(self, logs=None):
            if self.t_train is None:
                self.t_train = time.perf_counter() - self.t0
            if self.ema:
                swap_ema(self.model)

        def on_test_end(self, logs=None):
            if self.ema:
                swap_ema(self.model)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            check_finite_losses(logs, epoch + 1, self.state, self.shown)  # before anything of this epoch is kept
            seconds = time.perf_counter() - self.t0
            train_seconds = self.t_train if self.t_train is not None else seconds
            self.epoch_times.append(train_seconds)
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
                   "epoch_time_s": round(seconds, 3), "train_images_per_s": round(self.n_train / train_seconds, 1)}
            st = self.state
            name = resume = f"epoch-{epoch + 1}.keras"
            _save_model(self.model, os.path.join(self.model_dir, name))
            if self.ema:  # resume from the raw weights (with the averages in the optimizer); publish the averages
                name = f"epoch-{epoch + 1}-ema.keras"
                swap_ema(self.model)
                try:
                    _save_model(self.model, os.path.join(self.model_dir, name))
                finally:
                    swap_ema(self.model)
            value = logs.get(self.monitor)
            best = st.best
            if value is not None and (best is None or value > best["value"]):
                best = {"epoch": epoch + 1, "value": float(value), "file": name}
            st.epoch, st.rows, st.best, st.last_file = epoch + 1, [*st.rows, row], best, name
            st.resume_file = resume if self.ema else None
            st.train_time += seconds
            st.commit()

    return EpochEnd


# ---- the API ---------------------------------------------------------------------------------------------


def train(recipe: Recipe, output: str | None = None, *, strategy: str = "auto", verbose: int | str = 1,
          init_model=None) -> dict:
    """Train ``recipe.model`` on ``recipe.dataset``; write the run to ``output``; return the summary.

    ``output`` defaults to ``runs/MODEL-DATASET``. Restarting with the same recipe resumes after the last
    completed epoch (see the module docstring); a different recipe on the same output is refused.
    Example: ``train(Recipe(model="resnet20", dataset="digits", epochs=15, schedule="cosine"), "runs/r20")``.
    ``recipe.init`` (fine-tuning) needs ``init_model``, that file loaded (``keras-resnet train --init`` loads it
    with :func:`keras_resnet.io.model_io.load_model`); the run is named after the file.
    """
    start = time.perf_counter()
    if recipe.init is not None:
        if init_model is None:
            raise ConfigError("recipe.init needs init_model: the model loaded from that file")
        key = normalize_name(os.path.splitext(os.path.basename(recipe.init))[0]) or "init"
    else:
        key, _ = model_spec(recipe.model)
    recipe = dataclasses.replace(recipe, model=key, builder_options=dict(recipe.builder_options))
    shown = output or default_output(recipe)  # as the user wrote it, for messages
    output = os.path.abspath(os.path.expanduser(shown))
    if os.path.exists(output) and not os.path.isdir(output):
        raise OutputError(f"output {output} exists and is not a folder")
    distribution = make_strategy(strategy)  # first: multi-worker collectives must be set up before any TF op
    chief = is_chief(distribution)
    if not chief:
        return _train(recipe, output, shown, distribution, chief, verbose, start, init_model)
    created = not os.path.exists(output)
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder {output}: {error.strerror}") from error
    try:
        with runlock.hold(output, shown):  # one run per folder; a second one fails here, before loading data
            runlock.remove_leftovers(output)  # what killed runs left: ours now that we hold the lock
            return _train(recipe, output, shown, distribution, chief, verbose, start, init_model)
    finally:
        if created:  # a run refused before it wrote anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                os.rmdir(output)


def _train(recipe: Recipe, output: str, shown: str, distribution, chief: bool, verbose, start: float,
           init_model=None) -> dict:
    dataset, data_dir, image_size = recipe.dataset, recipe.data_dir, recipe.image_size
    folder = {"image_size": image_size, "bad_images": recipe.bad_images}  # used by folder datasets only
    info = data_lib.info(dataset, data_dir, **folder)
    x_train, y_train = data_lib.load(dataset, "train", data_dir, **folder)
    if recipe.limit is not None:
        x_train, y_train = x_train[:recipe.limit], y_train[:recipe.limit]
    x_val, y_val = data_lib.load(dataset, "val", data_dir, **folder)
    x_test, y_test = data_lib.load(dataset, "test", data_dir, **folder)
    multiworker = _is_multiworker(distribution)
    if multiworker and len(x_train) < recipe.batch_size:
        raise ConfigError(f"multi-worker training drops partial batches: batch size {recipe.batch_size} exceeds "
                          f"the {len(x_train)} training images")
    batch_size = recipe.batch_size
    steps = len(x_train) // batch_size if multiworker else math.ceil(len(x_train) / batch_size)

    workdir = output if chief else tempfile.mkdtemp(prefix="keras-resnet-worker-")
    try:
        os.makedirs(os.path.join(workdir, "backup"), exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder {workdir}: {error.strerror}") from error
    try:
        return _run(recipe, info, distribution, chief, output, workdir, steps, multiworker,
                    (x_train, y_train), (x_val, y_val), (x_test, y_test), verbose, start, shown, init_model)
    finally:
        if not chief:
            shutil.rmtree(workdir, ignore_errors=True)


def default_output(recipe: Recipe) -> str:
    """``runs/MODEL-DATASET`` (``folder:PATH`` datasets count as ``folder``)."""
    dataset = "folder" if str(recipe.dataset).startswith("folder:") else normalize_name(recipe.dataset)
    return os.path.join("runs", f"{normalize_name(recipe.model)}-{dataset}")


def _run(recipe, info, distribution, chief, output, workdir, steps, multiworker, train_data, val_data,
         test_data, verbose, start, shown=None, init_model=None) -> dict:
    import keras

    state = RunState(workdir, write=True)
    recipe_dict = asdict(recipe)
    # Every worker resumes from the chief's committed state (OUTPUT on a shared file system for multi-worker).
    reader = RunState(output, write=False)
    resumed = reader.restore(recipe_dict)
    state.epoch, state.rows, state.best, state.last_file = reader.epoch, reader.rows, reader.best, reader.last_file
    state.resume_file = reader.resume_file
    state.train_time, state.recipe, state.starts = reader.train_time, recipe_dict, [*reader.starts, reader.epoch]
    resume_file = reader.resume_file or reader.last_file
    backup_file = os.path.join(reader.backup, resume_file) if resumed and resume_file else None
    if chief and resumed:
        state.publish()  # a kill between commit and publish leaves stale files: publish again

    with distribution.scope() if distribution is not None else contextlib.nullcontext():
        if init_model is not None:
            model = finetune_model(init_model, info, weight_decay=recipe.weight_decay)
        else:
            model = model_for_dataset(recipe.model, info, mixed_precision=recipe.mixed_precision,
                                      weight_decay=recipe.weight_decay, **recipe.builder_options)
        compile_model(model, recipe, steps, info.num_classes)
        if backup_file:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(backup_file)  # weights and optimizer state (iterations, momentum)
    if multiworker:
        compat.patch_multiworker(model, distribution)
    params = int(model.count_params())
    n_train = len(train_data[0])
    replicas = distribution.num_replicas_in_sync if distribution is not None else 1
    backend = backend_info()
    if verbose:
        where = f"resuming after epoch {state.epoch}" if resumed else "starting"
        print(f"{recipe.model}: {params:,} parameters; {info.name}: {n_train} train / {len(val_data[0])} val / "
              f"{len(test_data[0])} test images {info.image_shape}; {recipe.epochs} epochs of {steps} steps, "
              f"batch {recipe.batch_size} on {replicas} replica(s), lr {recipe.base_lr():g} ({recipe.schedule}); "
              f"backend {backend_text(backend)}; {where}; output {output}", flush=True)
    shard = multiworker
    mix = ({"mixup_alpha": recipe.mixup_alpha, "cutmix_alpha": recipe.cutmix_alpha, "prob": recipe.mix_prob,
            "switch_prob": recipe.mix_switch_prob} if recipe.mixes else None)
    randaugment = (recipe.randaugment_ops, recipe.randaugment_magnitude) if recipe.randaugment_ops else None
    train_ds = pipeline.train_pipeline(*train_data, recipe.batch_size, flip=info.flip, seed=recipe.seed,
                                       augment=recipe.augment, drop_remainder=multiworker, shard_by_data=shard,
                                       randaugment=randaugment, mix=mix, num_classes=info.num_classes)
    val_ds = pipeline.eval_pipeline(*val_data, recipe.batch_size, shard_by_data=shard)
    test_ds = pipeline.eval_pipeline(*test_data, recipe.batch_size, shard_by_data=shard)
    if recipe.one_hot:  # mixed batches arrive one-hot already
        val_ds, test_ds = (one_hot_labels(ds, info.num_classes) for ds in (val_ds, test_ds))
        if not recipe.mixes:
            train_ds = one_hot_labels(train_ds, info.num_classes)
        if recipe.loss == "bce" and recipe.label_smoothing:
            train_ds = smooth_labels(train_ds, recipe.label_smoothing, info.num_classes)
    ema = bool(recipe.ema_decay)
    epoch_end = _callback_class()(state, state.backup, n_train, shown=shown or output, ema=ema)
    if state.epoch < recipe.epochs:
        callbacks = [epoch_end]
        if importlib.util.find_spec("tensorboard") is not None:
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(workdir, "logs")))
        elif verbose:
            print("note: the tensorboard package is not installed; no TensorBoard logs (pip install tensorboard)")
        model.fit(train_ds, validation_data=val_ds, epochs=recipe.epochs, initial_epoch=state.epoch, shuffle=False,
                  callbacks=callbacks, verbose=verbose)

    results: dict[str, Any] = {}
    if ema and state.last_file:  # the published last epoch: its moving average (fit also ends on it)
        model.load_weights(os.path.join(state.backup, state.last_file))
    last = model.evaluate(test_ds, verbose=0, return_dict=True)
    if state.best:
        model.load_weights(os.path.join(state.backup, state.best["file"]))
        best = model.evaluate(test_ds, verbose=0, return_dict=True)
    else:
        best = last
    final = state.rows[-1] if state.rows else {}
    for key in ("loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5"):
        if key in final:
            results[f"train_{key}" if not key.startswith("val_") else key] = final[key]
    results.update({f"test_{k}": float(v) for k, v in best.items()})
    results.update({f"last_test_{k}": float(v) for k, v in last.items()})
    speeds = epoch_end.epoch_times[1:] or epoch_end.epoch_times
    rates = [r["train_images_per_s"] for r in state.rows]
    summary = {
        "model": recipe.model,
        "parameters": params,
        "data": {"name": info.name, "data_dir": recipe.data_dir, "source": info.source, "classes": info.num_classes,
                 "image_shape": list(info.image_shape), "train": n_train, "val": len(val_data[0]),
                 "test": len(test_data[0]), "flip": info.flip},
        "recipe": {**recipe_dict, "lr": recipe.base_lr(), "optimizer": "SGD",
                   "loss": {"bce": "binary_crossentropy"}.get(recipe.loss, "categorical_crossentropy" if
                                                                 recipe.one_hot else "sparse_categorical_crossentropy")},
        "backend": backend,
        "distribution": {"strategy": _strategy_name(distribution), "replicas": replicas},
        "epochs_completed": state.epoch,
        "best_epoch": state.best["epoch"] if state.best else None,
        "metrics": results,
        "test_accuracy": results.get("test_accuracy"),
        "images_per_s": round(n_train / statistics.median(speeds), 1) if speeds else
        (statistics.median(rates[1:] or rates) if rates else None),
        "train_time_s": round(state.train_time, 2),
        "wall_time_s": round(time.perf_counter() - start, 2),
        "resumed_at_epochs": [e for e in state.starts if e > 0],
        "files": {name: os.path.join(output, name) for name in
                  ("best.keras", "last.keras", "history.csv", "summary.json", "curves.png", "logs")},
    }
    if chief:
        plot_curves(state.rows, os.path.join(output, "curves.png"), f"{recipe.model} on {info.name}")
        atomic_write(os.path.join(output, "summary.json"), json.dumps(summary, indent=2) + "\n")
    if verbose:
        print(_summary_text(summary), flush=True)
    return summary


def _summary_text(s: dict) -> str:
    m = s["metrics"]
    top5 = f", top-5 {m['test_top5']:.2%}" if "test_top5" in m else ""
    return (f"done: {s['model']} on {s['data']['name']}, {s['epochs_completed']} epochs in {s['train_time_s']:.1f} s "
            f"({s['images_per_s']} images/s). best epoch {s['best_epoch']} (val accuracy "
            f"{m.get('val_accuracy', float('nan')):.2%} at the end); test accuracy {m['test_accuracy']:.2%}{top5} "
            f"(last epoch: {m['last_test_accuracy']:.2%}); backend {backend_text(s['backend'])}. files in "
            f"{os.path.dirname(s['files']['best.keras'])}")


def compare(models: Sequence[str], recipe: Recipe, output: str = "runs/compare", *, verbose: int = 1) -> dict:
    """He et al.'s degradation experiment (their Fig. 6): train each model with ``recipe``, plot their errors.

    Writes ``OUTPUT/MODEL/`` per run, ``OUTPUT/compare.png`` (dashed: training error, solid: validation
    error) and ``OUTPUT/compare.json``; returns ``{"plot": path, "runs": {model: summary}}``.
    """
    # No pyplot: the caller's backend (a notebook's inline one) is left alone.
    from matplotlib.figure import Figure

    if not models:
        raise ConfigError("compare needs at least one model")
    dataset = recipe.dataset
    runs = {m: train(dataclasses.replace(recipe, model=m), os.path.join(output, normalize_name(m)), verbose=verbose)
            for m in models}
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for k, (name, summary) in enumerate(runs.items()):
        with open(summary["files"]["history.csv"]) as f:
            rows = list(csv.DictReader(f))
        epochs_ = [int(r["epoch"]) for r in rows]
        color = f"C{k}"
        ax.plot(epochs_, [100 * (1 - float(r["accuracy"])) for r in rows], "--", color=color, linewidth=1)
        ax.plot(epochs_, [100 * (1 - float(r["val_accuracy"])) for r in rows], "-", color=color, linewidth=2,
                label=f"{name} (test {summary['test_accuracy']:.1%})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.set_title(f"{dataset}: training error (dashed), validation error (solid)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(output, exist_ok=True)
    plot = os.path.join(output, "compare.png")
    save_figure(fig, plot)
    result = {"plot": plot, "runs": runs}
    atomic_write(os.path.join(output, "compare.json"), json.dumps(result, indent=2) + "\n")
    return result
