"""Does the option-A subsampling cost int8 ResNet-20 its speed? An experiment, not a feature.

keras_resnet's option-A shortcut subsamples with ``MaxPooling2D(1, strides=2)``; XNNPACK refuses 1x1 pooling
windows, so each of the two downsampling shortcuts splits the graph (3 XNNPACK partitions; ``resnet-edge check
--target cpu`` names them). This builds ResNet-20 twice, as is and with the subsampling as a 1x1/stride-2 depthwise
conv with unit weights (same function: XNNPACK and the Edge TPU take it, 1 partition), converts both to float32
and int8 (PTQ, int8 I/O, batch 1), prints the fallbacks ``check`` reports and times the four models in alternating
rounds through the Interpreter, with the CPU features.

    python benchmarks/bench_option_a.py [--threads 1] [--rounds 9]
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
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    from keras_resnet import console

    console.import_tensorflow(silenced=True)
    import keras
    from resnet_edge import Classifier
    from resnet_edge.check import check
    from resnet_edge.runtime import cpu_info

    from keras_resnet import convert as C
    from keras_resnet.build import build_model

    real = keras.layers.MaxPooling2D

    def subsample(pool_size, strides=None, **kwargs):  # blocks.shortcut looks it up as keras.layers.MaxPooling2D
        if pool_size == 1:
            return keras.layers.DepthwiseConv2D(1, strides=strides, use_bias=False, depthwise_initializer="ones",
                                                trainable=False, name=kwargs.get("name"))
        return real(pool_size, strides=strides, **kwargs)

    calibration = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    with tempfile.TemporaryDirectory() as workdir:
        paths = {}
        for variant in ("maxpool", "depthwise"):
            keras.utils.set_random_seed(0)
            keras.layers.MaxPooling2D = subsample if variant == "depthwise" else real
            try:
                model = build_model("resnet20", weights=None, input_shape=(32, 32, 3), classes=10)
            finally:
                keras.layers.MaxPooling2D = real
            for mode in ("float32", "int8"):
                content = C.convert_model(model, quantization=mode, io_type="int8" if mode == "int8" else "float32",
                                          batch=1, calibration=calibration if mode == "int8" else None)
                path = paths[variant, mode] = os.path.join(workdir, f"{variant}_{mode}.tflite")
                with open(path, "wb") as f:
                    f.write(content)
                left = [f.op for f in check(path, "cpu").findings if f.severity == "fallback"]
                print(f"{variant:9} {mode:7} ops XNNPACK leaves to the builtin kernels: {left or 'none'}", flush=True)
        clfs = {key: Classifier(path, threads=args.threads, api="interpreter", safe=False, warn=lambda m: None)
                for key, path in paths.items()}
        pixels = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
        same = np.abs(clfs["maxpool", "float32"].predict_arrays(pixels)
                      - clfs["depthwise", "float32"].predict_arrays(pixels)).max()
        print(f"float32 outputs of the two variants differ by at most {same:.3g}")
        times: dict[tuple, list[float]] = {key: [] for key in clfs}
        for _ in range(args.rounds):
            for key, clf in clfs.items():
                times[key].append(clf.benchmark(runs=200, warmup=20)["median_ms"])
    cpu = cpu_info()
    median = {key: float(np.median(v)) for key, v in times.items()}
    for variant in ("maxpool", "depthwise"):
        f32, i8 = median[variant, "float32"], median[variant, "int8"]
        print(f"{variant:9} float32 {f32:.4f} ms, int8 {i8:.4f} ms, int8/float32 {i8 / f32:.3f} ({args.threads} "
              f"threads, median of {args.rounds} alternating rounds; CPU {cpu['model']}, features "
              f"{' '.join(cpu['features'] or ['unknown'])})", flush=True)


if __name__ == "__main__":
    main()
