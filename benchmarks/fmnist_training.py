"""Fashion-MNIST results, the training experiments: stages a and b (float accuracy of ResNet-20 and a deeper ResNet),
stage d (degradation: plain / residual / highway at depth 20 and 56) and the figure, each run by ``keras-resnet
train``; and their sections of docs/results.md, including the side script's GPU runs (benchmarks/fmnist_gpu.py),
marked as such until runs through ``keras-resnet train`` on a device replace them.
"""

from __future__ import annotations

import math
import os

from fmnist_runner import REPO, SEED, SIDE_SCRIPT, Runner
from fmnist_stats import ci, minutes, pct, wilson

PUBLISHED = [  # the package's benchmark table (/usr/share/doc/dataset-fashion-mnist/README.md.gz), test accuracy
    ("ResNet18 (flips, translation, rotation)", 0.949),
    ("WRN-28-10 (crops, horizontal flips)", 0.959),
    ("WRN40-4, 8.9M parameters (crops, horizontal flips)", 0.967),
    ("DenseNet-BC, 768K parameters (crops, horizontal flips)", 0.954),
]

RECIPE = ["--batch-size", "128", "--lr", "0.1", "--weight-decay", "5e-4", "--schedule", "cosine"]


def stage_a(r: Runner) -> None:
    r.train("resnet20", "resnet20", r.args.a_epochs, extra=RECIPE)


def stage_b(r: Runner) -> None:
    r.train(r.args.b_model, r.args.b_model, r.args.b_epochs, extra=RECIPE)


DEGRADATION = [(kind, depth) for depth in (20, 56) for kind in ("plain", "resnet", "highway")]


def stage_d(r: Runner) -> None:
    steps_per_epoch = math.ceil(r.args.d_limit / r.args.d_batch)
    epochs = math.ceil(r.args.d_steps / steps_per_epoch)
    for kind, depth in DEGRADATION:
        r.train(f"degradation-{kind}{depth}", f"{kind}{depth}", epochs,
                extra=["--limit", str(r.args.d_limit), "--batch-size", str(r.args.d_batch), "--schedule", "step",
                       "--weight-decay", "1e-4"])
    r.results["degradation"] = {"limit": r.args.d_limit, "batch": r.args.d_batch, "epochs": epochs,
                                "steps": epochs * steps_per_epoch}
    r.save()


def degradation_runs(r: Runner) -> tuple[dict, str]:
    """``({"plain20": run, ...}, where)``: the accelerator's full-size runs when committed, else stage d's."""
    accel = r.accelerator.get("runs", {})
    if all(f"degradation-{k}{n}" in accel for k, n in DEGRADATION):
        return {f"{k}{n}": accel[f"degradation-{k}{n}"] for k, n in DEGRADATION}, "accelerator"
    runs = r.results.get("runs", {})
    return {f"{k}{n}": runs[f"degradation-{k}{n}"] for k, n in DEGRADATION if f"degradation-{k}{n}" in runs}, "cpu"


