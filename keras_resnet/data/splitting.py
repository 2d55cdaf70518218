"""The fixed, seeded, stratified train/val/test splits every dataset source uses.

The same images land in the same split on every machine: the split depends on the labels and :data:`SEED` only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

# the split names are defined once, with `evaluate --split`'s choices
from keras_resnet.spec.commands import SPLITS

__all__ = ["SEED", "SPLITS", "Split", "stratified_split", "three_way"]
SEED = 1234  # the fixed split seed: the same images land in the same split on every machine

Split = Literal["train", "val", "test"]


def stratified_split(y: np.ndarray, fraction: float, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)``: ``round(fraction·n_c)`` images of each class held out, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        count = int(round(fraction * len(members)))
        if 0 < fraction and len(members) > 1:
            count = min(max(count, 1), len(members) - 1)
        held.append(rng.permutation(members)[:count])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    keep = np.setdiff1d(np.arange(len(y)), held_out)
    return keep, held_out


def three_way(x: np.ndarray, y: np.ndarray, test: float = 0.2, val: float = 0.2) -> dict:
    """``{"train", "val", "test"}: (x, y)``: ``test`` of each class held out, then ``val`` of the rest."""
    rest, test_idx = stratified_split(y, test)
    keep, val_idx = stratified_split(y[rest], val, SEED + 1)
    train_idx = rest[keep]
    val_idx = rest[val_idx]
    return {"train": (x[train_idx], y[train_idx]), "val": (x[val_idx], y[val_idx]), "test": (x[test_idx], y[test_idx])}
