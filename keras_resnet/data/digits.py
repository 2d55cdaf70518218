"""The ``digits`` dataset: scikit-learn's bundled handwritten digits, as 32×32×3 ``uint8`` images.

1,797 real 8×8 scans of 10 classes, scaled to 0–255, upsampled bilinearly to 32×32 and replicated to 3 channels.
Always available offline. Stratified split: 20% test, then 20% of the rest as validation (1,149 / 288 / 360 images).
"""

from __future__ import annotations

import numpy as np

from keras_resnet.data import splitting


def load():
    """``(splits, labels, source)``: the three splits ``{name: (x, y)}``, the class names and where they came from."""
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = np.clip(np.round(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR)) for im in small])
    x = np.repeat(big[..., None], 3, axis=-1)
    y = bunch.target.astype(np.int64)
    return splitting.three_way(x, y), [str(i) for i in range(10)], "sklearn.datasets.load_digits (8×8 → 32×32×3)"
