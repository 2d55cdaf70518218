"""Native Keras 3 QAT (keras_resnet.quant.native_qat): per-layer agreement with TFLite's int8 kernels (1 LSB per op,
against LiteRT's reference kernels and XNNPACK), BN folding in training and inference, .keras round trips,
refusals, the digits chain and a JAX-backend run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_resnet.core.errors import ConfigError  # noqa: E402
from keras_resnet.io.model_io import load_model  # noqa: E402
from keras_resnet.model.blocks import ChannelPadding  # noqa: E402
from keras_resnet.quant import native_qat as qat  # noqa: E402

slow = pytest.mark.slow  # conversion, training or a subprocess
L = keras.layers


def _x(shape, n=16, seed=0, low=-2.0, high=3.0):
    return np.random.default_rng(seed).uniform(low, high, (n, *shape)).astype("float32")


def _randomize_bn(model, seed=0):
    """Non-trivial BN statistics and affine parameters, so folding errors show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c),
                               rng.uniform(0.5, 3, c)])


def _conv_bn_relu(stride=1):
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, strides=stride, padding="same", use_bias=False, name="c")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, L.Activation("relu", name="r")(x))


# ---- the JAX/PyTorch fake quantization: Keras' values, the straight-through gradient -----------------------


@pytest.mark.parametrize("case", ["activation", "relu range", "weights per channel"])
def test_straight_through_fake_quant_matches_keras_values_and_input_gradient(case):
    """quant.fake_quant.straight_through (what the QAT layers run on JAX and PyTorch) against Keras' op (TensorFlow's
    FakeQuant kernel here): the same values, and the input's gradient is the same mask, boundaries included."""
    import tensorflow as tf

    from keras_resnet.quant.fake_quant import straight_through

    rng = np.random.default_rng(0)
    if case == "weights per channel":
        bound = rng.uniform(0.05, 2.0, 8).astype("float32")
        low, high, narrow = -bound, bound, True
        x = (rng.uniform(-1.2, 1.2, (3, 3, 4, 8)) * bound).astype("float32")
    else:
        low, high = (np.float32(-1.7), np.float32(4.2)) if case == "activation" else (np.float32(0), np.float32(6))
        narrow = False
        x = rng.uniform(-3, 7, (4, 6, 6, 5)).astype("float32")
        x[0, 0, 0, :3] = [0.0, low, high]  # the boundaries (a ReLU's zeros sit on the low end)
    axis = -1 if np.ndim(low) else None
    x = tf.constant(x)
    upstream = tf.constant(rng.normal(size=x.shape).astype("float32"))
    results = {}
    for name, fn in (("keras", lambda t: keras.quantizers.fake_quant_with_min_max_vars(
            t, low, high, num_bits=8, narrow_range=narrow, axis=axis)),
            ("ours", lambda t: straight_through(t, low, high, narrow_range=narrow))):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * upstream)
        results[name] = (y.numpy(), tape.gradient(loss, x).numpy())
    step = float(np.max(np.asarray(high) - np.asarray(low))) / 255
    np.testing.assert_allclose(results["ours"][0], results["keras"][0], rtol=0, atol=step * 1e-4)
    np.testing.assert_array_equal(results["ours"][1], results["keras"][1])
    assert 0 < np.count_nonzero(results["ours"][1]) < x.shape.num_elements()  # some inside, some clipped


# ---- per layer: the fake-quant forward equals the TFLite int8 kernel within 1 LSB ----------------------------


