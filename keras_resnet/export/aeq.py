"""ai-edge-quantizer as a second quantizer: the whole job, and the greedy mixed-precision search.

``keras-resnet convert MODEL --quantizer aeq --recipe static_wi8_ai8`` converts to float32 through the converter
path (:func:`keras_resnet.export.trace.convert_model`), then quantizes that ``.tflite`` with ai-edge-quantizer
(:mod:`keras_resnet.export.aeq_quantize`), calibrated on the same preprocessed images the converter's int8 path uses.
The result gets the same metadata and the same validation in resnet-edge.

- **Diagnostics** (``--diagnostics DIR``, :mod:`keras_resnet.export.aeq_diagnostics`): MSE and SNR per tensor from
  ai-edge-quantizer's own validation; every conv, Add and dense op is listed, worst SNR first, printed and written
  to ``DIR/diagnostics.json`` with a plot ``DIR/diagnostics.png``.
- **Selective precision** (``--int16 PATTERNS``, ``--keep-float PATTERNS``): ops picked by regexes searched in
  the Keras layer names (``conv2_block1_2_conv``, ``predictions``), or ``stem`` / ``classifier``.
- **Mixed-precision search** (``--max-accuracy-drop POINTS``): greedy. From all int8, promote one op at a time
  to int16 activations, then (if every op is int16 and the budget is still not met) to float, until the
  validation accuracy is within the budget of the Keras model's. Each step promotes the worst-SNR op of the
  previous step's model (diagnosed again after every promotion, since one op's precision moves the error of the
  ops after it). Every step's size, latency and accuracy is a table row, beside the converter's float32 and int8.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from keras_resnet.core import runlock
from keras_resnet.core.errors import ConfigError, ValidationError
from keras_resnet.export.aeq_diagnostics import (
    DIAGNOSTIC_IMAGES,
    check_folder,
    diagnose,
    diagnostics_lines,
    write_diagnostics,
)
from keras_resnet.export.aeq_quantize import (
    Op,
    build_quantizer,
    calibrate,
    graph_ops,
    quantize,
    require,
    select,
    signature_input,
)
from keras_resnet.export.job import Job, Report
from keras_resnet.export.metadata import embed_metadata
from keras_resnet.export.ops import input_type, op_summary
from keras_resnet.export.trace import convert_model
from keras_resnet.export.validate import measure, write_validated
from keras_resnet.spec.conversion import ConvertSpec

# ---- the mixed-precision search -------------------------------------------------------------------------------


@dataclass
class Step:
    """One row of the search table."""

    name: str
    quantizer: str
    size_bytes: int
    accuracy: float | None
    drop_points: float | None  # Keras accuracy minus this accuracy, in percentage points
    agreement: float
    latency_ms: float
    int16: list[str] = field(default_factory=list)
    floating: list[str] = field(default_factory=list)
    within_budget: bool | None = None
    promoted: str | None = None  # the op this step moved, and its SNR in the previous step's model


def _step(name: str, quantizer: str, content: bytes, job: Job, spec: ConvertSpec, workdir: str,
          int16=(), floating=(), budget: float | None = None, promoted: str | None = None) -> tuple[Step, bytes]:
    """Measure ``content`` (metadata embedded) in resnet-edge as the final file would be."""
    content = embed_metadata(content, job.metadata(spec, name))
    path = os.path.join(workdir, "step.tflite")
    with open(path, "wb") as f:
        f.write(content)
    result, latency = measure(path, job, spec.threads)
    accuracy, keras = result["tflite_accuracy"], result["keras_accuracy"]
    drop = None if accuracy is None else round(100 * (keras - accuracy), 4)
    within = None if budget is None or drop is None else drop <= budget + 1e-9
    return Step(name, quantizer, len(content), accuracy, drop, result["agreement"], latency,
                [op.layer for op in int16], [op.layer for op in floating], within, promoted), content


def search_lines(steps: list[Step], budget: float, threads: int, samples: int, source: str) -> list[str]:
    lines = [f"mixed-precision search (greedy, worst SNR first, re-ranked each step) for an accuracy drop <= "
             f"{budget:g} points on {samples} {source} images; latency: median of batch-1 runs, {threads} threads:",
             f"  {'step':<30}  {'size MB':>8}  {'latency ms':>10}  {'accuracy':>8}  {'drop pts':>8}  budget  promoted"]
    for step in steps:
        accuracy = "-" if step.accuracy is None else f"{100 * step.accuracy:.2f}%"
        drop = "-" if step.drop_points is None else f"{step.drop_points:+.2f}"
        within = "" if step.within_budget is None else ("within" if step.within_budget else "over")
        lines.append(f"  {step.name[:30]:<30}  {step.size_bytes / 1e6:>8.3f}  {step.latency_ms:>10.2f}  "
                     f"{accuracy:>8}  {drop:>8}  {within:<6}  {step.promoted or ''}".rstrip())
    return lines


def _next_move(rows: list[dict], by_index: dict[int, Op], int16: list[Op], floating: list[Op]):
    """The worst-SNR op of ``rows`` (one model's diagnostics, worst first) still int8, to int16; when none is
    left, the worst one not yet float, to float; None when every op is float."""
    promoted = {op.index for op in int16} | {op.index for op in floating}
    for kind, taken in (("int16", promoted), ("float", {op.index for op in floating})):
        for row in rows:
            if row["index"] not in taken:
                return kind, by_index[row["index"]], row["snr_db"]
    return None


def search(aeq, float_content: bytes, ops: list[Op], ranking: list[dict], ranges: dict | None, job: Job,
           spec: ConvertSpec, workdir: str, int16: list[Op], floating: list[Op],
           rediagnose: Callable[[bytes], list[dict]]) -> tuple[list[Step], bytes, list[Op], list[Op]]:
    """Greedy search (see the module docstring): ``ranking`` is the diagnostics of the first step's model, and
    ``rediagnose(content)`` ranks each later one. Returns (the aeq steps, the chosen model, its int16 and float
    ops); ValidationError when even the last step misses the budget."""
    budget = spec.max_accuracy_drop
    by_index = {op.index: op for op in ops}
    int16, floating = list(int16), list(floating)
    rows, promoted, steps = ranking, None, []
    while True:
        content = quantize(build_quantizer(aeq, float_content, "static_wi8_ai8", int16, floating,
                                           job.plan.io_type == "float32"), ranges)
        count = len(int16) + len(floating)
        name = "aeq all int8" if not count else f"aeq +{len(int16)} int16 +{len(floating)} float"
        step, content = _step(name, "aeq", content, job, spec, workdir, int16, floating, budget, promoted)
        steps.append(step)
        if step.within_budget:
            break
        if len(steps) > 1:  # promoting one op moves the error of the ops after it: rank this model's ops again
            rows = rediagnose(content)
        move = _next_move(rows, by_index, int16, floating)
        if move is None:
            break
        kind, op, snr = move
        if kind == "int16":
            int16.append(op)
        else:
            int16 = [o for o in int16 if o != op]
            floating.append(op)
        promoted = f"{op.layer} -> {kind} ({'-' if snr is None else format(snr, '.1f')} dB)"
    if not steps[-1].within_budget:
        raise ValidationError(f"no mix within --max-accuracy-drop {budget:g}: with every conv/Add/dense op in "
                              f"float the drop is still {steps[-1].drop_points:.2f} points; nothing written")
    return steps, content, int16, floating


def _reference_steps(job: Job, spec: ConvertSpec, workdir: str, float_content: bytes) -> list[Step]:
    """The converter's float32 and int8 (PTQ, same calibration images) rows of the search table."""
    int8 = convert_model(job.model, quantization="int8", io_type="int8", calibration=job.calibration,
                         temp_dir=workdir)
    return [_step("converter float32", "tflite", float_content, job, spec, workdir)[0],
            _step("converter int8", "tflite", int8, job, spec, workdir, budget=spec.max_accuracy_drop)[0]]


# ---- the whole job --------------------------------------------------------------------------------------------


@dataclass
class AEQReport(Report):
    """A :class:`~keras_resnet.export.job.Report` plus the aeq recipe, the per-layer diagnostics and the search."""

    recipe: str = ""
    int16_layers: list[str] = field(default_factory=list)
    float_layers: list[str] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)  # diagnostics rows, worst SNR first
    diagnostic_images: int = 0
    search: list[dict] = field(default_factory=list)  # Step rows, converter rows first
    max_accuracy_drop: float | None = None
    diagnostics_dir: str | None = None

    def lines(self) -> list[str]:
        out = super().lines()
        mixed = []
        if self.int16_layers:
            mixed.append(f"int16 activations: {', '.join(self.int16_layers)}")
        if self.float_layers:
            mixed.append(f"float: {', '.join(self.float_layers)}")
        out[1:1] = mixed
        if self.layers:
            out += diagnostics_lines(self.layers, self.diagnostic_images)
        if self.search:
            out += search_lines([Step(**row) for row in self.search], self.max_accuracy_drop, self.threads,
                                self.samples, self.validation)
        if self.diagnostics_dir:
            out.append(f"diagnostics: {self.diagnostics_dir}/diagnostics.json, {self.diagnostics_dir}/diagnostics.png")
        return out

    def diagnostics(self) -> dict:
        """What ``diagnostics.json`` holds: layers worst first, the search table, the settings."""
        return {"model": self.output, "recipe": self.recipe, "quantization": self.quantization,
                "int16_layers": self.int16_layers, "float_layers": self.float_layers,
                "diagnostic_images": self.diagnostic_images, "validation": self.validation,
                "threads": self.threads, "max_accuracy_drop": self.max_accuracy_drop,
                "layers": self.layers, "search": self.search}


