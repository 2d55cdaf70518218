"""Conversion benchmark, hardware-aware: int8/float32 latency ratios of ResNet-20/56 (CIFAR, 32²) and ResNet-50
(224²) through both APIs of the device runner (LiteRT CompiledModel and Interpreter), every figure printed with the
CPU model and the features that decide the int8 speed-up (AVX2, AVX-512, VNNI, AMX; Arm dot-product); optionally
(--accuracy) ResNet-20 / ResNet-20 V2 on digits: float vs float16 vs PTQ int8 vs QAT int8 accuracy.

    python benchmarks/bench_convert.py [--quick | --models resnet20,resnet56] [--threads 2] [--rounds 5] [--accuracy]
    python benchmarks/bench_convert.py --keep DIR ...   (also keep the converted files in DIR)
    python benchmarks/bench_convert.py --from DIR ...   (time files converted earlier; no TensorFlow needed)
    (--quick: ResNet-20 only)

Latency: random weights (latency does not depend on training), batch 1, PTQ int8 with int8 I/O (8 random calibration
images). Contenders are timed in alternating rounds (each round every model, format and API), and each figure is the
median over rounds of the per-round medians, so that load on a shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "deploy")]

MODELS = {"resnet20": ((32, 32, 3), 10), "resnet56": ((32, 32, 3), 10), "resnet50": ((224, 224, 3), 1000)}
APIS = ("compiled", "interpreter")


def convert(name: str, workdir: str) -> dict[str, str]:
    """float32 and int8 .tflite files of a random-weight model; {format: path}."""
    from keras_resnet.export import trace
    from keras_resnet.model.registry import build_model

    shape, classes = MODELS[name]
    model = build_model(name, weights=None, input_shape=shape, classes=classes)
    calibration = np.random.default_rng(0).uniform(0, 255, (8, *shape)).astype("float32")
    paths = {}
    for mode in ("float32", "int8"):
        start = time.perf_counter()
        content = trace.convert_model(model, quantization=mode, io_type="int8" if mode == "int8" else "float32",
                                      batch=1, calibration=calibration if mode == "int8" else None)
        paths[mode] = os.path.join(workdir, f"{name}_{mode}.tflite")
        with open(paths[mode], "wb") as f:
            f.write(content)
        print(f"{name} {mode:<7} {len(content) / 1e6:7.2f} MB, conversion {time.perf_counter() - start:5.1f} s",
              flush=True)
    return paths


def latency(files: dict[str, dict[str, str]], threads: int, rounds: int, runs: int) -> dict:
    """{(model, format, api): (median ms, info)} over alternating rounds."""
    from resnet_edge import Classifier

    runners = {}
    for name, paths in files.items():
        for mode, path in paths.items():
            for api in APIS:
                clf = Classifier(path, threads=threads, api=api, safe=False, warn=lambda message: None)
                runners[name, mode, api] = clf
    samples: dict[tuple, list[float]] = {key: [] for key in runners}
    for _ in range(rounds):
        for key, clf in runners.items():
            samples[key].append(clf.benchmark(runs=runs, warmup=3)["median_ms"])
    return {key: (float(np.median(v)), runners[key].info) for key, v in samples.items()}


def latency_table(names: list[str], threads: int, rounds: int, source: str | None = None,
                  keep: str | None = None) -> None:
    """``source``: a folder with NAME_float32.tflite and NAME_int8.tflite (from an earlier run's --keep) to time
    on a machine without TensorFlow; else the models are converted here (into ``keep`` if given)."""
    with tempfile.TemporaryDirectory() as workdir:
        if keep:
            os.makedirs(keep, exist_ok=True)
            workdir = keep
        if source:
            files = {name: {mode: os.path.join(source, f"{name}_{mode}.tflite") for mode in ("float32", "int8")}
                     for name in names}
        else:
            files = {name: convert(name, workdir) for name in names}
        results = latency(files, threads, rounds, runs=20 if "resnet50" in names else 50)
    from resnet_edge.cpu import describe_cpu

    cpu = describe_cpu()
    print(f"\nCPU: {cpu}\nthreads {threads}, batch 1, median of {rounds} alternating rounds\n")
    print("| model | input | API (path) | float32 (ms) | int8 (ms) | int8/float32 | float32 speed / int8 speed |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        for api in APIS:
            f32, info = results[name, "float32", api]
            i8, info8 = results[name, "int8", api]
            full = {True: ", all XNNPACK", False: ", part builtin"}.get(info8.get("fully_accelerated"), "")
            print(f"| {name} | {MODELS[name][0][0]}² | {api} ({info8['path']}{full}) | {f32:.3f} | {i8:.3f} | "
                  f"{i8 / f32:.3f} | {f32 / i8:.2f}× |", flush=True)
    for name in names:
        for api in APIS:
            f32, i8 = results[name, "float32", api][0], results[name, "int8", api][0]
            print(f"{name} {api}: float32 {f32:.3f} ms, int8 {i8:.3f} ms, int8/float32 {i8 / f32:.3f} "
                  f"({threads} threads; CPU {cpu})", flush=True)


def _accuracy(content: bytes, workdir: str, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a .tflite in resnet-edge on pixel images ``x``."""
    from resnet_edge import Classifier

    path = os.path.join(workdir, "probe.tflite")
    with open(path, "wb") as f:
        f.write(content)
    clf = Classifier(path, threads=2, safe=False, warn=lambda message: None)
    return float(np.mean(clf.predict_arrays(x).argmax(-1) == y))


def digits(name: str, workdir: str, epochs: int, qat_epochs: int) -> None:
    import keras

    from keras_resnet.data import datasets as data
    from keras_resnet.export import ops, trace
    from keras_resnet.io.model_io import load_model
    from keras_resnet.quant import tfmot_qat as Q
    from keras_resnet.quant.common import accuracy
    from keras_resnet.spec.commands import QATSpec
    from keras_resnet.train import recipe as train

    keras.utils.set_random_seed(0)
    info = data.info("digits")
    x, y = data.load("digits", "train")
    xt, yt = data.load("digits", "test")
    model = train.model_for_dataset(name, info)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    model.fit(x.astype("float32"), y, epochs=epochs, batch_size=64, verbose=0)
    path = os.path.join(workdir, f"{name}.keras")
    model.save(path)
    xt = xt.astype("float32")
    float_acc = accuracy(model, xt, yt)
    print(f"{name} digits keras float32 accuracy {float_acc:.4f}", flush=True)
    for mode in ("float16", "int8"):
        content = trace.convert_model(model, quantization=mode, io_type="int8" if mode == "int8" else "float32",
                                      calibration=x[:200].astype("float32") if mode == "int8" else None)
        acc = _accuracy(content, workdir, xt, yt)
        print(f"{name} digits tflite {mode:<7} (PTQ) accuracy {acc:.4f}  ({acc - float_acc:+.4f})  "
              f"float ops {len(ops.op_summary(content)[1])}", flush=True)
    result = Q.qat_fine_tune(path, QATSpec(dataset="digits", epochs=qat_epochs), os.path.join(workdir, f"{name}_qat.h5"))
    content = trace.convert_model(load_model(result.path), quantization="int8", io_type="int8")
    acc = _accuracy(content, workdir, xt, yt)
    print(f"{name} digits QAT keras accuracy {result.accuracy:.4f}; tflite int8 (QAT, {qat_epochs} epochs) accuracy "
          f"{acc:.4f}  ({acc - float_acc:+.4f} vs float; target within 0.003)  float ops "
          f"{len(ops.op_summary(content)[1])}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ResNet-20 only")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--accuracy", action="store_true", help="also the digits accuracy comparison (slow)")
    parser.add_argument("--from", dest="source", metavar="DIR",
                        help="time NAME_float32.tflite / NAME_int8.tflite from DIR instead of converting (no "
                             "TensorFlow needed: for timing on another machine)")
    parser.add_argument("--keep", metavar="DIR", help="write the converted files to DIR (for --from elsewhere)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--qat-epochs", type=int, default=2)
    args = parser.parse_args()
    if not args.source or args.accuracy:
        from keras_resnet.core import console

        console.import_tensorflow(silenced=True)
    names = ["resnet20"] if args.quick else [m for m in args.models.split(",") if m]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    if args.keep and args.source:
        parser.error("--keep converts; --from times files converted earlier: give one")
    latency_table(names, args.threads, args.rounds, args.source, args.keep)
    if args.accuracy:
        with tempfile.TemporaryDirectory() as workdir:
            for name in ("resnet20", "resnet20v2"):
                digits(name, workdir, args.epochs, args.qat_epochs)


if __name__ == "__main__":
    main()
