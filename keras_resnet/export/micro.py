"""The microcontroller target (``keras-resnet convert --target mcu``): the converted int8 file in TensorFlow Lite Micro.

:func:`measure` finds the smallest tensor arena that TFLM's own planner accepts (a bisection over bytes, each step a
real ``tflite-micro`` interpreter allocating the model), keeps TFLM's allocation report, refuses a model over
``--arena-budget``, and runs the validation images through TFLM and through LiteRT's reference kernels
(``OpResolverType.BUILTIN_REF``): both are the plain integer reference implementation, so their int8 outputs must be
equal, and any difference (reported in output LSBs) fails the conversion, naming the first op that differs
(:mod:`keras_resnet.export.micro_diff`). One op is known to: LiteRT's reference FULLY_CONNECTED rounds in double
precision where TFLM's uses the fixed-point multiplier, so a validation image that puts a logit near a half step
differs by 1 LSB there; such an image is let through and counted only when that is proven to be its whole
difference, on both runtimes' integers. :func:`embed` writes the arena and the flash size (the finished file's
bytes) into the metadata; :func:`check_flash` applies ``--flash-budget``.

Safety: TFLM runs in this process (the arena probes in forked children: a too-small arena can crash it), but only on
files this process has just converted (the converter's output, never a file from elsewhere); ``resnet-edge check
--target mcu`` judges a stranger's file from the flatbuffer alone (resnet_edge/micro.py).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from keras_resnet.core.errors import ConfigError, ValidationError
from keras_resnet.export import micro_diff
from keras_resnet.export.metadata import embed_metadata
from keras_resnet.spec.conversion import ConvertSpec

KIB = 1024
MAX_ARENA_BYTES = 1 << 30  # the search gives up above 1 GiB (no microcontroller has that much RAM)
METADATA_KEY = "mcu"  # the metadata entry: MicroResult.metadata()


@dataclass
class MicroResult:
    """What TFLM says about a file: its arena, flash, registrations and agreement with the reference kernels."""

    arena_bytes: int  # the smallest tensor arena TFLM's planner accepts (a 16-byte aligned buffer of this size)
    flash_bytes: int  # the finished .tflite (metadata included): what the device stores
    max_lsb_diff: int  # max |TFLM - LiteRT reference kernels| over the int8 outputs of the validation images
    samples: int
    runtime: str  # "tflite-micro <version>"
    resolver: list[str] = field(default_factory=list)  # MicroMutableOpResolver methods, in first-use order
    allocations: list[str] = field(default_factory=list)  # TFLM's RecordingMicroAllocator report
    # validation images whose only difference is the FULLY_CONNECTED rounding of keras_resnet.export.micro_diff
    # (every earlier op identical, both runtimes' formulas reproduced exactly); max_lsb_diff includes them
    fc_rounding_images: int = 0

    def metadata(self) -> dict:
        return {"arena_bytes": self.arena_bytes, "flash_bytes": self.flash_bytes, "runtime": self.runtime,
                "resolver": self.resolver, "max_lsb_diff": self.max_lsb_diff,
                "fc_rounding_images": self.fc_rounding_images}

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        return [f"TFLM ({self.runtime}): tensor arena {self.arena_bytes} bytes ({self.arena_bytes / KIB:.1f} KiB, "
                f"smallest that TFLM's planner accepts), flash {self.flash_bytes} bytes "
                f"({self.flash_bytes / KIB:.1f} KiB)",
                f"TFLM vs LiteRT reference kernels on {self.samples} validation images: max difference "
                f"{self.max_lsb_diff} LSB" + (
                    f" ({self.fc_rounding_images} image(s) with a logit near a half step, where TFLM's fixed-point "
                    f"FULLY_CONNECTED rounds 1 LSB from LiteRT's double-precision reference; every other op "
                    f"identical)" if self.fc_rounding_images else ""),
                f"MicroMutableOpResolver<{len(self.resolver)}>: {', '.join(self.resolver)}",
                "TFLM allocation report:", *(f"  {line}" for line in self.allocations)]


def tflm():
    """``tflite_micro``'s runtime module; ConfigError naming the extra when it is not installed."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as error:
        raise ConfigError(f"--target mcu runs the file in TensorFlow Lite Micro, which is not installed ({error}); "
                          "pip install 'keras-resnets[micro]'") from None
    return runtime


