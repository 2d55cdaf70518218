"""ai-edge-quantizer as a second quantizer: recipes, per-layer diagnostics, selective precision, mixed precision.

``keras-resnet convert MODEL --quantizer aeq --recipe static_wi8_ai8`` converts to float32 through the converter
path (:func:`keras_resnet.export.convert.convert_model`), then quantizes that ``.tflite`` with ai-edge-quantizer
(PyPI ``ai-edge-quantizer``, the ``aeq`` extra; imported here only), calibrated on the same preprocessed images
the converter's int8 path uses. The result gets the same metadata and the same validation in resnet-edge.

- **Diagnostics** (``--diagnostics DIR``): ai-edge-quantizer's own validation (float and quantized interpreters
  with every tensor preserved) gives MSE and SNR per tensor; every conv, Add and dense op is listed, worst SNR
  first, printed and written to ``DIR/diagnostics.json`` with a plot ``DIR/diagnostics.png``.
- **Selective precision** (``--int16 PATTERNS``, ``--keep-float PATTERNS``): ops picked by regexes searched in
  the Keras layer names (``conv2_block1_2_conv``, ``predictions``), or ``stem`` / ``classifier``.
- **Mixed-precision search** (``--max-accuracy-drop POINTS``): greedy. From all int8, promote one op at a time
  to int16 activations, then (if every op is int16 and the budget is still not met) to float, until the
  validation accuracy is within the budget of the Keras model's. Each step promotes the worst-SNR op of the
  previous step's model (diagnosed again after every promotion, since one op's precision moves the error of the
  ops after it). Every step's size, latency and accuracy is a table row, beside the converter's float32 and int8.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from keras_resnet.core import console, runlock
from keras_resnet.core.errors import (
    ConfigError,
    ModelFileError,
    OutputError,
    OutputExistsError,
    ValidationError,
)
from keras_resnet.core.files import atomic_write, save_figure
from keras_resnet.export.convert import (
    MIN_AGREEMENT,
    Job,
    Report,
    _float_bytes,
    convert_model,
    measure,
    op_summary,
    prepare_job,
    write_validated,
)
from keras_resnet.export.metadata import embed_metadata
from keras_resnet.spec.conversion import AEQ_RECIPES, ConvertSpec

# --recipe → the ai_edge_quantizer.recipe function behind it.
RECIPES = {"static_wi8_ai8": "static_wi8_ai8", "static_wi8_ai16": "static_wi8_ai16",
           "dynamic_wi8": "dynamic_wi8_afp32", "weight_only_wi8": "weight_only_wi8_afp32"}
assert tuple(RECIPES) == AEQ_RECIPES
DIAGNOSED = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "FULLY_CONNECTED")  # the ops the diagnostics list
_KERAS_CLASS = {"CONV_2D": ("Conv2D",), "DEPTHWISE_CONV_2D": ("DepthwiseConv2D",), "ADD": ("Add",),
                "FULLY_CONNECTED": ("Dense",)}
# ai-edge-quantizer's validation builds two interpreters (all tensors kept) per image: ResNet-20 on digits,
# 16 images in 0.6 s on 2 loaded cores, so 64 images cost ~2.5 s; larger models scale with their activations.
DIAGNOSTIC_IMAGES = 64
INSTALL = "pip install 'keras-resnets[aeq]'"


def require():
    """The ``ai_edge_quantizer`` package, or ConfigError naming the extra that installs it."""
    try:
        import ai_edge_quantizer  # noqa: F401
        from ai_edge_quantizer import qtyping, quantizer, recipe
        from ai_edge_quantizer.utils import tfl_flatbuffer_utils, validation_utils
    except ImportError as error:
        raise ConfigError(f"--quantizer aeq needs ai-edge-quantizer ({error}); install it: {INSTALL}") from None
    return {"quantizer": quantizer, "recipe": recipe, "qtyping": qtyping, "flatbuffer": tfl_flatbuffer_utils,
            "validation": validation_utils}


@contextlib.contextmanager
def _quietly():
    """ai-edge-quantizer prints tqdm progress bars and a size report: keep the command's output to ours. Its
    calibration and validation keep every tensor on purpose, which LiteRT warns about each time."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            console.native_output_silenced(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
        yield


