"""ResNet8, MLPerf Tiny's image-classification reference (mlcommons/tiny, benchmark/training/image_classification):
its layers, its parameter count, and its Keras 2 weights file loading through keras_resnet.io.keras2_h5.

The trained reference (``pretrainedResnet.h5`` and the float ``pretrainedResnet.tflite`` of ``trained_models/``) is
compared when ``KERAS_RESNET_MLPERF_TINY`` names a folder holding both; the always-on tests write a synthetic file in
the reference's layout with h5py.
"""

from __future__ import annotations

import os

import h5py
import keras
import numpy as np
import pytest

import keras_resnet as kr
from keras_resnet.core.errors import ConfigError, ModelFileError
from keras_resnet.io import keras2_h5

# The reference model's layers as its pretrainedResnet.h5 lists them (model_config, Keras 2.4): class and name.
REFERENCE_LAYERS = [
    ("InputLayer", "input_1"), ("Conv2D", "conv2d"), ("BatchNormalization", "batch_normalization"),
    ("Activation", "activation"), ("Conv2D", "conv2d_1"), ("BatchNormalization", "batch_normalization_1"),
    ("Activation", "activation_1"), ("Conv2D", "conv2d_2"), ("BatchNormalization", "batch_normalization_2"),
    ("Add", "add"), ("Activation", "activation_2"), ("Conv2D", "conv2d_3"),
    ("BatchNormalization", "batch_normalization_3"), ("Activation", "activation_3"), ("Conv2D", "conv2d_4"),
    ("Conv2D", "conv2d_5"), ("BatchNormalization", "batch_normalization_4"), ("Add", "add_1"),
    ("Activation", "activation_4"), ("Conv2D", "conv2d_6"), ("BatchNormalization", "batch_normalization_5"),
    ("Activation", "activation_5"), ("Conv2D", "conv2d_7"), ("Conv2D", "conv2d_8"),
    ("BatchNormalization", "batch_normalization_6"), ("Add", "add_2"), ("Activation", "activation_6"),
    ("AveragePooling2D", "average_pooling2d"), ("Flatten", "flatten"), ("Dense", "dense"),
]
MLPERF_TINY_DIR = os.environ.get("KERAS_RESNET_MLPERF_TINY", "")


def images(n=8, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 32, 32, 3)).astype(np.float32)


def randomized(model, seed=1):
    """``model`` with random weights everywhere, BN statistics included (a fresh model's are 0 and 1)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.normal(0, 0.3, w.shape)
                           for w in layer.weights])
    return model


def write_reference_h5(model, path, *, names=keras2_h5.MLPERF_TINY_RESNET8, tamper=None):
    """``model``'s weights as Keras 2.4 saved the reference (``model.save("x.h5")``): a ``model_weights`` group
    listing every layer in ``layer_names``, one group per layer whose ``weight_names`` are ``{name}/{weight}:0``."""
    ours_of = {theirs: ours for ours, theirs in names.items()}
    suffixes = {"Conv2D": ["kernel", "bias"], "Dense": ["kernel", "bias"],
                "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"]}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"], f.attrs["backend"] = "2.4.0", "tensorflow"
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [name.encode() for _, name in REFERENCE_LAYERS]
        for cls, name in REFERENCE_LAYERS:
            layer_group = group.create_group(name)
            weights = model.get_layer(ours_of[name]).get_weights() if name in ours_of else []
            weight_names = [f"{name}/{s}:0" for s in suffixes.get(cls, [])][:len(weights)]
            layer_group.attrs["weight_names"] = [n.encode() for n in weight_names]
            for weight_name, value in zip(weight_names, weights, strict=True):
                layer_group.create_dataset(weight_name, data=value)
        if tamper:
            tamper(f)


def test_parameter_count_and_the_reference_layers_in_order():
    model = kr.ResNet8()
    assert model.count_params() == 78_666
    assert [layer.__class__.__name__ for layer in model.layers] == [cls for cls, _ in REFERENCE_LAYERS]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(c.padding == "same" and c.use_bias for c in convs)
    assert [c.strides for c in convs if c.strides != (1, 1)] == [(2, 2)] * 4
    projections = [c for c in convs if c.kernel_size == (1, 1)]
    assert [c.name for c in projections] == ["conv3_block1_0_conv", "conv4_block1_0_conv"]
    assert not any(layer.name.endswith("_0_bn") for layer in model.layers)  # projections without BN
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert (layer.epsilon, layer.momentum) == (1e-3, 0.99)
    assert model.get_layer("avg_pool").pool_size == (8, 8)
    assert model.get_layer("predictions").kernel_initializer.__class__.__name__ == "HeNormal"
    add = model.get_layer("conv3_block1_add")
    shortcut, branch = model.get_layer("conv3_block1_0_conv").output, model.get_layer("conv3_block1_2_bn").output
    assert add.input[0] is shortcut and add.input[1] is branch  # add([shortcut, branch]), as the reference


def test_reference_layout_options_are_block_options():
    spec = kr.MODELS["resnet8"]
    assert spec.arch.blocks == (1, 1, 1) and spec.arch.filters == (16, 32, 64) and spec.arch.head == "flatten"
    assert spec.options["shortcut_bn"] is False and spec.options["conv_padding"] == "same"
    # the same options on another depth: ResNet-20 with MLPerf Tiny's block
    deeper = kr.ResNet(kr.Arch("basic", (3, 3, 3), (16, 32, 64), "cifar", head="flatten"), classes=10,
                       input_shape=(32, 32, 3), options=kr.BlockOptions(**spec.options))
    assert deeper.count_params() > 78_666 and not any(layer.name.endswith("_0_bn") for layer in deeper.layers)


def test_a_file_in_the_reference_layout_loads_and_reproduces_the_outputs(tmp_path):
    source = randomized(kr.ResNet8())
    path = tmp_path / "pretrainedResnet.h5"
    write_reference_h5(source, path)
    target = kr.ResNet8()
    assert kr.load_mlperf_tiny_weights(target, path) == 17
    x = images()
    np.testing.assert_array_equal(target.predict(x, verbose=0), source.predict(x, verbose=0))


def test_keras_resnet_train_models_keep_their_normalization(tmp_path):
    from keras_resnet.data import datasets
    from keras_resnet.train.recipe import model_for_dataset

    info = datasets.DatasetInfo(name="toy", num_classes=10, labels=[str(i) for i in range(10)],
                                image_shape=(32, 32, 3), flip=True)
    model = model_for_dataset("resnet8", info)
    source = randomized(kr.ResNet8())
    path = tmp_path / "w.h5"
    write_reference_h5(source, path)
    assert keras2_h5.load_mlperf_tiny_weights(model, path) == 17
    x = images()  # mean 0, variance 1: the normalization layer passes the pixels through
    np.testing.assert_allclose(model.predict(x, verbose=0), source.predict(x, verbose=0), atol=1e-6)


def test_the_cpu_target_traces_flatten_with_a_static_shape_and_runs_any_batch(tmp_path):
    """Keras 3's Flatten reshapes to (shape(x)[0], n): traced with an open batch that was SHAPE/STRIDED_SLICE/PACK
    feeding RESHAPE, and LiteRT's CompiledModel failed validation at batch 8 with a traceback. Converted, the file
    has one RESHAPE to a constant shape and runs batches of 8 and 3 in resnet-edge as the Keras model does."""
    from resnet_edge import Classifier

    from keras_resnet.data import datasets
    from keras_resnet.export.convert import convert
    from keras_resnet.export.trace import traced_graph
    from keras_resnet.train.recipe import model_for_dataset

    keras.utils.set_random_seed(0)
    model = model_for_dataset("resnet8", datasets.info("digits"))
    model.save(tmp_path / "r8.keras")
    out = tmp_path / "r8.tflite"
    report = convert(str(tmp_path / "r8.keras"), str(out), quantization="float32", dataset="digits",
                     validation_samples=16)
    assert report.ops.get("RESHAPE") == 1 and not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(report.ops), report.ops
    assert report.agreement == 1.0
    x = images(11)
    runner = Classifier(str(out), threads=1)
    assert runner.engine.input.dynamic_batch
    for batch in (x[:8], x[8:]):
        np.testing.assert_allclose(runner.predict_arrays(batch), model.predict(batch, verbose=0), atol=1e-5)
    sequential = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Flatten(), keras.layers.Dense(3)])
    traced = traced_graph(sequential)
    assert not any(isinstance(layer, keras.layers.Flatten) for layer in traced.layers)
    assert traced.weights[0] is sequential.weights[0]
    y = images(2)[:, :4, :4, :2]
    np.testing.assert_array_equal(traced.predict(y, verbose=0), sequential.predict(y, verbose=0))


def _replace_dataset(name, value):
    def tamper(f):
        del f[name]
        f[name] = value
    return tamper


def _external_link(f):
    del f["model_weights/dense/dense/bias:0"]
    f["model_weights/dense/dense/bias:0"] = h5py.ExternalLink("/etc/hostname", "/x")


@pytest.mark.parametrize("tamper, message", [
    (_replace_dataset("model_weights/conv2d/conv2d/kernel:0", np.zeros((3, 3, 3, 8), np.float32)),
     r"'conv2d' holds shapes .*\(3, 3, 3, 8\).* takes .*\(3, 3, 3, 16\)"),
    (_replace_dataset("model_weights/dense/dense/bias:0", np.zeros(10, np.int64)), "not a float array"),
    (_external_link, "a link out of the file"),
    (lambda f: f["model_weights"].attrs.__setitem__("layer_names", [b"input_1", b"conv2d"]),
     r"missing layers \['conv2d_1', 'conv2d_2', 'conv2d_3'\] ...$"),
])
def test_a_file_that_is_not_the_reference_is_refused_before_any_weight_is_set(tmp_path, tamper, message):
    path = tmp_path / "bad.h5"
    write_reference_h5(randomized(kr.ResNet8()), path, tamper=tamper)
    target = kr.ResNet8()
    before = [w.copy() for w in target.get_weights()]
    with pytest.raises(ModelFileError, match=message):
        kr.load_mlperf_tiny_weights(target, path)
    assert all(np.array_equal(a, b) for a, b in zip(before, target.get_weights(), strict=True))


def test_another_architecture_does_not_fit_the_map(tmp_path):
    path = tmp_path / "w.h5"
    write_reference_h5(randomized(kr.ResNet8()), path)
    with pytest.raises(ConfigError, match="does not fit this weight map"):
        kr.load_mlperf_tiny_weights(kr.ResNet20(), path)


def test_a_keras3_weights_file_is_pointed_to_load_weights(tmp_path):
    path = tmp_path / "m.weights.h5"
    kr.ResNet8().save_weights(path)
    with pytest.raises(ModelFileError, match="no layer_names"):
        kr.load_mlperf_tiny_weights(kr.ResNet8(), path)


@pytest.mark.skipif(not MLPERF_TINY_DIR, reason="set KERAS_RESNET_MLPERF_TINY to a folder holding MLPerf Tiny's "
                    "trained_models/pretrainedResnet.h5 and pretrainedResnet.tflite (mlcommons/tiny, "
                    "benchmark/training/image_classification) to compare with the trained reference")
def test_the_trained_reference_gives_the_reference_tflite_outputs():
    from ai_edge_litert.interpreter import Interpreter

    model = kr.ResNet8()
    assert kr.load_mlperf_tiny_weights(model, os.path.join(MLPERF_TINY_DIR, "pretrainedResnet.h5")) == 17
    x = images(64)
    ours = model.predict(x, verbose=0)
    interpreter = Interpreter(model_path=os.path.join(MLPERF_TINY_DIR, "pretrainedResnet.tflite"), num_threads=1)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    reference = []
    for image in x:
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        reference.append(interpreter.get_tensor(out["index"])[0])
    reference = np.array(reference)
    assert np.abs(ours - reference).max() < 1e-4  # measured 3.8e-6 (float32 kernels, different order)
    assert (ours.argmax(1) == reference.argmax(1)).all()
