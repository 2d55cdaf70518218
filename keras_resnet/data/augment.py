"""Batch augmentations of the modern recipe, in TensorFlow ops for the tf.data pipeline: RandAugment, mixup, cutmix.

Every function works on a batch of ``float32`` images in [0, 255] (N×H×W×C, any C: RGB and grayscale alike) and
takes an ``int[2]`` seed: the stateless random ops make the result a function of the seed only, so a run is
deterministic for its ``--seed`` and still different every epoch (the seeds come from a re-randomised
``tf.data.Dataset.random`` stream, see :func:`keras_resnet.data.pipeline.train_pipeline`).

- :func:`rand_augment` (Cubuk et al. 2019, the "increasing" magnitudes of timm's ``rand-mM-nN-inc1``): N ops per
  image, each drawn uniformly from :data:`RAND_OPS`, at magnitude M of 10.
- :func:`mix_batch` (Zhang et al. 2018 mixup, Yun et al. 2019 cutmix, as timm's ``Mixup`` in ``batch`` mode):
  the batch is mixed with itself reversed, with one λ per batch, and the one-hot labels are mixed with the
  same λ (cutmix: corrected to the pasted area), so every label row still sums to 1.

TensorFlow is imported inside the functions: this module loads without it.
"""

from __future__ import annotations

import math

# timm's RandAugment ops that need no colour (grayscale works) and no per-image histogram; "identity" stands for
# timm's probability 0.5 of skipping an op. Equalize is left out: a per-image histogram has no vectorised TF op.
RAND_OPS: tuple[str, ...] = ("identity", "autocontrast", "brightness", "contrast", "sharpness", "solarize",
                             "posterize", "rotate", "shear_x", "shear_y", "translate_x", "translate_y")
MAX_MAGNITUDE = 10.0  # timm's _LEVEL_DENOM: magnitudes are M / 10 of each op's maximum
MAX_ROTATE = 30.0  # degrees
MAX_SHEAR = 0.3
MAX_TRANSLATE = 0.45  # of the image side (timm's translate_rel)
MAX_ENHANCE = 0.9  # brightness/contrast/sharpness factor 1 ± 0.9·M/10


def _seeds(seed, count: int):
    import tensorflow as tf

    seed = tf.cast(seed, tf.int32)
    return [tf.random.experimental.stateless_fold_in(seed, k) for k in range(count)]


def _blend(degenerate, image, factor):
    """PIL's ImageEnhance: ``degenerate + factor · (image − degenerate)``, clipped to [0, 255]."""
    import tensorflow as tf

    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0)


def _apply(name: str, images, sign, magnitude: float, fill: float):
    """One op of :data:`RAND_OPS` on a (sub-)batch; ``sign``: ±1 per image for the signed ops."""
    import tensorflow as tf

    level = magnitude / MAX_MAGNITUDE
    n = tf.shape(images)[0]
    height, width, channels = (int(d) for d in images.shape[1:])
    factor = tf.reshape(1.0 + sign * MAX_ENHANCE * level, [-1, 1, 1, 1])
    if name == "identity":
        return images
    if name == "autocontrast":
        flat = tf.reshape(images, [n, -1, channels])
        low = tf.reduce_min(flat, axis=1)[:, None, None, :]
        span = tf.reduce_max(flat, axis=1)[:, None, None, :] - low
        return (images - tf.where(span > 0, low, 0.0)) * tf.where(span > 0, 255.0 / tf.maximum(span, 1e-6), 1.0)
    if name == "brightness":
        return _blend(0.0, images, factor)
    if name == "contrast":  # towards the mean gray level, as PIL's ImageEnhance.Contrast
        return _blend(tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True), images, factor)
    if name == "sharpness":
        # PIL's SMOOTH filter [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 as shifted slices (a depthwise conv returns
        # the wrong shape for an empty sub-batch in eager TF 2.21).
        padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
        smooth = 4.0 * images + sum(padded[:, dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3))
        return _blend(smooth / 13.0, images, factor)
    if name == "solarize":
        threshold = 256.0 - level * 256.0
        return tf.where(images >= threshold, 255.0 - images, images)
    if name == "posterize":
        step = 2.0 ** int(round(level * 4))  # drop 0..4 of the 8 bits
        return tf.floor(images / step) * step
    # Geometric: projective transforms mapping each output pixel to its input pixel, bilinear, `fill` outside.
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    ones, zeros = tf.ones([n]), tf.zeros([n])
    if name == "rotate":
        angle = sign * (MAX_ROTATE * level * math.pi / 180.0)
        cos, sin = tf.cos(angle), tf.sin(angle)
        row = [cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy, zeros, zeros]
    elif name == "shear_x":
        row = [ones, sign * MAX_SHEAR * level, -sign * MAX_SHEAR * level * cy, zeros, ones, zeros, zeros, zeros]
    elif name == "shear_y":
        row = [ones, zeros, zeros, sign * MAX_SHEAR * level, ones, -sign * MAX_SHEAR * level * cx, zeros, zeros]
    elif name == "translate_x":
        row = [ones, zeros, sign * MAX_TRANSLATE * level * width, zeros, ones, zeros, zeros, zeros]
    elif name == "translate_y":
        row = [ones, zeros, zeros, zeros, ones, sign * MAX_TRANSLATE * level * height, zeros, zeros]
    else:
        raise ValueError(f"unknown RandAugment op {name!r}")
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=tf.stack(row, axis=1), output_shape=tf.constant([height, width]),
        fill_value=tf.constant(fill, tf.float32), interpolation="BILINEAR", fill_mode="CONSTANT")


