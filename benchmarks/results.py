"""Fashion-MNIST results: accuracy, quantization, degradation and throughput, measured through the CLI only.

Every number comes from a `keras-resnet` command run as a subprocess (train / qat / convert / evaluate with
--json), and every .tflite file runs in resnet_edge, the device runner (no runner of its own here); the machine is
described by resnet_edge's cpu_info. Run folders live outside the repository (default ~/fmnist-runs) and
survive; training is resumable: the same command resumes after the last completed epoch, and a finished run
(summary.json with all epochs) is not run again. After every stage the report docs/results.md is rewritten from
RUNS/results.json (what every stage measured so far).

Stages (one at a time; each can be rerun):
  a   ResNet-20, float, full 55,000-image training split (goal: >= 93.5% test accuracy)
  b   a deeper ResNet (--b-model resnet56 or resnet32), same recipe
  c   quantization of stage a's model: float32 / float16 / PTQ int8 TFLite, tfmot QAT int8; accuracy on the
      10,000 test images with 95% Wilson intervals, top-1 agreement with float, size, latency
  q   QAT engines (issue 12): native Keras 3 QAT against tfmot QAT and PTQ, int8 TFLite on the 10,000 test images,
      for ResNet-20 (stage a's model), ResNet-20V2 and ResNet-56 (float models trained on the accelerator by
      benchmarks/fmnist_gpu.py --save, in --engines-dir). The native QAT fine-tuning ran there too (JAX backend,
      `fmnist_gpu.py --run NAME:qat:MODEL:SEED`, the steps and defaults of `keras-resnet qat --engine keras`);
      tfmot QAT, every conversion and every evaluation run here through the CLI (TensorFlow backend).
  d   degradation: plain / residual / highway at depth 20 and 56 on a documented training subset, >= 2,000
      SGD steps each (the CPU fallback: the committed figure comes from the accelerator runs, see below)
  e   throughput: `keras-resnet train`'s input pipeline against plain keras.applications-style training of the
      same model in the same process (model.fit on pre-augmented in-memory arrays), ResNet-20 and ResNet-56
  figure  the degradation figure docs/degradation_fmnist.png (He et al. Fig. 6 style) from the accelerator runs
  report  rewrite docs/results.md only

Accelerator runs: the deeper ResNet at full size and the degradation experiment on all 55,000 training images were
run by benchmarks/fmnist_gpu.py (JAX backend, one GPU; its output is committed as
benchmarks/fmnist_gpu_results.json); the report and the figure read them from there (--accelerator-results), and
say that they come from that side script (its own augmentation and fit loop, not `keras-resnet train`). So does the
horizontal-flip comparison (--flip-results): `keras-resnet train` has no switch to turn flips off.

The stages live in fmnist_training.py (a, b, d, figure), fmnist_quantization.py (c), fmnist_engines.py (q) and
fmnist_throughput.py (e); fmnist_runner.py runs the CLI and resnet_edge, fmnist_report.py writes docs/results.md.

Usage (CPU shared with other work: be nice):
  nice -n 19 python benchmarks/results.py --stage a [--runs ~/fmnist-runs] [--data-dir DIR]
  python benchmarks/results.py --stage c --dry-run      # print the commands only
  python benchmarks/results.py --cli "python -m keras_resnet.cli" --stage a   # a different keras-resnet
"""

from __future__ import annotations

import argparse
import os
import sys

from fmnist_engines import ENGINES_DIR, stage_q
from fmnist_quantization import stage_c
from fmnist_report import report
from fmnist_runner import ACCELERATOR_RESULTS, DEBIAN_DIR, REPO, Runner, now
from fmnist_throughput import stage_e
from fmnist_training import stage_a, stage_b, stage_d, stage_figure

STAGES = ("a", "b", "c", "q", "d", "e", "figure", "report")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=STAGES, action="append", required=True, help="repeatable")
    p.add_argument("--runs", default=os.path.expanduser("~/fmnist-runs"), help="run folders (outside the repo; default %(default)s)")
    p.add_argument("--data-dir", default=DEBIAN_DIR if os.path.isdir(DEBIAN_DIR) else None,
                   help="Fashion-MNIST IDX files (default: %(default)s)")
    p.add_argument("--cli", help="the keras-resnet command (default: next to this python, else -m keras_resnet.cli)")
    p.add_argument("--output", default=os.path.join(REPO, "docs", "results.md"))
    p.add_argument("--a-epochs", type=int, default=20)
    p.add_argument("--b-model", default="resnet56")
    p.add_argument("--b-epochs", type=int, default=20)
    p.add_argument("--qat-epochs", type=int, default=2)
    p.add_argument("--engines-dir", help="stage q: fmnist_gpu.py's --out with NAME.keras / qat-NAME-sK.keras "
                                         f"(default RUNS/{ENGINES_DIR})")
    p.add_argument("--d-limit", type=int, default=10000, help="training subset of stage d (default %(default)s)")
    p.add_argument("--d-batch", type=int, default=128)
    p.add_argument("--d-steps", type=int, default=2000, help="at least this many SGD steps per run")
    p.add_argument("--e-images", type=int, default=5000, help="training images per throughput epoch")
    p.add_argument("--e-rounds", type=int, default=5, help="alternating timed epochs per contender")
    p.add_argument("--e-models", default="resnet20,resnet56", help="comma-separated (default %(default)s)")
    p.add_argument("--e-backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"),
                   choices=("tensorflow", "jax", "torch"), help="Keras backend of the throughput runs")
    p.add_argument("--accelerator-results", default=ACCELERATOR_RESULTS,
                   help="fmnist_gpu.py's all.json (default: the committed %(default)s)")
    p.add_argument("--flip-results", default=os.path.join(REPO, "benchmarks", "fmnist_gpu_flip.json"),
                   help="fmnist_gpu.py's flip comparison (default: the committed %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    runner = Runner(args)
    stages = {"a": stage_a, "b": stage_b, "c": stage_c, "q": stage_q, "d": stage_d, "e": stage_e,
              "figure": stage_figure}
    for stage in args.stage:
        if stage in stages:
            print(f"[{now()}] stage {stage}", flush=True)
            stages[stage](runner)
    if not args.dry_run:
        report(runner, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
