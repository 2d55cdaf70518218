"""Edge targets benchmark (issue 22): one table of ResNet-8/20/56 (CIFAR-style, 32x32x3, 10 classes) and ResNet-18/50
(ImageNet-style, 1000 classes, at 96x96 and 224x224) across the int8 targets: cpu (LiteRT/XNNPACK), Arm Ethos-U NPUs
through Vela (ethos-u55-128, ethos-u65-256, ethos-u85-256) and microcontrollers through TensorFlow Lite Micro (mcu).

    python benchmarks/edge_targets.py                      # the full table -> benchmarks/edge_targets.{json,md}
    python benchmarks/edge_targets.py --quick --json X.json --md X.md   # ResNet-8 on cpu, ethos-u55-128, mcu
    python benchmarks/edge_targets.py --models resnet8,resnet20 --targets ethos-u55-128,mcu --keep DIR

Every file comes from the product's own conversion, keras_resnet.export.convert.convert() with ``target=`` (what
``keras-resnet convert M --target T`` runs): random-initialised weights, int8 PTQ calibrated on random pixels
(--calibration images), validated in resnet-edge on random pixels with --min-agreement 0 (agreement means nothing for
random weights). Op mapping, size, Vela's estimates and the arena do not depend on trained weights; accuracy is not
measured here. The Ethos-U configs share one plan (full int8, int8 I/O, batch 1, option A's subsampling as
MAX_POOL_2D), so each model is converted once with --target <the first Ethos-U target> and the other configs are
judged on that file by keras_resnet.export.ethos.ethos_check, the function the target's conversion calls.

Columns: ops on the accelerator (Ethos-U: TFLite ops on the NPU / all, per Vela; cpu: ops XNNPACK takes / all, per
resnet-edge check; mcu: every op runs on the Cortex-M CPU in TFLM kernels), Vela's estimated latency and inferences/s
at the system config's clock, SRAM (Vela) or tensor arena (TFLM's planner, the smallest that allocates), flash (Vela's
on/off-chip flash, or DRAM where Vela's default memory mode keeps the weights there; TFLM: the .tflite), the .tflite
file, and host latency: the int8 file in resnet-edge (LiteRT), batch 1, median of --runs runs, median over --rounds
alternating rounds (the machine may be shared: ratios within one run are what mean anything). ``--budget`` seconds:
cases not started when it is spent are skipped and say so (nothing hangs past one case).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shlex
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "deploy")]

CIFAR_MODELS = ("resnet8", "resnet20", "resnet56")
IMAGENET_MODELS = ("resnet18", "resnet50")
SIZES = (96, 224)
ETHOS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")
TARGETS = ("cpu", *ETHOS, "mcu")
LARGE_TARGETS = ETHOS  # ImageNet-style models: the NPUs only (an MCU target for a 12-25 MB model is meaningless)
QUICK = {"models": ["resnet8"], "targets": ["cpu", "ethos-u55-128", "mcu"], "rounds": 1, "runs": 5}
NOT_MEASURED = {  # ImageNet-style models: why these targets have no row of their own
    "mcu": "a 12-25 MB model on a microcontroller is meaningless (no MCU has the flash or the RAM; no TFLM arena search)",
    "cpu": "the NPU rows' host latency is this int8 graph on the CPU (bench_convert.py times the cpu target)"}
VERSIONS = ("ethos-u-vela", "tflite-micro", "ai-edge-litert", "tensorflow", "keras")


def cases(models: list[str], sizes: list[int], targets: list[str]) -> list[dict]:
    """The (model, input, targets) cells to measure, in table order."""
    out = []
    for name in models:
        if name in CIFAR_MODELS:
            out.append({"model": name, "shape": (32, 32, 3), "classes": 10, "targets": list(targets)})
        elif name in IMAGENET_MODELS:
            wanted = [t for t in targets if t in LARGE_TARGETS]
            for size in sizes:
                out.append({"model": name, "shape": (size, size, 3), "classes": 1000, "targets": wanted,
                            "not_measured": {t: NOT_MEASURED[t] for t in targets if t not in LARGE_TARGETS}})
        else:
            raise SystemExit(f"unknown model {name}; choose from {', '.join(CIFAR_MODELS + IMAGENET_MODELS)}")
    return out


def _convert(model, path: str, target: str, args) -> tuple[object, float]:
    """keras_resnet's own conversion for ``target`` (the library call behind ``keras-resnet convert``)."""
    from keras_resnet.export import convert

    start = time.perf_counter()
    extra = {"quantization": "int8"} if target == "cpu" else {"allow_cpu_fallback": True} if target in ETHOS else {}
    report = convert.convert(model, path, target=target, calibration_data="random",
                             calibration_samples=args.calibration, validation_samples=args.validation,
                             min_agreement=0.0, threads=args.threads, force=True, **extra)
    return report, time.perf_counter() - start


