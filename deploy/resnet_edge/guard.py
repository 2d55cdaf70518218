"""The guard for untrusted ``.tflite`` files (security-critical): size checks from the file before anything runs
(:class:`Limits`, :func:`check_sizes`), then a child process that loads, allocates and invokes the model once under
an address-space and CPU-time cap (:func:`probe`, child side :func:`_probe_child`). A model that crashes, hangs or
exhausts the runtime costs the child, not the caller, and becomes a one-line :class:`.runtime.ModelError`.
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
from dataclasses import dataclass

import numpy as np

from .engine import TensorSpec, check_io, compiled_engine
from .runtime import ModelError, RuntimeUnavailable, first_line, select_runtime

MB = 1 << 20
TENSOR_FLOOR = 256 * MB  # tensors of a model at batch 1 may need at least this much, whatever its file size
TENSOR_PER_FILE_BYTE = 8  # ... or 8 bytes per byte of the file (ResNets at their input size: about 1)
GUARD_SLACK = 128 * MB  # the guard child's allowance beyond the tensors and 4 copies of the file
CPU_FLOOR_S = 60  # the guard child's CPU time: this much, plus 1 s per MB of the file


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
        report = {"phase": "base", "error": first_line(error), "kind": type(error).__name__}
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
            emit({"phase": "delegate", "error": first_line(error)})
    if accelerator:
        try:
            details = {"inputs": [s.as_dict() for s in inputs], "outputs": [s.as_dict() for s in outputs]}
            engine = compiled_engine(path, accelerator, 1, details)
            engine.run(np.zeros(inputs[0].shape, inputs[0].dtype))
            emit({"phase": "accelerator", "accelerator": engine.info["accelerator"]})
        except Exception as error:  # noqa: BLE001
            emit({"phase": "accelerator", "error": first_line(error)})


_CHILD = ("import json, sys; from resnet_edge.guard import _probe_child; "
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
