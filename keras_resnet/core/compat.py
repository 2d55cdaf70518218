"""Every workaround for an upstream bug or gap, in one place, each pinned to the versions it was written for.

Each entry says what is wrong upstream, for which versions the workaround is known to be right, and what
happens on other versions (it refuses with a clear error, or steps aside). ``tests/test_compat.py`` checks that
each upstream problem still exists in the installed versions, so a test fails the day upstream fixes one and
the workaround can go.

setup.cfg pins the ranges the package is tested on: keras 3.15, tensorflow 2.21, tf-keras 2.21, tfmot 0.8.1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import sys
from collections.abc import Callable, Iterator
from typing import Any

from keras_resnet.core.errors import ConfigError


def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _minor(version: str | None) -> str:
    return ".".join((version or "").split(".")[:2])


# ---- Keras: the functional graph is walked recursively --------------------------------------------------------
# keras/src/ops/function.py `_build_map_helper` recurses once per layer on the longest path (all Keras 3 versions
# so far): building or loading a functional model deeper than ~300 blocks (ResNet-1202: 3,600+ layers) exceeds
# Python's default limit of 1000 frames. The limit is raised only while such a graph is built or loaded.

def recursion_limit_for(layers: int) -> int:
    """A recursion limit that lets Keras walk a functional graph of ``layers`` layers.

    ResNet-1202 has 3,620 layers and needs about 8,000 frames: 3 a layer plus 1,000 spare leave headroom.
    """
    return 3 * layers + 1000


@contextlib.contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    """Raise :func:`sys.getrecursionlimit` to at least ``limit`` inside the block, then restore it."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


# ---- Keras 3.15 + tf.distribute.MultiWorkerMirroredStrategy -------------------------------------------------------
# 1. fit/evaluate build the model from a first batch reduced with ``strategy.reduce(MEAN, (x, y))``, which the
#    collective strategy rejects for a tuple. Only the batch's shapes matter there: hand Keras the local batch.
# 2. Keras reduces the per-step metric scalars with ``strategy.reduce("MEAN", v, axis=0)``, an error for rank 0.
# Both patch private Keras functions, so they apply to the Keras minor versions they were checked against only.
MULTIWORKER_KERAS = ("3.15",)


def check_multiworker_support() -> None:
    """Refuse multi-worker training on Keras versions the workarounds were not checked against."""
    version = version_of("keras")
    if _minor(version) not in MULTIWORKER_KERAS:
        raise ConfigError(f"multi-worker training needs keras {' or '.join(MULTIWORKER_KERAS)}.x here (keras_resnet "
                          f"works around two Keras bugs in those versions); installed: keras {version}")


@contextlib.contextmanager
def multiworker_workarounds(model, strategy) -> Iterator[None]:
    """Both multi-worker workarounds inside the block: ``model``'s first-batch build (1.) and Keras' TF trainer's
    ``reduce_per_replica`` (2.), a process-wide function, put back as they were when the block ends.

    Keras looks ``reduce_per_replica`` up when it traces a step function, so the block must hold the ``fit`` and
    ``evaluate`` calls that trace them (a step traced inside keeps the workaround afterwards)."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    check_multiworker_support()
    own = "_maybe_symbolic_build" in vars(model)
    original_build = model._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(local, next(batches))
                break
        return original_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            def reduce(v):
                if not isinstance(v, tf.distribute.DistributedValues):
                    return v
                rank = strategy.experimental_local_results(v)[0].shape.rank
                return strategy.reduce("MEAN", v, axis=0 if rank else None)

            return tf.nest.map_structure(reduce, values)
        return original_reduce(values, strategy, reduction)

    model._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original_reduce
        if own:
            model._maybe_symbolic_build = original_build
        else:
            del model._maybe_symbolic_build  # the class's method again


# ---- Keras 3.15 optimizers: the moving average of the weights (``use_ema``) -----------------------------------
# Keras keeps the averages in the private ``optimizer._model_variables_moving_average``, aligned with the private
# ``optimizer._trainable_variables`` (None where a variable has none); no public accessor exists, only
# ``finalize_variable_values``, which overwrites the weights for good. Validating and publishing the average, then
# resuming from the raw weights, needs the pairs. Other Keras minor versions: refused.
EMA_KERAS = ("3.15",)


def optimizer_ema_pairs(optimizer) -> list[tuple] | None:
    """``(trainable variable, its moving average)`` pairs of a Keras optimizer with ``use_ema``; None without."""
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not getattr(optimizer, "use_ema", False) or averages is None:
        return None
    version = version_of("keras")
    if _minor(version) not in EMA_KERAS:
        raise ConfigError(f"ema_decay needs keras {' or '.join(EMA_KERAS)}.x here (keras_resnet reads the "
                          f"optimizer's private moving-average list); installed: keras {version}")
    return [(v, a) for v, a in zip(optimizer._trainable_variables, averages, strict=True) if a is not None]


# ---- TensorFlow 2.21: which tf.distribute strategy is the default one ---------------------------------------------
# The default (no-op) strategy is an instance of the private ``_DefaultDistributionStrategy``; tf.distribute has no
# public predicate for it (``get_strategy()`` returns whatever scope is open). Recognised by that class name.
def is_default_strategy(strategy) -> bool:
    """Whether ``strategy`` is TensorFlow's default strategy (one device, no distribution)."""
    return type(strategy).__name__.startswith("_Default")


