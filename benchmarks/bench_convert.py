"""Conversion benchmark: ResNet-50 224² latency/size (float32 vs int8), ResNet-20 / ResNet-20 V2 on digits
(float vs PTQ int8 vs float16 vs QAT int8 accuracy). Prints one line per figure.

    python benchmarks/bench_convert.py [--quick]   (--quick: skip ResNet-50)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def resnet50(workdir: str, threads: int) -> None:
    from keras_resnet import convert as C
    from keras_resnet.build import build_model

    model = build_model("resnet50", weights=None)
    x = np.random.default_rng(0).uniform(0, 255, (8, 224, 224, 3)).astype("float32")
    rows = {}
    for mode in ("float32", "int8"):
        start = time.perf_counter()
        content = C.convert_model(model, quantization=mode, io_type="int8" if mode == "int8" else "float32",
                                  calibration=x if mode == "int8" else None)
        seconds = time.perf_counter() - start
        tflite = C.TFLiteModel(content, threads)
        rows[mode] = (len(content), tflite.latency_ms(x, runs=20), seconds)
        print(f"resnet50 224 {mode:<8} size {len(content) / 1e6:7.2f} MB  latency {rows[mode][1]:7.2f} ms "
              f"({threads} threads)  conversion {seconds:6.1f} s", flush=True)
    print(f"resnet50 int8/float32: latency {rows['int8'][1] / rows['float32'][1]:.3f} (target <= 0.30), "
          f"size {rows['int8'][0] / rows['float32'][0]:.3f} (target <= 0.26)", flush=True)


def digits(name: str, workdir: str, epochs: int, qat_epochs: int) -> None:
    import keras

    from keras_resnet import convert as C
    from keras_resnet import data, train
    from keras_resnet import quantize as Q

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
    float_acc = Q.accuracy(model, xt, yt)
    print(f"{name} digits keras float32 accuracy {float_acc:.4f}", flush=True)
    for mode in ("float16", "int8"):
        content = C.convert_model(model, quantization=mode, io_type="int8" if mode == "int8" else "float32",
                                  calibration=x[:200].astype("float32") if mode == "int8" else None)
        acc = float(np.mean(C.TFLiteModel(content)(xt).argmax(-1) == yt))
        print(f"{name} digits tflite {mode:<7} (PTQ) accuracy {acc:.4f}  ({acc - float_acc:+.4f})  "
              f"float ops {len(C.op_summary(content)[1])}", flush=True)
    result = Q.qat_fine_tune(path, "digits", qat_epochs, os.path.join(workdir, f"{name}_qat.h5"))
    qat = Q.load_model(result.path)
    content = C.convert_model(qat, quantization="int8", io_type="int8")
    acc = float(np.mean(C.TFLiteModel(content)(xt).argmax(-1) == yt))
    print(f"{name} digits QAT keras accuracy {result.accuracy:.4f}; tflite int8 (QAT, {qat_epochs} epochs) accuracy "
          f"{acc:.4f}  ({acc - float_acc:+.4f} vs float; target within 0.003)  float ops "
          f"{len(C.op_summary(content)[1])}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--qat-epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        if not args.quick:
            resnet50(workdir, args.threads)
        for name in ("resnet20", "resnet20v2"):
            digits(name, workdir, args.epochs, args.qat_epochs)


if __name__ == "__main__":
    main()
