"""Why the JAX backend trains slower than TensorFlow on a CPU (issue 23): ResNet-20's convolutions, one kernel at a
time, on each framework's CPU kernels.

Every 3x3 convolution of a CIFAR ResNet-20 (32x32x3 input, widths 16/32/64, batch ``--batch``) is timed forward and
forward + backward (the gradients of the input and of the kernel, as a training step needs), each in a compiled
function, median of ``--repeats`` calls after a warm-up, in a process of its own per contender:

- ``jax``: ``lax.conv_general_dilated`` under ``jax.jit``, i.e. XLA:CPU's convolution (what the Keras JAX backend and
  TensorFlow's ``jit_compile=True`` run);
- ``tensorflow-onednn``: ``tf.nn.conv2d`` in a ``tf.function`` with oneDNN (what ``keras-resnet train`` runs on
  TensorFlow: see ``core/console.prefer_onednn``);
- ``tensorflow-eigen``: the same with ``TF_ENABLE_ONEDNN_OPTS=0`` (TensorFlow's Eigen kernels).

PyTorch is left out: timed alone, its kernels varied 2x between runs (a 32x32 16->16 forward 5 or 13 ms), while its
training loop is steady; ``benchmarks/peers.py`` compares whole training steps.

The sum over the 19 convolutions of one forward + backward is a floor under a training step's time, whatever the
framework does around them. XLA:CPU's experimental library flags (``--xla_cpu_use_onednn``, ``--xla_cpu_use_xnnpack``,
``--xla_cpu_experimental_{onednn,xnn,ynn}_fusion_type=individual_convolution``, in ``XLA_FLAGS``) left these
convolutions as XLA's own (the optimized HLO keeps plain ``convolution`` ops) and moved JAX's ResNet-20 ``fit`` by
at most 15%. Run: ``.venv/bin/python benchmarks/conv_kernels.py [--json F] [--md F]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# (input size, in channels, out channels, stride, how many in ResNet-20)
CONVS = [(32, 3, 16, 1, 1), (32, 16, 16, 1, 6), (32, 16, 32, 2, 1), (16, 32, 32, 1, 5), (16, 32, 64, 2, 1),
         (8, 64, 64, 1, 5)]
CONTENDERS = ("jax", "tensorflow-onednn", "tensorflow-eigen")


def _time(call, inputs: tuple, repeats: int) -> float:
    """Median ms of ``call(*inputs)`` (which waits for its result), after one warm-up call that compiles."""
    call(*inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(*inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def worker_jax(args) -> tuple[list, str]:
    import jax
    from jax import lax

    rows = []
    for size, cin, cout, stride, _ in CONVS:
        keys = jax.random.split(jax.random.PRNGKey(0), 3)
        x = jax.random.normal(keys[0], (args.batch, size, size, cin))
        w = jax.random.normal(keys[1], (3, 3, cin, cout))

        def conv(x, w, stride=stride):
            return lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

        upstream = jax.random.normal(keys[2], conv(x, w).shape)
        forward = jax.jit(conv)
        both = jax.jit(jax.grad(lambda x, w, conv=conv, u=upstream: (conv(x, w) * u).sum(), argnums=(0, 1)))
        rows.append(tuple(_time(lambda f, *a: jax.block_until_ready(f(*a)), (f, x, w), args.repeats)
                          for f in (forward, both)))
    return rows, jax.__version__


def worker_tensorflow(args) -> tuple[list, str]:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    rows = []
    for size, cin, cout, stride, _ in CONVS:
        x = tf.random.normal((args.batch, size, size, cin), seed=0)
        w = tf.random.normal((3, 3, cin, cout), seed=1)
        upstream = tf.random.normal(tf.nn.conv2d(x, w, stride, "SAME").shape, seed=2)

        @tf.function
        def forward(x, w, stride=stride):
            return tf.nn.conv2d(x, w, stride, "SAME")

        @tf.function
        def both(x, w, stride=stride, u=upstream):
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                loss = tf.reduce_sum(tf.nn.conv2d(x, w, stride, "SAME") * u)
            return tape.gradient(loss, [x, w])

        rows.append(tuple(_time(lambda f, *a: [t.numpy() for t in tf.nest.flatten(f(*a))], (f, x, w), args.repeats)
                          for f in (forward, both)))
    return rows, tf.__version__


def run_worker(args, contender: str) -> dict | None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore",
               TF_ENABLE_ONEDNN_OPTS="0" if contender == "tensorflow-eigen" else "1")
    command = [sys.executable, os.path.abspath(__file__), "--worker", contender, "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--threads", str(args.threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        if "No module named" in done.stderr:
            return None  # jax is not installed in this environment
        raise RuntimeError(f"{contender} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(report: dict) -> str:
    names = list(report["results"])
    lines = ["# ResNet-20's convolutions, kernel by kernel (`benchmarks/conv_kernels.py`)", "",
             f"- CPU: {report['machine']['cpu']} (family/model {report['machine']['cpu_family_model']}), "
             f"{report['machine']['cores']} cores; features: "
             f"{', '.join(report['machine']['features'])}",
             f"- versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}",
             f"- command: `{report['command']}`; batch {report['batch']}, {report['threads']} threads, median of "
             f"{report['repeats']} calls; ms per call, forward / forward + backward (input and kernel gradients)", "",
             "| conv (input, channels, stride) × count | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    for i, (size, cin, cout, stride, count) in enumerate(CONVS):
        cells = [f"{report['results'][n]['rows'][i][0]:.1f} / {report['results'][n]['rows'][i][1]:.1f}"
                 for n in names]
        lines.append(f"| {size}×{size}, {cin}→{cout}, s{stride} × {count} | " + " | ".join(cells) + " |")
    totals = [f"**{report['results'][n]['step_ms'][0]:.0f} / {report['results'][n]['step_ms'][1]:.0f}**" for n in names]
    lines += ["| ResNet-20, all 19 | " + " | ".join(totals) + " |", ""]
    base = report["results"].get("tensorflow-onednn")
    if base:
        lines.append("forward + backward of all 19, relative to TensorFlow with oneDNN: " + ", ".join(
            f"{n} {report['results'][n]['step_ms'][1] / base['step_ms'][1]:.2f}×" for n in names))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=CONTENDERS)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument("--md")
    args = parser.parse_args(argv)
    if args.worker:
        worker = worker_jax if args.worker == "jax" else worker_tensorflow
        rows, version = worker(args)
        print(json.dumps({"rows": rows, "version": version}))
        return 0
    sys.path.insert(0, HERE)
    from peers import machine  # the same CPU report as the peer benchmark

    command = f"python benchmarks/conv_kernels.py --batch {args.batch} --repeats {args.repeats} --threads {args.threads}"
    report = {"machine": machine(), "command": command,
        "batch": args.batch, "threads": args.threads, "repeats": args.repeats, "results": {}, "versions": {}}
    for contender in CONTENDERS:
        result = run_worker(args, contender)
        if result is None:
            print(f"{contender}: not installed, left out")
            continue
        step = [sum(row[k] * conv[4] for row, conv in zip(result["rows"], CONVS)) for k in (0, 1)]
        report["results"][contender] = {"rows": result["rows"], "step_ms": step}
        report["versions"][contender.split("-")[0]] = result["version"]
        print(f"{contender}: ResNet-20's 19 convolutions {step[0]:.0f} ms forward, {step[1]:.0f} ms forward + backward")
    text = markdown(report)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