def preflight(spec: ConvertSpec, *, force: bool) -> None:
    """What must fail before any slow work: a missing ai-edge-quantizer, a ``--diagnostics`` folder that cannot
    take the files."""
    require()
    check_folder(spec.diagnostics, force=force)


def convert_aeq(job: Job, output: str, spec: ConvertSpec, *, force: bool = False) -> AEQReport:
    """:func:`keras_resnet.export.convert.convert` with ``quantizer="aeq"``, for a :class:`Job` prepared for its
    plan (``job.plan.recipe``): float32 conversion, ai-edge-quantizer with the selective-precision options, optional
    diagnostics and search, metadata and validation in resnet-edge; ``output`` written atomically."""
    aeq = require()
    recipe, report_dir = job.plan.recipe, spec.diagnostics
    search_on = spec.max_accuracy_drop is not None
    if search_on and job.y_val is None:
        raise ConfigError("--max-accuracy-drop needs labelled validation images (--validation-data DATASET)")

    start = time.perf_counter()
    float_content = convert_model(job.model, quantization=job.plan.quantization, temp_dir=job.folder,
                                  subsample=job.plan.subsample, pool=job.plan.pool)
    ops = graph_ops(aeq, float_content, job.model)
    signature = signature_input(float_content)
    int16 = select(ops, spec.int16, "--int16")
    floating = select(ops, spec.keep_float, "--keep-float")
    int16 = [op for op in int16 if op not in floating]
    quantizer = build_quantizer(aeq, float_content, recipe, int16, floating, job.plan.io_type == "float32")
    ranges = calibrate(aeq, quantizer, signature, job.calibration, spec.threads)
    content = quantize(quantizer, ranges)
    seconds = time.perf_counter() - start

    images = job.prepared[:DIAGNOSTIC_IMAGES]
    rows: list[dict] = []
    if report_dir is not None or search_on:
        rows = diagnose(aeq, float_content, content, ops, signature, images, spec.threads)
    steps: list[Step] = []
    if search_on:
        with tempfile.TemporaryDirectory(prefix=runlock.temporary_prefix("convert"), dir=job.folder) as workdir:
            steps = _reference_steps(job, spec, workdir, float_content)
            found, content, int16, floating = search(
                aeq, float_content, ops, rows, ranges, job, spec, workdir, int16, floating,
                lambda step: diagnose(aeq, float_content, step, ops, signature, images, spec.threads))
            steps += found
        if len(found) > 1:  # the diagnostics describe the chosen mix
            rows = diagnose(aeq, float_content, content, ops, signature, images, spec.threads)

    name = recipe if not (int16 or floating) else f"{recipe} mixed"
    content = embed_metadata(content, job.metadata(spec, f"aeq:{name}"))
    result, latency = write_validated(content, output, job, threads=spec.threads, force=force)
    counts, floating_ops = op_summary(content)
    report = AEQReport(
        **job.report_fields(output, content, result, latency, spec.threads, seconds),
        quantization=f"aeq {name}", target=job.plan.target, io_type=input_type(content), float_ops=floating_ops,
        ops=counts, recipe=recipe, int16_layers=[op.layer for op in int16],
        float_layers=[op.layer for op in floating], layers=rows, diagnostic_images=len(images) if rows else 0,
        search=[asdict(step) for step in steps], max_accuracy_drop=spec.max_accuracy_drop, diagnostics_dir=report_dir)
    if report_dir is not None:
        write_diagnostics(report_dir, report.diagnostics(), f"{os.path.basename(report.output)}: {report.quantization}")
    return report
