"""Engines: a loaded model behind one ``run(x)`` (:class:`Engine`), on the TFLite Interpreter
(:func:`interpreter_engine`, with optional external delegates) or on LiteRT's CompiledModel API
(:func:`compiled_engine`, CPU or an accelerator); the model's input/output description (:class:`TensorSpec`) and
the one-image-in, classes-out contract (:func:`check_io`). Loading untrusted files goes through
:func:`.loader.open_model`, which checks them in a child process (:mod:`.guard`) before an engine is built here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .runtime import ModelError, Runtime, RuntimeUnavailable, first_line, quiet_stderr, select_runtime

MB = 1 << 20


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


def _delegate_name(interpreter: Any, default: str) -> str:
    """"xnnpack" when the runtime's default delegate took nodes, else "builtin" (reference kernels)."""
    try:
        ops = interpreter._get_ops_details()  # private, but present in every runtime we support
    except Exception:
        return default
    return default if any(op.get("op_name") == "DELEGATE" for op in ops) else "builtin"


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
                raise ModelError(f"cannot run batches of {n}: {first_line(error)}") from None
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


def interpreter_engine(path: str, rt: Runtime, threads: int, delegates: list, delegate: str) -> Engine:
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


def compiled_engine(path: str, accelerator: str, threads: int, details: dict) -> Engine:
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
        raise RuntimeUnavailable(f"accelerator {accelerator} is not available: {first_line(last)}")
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
        try:
            with quiet_stderr():
                model.resize_input_tensor(0, [n, *inputs[0].shape[1:]])
                state.update(ins=model.create_input_buffers(0), outs=model.create_output_buffers(0),
                             shape=(n, *out_spec.shape[1:]))
                run(np.zeros((n, *inputs[0].shape[1:]), inputs[0].dtype))
        except (RuntimeError, ValueError) as error:  # e.g. a RESHAPE whose shape the file computes at run time
            raise ValueError(f"{first_line(error)} (LiteRT's CompiledModel cannot resize this file's batch; the "
                             "Interpreter can: --api interpreter)") from None

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


def details_in_process(path: str, rt: Runtime) -> dict:
    engine = interpreter_engine(path, rt, 1, [], "xnnpack")
    return {"inputs": [engine.input.as_dict()], "outputs": [engine.output.as_dict()]}
