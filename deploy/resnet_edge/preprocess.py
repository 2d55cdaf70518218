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
import stat
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .choices import INTERPOLATIONS as FILTER_NAMES
from .choices import RESIZE_MODES
from .files import file_kind

DEFAULT_MAX_PIXELS = 50_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
CROP_FRACTION = 0.875  # the default centre crop (torchvision's v1 / timm's usual 224/256); metadata may say otherwise
# Pillow filters by metadata name. timm's pretrained_cfg says "bicubic" for most of its ResNet weights (the RSB A1/A2/A3
# tags), torchvision's transforms "bilinear"; Pillow's resize of a larger image antialiases with either, as the
# torchvision/timm PIL transforms do.
INTERPOLATIONS = {name: getattr(Image, name.upper()) for name in FILTER_NAMES}  # Image.BILINEAR, ...
MIN_CROP_FRACTION = 0.05  # below this a 224 input would be cut from a 4480-pixel resize: refuse such metadata

# We refuse large images ourselves (max_pixels) before decoding. Pillow keeps its own limit too (it refuses above
# 2 × Image.MAX_IMAGE_PIXELS, ~179 MP, inside Image.open): the effective limit is the smaller of the two. Pillow's
# settings are process-wide, so the library leaves them alone; the resnet-edge command hides Pillow's warning.

ImageSource = Union[str, os.PathLike, bytes, BinaryIO, Image.Image, np.ndarray]


class ImageError(ValueError):
    """An image that cannot be used: unreadable, not an image, truncated, too large."""


LIMIT = 1e6  # bounds of metadata mean (absolute) and std: pixel values are 0..255


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value),
                                                                                                   "number")


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a JSON integer beyond float range
        return False


