"""Ethos-U targets and one graph per target: the TargetPlan decides option A's subsampling trace (SPACE_TO_DEPTH for
cpu/edgetpu/mcu, a 1x1/2 MAX_POOL_2D for Ethos-U, which Vela 5.2 lacks SPACE_TO_DEPTH for), and every target's
contract holds on every CIFAR family, PTQ and QAT int8, so that a change made for one runtime cannot break another."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from resnet_edge.choices import ETHOS_U_TARGETS, TARGETS

from keras_resnet.core.errors import ConfigError, ValidationError
from keras_resnet.export import ethos
from keras_resnet.export.targets import pool_for, resolve_target, subsample_for
from keras_resnet.spec.conversion import ConvertSpec

slow = pytest.mark.slow
FAMILIES = ("resnet8", "resnet20", "resnet20v2", "resnet56")  # issue 22: each maps 100% onto Ethos-U55-128


def _tiny():
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs)))


def test_the_plan_alone_chooses_the_subsampling_trace():
    model = _tiny()
    for target in TARGETS:
        spec = ConvertSpec(target=target, quantization="int8" if target == "cpu" else None)
        plan = resolve_target(spec, model)
        assert plan.subsample == ("max_pool" if target in ETHOS_U_TARGETS else "space_to_depth"), target
        assert plan.pool == ("mean" if target == "cpu" else "average_pool"), target
        if target in ETHOS_U_TARGETS:
            assert (plan.quantization, plan.io_type, plan.batch) == ("int8", "int8", 1)
    assert subsample_for("cpu", "static_wi8_ai16") == "max_pool"
    assert pool_for("cpu", "static_wi8_ai8") == "average_pool"
    with pytest.raises(ConfigError, match="int8 I/O"):
        resolve_target(ConvertSpec(target="ethos-u55-128", io_type="uint8"), model)
    with pytest.raises(ConfigError, match="ethos-u target"):
        ConvertSpec(target="cpu", allow_cpu_fallback=True)
    assert ethos.vela_path("a/b.tflite") == "a/b_vela.tflite"


def test_the_cpu_plan_traces_a_whole_map_average_pool_as_mean(tmp_path):
    """The MLPerf Tiny ResNet-8 head (AveragePooling2D over the whole map, Flatten, Dense): int8 AVERAGE_POOL_2D is
    not XNNPACK's (2 CPU partitions), so the cpu plan traces it as MEAN (1); Ethos-U keeps AVERAGE_POOL_2D. The
    Keras model is not changed, and a pooling window smaller than the map is not rewritten."""
    from keras_resnet.export.ops import op_summary
    from keras_resnet.export.trace import convert_model, traced_graph

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.AveragePooling2D(8)(x))))
    images = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3)).astype("float32")
    traced = traced_graph(model, "mean")
    assert [type(op).__name__ for op in traced.operations][-3:] == ["Mean", "Reshape", "Dense"]
    assert traced.weights[0] is model.weights[0]
    np.testing.assert_allclose(traced.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)
    for target, op, partitions in (("cpu", "MEAN", 1), ("ethos-u55-128", "AVERAGE_POOL_2D", 2)):
        plan = resolve_target(ConvertSpec(target=target, quantization="int8"), model)
        content = convert_model(model, quantization="int8", io_type="int8", batch=plan.batch, calibration=images,
                                subsample=plan.subsample, pool=plan.pool)
        ops = op_summary(content)[0]
        assert op in ops and not {"MEAN", "AVERAGE_POOL_2D"} - {op} & set(ops), (target, ops)
        assert _partitions(content, tmp_path) == partitions, target
    assert any(isinstance(layer, keras.layers.AveragePooling2D) for layer in model.layers)
    partial = keras.Model(inputs, keras.layers.AveragePooling2D(4)(x))  # 8x8 map, 4x4 window: stays a pooling
    assert [type(op).__name__ for op in traced_graph(partial, "mean").operations][-1] == "AveragePooling2D"


def _models():
    from keras_resnet.model.registry import build_model
    from keras_resnet.quant import native_qat

    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    for name in FAMILIES:
        keras.utils.set_random_seed(0)
        model = build_model(name, weights=None, input_shape=(32, 32, 3), classes=10)
        yield f"{name}-ptq", model, x
        qat = native_qat.quantize_model(model)
        native_qat.calibrate(qat, x, batches=1, batch_size=8)
        yield f"{name}-qat", qat, x


@pytest.fixture(scope="session")
def contracts(tmp_path_factory):
    """{case: {target: .tflite bytes}}: each family (PTQ and QAT int8) converted once per target plan."""
    from keras_resnet.export.trace import convert_model

    out = {}
    for case, model, x in _models():
        out[case], by_graph = {}, {}
        for target in ("cpu", "edgetpu", "ethos-u55-128"):
            plan = resolve_target(ConvertSpec(target=target, quantization="int8"), model)
            # targets whose plans ask for the same graph share one conversion (cpu and edgetpu do today, but for
            # ResNet-8's whole-map AveragePooling2D, which the cpu traces as MEAN): half the fixture's time, and the
            # contracts are still each checked on the bytes that target would get
            pools = any(isinstance(layer, keras.layers.AveragePooling2D) for layer in model.layers)
            graph = (plan.io_type, plan.batch, plan.qat, plan.subsample, plan.pool if pools else None)
            if graph not in by_graph:
                by_graph[graph] = convert_model(model, quantization="int8", io_type=plan.io_type, batch=plan.batch,
                                                calibration=None if plan.qat else x, subsample=plan.subsample,
                                                pool=plan.pool)
            out[case][target] = by_graph[graph]
    return out


def _partitions(content: bytes, folder) -> int:
    from ai_edge_litert.interpreter import Interpreter

    path = folder / "m.tflite"
    path.write_bytes(content)
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in it._get_ops_details())


@slow
def test_every_target_contract_holds_on_every_cifar_family(contracts, tmp_path):
    """cpu: one XNNPACK partition; edgetpu: within compiler 16.0's tables; ethos-u55-128: every op on the NPU (per
    Vela when installed, else per its table)."""
    from resnet_edge.check import check

    for case, files in contracts.items():
        assert _partitions(files["cpu"], tmp_path) == 1, case
        edgetpu = check(files["edgetpu"], "edgetpu", compiler=False)
        assert edgetpu.ok and not edgetpu.count("fallback"), (case, edgetpu.lines())
        result = ethos.ethos_check(files["ethos-u55-128"], "ethos-u55-128")
        assert result.cpu_ops == [], (case, result.lines())
        if result.vela:
            assert result.vela["cpu_operators"] == 0 and result.vela["inference_ms"] > 0, case


@slow
def test_cpu_ops_refuse_the_conversion_unless_allowed(contracts):
    """The cpu trace (SPACE_TO_DEPTH) has ops that Vela 5.2 leaves on the CPU: refused, naming them, unless
    --allow-cpu-fallback; the metadata then records the mapping."""
    from keras_resnet.export.metadata import read_metadata

    content = contracts["resnet20-ptq"]["cpu"]
    with pytest.raises(ValidationError, match="SPACE_TO_DEPTH#"):
        ethos.finish(content, {"schema": 1}, "ethos-u55-128", allow_cpu_fallback=False)
    written, result = ethos.finish(content, {"schema": 1}, "ethos-u55-128", allow_cpu_fallback=True,
                                   output="/some/folder/m.tflite")
    assert result.ops["SPACE_TO_DEPTH"] == {"npu": 0, "cpu": 2}
    meta = read_metadata(written)["ethos_u"]
    assert meta["ops"]["SPACE_TO_DEPTH"]["cpu"] == 2
    # the compiled file's name beside the output, no folder of this machine; none without Vela
    assert meta["compiled_path"] == ("m_vela.tflite" if result.vela else None)
