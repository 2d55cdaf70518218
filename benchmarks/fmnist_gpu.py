"""Fashion-MNIST runs on an accelerator with the JAX backend: the deeper ResNet and the degradation experiment at
full size (55,000 training images), which do not fit in a working session on 2 CPU cores.

A side script, not the product: it has its own augmentation (:func:`augment`) and its own fit loop around
keras_resnet's model and recipe, so the GPU accuracies it produced (docs/results.md's accelerator tables, the
degradation figure, the flip comparison; README's ResNet-56 figure) are marked there as coming from here. They stand
until a device run through ``keras-resnet train`` replaces them; then this script should go.

The model, its input normalisation, the optimizer, the schedule and the loss are keras_resnet's own
(``train.model_for_dataset`` and ``train.compile_model`` with a ``Recipe``), so a run here differs from
``keras-resnet train`` only in its backend (JAX, no TensorFlow on the machine) and its input pipeline: the same
pad-4 random crop and horizontal flip as ``pipeline.augment_batch``, done in numpy once per epoch. Every run is a
separate process; they share the one GPU (the models are small: one alone leaves the GPU mostly idle). Each run
writes ``OUT/<name>.json`` after every epoch (history with train, validation and test accuracy), so a run cut
short still reports how far it got.

    KERAS_BACKEND=jax python benchmarks/fmnist_gpu.py --data-dir DIR --out OUT \
        --run resnet56:resnet56:20:cosine:5e-4 --run plain20-d:plain20:12:step:1e-4 ...

A run is ``NAME:MODEL:EPOCHS:SCHEDULE:WEIGHT_DECAY[:SEED[:noflip]]`` (batch 128, lr 0.1, SGD momentum 0.9,
seed 0 unless given; ``noflip``: pad-and-crop only, no horizontal flips). With ``--save`` a run also writes its
best-validation model to ``OUT/NAME.keras``.

A QAT run is ``NAME:qat:SOURCE[:SEED[:FREEZE]]``: native Keras 3 quantization-aware fine-tuning (keras_resnet.quant.native_qat) of
``OUT/SOURCE.keras``, exactly as ``keras-resnet qat --engine keras`` does it (``qat.qat_fine_tune``'s steps and
``QATSpec``'s defaults: calibrate on 8 batches, 2 epochs of SGD at 1e-3, batch 64, BN statistics and ranges
moving until the last step; FREEZE ``half`` freezes them for the second epoch instead, as the engine did
before), written to ``OUT/NAME.keras`` with ``OUT/NAME.json``. Run the float runs first (one invocation), then
the QAT runs (a second one).
``benchmarks/results.py --accelerator-results OUT/all.json`` puts the results into docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # keras_resnet from this checkout


def augment(x: np.ndarray, rng: np.random.Generator, *, pad: int = 4, flip: bool = True) -> np.ndarray:
    """Pad-``pad`` random crops (zero padding) and random horizontal flips, as ``pipeline.augment_batch``."""
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = rng.integers(0, 2 * pad + 1, size=(n, 2))
    rows = offsets[:, :1] + np.arange(h)[None, :]
    cols = offsets[:, 1:] + np.arange(w)[None, :]
    if flip:
        mirror = rng.integers(0, 2, size=(n, 1)).astype(bool)
        cols = np.where(mirror, cols[:, ::-1], cols)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def qat_run(spec: str, args) -> None:
    """Native QAT of a saved float model (see the module docstring); JSON with float and QAT test accuracy."""
    import jax
    import keras

    from keras_resnet.data import datasets as data
    from keras_resnet.quant import native_qat as qat
    from keras_resnet.spec.commands import QATSpec

    name, _, source, *rest = spec.split(":")
    seed = int(rest[0]) if rest else 0
    freeze = rest[1] if len(rest) > 1 else "end"
    if freeze not in ("half", "end"):
        raise SystemExit(f"error: {spec}: the freeze schedule is half or end, not {freeze!r}")
    keras.utils.set_random_seed(seed)
    qspec = QATSpec(dataset="fashion-mnist", data_dir=args.data_dir, engine="keras")
    (x, y), (xv, yv), (xt, yt) = (data.load("fashion-mnist", s, args.data_dir) for s in ("train", "val", "test"))
    if args.limit:
        x, y, xv, yv, xt, yt = x[:args.limit], y[:args.limit], xv[:args.limit], yv[:args.limit], \
            xt[:args.limit], yt[:args.limit]
    model = keras.saving.load_model(os.path.join(args.out, source + ".keras"))
    start = time.perf_counter()
    xt = xt.astype(np.float32)
    float_accuracy = model.evaluate(xt, yt, batch_size=1000, verbose=0, return_dict=True)["accuracy"]
    # end: keras-resnet qat's schedule (BN statistics and ranges move until qat.freeze after the last epoch); half:
    # the schedule it had before, for the comparison in docs/results.md (frozen after the first half of the epochs;
    # the counters also count the 8 calibration batches).
    moving = -(-len(x) // qspec.batch_size) * max(1, qspec.epochs // 2)
    qmodel = qat.quantize_model(model, **({"freeze_bn_after": moving, "freeze_ranges_after": 8 + moving}
                                          if freeze == "half" else {}))
    qat.calibrate(qmodel, x, seed=seed)
    history = qat.fine_tune(qmodel, x, y, epochs=qspec.epochs, batch_size=qspec.batch_size,
                            learning_rate=qspec.learning_rate, validation=(xv, yv), seed=seed, verbose=2)
    qat.freeze(qmodel)
    test = qmodel.evaluate(xt, yt, batch_size=1000, verbose=0, return_dict=True)  # compiled by fine_tune
    qat.save(qmodel, os.path.join(args.out, name + ".keras"), force=True)
    result = {"name": name, "kind": "native-qat", "source": source, "seed": seed, "freeze": freeze,
              "epochs": qspec.epochs,
              "batch_size": qspec.batch_size, "learning_rate": qspec.learning_rate, "train_images": len(x),
              "test_images": len(xt), "float_test_accuracy": float(float_accuracy),
              "qat_test_accuracy": float(test["accuracy"]),
              "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
              "wall_s": round(time.perf_counter() - start, 1), "backend": keras.backend.backend(),
              "keras": keras.__version__, "jax": jax.__version__, "device": str(jax.devices()[0].device_kind),
              "command": shlex.join(["python", "benchmarks/fmnist_gpu.py", *sys.argv[1:]])}
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"{name}: float {float_accuracy:.4f} -> QAT {test['accuracy']:.4f} ({result['wall_s']} s)", flush=True)


def one_run(spec: str, args) -> None:
    import jax
    import keras

    from keras_resnet.data import datasets as data
    from keras_resnet.spec.recipe import Recipe
    from keras_resnet.train import recipe as train

    name, model_name, epochs, schedule, wd, *rest = spec.split(":")
    seed = int(rest[0]) if rest else 0
    flip = not (len(rest) > 1 and rest[1] == "noflip")
    recipe = Recipe(model=model_name, dataset="fashion-mnist", data_dir=args.data_dir, epochs=int(epochs),
                    batch_size=args.batch_size, lr=0.1, weight_decay=float(wd), schedule=schedule, seed=seed,
                    limit=args.limit)
    keras.utils.set_random_seed(recipe.seed)
    info = data.info("fashion-mnist", args.data_dir)
    (x, y), (xv, yv), (xt, yt) = (data.load("fashion-mnist", s, args.data_dir) for s in ("train", "val", "test"))
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
        xv, yv, xt, yt = xv[:args.limit], yv[:args.limit], xt[:args.limit], yt[:args.limit]
    steps = -(-len(x) // recipe.batch_size)
    model = train.model_for_dataset(recipe.model, info, weight_decay=recipe.weight_decay)
    train.compile_model(model, recipe, steps, info.num_classes)
    rng = np.random.default_rng(recipe.seed)
    xv, xt = xv.astype(np.float32), xt.astype(np.float32)
    result = {"name": name, "model": model_name, "parameters": int(model.count_params()),
              "train_images": len(x), "test_images": len(xt), "val_images": len(xv), "epochs": 0,
              "steps": 0, "recipe": {k: v for k, v in vars(recipe).items() if k != "builder_options"},
              "flip": bool(info.flip and flip), "backend": keras.backend.backend(), "keras": keras.__version__, "jax": jax.__version__,
              "device": str(jax.devices()[0].device_kind), "history": [], "command": shlex.join(["python", "benchmarks/fmnist_gpu.py", *sys.argv[1:]])}
    start = time.perf_counter()
    train_time = 0.0
    for epoch in range(recipe.epochs):
        t0 = time.perf_counter()
        xa = augment(x, rng, flip=info.flip and flip).astype(np.float32)
        fit = model.fit(xa, y, batch_size=recipe.batch_size, epochs=epoch + 1, initial_epoch=epoch, shuffle=True,
                        verbose=0)
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        val = model.evaluate(xv, yv, batch_size=1000, verbose=0, return_dict=True)
        test = model.evaluate(xt, yt, batch_size=1000, verbose=0, return_dict=True)
        row = {"epoch": epoch + 1, "accuracy": float(fit.history["accuracy"][-1]),
               "loss": float(fit.history["loss"][-1]), "val_accuracy": float(val["accuracy"]),
               "val_loss": float(val["loss"]), "test_accuracy": float(test["accuracy"]),
               "epoch_time_s": round(epoch_time, 2)}
        result["history"].append(row)
        best = max(result["history"], key=lambda r: r["val_accuracy"])
        if args.save and best is row:
            model.save(os.path.join(args.out, f"{name}.keras"))
        times = sorted(r["epoch_time_s"] for r in result["history"][1:]) or [epoch_time]  # epoch 1 compiles
        result.update(epochs=epoch + 1, steps=(epoch + 1) * steps, test_accuracy=best["test_accuracy"],
                      best_epoch=best["epoch"], val_accuracy=best["val_accuracy"],
                      last_test_accuracy=row["test_accuracy"], train_time_s=round(train_time, 1),
                      wall_s=round(time.perf_counter() - start, 1),
                      images_per_s=round(len(x) / times[len(times) // 2], 1))
        tmp = os.path.join(args.out, f".{name}.json")
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, os.path.join(args.out, f"{name}.json"))
        print(f"{name} epoch {epoch + 1}/{recipe.epochs}: train {row['accuracy']:.4f} val {row['val_accuracy']:.4f} "
              f"test {row['test_accuracy']:.4f} ({epoch_time:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True,
                   help="NAME:MODEL:EPOCHS:SCHEDULE:WEIGHT_DECAY[:SEED[:noflip]]")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, help="first N images of each split (a quick check of this script)")
    p.add_argument("--deadline", type=float, default=0, help="stop every run after this many seconds")
    p.add_argument("--summary", default="all.json", help="file name of the summary under OUT")
    p.add_argument("--save", action="store_true", help="write each run's best-validation model to OUT/NAME.keras")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.one:
        (qat_run if args.run[0].split(":")[1] == "qat" else one_run)(args.run[0], args)
        return 0
    if os.environ.get("KERAS_BACKEND") != "jax":
        raise SystemExit("error: set KERAS_BACKEND=jax")
    # Each process takes a share of GPU memory, not JAX's default 75%.
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "PYTHONUNBUFFERED": "1"}
    common = [sys.executable, os.path.abspath(__file__), "--one", "--data-dir", args.data_dir, "--out", args.out,
              "--batch-size", str(args.batch_size), *(["--limit", str(args.limit)] if args.limit else []),
              *(["--save"] if args.save else [])]
    start = time.time()
    procs = {spec: subprocess.Popen([*common, "--run", spec], env=env) for spec in args.run}
    codes = {}
    while len(codes) < len(procs):
        for spec, proc in procs.items():
            if spec not in codes and proc.poll() is not None:
                codes[spec] = proc.returncode
        if args.deadline and time.time() - start > args.deadline:
            for spec, proc in procs.items():
                if spec not in codes:
                    proc.kill()
                    codes[spec] = "killed at the deadline"
        time.sleep(1)
    runs = {}
    for spec in args.run:
        path = os.path.join(args.out, spec.split(":")[0] + ".json")
        if os.path.isfile(path):
            with open(path) as f:
                runs[spec.split(":")[0]] = json.load(f)
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip() if shutil_which("nvidia-smi") else ""
    summary = {"runs": runs, "exit": {s.split(":")[0]: c for s, c in codes.items()}, "gpu": gpu,
               "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "parallel_runs": len(args.run), "wall_s": round(time.time() - start, 1)}
    with open(os.path.join(args.out, args.summary), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    return 0 if all(c == 0 for c in codes.values()) else 1


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


if __name__ == "__main__":
    sys.exit(main())