# ---- the graph ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One op of the float ``.tflite``: its position, kind, Keras layer and output tensor (the name ai-edge-quantizer
    selects ops by, its "scope")."""

    index: int
    kind: str
    layer: str
    tensor: str
    scope: str

    @property
    def regex(self) -> str:
        """A recipe regex that matches this op's scope and no other op's."""
        return "^" + re.escape(self.scope) + "$"


def _keras_layers(model) -> dict[str, str]:
    """{layer name: class name} of ``model`` and the models nested in it."""
    found: dict[str, str] = {}
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        found.setdefault(layer.name, type(layer).__name__)
        stack.extend(getattr(layer, "layers", []) or [])
    return found


def _layer_of(scope: str, kind: str, layers: dict[str, str]) -> str:
    """The Keras layer an op comes from. Converted tensor names are ``model_1/LAYER_1/TfOp`` joined by ``;`` for
    fused ops (conv + BN + ReLU); the layer whose class makes that kind of op wins, else the first one named."""
    matches: list[str] = []
    for part in scope.split(";"):
        for component in part.split("/"):
            if component in layers:
                matches.append(component)
                continue
            base = re.sub(r"_\d+$", "", component)
            if base in layers:
                matches.append(base)
    if not matches:
        return scope.split(";")[0]
    preferred = [m for m in matches if layers[m] in _KERAS_CLASS.get(kind, ())]
    return (preferred or matches)[0]


def graph_ops(aeq, content: bytes, model) -> list[Op]:
    """The ops of the float ``.tflite`` ``content`` (main subgraph), named after ``model``'s layers."""
    fb = aeq["flatbuffer"]
    flat = fb.read_model(content)
    graph = flat.subgraphs[0]
    layers = _keras_layers(model)
    ops = []
    for index, op in enumerate(graph.operators):
        code = flat.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        kind = getattr(fb.TFL_OP_CODE_TO_NAME.get(builtin), "value", None) or f"BUILTIN_{builtin}"
        scope = fb.get_op_scope(op, graph.tensors)
        tensor = fb.get_tensor_name(graph.tensors[op.outputs[0]]) if len(op.outputs) else ""
        ops.append(Op(index, kind, _layer_of(scope, kind, layers), tensor, scope))
    return ops


