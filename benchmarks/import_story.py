"""Import → int8 TFLite → resnet-edge, per architecture: import time, parity with PyTorch, float-vs-int8 top-1
agreement, .tflite size and latency (issue 13's table).

    python benchmarks/import_story.py [--threads 2] [--runs 50] [--samples 64] [--no-full-size]
        [--json benchmarks/import_story.json] [--markdown benchmarks/import_story.md]

Rows: the committed parity fixtures (tests/fixtures/import: reduced-width copies of each topology written by the real
timm / torchvision, with PyTorch's logits), and one full-size timm ``resnet50`` state dict of random values (the
names and shapes timm writes; there is no PyTorch reference for it, so no parity figure). For each row:

- import: reading the weights file and building the Keras model (``torch_mapping.convert_state_dict``), seconds;
- parity: ``max |keras − pytorch| / max |pytorch|`` of the logits at 224² and 97² (the fixtures' two inputs);
- int8: ``keras-resnet convert``'s full-integer post-training quantization at 224² (calibration on random pixels)
  of the model with a logits head (see ``measure``),
  then the top-1 agreement of the int8 ``.tflite`` run in resnet-edge with the float Keras model on ``--samples``
  other random-pixel images (random-weight models: near-ties decide some of these; it shows the int8 path works, not
  an ImageNet accuracy drop);
- size of the ``.tflite``, and latency: resnet-edge's ``Classifier.benchmark`` (ai-edge-litert, batch 1,
  ``--threads`` threads), median and minimum of ``--runs`` invokes.

The CPU model and its flags are recorded with the figures; on a shared machine the latencies are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "import"
ROWS = ("timm_resnet50", "timm_resnet50d", "timm_seresnet50", "timm_resnext50", "timm_wide_resnet50", "tv_resnet50")


def cpu() -> dict:
    """resnet-edge's CPU record plus every avx512/vnni/amx flag lscpu lists."""
    from resnet_edge.cpu import cpu_info

    info = cpu_info()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
        line = next((x for x in out.splitlines() if x.startswith("Flags:")), "")
        info["lscpu_flags"] = sorted(f for f in line.split()[1:] if f.startswith(("avx512", "amx")) or "vnni" in f)
    except (OSError, subprocess.SubprocessError):
        info["lscpu_flags"] = None
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    return info


def _arch(fixture: dict):
    from keras_resnet.spec.specs import Arch, BlockOptions

    arch = Arch(fixture["block"], tuple(fixture["blocks"]), tuple(fixture["filters"]), fixture.get("stem", "imagenet"),
                fixture.get("stem_filters"))
    return arch, BlockOptions(**fixture["options"])


def write_random_safetensors(path: pathlib.Path, shapes: dict[str, list[int]], seed: int = 0) -> None:
    """A state dict of ``shapes`` with He-scaled kernels and plausible BatchNorm statistics (as tests/test_story.py)."""
    from keras_resnet.io.weights import write_safetensors

    rng = np.random.default_rng(seed)
    tensors = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif key.endswith(("running_mean", "bias")):
            value = rng.normal(0, 0.1, shape)
        elif len(shape) == 1:
            value = rng.uniform(0.2, 0.6, shape)
        else:
            value = rng.normal(0, np.sqrt(2.0 / int(np.prod(shape[1:]))), shape)
        tensors[key] = value.astype(np.float32)
    write_safetensors(path, tensors)


