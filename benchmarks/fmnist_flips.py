"""Fashion-MNIST results: the horizontal-flip comparison (ResNet-20 with and without flips, four seeds each), read from
the committed output of the side script benchmarks/fmnist_gpu.py (``--flip-results``); ``keras-resnet train`` has
no switch to turn flips off, so no stage here trains these runs.
"""

from __future__ import annotations

from fmnist_runner import SIDE_SCRIPT, Runner
from fmnist_stats import minutes, pct


def flip_runs(r: Runner) -> dict:
    """``{(seed, flip): run}`` of the accelerator's flip comparison (the ResNet-20 control run is seed 0, flips)."""
    runs = {(run["recipe"]["seed"], run.get("flip", True)): run for run in r.flip_accel.get("runs", {}).values()}
    control = r.accelerator.get("runs", {}).get("resnet20")
    if runs and control:
        runs.setdefault((control["recipe"]["seed"], True), control)
    return runs


def flip_section(r: Runner) -> list[str]:
    """docs/results.md: flips on/off, from the accelerator's runs."""
    out: list[str] = []
    out += ["", "## Horizontal flips", ""]
    flips = flip_runs(r)
    if flips:
        out += ["ResNet-20, the recipe of stage a, all 55,000 training images, 20 epochs, with and without random "
                "horizontal flips (pad-4 crops in both), four seeds each, on the accelerator (`fmnist_gpu.py`, "
                "`:noflip` runs). Test accuracy: the best-validation epoch, on the 10,000 test images.", "",
                SIDE_SCRIPT, "",
                "| seed | with flips: test accuracy | final train error | without flips: test accuracy | "
                "final train error |", "|---|---|---|---|---|"]
        for seed in sorted({run["recipe"]["seed"] for run in flips.values()}):
            cells = []
            for flip in (True, False):
                run = flips.get((seed, flip))
                cells += ([pct(run["test_accuracy"]), pct(1 - run["history"][-1]["accuracy"])] if run
                          else ["–", "–"])
            out.append(f"| {seed} | " + " | ".join(cells) + " |")
        stalled = {flip: [run for (_, fl), run in flips.items() if fl == flip and run["test_accuracy"] < 0.9]
                   for flip in (True, False)}
        healthy = {flip: [run["test_accuracy"] for (_, fl), run in flips.items() if fl == flip
                          and run["test_accuracy"] >= 0.9] for flip in (True, False)}
        mean = {flip: sum(v) / len(v) if v else float("nan") for flip, v in healthy.items()}
        out += ["", f"Mean of the runs that trained: {pct(mean[True])} with flips ({len(healthy[True])} runs), "
                f"{pct(mean[False])} without ({len(healthy[False])} runs): flips do not raise the accuracy "
                "(the seeds spread by about half a point, so the difference is noise). Runs that stalled below "
                f"90%: {len(stalled[True])} with flips, {len(stalled[False])} without"
                + (" (its training error stayed above 10%: an optimisation failure, not overfitting)"
                   if stalled[False] else "") + ". **Choice:** flips stay on for Fashion-MNIST (docs/data.md): "
                "they cost no measurable accuracy, every run with them trained, and mirrored garments are still garments. "
                "The evidence for robustness is thin (one stalled run in four), and is recorded as such.", "",
                f"Command (two calls, {' and '.join(minutes(w) for w in r.flip_accel.get('wall_s', []))} wall "
                "time); seed 0 with flips is the ResNet-20 control run above:", "",
                f"    {r.flip_accel.get('command', '')}"]
    else:
        out.append("Not measured yet: the comparison comes from `benchmarks/fmnist_gpu.py` (`:noflip` runs), since "
                   "`keras-resnet train` has no flip switch; flips are on, for the reasons in docs/data.md.")
    return out
