"""What an imported model expects of its input pixels, and the record of it that travels with the model file.

:class:`Preprocessing` is what a source model (timm, torchvision, keras-hub) expects: ``mean``/``std`` (which go
inside the imported model as a ``Normalization`` layer), the input size, the crop fraction and the interpolation.
`keras-resnet import` records all of it as a JSON object (with the source, architecture and tag); this module writes,
finds and checks that record. The record is untrusted on the way back in: its size, nesting and values are bounded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from dataclasses import dataclass
from typing import Any

from resnet_edge.choices import INTERPOLATIONS

from keras_resnet.core.errors import ModelFileError
from keras_resnet.core.files import read_json_file
from keras_resnet.io.allowlist import json_kind
from keras_resnet.io.model_checks import MODEL_SUFFIXES, first_line, read_json_entry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """What the source model expects: ``mean``/``std`` of 0–1 pixels (inside the imported model), the input size,
    the crop fraction (resize to ``size / crop_pct``, then centre-crop ``size``) and the interpolation."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}


# ---- the preprocessing record of an imported model ------------------------------------------------------------
# `keras-resnet import` records what the source model expects (input size, crop fraction, interpolation, mean/std)
# inside the .keras archive, as one extra JSON entry that Keras' loader ignores, so it travels with the file through
# `qat --engine keras` to `convert`, which puts it in the .tflite metadata. OUT.preprocessing.json next to the model
# is the fallback (files of other tools, .h5 QAT models, models imported before the entry existed).

PREPROCESSING_ENTRY = "keras_resnet_preprocessing.json"
MAX_PREPROCESSING_BYTES = 64 << 10  # the record is about 250 bytes


def preprocessing_path(model_path: str | os.PathLike) -> str:
    """The sidecar of ``OUT.keras`` (or ``OUT.h5``): ``OUT.preprocessing.json``."""
    path = os.fspath(model_path)
    stem = next((path[: -len(s)] for s in MODEL_SUFFIXES if path.endswith(s)), path)
    return stem + ".preprocessing.json"


def check_preprocessing(record: Any, what: str) -> dict:
    """The record with its policy checked: ``input_size`` an integer in [1, 8192], ``crop_pct`` a number in
    [0.05, 1] (resnet-edge's bounds), ``interpolation`` one of :data:`INTERPOLATIONS`; ModelFileError otherwise."""
    if not isinstance(record, dict):
        raise ModelFileError(f"{what}: the preprocessing record is a JSON {json_kind(record)}, not an object")
    size, crop, interpolation = record.get("input_size"), record.get("crop_pct"), record.get("interpolation")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 8192:
        raise ModelFileError(f"{what}: preprocessing input_size {str(size)[:40]} is not an integer in [1, 8192]")
    if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0.05 <= crop <= 1:
        raise ModelFileError(f"{what}: preprocessing crop_pct {str(crop)[:40]} is not a number in [0.05, 1]")
    if interpolation not in INTERPOLATIONS:
        raise ModelFileError(f"{what}: preprocessing interpolation {str(interpolation)[:40]!r} is not one of "
                             f"{', '.join(INTERPOLATIONS)}")
    return {**record, "crop_pct": float(crop)}


def attach_preprocessing(path: str | os.PathLike, record: dict) -> None:
    """Add (or replace) the preprocessing record inside the ``.keras`` archive at ``path`` (a file this process
    just wrote, e.g. the temporary of :func:`keras_resnet.core.files.atomic_path`)."""
    path = os.fspath(path)
    record = check_preprocessing(record, path)
    data = json.dumps(record, indent=1).encode("utf-8")
    with zipfile.ZipFile(path) as archive:
        present = PREPROCESSING_ENTRY in archive.namelist()
    if present:  # rewrite without the old entry (zipfile cannot delete)
        tmp = path + ".rewrite"
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                if info.filename != PREPROCESSING_ENTRY:
                    dst.writestr(info, src.read(info))
        os.replace(tmp, path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(PREPROCESSING_ENTRY, data)


def read_preprocessing(model_path: str | os.PathLike) -> dict | None:
    """The preprocessing recorded for a model: the entry inside its ``.keras`` archive, else the
    ``OUT.preprocessing.json`` next to it, else None. A record that is there but malformed is a ModelFileError
    (a silent default would crop and resize differently from the source)."""
    path = os.fspath(model_path)
    if path.endswith(".keras") and os.path.isfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                info = next((i for i in archive.infolist() if i.filename == PREPROCESSING_ENTRY), None)
                if info is not None:
                    if info.file_size > MAX_PREPROCESSING_BYTES:
                        raise ModelFileError(f"{path}: {PREPROCESSING_ENTRY} declares {info.file_size:,} bytes "
                                             f"(at most {MAX_PREPROCESSING_BYTES:,})")
                    return check_preprocessing(read_json_entry(path, archive, PREPROCESSING_ENTRY, max_depth=4),
                                               f"{path}: {PREPROCESSING_ENTRY}")
        except (zipfile.BadZipFile, OSError) as error:
            raise ModelFileError(f"{path} is not a readable .keras archive: {first_line(error)}") from error
    sidecar = preprocessing_path(path)
    if not os.path.isfile(sidecar):
        return None
    value = read_json_file(sidecar, max_bytes=MAX_PREPROCESSING_BYTES, max_depth=4, what="preprocessing record")
    return check_preprocessing(value, sidecar)


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "INTERPOLATIONS", "PREPROCESSING_ENTRY", "Preprocessing",
           "attach_preprocessing", "check_preprocessing", "preprocessing_path", "read_preprocessing"]
