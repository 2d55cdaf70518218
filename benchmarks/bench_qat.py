"""QAT engines compared: float, PTQ int8, tfmot QAT int8 and native Keras QAT int8 (keras_resnet.quant.native_qat) on one trained
model, with 95% Wilson intervals, Keras-vs-TFLite top-1 agreement, and the QAT training step time against a float
step (TensorFlow backend, one process, same batch).

    python benchmarks/bench_qat.py [--model resnet20] [--dataset digits] [--epochs 15] [--qat-epochs 2]
    python benchmarks/bench_qat.py --dataset fashion-mnist [--float-model run/best.keras]   (if the data exists)
    python benchmarks/bench_qat.py --step-time-only [--steps 20 --step-batch 128]
    python benchmarks/bench_qat.py --step-time-only --backends tensorflow,jax,torch   (one run, a process each)

The float model is trained here (SGD 0.05, momentum 0.9, batch 64, no augmentation) unless --float-model is given.
Both QAT engines fine-tune it with the same QATSpec (SGD 1e-3, momentum 0.9, batch 64) and are converted by
``keras_resnet.export.trace.convert_model``; accuracies are of the .tflite files on the test split, run in resnet-edge.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmnist_stats import wilson  # noqa: E402


def _tflite_predict(content: bytes, pixels: np.ndarray, workdir: str, name: str) -> np.ndarray:
    from resnet_edge import Classifier

    path = os.path.join(workdir, f"{name}.tflite")
    with open(path, "wb") as f:
        f.write(content)
    return Classifier(path, threads=2, safe=False, warn=lambda message: None).predict_arrays(pixels)


def _row(label: str, correct: np.ndarray, agreement: float | None = None, extra: str = "") -> dict:
    n, hits = len(correct), int(np.sum(correct))
    low, high = wilson(hits, n)
    text = f"{label:<26} top-1 {hits / n:.4f}  95% CI [{low:.4f}, {high:.4f}]  n={n}"
    if agreement is not None:
        text += f"  Keras-vs-TFLite agreement {agreement:.4f}"
    print(text + extra, flush=True)
    return {"label": label, "accuracy": hits / n, "ci": [low, high], "n": n, "agreement": agreement}


def step_times(float_model, x, y, batch: int, steps: int) -> dict:
    """Float step vs native QAT step, with the folded BNs learning (batch statistics) and frozen.

    The three models take turns, one ``train_on_batch`` each per round (after 3 warm-up rounds), so load from other
    processes on a shared machine falls on all three alike; the figures are medians over ``steps`` rounds.
    """
    import keras

    from keras_resnet.quant import native_qat as qat

    xb, yb = np.asarray(x[:batch], "float32"), np.asarray(y[:batch])
    clone = keras.models.clone_model(float_model)
    clone.set_weights(float_model.get_weights())
    learning = qat.quantize_model(float_model)  # freeze_bn_after=None: BN batch statistics throughout
    frozen = qat.quantize_model(float_model)
    qat.freeze(frozen)
    models = {"float_ms": clone, "qat_bn_learning_ms": learning, "qat_frozen_ms": frozen}
    for model in models.values():
        model.compile(keras.optimizers.SGD(1e-3, momentum=0.9), keras.losses.SparseCategoricalCrossentropy())
    times: dict[str, list[float]] = {key: [] for key in models}
    for round_ in range(steps + 3):
        for key, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(xb, yb)
            if round_ >= 3:
                times[key].append(time.perf_counter() - start)
    result = {key: 1e3 * statistics.median(values) for key, values in times.items()}
    for key in ("qat_bn_learning_ms", "qat_frozen_ms"):
        result[key.replace("_ms", "_ratio")] = result[key] / result["float_ms"]
    print(f"train step, batch {batch}, median of {steps} interleaved rounds: float {result['float_ms']:.1f} ms; "
          f"native QAT {result['qat_bn_learning_ms']:.1f} ms with BN learning ({result['qat_bn_learning_ratio']:.2f}x), "
          f"{result['qat_frozen_ms']:.1f} ms with BN frozen ({result['qat_frozen_ratio']:.2f}x; target <= 1.5x)",
          flush=True)
    return result


def compare_backends(args) -> int:
    """``--step-time-only`` under each of ``--backends``, in turn on the same machine; a table of the medians."""
    import subprocess

    from resnet_edge.cpu import cpu_info, describe_cpu

    rows = {}
    for backend in args.backends.split(","):
        command = [sys.executable, os.path.abspath(__file__), "--step-time-only", "--json", "--model", args.model,
                   "--dataset", args.dataset, "--steps", str(args.steps), "--step-batch", str(args.step_batch),
                   *(["--data-dir", args.data_dir] if args.data_dir else [])]
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu",
               "CUDA_VISIBLE_DEVICES": ""}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{backend}: failed\n{done.stderr[-1500:]}", file=sys.stderr)
            continue
        rows[backend] = json.loads(done.stdout.strip().splitlines()[-1])["step_time"]
        rows[backend]["load"] = round(os.getloadavg()[0], 1)
    cpu = cpu_info()
    print(f"{args.model} on {args.dataset}, batch {args.step_batch}, medians of {args.steps} interleaved rounds; "
          f"CPU {describe_cpu(cpu)}")
    print("| backend | float step (ms) | float images/s | QAT, BN learning (ms, x float) | "
          "QAT, BN frozen (ms, x float) | load after |")
    print("|---|---|---|---|---|---|")
    for backend, r in rows.items():
        print(f"| {backend} | {r['float_ms']:.1f} | {args.step_batch / r['float_ms'] * 1e3:.0f} | "
              f"{r['qat_bn_learning_ms']:.1f} ({r['qat_bn_learning_ratio']:.2f}x) | "
              f"{r['qat_frozen_ms']:.1f} ({r['qat_frozen_ratio']:.2f}x) | {r['load']} |")
    if args.json:
        print(json.dumps({"backends": rows, "cpu": cpu}, default=float), flush=True)
    return 0 if rows else 1


def run(args, workdir: str) -> dict:
    import keras

    from keras_resnet.data import datasets as data
    from keras_resnet.export import ops, trace
    from keras_resnet.io.model_io import load_model
    from keras_resnet.model.build import predict
    from keras_resnet.quant import native_qat as qat
    from keras_resnet.quant import tfmot_qat as Q
    from keras_resnet.spec.commands import QATSpec
    from keras_resnet.train import recipe as train

    print(f"backend {keras.backend.backend()}, dataset {args.dataset}, model {args.model}", flush=True)
    x, y = data.load(args.dataset, "train", args.data_dir)
    if args.step_time_only:  # the step time does not depend on the weights: an untrained model will do
        model = train.model_for_dataset(args.model, data.info(args.dataset, args.data_dir))
        return {"step_time": step_times(model, x, y, args.step_batch, args.steps)}
    xt, yt = data.load(args.dataset, "test", args.data_dir)
    xt = xt.astype("float32")
    if args.float_model:
        path = args.float_model
        model = load_model(path)
    else:
        keras.utils.set_random_seed(args.seed)
        model = train.model_for_dataset(args.model, data.info(args.dataset, args.data_dir))
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
        start = time.perf_counter()
        model.fit(x.astype("float32"), y, epochs=args.epochs, batch_size=64, verbose=0)
        print(f"float training: {args.epochs} epochs in {time.perf_counter() - start:.0f} s", flush=True)
        path = os.path.join(workdir, "float.keras")
        model.save(path)
    rows = [_row("float (Keras)", predict(model, xt, 128).argmax(-1) == yt)]

    content = trace.convert_model(model, quantization="int8", io_type="int8",
                                  calibration=x[np.random.default_rng(0).permutation(len(x))[:200]].astype("float32"))
    rows.append(_row("PTQ int8 (TFLite)", _tflite_predict(content, xt, workdir, "ptq").argmax(-1) == yt))

    spec = QATSpec(dataset=args.dataset, data_dir=args.data_dir, epochs=args.qat_epochs)
    engines = {}
    for engine, output in (("tfmot", "tfmot.h5"), ("keras", "native.keras")):
        keras.utils.set_random_seed(args.seed)
        start = time.perf_counter()
        if engine == "tfmot":
            result = Q.qat_fine_tune(path, spec, os.path.join(workdir, output))
        else:
            result = qat.qat_fine_tune(path, dataclasses.replace(spec, engine="keras"), os.path.join(workdir, output))
        seconds = time.perf_counter() - start
        qat_model = load_model(result.path)
        content = trace.convert_model(qat_model, quantization="int8", io_type="int8")
        counts, floating = ops.op_summary(content)
        tflite = _tflite_predict(content, xt, workdir, engine).argmax(-1)
        keras_top1 = predict(qat_model, xt, 128).argmax(-1)
        label = f"{engine} QAT int8 (TFLite)"
        rows.append(_row(label, tflite == yt, float(np.mean(tflite == keras_top1)),
                         f"  (QAT Keras model {result.accuracy:.4f}; {args.qat_epochs} epochs, {seconds:.0f} s; "
                         f"{'fully int8' if not floating and 'DEQUANTIZE' not in counts else 'FLOAT OPS LEFT'})"))
        engines[engine] = {"ops": counts, "float_ops": floating, "seconds": seconds}
    out = {"dataset": args.dataset, "model": args.model, "epochs": args.epochs, "qat_epochs": args.qat_epochs,
           "rows": rows, "engines": engines}
    if not args.skip_step_time:
        out["step_time"] = step_times(model, x, y, args.step_batch, args.steps)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir")
    parser.add_argument("--float-model", help="a trained .keras model to start from (skips float training)")
    parser.add_argument("--epochs", type=int, default=15, help="float training epochs")
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step-batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-step-time", action="store_true")
    parser.add_argument("--step-time-only", action="store_true", help="only the float vs QAT training step time")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument("--backends", help="with --step-time-only: these Keras backends one after another, each in "
                                           "its own process (KERAS_BACKEND is read once, at import), one table")
    args = parser.parse_args()
    if args.backends:
        return compare_backends(args)
    with tempfile.TemporaryDirectory(prefix="bench_qat") as workdir:
        out = run(args, workdir)
    if args.json:
        print(json.dumps(out, default=float), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