def _models() -> dict:
    def model(inputs, outputs):
        return keras.Model(inputs, outputs)

    i = keras.Input((8, 8, 3))
    cases = {"conv": _conv_bn_relu(), "conv_stride2": _conv_bn_relu(2)}
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(i)
    cases["depthwise"] = model(i, L.ReLU(name="r")(x))
    i = keras.Input((8, 8, 3))
    x = L.BatchNormalization(name="preact_bn")(i)  # standalone: the V2 pre-activation
    cases["affine"] = model(i, L.Activation("relu", name="preact_relu")(x))
    i = keras.Input((8, 8, 3))
    x = L.Normalization(mean=[1.0, 0.5, -0.5], variance=[2.0, 1.0, 4.0], name="normalization")(i)
    cases["normalization"] = model(i, L.Conv2D(4, 1, name="c")(x))
    i = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", name="a")(i)
    b = L.BatchNormalization(name="b_bn")(L.Conv2D(4, 1, name="b")(i))
    cases["add_relu"] = model(i, L.Activation("relu", name="out")(L.Add(name="add")([a, b])))
    i = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", name="a")(i)
    cases["add_v2"] = model(i, L.Add(name="add")([L.Conv2D(4, 1, name="b")(i), a]))  # no ReLU after (V2)
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="c")(i)
    x = L.MaxPooling2D(1, strides=2, name="pool")(x)  # option-A subsample
    x = ChannelPadding(4, name="pad_channels")(x)
    cases["pad"] = model(i, L.ZeroPadding2D(1, name="zero_pad")(x))
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="c")(i)
    cases["avg_pool"] = model(i, L.AveragePooling2D(2, name="avg")(x))
    i = keras.Input((8, 8, 3))
    cases["global_pool"] = model(i, L.GlobalAveragePooling2D(name="gap")(L.Conv2D(4, 3, name="c")(i)))
    i = keras.Input((4, 4, 3))
    cases["dense"] = model(i, L.Dense(10, name="fc")(L.Flatten(name="flat")(i)))
    i = keras.Input((4, 4, 3))
    cases["dense_softmax"] = model(i, L.Dense(10, activation="softmax", name="fc")(L.Flatten(name="flat")(i)))
    return cases


CASES = list(_models())


