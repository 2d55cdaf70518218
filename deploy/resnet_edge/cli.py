"""``resnet-edge classify|benchmark|info|check``: the command line. Exit codes: 0 ok, 1 a file or the model failed, 2 usage."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import warnings
from typing import Any

from PIL import Image

from . import __version__
from .cpu import cpu_info, describe_cpu
from .metadata import finite_json
from .preprocess import DEFAULT_MAX_PIXELS, scan_images
from .runtime import ACCELERATORS, APIS, RUNTIMES, ModelError, RuntimeUnavailable

PROG = "resnet-edge"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's default prints the usage too)
        print(f"{PROG}: error: {message} (see {PROG} --help)", file=sys.stderr)
        sys.exit(2)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MB, got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number of MB, got {text!r}")
    return value


def _dumps(obj: Any) -> str:
    """JSON that other programs can read: NaN and Infinity (e.g. from a broken model's scores) become null."""
    return json.dumps(finite_json(obj), allow_nan=False)


def _non_negative(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text)


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run keras_resnet .tflite image classifiers without TensorFlow.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def model_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("model", help="the .tflite model")
        s.add_argument("--threads", type=_positive, default=None, help="interpreter threads (default: all cores)")
        s.add_argument("--runtime", choices=["auto", *RUNTIMES], default="auto",
                       help="TFLite runtime (auto: ai-edge-litert, then tflite-runtime, then tensorflow)")
        s.add_argument("--delegate", metavar="PATH.so", help="external delegate library (e.g. libedgetpu.so.1)")
        s.add_argument("--delegate-option", metavar="K=V", type=_option, action="append", default=[],
                       help="option for --delegate (repeatable)")
        s.add_argument("--accelerator", choices=ACCELERATORS,
                       help="gpu or npu (the CPU taking the rest) or cpu, through LiteRT's CompiledModel API")
        s.add_argument("--api", choices=APIS, default="auto",
                       help="auto: LiteRT's CompiledModel where ai-edge-litert has it, else the Interpreter; "
                            "compiled or interpreter to choose (delegates always use the Interpreter)")
        s.add_argument("--require-accelerator", action="store_true",
                       help="fail instead of falling back to the CPU when the delegate/accelerator cannot be used")
        s.add_argument("--no-guard", action="store_true",
                       help="skip the child-process load check (faster start; a crashing model then crashes us)")
        s.add_argument("--max-memory", metavar="MB", type=_megabytes, default=None,
                       help="the most the model's tensors may need at batch 1 (default: 8 x the file size, at "
                            "least 256 MB); the guard process gets this plus 4 x the file size and 128 MB")
        s.add_argument("--json", action="store_true", help="JSON output (the last line is the summary object)")

    c = sub.add_parser("classify", help="top-k classes for image files and folders")
    model_args(c)
    c.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    c.add_argument("--top-k", type=_positive, default=5)
    c.add_argument("--csv", action="store_true", help="CSV output: path,rank,class,label,score")
    c.add_argument("--batch-size", type=_positive, default=8, help="images per invoke (dynamic-batch models)")
    c.add_argument("--workers", type=_positive, default=None, help="image decoding threads (default: ≤ 4)")
    c.add_argument("--max-pixels", type=_positive, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse larger images without decoding them (default {DEFAULT_MAX_PIXELS})")

    b = sub.add_parser("benchmark", help="invoke latency and throughput")
    model_args(b)
    b.add_argument("--runs", type=_positive, default=50)
    b.add_argument("--warmup", type=_non_negative, default=5)
    b.add_argument("--batch", type=_positive, default=None, help="batch size (dynamic-batch models)")

    i = sub.add_parser("info", help="the model's input, output, metadata and the runtime that would run it")
    model_args(i)

    k = sub.add_parser("check", help="which ops a target (cpu, gpu, edgetpu) will refuse or run elsewhere",
                       description="Check a .tflite file against a target's deployment contract, from the file alone "
                                   "(no runtime): per op, what will fail or fall back. Exit 1 when the target "
                                   "refuses the model (with --strict: also when an op falls back).")
    add_check_arguments(k)
    return p


def add_check_arguments(k: argparse.ArgumentParser) -> None:
    """The options of ``check`` (shared with ``keras-resnet check``)."""
    from .choices import TARGETS

    k.add_argument("model", help="the .tflite model")
    k.add_argument("--target", choices=TARGETS, default="cpu",
                   help="cpu (XNNPACK), gpu (the GPU delegate), edgetpu (edgetpu_compiler 16.0) or an Arm Ethos-U "
                        "NPU, ethos-u55-32 ... ethos-u85-2048 (Vela 5.2's table; Vela itself when installed)")
    k.add_argument("--compiler", metavar="PATH", default=None,
                   help="edgetpu_compiler to run for --target edgetpu, vela for --target ethos-u* (default: the one "
                        "installed, if any)")
    k.add_argument("--no-compiler", action="store_true", help="never run edgetpu_compiler or Vela")
    k.add_argument("--strict", action="store_true", help="fail (exit 1) on fallbacks too")
    k.add_argument("--json", action="store_true", help="one JSON object instead of the table")


def run_check(args: argparse.Namespace, out=None) -> tuple[int, Any]:
    """Run ``check`` for parsed arguments and print the report; (exit code, report). ValueError for bad files."""
    from .check import check

    report = check(args.model, args.target, compiler=False if args.no_compiler else args.compiler)
    out = out or sys.stdout
    if args.json:
        print(_dumps(report.as_dict()), file=out, flush=True)
    else:
        print("\n".join(report.lines()), file=out, flush=True)
    failed = not report.ok or (args.strict and report.count("fallback"))
    return (1 if failed else 0), report


def _classifier(args: argparse.Namespace, **extra: Any):
    from .classifier import Classifier

    return Classifier(args.model, threads=args.threads, runtime=args.runtime, delegate=args.delegate,
                      delegate_options=dict(args.delegate_option) or None, accelerator=args.accelerator,
                      require_accelerator=args.require_accelerator, safe=not args.no_guard,
                      max_memory_mb=args.max_memory, api=args.api, **extra)


def _where(info: dict) -> str:
    full = info.get("fully_accelerated")
    return (f"{info['runtime']} {info['runtime_version']}, path {info.get('path')}"
            f"{'' if full is None else ' (fully accelerated)' if full else ' (partly accelerated)'}, "
            f"delegate {info['delegate']}, {info['threads']} threads")


def _fitting(spec) -> str:
    """How images are fitted to the input, from the metadata: ``center_crop 0.95 bicubic to 224x224``."""
    crop = f" {spec.crop_fraction:g}" if spec.resize == "center_crop" else ""
    return f"{spec.resize}{crop} {spec.interpolation} to {spec.height}x{spec.width}"


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def classify(args: argparse.Namespace) -> int:
    if args.json and args.csv:
        raise SystemExit(_usage("--json and --csv exclude each other"))
    clf = _classifier(args, max_pixels=args.max_pixels, batch_size=args.batch_size, workers=args.workers)
    scan = scan_images(args.paths)
    files, missing = scan.files, scan.missing
    for path, reason in missing:
        _error(f"{path}: {reason}")
    for path, reason in scan.skipped:  # FIFOs, devices, sockets, broken links found in folders: never opened
        print(f"{PROG}: warning: {path}: {reason}", file=sys.stderr, flush=True)
    failed, done = len(missing), 0
    writer = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
    if writer:
        writer.writerow(["path", "rank", "class", "label", "score"])
    elif not args.json:
        print(f"# {args.model}: {_where(clf.info)}; images: {_fitting(clf.spec)}")
    start = time.perf_counter()
    for result in clf.classify(files, args.top_k):
        if result.error is not None:
            failed += 1
            _error(f"{result.source}: {result.error}")
            continue
        done += 1
        if args.json:
            print(_dumps(result.as_dict()))
        elif writer:
            for rank, (cls, label, score) in enumerate(result.top, 1):
                writer.writerow([result.source, rank, cls, label, f"{score:.6g}"])
        else:
            print(f"{result.source}: " + ", ".join(f"{label} ({score:.3f})" for _, label, score in result.top))
    seconds = time.perf_counter() - start
    summary = {"summary": True, "images": done, "failed": failed, "skipped": len(scan.skipped),
               "seconds": round(seconds, 4),
               "images_per_s": round(done / seconds, 2) if seconds > 0 else None, **clf.info}
    if args.json:
        print(_dumps(summary))
    else:
        skipped = f", {len(scan.skipped)} skipped" if scan.skipped else ""
        print(f"{PROG}: {done} classified, {failed} failed{skipped} in {seconds:.2f} s ({summary['images_per_s']} images/s)"
              f" on {_where(clf.info)}", file=sys.stderr)
    if not files and not missing:
        _error("no image files found" + (f" ({len(scan.skipped)} skipped)" if scan.skipped else ""))
        return 1
    return 1 if failed else 0


def benchmark(args: argparse.Namespace) -> int:
    clf = _classifier(args)
    report = clf.benchmark(runs=args.runs, warmup=args.warmup, batch=args.batch)
    report["cpu"] = cpu_info()  # the int8 speed-up depends on these (VNNI, AMX, dot-product)
    if args.json:
        print(_dumps(report))
    else:
        print(f"{args.model}: {_where(report)}, batch {report['batch']}")
        print(f"latency (ms): min {report['min_ms']:.3f}  median {report['median_ms']:.3f}  "
              f"p90 {report['p90_ms']:.3f}  p99 {report['p99_ms']:.3f}  ({report['runs']} runs, {report['warmup']} warm-up)")
        print(f"throughput: {report['images_per_s'] or float('nan'):.1f} images/s")
        print(f"cpu: {describe_cpu(report['cpu'])}")
    return 0


def info(args: argparse.Namespace) -> int:
    clf = _classifier(args)
    report = {**clf.info,
              "output": list(clf.engine.output.shape), "labels": clf.labels, "metadata": clf.metadata}
    report["spec"] = {k: getattr(clf.spec, k) for k in clf.spec.__dataclass_fields__}
    if args.json:
        print(_dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


def check_command(args: argparse.Namespace) -> int:
    try:
        code, report = run_check(args)
    except ValueError as error:  # unreadable or malformed file
        message = str(error)
        _error(message if message.startswith(args.model) else f"{args.model}: {message}")
        return 1
    if code:
        _error(f"{args.model}: {'fails' if not report.ok else 'falls back on'} the {args.target} contract "
               f"({report.count('error')} errors, {report.count('fallback')} fallbacks)")
    return code


def _usage(message: str) -> int:
    print(f"{PROG}: error: {message} (see {PROG} --help)", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Images above --max-pixels are refused before decoding; Pillow's warning for them adds only noise.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        return {"classify": classify, "benchmark": benchmark, "info": info,
                "check": check_command}[args.command](args)
    except (ModelError, RuntimeUnavailable) as error:
        _error(str(error))
        return 1
    except ValueError as error:  # bad option values that only the model can judge (e.g. --batch on a fixed model)
        _error(str(error))
        return 2
    except MemoryError:
        _error("out of memory (a smaller --batch-size or --max-memory may help)")
        return 1
    except BrokenPipeError:  # e.g. `resnet-edge classify ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except OSError as error:  # e.g. the model became unreadable after the check
        _error(f"{getattr(error, 'filename', None) or 'I/O'}: {error.strerror or error}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
