"""Pick a TFLite runtime, guard model loading in a child process, and run a model.

Runtimes, in order of preference: ``ai_edge_litert`` (LiteRT), ``tflite_runtime`` (legacy, ≤ 2.14),
``tensorflow.lite`` (imported only when the others are missing or it is asked for by name).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metadata import check_model

RUNTIMES = ("litert", "tflite-runtime", "tensorflow")
ACCELERATORS = ("cpu", "gpu", "npu")


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


@dataclass(frozen=True)
class TensorSpec:
    """What the runner needs to know about an input or output tensor."""

    index: int
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0
    dynamic_batch: bool = False

    @classmethod
    def from_details(cls, d: dict) -> TensorSpec:
        signature = d.get("shape_signature", d["shape"])
        scale, zero = d.get("quantization", (0.0, 0))
        return cls(int(d["index"]), tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]).name, float(scale),
                   int(zero), len(signature) > 0 and int(signature[0]) == -1)

    def as_dict(self) -> dict:
        return {"index": self.index, "shape": list(self.shape), "dtype": self.dtype, "scale": self.scale,
                "zero_point": self.zero_point, "dynamic_batch": self.dynamic_batch}


_DTYPES = ("float32", "int8", "uint8")


def check_io(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
    """Raise ModelError unless the model has one 4-D NHWC image input and a [batch, classes] output."""
    if len(inputs) != 1:
        raise ModelError(f"the model has {len(inputs)} inputs; resnet-edge needs exactly one image input")
    spec = inputs[0]
    if len(spec.shape) != 4:
        raise ModelError(f"the model input has shape {list(spec.shape)} (rank {len(spec.shape)}); "
                         "resnet-edge needs a 4-D NHWC image input")
    if spec.shape[3] not in (1, 3) or min(spec.shape[1:3]) < 1:
        raise ModelError(f"the model input has shape {list(spec.shape)}; expected [batch, height, width, 3]")
    if spec.dtype not in _DTYPES:
        raise ModelError(f"the model input type is {spec.dtype}; supported: {', '.join(_DTYPES)}")
    if not outputs or len(outputs[0].shape) != 2 or outputs[0].dtype not in _DTYPES:
        out = outputs[0] if outputs else None
        raise ModelError(f"the model output is {list(out.shape) if out else 'missing'} {out.dtype if out else ''}"
                         "; resnet-edge needs a [batch, classes] float32/int8/uint8 output")


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


def _delegate_name(interpreter: Any, default: str) -> str:
    """"xnnpack" when the runtime's default delegate took nodes, else "builtin" (reference kernels)."""
    try:
        ops = interpreter._get_ops_details()  # private, but present in every runtime we support
    except Exception:
        return default
    return default if any(op.get("op_name") == "DELEGATE" for op in ops) else "builtin"


# ---- engines ---------------------------------------------------------------------------------------------


@dataclass
class Engine:
    """A loaded model: ``run(x)`` takes a batch of input-typed arrays and returns the raw output."""

    input: TensorSpec
    output: TensorSpec
    info: dict[str, Any]
    batch: int = 1
    _run: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    _resize: Callable[[int], None] | None = field(default=None, repr=False)

    def set_batch(self, n: int) -> None:
        """Resize the batch dimension (models with a dynamic batch only)."""
        if n != self.batch:
            if self._resize is None:
                raise ModelError("this model has a fixed batch size")
            self._resize(n)
            self.batch = n

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._run(x)


def _interpreter_engine(path: str, rt: Runtime, threads: int, delegates: list, delegate: str) -> Engine:
    with quiet_stderr():
        it = rt.Interpreter(model_path=path, num_threads=threads, experimental_delegates=delegates or None)
        it.allocate_tensors()
    inputs = [TensorSpec.from_details(d) for d in it.get_input_details()]
    outputs = [TensorSpec.from_details(d) for d in it.get_output_details()]
    check_io(inputs, outputs)
    engine = Engine(inputs[0], outputs[0], {"runtime": rt.name, "runtime_version": rt.version, "threads": threads,
                                            "delegate": _delegate_name(it, delegate), "accelerator": "cpu"},
                    batch=inputs[0].shape[0])
    i, o = inputs[0].index, outputs[0].index

    def run(x: np.ndarray) -> np.ndarray:
        it.set_tensor(i, x)
        it.invoke()
        return it.get_tensor(o)

    def resize(n: int) -> None:
        it.resize_tensor_input(i, [n, *engine.input.shape[1:]], strict=True)
        it.allocate_tensors()

    engine._run, engine._resize, engine._interpreter = run, (resize if inputs[0].dynamic_batch else None), it
    return engine