def _tflite_outputs(content: bytes, x_q: np.ndarray,
                    kernels: str = "reference") -> tuple[np.ndarray, float, np.ndarray]:
    """Run an int8-I/O model image by image: (dequantized outputs, output scale, raw int8 outputs).

    ``kernels="reference"``: LiteRT's reference kernels (OpResolverType.BUILTIN_REF), plain C++ integer arithmetic
    that gives the same bits on every CPU: the exact claims are made against them. ``"xnnpack"``: the default
    runtime (XNNPACK), whose int8 kernels are picked per instruction set (AVX2, AVX-512 VNNI, AMX) and round the
    requantization differently: the speed path, held to tolerances stated in quantization steps."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = {"reference": OpResolverType.BUILTIN_REF, "xnnpack": OpResolverType.AUTO}[kernels]
    interpreter = Interpreter(model_content=content, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    raw = []
    for image in x_q:
        q = np.round(image / s_in + z_in)
        assert np.abs(q - (image / s_in + z_in)).max() < 1e-3, "the Keras input is on the TFLite input grid"
        interpreter.set_tensor(inp["index"], q.astype(np.int8)[None])
        interpreter.invoke()
        raw.append(interpreter.get_tensor(out["index"])[0])
    raw = np.asarray(raw)
    return (raw.astype(np.float32) - z_out) * s_out, s_out, raw


@slow
@pytest.mark.isa
@pytest.mark.parametrize("case", CASES)
def test_layer_matches_tflite_int8_within_one_lsb(case):
    from keras_resnet.export.ops import op_summary
    from keras_resnet.export.trace import convert_model

    keras.utils.set_random_seed(0)
    model = _models()[case]
    _randomize_bn(model)
    shape = tuple(model.inputs[0].shape[1:])
    x = _x(shape, 32)
    q = qat.quantize_model(model)
    qat.calibrate(q, x, batches=2, batch_size=16)
    content = convert_model(q, quantization="int8", io_type="int8", batch=1)
    counts, floating = op_summary(content)
    assert floating == [] and "DEQUANTIZE" not in counts and "QUANTIZE" not in counts, (counts, floating)
    x_q = np.asarray(q.get_layer(q.layers[1].name)(x, training=False))  # the input on its int8 grid
    keras_out = np.asarray(q.predict(x, verbose=0))
    # Per int8 op the int32 accumulator is exact in both; only the requantization rounds (Keras in float32, the
    # reference kernels in fixed point, XNNPACK per instruction set), so an output may differ by 1 LSB of its scale
    # per requantizing op on the longest path (2 where a conv, an Add or a Normalization feeds another op); and
    # only values at a rounding boundary differ: the mean stays far below the 0.5 LSB that a rounding mode off by
    # half a step everywhere would give (1 for a wrong zero point).
    steps = 2 if case in ("normalization", "add_relu", "add_v2", "avg_pool", "global_pool", "dense_softmax") else 1
    for kernels in ("reference", "xnnpack"):
        tflite_out, scale, _ = _tflite_outputs(content, x_q, kernels)
        lsb = np.abs(keras_out - tflite_out) / scale
        assert lsb.max() <= steps + 1e-3, f"{case}, {kernels}: {lsb.max():.2f} LSB (mean {lsb.mean():.3f})"
        assert lsb.mean() < 0.25, f"{case}, {kernels}: mean {lsb.mean():.3f} LSB"
    expected = {"conv": "CONV_2D", "conv_stride2": "CONV_2D", "depthwise": "DEPTHWISE_CONV_2D",
                "affine": "DEPTHWISE_CONV_2D", "normalization": "DEPTHWISE_CONV_2D", "add_relu": "ADD",
                "add_v2": "ADD", "pad": "PAD", "avg_pool": "AVERAGE_POOL_2D", "global_pool": "MEAN",
                "dense": "FULLY_CONNECTED", "dense_softmax": "SOFTMAX"}[case]
    assert expected in counts, counts


# ---- the rewrite -----------------------------------------------------------------------------------------------


def test_rewrite_fuses_conv_bn_relu_and_keeps_names():
    q = qat.quantize_model(_models()["add_relu"])
    kinds = [type(layer).__name__ for layer in q.layers]
    assert kinds == ["InputLayer", "QATInput", "QATConv", "QATConv", "QATOutput"]  # BN and ReLU fused away
    assert [q.get_layer(n).__class__.__name__ for n in ("a", "b", "add")] == ["QATConv", "QATConv", "QATOutput"]
    assert q.get_layer("b").bn is not None and q.get_layer("a").bn is None
    assert q.get_layer("add").activation == "relu"  # the ReLU after the Add is fused, as TFLite fuses it
    assert qat.is_native_qat(q) and not qat.is_native_qat(_models()["add_relu"])
    assert qat.quantize_model(q) is q


def test_unsupported_layers_are_refused_by_name():
    i = keras.Input((8, 8, 3))
    model = keras.Model(i, L.LayerNormalization(name="layer_norm")(i))
    with pytest.raises(ConfigError, match="layer_norm"):
        qat.quantize_model(model)
    model = keras.Model(i, L.Conv2D(4, 3, activation="tanh", name="tanh_conv")(i))
    with pytest.raises(ConfigError, match="tanh_conv"):
        qat.quantize_model(model)
    shared = L.Conv2D(3, 1, name="shared")
    model = keras.Model(i, L.Add()([shared(i), shared(shared(i))]))
    with pytest.raises(ConfigError, match="shared"):
        qat.quantize_model(model)
    with pytest.raises(ConfigError, match="Sequential"):
        qat.quantize_model(keras.Sequential([keras.Input((4,)), L.Dense(2)]))


# ---- BN folding -----------------------------------------------------------------------------------------------


def _quantize_numpy(w: np.ndarray) -> np.ndarray:
    """Per-output-channel symmetric narrow-range int8 (the last axis), dequantized."""
    bound = np.maximum(np.abs(w).reshape(-1, w.shape[-1]).max(0), 1e-6)
    scale = bound / 127
    return np.clip(np.round(w / scale), -127, 127) * scale


def test_folding_in_inference_uses_moving_statistics_and_quantized_folded_weights():
    keras.utils.set_random_seed(1)
    model = _conv_bn_relu()
    _randomize_bn(model)
    x = _x((8, 8, 3))
    q = qat.quantize_model(model)
    qat.calibrate(q, x, batches=1, batch_size=16)
    conv, bn = model.get_layer("c"), model.get_layer("bn")
    gamma, beta, mean, var = (np.asarray(w) for w in bn.get_weights())
    sigma = np.sqrt(var + bn.epsilon)
    folded = _quantize_numpy(np.asarray(conv.kernel) * gamma / sigma)
    expected = np.maximum(np.asarray(keras.ops.conv(q.layers[1](x), folded, padding="same"))
                          + beta - mean * gamma / sigma, 0)
    layer = q.get_layer("c")
    low, high = float(layer.output_min.numpy()), float(layer.output_max.numpy())
    expected = np.asarray(keras.quantizers.fake_quant_with_min_max_vars(expected, low, high))
    got = np.asarray(q(x, training=False))
    step = (high - low) / 255
    assert np.abs(got - expected).max() <= step * 1.001  # a value at a rounding boundary may flip by 1 LSB
    assert np.mean(np.abs(got - expected) > step / 2) < 0.01
    # and it is the float model up to 8-bit error
    assert np.abs(got - np.asarray(model(x, training=False))).max() < 4 * step


def test_folding_in_training_uses_batch_statistics_then_freezes():
    keras.utils.set_random_seed(2)
    model = _conv_bn_relu()
    _randomize_bn(model)
    x = _x((8, 8, 3), 32)
    q = qat.quantize_model(model)
    qat.calibrate(q, x, batches=2, batch_size=16)
    # The reference: the float model with the per-channel int8 kernel, on the int8 input: BN with batch statistics
    # of that conv (the moving statistics move once), which is what the QAT layer computes while BN learns.
    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    reference.get_layer("c").kernel.assign(_quantize_numpy(np.asarray(model.get_layer("c").kernel)))
    want = np.asarray(reference(q.layers[1](x), training=True))
    got = np.asarray(q(x, training=True))
    layer = q.get_layer("c")
    step = float(layer.output_max.numpy() - layer.output_min.numpy()) / 255
    assert np.abs(got - want).max() < 4 * step  # batch statistics (the moving ones are far off: see below)
    assert np.abs(np.asarray(q(x, training=False)) - want).max() > 10 * step
    np.testing.assert_allclose(np.asarray(layer.bn.moving_mean), np.asarray(reference.get_layer("bn").moving_mean),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(layer.bn.moving_variance),
                               np.asarray(reference.get_layer("bn").moving_variance), rtol=1e-4, atol=1e-5)
    qat.freeze(q)
    before = [np.asarray(v).copy() for v in (layer.bn.moving_mean, layer.output_min, layer.output_max)]
    np.testing.assert_allclose(np.asarray(q(x, training=True)), np.asarray(q(x, training=False)), atol=1e-6)
    after = [np.asarray(v) for v in (layer.bn.moving_mean, layer.output_min, layer.output_max)]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bn_freezes_after_a_step_count():
    model = _conv_bn_relu()
    _randomize_bn(model)
    q = qat.quantize_model(model, freeze_bn_after=1, calibration_steps=1)
    x = _x((8, 8, 3))
    q(x, training=True)  # step 0: batch statistics, moving statistics move
    layer = q.get_layer("c")
    moving = np.asarray(layer.bn.moving_mean).copy()
    out = np.asarray(q(x, training=True))  # step 1: frozen: no update, the inference function (ranges still EMA)
    np.testing.assert_array_equal(np.asarray(layer.bn.moving_mean), moving)
    np.testing.assert_allclose(out, np.asarray(q(x, training=False)), atol=float(layer.output_max.numpy()) / 50)


def test_ranges_average_then_ema_then_freeze():
    i = keras.Input((4,))
    q = qat.quantize_model(keras.Model(i, L.Activation("relu", name="r")(i)), calibration_steps=2, ema_decay=0.5,
                           freeze_ranges_after=3)
    layer = q.layers[1]  # the input's range sees the raw values (the ReLU sees them clipped to it)
    assert type(layer).__name__ == "QATInput"
    for high, want in ((2.0, 2.0), (4.0, 3.0), (11.0, 7.0), (100.0, 7.0)):  # avg, avg, EMA 0.5, frozen
        q(np.array([[0.0, 1.0, 0.5, high]], "float32"), training=True)
        assert float(layer.output_max.numpy()) == pytest.approx(want)
    assert float(layer.output_min.numpy()) == 0.0  # the range always holds 0


# ---- saving ------------------------------------------------------------------------------------------------


def test_keras_round_trip_is_exact_and_loads_in_safe_mode(tmp_path):
    keras.utils.set_random_seed(3)
    model = _models()["add_relu"]
    _randomize_bn(model)
    x = _x((8, 8, 3))
    q = qat.quantize_model(model, freeze_bn_after=5)
    qat.calibrate(q, x, batches=1, batch_size=16)
    path = qat.save(q, str(tmp_path / "q.keras"))
    loaded = load_model(path)  # keras_resnet's safe loader: allow-list + safe_mode
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(q(x, training=False)))
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in q.layers]
    assert loaded.get_layer("b").freeze_bn_after == 5
    plain = keras.saving.load_model(path, safe_mode=True)  # plain Keras after `import keras_resnet`
    np.testing.assert_array_equal(np.asarray(plain(x, training=False)), np.asarray(q(x, training=False)))
    with pytest.raises(ConfigError, match=r"\.keras"):
        qat.save(q, str(tmp_path / "q.h5"))
    assert [p.name for p in tmp_path.iterdir()] == ["q.keras"]


def test_fit_trains_and_moves_ranges():
    keras.utils.set_random_seed(4)
    i = keras.Input((8, 8, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(4, 3, use_bias=False)(i)))
    model = keras.Model(i, L.Dense(3)(L.GlobalAveragePooling2D()(x)))
    q = qat.quantize_model(model)
    x, y = _x((8, 8, 3), 64), np.arange(64) % 3
    history = qat.fine_tune(q, x, y, epochs=2, batch_size=16)
    assert np.isfinite(history.history["loss"]).all()
    assert float(q.layers[1].count.numpy()) == 8  # 2 epochs x 4 steps: one range update per step


def test_cli_engine_flag_and_output_suffix(tmp_path, capsys):
    from keras_resnet.cli.main import main, parser_for

    args = parser_for("qat").parse_args(["m.keras", "--dataset", "digits", "--output", "o.h5", "--engine",
                                         "tfmot"])
    assert args.engine == "tfmot"
    assert parser_for("qat").parse_args(["m.keras", "--dataset", "digits", "--output", "o.keras"]).engine == "keras"
    model = tmp_path / "m.keras"
    _conv_bn_relu().save(model)
    for engine in (["--engine", "keras"], []):  # the native engine is the default
        assert main(["qat", str(model), *engine, "--dataset", "digits", "--output", str(tmp_path / "o.h5")]) == 2
        assert ".keras" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()


# ---- whole chains -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_model() -> str:
    """ResNet-20 trained briefly on digits: the one tests/shared_models.py trains once for all test files."""
    from shared_models import trained_digits_model

    return trained_digits_model()


@slow
@pytest.mark.isa
def test_digits_train_qat_convert_fully_int8(digits_model, tmp_path, capsys):
    from keras_resnet.cli.main import main

    output = tmp_path / "qat.keras"
    assert main(["qat", digits_model, "--engine", "keras", "--dataset", "digits", "--epochs", "1",
                 "--output", str(output)]) == 0
    line = capsys.readouterr().out
    floats = [float(v) for v in line.split("accuracy ")[1:3] for v in [v.split()[0]]]
    # The shared model (8 plain SGD epochs, ~0.97) is trained; one QAT epoch must keep its accuracy within 0.03.
    assert floats[0] > 0.7 and floats[1] >= floats[0] - 0.03, line
    for target, io in (("cpu", "int8"), ("edgetpu", "uint8")):
        tflite = tmp_path / f"q-{target}.tflite"
        assert main(["convert", str(output), "--output", str(tflite), "--target", target, "--validation-data",
                     "digits", "--dataset", "digits", "--json"]) == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert report["quantization"] == "int8" and report["io_type"] == io
        assert report["float_ops"] == [] and "DEQUANTIZE" not in report["ops"]
        # uint8 I/O (edgetpu) is the int8 graph between a uint8->int8 and an int8->uint8 QUANTIZE, as for PTQ
        assert report["ops"].get("QUANTIZE", 0) == (2 if io == "uint8" else 0), report["ops"]
        assert report["agreement"] >= 0.98, report["agreement"]
        # option A's subsample: SPACE_TO_DEPTH + channel STRIDED_SLICE (blocks.ChannelPadding), int8 like the rest
        assert set(report["ops"]) <= {"QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "PAD", "SPACE_TO_DEPTH",
                                      "STRIDED_SLICE", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}


BACKEND_SCRIPT = textwrap.dedent("""
    import os
    import sys
    import numpy as np
    import keras
    assert keras.backend.backend() == os.environ["KERAS_BACKEND"], keras.backend.backend()
    from keras_resnet.data import datasets as data
    from keras_resnet.quant import native_qat as qat
    from keras_resnet.train import recipe as train
    keras.utils.set_random_seed(0)
    model = train.model_for_dataset("resnet20v2", data.info("digits"))
    x, y = data.load("digits", "train")
    q = qat.quantize_model(model, freeze_bn_after=4, freeze_ranges_after=12)
    qat.calibrate(q, x, batches=2, batch_size=32)
    history = qat.fine_tune(q, x[:256], y[:256], epochs=1, batch_size=32)
    assert np.isfinite(history.history["loss"]).all()
    qat.save(q, sys.argv[1])
    np.save(sys.argv[2], np.asarray(q.predict(x[:64], verbose=0)))
