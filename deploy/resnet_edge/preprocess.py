"""Image → model input, in one place: decode, EXIF orientation, RGB, resize/crop, normalise, quantize.

Pixels are float32 in [0, 255]; the model input is ``(pixel - mean) / std`` (constants from the metadata),
quantized with the input tensor's scale and zero point for int8/uint8 inputs. Alpha is dropped (as
``keras.utils.load_img`` does); 16-bit images are scaled to 8 bits.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
RESIZE_MODES = ("stretch", "center_crop")
CROP_FRACTION = 0.875

# We refuse large images ourselves (max_pixels) before decoding. Pillow keeps its own limit too (it refuses above
# 2 × Image.MAX_IMAGE_PIXELS, ~179 MP, inside Image.open): the effective limit is the smaller of the two. Pillow's
# settings are process-wide, so the library leaves them alone; the resnet-edge command hides Pillow's warning.

ImageSource = Union[str, os.PathLike, bytes, BinaryIO, Image.Image, np.ndarray]


class ImageError(ValueError):
    """An image that cannot be used: unreadable, not an image, truncated, too large."""


@dataclass(frozen=True)
class InputSpec:
    """How to turn an image into the model's input tensor (one image, HWC)."""

    height: int
    width: int
    channels: int = 3
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    resize: str = "stretch"
    dtype: str = "float32"
    scale: float = 0.0
    zero_point: int = 0

    @classmethod
    def from_model(cls, meta: dict | None, shape: tuple[int, ...], dtype: str = "float32", scale: float = 0.0,
                   zero_point: int = 0) -> InputSpec:
        """From the keras_resnet metadata (may be None: defaults) and the input tensor's details."""
        info = (meta or {}).get("input") or {}
        channels = int(shape[3])
        mean = tuple(float(v) for v in info.get("mean") or [0.0]) or (0.0,)
        std = tuple(float(v) for v in info.get("std") or [1.0]) or (1.0,)
        mean = mean * channels if len(mean) == 1 else mean
        std = std * channels if len(std) == 1 else std
        if len(mean) != channels or len(std) != channels or not all(s != 0 and math.isfinite(s) for s in std):
            raise ValueError(f"metadata mean {list(mean)} / std {list(std)} do not fit {channels} channels")
        resize = info.get("resize") or "stretch"
        if resize not in RESIZE_MODES:
            raise ValueError(f"metadata resize {resize!r} is not one of {', '.join(RESIZE_MODES)}")
        return cls(int(shape[1]), int(shape[2]), channels, mean, std, resize, dtype, float(scale), int(zero_point))

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) with model input = pixel * a + b, quantization folded in."""
        std, mean = np.asarray(self.std, np.float64), np.asarray(self.mean, np.float64)
        a, b = 1.0 / std, -mean / std
        if self.dtype in ("int8", "uint8") and self.scale > 0:
            a, b = a / self.scale, b / self.scale + self.zero_point
        return a.astype(np.float32), b.astype(np.float32)


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("empty file")
        return Image.open(io.BytesIO(source))
    if isinstance(source, (str, os.PathLike)):
        if os.path.isfile(source) and os.path.getsize(source) == 0:
            raise ImageError("empty file")
        if os.path.isdir(source):
            raise ImageError("is a directory")
    return Image.open(source)


def load_image(source: ImageSource, spec: InputSpec | None = None, *,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image (path, bytes, file object or PIL image) to an upright RGB (or L) PIL image.

    With ``spec`` JPEGs are decoded at a reduced scale (``Image.draft``) no smaller than the resize needs.
    Raises :class:`ImageError` with a one-line reason; images above ``max_pixels`` are refused before decoding.
    """
    if isinstance(source, np.ndarray):
        return Image.fromarray(_to_uint8(source))
    try:
        im = source if isinstance(source, Image.Image) else _open(source)
        width, height = im.size
        if width * height > max_pixels:
            raise ImageError(f"{width}×{height} image ({width * height / 1e6:.0f} MP) exceeds the "
                             f"{max_pixels / 1e6:g} MP limit (--max-pixels); refused without decoding")
        if width < 1 or height < 1:
            raise ImageError(f"image has no pixels ({width}×{height})")
        if spec is not None and getattr(im, "format", None) == "JPEG" and not isinstance(source, Image.Image):
            # Decode at 1/2, 1/4 or 1/8 scale while both sides stay >= the input size (square request: valid
            # for either EXIF orientation). For center_crop the crop may then be upsampled by up to 1/0.875:
            # a small loss of detail for a 2-4x cheaper decode.
            need = max(spec.height, spec.width)
            im.draft(im.mode, (need, need))
        im.load()
        im = ImageOps.exif_transpose(im)
        return to_rgb(im, 1 if spec is not None and spec.channels == 1 else 3)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:  # Pillow's own limit, checked inside Image.open
        found = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(found.group(1)) / 1e6:.0f} MP image" if found else "image"
        raise ImageError(f"{size} exceeds the {min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or 0)) / 1e6:g} MP limit"
                         " (--max-pixels); refused without decoding") from None
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except UnidentifiedImageError:
        raise ImageError("not an image (or an unsupported format)") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, MemoryError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageError(f"cannot decode: {reason}") from None


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    a = np.asarray(a, np.float32)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def to_rgb(im: Image.Image, channels: int = 3) -> Image.Image:
    """Any Pillow mode → ``RGB`` (or ``L`` for 1-channel models). 16/32-bit modes are scaled to 8 bits."""
    target = "L" if channels == 1 else "RGB"
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im).astype(np.float32)
        if mode.startswith("I;16") or (mode == "I" and a.size and a.max() > 255):
            a = a / 257.0  # 0..65535 → 0..255
        im = Image.fromarray(_to_uint8(a), "L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA")  # applies palette transparency, then the alpha is dropped below
    return im if im.mode == target else im.convert(target)


