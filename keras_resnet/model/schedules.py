"""The learning-rate schedule of He et al.'s recipe, importable (and so loadable) without TensorFlow."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_resnet")
class ResNetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Constant warm-up at ``warmup_lr``, then ``base_lr`` ÷10 at 50% and 75% of ``total_steps`` (or cosine).

    Registered at ``import keras_resnet``, so a compiled ``best.keras`` loads with ``keras.saving.load_model``.
    """

    def __init__(self, base_lr, total_steps, warmup_steps=0, warmup_lr=0.0, kind="step"):
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.warmup_lr = float(warmup_lr)
        self.kind = kind

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            lr = 0.5 * self.base_lr * (1.0 + ops.cos(math.pi * progress))
        else:
            lr = self.base_lr * ops.where(step >= 0.5 * self.total_steps, 0.1, 1.0) \
                * ops.where(step >= 0.75 * self.total_steps, 0.1, 1.0)
        return ops.where(step < self.warmup_steps, self.warmup_lr, lr)

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "warmup_lr": self.warmup_lr, "kind": self.kind}
