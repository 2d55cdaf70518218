"""The Python API: ``Classifier("m.tflite").predict("cat.jpg", top_k=5)``."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .files import read_regular_file
from .loader import open_model, warn_stderr
from .metadata import read_metadata
from .preprocess import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    ImageSource,
    InputSpec,
    dequantize,
    describe,
    preprocess,
)
from .runtime import ModelError


@dataclass
class Result:
    """One image's outcome: ``top`` = [(class id, label, score), ...] best first, or ``error``."""

    source: str
    top: list[tuple[int, str, float]] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": self.source, "error": self.error}
        return {"path": self.source, "top": [{"class": c, "label": n, "score": s} for c, n, s in self.top]}


class Classifier:
    """A ``.tflite`` image classifier; see :func:`resnet_edge.loader.open_model` for the loading options.

    ``batch_size``: images per invoke for models with a dynamic batch dimension (fixed-batch models
    run at their own batch size); ``workers``: threads decoding images while the model runs.
    """

    def __init__(self, model_path: str | os.PathLike, *, threads: int | None = None, runtime: str = "auto",
                 delegate: str | None = None, delegate_options: dict | None = None, accelerator: str | None = None,
                 require_accelerator: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS, batch_size: int = 8,
                 workers: int | None = None, safe: bool = True, max_memory_mb: float | None = None,
                 warn: Callable[[str], None] = warn_stderr, api: str = "auto"):
        self.path = os.fspath(model_path)
        self.engine = open_model(self.path, runtime=runtime, threads=threads, delegate=delegate,
                                 delegate_options=delegate_options, accelerator=accelerator,
                                 require_accelerator=require_accelerator, safe=safe, max_memory_mb=max_memory_mb,
                                 warn=warn, api=api)
        try:  # metadata that is present but unusable is an error: defaults would silently mis-normalise
            self.metadata = read_metadata(read_regular_file(self.path))
        except (OSError, ValueError) as error:
            raise ModelError(f"{self.path}: unusable metadata: {error}") from None
        spec_in, spec_out = self.engine.input, self.engine.output
        try:
            self.spec = InputSpec.from_model(self.metadata, spec_in.shape, spec_in.dtype, spec_in.scale,
                                             spec_in.zero_point)
        except ValueError as error:
            raise ModelError(f"{self.path}: {error}") from None
        classes = int(spec_out.shape[-1])
        labels = (self.metadata or {}).get("labels")
        if not isinstance(labels, list) or len(labels) != classes:
            if labels is not None:
                warn(f"{self.path}: metadata has {len(labels) if isinstance(labels, list) else 'no'} labels for "
                     f"{classes} classes; using class indices")
            labels = [str(i) for i in range(classes)]
        self.labels = [str(v) for v in labels]
        self.max_pixels = max_pixels
        # dynamic batch: at most what the tensor limit allows (the file declares the batch-1 sizes)
        self.batch_size = max(1, min(batch_size, self.engine.max_batch())) if spec_in.dynamic_batch \
            else spec_in.shape[0]
        self.workers = max(1, workers or min(4, os.cpu_count() or 1))

    @property
    def info(self) -> dict[str, Any]:
        """What runs: runtime, version, delegate/accelerator, threads, and the model's input."""
        return {**self.engine.info, "model": self.path, "input": list(self.engine.input.shape[1:]),
                "input_dtype": self.engine.input.dtype, "resize": self.spec.resize,
                "crop_fraction": self.spec.crop_fraction, "interpolation": self.spec.interpolation,
                "metadata": self.metadata is not None}

    # ---- low level: arrays -------------------------------------------------------------------------------

    def preprocess(self, image: ImageSource) -> np.ndarray:
        """One image → the model input for it (HWC, the input tensor's dtype)."""
        return preprocess(image, self.spec, max_pixels=self.max_pixels)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Model-ready inputs (N, H, W, C) → dequantized outputs (N, classes), in model-sized batches."""
        n, step = len(inputs), self.batch_size
        if not self.engine.input.dynamic_batch and step != 1:
            pad = (-n) % step
            inputs = np.concatenate([inputs, np.zeros((pad, *inputs.shape[1:]), inputs.dtype)]) if pad else inputs
        out = []
        for start in range(0, len(inputs), step):
            chunk = np.ascontiguousarray(inputs[start:start + step])
            if self.engine.input.dynamic_batch:
                self.engine.set_batch(len(chunk))
            out.append(self.engine.run(chunk).copy())
        o = self.engine.output
        scores = dequantize(np.concatenate(out) if out else np.zeros((0, o.shape[-1]), o.dtype), o.scale,
                            o.zero_point)
        return scores[:n]

    def predict_arrays(self, pixels: np.ndarray) -> np.ndarray:
        """Images already at the input size (N, H, W, C, values in [0, 255]) → scores (N, classes)."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        if pixels.shape[1:3] != (self.spec.height, self.spec.width):
            return self.run(np.stack([self.preprocess(p) for p in pixels]))
        from .preprocess import to_input

        return self.run(to_input(pixels, self.spec))

    # ---- images ------------------------------------------------------------------------------------------

    def _top(self, scores: np.ndarray, top_k: int) -> list[tuple[int, str, float]]:
        k = max(1, min(top_k, len(scores)))
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), self.labels[i], float(scores[i])) for i in best]

    def predict(self, image: ImageSource, top_k: int = 5) -> list[tuple[int, str, float]]:
        """Top-k ``(class id, label, score)`` for one image; raises ImageError for a bad image."""
        return self._top(self.run(self.preprocess(image)[None])[0], top_k)

    def predict_batch(self, images: Iterable[ImageSource], top_k: int = 5) -> list[Result]:
        """One :class:`Result` per image, in order; bad images get ``error`` instead of raising."""
        return list(self.classify(images, top_k))

    def classify(self, images: Iterable[ImageSource], top_k: int = 5) -> Iterator[Result]:
        """Stream results in input order, decoding the next images in threads while the model runs."""

        def prepare(image: ImageSource) -> np.ndarray:
            return self.preprocess(image)

        ahead = self.batch_size * 2 + self.workers
        pending: deque[tuple[str, Future]] = deque()
        source = iter(images)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="resnet-edge-decode") as pool:
            def fill() -> None:
                while len(pending) < ahead:
                    try:
                        image = next(source)
                    except StopIteration:
                        return
                    pending.append((describe(image), pool.submit(prepare, image)))

            fill()
            while pending:
                names, arrays, failed = [], [], []
                while pending and len(arrays) < self.batch_size:
                    name, future = pending.popleft()
                    try:
                        arrays.append(future.result())
                        names.append(name)
                    except ImageError as error:
                        failed.append(Result(name, error=str(error)))
                    except Exception as error:  # noqa: BLE001 - one bad file never stops the run
                        failed.append(Result(name, error=f"{type(error).__name__}: {error}"))
                    fill()
                yield from failed
                if arrays:
                    scores = self.run(np.stack(arrays))
                    yield from (Result(n, self._top(s, top_k)) for n, s in zip(names, scores))

    # ---- timing ------------------------------------------------------------------------------------------

    def benchmark(self, runs: int = 50, warmup: int = 5, batch: int | None = None) -> dict[str, Any]:
        """Invoke latency on random input: min/median/p90/p99 (ms), images/s, and what ran."""
        spec = self.engine.input
        n = batch or spec.shape[0]
        if n != self.engine.batch:
            self.engine.set_batch(n)
        rng = np.random.default_rng(0)
        shape = (n, *spec.shape[1:])
        if spec.dtype == "float32":
            x = rng.standard_normal(shape, np.float32)
        else:
            info = np.iinfo(spec.dtype)
            x = rng.integers(info.min, info.max + 1, shape).astype(spec.dtype)
        for _ in range(max(0, warmup)):
            self.engine.run(x)
        times = np.empty(max(1, runs))
        for i in range(len(times)):
            start = time.perf_counter()
            self.engine.run(x)
            times[i] = time.perf_counter() - start
        ms = times * 1e3
        median = float(np.median(ms))
        return {"runs": len(ms), "warmup": warmup, "batch": n, "min_ms": float(ms.min()), "median_ms": median,
                "mean_ms": float(ms.mean()), "p90_ms": float(np.percentile(ms, 90)),
                "p99_ms": float(np.percentile(ms, 99)), "images_per_s": n * 1e3 / median if median > 0 else None,
                **self.info}
