"""The one safe loader for model files: Keras 3 ``.keras`` and tfmot QAT (tf_keras) ``.h5`` files.

Model files come from strangers (see docs/security.md). Before Keras or tf_keras sees a file:

- a ``.keras`` archive is checked entry by entry: the number of entries, names (no absolute or ``..`` paths, no
  duplicates), each entry's declared size and compression ratio, the total declared size, and the CRC of every
  entry (read in bounded chunks), so a zip bomb or a truncated file is refused without being inflated;
- the HDF5 weights (``model.weights.h5`` inside a ``.keras``, or the ``.h5`` file itself) are checked dataset by
  dataset: the bytes each dataset declares must be stored in the file (no compressed or unallocated bombs), and
  their total is capped;
- ``config.json`` (or the ``.h5`` ``model_config``) is parsed as JSON (so escapes such as ``"\\u004cambda"`` are
  decoded first), its nesting bounded, and walked, nested models included: every ``class_name`` must be on
  :data:`ALLOWED_CLASSES` (Keras built-ins that run no code of the file's choosing, keras_resnet's registered
  ``ChannelPadding`` and ``ResNetSchedule``, tfmot's quantization wrappers and configs) and every serialized
  function on :data:`ALLOWED_FUNCTIONS`. ``unsafe=True`` (``--unsafe``) skips only this allow-list.

Every failure is a :class:`~keras_resnet.core.errors.ModelFileError` (:class:`UnsafeModelError` for the allow-list)
with one line of explanation and its cause chained.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from resnet_edge.metadata import load_json

from keras_resnet.core import compat
from keras_resnet.core.errors import ModelFileError, UnsafeModelError
from keras_resnet.core.files import read_json_file

MODEL_SUFFIXES = (".keras", ".h5")
_UNSAFE_HINT = "Pass --unsafe (unsafe=True) only if you trust the file"

# ---- limits ----------------------------------------------------------------------------------------------------

MAX_ENTRIES = 10_000  # a .keras holds 3 entries, plus assets
MAX_JSON_BYTES = 64 << 20  # config.json of ResNet-1202: 2 MB
MAX_TOTAL_BYTES = 4 << 30  # everything a .keras or .h5 declares (ResNet-152 weights: 240 MB)
MAX_RATIO = 100  # declared / stored bytes of one entry or dataset (Keras stores weights uncompressed: 1.0)
RATIO_FLOOR = 1 << 20  # entries and datasets below this size are not ratio-checked
MAX_CONFIG_DEPTH = 256  # ResNet configs are 15 deep; each nested model adds about 4
_CHUNK = 1 << 20

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


# ---- archive checks ------------------------------------------------------------------------------------------------


@dataclass
class KerasArchive:
    """What :func:`check_keras_archive` found: ``keras_version`` (2.x: tf_keras, 3.x: Keras 3), the parsed
    ``config`` and its layer count."""

    keras_version: str | None
    config: dict
    layers: int


def _mb(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MB" if n < (1 << 30) else f"{n / (1 << 30):,.2f} GB"


def _check_entries(path: str, archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES:
        raise ModelFileError(f"{path}: the archive has {len(entries):,} entries (at most {MAX_ENTRIES:,} allowed)")
    names: set[str] = set()
    total = 0
    for info in entries:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise ModelFileError(f"{path}: archive entry {name!r} points outside the archive")
        if name in names:
            raise ModelFileError(f"{path}: archive entry {name!r} appears twice")
        names.add(name)
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ModelFileError(f"{path}: archive entry {name!r} declares {_mb(info.file_size)} stored in "
                                 f"{_mb(info.compress_size)} (more than {MAX_RATIO}x compression: a zip bomb?)")
        if name.endswith(".json") and info.file_size > MAX_JSON_BYTES:
            raise ModelFileError(f"{path}: archive entry {name!r} declares {_mb(info.file_size)} (JSON entries are "
                                 f"limited to {_mb(MAX_JSON_BYTES)})")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ModelFileError(f"{path}: the archive declares {_mb(total)} in all (at most {_mb(MAX_TOTAL_BYTES)})")
    return entries


def _verify_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Read one entry through in bounded chunks: zipfile stops at its declared size and checks its CRC."""
    with archive.open(info) as f:
        while f.read(_CHUNK):
            pass


def _read_json_entry(path: str, archive: zipfile.ZipFile, name: str, *, max_depth: int) -> Any:
    try:
        data = archive.read(name)
    except KeyError:
        raise ModelFileError(f"{path}: the archive has no {name} (not a Keras .keras file?)") from None
    try:
        return load_json(data, f"{path}: {name}", max_depth=max_depth)
    except ValueError as error:
        raise ModelFileError(str(error)) from error


