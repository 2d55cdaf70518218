"""resnet-edge vs the runtimes' own numbers, on ResNet-50 224² (float32 and int8). Run with the main venv:

    .venv/bin/python deploy/benchmarks/bench_runner.py [--threads 2] [--workdir build/bench_runner]

Reports, per runtime (ai-edge-litert here; tflite-runtime 2.14 through .venv-legacy when it exists):
``resnet-edge benchmark`` median vs ``litert-benchmark`` median (ratio), and ``resnet-edge classify``
images/s over a folder of 64 generated 640×480 JPEGs vs the pure invoke rate (1000 / median ms).
The models keep a dynamic batch dimension; everything here runs batch 1. Models are built once (keras.applications ResNet50, weights=None; int8 = PTQ on random data: fine for latency).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def build_models(workdir: str) -> dict[str, str]:
    paths = {q: os.path.join(workdir, f"resnet50_{q}.tflite") for q in ("float32", "int8")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    from keras_resnet.export.metadata import embed_metadata

    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
    saved = os.path.join(workdir, "saved_model")  # (a concrete function's variables break int8 calibration)
    model.export(saved, format="tf_saved_model", verbose=False)
    meta = {"schema": "keras_resnet.metadata/1", "model": "resnet50", "labels": [f"class_{i}" for i in range(1000)],
            "input": {"height": 224, "width": 224, "channels": 3, "layout": "NHWC", "color": "RGB",
                      "mean": [123.68, 116.78, 103.94], "std": [58.4, 57.1, 57.4], "resize": "center_crop"},
            "normalization_in_model": None, "producer": "bench_runner"}
    rng = np.random.default_rng(0)
    for q, path in paths.items():
        if os.path.exists(path):
            continue
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if q == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.representative_dataset = lambda: ([rng.standard_normal((1, 224, 224, 3), np.float32)]
                                                        for _ in range(8))
            converter.inference_input_type = converter.inference_output_type = tf.int8
        data = embed_metadata(converter.convert(), {**meta, "quantization": q})
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    return paths


def make_jpegs(folder: str, n: int = 64) -> str:
    from PIL import Image

    if os.path.isdir(folder) and len(os.listdir(folder)) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    for i in range(n):  # smooth colour fields plus noise: photo-like JPEG sizes (~50-100 KB)
        c = rng.uniform(0, 255, (3, 3))
        img = np.stack([c[k, 0] + c[k, 1] * np.sin(xx / (20 + 9 * k)) * 0.4 + c[k, 2] * np.cos(yy / 31) * 0.3
                        for k in range(3)], -1) + rng.normal(0, 12, (480, 640, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(folder, f"{i:03d}.jpg"), quality=90)
    return folder


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def cli(python: str, *args: str) -> dict:
    done = subprocess.run([python, "-m", "resnet_edge", *args, "--json"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "deploy")))
    if done.returncode:
        raise RuntimeError(f"resnet-edge {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return last_json(done.stdout)


def litert_benchmark(model: str, threads: int, runs: int) -> float | None:
    tool = os.path.join(os.path.dirname(sys.executable), "litert-benchmark")
    if not os.path.exists(tool):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        done = subprocess.run([tool, "--model", model, "--num_threads", str(threads), "--num_runs", str(runs),
                               "--warmup_runs", "5", "--result_json", out], capture_output=True, text=True)
        if done.returncode or not os.path.exists(out):
            print(f"litert-benchmark failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
            return None
        result = json.load(open(out))
    return _find_median(result)


def _find_median(obj) -> float | None:
    """The median latency in ms from litert-benchmark's JSON (searched by key name)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if "median" in key.lower() and isinstance(value, (int, float)):
                return float(value) / (1000.0 if "us" in key.lower() else 1.0)
        for value in obj.values():
            found = _find_median(value)
            if found is not None:
                return found
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--workdir", default=os.path.join(ROOT, "build", "bench_runner"))
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    models = build_models(args.workdir)
    folder = make_jpegs(os.path.join(args.workdir, "jpegs"))
    pythons = [("ai-edge-litert", sys.executable)]
    legacy = os.path.join(ROOT, ".venv-legacy", "bin", "python")
    if os.path.exists(legacy):
        pythons.append(("tflite-runtime", legacy))
    rows = []
    for label, python in pythons:
        for q, model in models.items():
            runs = args.runs if label == "ai-edge-litert" or q == "float32" else max(10, args.runs // 3)
            bench = cli(python, "benchmark", model, "--threads", str(args.threads), "--runs", str(runs))
            reference = litert_benchmark(model, args.threads, runs) if label == "ai-edge-litert" else None
            classify = max((cli(python, "classify", model, folder, "--threads", str(args.threads), "--top-k", "5",
                                "--batch-size", "1")
                            for _ in range(2)), key=lambda s: s["images_per_s"])
            invoke_rate = 1e3 / bench["median_ms"]
            rows.append({"runtime": f"{bench['runtime']} {bench['runtime_version']}", "model": q,
                         "median_ms": round(bench["median_ms"], 2),
                         "litert_benchmark_ms": None if reference is None else round(reference, 2),
                         "median_ratio": None if reference is None else round(bench["median_ms"] / reference, 3),
                         "invoke_images_per_s": round(invoke_rate, 1), "classify_images_per_s": classify["images_per_s"],
                         "classify_ratio": round(classify["images_per_s"] / invoke_rate, 3),
                         "delegate": bench["delegate"]})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| runtime | model | resnet-edge median (ms) | litert-benchmark (ms) | ratio | invoke img/s | "
          "classify img/s | classify/invoke |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['runtime']} | {r['model']} | {r['median_ms']} | {r['litert_benchmark_ms'] or '–'} | "
              f"{r['median_ratio'] or '–'} | {r['invoke_images_per_s']} | {r['classify_images_per_s']} | "
              f"{r['classify_ratio']} |")


if __name__ == "__main__":
    main()
