"""He et al.'s degradation experiment (their Fig. 6): :func:`compare` trains several models with one recipe and
plots their training and validation errors side by side.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Sequence

from keras_resnet.core.errors import ConfigError
from keras_resnet.core.files import atomic_write, save_figure
from keras_resnet.spec.recipe import Recipe
from keras_resnet.spec.specs import normalize_name
from keras_resnet.train.loop import train


def compare(models: Sequence[str], recipe: Recipe, output: str = "runs/compare", *, verbose: int = 1) -> dict:
    """He et al.'s degradation experiment (their Fig. 6): train each model with ``recipe``, plot their errors.

    Writes ``OUTPUT/MODEL/`` per run, ``OUTPUT/compare.png`` (dashed: training error, solid: validation
    error) and ``OUTPUT/compare.json``; returns ``{"plot": path, "runs": {model: summary}}``.
    """
    # No pyplot: the caller's backend (a notebook's inline one) is left alone.
    from matplotlib.figure import Figure

    if not models:
        raise ConfigError("compare needs at least one model")
    dataset = recipe.dataset
    runs = {m: train(dataclasses.replace(recipe, model=m), os.path.join(output, normalize_name(m)), verbose=verbose)
            for m in models}
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for k, (name, summary) in enumerate(runs.items()):
        with open(summary["files"]["history.csv"]) as f:
            rows = list(csv.DictReader(f))
        epochs_ = [int(r["epoch"]) for r in rows]
        color = f"C{k}"
        ax.plot(epochs_, [100 * (1 - float(r["accuracy"])) for r in rows], "--", color=color, linewidth=1)
        ax.plot(epochs_, [100 * (1 - float(r["val_accuracy"])) for r in rows], "-", color=color, linewidth=2,
                label=f"{name} (test {summary['test_accuracy']:.1%})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.set_title(f"{dataset}: training error (dashed), validation error (solid)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(output, exist_ok=True)
    plot = os.path.join(output, "compare.png")
    save_figure(fig, plot)
    result = {"plot": plot, "runs": runs}
    atomic_write(os.path.join(output, "compare.json"), json.dumps(result, indent=2) + "\n")
    return result
