"""Image → model input, in one place: decode, orient, RGB, resize or crop, normalise, quantize.

Pixels are float32 in [0, 255]; the model's metadata says what comes next: ``(pixel - mean) / std``
(mean 0, std 1 when the model normalises itself), then the input tensor's int8/uint8 quantization.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP: a 20000×20000 PNG (400 MP, ~1.2 GB decoded) is refused unread
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
CROP_FRACTION = 0.875  # center_crop: resize the shorter side to size / 0.875, keep the middle


class ImageError(ValueError):
    """This file cannot be classified (empty, truncated, not an image, too large)."""


@dataclass(frozen=True)
class InputSpec:
    """What the model wants: size, channels, normalisation and how to fit an image to it."""

    height: int
    width: int
    channels: int = 3
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    resize: str = "stretch"

    @classmethod
    def from_metadata(cls, meta: dict | None, shape: tuple[int, ...]) -> InputSpec:
        """From the ``keras_resnet`` metadata, else defaults and the input tensor's NHWC ``shape``."""
        info = (meta or {}).get("input") or {}
        channels = int(shape[3])
        mean = tuple(float(v) for v in info.get("mean") or [0.0] * channels)
        std = tuple(float(v) for v in info.get("std") or [1.0] * channels)
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise ValueError(f"metadata mean/std do not fit a {channels}-channel input")
        resize = info.get("resize", "stretch")
        if resize not in ("stretch", "center_crop"):
            raise ValueError(f"metadata resize {resize!r} is neither stretch nor center_crop")
        return cls(int(shape[1]), int(shape[2]), channels, mean, std, resize)


def load_image(source, spec: InputSpec, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` (a path or a PIL image) into float32 H×W×C pixels fitted to ``spec``.

    Raises :class:`ImageError` naming the reason for anything that is not a usable image.
    """
    if isinstance(source, Image.Image):
        return fit(to_rgb(source), spec)
    path = os.fspath(source)
    try:
        if os.path.getsize(path) == 0:
            raise ImageError("empty file")
        with Image.open(path) as image:
            pixels = image.width * image.height
            if pixels > max_pixels:
                raise ImageError(f"{image.width}×{image.height} = {pixels:,} pixels is above the limit of "
                                 f"{max_pixels:,} (--max-pixels)")
            if image.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale when that still covers the input
                image.draft("RGB", _draft_size(image.size, spec))
            image.load()
            return fit(to_rgb(ImageOps.exif_transpose(image)), spec)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageError(f"decompression bomb refused ({error})") from None
    except UnidentifiedImageError:
        raise ImageError("not an image (unknown format)") from None
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("is a folder") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:  # Pillow's truncated/corrupt reports
        raise ImageError(f"truncated or corrupt image ({error})") from None


def _draft_size(size: tuple[int, int], spec: InputSpec) -> tuple[int, int]:
    scale = 1 / CROP_FRACTION if spec.resize == "center_crop" else 1.0
    return int(spec.width * scale) + 1, int(spec.height * scale) + 1


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB: 16-bit and float images scaled to 8 bits, transparency over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        if image.mode == "F" and array.max() <= 1.0:
            top = 1.0
        image = Image.fromarray(np.clip(array * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def fit(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """Resize (stretch) or resize-and-center-crop an RGB image; float32 H×W×C pixels in [0, 255]."""
    w, h = spec.width, spec.height
    if spec.resize == "center_crop":
        scale = max(w, h) / CROP_FRACTION / min(image.size)
        size = (max(w, round(image.width * scale)), max(h, round(image.height * scale)))
        image = image.resize(size, Image.BILINEAR)
        left, top = (image.width - w) // 2, (image.height - h) // 2
        image = image.crop((left, top, left + w, top + h))
    elif image.size != (w, h):
        image = image.resize((w, h), Image.BILINEAR)
    if spec.channels == 1:
        image = image.convert("L")
    pixels = np.asarray(image, dtype=np.float32)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def to_input(pixels: np.ndarray, spec: InputSpec, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """Normalise N×H×W×C float pixels and quantize them for an int8/uint8 input tensor."""
    x = (np.asarray(pixels, np.float32) - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if dtype == "float32":
        return x.astype(np.float32)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def from_output(y: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """Dequantize an int8/uint8 output tensor (float outputs pass through)."""
    if dtype == "float32":
        return np.asarray(y, np.float32)
    return (np.asarray(y, np.float32) - zero_point) * scale
