"""Regenerate the keras-hub part of tests/fixtures/import/: two small random-init keras-hub ResNet presets.

Needs keras-hub (0.32, TensorFlow backend), which keras_resnet itself does not; without touching the project's
environment, e.g.:

    pip install --no-deps --target /tmp/khlib keras-hub regex kagglehub kagglesdk pyyaml tokenizers
    PYTHONPATH=/tmp/khlib python scripts/make_keras_hub_fixtures.py

Writes ``keras_hub_resnet/`` (bottleneck_block, 7x7 stem) and ``keras_hub_resnet_vd/`` (bottleneck_block_vd: deep
stem and average-pool shortcuts), each a preset directory as ``ResNetImageClassifier.save_to_preset`` writes it
(config.json, model.weights.h5, task.json, task.weights.h5, preprocessor.json, ...), with every BatchNorm statistic
randomised, and ``keras_hub_reference.npz``: the classifier's logits for the inputs of reference.npz (0-255 pixels
through the preset's own ImageConverter scale and offset). keras-hub's backbone requires 64 first-stage filters;
the later stages are reduced to 8, 16 and 32 (each stage grows, as in the full-size nets).
"""

from __future__ import annotations

import argparse
import os
import shutil

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
from keras_hub.layers import ResNetImageConverter  # noqa: E402
from keras_hub.models import (  # noqa: E402
    ResNetBackbone,
    ResNetImageClassifier,
    ResNetImageClassifierPreprocessor,
)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PRESETS = {
    "keras_hub_resnet": {"input_conv_filters": [64], "input_conv_kernel_sizes": [7],
                         "block_type": "bottleneck_block"},
    "keras_hub_resnet_vd": {"input_conv_filters": [32, 32, 64], "input_conv_kernel_sizes": [3, 3, 3],
                            "block_type": "bottleneck_block_vd"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                                                         "import"))
    args = parser.parse_args()
    inputs = np.load(os.path.join(args.output, "reference.npz"))
    reference = {}
    for seed, (name, config) in enumerate(PRESETS.items()):
        keras.utils.set_random_seed(100 + seed)
        backbone = ResNetBackbone(stackwise_num_filters=[64, 8, 16, 32], stackwise_num_blocks=[2, 1, 1, 1],
                                  stackwise_num_strides=[1, 2, 2, 2], **config)
        rng = np.random.default_rng(seed)
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                n = layer.gamma.shape[0]
                layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                                   rng.uniform(0.5, 1.5, n)])
        converter = ResNetImageConverter(image_size=(224, 224), scale=[1 / (255 * s) for s in STD],
                                         offset=[-m / s for m, s in zip(MEAN, STD, strict=True)],
                                         interpolation="bicubic")
        task = ResNetImageClassifier(backbone=backbone, num_classes=10, activation=None,
                                     preprocessor=ResNetImageClassifierPreprocessor(image_converter=converter))
        dense = task.output_dense
        dense.set_weights([rng.normal(0, 0.1, w.shape) for w in dense.get_weights()])
        folder = os.path.join(args.output, name)
        shutil.rmtree(folder, ignore_errors=True)
        task.save_to_preset(folder)
        for size in (224, 97):
            pixels = inputs[f"inputs_{size}"].astype(np.float32)
            x = pixels * np.array(converter.scale, np.float32) + np.array(converter.offset, np.float32)
            reference[f"{name}_{size}"] = np.asarray(task(x, training=False), np.float64)
        print(f"{name}: {sorted(os.listdir(folder))}")
    np.savez_compressed(os.path.join(args.output, "keras_hub_reference.npz"), keras_hub=keras_hub.__version__,
                        **reference)


if __name__ == "__main__":
    main()
