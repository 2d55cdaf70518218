"""The compile mode of training: whether Keras compiles the train, test and predict steps with XLA (``jit_compile``).

One place decides it for ``keras-resnet train`` (:mod:`keras_resnet.train.loop`) and both QAT engines
(:mod:`keras_resnet.quant`): :func:`decide` is the rule, a pure function of ``--jit``, the Keras backend and the
machine; :func:`choose` applies it to this process; :meth:`Jit.compiled` reads what Keras made of it after
``model.compile``; :func:`fit` runs ``model.fit`` and, where XLA cannot compile the model, falls back to no XLA with a
warning (``auto``) or stops with one error line (``on``). ``summary.json`` and the QAT result keep :meth:`Jit.record`.

``--jit auto`` (measurements in docs/training.md, "Compile mode"):

- TensorFlow, CPU only, x86 with AVX2 but not AVX-512, a run of under ``SHORT_RUN_STEPS`` training steps: XLA off.
  Its compile is paid once per run: it added 34 s to the first epoch of ResNet-20 (digits, 1,024 images, batch 128,
  emulate_isa --isa avx2 on a loaded Zen 4), while at best it saves about 1.4 s a step (the AVX2 EPYC below), so
  it repays after some 25 steps; 100 leaves room for bigger models' longer compiles. Smoke runs and tests stay off.
- ... with TensorFlow's oneDNN kernels on (``TF_ENABLE_ONEDNN_OPTS=1``, which ``keras-resnet`` sets on AVX2 CPUs:
  :func:`keras_resnet.core.console.prefer_onednn`): XLA off. ResNet-20 ``keras-resnet train`` on digits under
  emulate_isa --isa avx2 (quiet Zen 4): 340-419 images/s without XLA, 211-271 with it; XLA:CPU's convolutions
  took 2.3x oneDNN's there (benchmarks/conv_kernels.py).
- ... with TensorFlow's own Eigen kernels (oneDNN off: TensorFlow's default on such CPUs, or
  ``TF_ENABLE_ONEDNN_OPTS=0``): XLA on. ResNet-20 ``fit``, batch 128, 2 threads, gave 46.8 images/s without XLA and
  93.5 with it on a 2-core AVX2-only AMD EPYC (issue 23).
- TensorFlow, CPU only, x86 with AVX-512: XLA off, Keras' choice. oneDNN's AVX-512 kernels win: ``jit_compile`` was
  measured slower on an AVX-512 Xeon (issue 23) and on an AVX-512 AMD EPYC (Zen 4, docs/training.md).
- TensorFlow with a GPU or under a tf.distribute strategy, Arm or unknown CPUs: Keras' "auto" (XLA on GPUs when
  every layer supports it, off under tf.distribute and on CPU-only machines). The CPU cases are unmeasured.
- JAX: Keras' "auto", which is XLA (every layer here supports it): the JAX backend always jit-compiles its steps
  (``jax.jit``); ``--jit off`` makes it run them op by op, eagerly, which is much slower.
- PyTorch: Keras' "auto", eager; ``--jit on`` is ``torch.compile``.

The CPU features come from :func:`resnet_edge.cpu.cpu_info`, the reader the benchmarks use, which honours
``benchmarks/emulate_isa.py``'s CPUID masking: under ``--isa avx2`` the rule sees an AVX2 machine, as the kernels do.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from keras_resnet.core.console import onednn_requested
from keras_resnet.core.errors import ConfigError, Error
from keras_resnet.spec.fields import JIT_MODES
from keras_resnet.spec.specs import check_choice

KERAS_AUTO = "auto"  # the setting that leaves the choice to Keras' jit_compile="auto"
SHORT_RUN_STEPS = 100  # fewer training steps than this do not repay XLA's compile (module docstring)


@dataclass
class Jit:
    """The compile mode of one model: what was asked, what ``model.compile`` gets, why, and what ran."""

    requested: str  # --jit: auto, on or off
    backend: str  # the Keras backend it is for ("tensorflow" for tf_keras models)
    setting: bool | str  # model.compile(jit_compile=...): True, False or "auto" (Keras resolves it)
    reason: str
    used: bool | None = None  # what Keras compiled (its model.jit_compile), known after Jit.compiled
    fallback: str | None = None  # the XLA error that turned it off (auto only)

    def compiled(self, model) -> None:
        """Read what Keras resolved ``setting`` to; ``on`` that Keras turns off (a layer without XLA support) is an
        error."""
        used = bool(getattr(model, "jit_compile", False))
        if self.setting is True and not used:
            if self.requested == "on":
                raise ConfigError("--jit on: Keras cannot compile this model with XLA (a layer does not support it); "
                                  "use --jit auto or --jit off")
            self.reason += "; Keras turned it off: a layer does not support XLA"
        self.used = used

    def record(self) -> dict[str, Any]:
        """``{"requested", "used", "reason"}`` (and ``"fallback"``: the XLA error, when there was one)."""
        record: dict[str, Any] = {"requested": self.requested, "used": self.used, "reason": self.reason}
        if self.fallback is not None:
            record["fallback"] = self.fallback
        return record

    def text(self) -> str:
        """``XLA on (auto: ...)``: one phrase for the console."""
        return f"XLA {'on' if self.used else 'off'} ({self.requested}: {self.reason})"


def decide(requested: str, backend: str, *, accelerator: bool = False, features: list[str] | None = None,
           distributed: bool = False, steps: int | None = None, onednn: bool = False) -> Jit:
    """The rule (see the module docstring): ``--jit`` ``requested`` on Keras backend ``backend``; ``accelerator``:
    whether the backend sees a GPU/TPU; ``features``: :func:`resnet_edge.cpu.cpu_info`'s (None: unknown);
    ``distributed``: under a tf.distribute strategy other than the default one; ``steps``: the training steps this
    run will take (None: unknown); ``onednn``: whether ``TF_ENABLE_ONEDNN_OPTS`` turns TensorFlow's oneDNN kernels
    on (:func:`keras_resnet.core.console.onednn_requested`)."""
    check_choice("--jit", requested, JIT_MODES)
    if requested == "on":
        return Jit(requested, backend, True, "asked for" + (": torch.compile" if backend == "torch" else ""))
    if requested == "off":
        slow = "; the JAX backend then runs each op eagerly (slow)" if backend == "jax" else ""
        return Jit(requested, backend, False, "asked for" + slow)
    if backend == "jax":
        return Jit(requested, backend, KERAS_AUTO, "the JAX backend always compiles its steps with XLA")
    if backend == "torch":
        return Jit(requested, backend, KERAS_AUTO, "Keras' choice for PyTorch: eager")
    if backend != "tensorflow":
        return Jit(requested, backend, KERAS_AUTO, f"Keras' choice for the {backend} backend")
    if accelerator:
        return Jit(requested, backend, KERAS_AUTO, "Keras' choice with a GPU/TPU: XLA where every layer supports it")
    if distributed:
        return Jit(requested, backend, KERAS_AUTO, "Keras' choice under tf.distribute: off")
    features = set(features or ())
    if "avx512f" in features:
        return Jit(requested, backend, False, "CPU-only with AVX-512: TensorFlow's oneDNN kernels are faster")
    if "avx2" in features:
        if steps is not None and steps < SHORT_RUN_STEPS:
            return Jit(requested, backend, False, f"a short run ({steps} steps): XLA's compile would cost more than "
                                                  "it saves")
        if onednn:
            return Jit(requested, backend, False, "CPU-only x86 with AVX2 and TensorFlow's oneDNN kernels: they are "
                                                  "faster than XLA's")
        return Jit(requested, backend, True, "CPU-only x86 without AVX-512 or oneDNN: XLA is about 2x faster")
    return Jit(requested, backend, KERAS_AUTO, "Keras' choice on this CPU (unmeasured): off")


def choose(requested: str = "auto", *, backend: str | None = None, distributed: bool = False,
           steps: int | None = None) -> Jit:
    """:func:`decide` for this process: the Keras backend (``backend``: e.g. "tensorflow" for tf_keras models),
    its devices and :func:`resnet_edge.cpu.cpu_info`'s CPU features; ``steps``: the run's training steps."""
    check_choice("--jit", requested, JIT_MODES)
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if requested != "auto":
        return decide(requested, backend)
    from resnet_edge.cpu import cpu_info

    return decide(requested, backend, accelerator=has_accelerator(backend), features=cpu_info()["features"],
                  distributed=distributed, steps=steps, onednn=onednn_requested())



def has_accelerator(backend: str) -> bool:
    """Whether the backend sees a device other than the CPU (for TensorFlow, as Keras' own "auto" checks)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return any(d.device_type != "CPU" for d in tf.config.list_physical_devices())
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return bool(torch.cuda.is_available())
    return False


def is_xla_error(error: BaseException) -> bool:
    """Whether ``error`` says that compiling a step failed: TensorFlow's XLA errors, JAX's tracing errors,
    torch.compile's. keras_resnet's own errors never are."""
    if isinstance(error, Error):
        return False
    module = type(error).__module__
    if module.startswith(("jax", "torch._dynamo", "torch._inductor")):
        return True
    text = f"{type(error).__name__} {error}"
    return "XLA" in text or "jit_compile" in text


def first_line(error: BaseException, limit: int = 200) -> str:
    """The error's first non-empty line, at most ``limit`` characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _steps(model) -> int | None:
    """The optimizer's step count (None where it has none yet)."""
    import numpy as np

    try:
        return int(np.asarray(model.optimizer.iterations))
    except (AttributeError, TypeError, ValueError):
        return None


def without_xla(model) -> None:
    """Turn XLA off on a compiled Keras 3 or tf_keras model: its step functions are rebuilt on their next call."""
    model.jit_compile = False
    for name in ("train_function", "test_function", "predict_function"):
        if hasattr(model, name):
            setattr(model, name, None)


def fit(model, jit: Jit, *args, **kwargs):
    """``model.fit(*args, **kwargs)`` (Keras 3 or tf_keras). Where XLA fails to compile the model before its first
    step: with ``auto``, a warning, no XLA, and the fit again (``jit.fallback`` keeps the error); with ``on``, a
    :class:`ConfigError` of one line. Other errors, and errors after a step, pass through."""
    before = _steps(model)
    try:
        return model.fit(*args, **kwargs)
    except Exception as error:
        if not jit.used or _steps(model) != before or not is_xla_error(error):
            raise
        backend = jit.backend
        if jit.requested == "on":
            raise ConfigError(f"--jit on: XLA cannot compile this model on the {backend} backend "
                              f"({first_line(error)}); use --jit auto or --jit off") from error
        jit.fallback = first_line(error)
        jit.reason += "; XLA failed to compile the model, so it runs without"
        print(f"warning: XLA cannot compile this model on the {backend} backend ({jit.fallback}); training "
              "without XLA (--jit off skips the attempt)", file=sys.stderr, flush=True)
        without_xla(model)
        jit.used = bool(getattr(model, "jit_compile", False))
        return model.fit(*args, **kwargs)
