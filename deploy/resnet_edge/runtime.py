"""Pick a TFLite runtime, guard model loading in a child process, and run a model.

Runtimes, in order of preference: ``ai_edge_litert`` (LiteRT), ``tflite_runtime`` (legacy, ≤ 2.14),
``tensorflow.lite`` (imported only when the others are missing or it is asked for by name).

APIs, in order of preference: LiteRT's CompiledModel (the API LiteRT 2.x recommends; CPU through XNNPACK with an
explicit thread count, or an accelerator with the CPU taking what it cannot), then the Interpreter (tflite-runtime,
tensorflow.lite, or a model CompiledModel cannot load), then the Interpreter with an external delegate (Edge TPU).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .files import read_regular_file
from .metadata import check_model

MB = 1 << 20
TENSOR_FLOOR = 256 * MB  # tensors of a model at batch 1 may need at least this much, whatever its file size
TENSOR_PER_FILE_BYTE = 8  # ... or 8 bytes per byte of the file (ResNets at their input size: about 1)
GUARD_SLACK = 128 * MB  # the guard child's allowance beyond the tensors and 4 copies of the file
CPU_FLOOR_S = 60  # the guard child's CPU time: this much, plus 1 s per MB of the file

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


@dataclass(frozen=True)
class Limits:
    """How much a model may use. ``tensor_bytes``: the tensors the runtime allocates for one batch-1 run (checked
    from the file before anything runs); ``guard_bytes``/``guard_cpu_s``: the guard child's address space (beyond
    the runtime it imports) and CPU time."""

    tensor_bytes: int
    guard_bytes: int
    guard_cpu_s: int

    @classmethod
    def for_file(cls, file_bytes: int, max_memory_mb: float | None = None) -> Limits:
        """Derived from the file size with floors; ``max_memory_mb`` (``--max-memory``) replaces the tensor bound."""
        if max_memory_mb is not None:
            if not (isinstance(max_memory_mb, (int, float)) and math.isfinite(max_memory_mb) and max_memory_mb > 0):
                raise ValueError(f"max_memory_mb must be a positive number; got {max_memory_mb!r}")
            tensors = int(max_memory_mb * MB)
        else:
            tensors = max(TENSOR_FLOOR, TENSOR_PER_FILE_BYTE * file_bytes)
        return cls(tensors, tensors + 4 * file_bytes + GUARD_SLACK, CPU_FLOOR_S + file_bytes // MB)


def check_sizes(summary: dict, limits: Limits) -> None:
    """Raise ModelError when the tensors the file declares need more than ``limits.tensor_bytes`` at batch 1."""
    need = summary.get("activation_bytes", 0)
    if need > limits.tensor_bytes:
        raise ModelError(f"the model's tensors need {need / MB:,.0f} MB at batch 1, more than the "
                         f"{limits.tensor_bytes / MB:,.0f} MB allowed for a {_size(summary.get('file_bytes', 0))} "
                         "file (a corrupt shape? --max-memory MB raises the limit)")


def _size(n: int) -> str:
    return f"{n / MB:,.1f} MB" if n >= MB else f"{n / 1024:,.1f} KB"


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
    tensor_bytes: int = 0  # what the file declares for batch 1 (0: unknown)
    max_tensor_bytes: int = 0  # the limit (0: none)

    def max_batch(self) -> int:
        """The largest batch whose tensors fit the limit (at least 1)."""
        if not self.tensor_bytes or not self.max_tensor_bytes:
            return 1 << 16
        return max(1, self.max_tensor_bytes // self.tensor_bytes)

    def set_batch(self, n: int) -> None:
        """Resize the batch dimension (models with a dynamic batch only)."""
        if n != self.batch:
            if self._resize is None:
                raise ModelError("this model has a fixed batch size")
            if n > self.max_batch():
                raise ModelError(f"batch {n} needs about {n * self.tensor_bytes / MB:,.0f} MB of tensors, more than "
                                 f"the {self.max_tensor_bytes / MB:,.0f} MB allowed (largest batch: {self.max_batch()}"
                                 "; --max-memory MB raises the limit)")
            try:
                self._resize(n)
            except (RuntimeError, ValueError) as error:  # e.g. a shape that disagrees with its signature
                raise ModelError(f"cannot run batches of {n}: {_first_line(error)}") from None
            self.batch = n

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._run(x)

    def close(self) -> None:
        """Release the runtime's objects now (quietly: LiteRT logs its teardown)."""
        with quiet_stderr():
            self._run = self._resize = None
            for name in ("_model", "_interpreter"):
                if hasattr(self, name):
                    setattr(self, name, None)
            import gc

            gc.collect()

    def __del__(self) -> None:
        if getattr(self, "_model", None) is not None:
            try:
                self.close()
            except Exception:  # noqa: BLE001 - at interpreter shutdown modules may be gone
                pass