""")


@slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_qat_fit_save_then_convert_under_tensorflow(tmp_path, backend):
    """The native engine under JAX (CI) and PyTorch (where torch is installed: pip install -e '.[torch]')."""
    pytest.importorskip(backend, reason=f"{backend} is not installed")
    from keras_resnet.data import datasets as data
    from keras_resnet.export.ops import op_summary
    from keras_resnet.export.trace import convert_model

    script, path, preds = tmp_path / "run.py", tmp_path / f"{backend}.keras", tmp_path / f"{backend}.npy"
    script.write_text(BACKEND_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(script), str(path), str(preds)], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    model = load_model(str(path))  # TensorFlow backend here
    x, _ = data.load("digits", "train")
    backend_out = np.load(preds)
    tf_out = np.asarray(model.predict(x[:64], verbose=0))
    # Same weights and ranges; float sums in another order flip a logit at a rounding boundary now and then (seen:
    # 2 of 640 softmax outputs moved by 0.027), so compare on average and by top-1.
    assert np.mean(np.abs(tf_out - backend_out)) < 2e-3
    top2 = np.sort(backend_out, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 4 / 256  # 4 softmax LSBs: a lead no rounding flip can undo (torch flipped 2
    assert clear.mean() >= 0.5, clear.mean()  # of 64 near-tied top-1s of this barely trained model)
    np.testing.assert_array_equal(tf_out.argmax(-1)[clear], backend_out.argmax(-1)[clear])
    content = convert_model(model, quantization="int8", io_type="int8", batch=1)
    counts, floating = op_summary(content)
    assert floating == [] and "DEQUANTIZE" not in counts
    assert counts.get("DEPTHWISE_CONV_2D", 0) >= 10  # the pre-activation BNs and the input normalization
    x_q = np.asarray(model.layers[1](x[:64].astype("float32"), training=False))
    tflite, _, _ = _tflite_outputs(content, x_q)
    # Twenty layers of 1-LSB rounding differences drift the softmax by up to ~11 LSBs (measured per layer), so the
    # int8 file is held to the backend's outputs on average and by top-1 where that leads by > 0.1. The torch-trained
    # model is the less sure one: 5 of 64 such leads (JAX: all 64); its mean |difference| 0.0065 (JAX: 0.0021).
    assert np.mean(np.abs(tflite - backend_out)) < 0.01
    sure = top2[:, 1] - top2[:, 0] > 0.1
    assert sure.sum() >= 4, sure.sum()
    np.testing.assert_array_equal(tflite.argmax(-1)[sure], backend_out.argmax(-1)[sure])


def _family(block: str, options: dict, *, cifar: bool):
    """A reduced-width copy of a family's topology (the same layer types and wiring as the full model), with the
    training module's input layout: pixels 0-255 -> Normalization -> ResNet."""
    from keras_resnet.model.build import ResNet
    from keras_resnet.spec.specs import Arch, BlockOptions

    inputs = keras.Input((32, 32, 3), name="image")
    x = L.Normalization(mean=[120.0, 110.0, 100.0], variance=[4000.0, 3000.0, 3500.0], name="normalization")(inputs)
    arch = Arch(block, (1, 1, 1), (8, 16, 32), "cifar") if cifar else \
        Arch(block, (1, 1, 1, 1), (8, 16, 24, 32), options.pop("stem", "imagenet"))
    return ResNet(arch, weights=None, input_tensor=x, classes=10, options=BlockOptions(**options), name="family")