def check_keras_archive(path: str, *, unsafe: bool = False) -> KerasArchive:
    """Check a ``.keras`` archive as described in the module docstring, before any Keras code reads it."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = _check_entries(path, archive)
            for info in entries:
                _verify_entry(archive, info)
            metadata = _read_json_entry(path, archive, "metadata.json", max_depth=8) \
                if "metadata.json" in archive.namelist() else {}
            if not isinstance(metadata, dict):
                raise ModelFileError(f"{path}: metadata.json is a JSON {_kind(metadata)}, not an object")
            config = _read_json_entry(path, archive, "config.json", max_depth=MAX_CONFIG_DEPTH)
            check_config(config, path, unsafe=unsafe)
            for info in entries:
                if info.filename.endswith(".h5"):
                    with archive.open(info) as f:
                        check_hdf5(f, f"{path}: {info.filename}", stored=info.file_size)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError) as error:  # RuntimeError: encrypted entries; NotImplementedError: unknown compression
        raise ModelFileError(f"{path} is not a readable .keras archive (corrupt or truncated?): "
                             f"{_first_line(error)}") from error
    version = metadata.get("keras_version")
    layers = config.get("config", {}).get("layers") if isinstance(config.get("config"), dict) else None
    return KerasArchive(str(version) if version is not None else None, config,
                        len(layers) if isinstance(layers, list) else 0)


def keras_archive_info(path: str) -> tuple[str | None, int]:
    """``(keras_version, layer count)`` of a ``.keras`` archive (tf_keras writes 2.x, Keras 3 writes 3.x);
    ``(None, 0)`` when the archive does not pass :func:`check_keras_archive` (allow-list not applied)."""
    try:
        info = check_keras_archive(path, unsafe=True)
    except ModelFileError:
        return None, 0
    return info.keras_version, info.layers


def check_hdf5(source, what: str, *, stored: int | None = None) -> None:
    """Refuse an HDF5 file whose datasets declare more bytes than it stores (compressed or unallocated bombs) or
    more than :data:`MAX_TOTAL_BYTES` in all. ``source``: a path or a seekable binary file."""
    import h5py

    try:
        with h5py.File(source, "r") as f:
            total = 0
            datasets: list[Any] = []
            f.visititems(lambda name, obj: datasets.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
            for name, dataset in datasets:
                declared = int(dataset.size or 0) * int(dataset.dtype.itemsize)
                kept = int(dataset.id.get_storage_size())
                if declared > RATIO_FLOOR and declared > MAX_RATIO * max(kept, 1):
                    raise ModelFileError(f"{what}: dataset {name!r} declares {_mb(declared)} but stores "
                                         f"{_mb(kept)} (a compression bomb?)")
                total += declared
            if total > MAX_TOTAL_BYTES:
                raise ModelFileError(f"{what}: the weights declare {_mb(total)} (at most {_mb(MAX_TOTAL_BYTES)})")
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise ModelFileError(f"{what} is not a readable HDF5 file (corrupt or truncated?): "
                             f"{_first_line(error)}") from error


def _h5_model_config(path: str) -> Any:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise ModelFileError(f"{path} is not a readable .h5 model (corrupt or truncated?): "
                             f"{_first_line(error)}") from error
    if raw is None:
        raise ModelFileError(f"{path} holds no model_config (a weights-only .h5 file?); expected a model saved by "
                             "`keras-resnet qat`")
    if not isinstance(raw, (bytes, str)):
        raise ModelFileError(f"{path}: model_config is not a JSON text")
    if len(raw) > MAX_JSON_BYTES:
        raise ModelFileError(f"{path}: model_config is {_mb(len(raw))} (at most {_mb(MAX_JSON_BYTES)})")
    try:
        return load_json(raw, f"{path}: model_config", max_depth=MAX_CONFIG_DEPTH)
    except ValueError as error:
        raise ModelFileError(str(error)) from error


# ---- the config walk ---------------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


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
        raise ModelFileError(f"{path}: the model config is a JSON {_kind(config)}, not an object")
    if not isinstance(config.get("class_name"), str) or not isinstance(config.get("config"), dict):
        raise ModelFileError(f"{path}: the model config has no class_name and config (not a Keras model?)")
    if unsafe:
        return
    for obj, layer in _walk(config):
        problem = _problem(obj)
        if problem:
            where = f"layer {layer!r}" if layer else "the model"
            raise UnsafeModelError(f"{path}: {where} uses {problem}, which is not on the allow-list of classes "
                                   f"that run no code from the file; refusing to load it. {_UNSAFE_HINT}")


def _problem(obj: dict) -> str | None:
    """Why one ``{"class_name": ...}`` object is not allowed, or None."""
    name, module, registered = obj.get("class_name"), obj.get("module"), obj.get("registered_name")
    if not isinstance(name, str):
        return f"a class_name that is a JSON {_kind(name)}"
    if name == "__lambda__" or name in ("Lambda", "TFOpLambda", "SlicingOpLambda"):
        return f"a {'Lambda' if name == '__lambda__' else name} layer (arbitrary Python code)"
    if module is not None and (not isinstance(module, str) or module.split(".")[0] not in _MODULE_ROOTS):
        return f"class {name} from module {module!r}"
    if name == "function":
        fn = obj.get("config")
        if not isinstance(fn, str) or fn not in ALLOWED_FUNCTIONS or registered not in (None, fn):
            return f"function {fn if isinstance(fn, str) else _kind(fn)!s}"
        return None
    if name == "__typespec__":
        return "a __typespec__ object"
    if name not in ALLOWED_CLASSES:
        return f"class {name}"
    if name in KERAS_RESNET_CLASSES:
        return None if registered in (None, KERAS_RESNET_CLASSES[name]) else f"class {name} registered as {registered!r}"
    if registered not in (None, name):
        return f"class {name} registered as {registered!r}"
    return None


# ---- loading -------------------------------------------------------------------------------------------------------


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


def check_readable(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise ModelFileError(f"model file {path} does not exist")
    if os.path.isdir(path):
        raise ModelFileError(f"{path} is a folder; pass a .keras or .h5 model file")
    if not os.path.isfile(path):
        raise ModelFileError(f"{path} is not a regular file (a broken link, FIFO or device?)")
    if not path.endswith(MODEL_SUFFIXES):
        raise ModelFileError(f"{path}: expected a .keras (or tf_keras QAT .h5) model file")
    return path


def check_model_file(path: str | os.PathLike, *, unsafe: bool = False) -> KerasArchive:
    """All the checks :func:`load_model` makes before any Keras code reads ``path``; returns what they found."""
    path = check_readable(path)
    if path.endswith(".keras"):
        return check_keras_archive(path, unsafe=unsafe)
    check_hdf5(path, path)
    config = _h5_model_config(path)
    check_config(config, path, unsafe=unsafe)
    layers = config["config"].get("layers")
    return KerasArchive("2", config, len(layers) if isinstance(layers, list) else 0)


def load_model(path: str | os.PathLike, *, unsafe: bool = False, keras3_only: bool = False):
    """Load a Keras 3 ``.keras`` model (not compiled), or a tf_keras QAT model saved by ``keras-resnet qat``.

    Raises :class:`ModelFileError` for missing, corrupt, oversized or foreign files (with ``keras3_only``, for
    tf_keras files too, before tf_keras is imported) and :class:`UnsafeModelError` for files naming classes off the
    allow-list (a Lambda layer: arbitrary code) unless ``unsafe``.
    """
    path = os.fspath(path)
    found = check_model_file(path, unsafe=unsafe)
    version = found.keras_version or ""
    tf_keras = path.endswith(".h5") or version.startswith("2")
    if tf_keras and keras3_only:
        raise ModelFileError(f"{path} is a tf_keras (Keras 2) model; this command takes Keras 3 .keras files "
                             f"(convert it with `keras-resnet convert`)")
    try:
        if tf_keras:
            return _load_tf_keras(path, unsafe)
        import keras

        import keras_resnet.model.blocks  # noqa: F401  (registers ChannelPadding)
        import keras_resnet.model.schedules  # noqa: F401  (registers ResNetSchedule)

        with compat.recursion_limit(compat.recursion_limit_for(found.layers)):
            return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except ModelFileError:
        raise
    except Exception as error:  # Keras raises ValueError/TypeError/OSError/KeyError/RecursionError for bad files
        text = str(error).strip()
        if "safe_mode" in text or "Lambda" in text:
            raise UnsafeModelError(f"{path} contains a Lambda layer (arbitrary Python code); refusing to load it. "
                                   f"{_UNSAFE_HINT}") from error
        raise ModelFileError(f"could not load {path}: {_first_line(error)}") from error


def _load_tf_keras(path: str, unsafe: bool):
    import tensorflow_model_optimization as tfmot  # sets TF_USE_LEGACY_KERAS before tf_keras loads
    import tf_keras

    from keras_resnet.model.blocks import tf_keras_channel_padding

    with tfmot.quantization.keras.quantize_scope({"ChannelPadding": tf_keras_channel_padding()}):
        kwargs = {"safe_mode": not unsafe} if path.endswith(".keras") else {}
        return tf_keras.models.load_model(path, compile=False, **kwargs)


# ---- the preprocessing record of an imported model ------------------------------------------------------------
# `keras-resnet import` records what the source model expects (input size, crop fraction, interpolation, mean/std)
# inside the .keras archive, as one extra JSON entry that Keras' loader ignores, so it travels with the file through
# `qat --engine keras` to `convert`, which puts it in the .tflite metadata. OUT.preprocessing.json next to the model
# is the fallback (files of other tools, .h5 QAT models, models imported before the entry existed).

PREPROCESSING_ENTRY = "keras_resnet_preprocessing.json"
MAX_PREPROCESSING_BYTES = 64 << 10  # the record is about 250 bytes
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def preprocessing_path(model_path: str | os.PathLike) -> str:
    """The sidecar of ``OUT.keras`` (or ``OUT.h5``): ``OUT.preprocessing.json``."""
    path = os.fspath(model_path)
    stem = next((path[: -len(s)] for s in MODEL_SUFFIXES if path.endswith(s)), path)
    return stem + ".preprocessing.json"


def check_preprocessing(record: Any, what: str) -> dict:
    """The record with its policy checked: ``input_size`` an integer in [1, 8192], ``crop_pct`` a number in
    [0.05, 1] (resnet-edge's bounds), ``interpolation`` one of :data:`INTERPOLATIONS`; ModelFileError otherwise."""
    if not isinstance(record, dict):
        raise ModelFileError(f"{what}: the preprocessing record is a JSON {_kind(record)}, not an object")
    size, crop, interpolation = record.get("input_size"), record.get("crop_pct"), record.get("interpolation")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 8192:
        raise ModelFileError(f"{what}: preprocessing input_size {str(size)[:40]} is not an integer in [1, 8192]")
    if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0.05 <= crop <= 1:
        raise ModelFileError(f"{what}: preprocessing crop_pct {str(crop)[:40]} is not a number in [0.05, 1]")
    if interpolation not in INTERPOLATIONS:
        raise ModelFileError(f"{what}: preprocessing interpolation {str(interpolation)[:40]!r} is not one of "
                             f"{', '.join(INTERPOLATIONS)}")
    return {**record, "crop_pct": float(crop)}


def attach_preprocessing(path: str | os.PathLike, record: dict) -> None:
    """Add (or replace) the preprocessing record inside the ``.keras`` archive at ``path`` (a file this process
    just wrote, e.g. the temporary of :func:`keras_resnet.core.files.atomic_path`)."""
    import json

    path = os.fspath(path)
    record = check_preprocessing(record, path)
    data = json.dumps(record, indent=1).encode("utf-8")
    with zipfile.ZipFile(path) as archive:
        present = PREPROCESSING_ENTRY in archive.namelist()
    if present:  # rewrite without the old entry (zipfile cannot delete)
        tmp = path + ".rewrite"
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                if info.filename != PREPROCESSING_ENTRY:
                    dst.writestr(info, src.read(info))
        os.replace(tmp, path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(PREPROCESSING_ENTRY, data)


def read_preprocessing(model_path: str | os.PathLike) -> dict | None:
    """The preprocessing recorded for a model: the entry inside its ``.keras`` archive, else the
    ``OUT.preprocessing.json`` next to it, else None. A record that is there but malformed is a ModelFileError
    (a silent default would crop and resize differently from the source)."""
    path = os.fspath(model_path)
    if path.endswith(".keras") and os.path.isfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                info = next((i for i in archive.infolist() if i.filename == PREPROCESSING_ENTRY), None)
                if info is not None:
                    if info.file_size > MAX_PREPROCESSING_BYTES:
                        raise ModelFileError(f"{path}: {PREPROCESSING_ENTRY} declares {info.file_size:,} bytes "
                                             f"(at most {MAX_PREPROCESSING_BYTES:,})")
                    return check_preprocessing(_read_json_entry(path, archive, PREPROCESSING_ENTRY, max_depth=4),
                                               f"{path}: {PREPROCESSING_ENTRY}")
        except (zipfile.BadZipFile, OSError) as error:
            raise ModelFileError(f"{path} is not a readable .keras archive: {_first_line(error)}") from error
    sidecar = preprocessing_path(path)
    if not os.path.isfile(sidecar):
        return None
    value = read_json_file(sidecar, max_bytes=MAX_PREPROCESSING_BYTES, max_depth=4, what="preprocessing record")
    return check_preprocessing(value, sidecar)


__all__ = ["ALLOWED_CLASSES", "ALLOWED_FUNCTIONS", "PREPROCESSING_ENTRY", "KerasArchive", "attach_preprocessing",
           "check_config", "check_hdf5", "check_keras_archive", "check_model_file", "check_preprocessing",
           "check_readable", "keras_archive_info", "load_model", "preprocessing_path", "read_preprocessing"]
