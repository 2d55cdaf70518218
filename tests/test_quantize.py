"""QAT: Keras 3 → tf_keras translation, every family quantizes to full int8, fine-tuning, save/load, CLI."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from shared_models import trained_digits_model  # noqa: F401 (tests/test_micro.py imports it from here)

keras = pytest.importorskip("keras")
if importlib.util.find_spec("tensorflow_model_optimization") is None:  # not imported here: it sets
    pytest.skip("needs tensorflow-model-optimization", allow_module_level=True)  # TF_USE_LEGACY_KERAS

from keras_resnet.core.errors import ConfigError, ModelFileError, OutputExistsError  # noqa: E402
from keras_resnet.io.model_io import load_model  # noqa: E402
from keras_resnet.model.registry import build_model  # noqa: E402
from keras_resnet.quant import tf_keras_twin as T  # noqa: E402
from keras_resnet.quant import tfmot_qat as Q  # noqa: E402
from keras_resnet.spec.commands import QATSpec  # noqa: E402

slow = pytest.mark.slow  # tfmot, training or conversion


def _with_normalization(name: str, size: int = 32, **kwargs):
    """The training module's layout: Input (pixels 0-255) → Normalization("normalization") → ResNet."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[4000.0, 3000.0, 3500.0],
                                   name="normalization")(inputs)
    return build_model(name, weights=None, input_tensor=x, name=name, **kwargs)


@pytest.fixture(scope="session")
def digits_model() -> str:
    return trained_digits_model()


FAMILIES = [
    ("resnet20", {}),  # CIFAR v1, option-A shortcuts (MaxPool + ChannelPadding)
    ("resnet20v2", {}),  # pre-activation: standalone BNs
    ("highway20", {}),  # Subtract/Multiply gates
    ("plain20", {}),
    ("resnet50", {"variant": "v1.5", "classes": 10}),
    ("resnet50", {"variant": "d", "classes": 10}),  # deep stem, avg-pool shortcut
    ("resnet50v2", {"classes": 10}),
]


@slow
@pytest.mark.parametrize("name,kwargs", FAMILIES, ids=[f"{n}-{k.get('variant', 'v1')}" for n, k in FAMILIES])
def test_every_family_translates_exactly_and_quantizes(name, kwargs):
    # Seeded: some random ResNet-50V2 inits have huge logits, whose softmax turns float32 rounding into |diff| ~1e-5.
    keras.utils.set_random_seed(0)
    model = _with_normalization(name, **kwargs)
    twin = T.to_tf_keras(model)
    assert type(twin).__module__.startswith("tf_keras")
    assert T.parity(model, twin) < 1e-5
    prepared = T.to_tf_keras(model, for_qat=True)  # BN → depthwise where tfmot cannot fold
    assert T.parity(model, prepared) < 1e-4
    qat = Q.quantize_model(model)
    assert Q.is_qat_model(qat)
    # The input Normalization holds data constants; trained, one fine-tuning epoch wrecked the model.
    assert not qat.get_layer("quant_normalization").layer.trainable
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    Q.calibrate_ranges(qat, x, batches=1, batch_size=4)
    assert np.isfinite(qat.predict(x, verbose=0)).all()


