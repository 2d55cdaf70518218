"""A quiet console for the command line: TensorFlow's C++ start-up lines and known upstream warnings hidden.

TensorFlow prints oneDNN, CUDA-stub and CPU-feature lines from C++ before its logging is configured, so
``TF_CPP_MIN_LOG_LEVEL`` alone does not hide them: :func:`import_tensorflow` also points the process-level
stderr (file descriptor 2) at /dev/null while TensorFlow loads. Only the ``keras-resnet`` command calls
:func:`quiet`; importing keras_resnet as a library changes no logging or warning settings.
``keras-resnet --verbose ...`` or ``KERAS_RESNET_DEBUG=1`` keeps everything.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import warnings
from collections.abc import Iterator

# Upstream warnings that say nothing actionable to a keras-resnet user: (message regex, category, why).
UPSTREAM_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    (r"You are saving your model as an HDF5 file", UserWarning,
     "tf_keras: QAT models are .h5 on purpose (its .keras format drops tfmot's variables)"),
    (r".*`build\(\)` was called on layer", UserWarning, "tfmot wrappers build lazily"),
    (r".*Skipping variable loading for optimizer", UserWarning, "models load for inference without optimizer"),
    (r".*Compiled the loaded model, but the compiled metrics", UserWarning, "inference-only loading"),
    (r".*is deprecated", DeprecationWarning, "TensorFlow/tfmot internals on Python 3.11+"),
)


def json_line(value) -> str:
    """``value`` as one line of strict JSON: NaN and ±Infinity (not JSON) become null."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), allow_nan=False)


def debug() -> bool:
    return bool(os.environ.get("KERAS_RESNET_DEBUG"))


_QUIET = {"on": False}  # set by quiet(): the command line asked for a quiet console


@contextlib.contextmanager
def _fds_to_devnull(*fds: int) -> Iterator[None]:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(fd) for fd in fds]
    except (OSError, ValueError):  # no real stdout/stderr (embedded interpreters, some notebook kernels)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
        yield
    finally:
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null inside the block (C/C++ output included), then restore it."""
    return _fds_to_devnull(2)


def native_output_silenced():
    """In a quiet command (see :func:`quiet`), send file descriptors 1 and 2 to /dev/null inside the block: for
    library calls that print from C++ (the TFLite converter's ``fully_quantize: ...`` line). A no-op otherwise,
    so library users keep whatever their process prints."""
    return _fds_to_devnull(1, 2) if _QUIET["on"] else contextlib.nullcontext()


def quiet() -> None:
    """Hide TensorFlow's C++ logs (before it loads) and the :data:`UPSTREAM_WARNINGS` for this process."""
    _QUIET["on"] = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    for message, category, _ in UPSTREAM_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


# The Keras backends keras-resnet trains and evaluates on, and the package each needs (setup.cfg extras).
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def keras_backend() -> str:
    """The backend Keras will load, read as Keras reads it (``KERAS_BACKEND``, else ``KERAS_HOME`` or
    ``~/.keras``/keras.json, else tensorflow), without importing Keras."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            config = json.load(f)
        return str(config.get("backend") or "tensorflow") if isinstance(config, dict) else "tensorflow"
    except (OSError, ValueError):
        return "tensorflow"


def check_backend() -> str:
    """Refuse, with one clear error, a Keras backend keras-resnet does not run on or that is not installed
    (Keras itself fails with a traceback from deep inside its import); returns the backend's name."""
    import importlib.util

    from keras_resnet.core.errors import ConfigError

    name = keras_backend()
    if name not in BACKENDS:
        raise ConfigError(f"KERAS_BACKEND={name} is not supported: keras-resnet runs on {', '.join(BACKENDS)}")
    if importlib.util.find_spec(BACKENDS[name]) is None:
        raise ConfigError(f"KERAS_BACKEND={name}, but {BACKENDS[name]} is not installed "
                          f"(pip install 'keras-resnets[{name}]')")
    return name


def start_tensorflow(verbose_logs: bool = False):
    """What a command does before its work needs Keras: refuse a backend keras-resnet cannot run on (one clear
    error, before Keras fails inside its import), then import TensorFlow, its start-up lines hidden unless
    ``verbose_logs``. Returns the module."""
    check_backend()
    return import_tensorflow(silenced=not verbose_logs)


# TensorFlow 2.21 turns its oneDNN kernels on by default only on x86 CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX;
# elsewhere its own Eigen kernels run, built for AVX without FMA ("rebuild TensorFlow with the appropriate compiler
# flags"). oneDNN picks AVX2/FMA kernels at run time: ResNet-20 training on digits (1,024 images, batch 128, --jit
# off, second epoch) took 11-12 s with TF_ENABLE_ONEDNN_OPTS=1 against 17-18 s without, two alternated pairs under
# benchmarks/emulate_isa.py --isa avx2 on a Zen 4 EPYC (loaded: load 8).
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn(features: list[str] | None = None) -> bool:
    """Before TensorFlow is imported, on an x86 CPU with AVX2, set ``TF_ENABLE_ONEDNN_OPTS=1`` unless the user set it
    (a no-op where TensorFlow turns oneDNN on itself). ``features``: :func:`resnet_edge.cpu.cpu_info`'s, which
    honours benchmarks/emulate_isa.py (None: read them). Returns whether it set the variable."""
    if ONEDNN_ENV in os.environ or "tensorflow" in sys.modules:
        return False
    if features is None:
        from resnet_edge.cpu import cpu_info

        features = cpu_info()["features"]
    if "avx2" not in (features or ()):
        return False
    os.environ[ONEDNN_ENV] = "1"
    return True


def onednn_requested() -> bool:
    """Whether ``TF_ENABLE_ONEDNN_OPTS`` asks TensorFlow for its oneDNN kernels ("1" or "true", as TensorFlow reads
    it). Unset, TensorFlow decides: on with AVX-512 VNNI/BF16, AVX-VNNI or AMX, off on plain AVX2."""
    return os.environ.get(ONEDNN_ENV, "").strip().lower() in ("1", "true")


def import_tensorflow(silenced: bool = True):
    """Import TensorFlow (and Keras on it) with its start-up lines hidden, its oneDNN kernels preferred
    (:func:`prefer_onednn`); returns the module."""
    prefer_onednn()
    if "tensorflow" in sys.modules or not silenced:
        import tensorflow as tf
    else:
        with native_stderr_silenced():
            import keras  # noqa: F401  (its backend import repeats some of TensorFlow's lines)
            import tensorflow as tf

            # Where a CUDA toolkit is installed without a GPU, the first op's platform probe prints a cuInit
            # error line (TF 2.21); probing here, silenced, keeps it out of consoles and stored notebooks.
            # Physical devices only: logical devices (virtual CPUs for tests) can still be configured.
            tf.config.list_physical_devices()
    tf.get_logger().setLevel("ERROR")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; a TensorFlow without it still works
        pass
    return tf
