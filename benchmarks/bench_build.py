"""Forward throughput of keras_resnet.ResNet50 vs keras.applications.ResNet50, and build times.

    python benchmarks/bench_build.py [--batch 32] [--size 224] [--rounds 6]

Both models run as ``tf.function`` on the same batch, measured in alternating rounds so that machine
noise hits both alike; the ratio ours/theirs is the figure to watch (target >= 0.98).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import keras_resnet as kr


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def forward_ratio(batch: int, size: int, rounds: int) -> dict:
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    models = {"keras_resnet": kr.ResNet50(weights=None, input_shape=(size, size, 3)),
              "keras.applications": keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))}
    calls = {name: tf.function(lambda t, m=m: m(t, training=False)) for name, m in models.items()}
    for call in calls.values():  # trace and warm up
        call(x).numpy()
        call(x).numpy()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            times[name].append(timed(lambda c=call: c(x).numpy())[0])
    rate = {name: batch / statistics.median(t) for name, t in times.items()}
    return {"images_per_s": rate, "ratio": rate["keras_resnet"] / rate["keras.applications"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()

    forward = forward_ratio(args.batch, args.size, args.rounds)
    build = {name: timed(lambda n=name: kr.build_model(n, weights=None))[0] for name in ("resnet152", "resnet1202")}
    build["keras.applications.ResNet152"] = timed(lambda: keras.applications.ResNet152(weights=None))[0]

    rate = forward["images_per_s"]
    print(f"forward, batch {args.batch}, {args.size}², tf.function, median of {args.rounds} alternating rounds:")
    for name, value in rate.items():
        print(f"  {name:<20} {value:8.1f} images/s")
    print(f"  ratio keras_resnet / keras.applications = {forward['ratio']:.3f}  (target >= 0.98)")
    print("build time:")
    for name, seconds in build.items():
        print(f"  {name:<30} {seconds:6.1f} s")
    if args.json:
        print(json.dumps({"forward": forward, "build_s": build}))


if __name__ == "__main__":
    main()