def measure(label: str, weights: pathlib.Path, arch, opts, reference: dict | None, args, folder: str) -> dict:
    from resnet_edge import Classifier

    from keras_resnet.export import convert
    from keras_resnet.io import torch_mapping
    from keras_resnet.io.weights import read_weights

    start = time.perf_counter()
    model = torch_mapping.convert_state_dict(read_weights(weights), arch, opts, input_shape=(None, None, 3),
                                             classifier_activation=None)
    import_s = time.perf_counter() - start
    parity = {}
    if reference is not None:
        inputs = np.load(FIXTURES / "reference.npz")
        for size in reference["sizes"]:
            y = np.asarray(model(inputs[f"inputs_{size}"].astype(np.float32), training=False))
            expected = inputs[f"{reference['name']}_{size}"]
            parity[str(size)] = float(np.abs(y - expected).max() / np.abs(expected).max())
    # Logits out, as the PyTorch model: a random-weight 1000-way softmax is nearly flat (every probability below
    # the int8 output's 1/256 step), so its int8 top-1 is a tie broken by index (measured: 0/64 agreement for the
    # full-size ResNet-50 with a softmax head, 17 classes tied at one step); logits keep their order in int8.
    fixed = torch_mapping.convert_state_dict(read_weights(weights), arch, opts, input_shape=(224, 224, 3),
                                             classifier_activation=None)
    path = os.path.join(folder, f"{label.replace(':', '_').replace(' ', '_')}.tflite")
    report = convert.convert(fixed, path, quantization="int8", calibration_data="random",
                             calibration_samples=args.calibration, validation_samples=args.samples, min_agreement=0.0,
                             threads=args.threads)
    runner = Classifier(path, threads=args.threads, warn=lambda message: None)
    bench = runner.benchmark(runs=args.runs, warmup=5, batch=1)
    row = {"model": label, "weights": weights.name, "parameters": int(fixed.count_params()),
           "import_s": round(import_s, 2), "parity_224": parity.get("224"), "parity_97": parity.get("97"),
           "int8_agreement": report.agreement, "agreement_samples": report.samples,
           "int8_max_abs_diff": round(report.max_abs_diff, 4), "float_ops": report.float_ops,
           "tflite_bytes": report.size_bytes, "latency_median_ms": round(bench["median_ms"], 3),
           "latency_min_ms": round(bench["min_ms"], 3), "threads": args.threads, "runs": bench["runs"],
           "runtime": f"{bench.get('runtime')} {bench.get('runtime_version')}", "api": bench.get("api")}
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict], machine: dict, args) -> str:
    flags = ", ".join(machine.get("lscpu_flags") or machine.get("features") or [])
    lines = [
        "# Import story benchmark (`benchmarks/import_story.py`)",
        "",
        f"`python benchmarks/import_story.py --threads {args.threads} --runs {args.runs} --samples {args.samples}`, "
        f"{time.strftime('%Y-%m-%d')}. CPU: {machine['model']} ({machine['cores']} cores visible; flags {flags}); "
        f"load average at the start {machine.get('load_average')} (the machine was shared with other jobs, so "
        "every latency is an upper bound). Latency: resnet-edge `Classifier.benchmark`, "
        f"{rows[0]['runtime'] if rows else ''}, batch 1, {args.threads} threads, median (min) of {args.runs} "
        "invokes at 224². int8: full-integer post-training quantization (32 random-pixel calibration images) of "
        "the model with a logits head (PyTorch's output; a random-weight 1000-way softmax is flatter than the int8 "
        "output's 1/256 step, so its int8 top-1 would be a tie). Random weights and random-pixel images: the "
        "agreement says the int8 graph follows the float one, not what ImageNet accuracy it keeps.",
        "",
        "| model | weights file | parameters | import | parity 224² | parity 97² | int8 top-1 agreement "
        "(max \\|Δ logit\\|) | .tflite | latency median (min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p224 = f"{r['parity_224']:.1e}" if r["parity_224"] is not None else "n/a"
        p97 = f"{r['parity_97']:.1e}" if r["parity_97"] is not None else "n/a"
        lines.append(f"| {r['model']} | `{r['weights']}` | {r['parameters']:,} | {r['import_s']:.2f} s | {p224} | "
                     f"{p97} | {r['int8_agreement']:.3f} of {r['agreement_samples']} ({r.get('int8_max_abs_diff', float('nan')):.3g}) | "
                     f"{r['tflite_bytes'] / 1e6:.2f} MB | {r['latency_median_ms']:.2f} ({r['latency_min_ms']:.2f}) "
                     f"ms |")
    lines += ["", "Reduced rows: the committed fixtures (stage widths 8/16/32/64, blocks 2/1/1/1, the 64-channel "
              "7×7 stem or deep stem, 10 classes) with PyTorch's float64 logits; parity is "
              "`max |keras − pytorch| / max |pytorch|` (target 1e-4). The full-size row has no PyTorch reference.",
              ""]
    return "\n".join(lines)


def measure_all(manifest: dict, rows: list[dict], args, folder: str) -> None:
    for name in ROWS:
        fixture = manifest["fixtures"][name]
        arch, opts = _arch(fixture)
        label = f"{fixture['source']} {name.split('_', 1)[1]} (reduced)"
        rows.append(measure(label, FIXTURES / fixture["file"], arch, opts,
                            {"name": name, "sizes": manifest["sizes"]}, args, folder))
    if args.full_size:
        from keras_resnet.io import torch_sources

        weights = pathlib.Path(folder) / "model.safetensors"
        write_random_safetensors(weights, manifest["full_size"]["timm:resnet50"])
        arch, opts = torch_sources.architecture("timm", "resnet50")
        rows.append(measure("timm resnet50 (full size, random)", weights, arch, opts, None, args, folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--samples", type=int, default=64, help="random images for the float-vs-int8 agreement")
    parser.add_argument("--calibration", type=int, default=32, help="random calibration images")
    parser.add_argument("--no-full-size", dest="full_size", action="store_false")
    parser.add_argument("--json", default=None, help="write the rows and the machine here")
    parser.add_argument("--markdown", default=None, help="write the table here")
    args = parser.parse_args()
    machine = cpu()
    print(json.dumps({"cpu": machine, "python": sys.version.split()[0], "platform": platform.platform()}),
          flush=True)
    manifest = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="import_story_") as folder:  # ~130 MB with the full-size row
        measure_all(manifest, rows, args, folder)
    text = markdown(rows, machine, args)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"cpu": machine, "settings": vars(args), "rows": rows}, f, indent=1)
            f.write("\n")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
