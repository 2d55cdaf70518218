"""Speed against the peers a user would pick instead (issue 23): ResNet-20 training through ``keras-resnet train`` vs a
plain PyTorch loop, the Keras backends against each other, a QAT step against a float step, and ``keras-resnet
convert`` against Keras' own ``model.export(format="litert")``.

One run, one machine, every contender a process of its own, the contenders alternating (round-robin over
``--repeats``, the order rotated each repeat, so load drift hits each alike); a contender's figure is the median over
repeats. Every training figure is images/s of steady-state epochs (the first, which compiles, is left out), batch
``--batch``, on the first ``--limit`` training images of ``--dataset`` as the product's loader gives them:

- ``keras-resnet train`` on each Keras backend (``KERAS_BACKEND`` tensorflow, jax, torch), its own tf.data pipeline
  and pad/crop/flip augmentation, images/s from its history.csv (training time of each epoch, validation excluded);
  on TensorFlow with ``--jit auto`` (what a user gets) and with the other XLA setting;
- a plain PyTorch loop of the same ResNet-20 (option-A shortcuts, widths 16/32/64, BN, ReLU): in-memory tensors, a
  pad-4 random crop and a flip (where the dataset flips) per batch, SGD momentum 0.9, weight decay 1e-4,
  ``torch.set_num_threads(--threads)``, OpenMP's wait policy passive (see :func:`_env`; ``--spin`` adds a run
  with the default, spinning one);
- QAT vs float (``--worker qat``): the product's native QAT model (:func:`keras_resnet.quant.native_qat.quantize_model`
  of the trained ResNet-20, what ``keras-resnet qat`` fine-tunes) against the float model, both compiled as
  ``keras-resnet qat`` compiles (SGD momentum, the product's ``--jit auto`` choice) and fitted on the same in-memory
  arrays through ``keras_resnet.data.pipeline.fit_pipelines`` (what ``native_qat.fine_tune`` feeds), epochs
  alternating in one process, on TensorFlow and JAX;
- ``keras-resnet convert MODEL.keras --quantize float32`` as a whole process vs a process that loads the same file and
  calls ``model.export(path, format="litert")``.

torch is a benchmark-only dependency (not in CI, not in the project's .venv): run it from ``make peers`` (which
builds .venv-peers: the package with its [all,jax] extras and the torch CPU wheel). The load average before and after
is printed: on a shared machine only the ratios of one run mean anything.

Usage: .venv-peers/bin/python benchmarks/peers.py [--repeats 2] [--epochs 3] [--dataset digits] [--limit N]
[--skip NAME] [--json F] [--md F]
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


# ---------------------------------------------------------------------------------------------------------------- #
# workers: each runs in a process of its own and prints one JSON object as its last line

def _load_data(dataset: str, limit: int):
    from keras_resnet.data import datasets as data

    info = data.info(dataset)
    x, y = data.load(dataset, "train")
    return (info, x[:limit], y[:limit]) if limit else (info, x, y)


def worker_torch_loop(args) -> dict:
    """The plain PyTorch loop: same ResNet-20, in-memory tensors, per-batch pad-4 crop + flip, SGD momentum."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info, x, y = _load_data(args.dataset, args.limit)
    mean = np.asarray(info.mean, "float32").reshape(1, -1, 1, 1)
    std = np.sqrt(np.asarray(info.variance, "float32")).reshape(1, -1, 1, 1)
    images = torch.from_numpy((np.asarray(x, "float32").transpose(0, 3, 1, 2) - mean) / std).contiguous()
    labels = torch.from_numpy(np.asarray(y, "int64"))

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.stride, self.pad = stride, cout - cin

        def forward(self, t):
            out = F.relu(self.bn1(self.conv1(t)))
            out = self.bn2(self.conv2(out))
            shortcut = t[:, :, ::self.stride, ::self.stride] if self.stride > 1 else t
            if self.pad:  # option A: subsample, append zero channels (as keras_resnet's ChannelPadding)
                shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad))
            return F.relu(out + shortcut)

    class ResNet20(nn.Module):
        def __init__(self, channels: int, classes: int, n: int = 3):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            layers, cin = [], 16
            for stage, width in enumerate((16, 32, 64)):
                for i in range(n):
                    layers.append(Block(cin, width, 2 if stage and i == 0 else 1))
                    cin = width
            self.blocks = nn.Sequential(*layers)
            self.fc = nn.Linear(64, classes)

        def forward(self, t):
            return self.fc(self.blocks(self.stem(t)).mean((2, 3)))

    model = ResNet20(images.shape[1], info.num_classes)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1 * args.batch / 128, momentum=0.9, weight_decay=1e-4)
    n, batch = len(images), args.batch
    offsets = torch.arange(images.shape[2])

    def augment(xb):
        size = xb.shape[0]
        padded = F.pad(xb, (4, 4, 4, 4))
        rows = (torch.randint(0, 9, (size, 1)) + offsets)[:, None, :, None]
        cols = (torch.randint(0, 9, (size, 1)) + offsets)[:, None, None, :]
        out = padded[torch.arange(size)[:, None, None, None], torch.arange(xb.shape[1])[None, :, None, None],
                     rows, cols]
        if info.flip:
            out = torch.where(torch.rand(size)[:, None, None, None] < 0.5, out.flip(3), out)
        return out

    rates, accuracy = [], 0.0
    model.train()
    for _ in range(args.epochs):
        start, correct = time.perf_counter(), 0
        order = torch.randperm(n)
        for i in range(0, n, batch):
            index = order[i:i + batch]
            xb, yb = augment(images[index]), labels[index]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == yb).sum())
        rates.append(n / (time.perf_counter() - start))
        accuracy = correct / n
    return {"images_per_s": statistics.median(rates[1:] or rates), "epoch_rates": rates, "parameters": params,
            "train_accuracy_last_epoch": accuracy, "threads": torch.get_num_threads(), "torch": torch.__version__}