def _base(case: dict, target: str, path: str | None) -> dict:
    h, w, c = case["shape"]
    return {"model": case["model"], "input": f"{h}x{w}x{c}", "classes": case["classes"], "target": target,
            "file": os.path.basename(path) if path else None, "file_bytes": os.path.getsize(path) if path else None}


def _ethos_row(case: dict, target: str, path: str, result: dict, seconds: float, how: str) -> dict:
    vela = result.get("vela") or {}
    npu, cpu = result["npu_ops"], result["cpu_op_count"]
    return {**_base(case, target, path), "ops_total": npu + cpu, "ops_on_accelerator": npu,
            "accelerator_share": npu / max(1, npu + cpu), "cpu_ops": result["cpu_ops"],
            "checked_with": result["checked_with"], "estimated_ms": vela.get("inference_ms"),
            "estimated_inferences_per_s": vela.get("inferences_per_second"), "sram_kib": vela.get("sram_kib"),
            "flash_kib": (vela.get("on_chip_flash_kib") or 0) + (vela.get("off_chip_flash_kib") or 0),
            "dram_kib": vela.get("dram_kib") or 0.0, "vela": vela, "how": how, "seconds": round(seconds, 1)}


def measure_case(case: dict, workdir: str, args) -> tuple[list[dict], dict[str, str]]:
    """Rows of one model/input over its targets, and {file: path} of the int8 files to time on the host."""
    import keras
    from resnet_edge.check import check

    from keras_resnet.core.errors import Error
    from keras_resnet.export import ethos
    from keras_resnet.model.registry import build_model

    keras.utils.set_random_seed(0)
    model = build_model(case["model"], weights=None, input_shape=case["shape"], classes=case["classes"])
    stem = f"{case['model']}_{case['shape'][0]}"
    rows, files = [], {}
    first_ethos = next((t for t in case["targets"] if t in ETHOS), None)
    for target in case["targets"]:
        path = os.path.join(workdir, f"{stem}_{'ethos-u' if target in ETHOS else target}.tflite")
        try:
            if target in ETHOS and target != first_ethos:
                if os.path.basename(path) not in files:
                    rows.append({**_base(case, target, None), "error": f"the --target {first_ethos} conversion failed"})
                    continue
                start = time.perf_counter()
                with open(path, "rb") as f:
                    result = ethos.ethos_check(f.read(), target).as_dict()
                rows.append(_ethos_row(case, target, path, result, time.perf_counter() - start,
                                       f"ethos_check on the --target {first_ethos} file"))
                continue
            report, seconds = _convert(model, path, target, args)
        except Error as error:  # a refused conversion is a result, not a crash
            rows.append({**_base(case, target, None), "error": str(error)})
            continue
        files[os.path.basename(path)] = path
        total = sum(report.ops.values())
        if target in ETHOS:
            rows.append(_ethos_row(case, target, path, report.ethos_u, seconds, f"convert --target {target}"))
        elif target == "mcu":
            m = report.micro
            rows.append({**_base(case, target, path), "ops_total": total, "ops_on_accelerator": None,
                         "accelerator_share": None, "arena_bytes": m["arena_bytes"], "flash_bytes": m["flash_bytes"],
                         "max_lsb_diff": m["max_lsb_diff"], "lsb_samples": m["samples"], "runtime": m["runtime"],
                         "resolver": m["resolver"], "how": "convert --target mcu", "seconds": round(seconds, 1)})
        else:
            status = [row["status"] for row in check(path, "cpu").ops]
            xnnpack = sum(s == "XNNPACK" for s in status)
            rows.append({**_base(case, target, path), "ops_total": len(status), "ops_on_accelerator": xnnpack,
                         "accelerator_share": xnnpack / max(1, len(status)), "float_ops": report.float_ops,
                         "how": "convert --target cpu --quantize int8", "seconds": round(seconds, 1)})
    for target, why in case.get("not_measured", {}).items():
        rows.append({**_base(case, target, None), "skipped": why})
    return rows, files