def tflm_version() -> str:
    import importlib.metadata

    try:
        return f"tflite-micro {importlib.metadata.version('tflite-micro')}"
    except importlib.metadata.PackageNotFoundError:
        return "tflite-micro"


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what C++ writes to file descriptor 2 (TFLM's MicroPrintf) into the yielded list (one string)."""
    import sys

    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        out: list[str] = []
        try:
            os.dup2(sink.fileno(), 2)
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            out.append(sink.read().decode("utf-8", "replace"))


def interpreter(content: bytes, arena: int):
    """A TFLM interpreter with an ``arena``-byte tensor arena; RuntimeError/ValueError when it does not allocate
    (TFLM's own messages are swallowed)."""
    runtime = tflm()
    with captured_stderr():
        return runtime.Interpreter.from_bytes(content, arena_size=int(arena))


def _allocates_here(content: bytes, arena: int) -> bool:
    try:
        interpreter(content, arena)
    except (RuntimeError, ValueError):
        return False
    return True


def allocates(content: bytes, arena: int) -> bool:
    """Whether TFLM allocates ``content`` in an ``arena``-byte arena. tflite-micro 0.dev20261023182759 does not always
    refuse a too-small arena: it can crash (SIGSEGV after "Failed to allocate tail memory"; measured: int8 ResNet-56
    at 16 KiB, the search's first probe), so where the OS can fork each probe runs in a child process, and a crash is
    a refusal."""
    if not hasattr(os, "fork"):
        return _allocates_here(content, arena)
    import warnings

    with warnings.catch_warnings():  # Python 3.12+ warns about fork in a threaded process: the child only probes
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child answers with its exit code and never returns into the caller
        code = 1
        try:
            import faulthandler

            faulthandler.disable()  # a crash here is an answer, not something to report
            code = 0 if _allocates_here(content, arena) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def min_arena(content: bytes) -> int:
    """The smallest tensor arena (bytes) that TFLM's planner accepts for ``content``: doubling, then bisection over
    bytes. TFLM aligns every buffer inside the arena, and the arena itself is allocated 16-byte aligned (as a device
    declares it: ``alignas(16)``), so the need is monotonic in the size; measured byte-exact: the minimum equals the
    RecordingMicroAllocator's "Arena allocation total"."""
    high = 1 << 14
    while not allocates(content, high):
        if high >= MAX_ARENA_BYTES:
            raise ValidationError(f"TensorFlow Lite Micro cannot allocate the model in {MAX_ARENA_BYTES >> 20} MiB "
                                  "(TFLM refuses it: see resnet-edge check --target mcu); nothing written")
        high *= 2
    low = 0  # refused (or 0)
    while high - low > 1:
        middle = (low + high) // 2
        if allocates(content, middle):
            high = middle
        else:
            low = middle
    return high


def allocation_report(it) -> list[str]:
    """TFLM's RecordingMicroAllocator report (after an invoke), one line per entry, the tag stripped."""
    with captured_stderr() as text:
        it.print_allocations()
    return [line.replace("[RecordingMicroAllocator] ", "").strip() for line in "".join(text).splitlines()
            if line.strip()]


def _int8_inputs(it, prepared: np.ndarray) -> np.ndarray:
    """The validation images (model-ready floats) as the file's int8 input, with its scale and zero point."""
    details = it.get_input_details(0)
    if np.dtype(details["dtype"]) != np.int8:
        raise ValidationError(f"the mcu file's input is {np.dtype(details['dtype']).name}, not int8")
    quant = details["quantization_parameters"]
    scale, zero = float(quant["scales"][0]), int(quant["zero_points"][0])
    return np.clip(np.round(prepared / scale + zero), -128, 127).astype(np.int8)


def _reference_outputs(content: bytes, x: np.ndarray) -> np.ndarray:
    """LiteRT's reference kernels (BUILTIN_REF: plain C++ integer arithmetic, the same bits on every CPU)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    outputs = []
    for image in x:
        it.set_tensor(inp["index"], image[None])
        it.invoke()
        outputs.append(it.get_tensor(out["index"])[0].copy())
    return np.asarray(outputs)


def measure(content: bytes, prepared: np.ndarray, spec: ConvertSpec, resolver: list[str]) -> MicroResult:
    """The arena of ``content`` (checked against ``spec.arena_budget``: ValidationError, naming both, above it), TFLM's
    allocation report, and the max LSB difference of TFLM from LiteRT's reference kernels on ``prepared`` (the
    validation images, model-ready); ValidationError when that is not 0. ``flash_bytes`` is ``len(content)`` until
    :func:`embed` sets the finished file's."""
    arena = min_arena(content)
    if spec.arena_budget is not None and arena > spec.arena_budget * KIB:
        raise ValidationError(f"the tensor arena TFLM needs is {arena / KIB:.1f} KiB ({arena} bytes), over "
                              f"--arena-budget {spec.arena_budget:g} KiB; nothing written")
    it = interpreter(content, arena)
    x = _int8_inputs(it, np.asarray(prepared, np.float32))
    ours, allocations = [], []
    for i, image in enumerate(x):
        it.set_input(image[None], 0)
        it.invoke()
        ours.append(np.asarray(it.get_output(0))[0].copy())
        if i == 0:
            allocations = allocation_report(it)
    reference = _reference_outputs(content, x)
    diff = np.abs(np.asarray(ours, np.int32) - reference.astype(np.int32)).reshape(len(x), -1)
    lsb = int(np.max(diff)) if len(x) else 0
    differing = [int(i) for i in np.flatnonzero(diff.max(axis=1) > 0)]
    # Both are reference kernels of the same integer arithmetic (measured: 0 LSB on int8 ResNet-20, where XNNPACK
    # differs by up to 3): a difference is a kernel that computes something else on the device. All but one: LiteRT's
    # reference FULLY_CONNECTED rounds in double precision, TFLM's in fixed point, so a logit near a half step lands
    # 1 LSB apart (measured: 4 of 64 random images on the int8 fixture; up to 8 LSB after its SOFTMAX). An image is
    # let through only when micro_diff proves that is its whole difference.
    for i in differing:
        where, rounding_only = micro_diff.first_difference(content, x[i], arena)
        if not rounding_only:
            raise ValidationError(f"TensorFlow Lite Micro's outputs differ from LiteRT's reference kernels by up to "
                                  f"{lsb} LSB on {len(differing)} of {len(x)} validation images (expected 0)"
                                  f"{f'; on image {i}, {where}' if where else ''}; nothing written")
    return MicroResult(arena_bytes=arena, flash_bytes=len(content), max_lsb_diff=lsb, samples=len(x),
                       runtime=tflm_version(), resolver=list(resolver), allocations=allocations,
                       fc_rounding_images=len(differing))