NATIVE_FAMILIES = {  # every family of issue 12's coverage list, basic and bottleneck
    "cifar-A": ("basic", {"shortcut": "A"}, True),
    "cifar-B": ("basic", {"shortcut": "B"}, True),
    "cifar-C": ("basic", {"shortcut": "C"}, True),
    "cifar-v2": ("basic", {"preact": True, "shortcut": "B"}, True),
    "highway": ("basic", {"skip": "highway", "shortcut": "A"}, True),
    "plain": ("basic", {"skip": "none", "shortcut": "A"}, True),
    "imagenet-basic": ("basic", {}, False),
    "bottleneck-v1": ("bottleneck", {"use_bias": True}, False),
    "bottleneck-v1.5": ("bottleneck", {"stride_on": "3x3"}, False),
    "bottleneck-d": ("bottleneck", {"stride_on": "3x3", "avg_down": True, "stem": "deep"}, False),
    "bottleneck-v2": ("bottleneck", {"preact": True, "stride_on": "3x3"}, False),
}


@slow
@pytest.mark.isa
@pytest.mark.parametrize("family", NATIVE_FAMILIES)
def test_every_family_converts_to_full_int8_and_matches_keras(family):
    from keras_resnet.export.ops import op_summary
    from keras_resnet.export.trace import convert_model

    block, options, cifar = NATIVE_FAMILIES[family]
    keras.utils.set_random_seed(0)
    model = _family(block, dict(options), cifar=cifar)
    rng = np.random.default_rng(1)
    for layer in model.layers:  # BN statistics away from the identity, but mild: deep random nets saturate
        if isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.8, 1.25, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.8, 1.5, c)])
    q = qat.quantize_model(model)
    # Images that differ (a colour, a gradient and noise each): uniform noise images all look alike to a random net
    rng, n = np.random.default_rng(0), 256  # 256 images: one flipped top-1 moves the agreement by 0.4%
    ramp = np.linspace(-1, 1, 32, dtype="float32")
    x = (rng.uniform(40, 215, (n, 1, 1, 3)) + rng.uniform(-40, 40, (n, 1, 1, 3)) * ramp[None, :, None, None]
         + rng.uniform(-40, 40, (n, 1, 1, 3)) * ramp[None, None, :, None] + rng.normal(0, 10, (n, 32, 32, 3)))
    x = np.clip(x, 0, 255).astype("float32")
    qat.calibrate(q, x[:64], batches=2, batch_size=32)
    qat.freeze(q)
    content = convert_model(q, quantization="int8", io_type="int8", batch=1)
    counts, floating = op_summary(content)
    assert floating == [] and "DEQUANTIZE" not in counts and "QUANTIZE" not in counts, counts
    x_q = np.asarray(q.layers[1](x, training=False))  # pixels on the QATInput grid, as TFLite receives them
    keras_out = np.asarray(q(x_q, training=False))
    # Tolerances in output LSBs (the softmax's 1/256), from the arithmetic rather than from one CPU's run. Each int8
    # op that requantizes may round an output 1 LSB away from the float fake-quant (see the per-layer test); the
    # ops that only move int8 values (PAD, SPACE_TO_DEPTH, STRIDED_SLICE) add nothing. Every range is calibrated to
    # its activations, so a difference of 1 LSB at one op's output is about 1 LSB at the next one's: the output can
    # drift by at most about one LSB per requantizing op (`depth`), and typically far less, since roundings of either
    # sign cancel. A wrong range or scale, or an op left in float, moves the mean by tens of LSBs.
    depth = sum(count for op, count in counts.items() if op not in ("PAD", "SPACE_TO_DEPTH", "STRIDED_SLICE"))
    top2 = np.sort(keras_out, -1)[:, -2:]
    lead = (top2[:, 1] - top2[:, 0]) * 256  # Keras' top-1 lead, in output LSBs
    clear = lead > 2  # a random net ties some outputs, and rounding breaks ties either way
    assert clear.sum() >= n // 2, (family, clear.sum())
    # The reference kernels give the same bits on every CPU (only Keras' float sums vary, by an LSB or two), so
    # their figures are exact claims; XNNPACK (another kernel per instruction set) is held to the same bounds.
    for kernels in ("reference", "xnnpack"):
        tflite, scale, _ = _tflite_outputs(content, x_q, kernels)
        assert scale == pytest.approx(1 / 256), scale
        lsb = np.abs(tflite - keras_out) / scale
        assert lsb.max() <= depth, (family, kernels, lsb.max(), depth)
        assert lsb.mean() <= 2.0, (family, kernels, lsb.mean())
        # A top-1 flips where the two leading outputs drift apart by more than the lead: a lead of a few LSBs can,
        # one over 2 x depth cannot. Among the clear images at most 10% may flip: >= 13 images on >= 128, so no
        # single image decides the verdict, while a broken conversion agrees on ~10% (chance, 10 classes).
        agree = tflite.argmax(-1) == keras_out.argmax(-1)
        assert agree[lead > 2 * depth].all(), (family, kernels, lead[~agree])
        assert agree[clear].mean() >= 0.9, (family, kernels, agree[clear].mean(), np.sort(lead[clear & ~agree]))
