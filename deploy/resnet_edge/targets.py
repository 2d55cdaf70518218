"""The three deployment targets of ``resnet-edge check``: each target's op table (ops, versions, limits, with the
sources they come from) and its rules, applied to a :class:`.flatbuffer.Graph`. ``check_cpu`` (XNNPACK or the
builtin kernels), ``check_gpu`` (the TFLite GPU delegate) and ``check_edgetpu`` (the Edge TPU compiler 16.0) add
:class:`.report.Finding` s to a report and return each op's status by op index.
"""

from __future__ import annotations

from .flatbuffer import Graph, Op
from .report import MB, Finding, Report

_EIGHT_BIT = ("INT8", "UINT8")

# Edge TPU compiler 16.0 (16.0.384591198, 2021). Ops: the "Supported operations" table of coral.ai's "TensorFlow
# models on the Edge TPU" (https://coral.ai/docs/edgetpu/models-intro/#supported-operations). Versions: the compiler
# parses models with a TFLite op registry of its time (TF 2.5) and rejects newer op versions before compiling
# ("Didn't find op for builtin opcode 'X' version 'N' ... Model could not be parsed"). Rejections reported against
# 16.0: CONV_2D v6 (google-coral/edgetpu#631), TRANSPOSE_CONV v4 (google-coral/edgetpu#845), QUANTIZE v3
# (google-coral/edgetpu#879), EXP v2 (google-coral/libedgetpu#71); the other maxima are that registry's. The value
# is the highest version the compiler takes; a tuple's second item says what limits mapping to the TPU.
EDGETPU_OPS: dict[str, tuple[int, str]] = {
    "ADD": (4, ""), "AVERAGE_POOL_2D": (3, "no fused activation"), "CONCATENATION": (3, "no fused activation"),
    "CONV_2D": (5, ""), "DEPTHWISE_CONV_2D": (6, "dilation must be 1"), "EXPAND_DIMS": (1, ""),
    "FULLY_CONNECTED": (9, "default weights format only"), "L2_NORMALIZATION": (2, ""), "LOGISTIC": (3, ""),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (3, ""), "MAXIMUM": (4, ""), "MAX_POOL_2D": (3, "no fused activation"),
    "MEAN": (3, "reduction along x and/or y only"), "MINIMUM": (4, ""), "MUL": (4, ""), "PACK": (2, ""),
    "PAD": (2, "padding along x and/or y only"), "PRELU": (1, ""), "QUANTIZE": (2, ""), "REDUCE_MAX": (2, ""),
    "REDUCE_MIN": (2, ""), "RELU": (2, ""), "RELU6": (2, ""), "RELU_N1_TO_1": (1, ""), "RESHAPE": (1, ""),
    "RESIZE_BILINEAR": (3, "3-D input/output"), "RESIZE_NEAREST_NEIGHBOR": (3, "3-D input/output"),
    "RSQRT": (2, ""), "SLICE": (4, ""), "SOFTMAX": (2, "1-D input, at most 16,000 elements"),
    "SPACE_TO_DEPTH": (2, ""), "SPLIT": (3, ""), "SQUEEZE": (1, ""), "SQUARED_DIFFERENCE": (1, ""),
    "STRIDED_SLICE": (4, "stride 1 on non-spatial axes"), "SUB": (3, ""), "SUM": (2, ""), "TANH": (3, ""),
    "TRANSPOSE": (4, "no transposition of the batch dimension"), "TRANSPOSE_CONV": (3, ""),
}
EDGETPU_CUSTOM_OP = "CUSTOM:edgetpu-custom-op"  # what edgetpu_compiler puts in place of the ops it mapped
EDGETPU_CACHE_BYTES = 8 * MB  # on-chip parameter SRAM ("roughly 8 MB", coral.ai models-intro, "parameter data caching")
EDGETPU_MAX_RANK_ABOVE_1 = 3  # "only the 3 innermost dimensions may have a size greater than 1" (models-intro)

