"""ai-edge-quantizer latency benchmark: what each recipe and selective-precision choice costs on this CPU, beside the
TFLite converter's float32 and int8, every figure printed with the CPU model and its features.

    python benchmarks/bench_aeq.py [--model resnet20] [--threads 2] [--rounds 5] [--runs 50]

Latency does not depend on training: random weights, 8 random calibration images, batch 1, through resnet-edge (the
device runner, its default API). Contenders are timed in alternating rounds (each round every file), and each figure
is the median over rounds of the per-round medians, so that load on a shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "deploy")]

# (label, recipe, --int16 patterns, --keep-float patterns); float32 I/O except static_wi8_ai8 (int8, its default)
VARIANTS = [
    ("aeq static_wi8_ai8", "static_wi8_ai8", (), ()),
    ("aeq int8 + int16 stem", "static_wi8_ai8", ("stem",), ()),
    ("aeq int8 + int16 conv4_block1_2_conv", "static_wi8_ai8", ("conv4_block1_2_conv",), ()),
    ("aeq int8 + float classifier", "static_wi8_ai8", (), ("classifier",)),
    ("aeq static_wi8_ai16", "static_wi8_ai16", (), ()),
    ("aeq dynamic_wi8", "dynamic_wi8", (), ()),
    ("aeq weight_only_wi8", "weight_only_wi8", (), ()),
]


def files(name: str, workdir: str, threads: int) -> dict[str, str]:
    from keras_resnet.export import aeq_quantize as aeq
    from keras_resnet.export.metadata import build_metadata, embed_metadata
    from keras_resnet.export.trace import convert_model
    from keras_resnet.model.registry import build_model

    module = aeq.require()
    model = build_model(name, weights=None, input_shape=(32, 32, 3), classes=10)
    calibration = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    contents = {"converter float32": convert_model(model, quantization="float32", temp_dir=workdir),
                "converter int8": convert_model(model, quantization="int8", io_type="int8",
                                                calibration=calibration, temp_dir=workdir)}
    float_content = contents["converter float32"]
    ops = aeq.graph_ops(module, float_content, model)
    signature = aeq.signature_input(float_content)
    for label, recipe, int16, floating in VARIANTS:
        quantizer = aeq.build_quantizer(module, float_content, recipe, aeq.select(ops, int16, "--int16"),
                                        aeq.select(ops, floating, "--keep-float"), recipe != "static_wi8_ai8")
        ranges = aeq.calibrate(module, quantizer, signature, calibration, threads)
        contents[label] = aeq.quantize(quantizer, ranges)
    paths = {}
    for label, content in contents.items():
        meta = build_metadata(model, name, label, None)
        paths[label] = os.path.join(workdir, label.replace(" ", "_") + ".tflite")
        with open(paths[label], "wb") as f:
            f.write(embed_metadata(content, meta))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    from keras_resnet.core import console

    console.quiet()
    console.import_tensorflow()
    from resnet_edge import Classifier
    from resnet_edge.cpu import describe_cpu

    with tempfile.TemporaryDirectory() as workdir:
        paths = files(args.model, workdir, args.threads)
        runners = {label: Classifier(path, threads=args.threads, safe=False, warn=lambda message: None)
                   for label, path in paths.items()}
        samples: dict[str, list[float]] = {label: [] for label in runners}
        for _ in range(args.rounds):
            for label, runner in runners.items():
                samples[label].append(runner.benchmark(runs=args.runs, warmup=3, batch=1)["median_ms"])
        sizes = {label: os.path.getsize(path) for label, path in paths.items()}
        info = {label: runner.info for label, runner in runners.items()}
        del runners
    base = float(np.median(samples["converter float32"]))
    print(f"\nCPU: {describe_cpu()}\n{args.model}, 32², random weights, batch 1, {args.threads} threads, median of "
          f"{args.rounds} alternating rounds of {args.runs} runs\n")
    print("| file | size (MB) | latency (ms) | / converter float32 | runner path |")
    print("|---|---|---|---|---|")
    for label, values in samples.items():
        ms = float(np.median(values))
        print(f"| {label} | {sizes[label] / 1e6:.3f} | {ms:.3f} | {ms / base:.2f}× | {info[label].get('path')} |",
              flush=True)


if __name__ == "__main__":
    main()
