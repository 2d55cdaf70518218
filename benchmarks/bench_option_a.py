"""Does the option-A subsampling's graph shape cost int8 ResNet-20/56 their speed? An experiment, not a feature.

keras_resnet's option-A shortcut (``blocks.ChannelPadding`` with a stride) is traced for TFLite as SPACE_TO_DEPTH +
channel slice + PAD: one XNNPACK partition. Files saved by earlier versions subsample with a separate
``MaxPooling2D(1, strides=2)``, which XNNPACK refuses (1x1 window), so each downsampling shortcut splits the graph
(3 partitions; ``resnet-edge check --target cpu`` names them). This builds each model both ways, converts both to
float32 and int8 (PTQ, int8 I/O, batch 1), prints the fallbacks ``check`` reports, checks that the outputs agree,
and times the four files of each model in alternating rounds through the Interpreter, with the CPU features.
Run it under ``benchmarks/emulate_isa.py --isa avx2 --`` for AVX2's kernels.

    python benchmarks/bench_option_a.py [--models resnet20,resnet56] [--threads 1] [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "deploy")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,resnet56")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    from keras_resnet.core import console

    console.import_tensorflow(silenced=True)
    import keras
    from resnet_edge import Classifier
    from resnet_edge.check import check
    from resnet_edge.cpu import describe_cpu

    from keras_resnet.export import trace
    from keras_resnet.model import blocks
    from keras_resnet.model.registry import build_model

    current = blocks.ChannelPadding

    def legacy(padding, stride=1, name=None):  # the earlier graph: MaxPooling2D(1, stride) then ChannelPadding
        def apply(x):
            if stride > 1:
                x = keras.layers.MaxPooling2D(1, strides=stride, name=name.replace("_pad", "_pool"))(x)
            return current(padding, name=name)(x)
        return apply

    calibration = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    pixels = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    variants = ("maxpool", "space_to_depth")
    with tempfile.TemporaryDirectory() as workdir:
        paths = {}
        for name in args.models.split(","):
            for variant in variants:
                keras.utils.set_random_seed(0)
                blocks.ChannelPadding = legacy if variant == "maxpool" else current
                try:
                    model = build_model(name, weights=None, input_shape=(32, 32, 3), classes=10)
                finally:
                    blocks.ChannelPadding = current
                for mode in ("float32", "int8"):
                    content = trace.convert_model(model, quantization=mode, batch=1,
                                                  io_type="int8" if mode == "int8" else "float32",
                                                  calibration=calibration if mode == "int8" else None)
                    path = paths[name, variant, mode] = os.path.join(workdir, f"{name}_{variant}_{mode}.tflite")
                    with open(path, "wb") as f:
                        f.write(content)
                    left = [f.op for f in check(path, "cpu").findings if f.severity == "fallback"]
                    print(f"{name} {variant:14} {mode:7} XNNPACK leaves to the builtin kernels: {left or 'none'}",
                          flush=True)
        clfs = {key: Classifier(path, threads=args.threads, api="interpreter", safe=False, warn=lambda m: None)
                for key, path in paths.items()}
        for name in args.models.split(","):
            same = np.abs(clfs[name, "maxpool", "float32"].predict_arrays(pixels)
                          - clfs[name, "space_to_depth", "float32"].predict_arrays(pixels)).max()
            print(f"{name}: float32 outputs of the two graphs differ by at most {same:.3g}")
        times: dict[tuple, list[float]] = {key: [] for key in clfs}
        for _ in range(args.rounds):
            for key, clf in clfs.items():
                times[key].append(clf.benchmark(runs=200, warmup=20)["median_ms"])
    median = {key: float(np.median(v)) for key, v in times.items()}
    print(f"\nCPU: {describe_cpu()}; {args.threads} threads, median of {args.rounds} alternating rounds\n")
    print("| model | subsampling | float32 (ms) | int8 (ms) | int8/float32 |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        for variant in variants:
            f32, i8 = median[name, variant, "float32"], median[name, variant, "int8"]
            print(f"| {name} | {variant} | {f32:.4f} | {i8:.4f} | {i8 / f32:.3f} |", flush=True)


if __name__ == "__main__":
    main()
