"""The microcontroller target of ``resnet-edge check --target mcu``: TensorFlow Lite Micro's op table and the int8-only
rules of ``keras-resnet convert --target mcu``, applied to a :class:`.flatbuffer.Graph` from the file alone (no TFLM,
no runtime), and the ``tflite::MicroMutableOpResolver`` registrations a device program needs for a file.

TFLM ignores op versions (``MicroMutableOpResolver::FindOp`` matches the builtin code only), so only the op, the
tensor types and the shapes count. Measuring the tensor arena needs TFLM itself: ``keras-resnet convert --target
mcu`` runs the file it has just converted in the ``tflite-micro`` interpreter (keras_resnet/export/micro.py).
"""

from __future__ import annotations

from .flatbuffer import Graph, Op
from .report import Finding, Report
from .targets import _io_findings, _refuse_special

# tflite-micro (github.com/tensorflow/tflite-micro, tensorflow/lite/micro/micro_mutable_op_resolver.h): the builtin
# ops that MicroMutableOpResolver registers, with the method that registers each. The op set is the one the tested
# wheel (tflite-micro 0.dev20261023182759, setup.cfg's [micro]) links a kernel for (a ``tflite::Register_<OP>``
# symbol in its _runtime.so; deploy/tests/test_micro.py compares the two); the method names follow the header.
MICRO_OPS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce", "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D", "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu", "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather", "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish", "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable", "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv", "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack", "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}
# Tensor types of an int8 model's activations: int8, plus int32 for shapes, indices and arg-max outputs.
_INT8_MODEL_TYPES = {"INT8", "INT32"}


def resolver_registrations(g: Graph) -> list[str]:
    """The ``MicroMutableOpResolver`` methods (``AddConv2D``, ...) that register every builtin op of ``g``, once
    each, in the order the ops first occur; ValueError naming an op TFLM has no kernel for."""
    methods: list[str] = []
    for op in g.ops:
        method = MICRO_OPS.get(op.name)
        if method is None:
            raise ValueError(f"{op.label}: TensorFlow Lite Micro has no kernel for {op.name}")
        if method not in methods:
            methods.append(method)
    return methods


def _op_status(g: Graph, op: Op, report: Report) -> str:
    if op.name not in MICRO_OPS:
        report.findings.append(Finding("error", "TensorFlow Lite Micro has no kernel for this op "
                                                "(MicroMutableOpResolver cannot register it)", op.label))
        return "error: no TFLM kernel"
    types = {g.tensors[t].type for t in op.inputs + op.outputs if t >= 0 and not g.tensors[t].constant_bytes}
    other = types - _INT8_MODEL_TYPES - ({"UINT8"} if op.name == "QUANTIZE" else set())
    if other:
        report.findings.append(Finding("error", f"{'/'.join(sorted(other))} tensors: the mcu target is full int8 "
                                                "(convert with --target mcu)", op.label))
        return "error: not int8"
    return f"TFLM ({MICRO_OPS[op.name]})"


def check_mcu(g: Graph, report: Report) -> dict[int, str]:
    """TFLM's op table, int8 tensors throughout, int8 I/O, batch 1 and static shapes; the registrations go into
    ``report.extra["mcu"]`` beside the flash size (the file's bytes)."""
    _io_findings(g, report, integer_io=True)
    for i in g.inputs + g.outputs:
        t = g.tensors[i]
        if t.type == "UINT8":
            report.findings.append(Finding("note", f"{t.name!r} is uint8: TFLM runs it through a QUANTIZE op; "
                                                   "convert --target mcu makes int8 I/O"))
    status: dict[int, str] = {}
    if g.subgraphs > 1:
        report.findings.append(Finding("note", f"{g.subgraphs} subgraphs (control flow): TFLM runs them through "
                                               "IF/WHILE/CALL_ONCE; only the first is checked"))
    for op in g.ops:
        if not _refuse_special(op, report, status):
            status[op.index] = _op_status(g, op, report)
    methods = list(dict.fromkeys(MICRO_OPS[op.name] for op in g.ops if op.name in MICRO_OPS))
    report.extra["mcu"] = {"flash_bytes": g.file_bytes, "parameter_bytes": g.parameter_bytes,
                           "resolver": methods, "resolver_size": len(methods)}
    report.findings.append(Finding("note", f"flash {g.file_bytes / 1024:.1f} KiB (the file); "
                                           f"MicroMutableOpResolver<{len(methods)}>: {', '.join(methods)}"))
    report.findings.append(Finding("note", "checked against TFLM's op table only: the tensor arena needs TFLM "
                                           "(keras-resnet convert --target mcu measures it)"))
    return status