@slow
@pytest.mark.isa
@pytest.mark.parametrize("name", ["resnet20v2", "highway20", "resnet20"])
def test_qat_models_convert_to_full_int8(name, tmp_path):
    from keras_resnet.export.ops import op_summary
    from keras_resnet.export.trace import convert_model

    keras.utils.set_random_seed(0)
    model = _with_normalization(name)
    qat = Q.quantize_model(model)
    x = np.random.default_rng(0).uniform(0, 255, (64, 32, 32, 3)).astype("float32")
    Q.calibrate_ranges(qat, x, batches=2, batch_size=32)
    content = convert_model(qat, quantization="int8", io_type="int8", batch=1)
    counts, floating = op_summary(content)
    assert floating == [], f"float ops left in {name}: {floating}"
    assert "DEQUANTIZE" not in counts
    if name == "resnet20v2":
        assert counts.get("DEPTHWISE_CONV_2D", 0) >= 10  # the pre-activation BNs, as one int8 op each
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from resnet_edge import Classifier

    # 256 seeded images other than the calibration ones: one flipped top-1 cannot decide the verdict.
    x = np.random.default_rng(1).uniform(0, 255, (256, 32, 32, 3)).astype("float32")
    keras_out = qat.predict(x, verbose=0)
    # LiteRT's reference kernels (BUILTIN_REF: the same bits on every CPU) for the exact claim, and resnet-edge's
    # default runtime (XNNPACK, whose int8 kernels and their rounding depend on the instruction set) for the speed
    # path, both held to the same bound in output steps.
    reference = Interpreter(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    reference.allocate_tensors()
    (inp,), (out,) = reference.get_input_details(), reference.get_output_details()
    (s_in, z_in), (scale, z_out) = inp["quantization"], out["quantization"]
    ref_out = []
    for image in x:
        reference.set_tensor(inp["index"], np.clip(np.round(image / s_in + z_in), -128, 127).astype(np.int8)[None])
        reference.invoke()
        ref_out.append((reference.get_tensor(out["index"])[0].astype(np.float32) - z_out) * scale)
    (tmp_path / "qat.tflite").write_bytes(content)
    xnnpack_out = Classifier(tmp_path / "qat.tflite", safe=False, warn=lambda message: None).predict_arrays(x)
    # Random weights give near-uniform outputs (highway20: most top-1 leads under one output step), and rounding
    # breaks near-ties either way: only images whose Keras top-1 leads by > 2 output steps count. A flip needs the
    # int8 drift of the two leading outputs to exceed the lead, which a few of >= 32 such images may (seen: up to
    # 4 of 239 for resnet20v2, whose saturated random net drifts by ~32 steps); a broken conversion agrees on ~10%.
    top2 = np.sort(keras_out, -1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * scale
    assert clear.sum() >= 32, clear.sum()
    for kernels, tflite_out in (("reference", np.asarray(ref_out)), ("xnnpack", xnnpack_out)):
        agreement = np.mean(tflite_out.argmax(-1)[clear] == keras_out.argmax(-1)[clear])
        assert agreement >= 0.9, (name, kernels, agreement, clear.sum())


def test_sequential_and_nested_models_translate():
    inner = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, name="c1"),
                              keras.layers.BatchNormalization(name="b1"), keras.layers.ReLU(name="r1")],
                             name="inner")
    inputs = keras.Input((16, 16, 3))
    shared = keras.layers.Conv2D(8, 1, name="shared")
    x = inner(inputs)
    y = keras.layers.Add(name="add")([shared(x), shared(x)])  # a layer called twice
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    model = keras.Model(inputs, keras.layers.Dense(4, name="dense")(y))
    twin = T.to_tf_keras(model)
    assert T.parity(model, twin) < 1e-5


def test_lambda_and_custom_layers_are_refused_by_name():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(T.TranslationError, match="double"):
        T.to_tf_keras(model)


@slow
def test_qat_fine_tune_save_and_reload(digits_model, tmp_path):
    output = tmp_path / "qat.h5"
    result = Q.qat_fine_tune(digits_model, QATSpec(dataset="digits", epochs=1, batch_size=64), str(output))
    assert result.path == str(output) and output.exists()
    assert result.float_accuracy > 0.9
    assert result.accuracy >= result.float_accuracy - 0.03
    x_norm = load_model(digits_model).get_layer("normalization")  # the constants survived fine-tuning
    wrapper = load_model(str(output)).get_layer("quant_normalization")
    kernel = next(w.numpy() for w in wrapper.weights if "depthwise_kernel" in w.name)
    np.testing.assert_allclose(np.ravel(kernel), 1 / np.sqrt(np.ravel(x_norm.variance)), rtol=1e-4)
    reloaded = load_model(str(output))
    assert Q.is_qat_model(reloaded)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    qat = load_model(str(output))
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(OutputExistsError, match="exists"):
        Q.qat_fine_tune(digits_model, QATSpec(dataset="digits", epochs=0), str(output))
    with pytest.raises(ConfigError, match=r"\.h5"):
        Q.qat_fine_tune(digits_model, QATSpec(dataset="digits", epochs=0), str(tmp_path / "qat.keras"))


@slow
def test_qat_model_h5_round_trip_is_exact(tmp_path):
    qat = Q.quantize_model(_with_normalization("resnet20v2"))
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    Q.calibrate_ranges(qat, x, batches=1, batch_size=8)
    path = Q.save_qat_model(qat, str(tmp_path / "m.h5"))
    np.testing.assert_array_equal(load_model(path).predict(x, verbose=0), qat.predict(x, verbose=0))
    assert [p.name for p in tmp_path.iterdir()] == ["m.h5"]  # no temporary files left


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(str(tmp_path / "missing.keras"))
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model(str(corrupt))


@slow
def test_cli(digits_model, tmp_path, capsys):
    from keras_resnet.cli.main import main

    output = tmp_path / "q.h5"
    assert main(["qat", digits_model, "--engine", "tfmot", "--dataset", "digits", "--epochs", "0", "--output",
                 str(output)]) == 0
    assert output.exists() and "QAT accuracy" in capsys.readouterr().out
    assert main(["qat", digits_model, "--engine", "tfmot", "--dataset", "digits", "--epochs", "0", "--output",
                 str(output)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["qat", str(tmp_path / "nope.keras"), "--dataset", "digits", "--output", str(tmp_path / "x.h5")]) == 2
    assert not os.path.exists(tmp_path / "x.h5")
