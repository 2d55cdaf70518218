"""int8 TFLite cost of squeeze-and-excitation and grouped convs: SEResNet50 and ResNeXt50_32x4d vs the plain
timm/torchvision ResNet-50 they extend (random weights, full size).

    python benchmarks/bench_variants.py [--size 224] [--threads 2] [--runs 30]

Each model is converted to full-integer int8 (random calibration images: latency work only) and timed in
resnet-edge, the device runner, in alternating rounds so that machine noise hits all alike. Prints one JSON line per
model and a table; the ratio to ResNet-50 is the figure to watch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
from resnet_edge import Classifier

from keras_resnet.export import convert
from keras_resnet.model.registry import build_model

MODELS = {"resnet50 (v1.5, timm/torchvision)": ("resnet50", {"variant": "v1.5", "use_bias": False}),
          "seresnet50": ("seresnet50", {}), "resnext50_32x4d": ("resnext50_32x4d", {}),
          "resnet50d": ("resnet50d", {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench_variants_")
    files, sizes, convert_s = {}, {}, {}
    for label, (name, kwargs) in MODELS.items():
        model = build_model(name, weights=None, input_shape=(args.size, args.size, 3), **kwargs)
        path = os.path.join(folder, f"{name}.tflite")
        start = time.perf_counter()
        convert.convert(model, path, quantization="int8", calibration_data="random", calibration_samples=8,
                        validation_samples=4, min_agreement=0.0, threads=args.threads)
        convert_s[label] = time.perf_counter() - start
        files[label], sizes[label] = path, os.path.getsize(path)
    runners = {label: Classifier(path, threads=args.threads) for label, path in files.items()}
    image = np.random.default_rng(0).uniform(0, 255, (1, args.size, args.size, 3)).astype(np.float32)
    times: dict[str, list[float]] = {label: [] for label in files}
    for _ in range(args.rounds):
        for label, runner in runners.items():
            runner.predict_arrays(image)  # warm-up
            for _ in range(args.runs):
                start = time.perf_counter()
                runner.predict_arrays(image)
                times[label].append((time.perf_counter() - start) * 1000)
    base = statistics.median(times[next(iter(times))])
    print(f"| model | int8 size | latency (median, {args.size}², {args.threads} threads) | vs ResNet-50 | conversion |")
    print("|---|---|---|---|---|")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"| {label} | {sizes[label] / 1e6:.1f} MB | {median:.1f} ms | {median / base:.2f}x | "
              f"{convert_s[label]:.0f} s |")
        print(json.dumps({"model": label, "latency_ms": round(median, 2), "ratio": round(median / base, 3),
                          "bytes": sizes[label], "cpu": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