# TFLite GPU delegate (tensorflow/lite/delegates/gpu/common/model_builder.cc, LiteRT 2.x): ops it builds; the others
# run on the CPU between GPU partitions, each boundary a copy between GPU and CPU memory.
GPU_OPS = frozenset("""
ABS ADD AVERAGE_POOL_2D BATCH_MATMUL CAST CONCATENATION CONV_2D COS CUMSUM DENSIFY DEPTH_TO_SPACE DEPTHWISE_CONV_2D
DEQUANTIZE DIV ELU EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GREATER GREATER_EQUAL HARD_SWISH LESS
LESS_EQUAL LOG LOGICAL_AND LOGISTIC LEAKY_RELU MAX_POOL_2D MAXIMUM MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT
PACK PAD PADV2 POW PRELU QUANTIZE REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
RESIZE_NEAREST_NEIGHBOR RSQRT SELECT_V2 SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE
SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV
""".split())
GPU_MAX_RANK = 4

# XNNPACK, the CPU delegate of ai-edge-litert and tflite-runtime (tensorflow/lite/delegates/xnnpack/
# xnnpack_delegate.cc): ops it takes; the others run on the runtime's reference/optimized builtin kernels and split
# the graph into several XNNPACK partitions. Measured with ai-edge-litert 2.3: 1x1 pooling with stride > 1 and
# STRIDED_SLICE with a stride other than 1 (the two subsamplings of option-A shortcuts in files saved by earlier
# keras_resnet versions, or by other tools), the int8 SOFTMAX and uint8<->int8 QUANTIZE ops (uint8 I/O) stay
# outside; deploy/tests/test_check.py and tests/test_check.py compare this table with the runtime.
XNNPACK_OPS = frozenset("""
ABS ADD AVERAGE_POOL_2D BATCH_MATMUL CEIL CONCATENATION CONV_2D DEPTH_TO_SPACE DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU
EXP FLOOR FULLY_CONNECTED GELU HARD_SWISH LEAKY_RELU LOGISTIC MAX_POOL_2D MAXIMUM MEAN MINIMUM MUL NEG PAD PRELU
QUANTIZE RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR ROUND RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQRT SQUARE
SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM TANH TRANSPOSE TRANSPOSE_CONV
""".split())
XNNPACK_FLOAT_ONLY = frozenset({"SOFTMAX", "ELU", "GELU", "EXP", "DIV", "LOGISTIC", "TANH", "RSQRT", "SQRT"})


def _io_findings(g: Graph, report: Report, integer_io: bool) -> None:
    for kind, indices in (("input", g.inputs), ("output", g.outputs)):
        for i in indices:
            t = g.tensors[i]
            if -1 in t.signature:
                report.findings.append(Finding("error", f"{kind} {t.name!r} has a dynamic shape {list(t.signature)}"
                                                        " (-1); convert with a fixed batch of 1"))
            elif kind == "input" and t.shape and t.shape[0] != 1:
                report.findings.append(Finding("error", f"input {t.name!r} has batch {t.shape[0]}; batch 1 needed"))
            if integer_io and t.type not in _EIGHT_BIT:
                report.findings.append(Finding("error", f"{kind} {t.name!r} is {t.type}; int8 or uint8 I/O needed "
                                                        "(--io-type int8|uint8)"))


def _special(op: Op) -> Finding | None:
    """FLEX (SELECT_TF_OPS) and custom ops: no runtime that resnet-edge uses has their kernels."""
    if op.name.startswith("FLEX:"):
        return Finding("error", f"TensorFlow (SELECT_TF_OPS) op {op.name[5:]}: needs the Flex delegate, which "
                                "ai-edge-litert, tflite-runtime and the Edge TPU compiler lack", op.label)
    if op.name == EDGETPU_CUSTOM_OP:
        return Finding("error", "compiled for the Edge TPU: runs only with the Edge TPU delegate "
                                "(--delegate libedgetpu.so.1)", op.label)
    if op.name.startswith("CUSTOM:"):
        return Finding("error", f"custom op {op.name[7:]!r}: needs its kernel registered in the runtime", op.label)
    return None