def rand_augment(images, seed, *, ops: int = 2, magnitude: float = 9.0, fill: float = 0.0):
    """RandAugment on a batch: ``ops`` rounds, each applying one op of :data:`RAND_OPS` (drawn per image, with a
    random sign for the signed ones) at ``magnitude`` in [0, 10]. Geometric ops fill with ``fill`` (0, as the
    pad of the crop augmentation). Returns ``float32`` in [0, 255], the shape of ``images``."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    static = images.shape
    n = tf.shape(images)[0]
    flips = _seeds(tf.reverse(tf.cast(seed, tf.int32), [0]), ops)
    for pick, flip in zip(_seeds(seed, ops), flips, strict=True):
        op = tf.random.stateless_uniform([n], seed=pick, minval=0, maxval=len(RAND_OPS), dtype=tf.int32)
        sign = tf.where(tf.random.stateless_uniform([n], seed=flip) < 0.5, -1.0, 1.0)
        # Each image goes through its own op only: partition by op, apply, stitch back (computing every op on
        # the whole batch and selecting was ~5× slower on 2 CPU cores).
        parts = tf.dynamic_partition(images, op, len(RAND_OPS))
        signs = tf.dynamic_partition(sign, op, len(RAND_OPS))
        where = tf.dynamic_partition(tf.range(n), op, len(RAND_OPS))
        outs = [tf.clip_by_value(_apply(name, part, s, magnitude, fill), 0.0, 255.0)
                for name, part, s in zip(RAND_OPS, parts, signs, strict=True)]
        images = tf.ensure_shape(tf.dynamic_stitch(where, outs), static)
    return images


def _beta(seed, alpha):
    """One sample of Beta(alpha, alpha) from two stateless gamma samples."""
    import tensorflow as tf

    a, b = _seeds(seed, 2)
    g1 = tf.random.stateless_gamma([], seed=a, alpha=alpha)
    g2 = tf.random.stateless_gamma([], seed=b, alpha=alpha)
    return g1 / tf.maximum(g1 + g2, 1e-12)


def mix_batch(images, labels, seed, *, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0,
              switch_prob: float = 0.5):
    """Mixup or cutmix of a batch with its reverse (timm's ``Mixup``, batch mode), with probability ``prob``.

    With both alphas > 0, cutmix is chosen with probability ``switch_prob``. ``labels``: one-hot (or soft) N×K;
    returns ``(images, labels)`` with labels ``λ·y + (1 − λ)·reverse(y)``, λ the kept fraction of each image.
    """
    import tensorflow as tf

    if not (mixup_alpha > 0 or cutmix_alpha > 0):
        return images, labels
    images = tf.cast(images, tf.float32)
    labels = tf.cast(labels, tf.float32)
    s_apply, s_switch, s_lam, s_box = _seeds(seed, 4)
    apply = tf.random.stateless_uniform([], seed=s_apply) < prob
    if mixup_alpha > 0 and cutmix_alpha > 0:
        cutmix = tf.random.stateless_uniform([], seed=s_switch) < switch_prob
    else:
        cutmix = tf.constant(cutmix_alpha > 0)
    alpha = tf.where(cutmix, float(max(cutmix_alpha, 1e-6)), float(max(mixup_alpha, 1e-6)))
    lam = _beta(s_lam, alpha)
    other = tf.reverse(images, [0])

    shape = tf.shape(images)
    h, w = shape[1], shape[2]
    ratio = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(tf.cast(h, tf.float32) * ratio, tf.int32)
    cut_w = tf.cast(tf.cast(w, tf.float32) * ratio, tf.int32)
    centre = tf.random.stateless_uniform([2], seed=s_box, minval=0, maxval=tf.int32.max, dtype=tf.int32)
    cy, cx = centre[0] % h, centre[1] % w
    y0, y1 = tf.clip_by_value(cy - cut_h // 2, 0, h), tf.clip_by_value(cy + cut_h // 2, 0, h)
    x0, x1 = tf.clip_by_value(cx - cut_w // 2, 0, w), tf.clip_by_value(cx + cut_w // 2, 0, w)
    rows = tf.range(h)
    cols = tf.range(w)
    box = ((rows >= y0) & (rows < y1))[:, None] & ((cols >= x0) & (cols < x1))[None, :]
    cut_lam = 1.0 - tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(h * w, tf.float32)
    # As arithmetic, not broadcasting tf.where (slow on CPU): per pixel, the weight of the reversed batch.
    box = tf.cast(box, tf.float32)[None, :, :, None]
    cutmix = tf.cast(cutmix, tf.float32)
    weight = cutmix * box + (1.0 - cutmix) * (1.0 - lam)
    lam = cutmix * cut_lam + (1.0 - cutmix) * lam
    applied = tf.cast(apply, tf.float32)
    weight, lam = applied * weight, applied * lam + (1.0 - applied)
    out = (1.0 - weight) * images + weight * other  # exact where weight is 0 or 1 (cutmix pixels)
    return out, lam * labels + (1.0 - lam) * tf.reverse(labels, [0])
