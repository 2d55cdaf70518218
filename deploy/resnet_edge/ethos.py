"""The Arm Ethos-U targets of ``resnet-edge check`` (``ethos-u55-32`` … ``ethos-u85-2048``): Vela 5.2's table of
the TFLite ops it places on the NPU and the constraints a ResNet can meet or miss, applied to a
:class:`.flatbuffer.Graph` without Vela. Every other op, and every op that misses a constraint, runs on the CPU of
the system (a Cortex-M or Cortex-A) instead. When Vela is installed, :mod:`.vela` compiles the file and cross-checks
this table.

Source: ``vela --supported-ops-report`` of ethos-u-vela 5.2.0 (SUPPORTED_OPS.md, generated from Vela's own
``tflite_supported_operators.py`` for U55/U65 and its regor backend for U85): the "TFLite Summary Table" op lists and
the generic and per-op constraints quoted below. Ops absent from both lists (SPACE_TO_DEPTH among them: option A's
CPU trace, "Unsupported opType") are left on the CPU.
"""

from __future__ import annotations

from .choices import ETHOS_U_TARGETS
from .flatbuffer import Graph, Op
from .report import Finding, Report
from .targets import _refuse_special

# "Ethos-U55 and Ethos-U65 TFLite Summary Table" of Vela 5.2.0's SUPPORTED_OPS.md.
U55_U65_OPS = frozenset("""
ABS ADD ARG_MAX AVERAGE_POOL_2D BATCH_MATMUL CONCATENATION CONV_2D DEPTHWISE_CONV_2D ELU EXP EXPAND_DIMS
FULLY_CONNECTED GELU HARD_SWISH LEAKY_RELU LOG LOGISTIC MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG PACK PAD
PADV2 PRELU QUANTIZE REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_0_TO_1 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
RESIZE_NEAREST_NEIGHBOR REVERSE_V2 RSQRT SLICE SOFTMAX SPLIT SPLIT_V SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM
TANH TILE TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK
""".split())
# "Ethos-U85 TFLite Summary Table" of the same report.
U85_OPS = frozenset("""
ABS ADD ARG_MAX ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL CAST CONCATENATION CONV_2D DEPTHWISE_CONV_2D DIV ELU
EQUAL EXP EXPAND_DIMS FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG
LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2
PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_ANY REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_0_TO_1 RELU_N1_TO_1 RESHAPE
RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 RSQRT SCATTER_ND SELECT SELECT_V2 SLICE SOFTMAX SPLIT SPLIT_V
SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK
""".split())
# Generic constraint: 'Feature-map dataTypes must be one of {...}' (U85 adds BOOL). Constants (weights, biases,
# parameters) are not feature maps.
FEATURE_MAP_TYPES = {"u55": frozenset({"INT16", "INT32", "INT64", "INT8", "UINT8"}),
                     "u85": frozenset({"BOOL", "INT16", "INT32", "INT64", "INT8", "UINT8"})}
# U55/U65: '32-bit feature-maps are not supported' for these ops (their specific constraints), so int32 I/O or an
# int32 activation leaves them on the CPU.
U55_NO_32BIT = frozenset("""
ABS AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D ELU EXP GELU HARD_SWISH LEAKY_RELU LOG LOGISTIC MAXIMUM
MAX_POOL_2D MEAN MINIMUM PAD PADV2 PRELU REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_0_TO_1 RELU_N1_TO_1 RSQRT SOFTMAX SUM
TANH TRANSPOSE_CONV
""".split())
POOL_KERNEL_MAX = (256 * 256, 256)  # MAX/AVERAGE_POOL_2D (VALID): kernel product <= 256*256, kernel height <= 256
SOFTMAX_MAX_HW = 65536  # SOFTMAX: 'The product of IFM width and height must be less than 65536'
MEAN_MAX_AXIS = 4096  # MEAN: 'Reduced axis must be less than 4096'
# The main constraints, as the report states them, for the report's notes and docs/deploy.md.
CONSTRAINTS = (
    "Feature-map dataTypes must be one of INT8, UINT8, INT16 (INT32/INT64 for a few ops); float tensors stay on "
    "the CPU",
    "Only the first dimension of tensors can be dynamic; tensors must have constant shape",
    "Input(s), Output and Weight tensors must have quantization parameters; per-axis quantization only for "
    "CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV",
    "CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: 8-bit weights, constant int32/int64 bias",
    "MAX_POOL_2D / AVERAGE_POOL_2D: kernel product <= 256*256, kernel height <= 256",
    "MEAN: batch 1, reduced axis < 4096; SOFTMAX: IFM width x height < 65536",
    "STRIDED_SLICE: constant parameters, non-negative strides",
)