# ---- tfmot 0.8.1: no way to calibrate activation ranges ---------------------------------------------------------
# tfmot's MovingAvgQuantize has a fixed EMA decay (0.999) and starts at [-6, 6]; there is no public calibration
# API. Calibration swaps in a cumulative average (decay k/(k+1) at batch k) by wrapping the private
# ``quant_ops.MovingAvgQuantize`` for the calibration passes only. Other tfmot versions: refused.
CALIBRATION_TFMOT = ("0.8",)


def _check_tfmot(purpose: str, versions: tuple[str, ...]) -> None:
    version = version_of("tensorflow-model-optimization")
    if _minor(version) not in versions:
        raise ConfigError(f"{purpose} is written for tensorflow-model-optimization {' or '.join(versions)}.x; "
                          f"installed: {version}")


@contextlib.contextmanager
def cumulative_range_averaging() -> Iterator[callable]:
    """Inside the block tfmot's activation ranges average over batches; call the yielded function after each."""
    _check_tfmot("QAT range calibration", CALIBRATION_TFMOT)
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = quant_ops.MovingAvgQuantize
    step = {"k": 0}

    def averaging(*args, **kwargs):
        kwargs["ema_decay"] = step["k"] / (step["k"] + 1.0)
        return original(*args, **kwargs)

    def next_batch() -> None:
        step["k"] += 1

    quant_ops.MovingAvgQuantize = averaging
    try:
        yield next_batch
    finally:
        quant_ops.MovingAvgQuantize = original


# ---- tfmot 0.8.1: the default 8-bit scheme's quantize configs are private -------------------------------------
# ``tfmot.quantization.keras.default_8bit`` exports the scheme's registry (which layers have a rule) but not its
# no-op and output-only QuantizeConfigs, which layers without a rule need (ChannelPadding passes through; Subtract,
# Rescaling, ... quantize their output). They live in ``tensorflow_model_optimization.python.core.quantization.
# keras.default_8bit.default_8bit_quantize_configs``; quantize_scope() knows them, so saved QAT models that use them
# reload (a QuantizeConfig of our own would not). Other tfmot versions: refused.
DEFAULT_8BIT_TFMOT = ("0.8",)


@dataclasses.dataclass(frozen=True)
class Default8BitConfigs:
    """Two of tfmot's default 8-bit QuantizeConfig classes (call one for a new config)."""

    no_op: Callable[[], Any]  # quantizes nothing: the layer shares its input's range
    output: Callable[[], Any]  # quantizes the layer's output only


def tfmot_default_8bit_configs() -> Default8BitConfigs:
    """tfmot's default 8-bit no-op and output-only quantize configs (private in tfmot 0.8.x)."""
    _check_tfmot("QAT annotation", DEFAULT_8BIT_TFMOT)
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs,
    )

    return Default8BitConfigs(no_op=configs.NoOpQuantizeConfig, output=configs.Default8BitOutputQuantizeConfig)


# ---- tf_keras 2.21: a layer's inbound layer -----------------------------------------------------------------------
# tf_keras has no public accessor for the layer feeding another (Keras 3 has none either); tfmot itself reads
# ``_inbound_nodes``. Used to decide whether a BatchNormalization follows a conv tfmot can fold it into.
INBOUND_TF_KERAS = ("2.21",)


def inbound_layer(layer):
    """The layer whose output feeds ``layer``'s first call (tf_keras), or None when it cannot be known."""
    if _minor(version_of("tf-keras") or version_of("tf_keras")) not in INBOUND_TF_KERAS:
        raise ConfigError(f"QAT needs tf-keras {' or '.join(INBOUND_TF_KERAS)}.x (matching TensorFlow); "
                          f"installed: {version_of('tf-keras')}")
    nodes = getattr(layer, "_inbound_nodes", None)
    return nodes[0].inbound_layers if nodes else None


def outbound_count(layer) -> int:
    """How many calls consume ``layer``'s output (tf_keras; see :func:`inbound_layer`)."""
    return len(getattr(layer, "_outbound_nodes", ()))


# ---- TensorFlow 2.21: the TFLite flatbuffer schema's object API is private ------------------------------------------
# Writing a ``.tflite`` (keras_resnet.export.metadata.embed_metadata adds a metadata entry) needs the flatbuffer
# schema's object API (Model.GetRootAsModel, ModelT.InitFromObj/Pack, BufferT, MetadataT). TensorFlow ships it only
# as ``tensorflow.lite.python.schema_py_generated``, outside its public API. Reading needs none of it
# (resnet_edge.flatbuffer). Other TensorFlow versions: refused.
TFLITE_SCHEMA_TF = ("2.21",)


def tflite_schema():
    """TensorFlow's generated TFLite flatbuffer schema module (private in TensorFlow 2.21)."""
    version = version_of("tensorflow") or version_of("tensorflow-cpu")
    if _minor(version) not in TFLITE_SCHEMA_TF:
        raise ConfigError(f"writing .tflite metadata is written for tensorflow {' or '.join(TFLITE_SCHEMA_TF)}.x "
                          f"(its private flatbuffer schema module); installed: {version}")
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated
