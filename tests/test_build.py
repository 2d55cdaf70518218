"""Builders: keras.applications parity, CIFAR families, twins, save/load, shapes, features and errors."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_resnet as kr
from keras_resnet.core.errors import ConfigError, ModelFileError
from keras_resnet.model.blocks import ChannelPadding
from keras_resnet.spec import specs

KERAS_APPS = {
    "ResNet50": (keras.applications.ResNet50, 25_636_712),
    "ResNet101": (keras.applications.ResNet101, 44_707_176),
    "ResNet152": (keras.applications.ResNet152, 60_419_944),
    "ResNet50V2": (keras.applications.ResNet50V2, 25_613_800),
    "ResNet101V2": (keras.applications.ResNet101V2, 44_675_560),
    "ResNet152V2": (keras.applications.ResNet152V2, 60_380_648),
}


# Quick tier: the 50-layer ImageNet models and the CIFAR nets; the deeper builds (~5-20 s each on two cores) are slow.
SLOW = pytest.mark.slow


def slow_for(names, slow_names):
    return [pytest.param(name, marks=SLOW) if name in slow_names else name for name in names]


def images(n=2, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def weighted_names(model):
    return [layer.name for layer in model.layers if layer.weights]


@pytest.mark.parametrize("name", slow_for(KERAS_APPS, {"ResNet101", "ResNet152", "ResNet101V2", "ResNet152V2"}))
def test_keras_applications_parity(name, tmp_path):
    reference, params = KERAS_APPS[name]
    theirs = reference(weights=None)
    ours = getattr(kr, name)(weights=None)
    assert ours.count_params() == theirs.count_params() == params
    assert weighted_names(ours) == weighted_names(theirs)
    assert ours.name == theirs.name
    named = {layer.name for layer in theirs.layers if not layer.name.startswith(("input_layer", "max_pooling2d"))}
    assert named <= {layer.name for layer in ours.layers}
    assert inspect.signature(getattr(kr, name)).parameters.keys() >= inspect.signature(reference).parameters.keys()
    for ours_p, theirs_p in zip(inspect.signature(getattr(kr, name)).parameters.values(),
                                inspect.signature(reference).parameters.values()):
        assert (ours_p.name, ours_p.default) == (theirs_p.name, theirs_p.default)


@SLOW
@pytest.mark.parametrize("name", ["ResNet50", "ResNet50V2"])
def test_keras_applications_weights_load_by_name(name, tmp_path):
    """keras.applications weights (legacy .h5 as published, and Keras 3 .weights.h5) give identical outputs."""
    theirs = KERAS_APPS[name][0](weights=None, include_top=False, input_shape=(64, 64, 3), pooling="avg")
    x = images(size=64)
    expected = theirs.predict(x, verbose=0)
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(tmp_path / "w.h5", "w") as f:  # the layout of keras.applications' published files
        legacy_h5_format.save_weights_to_hdf5_group(f, theirs)
    theirs.save_weights(tmp_path / "w.weights.h5")
    for file in ("w.h5", "w.weights.h5"):
        ours = getattr(kr, name)(weights=str(tmp_path / file), include_top=False, input_shape=(64, 64, 3),
                                 pooling="avg")
        np.testing.assert_array_equal(ours.predict(x, verbose=0), expected)


def test_weights_file_for_another_architecture_is_refused(tmp_path):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(tmp_path / "r20.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, kr.ResNet20())
    with pytest.raises(ModelFileError, match="no weights for .* layers of resnet50"):
        kr.ResNet50(weights=str(tmp_path / "r20.h5"))


def test_imagenet_weights_offline_gives_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(ModelFileError, match="could not download ImageNet weights resnet50_weights.*weights='/path/to/"):
        kr.ResNet50()
    with pytest.raises(ConfigError, match="no published ImageNet weights for resnet18"):
        kr.ResNet18(weights="imagenet")
    with pytest.raises(ConfigError, match="no published ImageNet weights"):
        kr.ResNet50(weights="imagenet", variant="d")


# He et al. 2015, Table 6 (millions of parameters), and the 9n+2 pre-activation nets of He et al. 2016.
CIFAR_PARAMS = {"ResNet20": 0.27, "ResNet32": 0.46, "ResNet44": 0.66, "ResNet56": 0.85, "ResNet110": 1.7,
                "ResNet164V2": 1.7, "ResNet1001V2": 10.2}


@pytest.mark.parametrize("name,millions", [pytest.param(*item, marks=SLOW) if item[0] == "ResNet1001V2" else item
                                           for item in CIFAR_PARAMS.items()])
def test_cifar_parameter_counts_match_the_papers(name, millions):
    model = getattr(kr, name)()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    if name.endswith("V2"):  # He et al. 2016 use no conv biases; keras.applications' V2 biases add ~1.5%
        assert trainable / 1e6 == pytest.approx(millions, rel=0.02)
    else:
        assert round(trainable / 1e6, 2 if millions < 1 else 1) == millions
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)


def test_cifar_depths_and_shortcut_a():
    model = kr.ResNet56()
    assert model.count_params() == kr.Plain56().count_params()  # option A adds no parameters
    assert sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 27
    assert not any(isinstance(layer, keras.layers.Add) for layer in kr.Plain56().layers)
    assert specs.cifar_arch(1202).blocks == (200, 200, 200)
    assert specs.cifar_arch(164, "bottleneck").blocks == (18, 18, 18)
    pad = model.get_layer("conv3_block1_0_pad")
    assert isinstance(pad, ChannelPadding) and pad.output.shape[1:] == (16, 16, 32)


def test_option_a_shortcut_is_subsample_plus_zero_channels():
    inputs = keras.Input((8, 8, 4))
    out = kr.basic_block(inputs, 8, stride=2, name="b", opts=kr.BlockOptions(shortcut="A", zero_init=True))
    model = keras.Model(inputs, out)
    x = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 4)).astype("float32")
    expected = np.concatenate([x[:, ::2, ::2], np.zeros((1, 4, 4, 4))], axis=-1)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.maximum(expected, 0), rtol=1e-6)


@pytest.mark.parametrize("size", [16, 15])
def test_channel_padding_subsamples_as_a_1x1_max_pool(size):
    """One layer does option A's subsample (``x[::2, ::2]``, as MaxPooling2D(1, 2): odd sizes keep the last row)
    and its zero channels; configs saved before it had ``stride`` load as stride 1."""
    x = np.random.default_rng(0).normal(size=(2, size, size, 4)).astype("float32")
    layer = ChannelPadding(3, stride=2)
    expected = np.pad(keras.layers.MaxPooling2D(1, strides=2)(x), [(0, 0)] * 3 + [(0, 3)])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), expected)
    assert expected.shape == (2, 8, 8, 7) and layer.compute_output_shape((None, size, size, 4)) == (None, 8, 8, 7)
    assert ChannelPadding.from_config(layer.get_config()).stride == 2
    assert ChannelPadding.from_config({"name": "old", "padding": 3}).stride == 1
    for bad in ({"padding": 3, "stride": 0}, {"padding": -1}):  # a saved file's config is untrusted
        with pytest.raises(ValueError, match="padding >= 0 and stride >= 1"):
            ChannelPadding(**bad)


@pytest.mark.parametrize("shortcut,projections", [("A", 0), ("B", 2), ("C", 9)])
def test_shortcut_options(shortcut, projections):
    model = kr.ResNet20(shortcut=shortcut)
    assert sum(layer.name.endswith("_0_conv") for layer in model.layers) == projections


def test_variants_v15_and_d():
    v1 = kr.ResNet50(weights=None, input_shape=(64, 64, 3))
    v15 = kr.ResNet50(weights=None, input_shape=(64, 64, 3), variant="v1.5")
    d = kr.ResNet50(weights=None, input_shape=(64, 64, 3), variant="d")
    assert v1.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert v15.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert v15.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert isinstance(d.get_layer("conv3_block1_0_pool"), keras.layers.AveragePooling2D)
    assert d.get_layer("conv3_block1_0_conv").strides == (1, 1)
    assert [d.get_layer(f"conv1_{i}_conv").filters for i in (1, 2, 3)] == [32, 32, 64]
    for model in (v1, v15, d):
        assert model.output_shape == (None, 1000)


def test_wide_zero_init_and_weight_decay():
    wide = kr.ResNet20(width=4)
    assert wide.get_layer("conv4_block3_2_conv").filters == 256
    zero = kr.ResNet20(zero_init=True)
    assert not np.any(zero.get_layer("conv2_block1_2_bn").gamma.numpy())
    assert len(kr.ResNet20(weight_decay=1e-4).losses) == 19 + 1 - 1  # every conv kernel (19), not the Dense


def test_zero_init_v2_blocks_start_as_identity():
    inputs = keras.Input((8, 8, 16))
    out = kr.bottleneck_block(inputs, 4, name="b", opts=kr.BlockOptions(preact=True, zero_init=True))
    x = images(1, 8)[..., :1].repeat(16, -1)
    np.testing.assert_allclose(keras.Model(inputs, out).predict(x, verbose=0), x, rtol=1e-6)


def test_highway_gates_start_closed():
    model = kr.Highway20()
    gate = model.get_layer("conv2_block1_gate_conv")
    np.testing.assert_array_equal(gate.bias.numpy(), -2.0)
    assert {type(layer).__name__ for layer in model.layers} >= {"Subtract", "Multiply", "Add"}
    assert model.predict(images(), verbose=0).shape == (2, 10)


@pytest.mark.parametrize("name", slow_for(["ResNet18", "ResNet34", "ResNet200", "ResNet18V2", "Plain34", "ResNet20",
                                           "ResNet20V2", "ResNet164V2", "Plain20", "Highway56"],
                                          {"ResNet200", "ResNet164V2"}))
@pytest.mark.parametrize("include_top,pooling", [(True, None), (False, None), (False, "avg"), (False, "max")])
def test_output_shapes(name, include_top, pooling):
    model = kr.build_model(name, weights=None, include_top=include_top, pooling=pooling, classes=7)
    cifar = specs.MODELS[name.lower()].arch.stem == "cifar"
    size = 32 if cifar else 224
    channels = {"ResNet18": 512, "ResNet34": 512, "Plain34": 512, "ResNet18V2": 512, "ResNet200": 2048,
                "ResNet164V2": 256}.get(name, 64)
    final = size // (4 if cifar else 32)
    expected = {(True, None): (None, 7), (False, None): (None, final, final, channels)}.get(
        (include_top, pooling), (None, channels))
    assert model.output_shape == expected


FEATURES = {"ResNet50": (224, [(56, 256), (28, 512), (14, 1024), (7, 2048)]),
            "ResNet50V2": (224, [(56, 256), (28, 512), (14, 1024), (7, 2048)]),
            "ResNet20": (32, [(32, 16), (16, 32), (8, 64)])}


@pytest.mark.parametrize("name", slow_for(FEATURES, {"ResNet50", "ResNet50V2"}))
def test_feature_outputs(name):
    size, levels = FEATURES[name]
    model = kr.build_model(name, weights=None, include_top=False, features=True)
    assert list(model.output) == [f"C{k}" for k in range(2, 2 + len(levels))]
    for (side, c), tensor in zip(levels, model.output.values()):
        assert tensor.shape == (None, side, side, c)
    outputs = model.predict(images(1, size), verbose=0)
    assert {k: v.shape[1:] for k, v in outputs.items()} == {k: v.shape[1:] for k, v in model.output.items()}


def test_blocks_compose_inside_a_user_model():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = kr.basic_block(x, 8, name="a")
    x, _ = kr.stack(x, 4, 2, "bottleneck", stride=2, name="s", opts=kr.BlockOptions(preact=True, stride_on="3x3"))
    x = kr.block(x, 16, "basic", stride=2, name="h", opts=kr.BlockOptions(skip="highway", shortcut="C"))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    assert model.output_shape == (None, 16)
    assert "s_block1_0_conv" in {layer.name for layer in model.layers}


def test_generic_builder_with_a_custom_depth():
    arch = specs.Arch("basic", (1, 1), (8, 16), "cifar")
    model = kr.ResNet(arch, input_shape=(16, 16, 3), classes=3, options=kr.BlockOptions(shortcut="A"))
    assert arch.depth == 6 and model.output_shape == (None, 3)


TWINS = [("ResNet20", {}), ("ResNet20V2", {}), ("Highway20", {}), pytest.param("Plain20", {}, marks=SLOW),
         pytest.param("ResNet50", {"variant": "d", "input_shape": (32, 32, 3)}, marks=SLOW),
         pytest.param("ResNet50V2", {"input_shape": (32, 32, 3)}, marks=SLOW)]


@pytest.mark.parametrize("name,kwargs", TWINS)
def test_tf_keras_twin_gives_identical_outputs(name, kwargs):
    import tf_keras

    ours = kr.build_model(name, weights=None, **kwargs)
    twin = kr.build_model(name, weights=None, library="tf_keras", **kwargs)
    assert isinstance(twin, tf_keras.Model)
    assert weighted_names(twin) == weighted_names(ours)
    assert kr.transfer_weights(ours, twin) == len(weighted_names(ours))
    x = images(size=kwargs.get("input_shape", (32,))[0])
    np.testing.assert_allclose(twin.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=0, atol=1e-6)


@SLOW  # a fresh process imports TensorFlow
def test_keras_file_round_trip_in_a_fresh_process_with_safe_mode(tmp_path):
    models = {"r20": kr.ResNet20(), "h20": kr.Highway20(), "d50": kr.ResNet50(weights=None, variant="d",
                                                                               input_shape=(32, 32, 3))}
    x = images(4)
    np.save(tmp_path / "x.npy", x)
    for key, model in models.items():
        model.save(tmp_path / f"{key}.keras")
        np.save(tmp_path / f"{key}.npy", model.predict(x, verbose=0))
    script = textwrap.dedent(f"""
        import pathlib, keras, numpy as np
        import keras_resnet  # registers ChannelPadding, the option-A layer
        d = pathlib.Path({str(tmp_path)!r})
        x = np.load(d / "x.npy")
        for key in {list(models)!r}:
            m = keras.saving.load_model(d / f"{{key}}.keras", safe_mode=True)
            np.testing.assert_array_equal(m.predict(x, verbose=0), np.load(d / f"{{key}}.npy"))
        print("round trip ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "round trip ok" in result.stdout, result.stderr[-2000:]


def test_weights_from_a_keras_file(tmp_path):
    source = kr.ResNet20(classes=5)
    source.save(tmp_path / "m.keras")
    model = kr.ResNet20(classes=5, weights=str(tmp_path / "m.keras"))
    np.testing.assert_array_equal(model.predict(images(), verbose=0), source.predict(images(), verbose=0))


@pytest.mark.parametrize("call,message", [
    (lambda: specs.cifar_arch(21), r"6n\+2 for basic blocks .* got depth 21"),
    (lambda: specs.cifar_arch(30, "bottleneck"), r"9n\+2 for bottleneck .* got depth 30"),
    (lambda: specs.imagenet_arch(42), "must be one of 18, 34, 50, 101, 152, 200; got 42"),
    (lambda: kr.build_model("resnet21"), "unknown model 'resnet21'; choose from resnet18"),
    (lambda: kr.ResNet50(weights=None, input_shape=(16, 16, 3)), "too small for resnet50: .* at least 32"),
    (lambda: kr.ResNet20(input_shape=(2, 2, 3)), "too small for resnet20: .* at least 4"),
    (lambda: kr.ResNet20(input_shape=(32, 32)), r"must be \(height, width, channels\)"),
    (lambda: kr.ResNet50(classes=10), "needs classes=1000; got 10"),
    (lambda: kr.ResNet50(input_shape=(64, 64, 3)), r"needs input_shape \(224, 224, 3\)"),
    (lambda: kr.ResNet20(pooling="mean", include_top=False), "pooling must be None, 'avg' or 'max'"),
    (lambda: kr.ResNet20(weights="/no/such/file.h5"), "no such file"),
    (lambda: kr.ResNet20(shortcut="D"), "shortcut must be one of 'A', 'B', 'C'; got 'D'"),
    (lambda: kr.ResNet20(depth=3), r"unknown option\(s\) \['depth'\]"),
    (lambda: kr.ResNet20(variant="d"), "variant must be one of 'v1' for ResNet20"),
    (lambda: kr.ResNet20(features=True), "pass include_top=False"),
    (lambda: kr.ResNet20(width=0), "width must be positive"),
    (lambda: kr.ResNet20(classes=0), "classes must be a positive integer"),
    (lambda: kr.basic_block(keras.Input((8, 8, 16)), 8, opts=kr.BlockOptions(shortcut="A")),
     "cannot reduce channels"),
])
def test_errors_say_what_is_allowed(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_cli_summary_in_process(capsys):
    from keras_resnet.cli.main import main

    assert main(["summary", "resnet20", "--classes", "7"]) == 0
    assert "Total params: 270,903" in capsys.readouterr().out
    assert main(["summary", "resnet21"]) == 2
    assert capsys.readouterr().err == ("keras-resnet summary: error: unknown model 'resnet21'; choose from "
                                       + ", ".join(kr.MODELS) + "\n")


@pytest.mark.slow
def test_cli_summary():  # `keras-resnet models` (no Keras) is tested in test_foundation.py
    summary = subprocess.run([sys.executable, "-m", "keras_resnet.cli", "summary", "resnet20"], capture_output=True,
                             text=True, timeout=120)
    assert summary.returncode == 0 and "Total params: 271,098" in summary.stdout
    bad = subprocess.run([sys.executable, "-m", "keras_resnet.cli", "summary", "resnet21"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("keras-resnet summary: error: unknown model 'resnet21'")
