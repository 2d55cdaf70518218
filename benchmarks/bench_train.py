"""Training throughput: is the input pipeline a bottleneck, and do our builders train as fast as keras.applications?

Prints, from one run (CPU or GPU, whatever the Keras backend sees), with the backend and the CPU's features:
(a) ResNet-20 and ResNet-56 on digits (batch 128, He et al.'s recipe): images/s through the tf.data pipeline
    (shuffle + pad/crop/flip + batch + prefetch) vs the same model fed from in-memory arrays (pre-augmented
    float32, no pipeline work); the ratio should be >= 0.95. Also the pipeline alone, without a model.
(b) keras_resnet ResNet50 vs keras.applications ResNet50, same input, recipe and batches; ratio >= 0.98.
Measurements alternate between the two contenders (round-robin) and the medians are compared, which
cancels slow drifts of a shared machine.
``--backend jax|torch|tensorflow`` sets KERAS_BACKEND before Keras loads (default: KERAS_BACKEND, else
tensorflow): on JAX and PyTorch, (a) measures how well the same tf.data pipeline feeds that backend's ``fit``.
Usage: python benchmarks/bench_train.py [--backend jax] [--rounds 5] [--size 64] [--models resnet20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


class EpochTimer:
    def __init__(self):
        import keras

        outer = self

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                outer.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                outer.seconds = time.perf_counter() - outer.t0

        self.callback = Timer()
        self.seconds = float("nan")


def _fit_seconds(model, timer, *args, **kwargs) -> float:
    model.fit(*args, epochs=1, verbose=0, shuffle=False, callbacks=[timer.callback], **kwargs)
    return timer.seconds


def pipeline_vs_memory(name: str, rounds: int, batch: int = 128) -> dict:
    from keras_resnet.data import datasets as data
    from keras_resnet.data.pipeline import train_pipeline
    from keras_resnet.spec.recipe import Recipe
    from keras_resnet.train.recipe import compile_model, model_for_dataset

    info = data.info("digits")
    x, y = data.load("digits", "train")
    steps = -(-len(x) // batch)
    model = model_for_dataset(name, info, weight_decay=1e-4)
    compile_model(model, Recipe(model=name, batch_size=batch), steps, info.num_classes)
    pipeline = train_pipeline(x, y, batch, flip=info.flip, seed=0)
    augmented = np.concatenate([b.numpy() for b, _ in train_pipeline(x, y, len(x), flip=info.flip, seed=1)])
    timer = EpochTimer()
    for _ in range(2):  # trace both input paths (full and partial last batch) before timing
        _fit_seconds(model, timer, pipeline)
        _fit_seconds(model, timer, augmented, y, batch_size=batch)
    piped, memory = [], []
    for _ in range(rounds):
        piped.append(len(x) / _fit_seconds(model, timer, pipeline))
        memory.append(len(x) / _fit_seconds(model, timer, augmented, y, batch_size=batch))
    t0, n = time.perf_counter(), 0
    for _ in range(5):
        for _, labels in pipeline:
            n += len(labels)
    alone = n / (time.perf_counter() - t0)
    result = {"model": name, "pipeline_images_per_s": statistics.median(piped),
              "memory_images_per_s": statistics.median(memory), "pipeline_alone_images_per_s": alone}
    result["ratio"] = result["pipeline_images_per_s"] / result["memory_images_per_s"]
    return result


def ours_vs_keras_applications(rounds: int, size: int, batch: int = 32, steps: int = 8) -> dict:
    import keras
    import tensorflow as tf  # the same tf.data input on every backend

    from keras_resnet.model.models import ResNet50

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch * steps, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, batch * steps)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()

    def compiled(model):
        model.compile(keras.optimizers.SGD(0.1 * batch / 128, momentum=0.9), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    models = {
        "keras_resnet": compiled(ResNet50(weights=None, input_shape=(size, size, 3), classes=10)),
        "keras.applications": compiled(keras.applications.ResNet50(weights=None, input_shape=(size, size, 3),
                                                                   classes=10)),
    }
    params = {k: m.count_params() for k, m in models.items()}
    timer = EpochTimer()
    for model in models.values():
        _fit_seconds(model, timer, ds)
        _fit_seconds(model, timer, ds)
    speeds: dict[str, list[float]] = {k: [] for k in models}
    for r in range(rounds):
        order = list(models) if r % 2 == 0 else list(models)[::-1]  # alternate who goes first
        for key in order:
            speeds[key].append(len(x) / _fit_seconds(models[key], timer, ds))
    result = {f"{k}_images_per_s": statistics.median(v) for k, v in speeds.items()}
    result.update({"input": [size, size, 3], "batch": batch, "parameters": params,
                   "ratio": result["keras_resnet_images_per_s"] / result["keras.applications_images_per_s"]})
    return result


def backend_description() -> str:
    import keras

    from keras_resnet.train.distribute import backend_info

    info = backend_info()
    return f"Keras {keras.__version__} on {info['name']} {info['version']}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                        help="the Keras backend (default: $KERAS_BACKEND, else tensorflow)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating measurements per contender")
    parser.add_argument("--size", type=int, default=64, help="ResNet50 input size (default: 64)")
    parser.add_argument("--models", default="resnet20,resnet56", help="CIFAR models for (a)")
    parser.add_argument("--skip-resnet50", action="store_true")
    args = parser.parse_args(argv)
    if args.backend:
        if "keras" in sys.modules:
            parser.error("--backend must be chosen before Keras is imported")
        os.environ["KERAS_BACKEND"] = args.backend
    import keras
    from resnet_edge.cpu import cpu_info, describe_cpu

    backend = keras.backend.backend()
    print(f"backend: {backend_description()}; CPU: {describe_cpu()}", flush=True)
    if backend == "tensorflow":
        import tensorflow as tf

        print(f"devices: {[d.device_type for d in tf.config.list_logical_devices()]}", flush=True)
    elif backend == "jax":
        import jax

        print(f"devices: {[d.platform for d in jax.devices()]}", flush=True)
    results = {"backend": backend, "cpu": cpu_info(), "a": [], "b": None}
    for name in args.models.split(","):
        r = pipeline_vs_memory(name, args.rounds)
        results["a"].append(r)
        print(f"(a) {name:9s} tf.data pipeline {r['pipeline_images_per_s']:7.1f} img/s | in-memory "
              f"{r['memory_images_per_s']:7.1f} img/s | ratio {r['ratio']:.3f} (target >= 0.95) | pipeline alone "
              f"{r['pipeline_alone_images_per_s']:,.0f} img/s", flush=True)
    if not args.skip_resnet50:
        r = ours_vs_keras_applications(args.rounds, args.size)
        results["b"] = r
        print(f"(b) ResNet50 {args.size}x{args.size} batch {r['batch']}: keras_resnet "
              f"{r['keras_resnet_images_per_s']:.1f} img/s | keras.applications "
              f"{r['keras.applications_images_per_s']:.1f} img/s | ratio {r['ratio']:.3f} (target >= 0.98)",
              flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
