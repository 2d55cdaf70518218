"""The benchmark report: one command, one Markdown file with the machine it ran on.

    python benchmarks/run.py [--quick] [--output docs/benchmarks.md]      (or: make bench)

Sections: Keras forward and training throughput against keras.applications (ratios from one run),
TFLite size and latency per format for ResNet-20/56/50 (our runner `resnet-edge` and
`litert-benchmark`), accuracy float vs PTQ vs QAT (the demo on digits), and how parameters, latency
and conversion time grow with depth (20 → 110 → 1202), with a plot. ``--quick`` skips ResNet-50,
ResNet-1202 and the training benchmark (a smoke run of the report itself).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.dirname(sys.executable)
THREADS = 2


def sh(*args: str, timeout: int = 3600) -> str:
    """Run a command; return its stdout (its stderr goes to ours only on failure)."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if result.returncode:
        sys.stderr.write(result.stderr[-3000:])
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}")
    return result.stdout


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def machine() -> list[str]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = []
    for package in ("tensorflow", "keras", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            pass
    try:  # the int8 figures depend on these (VNNI, AMX, Arm dot-product): docs/benchmarks.md, per ISA
        from resnet_edge.cpu import cpu_info, describe_cpu

        info = cpu_info()
        cpu, features = info["model"], describe_cpu(info).split(" cores, ", 1)[1]
    except ImportError:
        cpu, features = platform.processor(), "features not read (resnet-edge not installed)"
    return [f"- date: {datetime.date.today().isoformat()}", f"- CPU: {cpu}, {os.cpu_count()} cores, "
            f"{memory:.0f} GiB; {platform.platform()}", f"- CPU {features}", f"- Python {platform.python_version()}; {', '.join(versions)}",
            f"- TFLite figures: {THREADS} threads, batch 1, median of timed runs"]


def runner_ms(path: str) -> float:
    out = sh(os.path.join(BIN, "resnet-edge"), "benchmark", path, "--threads", str(THREADS), "--runs", "50",
             "--warmup", "5", "--json")
    return float(last_json(out)["median_ms"])


def litert_benchmark_ms(path: str) -> float | None:
    tool = os.path.join(BIN, "litert-benchmark")
    if not os.path.exists(tool):
        return None
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        sh(tool, "--model", path, "--num_threads", str(THREADS), "--num_runs", "50", "--result_json", f.name)
        return float(json.load(open(f.name))["latency"]["median_ms"])


def tflite_formats(models: list[tuple[str, int]], workdir: str) -> tuple[list[str], list[dict]]:
    import numpy as np

    from keras_resnet import build_model
    from keras_resnet.export import trace

    rows = []
    for name, size in models:
        model = build_model(name, weights=None, input_shape=(size, size, 3))
        calibration = np.random.default_rng(0).uniform(0, 255, (16, size, size, 3)).astype("float32")
        for mode in ("float32", "float16", "dynamic", "int8"):
            start = time.perf_counter()
            content = trace.convert_model(model, quantization=mode, io_type="int8" if mode == "int8" else "float32",
                                          calibration=calibration if mode == "int8" else None)
            seconds = time.perf_counter() - start
            path = os.path.join(workdir, f"{name}_{mode}.tflite")
            with open(path, "wb") as f:
                f.write(content)
            ours, theirs = runner_ms(path), litert_benchmark_ms(path)
            rows.append({"model": name, "input": size, "format": mode, "size_mb": len(content) / 1e6,
                         "runner_ms": ours, "litert_benchmark_ms": theirs, "convert_s": seconds})
            print(f"  {name} {mode}: {rows[-1]['size_mb']:.2f} MB, resnet-edge {ours:.2f} ms, "
                  f"litert-benchmark {theirs} ms", flush=True)
    lines = ["| model | input | format | size (MB) | resnet-edge median (ms) | litert-benchmark median (ms) | ratio | conversion (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = next(x for x in rows if x["model"] == r["model"] and x["format"] == "float32")
        ratio = f"{r['runner_ms'] / r['litert_benchmark_ms']:.2f}" if r["litert_benchmark_ms"] else ""
        lines.append(f"| {r['model']} | {r['input']}² | {r['format']} | {r['size_mb']:.2f} "
                     f"({r['size_mb'] / base['size_mb']:.2f}×) | {r['runner_ms']:.2f} "
                     f"({base['runner_ms'] / r['runner_ms']:.2f}× faster) | {r['litert_benchmark_ms'] or ''} | "
                     f"{ratio} | {r['convert_s']:.1f} |")
    return lines, rows


def depth_scaling(depths: list[int], workdir: str) -> tuple[list[str], list[dict]]:
    import numpy as np

    from keras_resnet import build_model
    from keras_resnet.export import trace

    rows = []
    for depth in depths:
        start = time.perf_counter()
        model = build_model(f"resnet{depth}", zero_init=True)  # zero-init keeps 1202 finite at random weights
        built = time.perf_counter() - start
        start = time.perf_counter()
        content = trace.convert_model(model, quantization="float32")
        converted = time.perf_counter() - start
        path = os.path.join(workdir, f"resnet{depth}.tflite")
        with open(path, "wb") as f:
            f.write(content)
        rows.append({"depth": depth, "params": int(model.count_params()), "layers": len(model.layers),
                     "build_s": built, "convert_s": converted, "size_mb": len(content) / 1e6,
                     "runner_ms": runner_ms(path)})
        print(f"  resnet{depth}: {rows[-1]}", flush=True)
        del model
        np.random.default_rng(0)
    lines = ["| model | parameters | Keras layers | build (s) | conversion float32 (s) | .tflite (MB) | latency (ms) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| ResNet-{r['depth']} | {r['params']:,} | {r['layers']} | {r['build_s']:.1f} | {r['convert_s']:.1f} | "
              f"{r['size_mb']:.2f} | {r['runner_ms']:.2f} |" for r in rows]
    return lines, rows


def plot(formats: list[dict], depths: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    models = sorted({r["model"] for r in formats}, key=lambda m: [r["model"] for r in formats].index(m))
    modes = ["float32", "float16", "dynamic", "int8"]
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        values = [next(r["runner_ms"] for r in formats if r["model"] == m and r["format"] == mode) for m in models]
        axes[0].bar([k + i * width for k in range(len(models))], values, width, label=mode)
    axes[0].set_xticks([k + 0.4 - width / 2 for k in range(len(models))], models)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("median latency, batch 1 (ms)")
    axes[0].set_title(f"TFLite latency by format ({THREADS} threads)")
    axes[0].legend()
    d = [r["depth"] for r in depths]
    for key, label in (("params", "parameters (M)"), ("runner_ms", "latency (ms)"), ("convert_s", "conversion (s)")):
        values = [r[key] / (1e6 if key == "params" else 1) for r in depths]
        axes[1].plot(d, values, marker="o", label=label)
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xticks(d, [str(x) for x in d])
    axes[1].set_xlabel("CIFAR ResNet depth")
    axes[1].set_title("growth with depth")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--quick", action="store_true", help="skip ResNet-50, ResNet-1202 and training")
    args = parser.parse_args()
    if shutil.which("resnet-edge", path=BIN) is None:
        sys.exit("resnet-edge is not installed in this environment: pip install -e ./deploy")

    started = time.perf_counter()
    sections = ["# Benchmarks", "", "Written by `python benchmarks/run.py`. Absolute times are noisy on shared "
                "machines; the ratios come from one run, contenders measured alternately.", "", "## Machine", "",
                *machine(), ""]
    print("keras forward throughput ...", flush=True)
    build = last_json(sh(sys.executable, os.path.join(HERE, "bench_build.py"), "--json",
                         "--batch", "8" if args.quick else "32", "--size", "96" if args.quick else "224"))
    rate = build["forward"]["images_per_s"]
    sections += ["## Keras forward pass (ResNet50, tf.function)", "",
                 f"keras_resnet {rate['keras_resnet']:.1f} images/s vs keras.applications "
                 f"{rate['keras.applications']:.1f} images/s: ratio **{build['forward']['ratio']:.3f}** (target ≥ 0.98).",
                 "", "Build time: " + ", ".join(f"{k} {v:.1f} s" for k, v in build["build_s"].items()), ""]
    if not args.quick:
        print("training throughput ...", flush=True)
        out = sh(sys.executable, os.path.join(HERE, "bench_train.py"))
        sections += ["## Training throughput (`benchmarks/bench_train.py`)", "", "```",
                     *[line for line in out.strip().splitlines() if not line.startswith("{")], "```", ""]

    with tempfile.TemporaryDirectory() as workdir:
        print("TFLite formats ...", flush=True)
        models = [("resnet20", 32), ("resnet56", 32)] + ([] if args.quick else [("resnet50", 224)])
        lines, formats = tflite_formats(models, workdir)
        sections += ["## TFLite size and latency by format", "", "Random weights (latency and size do not depend "
                     "on training); int8 is full-integer post-training quantization with int8 I/O.", "", *lines, ""]
        print("depth scaling ...", flush=True)
        lines, depths = depth_scaling([20, 110] if args.quick else [20, 110, 1202], workdir)
        sections += ["## Growth with depth (CIFAR ResNets, 32², float32 TFLite)", "", *lines, ""]
        plot(formats, depths, os.path.splitext(args.output)[0] + ".png")
        sections += [f"![latency by format and growth with depth]({os.path.basename(os.path.splitext(args.output)[0])}.png)", ""]

        print("demo: accuracy float vs PTQ vs QAT ...", flush=True)
        demo = os.path.join(workdir, "demo")
        epochs = "10" if args.quick else "20"
        sh(os.path.join(BIN, "keras-resnet"), "demo", "--output", demo, "--epochs", epochs)
        table = open(os.path.join(demo, "results.md")).read().split("\n", 2)[2].strip()
        sections += [f"## Accuracy: float vs PTQ vs QAT (`keras-resnet demo --epochs {epochs}`, ResNet-20 on "
                     "digits)", "", table, ""]

    sections += [f"Report written in {time.perf_counter() - started:.0f} s."]
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        f.write("\n".join(sections) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
