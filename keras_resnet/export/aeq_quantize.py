"""ai-edge-quantizer's recipes applied to a float ``.tflite``: the graph's ops named after the Keras layers, op
selection by layer pattern, the quantizer with selective precision, calibration and quantization.

ai-edge-quantizer is PyPI ``ai-edge-quantizer`` (the ``aeq`` extra), imported here only (:func:`require`). The whole
job (float conversion, diagnostics, the mixed-precision search, validation) is :mod:`keras_resnet.export.aeq`.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np

from keras_resnet.core import console
from keras_resnet.core.errors import ConfigError, ModelFileError
from keras_resnet.spec.conversion import AEQ_RECIPES

# --recipe → the ai_edge_quantizer.recipe function behind it.
RECIPES = {"static_wi8_ai8": "static_wi8_ai8", "static_wi8_ai16": "static_wi8_ai16",
           "dynamic_wi8": "dynamic_wi8_afp32", "weight_only_wi8": "weight_only_wi8_afp32"}
assert tuple(RECIPES) == AEQ_RECIPES
DIAGNOSED = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "FULLY_CONNECTED")  # the ops the diagnostics list
_KERAS_CLASS = {"CONV_2D": ("Conv2D",), "DEPTHWISE_CONV_2D": ("DepthwiseConv2D",), "ADD": ("Add",),
                "FULLY_CONNECTED": ("Dense",)}
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
def quietly():
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
    """The ops of the float ``.tflite`` ``content`` (main subgraph), named after ``model``'s layers. The scopes are
    ai-edge-quantizer's own (its flatbuffer utilities), so that recipe regexes select exactly these ops."""
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


def build_quantizer(aeq, float_content: bytes, recipe: str, int16: list[Op], floating: list[Op], float_io: bool):
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


def signature_input(content: bytes) -> tuple[str, str]:
    """(signature key, input name) of the float model: the calibration and validation data are keyed by them."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=content).get_signature_list()
    if len(signatures) != 1:
        raise ModelFileError(f"the float .tflite has {len(signatures)} signatures; aeq needs exactly one")
    key, signature = next(iter(signatures.items()))
    if len(signature["inputs"]) != 1:
        raise ModelFileError(f"the float .tflite signature {key} has {len(signature['inputs'])} inputs; need 1")
    return key, signature["inputs"][0]


def dataset(signature: tuple[str, str], images: np.ndarray) -> dict:
    """``images`` (model-ready) as ai-edge-quantizer's calibration / validation data for ``signature``."""
    key, name = signature
    return {key: [{name: image[None]} for image in images]}


def calibrate(aeq, quantizer, signature, calibration: np.ndarray | None, threads: int) -> dict | None:
    """Activation ranges from the calibration images (static recipes), or None when the recipe needs none."""
    if not quantizer.need_calibration:
        return None
    if calibration is None or not len(calibration):
        raise ConfigError("a static aeq recipe needs --calibration-data DATASET (or 'random' for latency-only work)")
    with quietly():
        return quantizer.calibrate(dataset(signature, calibration), num_threads=threads)


def quantize(quantizer, ranges: dict | None) -> bytes:
    try:
        with quietly():
            return bytes(quantizer.quantize(ranges, enable_progress_report=False).quantized_model)
    except (ValueError, RuntimeError, KeyError) as error:  # unsupported op configs, missing ranges
        raise ModelFileError(f"ai-edge-quantizer failed: {str(error).splitlines()[0][:300]}") from error
