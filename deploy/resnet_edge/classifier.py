"""``Classifier``: a TFLite image classifier for files, folders, PIL images and pixel arrays."""

from __future__ import annotations

import collections
import os
import statistics
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .metadata import read_metadata
from .preprocess import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    ImageError,
    InputSpec,
    from_output,
    load_image,
    to_input,
)
from .runtime import ModelError, open_model

MAX_BATCH = 32  # images per invoke for models with a dynamic batch


@dataclass
class Result:
    """One image's top-k ``[(label, score), ...]``, or the reason it could not be classified."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None


def expand(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Files as given; folders recursively, image files only, sorted."""
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                yield from (os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_SUFFIXES))
        else:
            yield path


class Classifier:
    """Load a ``.tflite`` classifier (checked in a child process first) and run it on images.

    >>> clf = Classifier("resnet20_int8.tflite", threads=2)
    >>> clf.predict("digit.png", top_k=3)
    [('7', 0.98), ('1', 0.01), ('9', 0.004)]
    """

    def __init__(self, model_path: str | os.PathLike, *, runtime: str = "auto", threads: int | None = None,
                 delegate: str | None = None, delegate_options: dict | None = None,
                 accelerator: str | None = None, require_accelerator: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, safe: bool = True, warn=None):
        kwargs = {"warn": warn} if warn else {}
        self.path = os.fspath(model_path)
        self.engine = open_model(self.path, runtime=runtime, threads=threads, delegate=delegate,
                                 delegate_options=delegate_options, accelerator=accelerator,
                                 require_accelerator=require_accelerator, safe=safe, **kwargs)
        try:
            self.metadata = read_metadata(self.path) or {}
            self.spec = InputSpec.from_metadata(self.metadata, self.engine.input.shape)
        except ValueError as error:
            raise ModelError(f"{self.path}: {error}") from None
        classes = int(self.engine.output.shape[-1])
        labels = [str(v) for v in self.metadata.get("labels") or []]
        self.labels = labels if len(labels) == classes else [str(i) for i in range(classes)]
        self.max_pixels = max_pixels
        self.threads = self.engine.info["threads"]

    @property
    def info(self) -> dict:
        """What runs the model: runtime and version, delegate/accelerator, threads, input."""
        spec = self.engine.input
        return {**self.engine.info, "model": self.path, "input_shape": list(spec.shape), "input_dtype": spec.dtype,
                "resize": self.spec.resize, "classes": len(self.labels)}

    # ---- arrays ------------------------------------------------------------------------------------------

    def predict_arrays(self, pixels: np.ndarray) -> np.ndarray:
        """Scores (dequantized) for N×H×W×C float pixels in [0, 255] already at the model's size."""
        pixels = np.asarray(pixels, np.float32)
        expected = (self.spec.height, self.spec.width, self.spec.channels)
        if pixels.ndim != 4 or pixels.shape[1:] != expected:
            raise ValueError(f"pixels must be N×{expected[0]}×{expected[1]}×{expected[2]}; got {pixels.shape}")
        i, o = self.engine.input, self.engine.output
        chunk = MAX_BATCH if i.dynamic_batch else i.shape[0]
        scores = []
        for start in range(0, len(pixels), chunk):
            part = pixels[start:start + chunk]
            n = len(part)
            if i.dynamic_batch:
                self.engine.set_batch(n)
            elif n < chunk:  # a fixed batch larger than what is left: pad with zeros
                part = np.concatenate([part, np.zeros((chunk - n, *expected), np.float32)])
            y = self.engine.run(to_input(part, self.spec, i.dtype, i.scale, i.zero_point))
            scores.append(from_output(y, o.dtype, o.scale, o.zero_point)[:n])
        return np.concatenate(scores) if scores else np.zeros((0, len(self.labels)), np.float32)

    def top_k(self, scores: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-scores)[: max(1, k)]
        return [(self.labels[j], float(scores[j])) for j in order]

    # ---- images ------------------------------------------------------------------------------------------

    def load(self, image) -> np.ndarray:
        """A path or PIL image → the model's float pixels (raises ImageError)."""
        return load_image(image, self.spec, self.max_pixels)

    def predict(self, image, top_k: int = 5) -> list[tuple[str, float]]:
        """Top-k ``(label, score)`` for one image (a path or a PIL image)."""
        return self.top_k(self.predict_arrays(self.load(image)[None])[0], top_k)

    def classify(self, paths: Iterable[str | os.PathLike], top_k: int = 5, workers: int | None = None
                 ) -> Iterator[Result]:
        """Results for files and folders, in order. Decoding runs in a thread pool ahead of the
        interpreter (Pillow releases the GIL), so decode and inference overlap."""
        batch = MAX_BATCH if self.engine.input.dynamic_batch else self.engine.input.shape[0]
        workers = workers or max(2, os.cpu_count() or 2)
        with ThreadPoolExecutor(workers) as pool:
            pending: collections.deque = collections.deque()
            ready: list[tuple[str, np.ndarray]] = []
            files = expand(paths)

            def submit() -> None:
                for path in files:
                    pending.append((path, pool.submit(self._decode, path)))
                    if len(pending) >= max(batch, workers) * 2:
                        return

            submit()
            while pending:
                path, future = pending.popleft()
                submit()
                pixels, error = future.result()
                if error is not None:
                    yield from self._flush(ready, top_k)
                    ready = []
                    yield Result(path, error=error)
                    continue
                ready.append((path, pixels))
                if len(ready) == batch:
                    yield from self._flush(ready, top_k)
                    ready = []
            yield from self._flush(ready, top_k)

    def _decode(self, path: str) -> tuple[np.ndarray | None, str | None]:
        try:
            return self.load(path), None
        except ImageError as error:
            return None, str(error)

    def _flush(self, ready: list[tuple[str, np.ndarray]], top_k: int) -> Iterator[Result]:
        if ready:
            scores = self.predict_arrays(np.stack([p for _, p in ready]))
            for (path, _), s in zip(ready, scores):
                yield Result(path, self.top_k(s, top_k))

    # ---- timing ------------------------------------------------------------------------------------------

    def benchmark(self, runs: int = 50, warmup: int = 5) -> dict:
        """Latency of ``invoke`` on a random input: min/median/p90/p99 ms and images/s."""
        if runs < 1 or warmup < 0:
            raise ValueError("runs must be >= 1 and warmup >= 0")
        spec = self.engine.input
        rng = np.random.default_rng(0)
        pixels = rng.uniform(0, 255, (spec.shape[0], self.spec.height, self.spec.width, self.spec.channels))
        x = to_input(pixels, self.spec, spec.dtype, spec.scale, spec.zero_point)
        for _ in range(warmup):
            self.engine.run(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.engine.run(x)
            times.append((time.perf_counter() - start) * 1000)
        ordered = sorted(times)
        pct = lambda q: ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]  # noqa: E731
        median = statistics.median(times)
        return {**self.info, "runs": runs, "warmup": warmup, "batch": spec.shape[0], "min_ms": ordered[0],
                "median_ms": median, "mean_ms": statistics.fmean(times), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
                "images_per_s": spec.shape[0] * 1000 / median}
