"""Fashion-MNIST report: the statistics (Wilson's interval of an accuracy, the paired difference of two models on the
same images) and the number formats of docs/results.md. Used by benchmarks/results.py and bench_qat.py.
"""

from __future__ import annotations

import math

import numpy as np


def wilson(correct: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``correct / n`` (``correct`` may be a fraction times n)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return centre - half, centre + half


def paired_difference(a: np.ndarray, b: np.ndarray, y: np.ndarray, z: float = 1.959964) -> tuple[float, float, float]:
    """Accuracy of ``a`` minus accuracy of ``b`` on the same images, with a 95% interval for paired proportions
    (the images only one of the two gets right decide it; Newcombe's Wald form, fine at n = 10,000)."""
    n = len(y)
    only_a = int(np.sum((a == y) & (b != y)))
    only_b = int(np.sum((a != y) & (b == y)))
    d = (only_a - only_b) / n
    se = math.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n
    return d, d - z * se, d + z * se


def pct(p) -> str:
    return "–" if p is None else f"{100 * p:.2f}%"


def ci(p, n) -> str:
    if p is None or not n:
        return "–"
    lo, hi = wilson(p * n, n)
    return f"{100 * lo:.2f}–{100 * hi:.2f}%"


def minutes(s) -> str:
    return "–" if not s else f"{s / 60:.1f} min"