def host_latency(files: dict[str, str], threads: int, rounds: int, runs: int) -> dict[str, float]:
    """{file: median ms} of each int8 file in resnet-edge, batch 1, over alternating rounds."""
    import numpy as np
    from resnet_edge import Classifier

    runners = {name: Classifier(path, threads=threads, safe=False, warn=lambda message: None)
               for name, path in files.items()}
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, clf in runners.items():
            samples[name].append(clf.benchmark(runs=runs, warmup=3, batch=1)["median_ms"])
    return {name: round(float(np.median(v)), 4) for name, v in samples.items()}


def environment(argv: list[str]) -> dict:
    from resnet_edge.cpu import cpu_info, describe_cpu

    versions = {}
    for name in VERSIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    cpu = cpu_info()
    flags = {f: f in (cpu["features"] or []) for f in ("avx2", "avx512f", "avx512_vnni", "amx_int8")}
    return {"cpu": describe_cpu(cpu), "cpu_model": cpu["model"], "cores": cpu["cores"], "cpu_flags": flags, "versions": versions,
            "command": ("python benchmarks/edge_targets.py " + shlex.join(argv)).strip()}


def _fmt(value, spec: str = ".2f", empty: str = "—") -> str:
    return empty if value is None else format(value, spec)


def _cells(r: dict) -> list[str]:
    if "error" in r or "skipped" in r:
        why = r.get("error") or r.get("skipped")
        return ["refused: " + why[:120] if "error" in r else "not measured: " + why] + [""] * 7
    if r["target"] == "mcu":
        ops = f"— (all {r['ops_total']} in TFLM kernels on the CPU)"
        memory, flash = f"arena {r['arena_bytes'] / 1024:.1f}", f"{r['flash_bytes'] / 1024:.1f}"
    else:
        ops = f"{r['ops_on_accelerator']}/{r['ops_total']} ({100 * r['accelerator_share']:.0f}%)"
        if r["target"] == "cpu":
            ops += " XNNPACK"
            memory, flash = "—", f"{r['file_bytes'] / 1024:.1f}"
        else:
            ops += " NPU"
            memory = f"SRAM {_fmt(r['sram_kib'], '.1f')}"
            flash = f"{r['flash_kib']:.1f}" if r["flash_kib"] else f"{r['dram_kib']:.1f} (DRAM)"
    return [ops, _fmt(r.get("estimated_ms"), ".3f"), _fmt(r.get("estimated_inferences_per_s"), ".0f"), memory,
            flash, f"{r['file_bytes'] / 1024:.1f}", _fmt(r.get("host_ms"), ".3f")]