def _refuse_special(op: Op, report: Report, status: dict[int, str]) -> bool:
    """Record a FLEX/custom op as an error of every target; True when ``op`` was one."""
    special = _special(op)
    if special:
        report.findings.append(special)
        status[op.index] = "error: " + special.message.split(":")[0]
    return special is not None


def check_edgetpu(g: Graph, report: Report) -> dict[int, str]:
    _io_findings(g, report, integer_io=True)
    status: dict[int, str] = {}
    if g.subgraphs > 1:
        report.findings.append(Finding("fallback", f"{g.subgraphs} subgraphs (control flow): only the first is "
                                                   "compiled"))
    first_cpu = None
    for op in g.ops:
        if op.name == EDGETPU_CUSTOM_OP:  # the output of edgetpu_compiler: this part is already on the TPU
            status[op.index] = "Edge TPU (compiled)"
            report.findings.append(Finding("note", "already compiled by edgetpu_compiler: this op is the Edge TPU "
                                                   "subgraph", op.label))
            continue
        if _refuse_special(op, report, status):
            continue
        entry = EDGETPU_OPS.get(op.name)
        types = {g.tensors[t].type for t in op.inputs + op.outputs if t >= 0 and not g.tensors[t].constant_bytes}
        big = [g.tensors[t] for t in op.inputs + op.outputs if t >= 0 and not g.tensors[t].constant_bytes
               and sum(d > 1 for d in g.tensors[t].shape) > EDGETPU_MAX_RANK_ABOVE_1]  # activations only
        if entry is not None and op.version > entry[0]:
            report.findings.append(Finding("error", f"version {op.version}: the Edge TPU compiler 16.0 takes "
                                                    f"{op.name} up to version {entry[0]} and rejects the whole model "
                                                    "('Didn't find op for builtin opcode')", op.label))
            status[op.index] = "error: op version not supported"
            continue
        other = types - {"INT8", "UINT8", "INT32"}
        if other & {"FLOAT32", "FLOAT16"} and op.name not in ("QUANTIZE", "DEQUANTIZE"):
            report.findings.append(Finding("error", f"{'/'.join(sorted(other))} tensors: the compiler needs a fully "
                                                    "8-bit quantized model", op.label))
            status[op.index] = "error: not quantized"
            continue
        if other:
            reason = f"{'/'.join(sorted(other))} tensors"
        elif entry is None:
            reason = "operation not supported by the Edge TPU"
        elif big:
            reason = f"tensor {list(big[0].shape)} has more than 3 dimensions above 1"
        else:
            reason = ""
        if reason:
            first_cpu = op if first_cpu is None else first_cpu
            report.findings.append(Finding("fallback", reason + "; runs on the CPU", op.label))
            status[op.index] = "fallback: CPU"
        elif first_cpu is not None:
            status[op.index] = "fallback: after the first CPU op (without -a, one TPU subgraph)"
        else:
            status[op.index] = "Edge TPU" + (f" ({entry[1]})" if entry[1] else "")
    if first_cpu is not None:
        later = sum(s.startswith("fallback: after") for s in status.values())
        if later:
            report.findings.append(Finding("fallback", f"{later} supported ops after {first_cpu.label} also run on "
                                                       "the CPU: the compiler maps one subgraph, up to the first "
                                                       "unsupported op (edgetpu_compiler -a maps more subgraphs)"))
    cache = EDGETPU_CACHE_BYTES
    spill = max(0, g.parameter_bytes - cache)
    report.extra["edgetpu"] = {"cache_bytes": cache, "parameter_bytes": g.parameter_bytes, "off_chip_estimate": spill}
    if spill:
        report.findings.append(Finding("note", f"parameters {g.parameter_bytes / MB:.1f} MB exceed the ~8 MB on-chip "
                                               f"cache: about {spill / MB:.1f} MB (or more: activations share the "
                                               "SRAM) stream from host memory on every inference"))
    else:
        report.findings.append(Finding("note", f"parameters {g.parameter_bytes / MB:.2f} MB fit the ~8 MB on-chip "
                                               "cache"))
    return status


def check_gpu(g: Graph, report: Report) -> dict[int, str]:
    _io_findings(g, report, integer_io=False)
    report.findings = [f for f in report.findings if "dynamic" in f.message]  # batch/IO type are fine on GPU
    for f in report.findings:
        f.severity, f.message = "fallback", f.message.split(";")[0] + "; the GPU delegate needs static shapes"
    status: dict[int, str] = {}
    quantized = False
    for op in g.ops:
        if _refuse_special(op, report, status):
            continue
        types = {g.tensors[t].type for t in op.inputs + op.outputs if t >= 0}
        quantized |= bool(types & set(_EIGHT_BIT))
        deep = [g.tensors[t] for t in op.inputs + op.outputs if t >= 0 and len(g.tensors[t].shape) > GPU_MAX_RANK]
        if op.name not in GPU_OPS:
            reason = "not supported by the GPU delegate"
        elif deep:
            reason = f"rank-{len(deep[0].shape)} tensor (the GPU delegate takes at most {GPU_MAX_RANK})"
        elif types & {"INT64", "STRING", "BOOL", "COMPLEX64"} and op.name not in ("CAST",):
            reason = f"tensor types {sorted(types)}"
        else:
            status[op.index] = "GPU"
            continue
        report.findings.append(Finding("fallback", reason + "; runs on the CPU", op.label))
        status[op.index] = "fallback: CPU"
    if quantized:
        report.findings.append(Finding("note", "8-bit tensors: the GPU delegate dequantizes them and computes in "
                                               "float16/float32 (convert with --target gpu for float16 weights)"))
    return status


def check_cpu(g: Graph, report: Report) -> dict[int, str]:
    status: dict[int, str] = {}
    for t in g.inputs:
        if -1 in g.tensors[t].signature[1:]:
            report.findings.append(Finding("note", f"input {g.tensors[t].name!r} has dynamic spatial dimensions "
                                                   f"{list(g.tensors[t].signature)}"))
    for op in g.ops:
        if _refuse_special(op, report, status):
            continue
        types = {g.tensors[t].type for t in op.inputs + op.outputs if t >= 0 and not g.tensors[t].constant_bytes}
        if op.name not in XNNPACK_OPS:
            reason = "XNNPACK does not take this op"
        elif op.pool is not None and op.pool[:2] == (1, 1) and max(op.pool[2:]) > 1:
            reason = ("1x1 pooling with stride > 1 (a subsampling): XNNPACK refuses 1x1 pooling windows; the graph "
                      "splits into one more XNNPACK partition here")
        elif op.strides is not None and any(step != 1 for step in op.strides):
            reason = (f"strided slice with strides {list(op.strides)}: XNNPACK slices with stride 1 only; the graph "
                      f"splits into one more XNNPACK partition here")
        elif op.name in XNNPACK_FLOAT_ONLY and types & set(_EIGHT_BIT):
            reason = f"XNNPACK takes {op.name} in float only"
        elif op.name == "QUANTIZE" and len({g.tensors[t].type for t in op.inputs[:1] + op.outputs[:1]} & {
                "INT8", "UINT8"}) == 2:
            reason = "uint8/int8 conversion (8-bit I/O of another signedness): XNNPACK quantizes from float only"
        else:
            status[op.index] = "XNNPACK"
            continue
        report.findings.append(Finding("fallback", reason + "; runs on the builtin kernels", op.label))
        status[op.index] = "fallback: builtin kernels"
    return status


CHECKS = {"cpu": check_cpu, "gpu": check_gpu, "edgetpu": check_edgetpu}