def _numbers(value: Any, name: str, channels: int, default: float) -> tuple[float, ...]:
    """Metadata ``mean``/``std``: None (default), a number, or a list of one or ``channels`` finite numbers."""
    if value is None:
        value = [default]
    elif not isinstance(value, list):
        value = [value]
    if not value:
        value = [default]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v) for v in value):
        raise ValueError(f"metadata {name} must be finite numbers; got {str(value)[:80]}")
    if len(value) not in (1, channels):
        raise ValueError(f"metadata {name} has {len(value)} values for {channels} channels")
    return tuple(float(v) for v in value) * (channels if len(value) == 1 else 1)


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
    crop_fraction: float = CROP_FRACTION
    interpolation: str = "bilinear"

    @classmethod
    def from_model(cls, meta: dict | None, shape: tuple[int, ...], dtype: str = "float32", scale: float = 0.0,
                   zero_point: int = 0) -> InputSpec:
        """From the keras_resnet metadata (may be None: defaults) and the input tensor's details.

        Raises ValueError naming the field when the metadata's ``input`` is not an object, ``mean``/``std`` are not
        numbers (one, or one per channel) in range (finite, ``std`` in [1e-6, 1e6], ``|mean|`` ≤ 1e6), ``resize``
        is unknown, ``crop_fraction`` is not a number in [0.05, 1], ``interpolation`` is not one of
        :data:`INTERPOLATIONS`, or the input tensor's quantization is not finite. Files written before
        ``crop_fraction``/``interpolation`` existed get 0.875 and bilinear.
        """
        info = (meta or {}).get("input")
        if info is None:
            info = {}
        if not isinstance(info, dict):
            raise ValueError(f"metadata input is a {_json_kind(info)}, not an object")
        channels = int(shape[3])
        mean = _numbers(info.get("mean"), "mean", channels, 0.0)
        std = _numbers(info.get("std"), "std", channels, 1.0)
        if not all(abs(m) <= LIMIT for m in mean) or not all(1 / LIMIT <= s <= LIMIT for s in std):
            raise ValueError(f"metadata mean {list(mean)} / std {list(std)} are out of range (std must be in "
                             f"[{1 / LIMIT:g}, {LIMIT:g}], |mean| at most {LIMIT:g})")
        resize = info.get("resize") or "stretch"
        if not isinstance(resize, str) or resize not in RESIZE_MODES:
            raise ValueError(f"metadata resize {resize!r:.40} is not one of {', '.join(RESIZE_MODES)}")
        crop = info.get("crop_fraction")
        crop = CROP_FRACTION if crop is None else crop
        if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not _finite(crop) \
                or not MIN_CROP_FRACTION <= crop <= 1:
            raise ValueError(f"metadata crop_fraction {str(crop)[:40]} is not a number in [{MIN_CROP_FRACTION}, 1]")
        interpolation = info.get("interpolation") or "bilinear"
        if not isinstance(interpolation, str) or interpolation not in INTERPOLATIONS:
            raise ValueError(f"metadata interpolation {interpolation!r:.40} is not one of "
                             f"{', '.join(INTERPOLATIONS)}")
        if not math.isfinite(scale) or scale < 0 or not -(1 << 31) <= zero_point < (1 << 31):
            raise ValueError(f"the input tensor's quantization (scale {scale}, zero point {zero_point}) is invalid")
        return cls(int(shape[1]), int(shape[2]), channels, mean, std, resize, dtype, float(scale), int(zero_point),
                   float(crop), interpolation)

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
        return Image.open(open_regular(source))  # Pillow closes the file once the image is loaded
    return Image.open(source)


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular, non-empty file for reading; anything else (a FIFO, which would block forever, a device, a
    socket, a folder) is an :class:`ImageError` and is never read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise ImageError("is a directory") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageError("is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"{file_kind(info.st_mode)}, not a regular file")
        if info.st_size == 0:
            raise ImageError("empty file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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
            # for either EXIF orientation). For center_crop the crop may then be upsampled by up to
            # 1/crop_fraction: a small loss of detail for a 2-4x cheaper decode.
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
    """Resize to the model's input: ``stretch``, or ``center_crop`` (the shorter side to size / crop_fraction, then
    the centre size × size: timm's and torchvision's eval transform, in one resize of the crop box), with the
    spec's interpolation."""
    size = (spec.width, spec.height)
    w, h = im.size
    resample = INTERPOLATIONS[spec.interpolation]
    if spec.resize == "center_crop":
        f = max(spec.width / w, spec.height / h) / spec.crop_fraction
        cw, ch = spec.width / f, spec.height / f
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
        return im.resize(size, resample, box=box)
    return im if im.size == size else im.resize(size, resample)


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


@dataclass
class ImageScan:
    """What :func:`scan_images` found: image ``files``, ``missing`` paths and ``skipped`` non-regular entries, each
    as ``(path, reason)``."""

    files: list[str]
    missing: list[tuple[str, str]]
    skipped: list[tuple[str, str]]


def _regular(path: str) -> str | None:
    """None for a regular file (links followed), else why it is skipped. Never opens the file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken link" if os.path.islink(path) else "no such file or directory"
    except OSError as error:
        return error.strerror or "cannot be read"
    return None if stat.S_ISREG(mode) else file_kind(mode)


def scan_images(paths: list[str]) -> ImageScan:
    """Expand files and folders (recursively, image extensions, sorted). Folders give regular files only: FIFOs,
    devices, sockets and broken links are ``skipped``, never opened; links to folders are not followed."""
    scan = ImageScan([], [], [])
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path, onerror=lambda e: scan.missing.append((e.filename, e.strerror))):
                dirs.sort()
                for name in sorted(names):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        full = os.path.join(root, name)
                        why = _regular(full)
                        if why is None:
                            scan.files.append(full)
                        else:
                            scan.skipped.append((full, f"skipped: {why}"))
        elif os.path.lexists(path):
            why = _regular(path)
            if why is None:
                scan.files.append(path)
            else:
                scan.missing.append((path, f"{why}, not a regular file" if why.startswith("a ") else why))
        else:
            scan.missing.append((path, "no such file or directory"))
    return scan


def image_files(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """``(files, [(path, error)])`` of :func:`scan_images` (skipped entries are among the errors)."""
    scan = scan_images(paths)
    return scan.files, scan.missing + scan.skipped


def describe(image: Any) -> str:
    """A short name for an image source, for reports."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, np.ndarray):
        return f"array{list(image.shape)}"
    return getattr(image, "filename", None) or type(image).__name__
