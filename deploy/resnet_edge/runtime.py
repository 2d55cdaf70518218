"""Pick a TFLite runtime: ``ai_edge_litert`` (LiteRT), ``tflite_runtime`` (legacy, ≤ 2.14), ``tensorflow.lite``
(imported only when the others are missing or it is asked for by name); whether LiteRT's CompiledModel API is there;
the errors every loading step raises (:class:`ModelError`, :class:`RuntimeUnavailable`); and quieting the C++ log
lines runtimes write to fd 2.

APIs, in order of preference: LiteRT's CompiledModel (the API LiteRT 2.x recommends; CPU through XNNPACK with an
explicit thread count, or an accelerator with the CPU taking what it cannot), then the Interpreter (tflite-runtime,
tensorflow.lite, or a model CompiledModel cannot load), then the Interpreter with an external delegate (Edge TPU).
The engines on each API are in :mod:`.engine`, the child-process guard in :mod:`.guard`, :func:`.loader.open_model`
puts them together.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RUNTIMES = ("litert", "tflite-runtime", "tensorflow")
ACCELERATORS = ("cpu", "gpu", "npu")
APIS = ("auto", "compiled", "interpreter")


class ModelError(ValueError):
    """The model cannot be used (missing, malformed, crashing the runtime, unsupported inputs)."""


class RuntimeUnavailable(RuntimeError):
    """The requested TFLite runtime (or accelerator) is not available."""


@dataclass(frozen=True)


class Runtime:
    name: str
    version: str
    Interpreter: Any
    load_delegate: Callable[..., Any]


def _import(name: str) -> Runtime:
    if name == "litert":
        from ai_edge_litert import interpreter as mod

        try:
            from importlib.metadata import version

            ver = version("ai-edge-litert")
        except Exception:  # pragma: no cover - vendored copies without dist-info
            ver = getattr(mod, "__version__", "unknown")
    elif name == "tflite-runtime":
        import tflite_runtime
        from tflite_runtime import interpreter as mod

        ver = getattr(tflite_runtime, "__version__", "unknown")
    elif name == "tensorflow":
        import tensorflow as tf

        mod, ver = tf.lite, tf.__version__
        return Runtime(name, ver, mod.Interpreter, mod.experimental.load_delegate)
    else:
        raise RuntimeUnavailable(f"unknown runtime {name!r}; choose from auto, {', '.join(RUNTIMES)}")
    return Runtime(name, ver, mod.Interpreter, mod.load_delegate)


def select_runtime(name: str = "auto") -> Runtime:
    """The named runtime, or with ``"auto"`` the first importable of :data:`RUNTIMES`."""
    if name != "auto":
        try:
            return _import(name)
        except ImportError as error:
            raise RuntimeUnavailable(f"runtime {name!r} is not installed ({error})") from None
    for candidate in RUNTIMES:
        try:
            return _import(candidate)
        except ImportError:
            continue
    raise RuntimeUnavailable("no TFLite runtime found: pip install ai-edge-litert (or tflite-runtime==2.14.0)")


def compiled_model_api() -> bool:
    """Whether LiteRT's CompiledModel API can be imported (ai-edge-litert 2.x)."""
    try:
        from ai_edge_litert.compiled_model import CompiledModel  # noqa: F401
        from ai_edge_litert.options import CpuOptions, Options  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager


def quiet_stderr():
    """Silence C++ log lines (``INFO: Created TensorFlow Lite XNNPACK delegate``) written to fd 2."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def first_line(error: BaseException | str | None) -> str:
    text = str(error or "").strip()
    lines = [ln.strip(" └") for ln in text.splitlines() if ln.strip(" └") and not ln.startswith("ERROR: [./")]
    return (lines[-1] if lines else type(error).__name__ if isinstance(error, BaseException) else "unknown")[:300]
