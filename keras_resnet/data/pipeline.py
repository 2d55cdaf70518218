"""tf.data input pipelines over in-memory ``uint8`` images: training (shuffle, augment, batch) and evaluation.

Pixel values stay in [0, 255]: normalisation is a layer of the model (see
:func:`keras_resnet.train.recipe.model_for_dataset`), so the pipelines only augment, shuffle, batch and prefetch.
He et al.'s pad/crop/flip is :func:`augment_batch` here; the modern recipe's RandAugment and mixup/cutmix come
from :mod:`keras_resnet.data.augment`. TensorFlow is imported inside the functions: this module loads without it.
"""

from __future__ import annotations

import numpy as np

from keras_resnet.core.errors import ConfigError
from keras_resnet.data import augment as augment_lib


def augment_batch(images, seeds, *, pad: int = 4, flip: bool = True):
    """He et al.'s augmentation on a batch of ``uint8`` images: zero-pad ``pad`` pixels, random crop back, flip.

    ``seeds``: ``int64[2]`` (stateless, so the result depends only on the seed). Returns ``float32`` in [0, 255].
    Vectorised over the batch (one gather instead of a crop per image): cheap on the CPU cores the model needs.
    """
    import tensorflow as tf

    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    seeds = tf.cast(seeds, tf.int32)
    offsets = tf.random.stateless_uniform([n, 2], seed=seeds, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(h)[None, :]  # n×h
    cols = offsets[:, 1:] + tf.range(w)[None, :]  # n×w
    if flip:
        mirror = tf.random.stateless_uniform([n, 1], seed=seeds[::-1], minval=0, maxval=2, dtype=tf.int32)
        cols = tf.where(mirror == 1, tf.reverse(cols, axis=[1]), cols)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)  # n×h×(w+2p)×c
    out = tf.gather(out, cols, axis=2, batch_dims=1)  # n×h×w×c
    return tf.cast(out, tf.float32)


def train_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, *, flip: bool = True, seed: int = 0,
                   pad: int = 4, augment: bool = True, drop_remainder: bool = False, shard_by_data: bool = True,
                   randaugment: tuple[int, float] | None = None, mix: dict | None = None,
                   num_classes: int | None = None):
    """Shuffled (reshuffled every epoch, seeded), batched, augmented, prefetched ``(float32 image, int64 label)``.

    The modern recipe's options (:mod:`keras_resnet.data.augment`), after pad/crop/flip: ``randaugment=(N, M)``, and
    ``mix`` (keyword arguments of :func:`~keras_resnet.data.augment.mix_batch`), which needs ``num_classes`` and makes
    the labels one-hot ``float32`` rows (soft where mixed).
    """
    import tensorflow as tf

    if mix is not None and num_classes is None:
        raise ConfigError("mixup/cutmix needs num_classes (the labels become one-hot rows)")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if augment or randaugment or mix:
        def transform(batch, s):
            images, labels = batch
            # The pad/crop/flip draws use `s` as before the recipe options existed: old runs stay reproducible.
            images = augment_batch(images, s, pad=pad, flip=flip) if augment else tf.cast(images, tf.float32)
            if randaugment:
                images = augment_lib.rand_augment(images, tf.random.experimental.stateless_fold_in(
                    tf.cast(s, tf.int32), 101), ops=randaugment[0], magnitude=randaugment[1])
            if mix is not None:
                images, labels = augment_lib.mix_batch(images, tf.one_hot(labels, num_classes), tf.random.experimental
                                                       .stateless_fold_in(tf.cast(s, tf.int32), 202), **mix)
            return images, labels

        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, randoms)).map(transform, num_parallel_calls=tf.data.AUTOTUNE,
                                                    deterministic=True)
    else:
        ds = ds.map(lambda image, label: (tf.cast(image, tf.float32), label), num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(ds, shard_by_data)


def fit_pipelines(x: np.ndarray, y: np.ndarray, batch_size: int, *, validation: tuple | None = None, seed: int = 0):
    """``(training, validation or None)`` for a ``model.fit`` over in-memory arrays without augmentation (the QAT
    fine-tunes): reshuffled every epoch, batched, ``float32`` images. Keras' own array adapter would autotune (see
    :func:`_finish`)."""
    train = train_pipeline(np.asarray(x), np.asarray(y), batch_size, seed=seed, augment=False)
    return train, None if validation is None else eval_pipeline(np.asarray(validation[0]), np.asarray(validation[1]),
                                                                batch_size)


def eval_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, *, shard_by_data: bool = True):
    """Deterministic (in order, no augmentation) batched ``(float32 image, int64 label)`` pipeline."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    ds = ds.map(lambda image, label: (tf.cast(image, tf.float32), label), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    return _finish(ds, shard_by_data)


def _finish(ds, shard_by_data: bool):
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = True
    # Why no autotuning: with it, about one epoch in five stalled for 2.2-2.8 s at its second step with both cores
    # idle, at every backend (ResNet-20 on digits, 9 steps an epoch, TF 2.21, 2-core Zen 4 EPYC: 9 of 48 epochs ran at
    # half speed, 225 instead of 450 images/s; with it off, 0 of 36). These pipelines batch and gather in-memory
    # arrays: AUTOTUNE then means one map call per core and TensorFlow's default prefetch, which keep the model fed.
    options.autotune.enabled = False
    if shard_by_data:  # multi-worker: every worker reads the (in-memory) data and takes every n-th batch
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