def _interpreter_engine(path: str, rt: Runtime, threads: int, delegates: list, delegate: str) -> Engine:
    with quiet_stderr():
        it = rt.Interpreter(model_path=path, num_threads=threads, experimental_delegates=delegates or None)
        it.allocate_tensors()
    inputs = [TensorSpec.from_details(d) for d in it.get_input_details()]
    outputs = [TensorSpec.from_details(d) for d in it.get_output_details()]
    check_io(inputs, outputs)
    name = _delegate_name(it, delegate)
    engine = Engine(inputs[0], outputs[0], {"runtime": rt.name, "runtime_version": rt.version, "threads": threads,
                                            "delegate": name, "accelerator": "cpu", "api": "interpreter",
                                            "path": f"interpreter:{name}"},
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


def compiled_model_api() -> bool:
    """Whether LiteRT's CompiledModel API can be imported (ai-edge-litert 2.x)."""
    try:
        from ai_edge_litert.compiled_model import CompiledModel  # noqa: F401
        from ai_edge_litert.options import CpuOptions, Options  # noqa: F401
    except ImportError:
        return False
    return True


def _compiled_engine(path: str, accelerator: str, threads: int, details: dict) -> Engine:
    """An engine on LiteRT's CompiledModel API. ``accelerator``: cpu, or gpu/npu with the CPU taking the ops the
    accelerator cannot (``GPU|CPU``; ``GPU`` alone when the combination fails). The CPU runs ``threads`` threads,
    always set explicitly: the API's own default (``hardware_accel=`` without options) is 1 thread."""
    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator as HA
        from ai_edge_litert.options import CpuOptions, Options
    except ImportError as error:
        raise RuntimeUnavailable(f"--accelerator needs ai-edge-litert's CompiledModel API ({error})") from None
    wanted = {"cpu": HA.CPU, "gpu": HA.GPU, "npu": HA.NPU}[accelerator]
    tries = ((HA.CPU, "cpu"),) if accelerator == "cpu" else ((wanted | HA.CPU, f"{accelerator}+cpu"),
                                                            (wanted, accelerator))
    last: Exception | None = None
    for accel, label in tries:  # noqa: B007 (label is read after the loop)
        try:
            with quiet_stderr():
                model = CompiledModel.from_file(path, options=Options(accel, cpu_options=CpuOptions(num_threads=threads)))
            break
        except Exception as error:  # noqa: BLE001 - the wrapper raises RuntimeError with C++ log text
            last = error
    else:
        raise RuntimeUnavailable(f"accelerator {accelerator} is not available: {_first_line(last)}")
    # cpu: whether XNNPACK took every op (False: some run on the builtin kernels, see `resnet-edge check`)
    full = bool(model.is_fully_accelerated())
    inputs = [TensorSpec(**{**d, "shape": tuple(d["shape"])}) for d in details["inputs"]]
    outputs = [TensorSpec(**{**d, "shape": tuple(d["shape"])}) for d in details["outputs"]]
    check_io(inputs, outputs)
    state = {"ins": model.create_input_buffers(0), "outs": model.create_output_buffers(0),
             "shape": outputs[0].shape}
    out_spec = outputs[0]
    rt = select_runtime("litert")

    def run(x: np.ndarray) -> np.ndarray:
        shape = state["shape"]
        state["ins"][0].write(np.ascontiguousarray(x))
        model.run_by_index(0, state["ins"], state["outs"])
        return state["outs"][0].read(int(np.prod(shape)), np.dtype(out_spec.dtype)).reshape(shape)

    def resize(n: int) -> None:
        with quiet_stderr():
            model.resize_input_tensor(0, [n, *inputs[0].shape[1:]])
            state.update(ins=model.create_input_buffers(0), outs=model.create_output_buffers(0),
                         shape=(n, *out_spec.shape[1:]))
            run(np.zeros((n, *inputs[0].shape[1:]), inputs[0].dtype))

    # LiteRT 2.3 logs INFO lines to fd 2 when the first run sets up its environment and when that is torn down,
    # with no switch to turn them off: run once here, quietly, and keep fd 2 quiet at exit (see _quiet_exit).
    with quiet_stderr():
        run(np.zeros(inputs[0].shape, inputs[0].dtype))
    _quiet_exit()

    engine = Engine(inputs[0], out_spec, {"runtime": rt.name, "runtime_version": rt.version, "threads": threads,
                                          "delegate": "compiled_model", "accelerator": label,
                                          "fully_accelerated": full, "api": "compiled_model",
                                          "path": f"compiled_model:{label}"},
                    batch=inputs[0].shape[0], _run=run, _resize=resize if inputs[0].dynamic_batch else None)
    engine._model = model
    return engine


_EXIT_QUIET: list[bool] = []


def _quiet_exit() -> None:
    """Once: at interpreter exit (after Python has printed any traceback), point fd 2 at /dev/null so that LiteRT's
    teardown log lines ("DestroyAccelerator ...") do not follow our output."""
    if _EXIT_QUIET:
        return
    _EXIT_QUIET.append(True)
    import atexit

    def silence() -> None:
        try:
            sys.stderr.flush()
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
        except (OSError, ValueError):
            pass

    atexit.register(silence)


def _first_line(error: BaseException | str | None) -> str:
    text = str(error or "").strip()
    lines = [ln.strip(" └") for ln in text.splitlines() if ln.strip(" └") and not ln.startswith("ERROR: [./")]
    return (lines[-1] if lines else type(error).__name__ if isinstance(error, BaseException) else "unknown")[:300]


# ---- the guard: load in a child process first ---------------------------------------------------------------


def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _resident(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in bytes (Linux), else 0."""
    try:
        with open("/proc/self/status") as f:
            line = next(ln for ln in f if ln.startswith(field + ":"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError, IndexError):
        return 0


def _limit_child(budget: int, cpu_seconds: int) -> dict:
    """Cap this (child) process: address space = what it has mapped now + ``budget``, CPU time, no core files."""
    try:
        import resource
    except ImportError:  # not POSIX: the tensor check and the timeout still hold
        return {}
    applied: dict[str, int] = {}
    for name, value in (("RLIMIT_CORE", 0), ("RLIMIT_CPU", cpu_seconds)):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            hard = resource.getrlimit(getattr(resource, name))[1]
            soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(getattr(resource, name), (soft, hard))
            applied[name] = soft
    now = _address_space()
    if now is not None and hasattr(resource, "RLIMIT_AS"):
        with contextlib.suppress(ValueError, OSError):
            hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            soft = now + budget if hard == resource.RLIM_INFINITY else min(now + budget, hard)
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
            applied["RLIMIT_AS"] = soft
    return applied


def _raise_address_space(soft: int) -> bool:
    try:
        import gc
        import resource

        gc.collect()
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
        return True
    except (ImportError, ValueError, OSError):
        return False


def _probe_child(path: str, runtime: str, delegate: str | None, options: dict, accelerator: str | None,
                 budget: int = 0, cpu_seconds: int = 0) -> None:
    """Child side of :func:`probe`: print one JSON line per phase (base, delegate, accelerator).

    The runtime is imported first; then the address space is capped at what the process has mapped plus
    ``budget`` bytes and the CPU time at ``cpu_seconds`` (0: no cap), before the model is read.
    """

    def emit(obj: dict) -> None:
        print(json.dumps(obj), flush=True)

    def attempt() -> tuple[list[TensorSpec], list[TensorSpec]]:
        it = rt.Interpreter(model_path=path, num_threads=1)
        it.allocate_tensors()
        inputs = [TensorSpec.from_details(d) for d in it.get_input_details()]
        outputs = [TensorSpec.from_details(d) for d in it.get_output_details()]
        check_io(inputs, outputs)
        it.set_tensor(inputs[0].index, np.zeros(inputs[0].shape, inputs[0].dtype))
        it.invoke()
        it.get_tensor(outputs[0].index)
        return inputs, outputs

    limits: dict = {}
    try:
        rt = select_runtime(runtime)
        if budget and cpu_seconds:
            limits = _limit_child(budget, cpu_seconds)
            emit({"phase": "limits", **limits})
        before = _resident("VmRSS")
        inputs, outputs = attempt()
        peak = _resident("VmHWM")
        emit({"phase": "base", "inputs": [s.as_dict() for s in inputs], "outputs": [s.as_dict() for s in outputs],
              "peak_bytes": max(0, peak - before) if peak and before else 0})
    except Exception as error:  # noqa: BLE001 - everything becomes a one-line report
        report = {"phase": "base", "error": _first_line(error), "kind": type(error).__name__}
    else:
        report = None
    if report is not None:  # (outside the except block: its traceback would keep the first interpreter alive)
        # Runtimes rarely say that an allocation failed ("XNNPack delegate failed to reshape runtime"): with
        # half the budget more, does it work? Then memory was the cause.
        if "RLIMIT_AS" in limits and _raise_address_space(max(limits["RLIMIT_AS"], _address_space() or 0)
                                                          + budget // 2):
            try:
                attempt()
                report["kind"] = "MemoryError"
            except Exception:  # noqa: BLE001 - the first error stands
                pass
        emit(report)
        return
    if delegate:
        try:
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
          "a = sys.argv; _probe_child(a[1], a[2], a[3] or None, json.loads(a[4]), a[5] or None, int(a[6]), int(a[7]))")
_OUT_OF_MEMORY = re.compile(r"bad_alloc|MemoryError|[Cc]annot allocate|[Oo]ut of memory|[Ff]ailed to allocate|"
                            r"mmap|Resource temporarily unavailable|std::length_error")
_PREPARE_FAILED = re.compile(r"failed to (prepare|reshape|allocate|create)", re.I)
# A single-threaded child environment: thread pools and malloc arenas would reserve address space for nothing.
_CHILD_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}


def probe(path: str, runtime: str = "auto", *, delegate: str | None = None, delegate_options: dict | None = None,
          accelerator: str | None = None, timeout: float = 120.0, limits: Limits | None = None) -> dict[str, dict]:
    """Load, allocate and invoke the model once in a child process; return ``{phase: report}``.

    A model that crashes, hangs or exhausts the runtime costs the child, not the caller: the child runs under
    ``limits`` (address space and CPU time; default: derived from the file size) and ``timeout``, and the base
    phase of a crash, a timeout or a limit raises :class:`ModelError` ("the model needs more than N MB"). A crash
    in a later phase (delegate, accelerator) is reported as that phase's error. :class:`RuntimeUnavailable` when
    the child cannot be started.
    """
    limits = limits or Limits.for_file(os.path.getsize(path))
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, **_CHILD_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    args = [sys.executable, "-c", _CHILD, path, runtime, delegate or "", json.dumps(delegate_options or {}),
            accelerator or "", str(limits.guard_bytes), str(limits.guard_cpu_s)]
    stderr = ""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, errors="replace")
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as error:
        out = error.stdout or ""
        stdout, code = out.decode(errors="replace") if isinstance(out, bytes) else out, None
    except (OSError, ValueError) as error:  # no executable, no memory or processes left to fork
        reason = getattr(error, "strerror", None) or str(error)
        raise RuntimeUnavailable(f"cannot start the process that checks the model ({reason}); --no-guard skips "
                                 "the check") from None
    reports: dict[str, dict] = {}
    for line in stdout.splitlines():
        try:
            report = json.loads(line)
            reports[report["phase"]] = report
        except (ValueError, KeyError, TypeError):
            continue
    limited = "RLIMIT_AS" in reports.get("limits", {})
    memory = (f"the model needs more than {limits.guard_bytes / MB:,.0f} MB to load and run once (the limit for "
              f"a {_size(os.path.getsize(path))} file; --max-memory MB raises it)")
    if code is None:
        why = f"the runtime did not finish loading it within {timeout:g} s"
    elif code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        if name == "SIGXCPU":
            why = f"the model needs more than {limits.guard_cpu_s} s of CPU time to load and run once"
        elif limited and _OUT_OF_MEMORY.search(stderr):
            why = memory
        else:
            why = f"the runtime crashed on it ({name})"
    else:
        why = f"the check process failed (exit code {code})" if code else ""
        if code and limited and _OUT_OF_MEMORY.search(stderr):
            why = memory
    if "base" not in reports:
        raise ModelError(why or "the check process reported nothing")
    if "error" in reports["base"]:
        base = reports["base"]
        if limited and (base.get("kind") == "MemoryError" or _OUT_OF_MEMORY.search(base["error"])):
            raise ModelError(memory)
        if limited and _PREPARE_FAILED.search(base["error"]):  # an allocation, or something else, failed
            raise ModelError(f"{base['error'].rstrip('.')} (under the {limits.guard_bytes / MB:,.0f} MB limit: the "
                             "model may need more; --max-memory MB raises it)")
        raise ModelError(base["error"])
    for phase, wanted in (("delegate", delegate), ("accelerator", accelerator)):
        if wanted and phase not in reports:
            reports[phase] = {"phase": phase, "error": why or "not checked"}
            why = ""  # only the first missing phase crashed
    return reports


# ---- the machine ------------------------------------------------------------------------------------------------

# CPU features that decide int8 and float speed in XNNPACK: x86 AVX2/AVX-512, VNNI (int8 dot products: AVX512_VNNI,
# AVX_VNNI), AMX (tile int8/bf16), AVX512_FP16/BF16; Arm NEON (asimd), dot-product (asimddp), i8mm, SVE, bf16.
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
                "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve", "sve2", "bf16")


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """``{"model", "cores", "features"}`` of this machine: the model name and those of :data:`CPU_FEATURES` that
    ``/proc/cpuinfo`` lists (x86 ``flags``, Arm ``Features``); ``features`` is None where that file is missing.
    Under ``benchmarks/emulate_isa.py`` the features CPUID hides are left out and listed in ``cpuid_hidden``."""
    import platform

    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", errors="replace") as f:
                cpuinfo = f.read(1 << 20)
        except OSError:
            cpuinfo = ""
    model, flags = "", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    if not model and "CPU implementer" in cpuinfo:
        model = f"Arm (implementer {cpuinfo.split('CPU implementer')[1].split(':')[1].split()[0]})"
    # benchmarks/emulate_isa.py masks CPUID (what XNNPACK reads) but not /proc/cpuinfo: report what the kernels see
    hidden = set(os.environ.get("RESNET_EDGE_CPUID_HIDDEN", "").split()) & flags
    info = {"model": model or platform.processor() or platform.machine(), "machine": platform.machine(),
            "cores": os.cpu_count(), "features": [f for f in CPU_FEATURES if f in flags - hidden] if cpuinfo else None}
    if hidden:
        info["cpuid_hidden"] = sorted(hidden)
    return info


def describe_cpu(cpu: dict[str, Any] | None = None) -> str:
    """One line for a benchmark figure: model, cores, features (and what CPUID hides, under emulation)."""
    cpu = cpu_info() if cpu is None else cpu
    line = f"{cpu['model']}, {cpu['cores']} cores, features {' '.join(cpu['features'] or ['unknown'])}"
    if cpu.get("cpuid_hidden"):
        line += f" (emulated: CPUID hides {' '.join(cpu['cpuid_hidden'])})"
    return line


# ---- the entry point ----------------------------------------------------------------------------------------


def _warn(message: str) -> None:
    print(f"resnet-edge: warning: {message}", file=sys.stderr)


def open_model(path: str | os.PathLike, *, runtime: str = "auto", threads: int | None = None,
               delegate: str | None = None, delegate_options: dict | None = None, accelerator: str | None = None,
               require_accelerator: bool = False, safe: bool = True, timeout: float = 120.0,
               max_memory_mb: float | None = None, warn: Callable[[str], None] = _warn, api: str = "auto") -> Engine:
    """Validate ``path`` (structure, and tensor sizes against :class:`Limits`), check it in a child process
    under those limits (``safe``), and load it here.

    ``api``: ``auto`` runs LiteRT's CompiledModel (CPU, ``threads`` threads) where ai-edge-litert has it and it
    loads the model, else the Interpreter (``info["fallback"]`` says why); ``compiled`` or ``interpreter`` ask for
    one (``compiled`` warns when it falls back). ``delegate``: an external delegate library loaded with
    ``load_delegate`` (Edge TPU, GPU, ...), through the Interpreter; ``accelerator``: cpu/gpu/npu through the
    CompiledModel API. If either cannot be used a
    warning goes to ``warn`` and the model runs on the CPU (XNNPACK), unless ``require_accelerator``,
    which raises :class:`RuntimeUnavailable` instead. ``max_memory_mb`` replaces the bound on the model's tensors
    (default: 8 bytes per byte of the file, at least 256 MB). Raises :class:`ModelError` for unusable models.
    """
    path = os.fspath(path)
    if api not in APIS:
        raise ValueError(f"unknown api {api!r}; choose from {', '.join(APIS)}")
    if accelerator is not None and accelerator not in ACCELERATORS:
        raise ValueError(f"unknown accelerator {accelerator!r}; choose from {', '.join(ACCELERATORS)}")
    if not os.path.lexists(path):
        raise ModelError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelError(f"{path}: not a file (a folder)")
    try:
        content = read_regular_file(path)
        summary = check_model(content)
        limits = Limits.for_file(len(content), max_memory_mb)
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: {error}") from None
    del content
    try:
        check_sizes(summary, limits)
    except ModelError as error:
        raise ModelError(f"{path}: {error}") from None
    threads = max(1, threads or os.cpu_count() or 1)
    rt = select_runtime(runtime)  # raises RuntimeUnavailable before a child is spawned
    compiled = accelerator is None and delegate is None and api != "interpreter"
    if compiled and (rt.name != "litert" or not compiled_model_api()):
        if api == "compiled":
            warn(f"the CompiledModel API needs ai-edge-litert 2.x (runtime: {rt.name} {rt.version}); "
                 "running the Interpreter")
        compiled = False
    reports: dict[str, dict] = {}
    if safe:
        try:
            reports = probe(path, rt.name, delegate=delegate, delegate_options=delegate_options,
                            accelerator=accelerator or ("cpu" if compiled else None), timeout=timeout,
                            limits=limits)
        except ModelError as error:
            raise ModelError(f"{path}: {error}") from None

    def sized(engine: Engine) -> Engine:
        # per image: what the file declares, or what the guard measured if more (ops may size tensors at run time)
        measured = reports.get("base", {}).get("peak_bytes", 0) // max(1, engine.batch)
        engine.tensor_bytes, engine.max_tensor_bytes = max(summary["activation_bytes"], measured), limits.tensor_bytes
        return engine

    def fallback(what: str, why: str) -> None:
        if require_accelerator:
            raise RuntimeUnavailable(f"{what} cannot be used: {why}")
        warn(f"{what} cannot be used ({why}); running on the CPU")

    why_not = ""
    if compiled:
        report = reports.get("accelerator", {})
        why_not = report.get("error", "")
        if not why_not:
            try:
                details = reports.get("base") or _details_in_process(path, rt)
                return sized(_compiled_engine(path, "cpu", threads, details))
            except (RuntimeUnavailable, RuntimeError, ValueError, ImportError) as error:
                why_not = _first_line(error)
        if api == "compiled":
            warn(f"CompiledModel cannot run {path} ({why_not}); running the Interpreter")
    if accelerator is not None:
        report = reports.get("accelerator", {})
        if "error" in report:
            fallback(f"accelerator {accelerator}", report["error"])
        else:
            try:
                details = reports.get("base") or _details_in_process(path, rt)
                return sized(_compiled_engine(path, accelerator, threads, details))
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
        engine = sized(_interpreter_engine(path, rt, threads, delegates, name))
        if why_not:
            engine.info["fallback"] = f"CompiledModel: {why_not}"
        return engine
    except ModelError as error:
        raise ModelError(f"{path}: {error}") from None
    except (ValueError, RuntimeError, MemoryError) as error:
        if delegates:
            fallback(f"delegate {delegate}", _first_line(error))
            return sized(_interpreter_engine(path, rt, threads, [], "xnnpack"))
        raise ModelError(f"{path}: {_first_line(error)}") from None


def _details_in_process(path: str, rt: Runtime) -> dict:
    engine = _interpreter_engine(path, rt, 1, [], "xnnpack")
    return {"inputs": [engine.input.as_dict()], "outputs": [engine.output.as_dict()]}