def _compiled_engine(path: str, accelerator: str, threads: int, details: dict) -> Engine:
    """An engine on LiteRT's CompiledModel API (``accelerator``: cpu, gpu or npu; CPU takes what it cannot)."""
    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator as HA
        from ai_edge_litert.options import CpuOptions, Options
    except ImportError as error:
        raise RuntimeUnavailable(f"--accelerator needs ai-edge-litert's CompiledModel API ({error})") from None
    wanted = {"cpu": HA.CPU, "gpu": HA.GPU, "npu": HA.NPU}[accelerator]
    last: Exception | None = None
    for accel, label in ((wanted, accelerator), (wanted | HA.CPU, f"{accelerator}+cpu")):  # noqa: B007 (label is read after the loop)
        try:
            with quiet_stderr():
                model = CompiledModel.from_file(path, options=Options(accel, cpu_options=CpuOptions(num_threads=threads)))
            break
        except Exception as error:  # noqa: BLE001 - the wrapper raises RuntimeError with C++ log text
            last = error
    else:
        raise RuntimeUnavailable(f"accelerator {accelerator} is not available: {_first_line(last)}")
    full = bool(model.is_fully_accelerated()) if accelerator != "cpu" else True
    if label.endswith("+cpu") and accelerator != "cpu" and not full:
        raise RuntimeUnavailable(f"accelerator {accelerator} took no part of the model (not fully accelerated)")
    inputs = [TensorSpec(**{**d, "shape": tuple(d["shape"])}) for d in details["inputs"]]
    outputs = [TensorSpec(**{**d, "shape": tuple(d["shape"])}) for d in details["outputs"]]
    check_io(inputs, outputs)
    ins, outs = model.create_input_buffers(0), model.create_output_buffers(0)
    out_spec = outputs[0]
    count = int(np.prod(out_spec.shape))
    rt = select_runtime("litert")

    def run(x: np.ndarray) -> np.ndarray:
        ins[0].write(np.ascontiguousarray(x))
        model.run_by_index(0, ins, outs)
        return outs[0].read(count, np.dtype(out_spec.dtype)).reshape(out_spec.shape)

    engine = Engine(inputs[0], out_spec, {"runtime": rt.name, "runtime_version": rt.version, "threads": threads,
                                          "delegate": "compiled_model", "accelerator": label,
                                          "fully_accelerated": full}, batch=inputs[0].shape[0], _run=run)
    engine._model = model
    return engine


def _first_line(error: BaseException | str | None) -> str:
    text = str(error or "").strip()
    lines = [ln.strip(" └") for ln in text.splitlines() if ln.strip(" └") and not ln.startswith("ERROR: [./")]
    return (lines[-1] if lines else type(error).__name__ if isinstance(error, BaseException) else "unknown")[:300]


# ---- the guard: load in a child process first ---------------------------------------------------------------


def _probe_child(path: str, runtime: str, delegate: str | None, options: dict, accelerator: str | None) -> None:
    """Child side of :func:`probe`: print one JSON line per phase (base, delegate, accelerator)."""

    def emit(obj: dict) -> None:
        print(json.dumps(obj), flush=True)

    try:
        rt = select_runtime(runtime)
        with quiet_stderr():
            it = rt.Interpreter(model_path=path, num_threads=1)
            it.allocate_tensors()
        inputs = [TensorSpec.from_details(d) for d in it.get_input_details()]
        outputs = [TensorSpec.from_details(d) for d in it.get_output_details()]
        check_io(inputs, outputs)
        it.set_tensor(inputs[0].index, np.zeros(inputs[0].shape, inputs[0].dtype))
        it.invoke()
        it.get_tensor(outputs[0].index)
        emit({"phase": "base", "inputs": [s.as_dict() for s in inputs], "outputs": [s.as_dict() for s in outputs]})
    except Exception as error:  # noqa: BLE001 - everything becomes a one-line report
        emit({"phase": "base", "error": _first_line(error), "kind": type(error).__name__})
        return
    if delegate:
        try:
            with quiet_stderr():
                d = rt.load_delegate(delegate, options)
                it = rt.Interpreter(model_path=path, num_threads=1, experimental_delegates=[d])
                it.allocate_tensors()
                it.set_tensor(inputs[0].index, np.zeros(inputs[0].shape, inputs[0].dtype))
                it.invoke()
            emit({"phase": "delegate"})
        except Exception as error:  # noqa: BLE001
            emit({"phase": "delegate", "error": _first_line(error)})
    if accelerator:
        try:
            details = {"inputs": [s.as_dict() for s in inputs], "outputs": [s.as_dict() for s in outputs]}
            engine = _compiled_engine(path, accelerator, 1, details)
            engine.run(np.zeros(inputs[0].shape, inputs[0].dtype))
            emit({"phase": "accelerator", "accelerator": engine.info["accelerator"]})
        except Exception as error:  # noqa: BLE001
            emit({"phase": "accelerator", "error": _first_line(error)})


_CHILD = ("import json, sys; from resnet_edge.runtime import _probe_child; "
          "a = sys.argv; _probe_child(a[1], a[2], a[3] or None, json.loads(a[4]), a[5] or None)")