def markdown(result: dict) -> str:
    env = result["environment"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in env["cpu_flags"].items())
    versions = ", ".join(f"{k} {v or 'not installed'}" for k, v in env["versions"].items())
    lines = [f"Measured with `{env['command']}` on {env['cpu']} ({flags}); {versions}.",
             "", result["caveat"], "",
             "| model | input | target | ops on the accelerator | est. latency (ms) | est. inferences/s | "
             "SRAM / arena (KiB) | flash (KiB) | .tflite (KiB) | host latency (ms) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    not_measured: dict[tuple[str, str], list[str]] = {}
    for r in result["rows"]:
        if "skipped" in r:  # a note under the table, not an empty row
            not_measured.setdefault((r["target"], r["skipped"]), []).append(f"{r['model']} {r['input']}")
            continue
        cells = _cells(r)
        if "error" in r:
            cells = [cells[0], "", "", "", "", "", ""]
        lines.append(f"| {r['model']} | {r['input']} | {r['target']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"No {target} row for {', '.join(who)}: {why}." for (target, why), who in not_measured.items()]
    configs = sorted({f"{r['target']}: {r['vela'].get('system_config')}, {r['vela'].get('memory_mode')}, "
                      f"{r['vela'].get('clock_hz', 0) / 1e6:g} MHz" for r in result["rows"] if r.get("vela")})
    if configs:
        lines += ["Vela's default system configs: " + "; ".join(configs) + "."]
    lines += [f"Host latency: resnet-edge, {result['settings']['threads']} thread(s), batch 1, median of "
              f"{result['settings']['runs']} runs, median over {result['settings']['rounds']} alternating rounds; "
              "the Ethos-U rows share one file (its host latency is repeated)."]
    lines += [f"Skipped: {s}" for s in result["skipped"]]
    load = env.get("load_average")
    lines += ["Seconds per model (conversions, Vela, TFLM's arena search, host timing): "
              + ", ".join(f"{k} {v:g}" for k, v in result["case_seconds"].items())
              + f"; {result['seconds']:g} s in all" + (f", load average {load[0]:.1f} at the start and {load[1]:.1f} "
                                                      f"at the end on {env['cores']} cores shared with other "
                                                      "work" if load else "") + "."]
    return "\n".join(lines) + "\n"


CAVEAT = ("Random-initialised weights, int8 PTQ calibrated on random pixels: op mapping, sizes, Vela's estimates and "
          "the TFLM arena do not depend on trained weights; no accuracy is measured here. Estimated latency is "
          "Vela's performance model at the system config's clock, not a measurement on silicon.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"{QUICK} (seconds; the test)")
    p.add_argument("--models", default=",".join(CIFAR_MODELS + IMAGENET_MODELS))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="ImageNet-style input sizes")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--calibration", type=int, default=16, help="random calibration images")
    p.add_argument("--validation", type=int, default=8, help="random validation images (and TFLM's LSB check)")
    p.add_argument("--budget", type=float, default=900.0, help="seconds; later cases are skipped once spent")
    p.add_argument("--keep", help="keep the converted files in this folder")
    p.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "edge_targets.json"))
    p.add_argument("--md", default=os.path.join(ROOT, "benchmarks", "edge_targets.md"))
    args = p.parse_args(argv)
    models, targets = args.models.split(","), args.targets.split(",")
    if args.quick:
        models, targets, args.rounds, args.runs = QUICK["models"], QUICK["targets"], QUICK["rounds"], QUICK["runs"]
    if set(targets) - set(TARGETS):
        p.error(f"--targets: choose from {', '.join(TARGETS)}")
    start = time.perf_counter()
    rows, skipped, case_seconds = [], [], {}
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or tmp
        os.makedirs(workdir, exist_ok=True)
        for case in cases(models, [int(s) for s in args.sizes.split(",")], targets):
            label = f"{case['model']} {case['shape'][0]}x{case['shape'][1]}"
            if time.perf_counter() - start > args.budget:
                skipped.append(f"{label}: the --budget of {args.budget:g} s was spent before it started")
                continue
            t = time.perf_counter()
            case_rows, files = measure_case(case, workdir, args)
            latency = host_latency(files, args.threads, args.rounds, args.runs)
            for r in case_rows:
                r["host_ms"] = latency.get(r["file"]) if r.get("file") else None
            rows += case_rows
            case_seconds[label] = round(time.perf_counter() - t)
            print(f"{label}: {case_seconds[label]} s", flush=True)
            for r in case_rows:
                print("  " + r["target"] + ": " + " | ".join(c for c in _cells(r) if c), flush=True)
    env = environment(argv)
    if load_start is not None:
        env["load_average"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    result = {"environment": env, "caveat": CAVEAT, "rows": rows, "skipped": skipped, "case_seconds": case_seconds,
              "settings": {k: getattr(args, k) for k in ("threads", "rounds", "runs", "calibration", "validation")},
              "seconds": round(time.perf_counter() - start, 1)}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    with open(args.md, "w") as f:
        f.write("# Edge targets (benchmarks/edge_targets.py)\n\n" + markdown(result))
    print(f"\n{markdown(result)}\nwrote {args.json} and {args.md} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