def embed(content: bytes, meta: dict, result: MicroResult) -> bytes:
    """``content`` with ``meta`` plus ``result``'s record (arena, flash, ...) embedded, where the recorded flash
    size is the returned file's own length (embedded again until the two agree); checked to allocate in exactly
    ``result.arena_bytes`` (the metadata does not enter the arena) and ``result.flash_bytes`` set."""
    flash = len(content)
    for _ in range(4):
        result.flash_bytes = flash
        finished = embed_metadata(content, {**meta, METADATA_KEY: result.metadata()})
        if len(finished) == flash:
            break
        flash = len(finished)
    else:
        raise ValidationError("the flash size recorded in the metadata does not settle; nothing written")
    if not allocates(finished, result.arena_bytes) or allocates(finished, result.arena_bytes - 1):
        raise ValidationError("the finished file needs another tensor arena than the one measured; nothing written")
    return finished


def check_flash(result: MicroResult, spec: ConvertSpec) -> None:
    """ValidationError, naming both figures, when the finished file exceeds ``--flash-budget``."""
    if spec.flash_budget is not None and result.flash_bytes > spec.flash_budget * KIB:
        raise ValidationError(f"the model needs {result.flash_bytes / KIB:.1f} KiB of flash ({result.flash_bytes} "
                              f"bytes), over --flash-budget {spec.flash_budget:g} KiB; nothing written")


def gate(content: bytes) -> tuple[list[str], list[str]]:
    """``resnet-edge check --target mcu`` (TFLM's op table, int8 throughout, int8 I/O, batch 1) on ``content``:
    (report lines, the MicroMutableOpResolver methods); ValidationError, naming the failures, when TFLM would refuse
    it."""
    from resnet_edge.check import check

    report = check(content, "mcu")
    lines = [line.replace("<bytes>", "TFLM check", 1) for line in report.lines()]
    if not report.ok:
        failures = [f.line().strip() for f in report.findings if f.severity == "error"]
        raise ValidationError(f"TensorFlow Lite Micro would refuse it ({len(failures)} errors: "
                              f"{'; '.join(failures[:4])}); nothing written")
    return lines, report.extra["mcu"]["resolver"]


def finish(content: bytes, meta: dict, prepared: np.ndarray, spec: ConvertSpec,
           floating: list[str]) -> tuple[bytes, MicroResult, list[str]]:
    """The mcu target's steps on the converter's ``content``: full int8 (``floating``: the ops that stayed float),
    the TFLM contract, :func:`measure` (arena, arena budget, 0 LSB), :func:`embed` with ``meta`` and the flash
    budget; returns (the finished file, its :class:`MicroResult`, the contract's report lines)."""
    if floating:
        raise ValidationError(f"not fully integer: {len(floating)} ops would stay float on the microcontroller "
                              f"({', '.join(floating[:8])}); nothing written")
    _, resolver = gate(content)
    result = measure(content, prepared, spec, resolver)
    finished = embed(content, meta, result)
    check_flash(result, spec)
    return finished, result, gate(finished)[0]
