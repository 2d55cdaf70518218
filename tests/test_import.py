"""Importing timm / torchvision / keras-hub weights (keras_resnet.io.hub and its modules) against committed fixtures.

tests/fixtures/import/ was written once by scripts/make_import_fixtures.py with the real timm 1.0 / torchvision 0.29
classes: reduced-width copies of each architecture with randomised BatchNorm statistics, their state dicts
(.safetensors in float32 / float16 / bfloat16, and torch.save .pth files) and their float64 PyTorch logits at two
input sizes. Neither torch nor the network is needed here.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import pickle
import struct
import zipfile

import numpy as np
import pytest

from keras_resnet.cli import main as cli
from keras_resnet.core.errors import ModelFileError, UnsafeModelError
from keras_resnet.io import import_common, keras_hub_presets, torch_mapping, torch_sources
from keras_resnet.io.preprocessing import Preprocessing, read_preprocessing
from keras_resnet.io.weights import read_safetensors, read_torch, read_weights
from keras_resnet.spec.specs import Arch, BlockOptions, se_channels

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "import"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
TOLERANCE = 1e-4  # max |keras - torch| / max |torch|, the parity target


def _arch(fixture: dict) -> tuple[Arch, BlockOptions]:
    arch = Arch(fixture["block"], tuple(fixture["blocks"]), tuple(fixture["filters"]), fixture.get("stem", "imagenet"),
                fixture.get("stem_filters"))
    return arch, BlockOptions(**fixture["options"])


def parity(name: str) -> list[float]:
    """Max relative difference of the imported model's logits to PyTorch's, per fixture input size."""
    fixture = MANIFEST["fixtures"][name]
    arch, opts = _arch(fixture)
    model = torch_mapping.convert_state_dict(read_weights(FIXTURES / fixture["file"]), arch, opts,
                                             input_shape=(None, None, 3), classifier_activation=None)
    reference = np.load(FIXTURES / "reference.npz")
    out = []
    for size in MANIFEST["sizes"]:
        y = np.asarray(model(reference[f"inputs_{size}"].astype(np.float32), training=False))
        expected = reference[f"{name}_{size}"]
        out.append(float(np.abs(y - expected).max() / np.abs(expected).max()))
    return out


@pytest.mark.parametrize("name", list(MANIFEST["fixtures"]))
def test_parity_with_pytorch(name):
    differences = parity(name)
    assert max(differences) < TOLERANCE, differences


KERAS_HUB = ("keras_hub_resnet", "keras_hub_resnet_vd")


@pytest.mark.parametrize("name", KERAS_HUB)
def test_parity_with_keras_hub(name):
    """keras-hub 0.32 ResNet / ResNet-vd presets (scripts/make_keras_hub_fixtures.py), read without keras-hub."""
    model, preprocessing = keras_hub_presets.import_keras_hub(FIXTURES / name, input_shape=(None, None, 3),
                                                classifier_activation=None)
    assert preprocessing.mean == (0.485, 0.456, 0.406) and preprocessing.interpolation == "bicubic"
    assert any(layer.name.endswith("_0_pool") for layer in model.layers) == (name == "keras_hub_resnet_vd")
    inputs, reference = np.load(FIXTURES / "reference.npz"), np.load(FIXTURES / "keras_hub_reference.npz")
    for size in MANIFEST["sizes"]:
        y = np.asarray(model(inputs[f"inputs_{size}"].astype(np.float32), training=False))
        expected = reference[f"{name}_{size}"]
        assert np.abs(y - expected).max() / np.abs(expected).max() < TOLERANCE


def test_keras_hub_weights_of_another_layout_are_refused(tmp_path):
    import shutil

    preset = tmp_path / "preset"
    shutil.copytree(FIXTURES / "keras_hub_resnet_vd", preset)
    shutil.copy(FIXTURES / "keras_hub_resnet" / "model.weights.h5", preset / "model.weights.h5")
    with pytest.raises(ModelFileError, match="does not fit the architecture"):
        keras_hub_presets.import_keras_hub(preset)
    (preset / "config.json").write_text(json.dumps({"class_name": "ResNetBackbone", "config": {
        "block_type": "bottleneck_block", "use_pre_activation": True}}))
    with pytest.raises(ModelFileError, match="pre-activation"):
        keras_hub_presets.import_keras_hub(preset)


def test_cli_import_keras_hub_preset(tmp_path, capsys):
    out = tmp_path / "vd.keras"
    assert cli.main(["import", f"keras-hub:{FIXTURES / 'keras_hub_resnet_vd'}", "--logits", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    sidecar = read_preprocessing(out)
    assert sidecar == json.loads((tmp_path / "vd.preprocessing.json").read_text())
    assert sidecar["source"] == "keras-hub" and sidecar["input_size"] == 224 and sidecar["crop_pct"] == 1.0
    from keras_resnet.io.model_io import load_model

    model = load_model(out)
    inputs, reference = np.load(FIXTURES / "reference.npz"), np.load(FIXTURES / "keras_hub_reference.npz")
    y = np.asarray(model(inputs["inputs_224"].astype(np.float32), training=False))
    expected = reference["keras_hub_resnet_vd_224"]
    assert np.abs(y - expected).max() / np.abs(expected).max() < TOLERANCE
    assert cli.main(["import", "keras-hub:resnet_50_imagenet", "-o", str(tmp_path / "x.keras")]) == 2
    assert "kagglehub" in capsys.readouterr().err


def test_fixtures_cover_every_variant_and_both_readers():
    fixtures = MANIFEST["fixtures"].values()
    options = [f["options"] for f in fixtures]
    assert any(o.get("se_ratio") for o in options)
    assert any(o.get("cardinality", 1) > 1 for o in options)
    assert any(o.get("avg_down") for o in options)
    assert any(o.get("base_width") == 128 for o in options)
    assert {f["source"] for f in fixtures} == {"timm", "torchvision"}
    assert {pathlib.Path(f["file"]).suffix for f in fixtures} == {".safetensors", ".pth"}
    assert {f["dtype"] for f in fixtures} >= {"float32", "float16", "bfloat16"}
    assert 224 in MANIFEST["sizes"] and len(MANIFEST["sizes"]) == 2


# The full-size state dicts' names and shapes (recorded by the fixture script) against the Keras models' needs.
FULL = list(MANIFEST["full_size"])
QUICK = {"timm:resnet50d", "timm:seresnet50", "timm:resnext50_32x4d", "torchvision:resnet18"}


@pytest.mark.parametrize("key", [k if k in QUICK else pytest.param(k, marks=pytest.mark.slow) for k in FULL])
def test_full_size_names_and_shapes_match(key):
    source, name = key.split(":")
    arch, opts = torch_sources.architecture(source, name)
    model = import_common.build_keras_model(arch, opts, classes=1000, preprocessing=Preprocessing())
    expected = torch_mapping.expected_keys(model, opts)
    recorded = {k: tuple(v) for k, v in MANIFEST["full_size"][key].items()}
    assert expected == recorded


def test_named_models_match_the_import_architectures():
    from keras_resnet.spec.specs import MODELS

    for spec in MODELS.values():
        if spec.timm:
            arch, opts = torch_sources.architecture("timm", spec.timm)
            assert arch == spec.arch and opts == BlockOptions(**spec.options), spec.function


def test_default_preprocessing_is_the_sources():
    # timm 1.0.31 pretrained_cfg / torchvision 0.29 DEFAULT transforms
    assert torch_sources.default_preprocessing("timm", "resnet50", "a3_in1k") == Preprocessing(
        input_size=160, crop_pct=0.95, interpolation="bicubic")
    assert torch_sources.default_preprocessing("timm", "resnet101d") == Preprocessing(
        input_size=256, crop_pct=0.95, interpolation="bicubic")  # the default tag, ra2_in1k
    assert torch_sources.default_preprocessing("timm", "resnet50d", "ra4_e3600_r224_in1k").mean == (0.5, 0.5, 0.5)
    assert torch_sources.default_preprocessing("torchvision", "resnet50").crop_pct == round(224 / 232, 4)
    assert torch_sources.default_preprocessing("torchvision", "resnet18").interpolation == "bilinear"


def test_se_channels_round_as_timm():
    # timm make_divisible(c / 16, 8, round_limit=0): 256 -> 16, 2048 -> 128, small blocks at least 8
    assert [se_channels(c, 1 / 16) for c in (32, 64, 200, 256, 2048)] == [8, 8, 16, 16, 128]


# ---- readers and hostile files ---------------------------------------------------------------------------------


def _write_safetensors(path, tensors: dict[str, np.ndarray], header_extra: dict | None = None) -> None:
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, "<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header.update(header_extra or {})
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def test_safetensors_round_trip_and_metadata(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    _write_safetensors(tmp_path / "w.safetensors", {"a": a}, {"__metadata__": {"format": "pt"}})
    out = read_safetensors(tmp_path / "w.safetensors")
    assert list(out) == ["a"] and np.array_equal(out["a"], a)


def test_truncated_safetensors_is_refused(tmp_path):
    source = (FIXTURES / "timm_resnet18.safetensors").read_bytes()
    for cut in (4, 100, len(source) // 2, len(source) - 1):
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(source[:cut])
        with pytest.raises(ModelFileError, match="truncated"):
            read_safetensors(path)


def test_safetensors_lies_are_refused(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(ModelFileError, match="header claims"):
        read_safetensors(path)
    for entry, message in (({"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 4]}, "needs"),
                           ({"dtype": "F32", "shape": [1], "data_offsets": [0, 1 << 30]}, "outside"),
                           ({"dtype": "O", "shape": [1], "data_offsets": [0, 4]}, "dtype"),
                           ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "shape")):
        raw = json.dumps({"x": entry}).encode()
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
        with pytest.raises(ModelFileError, match=message):
            read_safetensors(path)


class _Boom:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _torch_zip(path, payload: bytes, extra: dict[str, bytes] | None = None) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", b"little")
        for name, data in (extra or {}).items():
            z.writestr(f"archive/data/{name}", data)


def test_hostile_pth_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    _torch_zip(path, pickle.dumps({"conv1.weight": _Boom(str(marker))}, protocol=2))
    with pytest.raises(UnsafeModelError, match="os.system|posix.system"):
        read_weights(path)
    assert not marker.exists()
    # a real torch global that is not a tensor rebuild function is refused by name as well
    payload = b"\x80\x02ctorch\nload\nq\x00."
    _torch_zip(path, payload)
    with pytest.raises(UnsafeModelError, match="torch.load"):
        read_torch(path)


def test_pth_storage_lies_are_refused(tmp_path):
    source = FIXTURES / "tv_resnet18.pth"
    with zipfile.ZipFile(source) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    root = next(n for n in entries if n.endswith("data.pkl"))[: -len("data.pkl")]
    entries[root + "data/0"] = entries[root + "data/0"][:-4]  # storage 0 loses its last element
    path = tmp_path / "short.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    with pytest.raises(ModelFileError, match="storage '0'"):
        read_torch(path)
    (tmp_path / "legacy.pth").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(ModelFileError, match="pre-1.6"):
        read_torch(tmp_path / "legacy.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(ModelFileError):
        read_torch(truncated)


def test_pth_tensor_views_must_fit_their_storage(tmp_path):
    """conv1.weight (64, 3, 7, 7) of a real torch.save file, its size or stride rewritten: a stride-0 view claiming
    2**30 times as many elements, or a stride reaching past the storage, is refused before anything is copied."""
    source = FIXTURES / "tv_resnet18.pth"
    with zipfile.ZipFile(source) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    name = next(n for n in entries if n.endswith("data.pkl"))
    size, stride = b"(K@K\x03K\x07K\x07t", b"(K\x93K1K\x07K\x01t"  # protocol 2: no frames, bytes may grow
    assert entries[name].count(size + b"q\x08" + stride) == 1
    for new_size, new_stride, message in ((b"(J\x00\x00\x00\x40K\x03K\x07K\x07t", b"(K\x00K\x00K\x00K\x00t",
                                           "more elements than its storage"),
                                          (size, b"(M\xe8\x03K1K\x07K\x01t", "reaches element")):
        patched = dict(entries)
        patched[name] = entries[name].replace(size + b"q\x08" + stride, new_size + b"q\x08" + new_stride)
        path = tmp_path / "views.pth"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            for entry, data in patched.items():
                z.writestr(entry, data)
        with pytest.raises(ModelFileError, match=message):
            read_torch(path)


def test_pth_matches_the_same_weights_as_safetensors():
    # tv_wide_resnet50 is stored as safetensors, tv_resnet50 as .pth: both readers give float32 arrays of the
    # recorded shapes, and a checkpoint wrapper ({"state_dict": ...}, "module." prefixes) is unwrapped.
    tensors = read_weights(FIXTURES / "tv_resnet50.pth")
    assert all(v.dtype == np.float32 for v in tensors.values())
    from keras_resnet.io.weights import state_dict

    wrapped = state_dict({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in tensors.items()}})
    assert wrapped.keys() == tensors.keys()


# ---- errors users see --------------------------------------------------------------------------------------------


def test_missing_and_unexpected_keys_are_listed():
    fixture = MANIFEST["fixtures"]["timm_seresnet50"]
    arch, opts = _arch(fixture)
    tensors = read_weights(FIXTURES / fixture["file"])
    del tensors["layer2.0.se.fc1.weight"]
    tensors["head.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ModelFileError, match=r"1 missing: layer2\.0\.se\.fc1\.weight; 1 unexpected: head\.extra"):
        torch_mapping.convert_state_dict(tensors, arch, opts)
    # SE weights given to a model without SE: every se.* key is unexpected
    plain = BlockOptions(**{k: v for k, v in fixture["options"].items() if k != "se_ratio"})
    with pytest.raises(ModelFileError, match="unexpected: layer1.0.se.fc1.bias"):
        torch_mapping.convert_state_dict(read_weights(FIXTURES / fixture["file"]), arch, plain)


def test_wrong_shapes_are_listed():
    fixture = MANIFEST["fixtures"]["timm_resnext50"]
    arch, _ = _arch(fixture)
    with pytest.raises(ModelFileError, match="wrong shape: layer1.0.conv2.weight"):
        torch_mapping.convert_state_dict(read_weights(FIXTURES / fixture["file"]), arch,
                                         BlockOptions(stride_on="3x3", base_width=128))


def test_offline_without_weights_names_the_file_and_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "m.keras"
    assert cli.main(["import", "timm:resnet50d.a1_in1k", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "huggingface.co/timm/resnet50d.a1_in1k" in err and "--weights" in err
    assert not out.exists()


def test_unknown_architecture_and_source(capsys, tmp_path):
    assert cli.main(["import", "timm:resnet51", "--output", str(tmp_path / "m.keras")]) == 2
    assert "not supported" in capsys.readouterr().err
    assert cli.main(["import", "keras:resnet50", "--output", str(tmp_path / "m.keras")]) == 2
    assert "SOURCE:ARCH" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_import_full_size_resnet18(tmp_path, capsys):
    """keras-resnet import on a full-size timm resnet18 state dict (random values of the recorded shapes)."""
    rng = np.random.default_rng(0)
    shapes = MANIFEST["full_size"]["timm:resnet18"]
    tensors = {k: (rng.random(v) + 0.5 if k.endswith("running_var") else rng.normal(0, 0.05, v)).astype(np.float32)
               for k, v in shapes.items()}
    _write_safetensors(tmp_path / "model.safetensors", tensors)
    (tmp_path / "config.json").write_text(json.dumps({"pretrained_cfg": {"input_size": [3, 160, 160],
                                                                          "crop_pct": 0.95,
                                                                          "interpolation": "bicubic"}}))
    out = tmp_path / "r18.keras"
    assert cli.main(["import", "timm:resnet18.a1_in1k", "--weights", str(tmp_path / "model.safetensors"),
                     "-o", str(out)]) == 0
    assert "imported timm:resnet18.a1_in1k (11,699,112 parameters)" in capsys.readouterr().out
    sidecar = json.loads((tmp_path / "r18.preprocessing.json").read_text())
    assert sidecar["input_size"] == 160 and sidecar["crop_pct"] == 0.95 and sidecar["interpolation"] == "bicubic"
    from keras_resnet.io.model_io import load_model

    model = load_model(out)
    assert model.input_shape == (None, 160, 160, 3)
    assert np.allclose(model.get_layer("conv2_block1_1_conv").kernel.numpy(),
                       tensors["layer1.0.conv1.weight"].transpose(2, 3, 1, 0))
    assert cli.main(["import", "timm:resnet18", "--weights", str(tmp_path / "model.safetensors"), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


# ---- int8 TFLite in the device runner ---------------------------------------------------------------------------


@pytest.mark.slow
def test_int8_tflite_of_se_and_grouped_conv_runs_in_resnet_edge(tmp_path):
    from keras_resnet.export import convert

    reports = {}
    for name in ("timm_resnet50", "timm_seresnet50", "timm_resnext50"):
        fixture = MANIFEST["fixtures"][name]
        arch, opts = _arch(fixture)
        model = torch_mapping.convert_state_dict(read_weights(FIXTURES / fixture["file"]), arch, opts,
                                                 input_shape=(64, 64, 3))
        reports[name] = convert.convert(model, str(tmp_path / f"{name}.tflite"), quantization="int8",
                                        calibration_data="random", calibration_samples=16, validation_samples=16,
                                        min_agreement=0.0)
    for name, report in reports.items():
        assert report.float_ops == [], (name, report.float_ops)
        assert math.isfinite(report.latency_ms) and report.max_abs_diff < 0.5, (name, report.lines())
        print(name, " | ".join(report.lines()))
    assert {"MEAN", "LOGISTIC", "MUL"} <= set(reports["timm_seresnet50"].ops)
    assert "CONV_2D" in reports["timm_resnext50"].ops


@pytest.mark.slow
def test_qat_wraps_se_and_grouped_convs():
    """tfmot's QAT (through the tf_keras twin) takes SE units and grouped convs: every conv is quantized."""
    from keras_resnet.quant import tfmot_qat as quantize

    for name in ("timm_seresnet50", "timm_resnext50"):
        fixture = MANIFEST["fixtures"][name]
        arch, opts = _arch(fixture)
        model = torch_mapping.convert_state_dict(read_weights(FIXTURES / fixture["file"]), arch, opts,
                                                 input_shape=(64, 64, 3))
        qat = quantize.quantize_model(model)
        wrapped = {layer.layer.name for layer in qat.layers if hasattr(layer, "layer")}
        convs = {layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"}
        assert convs <= wrapped, sorted(convs - wrapped)[:5]
        x = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
        assert np.abs(np.asarray(qat(x)) - np.asarray(model(x))).max() < 0.2
