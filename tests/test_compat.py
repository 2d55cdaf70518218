"""Each workaround in keras_resnet.core.compat is for an upstream problem that still exists in the installed versions.

When one of these tests fails, upstream has fixed (or moved) what compat.py works around: check the fix, then
delete the workaround and its test.
"""

from __future__ import annotations

import inspect
import sys

import pytest

from keras_resnet.core import compat
from keras_resnet.core.errors import ConfigError


def _activation_chain(layers: int):
    import keras

    inputs = keras.Input((4,))
    x = inputs
    for _ in range(layers):
        x = keras.layers.Activation("linear")(x)
    return keras.Model(inputs, x)


@pytest.mark.slow  # building 2 × 1,200 layers: ~10 s on two cores
def test_keras_walks_a_functional_graph_recursively():
    """keras/src/ops/function.py recurses once per layer: a 1,200-layer chain fails under the default limit."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # Python's default
    try:
        with pytest.raises(RecursionError):
            _activation_chain(1200)
        with compat.recursion_limit(compat.recursion_limit_for(1200)):
            assert sys.getrecursionlimit() >= 3 * 1200
            model = _activation_chain(1200)
        assert sys.getrecursionlimit() == 1000  # restored
    finally:
        sys.setrecursionlimit(previous)
    assert len(model.layers) == 1201


def test_recursion_limit_only_raises_and_restores():
    previous = sys.getrecursionlimit()
    with compat.recursion_limit(10):  # never lowers
        assert sys.getrecursionlimit() == previous
    with pytest.raises(KeyError), compat.recursion_limit(previous + 500):
        assert sys.getrecursionlimit() == previous + 500
        raise KeyError("restored on errors too")
    assert sys.getrecursionlimit() == previous


def test_keras_trainer_still_has_the_multiworker_patch_targets():
    """Keras 3.15's TF trainer reduces per-step metrics with reduce_per_replica (patched for multi-worker)."""
    import keras
    from keras.src.backend.tensorflow import trainer as tf_trainer

    assert callable(tf_trainer.reduce_per_replica)
    assert list(inspect.signature(tf_trainer.reduce_per_replica).parameters) == ["values", "strategy", "reduction"]
    assert callable(getattr(keras.Model, "_maybe_symbolic_build", None))  # patched per model
    compat.check_multiworker_support()  # the installed Keras is one the patches were checked against


def test_multiworker_refuses_other_keras_versions(monkeypatch):
    monkeypatch.setattr(compat, "version_of", lambda name: "3.99.0")
    with pytest.raises(ConfigError, match="keras 3.15.x .* installed: keras 3.99.0"):
        compat.check_multiworker_support()


def _tiny_model():
    import keras

    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_multiworker_workarounds_are_scoped_and_restored():
    """Keras' TF trainer's process-wide reduce_per_replica and the model's _maybe_symbolic_build are patched inside
    the block only, and put back on the way out (errors included)."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    model, original = _tiny_model(), tf_trainer.reduce_per_replica
    strategy = tf.distribute.get_strategy()
    with compat.multiworker_workarounds(model, strategy):
        assert tf_trainer.reduce_per_replica is not original and "_maybe_symbolic_build" in vars(model)
        values = {"loss": tf.constant(1.0)}
        assert tf_trainer.reduce_per_replica(values, strategy, "auto")["loss"] == 1.0  # other strategies: Keras'
    assert tf_trainer.reduce_per_replica is original and "_maybe_symbolic_build" not in vars(model)
    with pytest.raises(KeyError), compat.multiworker_workarounds(model, strategy):
        raise KeyError("restored on errors too")
    assert tf_trainer.reduce_per_replica is original and "_maybe_symbolic_build" not in vars(model)


def test_keras_optimizer_keeps_its_moving_averages_private():
    """Keras 3.15's use_ema: the averages in _model_variables_moving_average, aligned with _trainable_variables."""
    import keras

    model = _tiny_model()
    plain = keras.optimizers.SGD(0.1)
    plain.build(model.trainable_variables)
    assert compat.optimizer_ema_pairs(plain) is None
    optimizer = keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5)
    optimizer.build(model.trainable_variables)
    public = [name for name in dir(optimizer) if not name.startswith("_") and "moving_average" in name]
    assert public == [], f"Keras has a public moving-average accessor now: {public}"
    pairs = compat.optimizer_ema_pairs(optimizer)
    assert [v.path for v, _ in pairs] == [v.path for v in model.trainable_variables]
    assert all(tuple(v.shape) == tuple(a.shape) for v, a in pairs)