def probe(path: str, runtime: str = "auto", *, delegate: str | None = None, delegate_options: dict | None = None,
          accelerator: str | None = None, timeout: float = 120.0) -> dict[str, dict]:
    """Load, allocate and invoke the model once in a child process; return ``{phase: report}``.

    A model that crashes or hangs the runtime costs the child, not the caller: the base phase of a
    crash or timeout raises :class:`ModelError`. A crash in a later phase (delegate, accelerator)
    is reported as that phase's error.
    """
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    args = [sys.executable, "-c", _CHILD, path, runtime, delegate or "", json.dumps(delegate_options or {}),
            accelerator or ""]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
        stdout, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired as error:
        stdout, code = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else (error.stdout or ""), None
    reports: dict[str, dict] = {}
    for line in stdout.splitlines():
        try:
            report = json.loads(line)
            reports[report["phase"]] = report
        except (ValueError, KeyError, TypeError):
            continue
    if code is None:
        why = f"the runtime did not finish loading it within {timeout:g} s"
    elif code < 0:
        try:
            why = f"the runtime crashed on it ({signal.Signals(-code).name})"
        except ValueError:
            why = f"the runtime crashed on it (signal {-code})"
    else:
        why = f"the check process failed (exit code {code})" if code else ""
    if "base" not in reports:
        raise ModelError(why or "the check process reported nothing")
    if "error" in reports["base"]:
        raise ModelError(reports["base"]["error"])
    for phase, wanted in (("delegate", delegate), ("accelerator", accelerator)):
        if wanted and phase not in reports:
            reports[phase] = {"phase": phase, "error": why or "not checked"}
            why = ""  # only the first missing phase crashed
    return reports


# ---- the entry point ----------------------------------------------------------------------------------------


def _warn(message: str) -> None:
    print(f"resnet-edge: warning: {message}", file=sys.stderr)


def open_model(path: str | os.PathLike, *, runtime: str = "auto", threads: int | None = None,
               delegate: str | None = None, delegate_options: dict | None = None, accelerator: str | None = None,
               require_accelerator: bool = False, safe: bool = True, timeout: float = 120.0,
               warn: Callable[[str], None] = _warn) -> Engine:
    """Validate ``path``, check it in a child process (``safe``), and load it here.

    ``delegate``: an external delegate library loaded with ``load_delegate`` (Edge TPU, GPU, ...);
    ``accelerator``: cpu/gpu/npu through LiteRT's CompiledModel API. If either cannot be used a
    warning goes to ``warn`` and the model runs on the CPU (XNNPACK), unless ``require_accelerator``,
    which raises :class:`RuntimeUnavailable` instead. Raises :class:`ModelError` for unusable models.
    """
    path = os.fspath(path)
    if accelerator is not None and accelerator not in ACCELERATORS:
        raise ValueError(f"unknown accelerator {accelerator!r}; choose from {', '.join(ACCELERATORS)}")
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise ModelError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            content = f.read()
        check_model(content)
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: {error}") from None
    del content
    threads = max(1, threads or os.cpu_count() or 1)
    rt = select_runtime(runtime)  # raises RuntimeUnavailable before a child is spawned
    reports: dict[str, dict] = {}
    if safe:
        try:
            reports = probe(path, rt.name, delegate=delegate, delegate_options=delegate_options,
                            accelerator=accelerator, timeout=timeout)
        except ModelError as error:
            raise ModelError(f"{path}: {error}") from None

    def fallback(what: str, why: str) -> None:
        if require_accelerator:
            raise RuntimeUnavailable(f"{what} cannot be used: {why}")
        warn(f"{what} cannot be used ({why}); running on the CPU")

    if accelerator is not None:
        report = reports.get("accelerator", {})
        if "error" in report:
            fallback(f"accelerator {accelerator}", report["error"])
        else:
            try:
                details = reports.get("base") or _details_in_process(path, rt)
                return _compiled_engine(path, accelerator, threads, details)
            except (RuntimeUnavailable, RuntimeError, ImportError) as error:
                fallback(f"accelerator {accelerator}", _first_line(error))
    delegates, name = [], "xnnpack"
    if delegate:
        report = reports.get("delegate", {})
        if "error" in report:
            fallback(f"delegate {delegate}", report["error"])
        else:
            try:
                with quiet_stderr():
                    delegates, name = [rt.load_delegate(delegate, delegate_options or {})], os.path.basename(delegate)
            except (ValueError, OSError, RuntimeError) as error:
                fallback(f"delegate {delegate}", _first_line(error))
    try:
        return _interpreter_engine(path, rt, threads, delegates, name)
    except ModelError as error:
        raise ModelError(f"{path}: {error}") from None
    except (ValueError, RuntimeError) as error:
        if delegates:
            fallback(f"delegate {delegate}", _first_line(error))
            return _interpreter_engine(path, rt, threads, [], "xnnpack")
        raise ModelError(f"{path}: {_first_line(error)}") from None


def _details_in_process(path: str, rt: Runtime) -> dict:
    engine = _interpreter_engine(path, rt, 1, [], "xnnpack")
    return {"inputs": [engine.input.as_dict()], "outputs": [engine.output.as_dict()]}
