"""The modern recipe options of ``train``: mixup/cutmix, RandAugment, drop-path, EMA of weights, BCE, ``--recipe``.

Each option is tested for what it does on the bundled digits; the training runs use a few images and epochs.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from keras_resnet.core.errors import ConfigError
from keras_resnet.data import augment, pipeline
from keras_resnet.data import datasets as data
from keras_resnet.spec.recipe import PRESETS, Recipe
from keras_resnet.train import callbacks as callbacks_mod
from keras_resnet.train import loop as train_mod
from keras_resnet.train import recipe as recipe_mod

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _digits(n: int = 16):
    x, y = data.load("digits", "train")
    return x[:n].astype("float32"), y[:n]


def _seed(a: int, b: int = 7):
    return tf.constant([a, b], tf.int64)


# ---- mixup / cutmix --------------------------------------------------------------------------------------


def test_mixup_mixes_images_and_labels_with_one_lambda():
    x, y = _digits()
    onehot = np.eye(10, dtype="float32")[y]
    images, labels = (t.numpy() for t in augment.mix_batch(x, onehot, _seed(3), mixup_alpha=0.4))
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
    rev_x, rev_y = x[::-1], onehot[::-1]
    distinct = np.flatnonzero(y != y[::-1])
    assert distinct.size
    lam = labels[distinct[0], y[distinct[0]]]
    assert 0 < lam < 1, lam  # a mix, not one of the two images
    np.testing.assert_allclose(labels, lam * onehot + (1 - lam) * rev_y, atol=1e-5)
    np.testing.assert_allclose(images, lam * x + (1 - lam) * rev_x, atol=1e-3)


def test_cutmix_pastes_a_box_and_labels_follow_its_area():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")  # no ties between an image and its partner
    y = np.arange(8) % 10
    onehot = np.eye(10, dtype="float32")[y]
    for s in range(6):
        images, labels = (t.numpy() for t in augment.mix_batch(x, onehot, _seed(s), cutmix_alpha=1.0))
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
        from_other = np.all(images == x[::-1], axis=-1)  # per pixel: pasted from the reversed batch
        from_self = np.all(images == x, axis=-1)
        assert np.all(from_other | from_self)
        assert np.all(from_other == from_other[:1])  # one box for the batch
        lam = labels[0, y[0]]
        assert lam == pytest.approx(1 - from_other[0].mean(), abs=1e-6)
        rows, cols = np.nonzero(from_other[0])
        if rows.size:  # a rectangle
            assert from_other[0, rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_mix_probability_and_switch():
    x, y = _digits(8)
    onehot = np.eye(10, dtype="float32")[y]
    images, labels = augment.mix_batch(x, onehot, _seed(1), mixup_alpha=1.0, cutmix_alpha=1.0, prob=0.0)
    np.testing.assert_array_equal(images.numpy(), x)
    np.testing.assert_array_equal(labels.numpy(), onehot)
    kinds = set()
    for s in range(12):  # with both on, batches get mixup (no pixel equals either image) or cutmix (all do)
        images = augment.mix_batch(x + 0.5, onehot, _seed(s), mixup_alpha=1.0, cutmix_alpha=1.0)[0].numpy()
        kinds.add(bool(np.all((images == x + 0.5) | (images == x[::-1] + 0.5))))
    assert kinds == {True, False}


def test_train_pipeline_mixes_into_soft_one_hot_labels():
    x, y = data.load("digits", "train")
    ds = pipeline.train_pipeline(x[:64], y[:64], 32, flip=False, seed=1, mix={"mixup_alpha": 0.5}, num_classes=10)
    images, labels = next(iter(ds))
    assert images.dtype == tf.float32 and labels.shape == (32, 10) and labels.dtype == tf.float32
    np.testing.assert_allclose(labels.numpy().sum(axis=1), 1.0, atol=1e-6)
    assert (labels.numpy().max(axis=1) < 1).any()  # soft rows
    with pytest.raises(ConfigError, match="num_classes"):
        pipeline.train_pipeline(x[:8], y[:8], 4, mix={"mixup_alpha": 0.5})


# ---- RandAugment -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 1])
def test_rand_augment_shape_range_and_determinism(channels):
    x, _ = _digits(32)
    x = x[..., :channels]
    out = augment.rand_augment(x, _seed(5), ops=2, magnitude=9)
    assert out.shape == x.shape and out.dtype == tf.float32
    out = out.numpy()
    assert out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(out, augment.rand_augment(x, _seed(5), ops=2, magnitude=9).numpy())
    assert not np.array_equal(out, augment.rand_augment(x, _seed(6), ops=2, magnitude=9).numpy())
    changed = np.any(out != x, axis=(1, 2, 3))
    assert changed.mean() > 0.5  # with 12 ops (one the identity), two rounds change most images


def test_every_rand_augment_op_acts():
    x, _ = _digits(4)
    for name in augment.RAND_OPS:
        out = augment._apply(name, tf.constant(x), tf.ones([4]), 9.0, 0.0).numpy()
        assert out.shape == x.shape
        assert np.array_equal(out, x) == (name == "identity"), name
    # solarize inverts the bright pixels only; translate moves the digit
    solar = augment._apply("solarize", tf.constant(x), tf.ones([4]), 9.0, 0.0).numpy()
    threshold = 256 - 0.9 * 256
    np.testing.assert_allclose(solar, np.where(x >= threshold, 255 - x, x))
    moved = augment._apply("translate_x", tf.constant(x), tf.ones([4]), 6.25, 0.0).numpy()
    shift = 9  # 0.45 of the width at magnitude 6.25 of 10: 0.45 · 0.625 · 32
    np.testing.assert_allclose(moved[:, :, : 32 - shift], x[:, :, shift:], atol=1e-3)
    np.testing.assert_array_equal(moved[:, :, 32 - shift:], 0)  # filled


def test_train_pipeline_randaugment_is_seeded():
    x, y = data.load("digits", "train")

    def first(seed):
        ds = pipeline.train_pipeline(x[:32], y[:32], 16, flip=False, seed=seed, randaugment=(2, 9.0))
        return next(iter(ds))[0].numpy()

    np.testing.assert_array_equal(first(3), first(3))
    plain = next(iter(pipeline.train_pipeline(x[:32], y[:32], 16, flip=False, seed=3)))[0].numpy()
    assert not np.array_equal(first(3), plain)


# ---- drop-path -------------------------------------------------------------------------------------------


def _resnet20(**options):
    return recipe_mod.model_for_dataset("resnet20", data.info("digits"), **options)


def test_drop_path_rates_rise_linearly_and_vanish_at_inference():
    model = _resnet20(drop_path_rate=0.2)
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(drops) == 8  # 9 blocks, the first at rate 0
    rates = [layer.rate for layer in drops]
    np.testing.assert_allclose(rates, [0.2 * i / 8 for i in range(1, 9)])
    assert drops[0].name == "conv2_block2_drop" and drops[-1].name == "conv4_block3_drop"
    plain = _resnet20()
    plain.set_weights(model.get_weights())  # Dropout has no weights: the same list
    x, _ = _digits(8)
    np.testing.assert_allclose(model(x, training=False), plain(x, training=False), atol=1e-6)
    with pytest.raises(ConfigError, match="drop_path_rate"):
        _resnet20(drop_path_rate=1.0)


def test_drop_path_drops_whole_branches_per_sample_in_training():
    model = _resnet20(drop_path_rate=0.5)
    layer = model.get_layer("conv4_block3_drop")
    out = layer(tf.ones([256, 4, 4, 8]), training=True).numpy()
    per_sample = out.reshape(256, -1)
    assert np.all(per_sample == per_sample[:, :1])  # a sample's branch is kept or dropped whole
    values = set(np.unique(per_sample))
    assert values == {0.0, 2.0}  # kept branches scaled by 1 / (1 - rate)
    assert 0.35 < (per_sample[:, 0] == 0).mean() < 0.65
    np.testing.assert_array_equal(layer(tf.ones([4, 4, 4, 8]), training=False), 1.0)


@pytest.mark.slow
def test_drop_path_model_converts_without_extra_ops_and_quantizes():
    from keras_resnet.export.ops import op_summary
    from keras_resnet.export.trace import convert_model
    from keras_resnet.quant.tfmot_qat import quantize_model

    with_drop, plain = _resnet20(drop_path_rate=0.1), _resnet20()
    ops_drop, _ = op_summary(convert_model(with_drop, quantization="float32"))
    ops_plain, _ = op_summary(convert_model(plain, quantization="float32"))
    assert ops_drop == ops_plain
    qat = quantize_model(with_drop)  # tfmot passes Dropout through: QAT sees the same layers
    assert any("drop" in layer.name for layer in qat.layers)


# ---- loss ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bce_loss_is_sigmoid_bce_on_the_logits_and_trains():
    x, y = data.load("digits", "train")
    x, y = x[:96].astype("float32"), y[:96]
    onehot = np.eye(10, dtype="float32")[y]
    keras.utils.set_random_seed(0)
    model = _resnet20()
    recipe = Recipe(loss="bce", lr=0.05, epochs=4, batch_size=32)
    recipe_mod.compile_model(model, recipe, 3, 10)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    logits_model = keras.Model(model.inputs, model.get_layer("predictions").input)
    dense = model.get_layer("predictions")
    logits = logits_model(x[:32]).numpy() @ dense.kernel.numpy() + dense.bias.numpy()
    expected = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(onehot[:32], logits)).numpy()
    value = model.evaluate(x[:32], onehot[:32], batch_size=32, verbose=0, return_dict=True)["loss"]
    # timm's BinaryCrossEntropy (mean over samples and classes), not BCE on the softmax probabilities
    assert value == pytest.approx(expected, rel=1e-4)
    history = model.fit(x, onehot, batch_size=32, epochs=4, verbose=0).history["loss"]
    assert min(history[1:]) < 0.7 * history[0]  # measured: 0.56 -> 0.33 (lr 0.05, momentum: not monotonic)


# ---- options ---------------------------------------------------------------------------------------------


def test_defaults_are_the_paper_recipe_and_the_preset_fills_the_rest():
    paper = Recipe()
    assert not paper.one_hot and paper.ema_decay == 0 and paper.randaugment_ops == 0 and paper.loss == "ce"
    modern = Recipe(preset="modern")
    for name, value in PRESETS["modern"].items():
        assert getattr(modern, name) == value
    mine = Recipe(preset="modern", mixup_alpha=0.5, builder_options={"drop_path_rate": 0.1})
    assert mine.mixup_alpha == 0.5 and mine.builder_options == {"drop_path_rate": 0.1}
    assert dataclasses.replace(mine) == mine  # applying the preset again changes nothing (resume compares)
    for bad in ({"ema_decay": 1.0}, {"mixup_alpha": -1.0}, {"mix_prob": 2.0}, {"randaugment_ops": -1},
                {"randaugment_magnitude": 11.0}, {"loss": "hinge"}, {"preset": "a1"},
                {"builder_options": {"drop_path_rate": -0.1}}):
        with pytest.raises(ConfigError):
            Recipe(**bad)


# ---- EMA and the run -------------------------------------------------------------------------------------


def _weights(path):
    model = keras.models.load_model(path, compile=False)
    return model.get_weights()


def _resume_model(run, recipe, steps):
    """A model with the resume file's raw weights and optimizer state, as train() restores it."""
    state = json.loads((run / "backup" / "state.json").read_text())
    model = recipe_mod.model_for_dataset(recipe.model, data.info("digits"), weight_decay=recipe.weight_decay,
                                        **recipe.builder_options)
    recipe_mod.compile_model(model, recipe, steps, 10)
    model.optimizer.build(model.trainable_variables)
    model.load_weights(str(run / "backup" / state["resume_file"]))
    return model, state


