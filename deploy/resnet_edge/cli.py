"""``resnet-edge classify`` and ``resnet-edge benchmark``: the device-side command line.

Exit codes: 0 success, 1 some files could not be classified (each named on stderr), 2 usage or model
errors (one line, no traceback).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys

from . import __version__
from .preprocess import DEFAULT_MAX_PIXELS
from .runtime import ACCELERATORS, RUNTIMES, ModelError, RuntimeUnavailable


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("model", help="a .tflite model (keras-resnet convert embeds labels and preprocessing)")
    common.add_argument("--threads", type=_positive, help="interpreter threads (default: all cores)")
    common.add_argument("--runtime", default="auto", choices=["auto", *RUNTIMES],
                        help="auto: ai-edge-litert, else tflite-runtime, else tensorflow.lite")
    common.add_argument("--delegate", metavar="PATH.so", help="external delegate, e.g. libedgetpu.so.1")
    common.add_argument("--delegate-option", metavar="KEY=VALUE", type=_option, action="append", default=[],
                        help="delegate option (repeatable), e.g. device=usb")
    common.add_argument("--accelerator", choices=ACCELERATORS, help="LiteRT CompiledModel accelerator")
    common.add_argument("--require-accelerator", action="store_true",
                        help="fail instead of falling back to the CPU when the delegate/accelerator is unusable")
    p = argparse.ArgumentParser(prog="resnet-edge", description="Run keras_resnet TFLite classifiers on a device.")
    p.add_argument("--version", action="version", version=f"resnet-edge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("classify", parents=[common], help="classify image files and folders")
    c.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders (searched recursively)")
    c.add_argument("--top-k", type=_positive, default=5)
    c.add_argument("--max-pixels", type=_positive, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse larger images unread (default: {DEFAULT_MAX_PIXELS:,})")
    out = c.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object (results, errors, runtime) at the end")
    out.add_argument("--csv", action="store_true", help="CSV rows: path,rank,label,score")
    b = sub.add_parser("benchmark", parents=[common], help="latency of the model on this device")
    b.add_argument("--runs", type=_positive, default=50)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def _classify(clf, args) -> int:
    results, failed = [], 0
    writer = csv.writer(sys.stdout) if args.csv else None
    if writer:
        writer.writerow(["path", "rank", "label", "score"])
    for result in clf.classify(args.paths, top_k=args.top_k):
        if result.error:
            failed += 1
            print(f"resnet-edge: error: {result.path}: {result.error}", file=sys.stderr, flush=True)
        elif writer:
            writer.writerows([result.path, rank, label, f"{score:.6f}"]
                             for rank, (label, score) in enumerate(result.top, 1))
        elif not args.json:
            print(f"{result.path}: " + ", ".join(f"{label} ({score:.3f})" for label, score in result.top), flush=True)
        results.append(result)
    if args.json:
        print(json.dumps({**clf.info, "results": [{"path": r.path, "top": [{"label": lb, "score": s} for lb, s in r.top]}
                                                  for r in results if not r.error],
                          "errors": [{"path": r.path, "error": r.error} for r in results if r.error]}))
    elif not writer:
        info = clf.info
        print(f"{len(results) - failed} classified, {failed} failed; {info['runtime']} {info['runtime_version']}, "
              f"{info['delegate']} on {info['accelerator']}, {info['threads']} threads", file=sys.stderr)
    return 1 if failed else 0


def _benchmark(clf, args) -> int:
    r = clf.benchmark(runs=args.runs, warmup=args.warmup)
    print(f"{r['model']}: {r['runtime']} {r['runtime_version']}, {r['delegate']} on {r['accelerator']}, "
          f"{r['threads']} threads, batch {r['batch']}, {r['runs']} runs")
    print(f"latency ms: min {r['min_ms']:.3f}  median {r['median_ms']:.3f}  p90 {r['p90_ms']:.3f}  "
          f"p99 {r['p99_ms']:.3f};  {r['images_per_s']:.1f} images/s")
    if args.json:
        print(json.dumps(r))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .classifier import Classifier

    try:
        clf = Classifier(args.model, runtime=args.runtime, threads=args.threads, delegate=args.delegate,
                         delegate_options=dict(args.delegate_option), accelerator=args.accelerator,
                         require_accelerator=args.require_accelerator,
                         **({"max_pixels": args.max_pixels} if args.command == "classify" else {}))
        return _classify(clf, args) if args.command == "classify" else _benchmark(clf, args)
    except (ModelError, RuntimeUnavailable, ValueError, OSError) as error:
        print(f"resnet-edge {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