class _EpochTimer:
    def __init__(self):
        import keras

        outer = self
        self.seconds: list[float] = []

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                outer.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                outer.seconds.append(time.perf_counter() - outer.t0)

        self.callback = Timer()


def worker_qat(args) -> dict:
    """Float vs native-QAT steps of the same trained model, in one process, epochs alternating."""
    import keras
    import numpy as np

    from keras_resnet.data import pipeline
    from keras_resnet.io.model_io import load_model
    from keras_resnet.quant import native_qat
    from keras_resnet.train import jit as jit_lib

    _, x, y = _load_data(args.dataset, args.limit)
    x, y = np.asarray(x, "float32"), np.asarray(y)
    float_model = load_model(args.model)
    qat_model = native_qat.quantize_model(load_model(args.model))
    native_qat.calibrate(qat_model, x)
    models = {"float": float_model, "qat": qat_model}
    jits, timers = {}, {}
    for name, model in models.items():
        jit = jit_lib.choose("auto")
        # as native_qat.fine_tune compiles (both models end in a softmax)
        model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"],
                      jit_compile=jit.setting)
        jit.compiled(model)
        jits[name], timers[name] = jit, _EpochTimer()
    train, _ = pipeline.fit_pipelines(x, y, args.batch)  # the data path of native_qat.fine_tune
    for _ in range(args.epochs):  # the first epoch of each compiles
        for name, model in models.items():
            jit_lib.fit(model, jits[name], train, epochs=1, shuffle=False, verbose=0, callbacks=[timers[name].callback])
    rates = {name: [len(x) / s for s in timer.seconds] for name, timer in timers.items()}
    steady = {name: statistics.median(r[1:] or r) for name, r in rates.items()}
    return {"float_images_per_s": steady["float"], "qat_images_per_s": steady["qat"],
            "qat_step_cost": steady["float"] / steady["qat"], "epoch_rates": rates, "backend": keras.backend.backend(),
            "jit": {name: jit.record() for name, jit in jits.items()}}


def worker_export(args) -> dict:
    """What a Keras user does without the product: load the .keras and call Keras' own LiteRT export."""
    start = time.perf_counter()
    import keras

    import keras_resnet.model.blocks  # noqa: F401  registers ChannelPadding, the model's one custom layer

    model = keras.saving.load_model(args.model, compile=False)
    model.export(args.output, format="litert")
    return {"seconds_in_process": time.perf_counter() - start, "bytes": os.path.getsize(args.output),
            "keras": keras.__version__}


WORKERS = {"torch-loop": worker_torch_loop, "qat": worker_qat, "export": worker_export}


# ---------------------------------------------------------------------------------------------------------------- #
# the driver

def _cli() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "keras-resnet")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "keras_resnet.cli.main"]


def _env(args, backend: str | None = None, spin: bool = False) -> dict:
    # OMP_WAIT_POLICY=PASSIVE: torch's OpenMP threads sleep rather than spin while they wait. On a quiet machine it
    # changes little; on a loaded one the spinning threads of a 2-thread pool fight the other jobs for the 2 cores:
    # a 16-channel 3x3 conv's forward + backward took 992 ms spinning, 106 ms passive, under load 9 (TensorFlow and
    # XLA use their own thread pools, not OpenMP). --spin adds "pytorch loop, OpenMP default" to show what it costs.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(args.threads),
               TF_NUM_INTRAOP_THREADS=str(args.threads), PYTHONWARNINGS="ignore", OMP_WAIT_POLICY="PASSIVE")
    if spin:
        del env["OMP_WAIT_POLICY"]
    if backend:
        env["KERAS_BACKEND"] = backend
    return env


def _run(command: list[str], env: dict, timeout: float) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
    return seconds, done.stdout


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _worker(args, name: str, backend: str | None, *extra: str, spin: bool = False) -> tuple[float, dict]:
    command = [sys.executable, os.path.abspath(__file__), "--worker", name, "--dataset", args.dataset,
               *(["--limit", str(args.limit)] if args.limit else []), "--epochs", str(args.epochs), "--batch", str(args.batch), "--threads",
               str(args.threads), *extra]
    seconds, out = _run(command, _env(args, backend, spin), args.timeout)
    return seconds, _last_json(out)


def train_product(args, work: str, backend: str, jit: str) -> dict:
    output = tempfile.mkdtemp(prefix=f"train-{backend}-{jit}-", dir=work)
    command = [*_cli(), "train", "--model", "resnet20", "--dataset", args.dataset,
               *(["--limit", str(args.limit)] if args.limit else []), "--epochs", str(args.epochs), "--batch-size", str(args.batch), "--jit", jit, "--output", output,
               "--verbose", "0", "--json"]
    seconds, out = _run(command, _env(args, backend), args.timeout)
    summary = _last_json(out)
    with open(os.path.join(output, "history.csv")) as f:
        rates = [float(row["train_images_per_s"]) for row in csv.DictReader(f)]
    model = os.path.join(work, "model.keras")
    if backend == "tensorflow" and not os.path.exists(model):  # the trained model QAT and conversion use
        shutil.copy(os.path.join(output, "best.keras"), model)
    shutil.rmtree(output, ignore_errors=True)
    return {"images_per_s": statistics.median(rates[1:] or rates), "epoch_rates": rates,
            "summary_images_per_s": summary.get("images_per_s"), "jit": summary.get("jit"),
            "parameters": summary.get("parameters"), "process_s": seconds,
            "test_accuracy": summary.get("test_accuracy")}


def convert_product(args, work: str) -> dict:
    output = os.path.join(work, "convert.tflite")
    command = [*_cli(), "convert", os.path.join(work, "model.keras"), "--quantize", "float32", "--output", output,
               "--force"]
    seconds, _ = _run(command, _env(args, "tensorflow"), args.timeout)
    return {"process_s": seconds, "bytes": os.path.getsize(output)}


def export_keras(args, work: str) -> dict:
    output = os.path.join(work, "export.tflite")
    seconds, result = _worker(args, "export", "tensorflow", "--model", os.path.join(work, "model.keras"),
                              "--output", output)
    return {"process_s": seconds, **result}


def contenders(args, work: str, auto_other: str) -> dict:
    """name -> (group, function). Groups run in order (training, then QAT, then conversion: the latter two need
    the model a TensorFlow run trained); within a group the order rotates each repeat."""
    table = {
        "product tensorflow --jit auto": ("train", lambda: train_product(args, work, "tensorflow", "auto")),
        f"product tensorflow --jit {auto_other}": ("train",
                                                   lambda: train_product(args, work, "tensorflow", auto_other)),
        "product jax": ("train", lambda: train_product(args, work, "jax", "auto")),
        "product torch": ("train", lambda: train_product(args, work, "torch", "auto")),
        "pytorch loop": ("train", lambda: _worker(args, "torch-loop", None)[1]),
        "pytorch loop, OpenMP default": ("train", lambda: _worker(args, "torch-loop", None, spin=True)[1]),
        "qat vs float tensorflow": ("qat", lambda: _worker(args, "qat", "tensorflow", "--model",
                                                           os.path.join(work, "model.keras"))[1]),
        "qat vs float jax": ("qat", lambda: _worker(args, "qat", "jax", "--model",
                                                    os.path.join(work, "model.keras"))[1]),
        "convert float32": ("convert", lambda: convert_product(args, work)),
        "keras export litert": ("convert", lambda: export_keras(args, work)),
    }
    if not args.spin:
        del table["pytorch loop, OpenMP default"]
    if args.skip:
        table = {k: v for k, v in table.items() if not any(s in k for s in args.skip)}
    return table


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        lscpu = ""
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    flags = set(fields.get("Flags", "").split())
    info["cpu"] = fields.get("Model name", platform.processor()).strip()
    info["cpu_family_model"] = f"{fields.get('CPU family', '?').strip()}/{fields.get('Model', '?').strip()}"
    info["features"] = [f for f in FEATURES if f in flags]
    versions = {}
    for package in ("keras", "tensorflow", "jax", "torch", "numpy", "ai-edge-litert"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    info["versions"] = versions
    return info


def _other_jit() -> str:
    """The XLA setting ``--jit auto`` does not pick for TensorFlow on this machine (run as the second TF contender)."""
    env = _env(argparse.Namespace(threads=2), "tensorflow")
    code = "from keras_resnet.train.jit import choose; print(choose('auto', backend='tensorflow').setting)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()
    return "off" if out.splitlines()[-1] == "True" else "on"


def _median(values):
    return statistics.median(values) if values else None


def summarize(results: dict[str, list[dict]], auto_other: str) -> dict:
    def rate(name, key="images_per_s"):
        return _median([r[key] for r in results.get(name, []) if r.get(key) is not None])

    product = rate("product tensorflow --jit auto")
    figures = {name: rate(name) for name in results if name.startswith(("product", "pytorch"))}
    ratios = {}
    loops = {k: v for k, v in figures.items() if k.startswith("pytorch") and v}
    torch_loop = max(loops.values()) if loops else None  # the faster of the two OpenMP settings: the stronger peer
    if len(loops) == 2:
        ratios["PyTorch loop, OpenMP passive / default (spinning)"] = loops["pytorch loop"] / loops[
            "pytorch loop, OpenMP default"]
    if product and torch_loop:
        ratios["product (TF, --jit auto) / PyTorch loop (the faster)"] = product / torch_loop
        for name, value in figures.items():
            if name.startswith("product") and name != "product tensorflow --jit auto" and value:
                ratios[f"{name} / PyTorch loop"] = value / torch_loop
    if product and figures.get("product jax"):
        ratios["JAX / TF (--jit auto)"] = figures["product jax"] / product
        best_tf = max(v for k, v in figures.items() if k.startswith("product tensorflow"))
        ratios["JAX / best TF"] = figures["product jax"] / best_tf
    if product and figures.get("product torch"):
        ratios["Keras torch backend / TF (--jit auto)"] = figures["product torch"] / product
    if product and figures.get(f"product tensorflow --jit {auto_other}"):
        ratios[f"TF --jit {auto_other} / --jit auto"] = figures[f"product tensorflow --jit {auto_other}"] / product
    for backend in ("tensorflow", "jax"):
        name = f"qat vs float {backend}"
        if results.get(name):
            figures[f"qat {backend} (in-memory fit)"] = rate(name, "qat_images_per_s")
            figures[f"float {backend} (in-memory fit)"] = rate(name, "float_images_per_s")
            ratios[f"QAT step / float step, {backend}"] = rate(name, "qat_step_cost")
    convert, export = rate("convert float32", "process_s"), rate("keras export litert", "process_s")
    if convert and export:
        figures["convert float32 process (s)"], figures["keras export process (s)"] = convert, export
        ratios["convert / Keras export (process time)"] = convert / export
    return {"figures": figures, "ratios": ratios}


def markdown(report: dict) -> str:
    m, s = report["machine"], report["summary"]
    lines = ["# Peer benchmark (`benchmarks/peers.py`)", "",
             f"- CPU: {m['cpu']}, {m['cores']} cores; features: {', '.join(m['features']) or 'none of ' + ', '.join(FEATURES)}",
             f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
             f"- command: `{report['command']}`",
             f"- settings: ResNet-20, {report['settings']['dataset']} ({report['settings']['limit'] or 'all'} training "
             f"images), batch {report['settings']['batch']}, {report['settings']['threads']} threads, "
             f"{report['settings']['epochs']} epochs per process (the first left out), {report['settings']['repeats']} "
             "repeats alternating; medians over repeats",
             f"- load average (1 min) before {report['load_before'][0]:.2f}, after {report['load_after'][0]:.2f}: "
             "a shared machine, other jobs ran alongside; only the ratios of this one run mean anything",
             f"- wall time {report['wall_s'] / 60:.1f} min", "",
             "| contender | images/s (or s) | per repeat |", "|---|---|---|"]
    for name, value in s["figures"].items():
        per = report["per_repeat"].get(name, "")
        lines.append(f"| {name} | {value:.1f} | {per} |" if value is not None else f"| {name} | n/a | |")
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {name} | {value:.2f}× |" for name, value in s["ratios"].items()]
    jit = report.get("tf_auto_jit")
    if jit:
        lines += ["", f"`--jit auto` on TensorFlow here: XLA {'on' if jit.get('used') else 'off'} ({jit.get('reason')})"]
    if report["errors"]:
        lines += ["", "Errors:", ""] + [f"- {e}" for e in report["errors"]]
    return "\n".join(lines) + "\n"


def per_repeat(results: dict) -> dict:
    table = {}
    for name, rows in results.items():
        for key, label in (("images_per_s", name), ("qat_images_per_s", None), ("process_s", None)):
            values = [r[key] for r in rows if r.get(key) is not None]
            if not values:
                continue
            if key == "qat_images_per_s":
                backend = name.rsplit(" ", 1)[-1]
                table[f"qat {backend} (in-memory fit)"] = ", ".join(f"{v:.1f}" for v in values)
                table[f"float {backend} (in-memory fit)"] = ", ".join(f"{r['float_images_per_s']:.1f}" for r in rows)
            elif key == "process_s" and name in ("convert float32", "keras export litert"):
                label = "convert float32 process (s)" if name == "convert float32" else "keras export process (s)"
                table[label] = ", ".join(f"{v:.1f}" for v in values)
            elif key == "images_per_s":
                table[label] = ", ".join(f"{v:.1f}" for v in values)
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--limit", type=int, help="training images: the first N of the train split (default: all)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per training process; the first is left out")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dataset", default="digits", help="digits (default: its 287 val and 359 test images keep each "
                   "process's evaluation short), fashion-mnist (5,000 val and 10,000 test images each run evaluates)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per process")
    p.add_argument("--spin", action="store_true", help="also run the PyTorch loop with OpenMP's default wait "
                   "policy (its threads spin; slow on a loaded machine)")
    p.add_argument("--skip", action="append", default=[], help="leave out contenders whose name contains this")
    p.add_argument("--json", default=os.path.join(HERE, "peers.json"))
    p.add_argument("--md", default=os.path.join(HERE, "peers.md"))
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)), flush=True)
        return 0

    start, load_before = time.perf_counter(), os.getloadavg()
    info = machine()
    print(f"CPU: {info['cpu']}, {info['cores']} cores; features: {' '.join(info['features'])}", flush=True)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()), flush=True)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)} (a shared machine: others may run)",
          flush=True)
    auto_other = _other_jit()
    results: dict[str, list[dict]] = {}
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="peers-") as work:
        table = contenders(args, work, auto_other)
        groups = ["train", "qat", "convert"]
        for repeat in range(args.repeats):
            for group in groups:
                names = [n for n, (g, _) in table.items() if g == group]
                shift = repeat % len(names) if names else 0
                for name in names[shift:] + names[:shift]:
                    try:
                        result = table[name][1]()
                    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as error:
                        errors.append(f"{name}, repeat {repeat + 1}: {str(error).splitlines()[0]}")
                        print(f"[{repeat + 1}] {name}: FAILED {error}", file=sys.stderr, flush=True)
                        continue
                    results.setdefault(name, []).append(result)
                    shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items()
                             if k in ("images_per_s", "qat_images_per_s", "float_images_per_s", "qat_step_cost",
                                      "process_s")}
                    print(f"[{repeat + 1}] {name}: {shown}", flush=True)
    load_after = os.getloadavg()
    summary = summarize(results, auto_other)
    tf_auto = results.get("product tensorflow --jit auto", [{}])
    report = {"machine": info, "command": "python benchmarks/peers.py " + " ".join(argv or sys.argv[1:]),
              "settings": {k: getattr(args, k) for k in ("repeats", "limit", "epochs", "batch", "threads", "dataset")},
              "load_before": load_before, "load_after": load_after, "wall_s": time.perf_counter() - start,
              "tf_auto_jit": tf_auto[0].get("jit"), "summary": summary, "per_repeat": per_repeat(results),
              "results": results, "errors": errors}
    text = markdown(report)
    print(text)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    with open(args.md, "w") as f:
        f.write(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