def test_optimizer_ema_pairs_refuse_other_keras_versions(monkeypatch):
    import keras

    optimizer = keras.optimizers.SGD(0.1, use_ema=True)
    optimizer.build(_tiny_model().trainable_variables)
    monkeypatch.setattr(compat, "version_of", lambda name: "3.99.0")
    with pytest.raises(ConfigError, match="ema_decay needs keras 3.15.x .* installed: keras 3.99.0"):
        compat.optimizer_ema_pairs(optimizer)


def test_tensorflow_default_strategy_has_a_private_class():
    import tensorflow as tf

    default = tf.distribute.get_strategy()
    assert type(default).__name__.startswith("_Default") and compat.is_default_strategy(default)
    assert not compat.is_default_strategy(tf.distribute.OneDeviceStrategy("/cpu:0"))


@pytest.mark.slow
def test_tfmot_moving_average_quantize_has_a_fixed_decay_and_no_calibration_api():
    tfmot = pytest.importorskip("tensorflow_model_optimization")
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    assert "ema_decay" in inspect.signature(quant_ops.MovingAvgQuantize).parameters
    keras_api = tfmot.quantization.keras
    names = [name for module in (keras_api, keras_api.quantizers) for name in dir(module)]
    assert not [name for name in names if "calib" in name.lower()], "tfmot has a calibration API now"
    original = quant_ops.MovingAvgQuantize
    with compat.cumulative_range_averaging() as next_batch:  # the installed tfmot is the pinned one
        assert quant_ops.MovingAvgQuantize is not original  # the averaging wrapper, for calibration only
        next_batch()
    assert quant_ops.MovingAvgQuantize is original


def test_calibration_refuses_other_tfmot_versions(monkeypatch):
    monkeypatch.setattr(compat, "version_of", lambda name: "0.9.0")
    with pytest.raises(ConfigError, match="tensorflow-model-optimization 0.8.x; installed: 0.9.0"):
        with compat.cumulative_range_averaging():
            pass


@pytest.mark.slow  # imports tfmot (and sets TF_USE_LEGACY_KERAS for the process)
def test_tfmot_default_8bit_configs_are_still_private():
    """compat.tfmot_default_8bit_configs reaches into tfmot's ``.python.core`` for two default 8-bit configs."""
    tfmot = pytest.importorskip("tensorflow_model_optimization")

    keras_api = tfmot.quantization.keras
    public = {name for module in (keras_api, keras_api.default_8bit, keras_api.quantizers) for name in dir(module)}
    for name in ("NoOpQuantizeConfig", "Default8BitOutputQuantizeConfig"):
        assert name not in public, f"tfmot exports {name} now: use it instead of compat.tfmot_default_8bit_configs"
    configs = compat.tfmot_default_8bit_configs()  # the installed tfmot is the pinned one
    no_op, output = configs.no_op(), configs.output()
    assert isinstance(no_op, keras_api.QuantizeConfig) and isinstance(output, keras_api.QuantizeConfig)
    assert no_op.get_output_quantizers(None) == [] and no_op.get_weights_and_quantizers(None) == []
    assert len(output.get_output_quantizers(None)) == 1 and output.get_weights_and_quantizers(None) == []
    import tf_keras

    with keras_api.quantize_scope():  # saved QAT models that use them reload (by class name)
        for name in ("NoOpQuantizeConfig", "Default8BitOutputQuantizeConfig"):
            assert issubclass(tf_keras.saving.get_registered_object(name), keras_api.QuantizeConfig)


def test_tfmot_default_8bit_configs_refuse_other_tfmot_versions(monkeypatch):
    monkeypatch.setattr(compat, "version_of", lambda name: "0.9.0")
    with pytest.raises(ConfigError, match="QAT annotation is written for tensorflow-model-optimization 0.8.x"):
        compat.tfmot_default_8bit_configs()


def test_tflite_schema_is_still_private():
    """compat.tflite_schema reaches into ``tensorflow.lite.python`` for the flatbuffer object API metadata needs."""
    tf = pytest.importorskip("tensorflow")

    assert not hasattr(tf.lite, "schema_py_generated") and not hasattr(tf.lite, "Model")
    schema = compat.tflite_schema()  # the installed TensorFlow is the pinned one
    for name in ("Model", "ModelT", "BufferT", "MetadataT"):
        assert hasattr(schema, name), f"the TFLite schema module lost {name}"
    assert callable(schema.Model.GetRootAsModel) and callable(schema.ModelT.InitFromObj)


def test_tflite_schema_refuses_other_tensorflow_versions(monkeypatch):
    monkeypatch.setattr(compat, "version_of", lambda name: "2.22.0")
    with pytest.raises(ConfigError, match="tensorflow 2.21.x"):
        compat.tflite_schema()