def select(ops: list[Op], patterns: tuple[str, ...] | None, flag: str) -> list[Op]:
    """The ops ``patterns`` name: ``stem`` (the first conv), ``classifier`` (the last dense op), or regexes searched
    in the layer names. A pattern that names nothing is an error, so a typo never passes silently."""
    chosen: dict[int, Op] = {}
    for pattern in patterns or ():
        if pattern == "stem":
            found = [op for op in ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")][:1]
        elif pattern == "classifier":
            found = [op for op in ops if op.kind == "FULLY_CONNECTED"][-1:]
        else:
            try:
                regex = re.compile(pattern)
            except re.error as error:
                raise ConfigError(f"{flag}: {pattern!r} is not a regular expression ({error})") from None
            found = [op for op in ops if regex.search(op.layer)]
        if not found:
            names = ", ".join(op.layer for op in ops if op.kind in DIAGNOSED)
            raise ConfigError(f"{flag}: {pattern!r} matches no op; layers: {names[:300]}")
        chosen.update((op.index, op) for op in found)
    return [chosen[i] for i in sorted(chosen)]


# ---- quantizing -----------------------------------------------------------------------------------------------


def io_type(spec: ConvertSpec) -> str:
    """The aeq model's input/output type: static_wi8_ai8 keeps ai-edge-quantizer's int8 I/O unless told otherwise;
    static_wi8_ai16 would have int16 I/O, which resnet-edge (like most device code) does not feed, so it gets
    float32 I/O; dynamic and weight-only models have float activations anyway."""
    recipe = spec.aeq_recipe or AEQ_RECIPES[0]
    return spec.io_type or ("int8" if recipe == "static_wi8_ai8" else "float32")


def _quantizer(aeq, float_content: bytes, recipe: str, int16: list[Op], floating: list[Op], float_io: bool):
    """A ``Quantizer`` with ``recipe`` for every op, int16 activations for ``int16`` and none for ``floating``
    (later recipe entries win in ai-edge-quantizer, so float beats int16 beats the recipe); ``float_io``: the
    model's input and output stay float32 (a QUANTIZE after the input, a DEQUANTIZE before the output)."""
    qtyping = aeq["qtyping"]
    names = qtyping.TFLOperationName
    no_quantize = aeq["quantizer"].AlgorithmName.NO_QUANTIZE
    q = aeq["quantizer"].Quantizer(bytearray(float_content), getattr(aeq["recipe"], RECIPES[recipe])())
    for op in int16:
        q.add_static_config(op.regex, names.ALL_SUPPORTED, activation_num_bits=16, weight_num_bits=8)
    for op in floating:
        q.update_quantization_recipe(op.regex, names.ALL_SUPPORTED, algorithm_key=no_quantize)
    if float_io:
        for boundary in (names.INPUT, names.OUTPUT):
            q.update_quantization_recipe(".*", boundary, algorithm_key=no_quantize)
    return q


def _signature_input(content: bytes) -> tuple[str, str]:
    """(signature key, input name) of the float model: the calibration and validation data are keyed by them."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=content).get_signature_list()
    if len(signatures) != 1:
        raise ModelFileError(f"the float .tflite has {len(signatures)} signatures; aeq needs exactly one")
    key, signature = next(iter(signatures.items()))
    if len(signature["inputs"]) != 1:
        raise ModelFileError(f"the float .tflite signature {key} has {len(signature['inputs'])} inputs; need 1")
    return key, signature["inputs"][0]


def _dataset(signature: tuple[str, str], images: np.ndarray) -> dict:
    key, name = signature
    return {key: [{name: image[None]} for image in images]}


def calibrate(aeq, quantizer, signature, calibration: np.ndarray | None, threads: int) -> dict | None:
    """Activation ranges from the calibration images (static recipes), or None when the recipe needs none."""
    if not quantizer.need_calibration:
        return None
    if calibration is None or not len(calibration):
        raise ConfigError("a static aeq recipe needs --calibration-data DATASET (or 'random' for latency-only work)")
    with _quietly():
        return quantizer.calibrate(_dataset(signature, calibration), num_threads=threads)


def quantize(quantizer, ranges: dict | None) -> bytes:
    try:
        with _quietly():
            return bytes(quantizer.quantize(ranges, enable_progress_report=False).quantized_model)
    except (ValueError, RuntimeError, KeyError) as error:  # unsupported op configs, missing ranges
        raise ModelFileError(f"ai-edge-quantizer failed: {str(error).splitlines()[0][:300]}") from error


# ---- diagnostics ----------------------------------------------------------------------------------------------


def _tensor_types(aeq, content: bytes) -> dict[str, str]:
    """{tensor name: int8/int16/float32/...} of a ``.tflite``'s main subgraph."""
    fb = aeq["flatbuffer"]
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = fb.read_model(content).subgraphs[0]
    return {fb.get_tensor_name(t): names.get(t.type, "?") for t in graph.tensors}


def diagnose(aeq, float_content: bytes, quantized: bytes, ops: list[Op], signature, images: np.ndarray,
             threads: int) -> list[dict]:
    """MSE and SNR against float of every conv, Add and dense op's output, from ai-edge-quantizer's validation
    on ``images`` (model-ready), worst SNR first. SNR is signal power / error power, averaged over the images by
    ai-edge-quantizer, here in dB; ``activations`` is the quantized output tensor's type."""
    metric = aeq["validation"].ValidationErrorMetric
    quantizer = aeq["quantizer"].Quantizer(bytearray(float_content), previous_quantized_model=bytearray(quantized))
    with _quietly():
        result = quantizer.validate(_dataset(signature, images), error_metrics=[metric.MSE, metric.SNR],
                                    num_threads=threads)
    tensors = result.get_all_tensor_results()
    types = _tensor_types(aeq, quantized)
    rows = []
    for op in ops:
        if op.kind not in DIAGNOSED:
            continue
        if op.tensor not in tensors:
            raise ModelFileError(f"ai-edge-quantizer's validation has no result for {op.layer} ({op.kind}); "
                                 f"the quantized graph renamed its output {op.tensor[:80]}")
        values = tensors[op.tensor]
        snr = values["snr"]
        rows.append({"layer": op.layer, "op": op.kind, "index": op.index, "activations": types.get(op.tensor, "?"),
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
        content = quantize(_quantizer(aeq, float_content, "static_wi8_ai8", int16, floating,
                                      io_type(spec) == "float32"), ranges)
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


# ---- the whole job --------------------------------------------------------------------------------------------


@dataclass
class AEQReport(Report):
    """A :class:`~keras_resnet.export.convert.Report` plus the aeq recipe, the per-layer diagnostics and the search."""

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


def convert_aeq(model_or_path, output: str, spec: ConvertSpec, *, force: bool = False,
                unsafe: bool = False) -> AEQReport:
    """:func:`keras_resnet.export.convert.convert` with ``quantizer="aeq"``: float32 conversion, ai-edge-quantizer with
    ``spec.aeq_recipe`` and the selective-precision options, optional diagnostics and search, metadata and
    validation in resnet-edge; ``output`` written atomically."""
    aeq = require()  # before any slow work: a missing extra is one error line
    recipe = spec.aeq_recipe or AEQ_RECIPES[0]
    static = recipe.startswith("static")
    search_on = spec.max_accuracy_drop is not None
    report_dir = spec.diagnostics
    if report_dir is not None:
        if os.path.exists(report_dir) and not os.path.isdir(report_dir):
            raise OutputError(f"--diagnostics {report_dir} is a file; give a folder")
        for name in ("diagnostics.json", "diagnostics.png"):
            if os.path.exists(os.path.join(report_dir, name)) and not force:
                raise OutputExistsError(f"{os.path.join(report_dir, name)} exists; pass --force to overwrite it")
    job = prepare_job(model_or_path, output, spec, force=force, unsafe=unsafe,
                      calibrate=lambda qat: _refuse_qat(qat) or static or search_on)
    if search_on and job.y_val is None:
        raise ConfigError("--max-accuracy-drop needs labelled validation images (--validation-data DATASET)")
    threshold = MIN_AGREEMENT["int8"] if spec.min_agreement is None else spec.min_agreement

    start = time.perf_counter()
    # TFLite has no int16 SPACE_TO_DEPTH: for int16 activations option A subsamples with a 1x1 MAX_POOL_2D
    float_content = convert_model(job.model, quantization="float32", temp_dir=job.folder,
                                  subsample="max_pool" if recipe == "static_wi8_ai16" else "space_to_depth")
    ops = graph_ops(aeq, float_content, job.model)
    signature = _signature_input(float_content)
    int16 = select(ops, spec.int16, "--int16")
    floating = select(ops, spec.keep_float, "--keep-float")
    int16 = [op for op in int16 if op not in floating]
    float_io = io_type(spec) == "float32"
    quantizer = _quantizer(aeq, float_content, recipe, int16, floating, float_io)
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
    result, latency = write_validated(content, output, job, threshold, threads=spec.threads, force=force)
    counts, floating_ops = op_summary(content)
    float_bytes = _float_bytes(job.model)
    report = AEQReport(
        output=os.fspath(output), quantization=f"aeq {name}", target="cpu", io_type=_io_type(aeq, content),
        size_bytes=len(content), float_bytes=float_bytes, size_ratio=len(content) / max(1, float_bytes),
        samples=len(job.x_val), validation=job.source, **result, latency_ms=latency, threads=spec.threads,
        convert_seconds=seconds, float_ops=floating_ops, ops=counts, metadata=True, recipe=recipe,
        int16_layers=[op.layer for op in int16], float_layers=[op.layer for op in floating], layers=rows,
        diagnostic_images=len(images) if rows else 0, search=[asdict(step) for step in steps],
        max_accuracy_drop=spec.max_accuracy_drop, diagnostics_dir=report_dir)
    if report_dir is not None:
        write_diagnostics(report, report_dir)
    return report


def _refuse_qat(qat: bool) -> bool:
    if qat:
        raise ConfigError("a QAT model is already quantized (it converts to int8 with the converter); "
                          "--quantizer aeq takes float models")
    return False


def _io_type(aeq, content: bytes) -> str:
    from ai_edge_litert.interpreter import Interpreter

    return np.dtype(Interpreter(model_content=content).get_input_details()[0]["dtype"]).name


def _reference_steps(job: Job, spec: ConvertSpec, workdir: str, float_content: bytes) -> list[Step]:
    """The converter's float32 and int8 (PTQ, same calibration images) rows of the search table."""
    int8 = convert_model(job.model, quantization="int8", io_type="int8", calibration=job.calibration,
                         temp_dir=workdir)
    return [_step("converter float32", "tflite", float_content, job, spec, workdir)[0],
            _step("converter int8", "tflite", int8, job, spec, workdir, budget=spec.max_accuracy_drop)[0]]


def write_diagnostics(report: AEQReport, folder: str) -> None:
    """``folder/diagnostics.json`` (layers worst first, the search table, the settings) and ``diagnostics.png``."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create --diagnostics folder {folder}: {error.strerror}") from error
    payload = {"model": report.output, "recipe": report.recipe, "quantization": report.quantization,
               "int16_layers": report.int16_layers, "float_layers": report.float_layers,
               "diagnostic_images": report.diagnostic_images, "validation": report.validation,
               "threads": report.threads, "max_accuracy_drop": report.max_accuracy_drop,
               "layers": report.layers, "search": report.search}
    atomic_write(os.path.join(folder, "diagnostics.json"), json.dumps(payload, indent=1, allow_nan=False) + "\n")
    plot_diagnostics(report.layers, os.path.join(folder, "diagnostics.png"),
                     f"{os.path.basename(report.output)}: {report.quantization}")
