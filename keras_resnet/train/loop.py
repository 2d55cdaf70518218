"""Training with He et al.'s recipe: :func:`train` (the loop around ``model.fit``) and :func:`run_training`
(``keras-resnet train``'s work: a :class:`~keras_resnet.spec.recipe.Recipe` and a ``TrainRun``).

A run writes its folder (``best.keras last.keras history.csv summary.json curves.png logs/ backup/``) and resumes
after its last completed epoch when restarted with the same recipe: see :mod:`keras_resnet.train.state` for the
commit point, :mod:`keras_resnet.train.callbacks` for what each epoch's end writes, :mod:`keras_resnet.train.recipe`
for the model, optimizer and loss, and :mod:`keras_resnet.train.distribute` for the backend and tf.distribute.

Runs on the Keras backend of the process (``KERAS_BACKEND``: tensorflow, jax or torch; ``summary.json`` names
it). The tf.data pipelines feed every backend; tf.distribute strategies exist on TensorFlow only (see
:func:`keras_resnet.train.distribute.make_strategy`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict
from typing import Any

from keras_resnet.core import compat, runlock
from keras_resnet.core.errors import ConfigError, OutputError
from keras_resnet.core.files import atomic_write
from keras_resnet.data import datasets as data_lib
from keras_resnet.data import pipeline
from keras_resnet.spec.recipe import Recipe, TrainRun
from keras_resnet.spec.specs import model_spec, normalize_name
from keras_resnet.train import callbacks as callbacks_lib
from keras_resnet.train import jit as jit_lib
from keras_resnet.train.distribute import (
    backend_info,
    backend_text,
    is_chief,
    is_multiworker,
    make_strategy,
    strategy_name,
)
from keras_resnet.train.finetune import finetune_model, load_init, write_preprocessing
from keras_resnet.train.recipe import compile_model, model_for_dataset, one_hot_labels, smooth_labels
from keras_resnet.train.state import RunState


def run_training(recipe: Recipe, run: TrainRun | None = None) -> dict:
    """``keras-resnet train``: :func:`train` ``recipe`` as ``run`` says (output folder, strategy, verbosity);
    returns the summary. A ``recipe.init`` file is loaded and fine-tuned by :func:`train`."""
    run = run or TrainRun()
    return train(recipe, run_output(recipe, run), strategy=run.strategy, verbose=run.verbose, jit=run.jit)


def run_output(recipe: Recipe, run: TrainRun) -> str:
    """The output folder of ``keras-resnet train``: ``run.output``, else :func:`default_output` of the recipe."""
    return run.output or default_output(recipe)


def default_output(recipe: Recipe) -> str:
    """``runs/MODEL-DATASET`` (``folder:PATH`` datasets count as ``folder``)."""
    dataset = "folder" if str(recipe.dataset).startswith("folder:") else normalize_name(recipe.dataset)
    return os.path.join("runs", f"{normalize_name(recipe.model)}-{dataset}")


def train(recipe: Recipe, output: str | None = None, *, strategy: str = "auto", verbose: int | str = 1,
          init_model=None, jit: str = "auto") -> dict:
    """Train ``recipe.model`` on ``recipe.dataset``; write the run to ``output``; return the summary.

    ``output`` defaults to ``runs/MODEL-DATASET``. Restarting with the same recipe resumes after the last
    completed epoch (see :mod:`keras_resnet.train.state`); a different recipe on the same output is refused.
    Example: ``train(Recipe(model="resnet20", dataset="digits", epochs=15, schedule="cosine"), "runs/r20")``.
    ``recipe.init`` (fine-tuning) starts from that model file, loaded through the safe loader
    (:func:`keras_resnet.train.finetune.load_init`: folder images at its input size unless ``recipe.image_size``
    says otherwise; its preprocessing record follows to ``best.keras`` and ``last.keras``), or from ``init_model``
    when given (that file, already loaded). The run is named after the file. ``jit``: XLA ``auto``, ``on`` or
    ``off`` (:mod:`keras_resnet.train.jit`; ``summary["jit"]`` says what ran).
    """
    start = time.perf_counter()
    preprocessing = None
    if recipe.init is not None:
        if init_model is None:
            recipe, init_model, preprocessing = load_init(recipe)
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
        return _train(recipe, output, shown, distribution, chief, verbose, start, init_model, jit)
    created = not os.path.exists(output)
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder {output}: {error.strerror}") from error
    try:
        with runlock.hold(output, shown):  # one run per folder; a second one fails here, before loading data
            runlock.remove_leftovers(output)  # what killed runs left: ours now that we hold the lock
            summary = _train(recipe, output, shown, distribution, chief, verbose, start, init_model, jit)
            if preprocessing is not None:  # the source's crop/resize policy follows the fine-tuned models
                write_preprocessing(output, preprocessing)
            return summary
    finally:
        if created:  # a run refused before it wrote anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                os.rmdir(output)


def _train(recipe: Recipe, output: str, shown: str, distribution, chief: bool, verbose, start: float,
           init_model=None, jit: str = "auto") -> dict:
    dataset, data_dir, image_size = recipe.dataset, recipe.data_dir, recipe.image_size
    folder = {"image_size": image_size, "bad_images": recipe.bad_images}  # used by folder datasets only
    info = data_lib.info(dataset, data_dir, **folder)
    x_train, y_train = data_lib.load(dataset, "train", data_dir, **folder)
    if recipe.limit is not None:
        x_train, y_train = x_train[:recipe.limit], y_train[:recipe.limit]
    x_val, y_val = data_lib.load(dataset, "val", data_dir, **folder)
    x_test, y_test = data_lib.load(dataset, "test", data_dir, **folder)
    multiworker = is_multiworker(distribution)
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
                    (x_train, y_train), (x_val, y_val), (x_test, y_test), verbose, start, shown, init_model, jit)
    finally:
        if not chief:
            shutil.rmtree(workdir, ignore_errors=True)


def _pipelines(recipe: Recipe, info, train_data, val_data, test_data, multiworker: bool):
    """The train, validation and test tf.data pipelines (one-hot labels where the recipe's loss needs them)."""
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
    return train_ds, val_ds, test_ds


def _run(recipe, info, distribution, chief, output, workdir, steps, multiworker, train_data, val_data,
         test_data, verbose, start, shown=None, init_model=None, jit_mode: str = "auto") -> dict:
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
        jit = jit_lib.choose(jit_mode, distributed=strategy_name(distribution) != "default",
                             steps=steps * max(recipe.epochs - state.epoch, 0))
        compile_model(model, recipe, steps, info.num_classes, jit_compile=jit.setting)
        jit.compiled(model)
        if backup_file:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(backup_file)  # weights and optimizer state (iterations, momentum)
    if multiworker:
        compat.check_multiworker_support()  # before any data moves (the workarounds apply around fit/evaluate)
    params = int(model.count_params())
    n_train = len(train_data[0])
    replicas = distribution.num_replicas_in_sync if distribution is not None else 1
    backend = backend_info()
    if verbose:
        where = f"resuming after epoch {state.epoch}" if resumed else "starting"
        print(f"{recipe.model}: {params:,} parameters; {info.name}: {n_train} train / {len(val_data[0])} val / "
              f"{len(test_data[0])} test images {info.image_shape}; {recipe.epochs} epochs of {steps} steps, "
              f"batch {recipe.batch_size} on {replicas} replica(s), lr {recipe.base_lr():g} ({recipe.schedule}); "
              f"backend {backend_text(backend)}, {jit.text()}; {where}; output {output}", flush=True)
    train_ds, val_ds, test_ds = _pipelines(recipe, info, train_data, val_data, test_data, multiworker)
    ema = bool(recipe.ema_decay)
    epoch_end = callbacks_lib.epoch_end_class()(state, state.backup, n_train, shown=shown or output, ema=ema)
    # Keras' multi-worker bugs are patched around this model's fit and evaluate only, then restored.
    with compat.multiworker_workarounds(model, distribution) if multiworker else contextlib.nullcontext():
        if state.epoch < recipe.epochs:
            callbacks = [epoch_end, *callbacks_lib.tensorboard_callbacks(os.path.join(workdir, "logs"), verbose)]
            jit_lib.fit(model, jit, train_ds, validation_data=val_ds, epochs=recipe.epochs,
                        initial_epoch=state.epoch, shuffle=False, callbacks=callbacks, verbose=verbose)

        if ema and state.last_file:  # the published last epoch: its moving average (fit also ends on it)
            model.load_weights(os.path.join(state.backup, state.last_file))
        last = model.evaluate(test_ds, verbose=0, return_dict=True)
        if state.best:
            model.load_weights(os.path.join(state.backup, state.best["file"]))
            best = model.evaluate(test_ds, verbose=0, return_dict=True)
        else:
            best = last
    results: dict[str, Any] = {}
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
        "jit": jit.record(),
        "distribution": {"strategy": strategy_name(distribution), "replicas": replicas},
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
        callbacks_lib.plot_curves(state.rows, os.path.join(output, "curves.png"), f"{recipe.model} on {info.name}")
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
            f"(last epoch: {m['last_test_accuracy']:.2%}); backend {backend_text(s['backend'])}, XLA "
            f"{'on' if s.get('jit', {}).get('used') else 'off'}. files in "
            f"{os.path.dirname(s['files']['best.keras'])}")