@pytest.mark.slow
def test_ema_is_published_and_survives_a_crash_and_resume(tmp_path, monkeypatch):
    recipe = Recipe(dataset="digits", epochs=2, batch_size=32, limit=64, ema_decay=0.6, mixup_alpha=0.2,
                    cutmix_alpha=1.0, randaugment_ops=1, loss="bce", builder_options={"drop_path_rate": 0.1})
    run = tmp_path / "run"
    base = callbacks_mod.epoch_end_class()

    class Crash(base):  # a crash right after the first epoch's commit
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            raise RuntimeError("crash")

    monkeypatch.setattr(callbacks_mod, "epoch_end_class", lambda: Crash)
    with pytest.raises(RuntimeError, match="crash"):
        train_mod.train(recipe, str(run), verbose=0)
    monkeypatch.undo()

    model, state = _resume_model(run, recipe, 2)
    assert state["epoch"] == 1 and state["resume_file"] == "epoch-1.keras" and state["last_file"] == "epoch-1-ema.keras"
    ema = _weights(run / "backup" / state["last_file"])
    averages = [a.numpy() for _, a in recipe_mod.ema_variables(model)]
    ema_trainable = [w for w, v in zip(ema, model.weights, strict=True) if id(v) in trainable_ids(model)]
    for saved, restored in zip(ema_trainable, averages, strict=True):  # the averages came back with the optimizer
        np.testing.assert_allclose(saved, restored, atol=1e-6)
    raw = [v.numpy() for v in model.trainable_variables]
    assert any(not np.allclose(a, r) for a, r in zip(averages, raw, strict=True))  # EMA differs from raw weights

    summary = train_mod.train(recipe, str(run), verbose=0)
    assert summary["resumed_at_epochs"] == [1] and summary["epochs_completed"] == 2
    assert summary["recipe"]["loss"] == "binary_crossentropy"
    model, state = _resume_model(run, recipe, 2)
    best = _weights(run / "best.keras")
    published = _weights(run / "backup" / state["best"]["file"])
    assert state["best"]["file"].endswith("-ema.keras")
    for a, b in zip(best, published, strict=True):
        np.testing.assert_array_equal(a, b)
    last = _weights(run / "last.keras")
    averages = [a.numpy() for _, a in recipe_mod.ema_variables(model)]
    ema_trainable = [w for w, v in zip(last, model.weights, strict=True) if id(v) in trainable_ids(model)]
    for saved, restored in zip(ema_trainable, averages, strict=True):
        np.testing.assert_allclose(saved, restored, atol=1e-6)
    assert sorted(os.listdir(run / "backup")) == sorted({"state.json", state["resume_file"], state["last_file"],
                                                         state["best"]["file"]})


def trainable_ids(model) -> set[int]:
    return {id(v) for v in model.trainable_variables}
