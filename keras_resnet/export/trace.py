"""Keras -> TFLite: trace a Keras 3 model (or a tf_keras QAT model) and run the TFLite converter on it.

:func:`convert_model` returns the ``.tflite`` bytes of one mode: float32, float16 weights, dynamic-range or
full-integer int8. Keras 3 models and tf_keras QAT models alike convert from a concrete function of the model and the
variables it reads (the converter reads QAT models' FakeQuant ranges, so they need no calibration). Neither metadata
nor validation happens here (see :mod:`keras_resnet.export.convert`).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile

import numpy as np

from keras_resnet.core import console, runlock
from keras_resnet.core.errors import ConfigError, ModelFileError
from keras_resnet.export.targets import POOL_TRACES, is_qat, pool_for, subsample_for
from keras_resnet.spec.conversion import MODES


def input_shape(model) -> tuple[int, ...]:
    """The H×W×C of ``model``'s one input; ModelFileError for several inputs or an unknown size."""
    if len(model.inputs) != 1:
        raise ModelFileError(f"{model.name} has {len(model.inputs)} inputs; conversion supports single-input models")
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ModelFileError(f"{model.name} has an input of unknown size {shape}; build it with a fixed input_shape")
    return tuple(int(d) for d in shape)


def _input_spec(model, batch: int | None):
    import tensorflow as tf

    return tf.TensorSpec((batch, *input_shape(model)), tf.float32, name="image")


def _converter(model, batch: int | None, subsample: str, pool: str):
    from keras_resnet.model.blocks import tflite_tracing

    with tflite_tracing(subsample):  # option-A ChannelPadding as PAD, its subsampling as `subsample` (see there)
        return _trace(model, batch, pool)


def _trace(model, batch: int | None, pool: str):
    import tensorflow as tf

    spec = _input_spec(model, batch)
    if type(model).__module__.startswith("tf_keras"):
        variables = list(model.variables)
    else:
        model = traced_graph(model, pool)
        variables = [v.value for v in model.variables]  # Keras 3 variables hold the tf.Variable the graph reads
    function = tf.function(lambda image: model(image, training=False))
    # The converter saves its second argument as a SavedModel. Given the tf_keras model itself it traces every layer's
    # call for the SavedModel (ResNet-20 QAT: 95 of 133 s); a bare module holding the function and the variables it
    # reads converts to the identical flatbuffer in a sixth of the time. For Keras 3 models, writing a SavedModel with
    # keras.export.ExportArchive first (as model.export does) took 10-13 s per ResNet-20 conversion against 3.4-6.6 s
    # this way, float32 and int8 alike, with the same ops, signature, quantization and outputs (0 difference;
    # only the output tensor's internal name differs).
    holder = tf.Module()
    holder.weights = variables
    holder.serve = function
    return tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function(spec)], holder)


def traced_graph(model, pool: str = "average_pool"):
    """``model`` as the converter traces it: a Functional copy that shares every layer (and so every weight) of
    ``model`` and calls some of them differently; ``model`` itself (or subclassed, not a graph of layers) when
    nothing changes. The saved model and its weights are untouched.

    Keras 3's ``Flatten`` becomes a RESHAPE to the constant shape ``[-1, n]``. It reshapes to
    ``(ops.shape(x)[0], n)``: with the batch dimension left open (the cpu and gpu targets) the converter cannot fold
    that, and the file computes the shape at run time (SHAPE, STRIDED_SLICE, PACK feeding RESHAPE): three more ops,
    none of them XNNPACK's (one more CPU partition), and LiteRT's CompiledModel cannot resize such a file's batch
    (``ReadTensorToBuffer: destination buffer is larger than the tensor buffer``). The layer's non-batch dimensions
    are static, so the shape is a constant here, as tf_keras' ``Flatten`` traces it.

    With ``pool="mean"`` (a :class:`~keras_resnet.export.targets.TargetPlan`'s, see
    :func:`~keras_resnet.export.targets.pool_for`) an ``AveragePooling2D`` whose window is exactly its input's H×W
    (valid padding, a 1x1 output) becomes a mean over H and W that keeps them: MEAN instead of AVERAGE_POOL_2D, the
    same numbers."""
    import keras

    if pool not in POOL_TRACES:
        raise ConfigError(f"pool must be one of {', '.join(POOL_TRACES)}, not {pool!r}")

    def rewritten(layer):
        return _static_flatten_of(layer) or (_whole_mean_of(layer) if pool == "mean" else None)

    if not isinstance(model, keras.Model) or not any(rewritten(layer) for layer in model.layers):
        return model
    if isinstance(model, keras.Sequential):  # call_function walks Functional graphs: the same layers as one
        try:
            model = keras.Model(model.inputs, model.outputs, name=model.name)
        except (ValueError, TypeError, AttributeError):  # never built on an Input: traced as it is
            return model

    def call(layer, *args, **kwargs):
        rewrite = rewritten(layer)
        if rewrite is None or len(args) != 1 or kwargs:
            return layer(*args, **kwargs)
        return rewrite(args[0])

    try:
        return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    except (ValueError, TypeError):  # not a Functional graph clone_model can walk: traced as it is
        return model