def family(target: str) -> str:
    """``u55`` (Ethos-U55 and U65 share Vela's table) or ``u85``; ValueError for a target that is not an Ethos-U."""
    if target not in ETHOS_U_TARGETS:
        raise ValueError(f"{target!r} is not an Ethos-U target ({', '.join(ETHOS_U_TARGETS)})")
    return "u85" if target.startswith("ethos-u85") else "u55"


def _cpu_reason(g: Graph, op: Op, kind: str) -> str:
    """Why ``op`` stays on the CPU per Vela 5.2's table and constraints; "" when it maps to the NPU."""
    ops = U85_OPS if kind == "u85" else U55_U65_OPS
    if op.name not in ops:
        return "Unsupported opType (not in Vela 5.2's table)"
    maps = [g.tensors[t] for t in op.inputs + op.outputs if t >= 0 and not g.tensors[t].constant_bytes]
    other = sorted({t.type for t in maps} - FEATURE_MAP_TYPES[kind])
    if other:
        return f"Operation has tensor with unsupported DataType {'/'.join(other)}"
    if any(-1 in t.signature[1:] for t in maps):
        return "Only the first dimension of tensors can be dynamic"
    if kind == "u55" and op.name in U55_NO_32BIT and any(t.type in ("INT32", "INT64") for t in maps):
        return "32-bit feature-maps are not supported"
    if op.pool is not None and (op.pool[0] * op.pool[1] > POOL_KERNEL_MAX[0] or op.pool[0] > POOL_KERNEL_MAX[1]):
        return "kernel product must be <= 256*256 and kernel height <= 256"
    if op.strides is not None and any(step < 0 for step in op.strides):
        return "Stride must be non-negative"
    first = g.tensors[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else None
    if op.name == "SOFTMAX" and first is not None and len(first.shape) >= 3:
        if first.shape[-2] * first.shape[-3] >= SOFTMAX_MAX_HW:
            return "The product of IFM width and height must be less than 65536"
    if op.name == "MEAN" and first is not None and first.shape and first.shape[0] > 1:
        return "MEAN: batch must be 1"
    return ""


def check_ethos(g: Graph, report: Report) -> dict[int, str]:
    """The target's Ethos-U contract: each op ``NPU`` or ``fallback: CPU`` (with Vela's reason as a finding)."""
    kind = family(report.target)
    status: dict[int, str] = {}
    for t in g.inputs:
        signature = g.tensors[t].signature
        if signature and signature[0] == -1:
            report.findings.append(Finding("note", f"input {g.tensors[t].name!r} has a dynamic batch: Vela compiles "
                                                   "it for batch 1"))
    for op in g.ops:
        if _refuse_special(op, report, status):
            continue
        reason = _cpu_reason(g, op, kind)
        if reason:
            report.findings.append(Finding("fallback", reason + "; runs on the CPU, not the NPU", op.label))
            status[op.index] = "fallback: CPU"
        else:
            status[op.index] = "NPU"
    npu = sum(s == "NPU" for s in status.values())
    report.extra["ethos_u"] = {"family": kind, "npu_ops": npu, "cpu_ops": len(g.ops) - npu, "checked_with": "tables"}
    return status


def on_npu(status: str) -> bool:
    """Whether a per-op status of :func:`check_ethos` (or Vela's, ``NPU (Vela)``) means the NPU."""
    return status.startswith("NPU")