def fit(im: Image.Image, spec: InputSpec) -> Image.Image:
    """Resize to the model's input: ``stretch`` or ``center_crop`` (shorter side to size/0.875, center crop)."""
    size = (spec.width, spec.height)
    w, h = im.size
    if spec.resize == "center_crop":
        f = max(spec.width / w, spec.height / h) / CROP_FRACTION
        cw, ch = spec.width / f, spec.height / f
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
        return im.resize(size, Image.BILINEAR, box=box)
    return im if im.size == size else im.resize(size, Image.BILINEAR)


def to_input(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """HWC (or NHWC) pixels in [0, 255] → normalised, quantized model input of the spec's dtype."""
    if pixels.dtype == np.uint8 and pixels.shape[-1] == spec.channels:  # one table lookup per value
        lut = _table(spec)
        flat = pixels.reshape(-1, spec.channels)
        out = np.empty(flat.shape, lut.dtype)
        for c in range(spec.channels):
            np.take(lut[c], flat[:, c], out=out[:, c])
        return out.reshape(pixels.shape)
    a, b = spec.affine()
    x = pixels.astype(np.float32) * a + b
    if spec.dtype in ("int8", "uint8"):
        info = np.iinfo(spec.dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(spec.dtype)
    return x.astype(spec.dtype, copy=False)


@functools.lru_cache(maxsize=16)
def _table(spec: InputSpec) -> np.ndarray:
    """``table[c, v]`` = the model input for value v (0..255) in channel c."""
    a, b = spec.affine()
    x = np.arange(256, dtype=np.float32)[None, :] * a[:, None] + b[:, None]
    if spec.dtype in ("int8", "uint8"):
        info = np.iinfo(spec.dtype)
        x = np.clip(np.rint(x), info.min, info.max)
    return x.astype(spec.dtype)


def preprocess(image: ImageSource, spec: InputSpec, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One image (path, bytes, file, PIL image or HWC array) → the model input for it (HWC, input dtype)."""
    im = fit(load_image(image, spec, max_pixels=max_pixels), spec)
    pixels = np.asarray(im)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return to_input(pixels, spec)


def dequantize(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Raw int8/uint8 output → float32 (float outputs are returned as float32 unchanged)."""
    if raw.dtype.kind in "iu" and scale > 0:
        return (raw.astype(np.float32) - zero_point) * np.float32(scale)
    return raw.astype(np.float32, copy=False)


def image_files(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand files and folders (recursively, image extensions, sorted) → (files, [(path, error)])."""
    files, errors = [], []
    for path in paths:
        if os.path.isdir(path):
            found = []
            for root, dirs, names in os.walk(path, onerror=lambda e: errors.append((e.filename, e.strerror))):
                dirs.sort()
                found += [os.path.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)]
            files += found
        elif os.path.exists(path):
            files.append(path)
        else:
            errors.append((path, "no such file or directory"))
    return files, errors


def describe(image: Any) -> str:
    """A short name for an image source, for reports."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, np.ndarray):
        return f"array{list(image.shape)}"
    return getattr(image, "filename", None) or type(image).__name__