def _static_flatten_of(layer):
    """A channels-last Keras 3 ``Flatten``'s trace as a reshape to a constant shape, else None."""
    import math

    import keras

    if not isinstance(layer, keras.layers.Flatten) or layer.data_format != "channels_last":
        return None

    def trace(x):
        dims = tuple(x.shape[1:])
        if not dims or any(d is None for d in dims):
            return layer(x)
        return keras.ops.reshape(x, (-1, math.prod(int(d) for d in dims)))

    return trace


def _whole_mean_of(layer):
    """A channels-last ``AveragePooling2D``'s trace as a mean over H and W (keepdims) when its window is its whole
    input (valid padding, pool size = the input's H×W: every output is the mean of the whole map), else None."""
    import keras

    if (not isinstance(layer, keras.layers.AveragePooling2D) or layer.data_format != "channels_last"
            or layer.padding != "valid"):
        return None

    def trace(x):
        if tuple(x.shape[1:3]) != tuple(layer.pool_size):
            return layer(x)
        return keras.ops.mean(x, axis=(1, 2), keepdims=True)

    return trace


def convert_model(model, *, quantization: str = "float32", io_type: str = "float32", batch: int | None = None,
                  calibration: np.ndarray | None = None, temp_dir: str | None = None,
                  subsample: str | None = None, pool: str | None = None) -> bytes:
    """``.tflite`` bytes of ``model``. ``calibration``: model-ready float32 images for int8 PTQ. ``temp_dir``: where
    the temporary SavedModel folder goes (default: the system's temporary folder); it is removed afterwards, and
    one left by a killed conversion is removed by the next conversion there (see
    :func:`keras_resnet.export.job.open_output`). ``subsample``: how option A's subsampling is traced
    (:func:`keras_resnet.model.blocks.tflite_tracing`): a :class:`~keras_resnet.export.targets.TargetPlan`'s, default
    the cpu target's (:func:`keras_resnet.export.targets.subsample_for`). ``pool``: how an AveragePooling2D over its
    whole input is traced (:func:`traced_graph`): the plan's, default the cpu target's
    (:func:`keras_resnet.export.targets.pool_for`)."""
    import tensorflow as tf

    if quantization not in MODES:
        raise ConfigError(f"unknown quantization {quantization!r}; choose from {', '.join(MODES)}")
    qat = is_qat(model)
    subsample, pool = subsample or subsample_for("cpu"), pool or pool_for("cpu")
    if qat and quantization != "int8":
        raise ConfigError(f"{model.name} is a QAT model; it converts to int8 only (got --quantize {quantization})")

    def attempt(new_quantizer: bool) -> bytes:
        workdir = tempfile.mkdtemp(prefix=runlock.temporary_prefix("convert"), dir=temp_dir)
        try:
            converter = _converter(model, batch, subsample, pool)
            converter.experimental_new_quantizer = new_quantizer
            if quantization == "float16":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            elif quantization == "dynamic":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            elif quantization == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                if not qat:  # PTQ: ranges from the calibration images; QAT ranges come from FakeQuant nodes
                    # TFLITE_BUILTINS_INT8 only. (For QAT the converter refuses this without a representative
                    # dataset; the ops are checked after conversion instead.)
                    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                    converter.representative_dataset = lambda: ([image[None]] for image in calibration)
                if io_type != "float32":
                    converter.inference_input_type = getattr(tf, io_type)
                    converter.inference_output_type = getattr(tf, io_type)
            return _run(converter, quantization, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    if quantization == "int8" and not qat and (calibration is None or not len(calibration)):
        raise ConfigError("int8 post-training quantization of a float model needs calibration images "
                          "(--calibration-data DATASET, or 'random' for latency-only work)")
    # Option-A ResNets convert fully integer since ChannelPadding is traced as PAD (blocks.tflite_tracing);
    # the converter's legacy quantizer (experimental_new_quantizer=False) is not needed and cannot
    # quantize PADV2 anyway.
    return attempt(True)


def _run(converter, quantization: str, workdir: str) -> bytes:
    try:
        with contextlib.redirect_stdout(io.StringIO()), console.native_output_silenced(), _temporary_files_in(workdir):
            return converter.convert()
    except Exception as error:  # converter errors are long MLIR dumps: keep the first line
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ModelFileError(f"TFLite conversion ({quantization}) failed: {first[:300]}") from error


@contextlib.contextmanager
def _temporary_files_in(folder: str):
    """The converter writes its temporary SavedModel with ``tempfile.mkdtemp()``: put it in ``folder`` (next to the
    output, not in a /tmp that may be small or shared; removed with it), for the duration of one conversion."""
    before = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        yield
    finally:
        tempfile.tempdir = before