def degradation_figure(r: Runner, path: str) -> None:
    """He et al. Fig. 6 style: per family, train error (dashed) and test error (solid) against SGD steps."""
    from matplotlib.figure import Figure

    runs, where = degradation_runs(r)
    if not runs:
        print("no degradation runs yet: no figure")
        return
    held_out = "test_accuracy" if where == "accelerator" else "val_accuracy"
    titles = {"plain": "plain", "resnet": "residual (ResNet)", "highway": "highway"}
    fig = Figure(figsize=(15, 4.4))
    axes = fig.subplots(1, 3, sharey=True)
    late = [0.0]  # errors after the first 2 epochs set the y range (the first epochs' errors dwarf the rest)
    for ax, kind in zip(axes, titles):
        for depth, color in ((20, "tab:orange"), (56, "tab:red")):
            run = runs.get(f"{kind}{depth}")
            if not run or not run["history"]:
                continue
            per_epoch = math.ceil(run["train_images"] / run["recipe"]["batch_size"])
            steps = [h["epoch"] * per_epoch for h in run["history"]]
            late += [100 * (1 - h[k]) for h in run["history"][2:] for k in ("accuracy", held_out)]
            ax.plot(steps, [100 * (1 - h["accuracy"]) for h in run["history"]], "--", color=color, lw=1.2,
                    label=f"{kind}-{depth} train")
            ax.plot(steps, [100 * (1 - h[held_out]) for h in run["history"]], "-", color=color, lw=2,
                    label=f"{kind}-{depth} {'test' if where == 'accelerator' else 'held-out'}")
        ax.set_title(titles[kind])
        ax.set_xlabel("SGD steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(0, min(100.0, max(late) * 1.15 + 1))
    first = next(iter(runs.values()))
    if where == "accelerator":
        fig.suptitle(f"Fashion-MNIST, all {first['train_images']:,} training images, {first['epochs']} epochs: "
                     "train error (dashed, augmented batches) and test error (solid, 10,000 test images)")
    else:
        fig.suptitle(f"Fashion-MNIST, {first['train_images']:,} training images: train error (dashed, augmented "
                     "batches) and held-out error (solid, 5,000 validation images)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def stage_figure(r: Runner) -> None:
    degradation_figure(r, os.path.join(REPO, "docs", "degradation_fmnist.png"))


def control_sentence(cpu_run: dict | None, accel_run: dict | None) -> str:
    """Whether the accelerator's ResNet-20 falls inside the CPU run's 95% interval (computed, not assumed)."""
    if not cpu_run or not accel_run:
        return "."
    lo, hi = wilson(cpu_run["test_accuracy"] * cpu_run["test_images"], cpu_run["test_images"])
    inside = lo <= accel_run["test_accuracy"] <= hi
    return (f": {pct(accel_run['test_accuracy'])} against the CPU run's {pct(cpu_run['test_accuracy'])}, "
            f"{'inside' if inside else 'outside'} that run's 95% interval ({100 * lo:.2f}–{100 * hi:.2f}%).")


def float_section(r: Runner) -> list[str]:
    """docs/results.md: the CPU runs of stages a and b, and the published figures."""
    runs = r.results.get("runs", {})
    out: list[str] = []
    out += ["## Float accuracy (stages a, b)", "",
            "| model | train images | epochs (SGD steps) | test accuracy | 95% CI | val accuracy | images/s | "
            "training time | wall time |", "|---|---|---|---|---|---|---|---|---|"]
    float_runs = [n for n in runs if not n.startswith("degradation-")]
    for name in float_runs:
        run = runs[name]
        out.append(f"| {run['model']} ({run['parameters']:,} parameters) | {run['train_images']:,} | {run['epochs']} "
                   f"({run['steps']:,}) | **{pct(run['test_accuracy'])}** | "
                   f"{ci(run['test_accuracy'], run['test_images'])} | {pct(run['val_accuracy'])} | "
                   f"{run['images_per_s']} | {minutes(run['train_time_s'])} | {minutes(run['wall_s'])} |")
    if not float_runs:
        out.append("| (stage a not finished yet) | | | | | | | | |")
    out += ["", "Test accuracy is the model with the best validation accuracy (`best.keras`); seed "
            f"{SEED}; recipe: SGD momentum 0.9, batch 128, lr 0.1, cosine decay to 0, weight decay 5e-4, "
            "pad-4 random crops and horizontal flips. Weight decay 5e-4 rather than the paper's 1e-4: these are "
            "short schedules (tens of epochs, not 164), where the stronger decay is the usual choice of fast "
            "CIFAR recipes; it was chosen, not tuned here (stage d keeps the paper's 1e-4). The epochs were "
            "picked from a measured throughput so that a run fits in about 100 minutes on the shared 2 cores. "
            "Commands:", ""]
    out += [f"    {runs[n]['command']}" for n in float_runs] or ["    (none yet)"]
    out += ["", "Published (the dataset's benchmark table, test accuracy, larger models and longer training):", ""]
    out += [f"- {name}: {100 * acc:.1f}%" for name, acc in PUBLISHED]
    return out


def accelerator_section(r: Runner) -> list[str]:
    """docs/results.md: the runs of the side script benchmarks/fmnist_gpu.py, marked as such."""
    runs = r.results.get("runs", {})
    out: list[str] = []
    accel = r.accelerator
    if accel.get("runs"):
        first = next(iter(accel["runs"].values()))
        out += ["", f"### On an accelerator: ResNet-56, and ResNet-20 again ({accel.get('gpu', 'a GPU')}, "
                f"Keras {first['keras']} on JAX {first['jax']})", "", SIDE_SCRIPT, "",
                "ResNet-56 at full size does not fit in a working session on the 2 shared cores (ResNet-20 took "
                "over two hours there and ResNet-56 costs three times as much per image), so it ran on a GPU under the JAX backend, with `benchmarks/fmnist_gpu.py`: "
                "keras_resnet's own model, normalisation, optimizer, schedule and loss "
                "(`train.model_for_dataset`, `train.compile_model`, the same `Recipe`), the same split, seed and "
                "recipe as stage a; only the backend and the input pipeline differ (the same pad-4 crops and "
                "flips in numpy, once per epoch). ResNet-20 was run again there as the control"
                + control_sentence(runs.get("resnet20"), accel["runs"].get("resnet20")), "",
                "| model | backend, device | train images | epochs (SGD steps) | test accuracy | 95% CI | "
                "last-epoch test | val accuracy | final train error | training time |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for name in ("resnet20", "resnet56"):
            run = accel["runs"].get(name)
            if not run:
                continue
            last = run["history"][-1]
            out.append(f"| {run['model']} ({run['parameters']:,} parameters) | JAX, {run['device']} | "
                       f"{run['train_images']:,} | {run['epochs']} ({run['steps']:,}) | "
                       f"**{pct(run['test_accuracy'])}** | {ci(run['test_accuracy'], run['test_images'])} | "
                       f"{pct(run['last_test_accuracy'])} | {pct(run['val_accuracy'])} | "
                       f"{pct(1 - last['accuracy'])} | {minutes(run['train_time_s'])} |")
        out += ["", "Test accuracy is the epoch with the best validation accuracy, as `best.keras` above. In 20 "
                "epochs ResNet-56 does not beat ResNet-20 on this data: its training error is still higher "
                "(it has not fitted the training set yet), so the short schedule, not depth, limits it; He et al. "
                "train 164 epochs. The runs shared one GPU eight at a time, so their times are not throughput "
                "figures. Command (wall time of all eight runs together "
                f"{minutes(accel.get('wall_s'))}):", "", f"    {accel.get('command', '')}"]
    return out


def degradation_section(r: Runner) -> list[str]:
    """docs/results.md: plain / residual / highway at depth 20 and 56."""
    out: list[str] = []
    out += ["", "## Degradation: plain vs residual vs highway", ""]
    deg, where = degradation_runs(r)
    if deg:
        first = next(iter(deg.values()))
        per_epoch = math.ceil(first["train_images"] / first["recipe"]["batch_size"])
        if where == "accelerator":
            out += [f"All {first['train_images']:,} training images, batch {first['recipe']['batch_size']}, "
                    f"{first['epochs']} epochs = {first['epochs'] * per_epoch:,} SGD steps per run; He et al.'s "
                    "step schedule (lr 0.1, ÷10 at 50% and 75%), weight decay 1e-4, seed 0; the accelerator runs "
                    "described above (JAX backend, eight runs sharing one GPU; side script `benchmarks/fmnist_gpu.py`, "
                    "not `keras-resnet train`). Train error: the augmented training batches of each epoch; test "
                    "error: the 10,000 test images after each epoch.", ""]
        else:
            out += [f"Training subset: the first {first['train_images']:,} images of the 55,000-image training "
                    f"split; batch {first['recipe']['batch_size']}, {first['epochs']} epochs = "
                    f"{first['epochs'] * per_epoch:,} SGD steps per run; He et al.'s step schedule, weight decay "
                    "1e-4. Test accuracy on all 10,000 test images.", ""]
        out += ["![degradation](degradation_fmnist.png)", "",
                "| model | final train error | final test error | test accuracy (best val epoch) | 95% CI | "
                "training time |", "|---|---|---|---|---|---|"]
        for kind, depth in DEGRADATION:
            run = deg.get(f"{kind}{depth}")
            if not run:
                out.append(f"| {kind}{depth} | not run yet | | | | |")
                continue
            last = run["history"][-1] if run["history"] else {}
            held = last.get("test_accuracy", run.get("last_test_accuracy"))
            out.append(f"| {kind}{depth} | {pct(1 - last.get('accuracy', float('nan')))} | "
                       f"{pct(None if held is None else 1 - held)} | {pct(run['test_accuracy'])} | "
                       f"{ci(run['test_accuracy'], run['test_images'])} | {minutes(run['train_time_s'])} |")

        def train_error(name):
            return 100 * (1 - deg[name]["history"][-1]["accuracy"]) if name in deg else float("nan")

        gaps = {kind: train_error(f"{kind}56") - train_error(f"{kind}20") for kind in ("plain", "resnet", "highway")}
        out += ["", "Depth 56 against depth 20, final training error: "
                + "; ".join(f"{kind} {gap:+.1f} points" for kind, gap in gaps.items()) + ". "
                "The plain net degrades: 56 layers fit the training set far worse than 20, the optimisation "
                "failure of He et al. Fig. 6 on real data. Shortcuts remove most of it (the highway gates start "
                "nearly closed, so highway-56 begins close to a shallower net). With this short schedule the "
                "56-layer residual and highway nets are still behind their 20-layer twins: He et al. train for "
                f"64,000 steps, here {first['epochs'] * per_epoch:,}."]
        if where == "accelerator":
            out += ["", "The CPU fallback of this experiment is `--stage d` (a training subset, >= 2,000 steps); "
                    "the figure above comes from the full-size accelerator runs (`--stage figure`)."]
        else:
            out += ["", "Commands:", ""]
            runs_ = r.results.get("runs", {})
            out += [f"    {runs_[f'degradation-{k}{n}']['command']}" for k, n in DEGRADATION
                    if f"degradation-{k}{n}" in runs_]
    else:
        out.append("Not run yet (`--stage d` on the CPU, or benchmarks/fmnist_gpu.py on an accelerator).")
    return out
