"""The entry point for loading a model: :func:`open_model` validates the file (structure, and tensor sizes against
:class:`.guard.Limits`), checks it in a child process under those limits (:func:`.guard.probe`), then builds an
:class:`.engine.Engine` on the best API the runtime has, falling back (with a warning) where an accelerator or
delegate cannot be used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from .engine import Engine, compiled_engine, details_in_process, interpreter_engine
from .files import read_regular_file
from .guard import Limits, check_sizes, probe
from .metadata import check_model
from .runtime import (
    ACCELERATORS,
    APIS,
    ModelError,
    RuntimeUnavailable,
    compiled_model_api,
    first_line,
    quiet_stderr,
    select_runtime,
)


def warn_stderr(message: str) -> None:
    print(f"resnet-edge: warning: {message}", file=sys.stderr)


def open_model(path: str | os.PathLike, *, runtime: str = "auto", threads: int | None = None,
               delegate: str | None = None, delegate_options: dict | None = None, accelerator: str | None = None,
               require_accelerator: bool = False, safe: bool = True, timeout: float = 120.0,
               max_memory_mb: float | None = None, warn: Callable[[str], None] = warn_stderr, api: str = "auto") -> Engine:
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
                details = reports.get("base") or details_in_process(path, rt)
                return sized(compiled_engine(path, "cpu", threads, details))
            except (RuntimeUnavailable, RuntimeError, ValueError, ImportError) as error:
                why_not = first_line(error)
        if api == "compiled":
            warn(f"CompiledModel cannot run {path} ({why_not}); running the Interpreter")
    if accelerator is not None:
        report = reports.get("accelerator", {})
        if "error" in report:
            fallback(f"accelerator {accelerator}", report["error"])
        else:
            try:
                details = reports.get("base") or details_in_process(path, rt)
                return sized(compiled_engine(path, accelerator, threads, details))
            except (RuntimeUnavailable, RuntimeError, ImportError) as error:
                fallback(f"accelerator {accelerator}", first_line(error))
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
                fallback(f"delegate {delegate}", first_line(error))
    try:
        engine = sized(interpreter_engine(path, rt, threads, delegates, name))
        if why_not:
            engine.info["fallback"] = f"CompiledModel: {why_not}"
        return engine
    except ModelError as error:
        raise ModelError(f"{path}: {error}") from None
    except (ValueError, RuntimeError, MemoryError) as error:
        if delegates:
            fallback(f"delegate {delegate}", first_line(error))
            return sized(interpreter_engine(path, rt, threads, [], "xnnpack"))
        raise ModelError(f"{path}: {first_line(error)}") from None
