"""The allow-list of a Keras model config, and the walk that enforces it (security-critical; docs/security.md).

A model config (``config.json`` of a ``.keras``, ``model_config`` of a tf_keras ``.h5``) names the classes Keras will
instantiate and the functions it will look up. :func:`check_config` walks it, nested models included, without
recursion: every ``class_name`` must be on :data:`ALLOWED_CLASSES` (Keras built-ins that run no code of the file's
choosing, keras_resnet's registered ``ChannelPadding`` and ``ResNetSchedule``, tfmot's quantization wrappers and
configs) and every serialized function on :data:`ALLOWED_FUNCTIONS`; a ``module`` must be under one of the known
roots and a ``registered_name`` must match its class. ``unsafe=True`` (``--unsafe``) skips only this allow-list.
The archive and HDF5 checks that run before it are in :mod:`keras_resnet.io.model_checks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from keras_resnet.core.errors import ModelFileError, UnsafeModelError

UNSAFE_HINT = "Pass --unsafe (unsafe=True) only if you trust the file"

# ---- the allow-list ----------------------------------------------------------------------------------------------
# Keras 3.15's public classes (keras.layers, initializers, regularizers, constraints, optimizers and their schedules,
# losses, metrics, dtype_policies, models) except those that run code or load files named by the config (Lambda,
# TFSMLayer, TorchModuleWrapper, JaxLayer, FlaxLayer, MeanMetricWrapper) and abstract bases. tests/hostile checks
# each name against the installed Keras.

_KERAS_LAYERS = """
Activation ActivityRegularization AdaptiveAveragePooling1D AdaptiveAveragePooling2D AdaptiveAveragePooling3D
AdaptiveMaxPooling1D AdaptiveMaxPooling2D AdaptiveMaxPooling3D Add AdditiveAttention AlphaDropout Attention AugMix
AutoContrast Average AveragePooling1D AveragePooling2D AveragePooling3D AvgPool1D AvgPool2D AvgPool3D
BatchNormalization Bidirectional CategoryEncoding CenterCrop Concatenate ContrastLimitedAdaptiveHistogramEqualization
Conv1D Conv1DTranspose Conv2D Conv2DTranspose Conv3D Conv3DTranspose ConvLSTM1D ConvLSTM2D ConvLSTM3D Convolution1D
Convolution1DTranspose Convolution2D Convolution2DTranspose Convolution3D Convolution3DTranspose Cropping1D Cropping2D
Cropping3D CutMix Dense DepthwiseConv1D DepthwiseConv2D Discretization Dot Dropout ELU EinsumDense Embedding
Equalization Flatten GRU GRUCell GaussianDropout GaussianNoise GlobalAveragePooling1D GlobalAveragePooling2D
GlobalAveragePooling3D GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D GlobalMaxPool1D GlobalMaxPool2D GlobalMaxPool3D
GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D GroupNormalization GroupQueryAttention HashedCrossing Hashing
Identity InputLayer IntegerLookup LSTM LSTMCell LayerNormalization LeakyReLU Masking MaxNumBoundingBoxes MaxPool1D
MaxPool2D MaxPool3D MaxPooling1D MaxPooling2D MaxPooling3D Maximum MelSpectrogram Minimum MixUp MultiHeadAttention
Multiply Normalization PReLU Permute Pipeline RMSNormalization RNN RandAugment RandomBrightness RandomColorDegeneration
RandomColorJitter RandomContrast RandomCrop RandomElasticTransform RandomErasing RandomFlip RandomGaussianBlur
RandomGrayscale RandomHue RandomInvert RandomPerspective RandomPosterization RandomRotation RandomSaturation
RandomSharpness RandomShear RandomTranslation RandomZoom ReLU RepeatVector Rescaling Reshape Resizing
ReversibleEmbedding STFTSpectrogram SeparableConv1D SeparableConv2D SeparableConvolution1D SeparableConvolution2D
SimpleRNN SimpleRNNCell Softmax Solarization SpatialDropout1D SpatialDropout2D SpatialDropout3D SpectralNormalization
StackedRNNCells StringLookup Subtract TextVectorization TimeDistributed UnitNormalization UpSampling1D UpSampling2D
UpSampling3D ZeroPadding1D ZeroPadding2D ZeroPadding3D
"""
_KERAS_OTHER = """
Constant GlorotNormal GlorotUniform HeNormal HeUniform Identity IdentityInitializer LecunNormal LecunUniform Ones
Orthogonal OrthogonalInitializer RandomNormal RandomUniform STFT STFTInitializer TruncatedNormal VarianceScaling Zeros
L1 L1L2 L2 OrthogonalRegularizer MaxNorm MinMaxNorm NonNeg UnitNorm
Adadelta Adafactor Adagrad Adam AdamW Adamax Ftrl Lamb Lion LossScaleOptimizer Muon Nadam RMSprop SGD ScheduleFreeAdamW
CosineDecay CosineDecayRestarts ExponentialDecay InverseTimeDecay PiecewiseConstantDecay PolynomialDecay
BinaryCrossentropy BinaryFocalCrossentropy CTC CategoricalCrossentropy CategoricalFocalCrossentropy
CategoricalGeneralizedCrossEntropy CategoricalHinge Circle CosineSimilarity Dice Hinge Huber KLDivergence LogCosh
MeanAbsoluteError MeanAbsolutePercentageError MeanSquaredError MeanSquaredLogarithmicError Poisson
SparseCategoricalCrossentropy SquaredHinge Tversky
AUC Accuracy BinaryAccuracy BinaryIoU CategoricalAccuracy ConcordanceCorrelation F1Score FBetaScore FalseNegatives
FalsePositives IoU LogCoshError Mean MeanIoU OneHotIoU OneHotMeanIoU PearsonCorrelation Precision PrecisionAtRecall
R2Score Recall RecallAtPrecision RootMeanSquaredError SensitivityAtSpecificity SparseCategoricalAccuracy
SparseTopKCategoricalAccuracy SpecificityAtSensitivity Sum TopKCategoricalAccuracy TrueNegatives TruePositives
AWQDTypePolicy DTypePolicy DTypePolicyMap FloatDTypePolicy GPTQDTypePolicy Int4DTypePolicy QuantizedDTypePolicy
QuantizedFloat8DTypePolicy
Functional Sequential Model
"""
# keras_resnet's registered classes; tfmot 0.8's QAT wrappers, quantize configs and quantizers (keras-resnet qat).
KERAS_RESNET_CLASSES = {"ChannelPadding": "keras_resnet>ChannelPadding",
                        "ResNetSchedule": "keras_resnet>ResNetSchedule",
                        **{name: f"keras_resnet>{name}" for name in ("QATInput", "QATConv", "QATAffine", "QATOutput")}}
_TFMOT = """
QuantizeWrapper QuantizeWrapperV2 QuantizeAnnotate QuantizeLayer QuantizeAwareActivation NoOpActivation
Default8BitQuantizeConfig Default8BitConvQuantizeConfig Default8BitActivationQuantizeConfig
Default8BitOutputQuantizeConfig Default8BitConvTransposeQuantizeConfig NoOpQuantizeConfig
AllValuesQuantizer LastValueQuantizer MovingAverageQuantizer
"""
KERAS_CLASSES = frozenset((_KERAS_LAYERS + _KERAS_OTHER).split())
TFMOT_CLASSES = frozenset(_TFMOT.split())
# Keras' own markers for values in a config (tensors, tuples, bytes...); "__lambda__" (code) is not one of them.
SERIALIZATION_MARKERS = frozenset({"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__",
                                   "__slice__", "__tuple__"})
ALLOWED_CLASSES = KERAS_CLASSES | TFMOT_CLASSES | frozenset(KERAS_RESNET_CLASSES) | SERIALIZATION_MARKERS
# Functions a config may name ({"class_name": "function", "config": NAME}): Keras activations, losses, metrics.
ALLOWED_FUNCTIONS = frozenset("""
celu elu exponential gelu glu hard_shrink hard_sigmoid hard_silu hard_swish hard_tanh leaky_relu linear log_sigmoid
log_softmax mish relu relu6 selu sigmoid silu soft_shrink softmax softplus softsign sparse_plus sparse_sigmoid sparsemax
squareplus swish tanh tanh_shrink threshold
binary_crossentropy binary_focal_crossentropy categorical_crossentropy categorical_focal_crossentropy
categorical_generalized_cross_entropy categorical_hinge circle cosine_similarity ctc dice hinge huber kl_divergence
log_cosh mean_absolute_error mean_absolute_percentage_error mean_squared_error mean_squared_logarithmic_error poisson
sparse_categorical_crossentropy squared_hinge tversky binary_accuracy categorical_accuracy concordance_correlation
pearson_correlation sparse_categorical_accuracy sparse_top_k_categorical_accuracy top_k_categorical_accuracy
""".split())
_MODULE_ROOTS = ("keras", "keras_resnet", "tf_keras", "tensorflow_model_optimization", "builtins")


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type (for one-line refusals)."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


# ---- the config walk ---------------------------------------------------------------------------------------------


def _walk(config: Any) -> Iterator[tuple[dict, str | None]]:
    """Every dict in ``config`` that has a ``class_name``, with the name of the nearest enclosing layer (no
    recursion: nesting is bounded by the parser, not by the stack)."""
    stack: list[tuple[Any, str | None]] = [(config, None)]
    while stack:
        value, layer = stack.pop()
        if isinstance(value, dict):
            if "class_name" in value:
                inner = value.get("config")
                name = value.get("name") if isinstance(value.get("name"), str) else (
                    inner.get("name") if isinstance(inner, dict) and isinstance(inner.get("name"), str) else None)
                layer = name or layer
                yield value, layer
            stack.extend((v, layer) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, layer) for v in value)


def check_config(config: Any, path: str, *, unsafe: bool = False) -> None:
    """Raise :class:`ModelFileError` unless ``config`` is a model config (an object with a ``class_name``), and
    :class:`UnsafeModelError` (unless ``unsafe``) when any object in it names a class or function off the
    allow-list. The refusal names the layer."""
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: the model config is a JSON {json_kind(config)}, not an object")
    if not isinstance(config.get("class_name"), str) or not isinstance(config.get("config"), dict):
        raise ModelFileError(f"{path}: the model config has no class_name and config (not a Keras model?)")
    if unsafe:
        return
    for obj, layer in _walk(config):
        problem = _problem(obj)
        if problem:
            where = f"layer {layer!r}" if layer else "the model"
            raise UnsafeModelError(f"{path}: {where} uses {problem}, which is not on the allow-list of classes "
                                   f"that run no code from the file; refusing to load it. {UNSAFE_HINT}")


def _problem(obj: dict) -> str | None:
    """Why one ``{"class_name": ...}`` object is not allowed, or None."""
    name, module, registered = obj.get("class_name"), obj.get("module"), obj.get("registered_name")
    if not isinstance(name, str):
        return f"a class_name that is a JSON {json_kind(name)}"
    if name == "__lambda__" or name in ("Lambda", "TFOpLambda", "SlicingOpLambda"):
        return f"a {'Lambda' if name == '__lambda__' else name} layer (arbitrary Python code)"
    if module is not None and (not isinstance(module, str) or module.split(".")[0] not in _MODULE_ROOTS):
        return f"class {name} from module {module!r}"
    if name == "function":
        fn = obj.get("config")
        if not isinstance(fn, str) or fn not in ALLOWED_FUNCTIONS or registered not in (None, fn):
            return f"function {fn if isinstance(fn, str) else json_kind(fn)!s}"
        return None
    if name == "__typespec__":
        return "a __typespec__ object"
    if name not in ALLOWED_CLASSES:
        return f"class {name}"
    if name in KERAS_RESNET_CLASSES:
        expected = KERAS_RESNET_CLASSES[name]
        return None if registered in (None, expected) else f"class {name} registered as {registered!r}"
    if registered not in (None, name):
        return f"class {name} registered as {registered!r}"
    return None


__all__ = ["ALLOWED_CLASSES", "ALLOWED_FUNCTIONS", "KERAS_CLASSES", "KERAS_RESNET_CLASSES", "TFMOT_CLASSES",
           "UNSAFE_HINT", "check_config", "json_kind"]
