"""The TFLite flatbuffer as a graph: subgraph 0's ops (with versions and the options the checks need), tensors,
inputs, outputs and constant bytes, read without TensorFlow or a runtime. The one reader of ``.tflite`` graphs:
``resnet-edge check`` (:mod:`.check`) and keras_resnet's export layer use it. Every offset and index it follows is
bounds-checked first by :func:`.metadata.check_model`; a malformed file is a ValueError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .files import read_regular_file
from .metadata import _Reader, _root, check_model

MAX_FILE_BYTES = 2 << 30  # a flatbuffer addresses at most 2 GiB; larger files are refused before reading

# BuiltinOperator of tensorflow/lite/schema/schema.fbs (LiteRT 2.3), by code.
BUILTIN_OPS = tuple("""
    ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE EMBEDDING_LOOKUP FLOOR
    FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION LOGISTIC
    LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH
    SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER
    BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE
    BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM
    ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE
    TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK
    LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL
    FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL
    REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND
    HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM
    BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS
    HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE
    ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU
    DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2
    UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR RIGHT_SHIFT STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE
    STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM STABLEHLO_RESHAPE STABLEHLO_CLAMP STABLEHLO_CONCATENATE
    STABLEHLO_BROADCAST_IN_DIM STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE
    STABLEHLO_ABS STABLEHLO_AND STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG
    STABLEHLO_MINIMUM STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT
    STABLEHLO_SELECT STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT
    STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA STABLEHLO_DOT_GENERAL
    STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE STABLEHLO_GATHER STABLEHLO_TRANSPOSE DILATE
    STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE
""".split())
TENSOR_TYPES = ("FLOAT32 FLOAT16 INT32 UINT8 INT64 STRING BOOL INT16 COMPLEX64 INT8 FLOAT64 COMPLEX128 UINT64 "
                "RESOURCE VARIANT UINT32 UINT16 INT4 BFLOAT16 INT2 UINT4 FLOAT8_E4M3FN FLOAT8_E5M2").split()
@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    signature: tuple[int, ...]  # shape_signature (-1: dynamic), or the shape
    type: str
    constant_bytes: int  # bytes of its buffer (0: not a constant)
    buffer: int


@dataclass(frozen=True)
class Op:
    index: int
    name: str  # BUILTIN name, or CUSTOM:code / FLEX:TfOp
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    pool: tuple[int, int, int, int] | None = None  # (filter_h, filter_w, stride_h, stride_w) of pooling ops
    strides: tuple[int, ...] | None = None  # STRIDED_SLICE's constant strides

    @property
    def label(self) -> str:
        return f"{self.name}#{self.index}"


@dataclass
class Graph:
    ops: list[Op]
    tensors: list[Tensor]
    inputs: list[int]
    outputs: list[int]
    subgraphs: int
    file_bytes: int
    parameter_bytes: int  # constant buffers, each counted once


def read_file(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's bytes, refusing (ValueError) anything else and files over ``max_bytes`` before reading."""
    try:
        size = os.stat(path).st_size
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror or error}") from None
    if size > max_bytes:
        raise ValueError(f"{path}: {size:,} bytes, more than a TFLite flatbuffer can address ({max_bytes:,})")
    try:
        return read_regular_file(os.fspath(path), max_bytes=max_bytes)
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror or error}") from None


def _text(r: _Reader, table: int, field_id: int, what: str, limit: int = 200) -> str:
    raw = r.bytes_(table, field_id, what) or b""
    return raw[:limit].decode("utf-8", "replace")


def read_graph(content: bytes) -> Graph:
    """Subgraph 0 of a TFLite flatbuffer: ops (with versions), tensors, I/O. ValueError when malformed."""
    check_model(content)  # every offset and index the walk below follows is checked there first
    r = _Reader(content)
    model = _root(r)
    buffers = r.tables(model, 4, "buffers")
    codes = []
    for code in r.tables(model, 1, "operator_codes"):
        builtin = max(r.scalar(code, 0, "u8"), r.scalar(code, 3, "i32"))
        version = r.scalar(code, 2, "i32", 1)
        if builtin == 32:  # CUSTOM
            custom = _text(r, code, 1, "custom code")
            name = f"FLEX:{custom[4:]}" if custom.startswith("Flex") else f"CUSTOM:{custom}"
        else:
            name = BUILTIN_OPS[builtin] if 0 <= builtin < len(BUILTIN_OPS) else f"BUILTIN_{builtin}"
        codes.append((name, version))
    subgraphs = r.tables(model, 2, "subgraphs")
    sg = subgraphs[0]
    sizes: dict[int, int] = {}
    tensors = []
    for t in r.tables(sg, 0, "tensors"):
        shape = tuple(r.ints(t, 0, "tensor shape"))
        signature = tuple(r.ints(t, 7, "tensor shape signature")) or shape
        type_ = r.scalar(t, 1, "u8")
        index = r.scalar(t, 2, "u32")
        if index and index not in sizes:
            buffer = buffers[index]
            offset, size = r.scalar(buffer, 1, "u64"), r.scalar(buffer, 2, "u64")
            sizes[index] = size if offset > 1 else r.vector(buffer, 0, 1, "buffer data")[1]
        tensors.append(Tensor(_text(r, t, 3, "tensor name"), shape, signature,
                              TENSOR_TYPES[type_] if type_ < len(TENSOR_TYPES) else f"TYPE_{type_}",
                              sizes.get(index, 0), index))
    def small_ints(t: int) -> tuple[int, ...] | None:
        """The values of a small constant INT32 tensor stored in the flatbuffer, else None."""
        if not 0 <= t < len(tensors) or tensors[t].type != "INT32" or not 0 < tensors[t].constant_bytes <= 64:
            return None
        buffer = buffers[tensors[t].buffer]
        if r.scalar(buffer, 1, "u64") > 1:  # data outside the flatbuffer
            return None
        start, length = r.vector(buffer, 0, 1, "buffer data")
        return tuple(r.i32(start + 4 * i) for i in range(length // 4))

    ops = []
    for i, op in enumerate(r.tables(sg, 3, "operators")):
        name, version = codes[r.scalar(op, 0, "u32")]
        inputs = tuple(r.ints(op, 1, "operator inputs"))
        pool = None
        if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D") and r.scalar(op, 3, "u8") == 5:  # Pool2DOptions
            options = r.field(op, 4)
            if options is not None:
                o = r.table(r.deref(options), "Pool2DOptions")
                pool = (r.scalar(o, 4, "i32"), r.scalar(o, 3, "i32"), r.scalar(o, 2, "i32"), r.scalar(o, 1, "i32"))
        strides = small_ints(inputs[3]) if name == "STRIDED_SLICE" and len(inputs) > 3 else None
        ops.append(Op(i, name, version, inputs, tuple(r.ints(op, 2, "operator outputs")), pool, strides))
    return Graph(ops, tensors, r.ints(sg, 1, "subgraph inputs"), r.ints(sg, 2, "subgraph outputs"), len(subgraphs),
                 len(content), sum(sizes.values()))
