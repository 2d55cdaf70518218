"""Per-layer diagnostics of an ai-edge-quantizer model: MSE and SNR against float for every conv, Add and dense op.

ai-edge-quantizer's own validation (float and quantized interpreters with every tensor preserved) gives the error
per tensor; :func:`diagnose` lists the diagnosed ops worst SNR first, :func:`diagnostics_lines` prints them,
:func:`write_diagnostics` writes ``diagnostics.json`` and the plot ``diagnostics.png`` (:func:`plot_diagnostics`).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from keras_resnet.core.errors import ModelFileError, OutputError, OutputExistsError
from keras_resnet.core.files import atomic_write, save_figure
from keras_resnet.export.aeq_quantize import DIAGNOSED, Op, dataset, quietly
from keras_resnet.export.ops import tensor_key, tensor_types

FILES = ("diagnostics.json", "diagnostics.png")
# ai-edge-quantizer's validation builds two interpreters (all tensors kept) per image: ResNet-20 on digits,
# 16 images in 0.6 s on 2 loaded cores, so 64 images cost ~2.5 s; larger models scale with their activations.
DIAGNOSTIC_IMAGES = 64


def check_folder(folder: str | None, *, force: bool) -> None:
    """Refuse a ``--diagnostics`` folder that is a file, or holds the files without ``force``, before any work."""
    if folder is None:
        return
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputError(f"--diagnostics {folder} is a file; give a folder")
    for name in FILES:
        if os.path.exists(os.path.join(folder, name)) and not force:
            raise OutputExistsError(f"{os.path.join(folder, name)} exists; pass --force to overwrite it")


def diagnose(aeq, float_content: bytes, quantized: bytes, ops: list[Op], signature, images: np.ndarray,
             threads: int) -> list[dict]:
    """MSE and SNR against float of every conv, Add and dense op's output, from ai-edge-quantizer's validation
    on ``images`` (model-ready), worst SNR first. SNR is signal power / error power, averaged over the images by
    ai-edge-quantizer, here in dB; ``activations`` is the quantized output tensor's type."""
    metric = aeq["validation"].ValidationErrorMetric
    quantizer = aeq["quantizer"].Quantizer(bytearray(float_content), previous_quantized_model=bytearray(quantized))
    with quietly():
        result = quantizer.validate(dataset(signature, images), error_metrics=[metric.MSE, metric.SNR],
                                    num_threads=threads)
    tensors = result.get_all_tensor_results()
    types = tensor_types(quantized)
    rows = []
    for op in ops:
        if op.kind not in DIAGNOSED:
            continue
        if op.tensor not in tensors:
            raise ModelFileError(f"ai-edge-quantizer's validation has no result for {op.layer} ({op.kind}); "
                                 f"the quantized graph renamed its output {op.tensor[:80]}")
        values = tensors[op.tensor]
        snr = values["snr"]
        rows.append({"layer": op.layer, "op": op.kind, "index": op.index,
                     "activations": types.get(tensor_key(op.tensor), "?"),
                     "snr_db": round(10 * math.log10(snr), 3) if snr > 0 else None,  # no signal: no ratio
                     "mse": float(values["mse"])})
    return sorted(rows, key=lambda row: (-math.inf if row["snr_db"] is None else row["snr_db"], row["index"]))


def diagnostics_lines(rows: list[dict], images: int) -> list[str]:
    width = max([len("layer"), *(len(row["layer"]) for row in rows)])
    lines = [f"per-layer error against float on {images} validation images, worst SNR first:",
             f"  {'layer':<{width}}  {'op':<15}  {'act':<7}  {'SNR dB':>7}  {'MSE':>9}"]
    lines += [f"  {row['layer']:<{width}}  {row['op']:<15}  {row['activations']:<7}  "
              f"{'-' if row['snr_db'] is None else format(row['snr_db'], '.2f'):>7}  {row['mse']:>9.3g}"
              for row in rows]
    return lines


def plot_diagnostics(rows: list[dict], path: str, title: str) -> None:
    """SNR (dB) and MSE per diagnosed op in graph order, so the trend with depth shows."""
    from matplotlib.figure import Figure

    ordered = sorted(rows, key=lambda row: row["index"])
    colors = {"CONV_2D": "tab:blue", "DEPTHWISE_CONV_2D": "tab:cyan", "ADD": "tab:orange",
              "FULLY_CONNECTED": "tab:green"}
    fig = Figure(figsize=(max(6.0, 0.28 * len(ordered) + 2), 6.5), layout="constrained")
    snr_axis, mse_axis = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(ordered))
    snr_axis.bar(x, [row["snr_db"] or 0.0 for row in ordered], color=[colors.get(row["op"], "gray") for row in ordered])
    snr_axis.set_ylabel("SNR against float (dB)")
    snr_axis.set_title(title)
    from matplotlib.patches import Patch

    snr_axis.legend(handles=[Patch(color=color, label=kind) for kind, color in colors.items()
                             if any(row["op"] == kind for row in ordered)], fontsize=8)
    mse_axis.bar(x, [max(row["mse"], 1e-12) for row in ordered], color="tab:red")
    mse_axis.set_yscale("log")
    mse_axis.set_ylabel("MSE against float")
    mse_axis.set_xticks(x, [row["layer"] for row in ordered], rotation=90, fontsize=7)
    save_figure(fig, path)


def write_diagnostics(folder: str, payload: dict, title: str) -> None:
    """``folder/diagnostics.json`` (``payload``: layers worst first, the search table, the settings) and
    ``diagnostics.png`` (the plot of ``payload["layers"]``)."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create --diagnostics folder {folder}: {error.strerror}") from error
    atomic_write(os.path.join(folder, FILES[0]), json.dumps(payload, indent=1, allow_nan=False) + "\n")
    plot_diagnostics(payload["layers"], os.path.join(folder, FILES[1]), title)
