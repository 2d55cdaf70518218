"""Preprocessing: every Pillow mode, EXIF orientation, resize modes, normalisation, quantization, bad files."""

import io

import numpy as np
import pytest
from conftest import jpeg_bytes, png_header_only
from PIL import Image
from resnet_edge.preprocess import (
    ImageError,
    InputSpec,
    dequantize,
    fit,
    image_files,
    load_image,
    preprocess,
    to_input,
    to_rgb,
)

SPEC = InputSpec(8, 8)


def _solid(mode, value, size=(8, 8)):
    return Image.new(mode, size, value)


@pytest.mark.parametrize("mode, value, expected", [
    ("RGB", (10, 20, 30), (10, 20, 30)),
    ("L", 128, (128, 128, 128)),
    ("LA", (77, 0), (77, 77, 77)),
    ("RGBA", (10, 200, 30, 128), (10, 200, 30)),
    ("1", 1, (255, 255, 255)),
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
    ("I;16", 128 * 257, (128, 128, 128)),
    ("I;16B", 65535, (255, 255, 255)),
    ("I", 200 * 257, (200, 200, 200)),
    ("I", 100, (100, 100, 100)),
    ("F", 42.4, (42, 42, 42)),
    ("YCbCr", (128, 128, 128), (128, 128, 128)),
])
def test_modes_to_rgb(mode, value, expected):
    out = np.asarray(preprocess(_solid(mode, value), SPEC))
    assert out.shape == (8, 8, 3) and out.dtype == np.float32
    assert np.allclose(out, expected, atol=1.01)


def test_palette_and_palette_transparency():
    p = Image.new("P", (8, 8), 1)
    p.putpalette([0, 0, 0, 250, 100, 50] + [0] * 762)
    assert np.allclose(preprocess(p, SPEC), (250, 100, 50))
    p.info["transparency"] = 0
    assert np.allclose(preprocess(p, SPEC), (250, 100, 50))
    pa = p.convert("PA")
    assert np.allclose(preprocess(pa, SPEC), (250, 100, 50))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "RGB"])
def test_modes_from_files(tmp_path, mode):
    im = Image.new("RGB", (40, 30), (90, 120, 200)).convert(mode)
    fmt = {"CMYK": "JPEG", "I;16": "PNG"}.get(mode, "PNG")
    if mode == "CMYK":
        im = Image.new("CMYK", (40, 30), (0, 0, 0, 0))
    path = tmp_path / f"x.{fmt.lower()}"
    im.save(path, fmt)
    out = preprocess(str(path), InputSpec(16, 16))
    assert out.shape == (16, 16, 3) and np.isfinite(out).all()


def test_sixteen_bit_png_is_scaled(tmp_path):
    a = np.full((10, 10), 40000, np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert np.allclose(preprocess(str(tmp_path / "deep.png"), SPEC), round(40000 / 257), atol=1)


def _left_red_right_blue(w=64, h=32):
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2:] = (0, 0, 255)
    return a


@pytest.mark.parametrize("orientation, top, bottom", [(6, "red", "blue"), (8, "blue", "red"), (1, None, None)])
def test_exif_orientation(orientation, top, bottom):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = jpeg_bytes(_left_red_right_blue(), exif=exif.tobytes())
    im = load_image(data)
    colour = {"red": (255, 0, 0), "blue": (0, 0, 255)}
    if orientation == 1:
        assert im.size == (64, 32)
        return
    assert im.size == (32, 64)  # rotated upright
    a = np.asarray(im).astype(int)
    assert np.abs(a[8, 16] - colour[top]).max() < 40
    assert np.abs(a[56, 16] - colour[bottom]).max() < 40


def test_jpeg_draft_downscales_but_not_below_the_input():
    data = jpeg_bytes(np.full((800, 1200, 3), 128, np.uint8))
    im = load_image(data, InputSpec(100, 100))
    assert min(im.size) >= 100 and im.size[0] <= 300  # decoded at 1/4 or 1/8 scale, not full size
    crop = load_image(data, InputSpec(100, 100, resize="center_crop"))
    assert min(crop.size) >= 100  # center_crop: the crop may be upsampled slightly (cheaper decode)


def test_stretch_and_center_crop():
    a = np.zeros((100, 200, 3), np.uint8)
    a[:, :50] = 255  # a white band on the left quarter
    im = Image.fromarray(a)
    stretched = np.asarray(fit(im, InputSpec(10, 10)))
    assert stretched.shape == (10, 10, 3) and stretched[:, 0].mean() > 200
    cropped = np.asarray(fit(im, InputSpec(10, 10, resize="center_crop")))
    assert cropped.shape == (10, 10, 3) and cropped.max() == 0  # the centre crop never reaches the band


def test_normalisation_and_quantization():
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    spec = InputSpec(1, 1, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0))
    assert np.allclose(to_input(pixels, spec), [[[-5.0, 27.0, 45.0]]])
    q = InputSpec(1, 1, dtype="int8", scale=0.5, zero_point=-10)
    assert to_input(pixels, q).dtype == np.int8
    assert to_input(pixels, q).tolist() == [[[-10, 127, 127]]]  # 0→-10, 128→246→clipped, 255→clipped
    u = InputSpec(1, 1, dtype="uint8", scale=1.0, zero_point=0)
    assert to_input(pixels, u).tolist() == [[[0, 128, 255]]]
    assert np.allclose(dequantize(np.array([-128, 0, 127], np.int8), 0.5, -128), [0.0, 64.0, 127.5])


def test_spec_from_metadata_defaults_and_errors():
    spec = InputSpec.from_model(None, (1, 24, 32, 3))
    assert (spec.height, spec.width, spec.mean, spec.std, spec.resize) == (24, 32, (0.0,) * 3, (1.0,) * 3, "stretch")
    assert InputSpec.from_model({"input": {"mean": [5], "std": [2]}}, (1, 4, 4, 3)).mean == (5.0,) * 3
    with pytest.raises(ValueError, match="resize"):
        InputSpec.from_model({"input": {"resize": "zoom"}}, (1, 4, 4, 3))
    with pytest.raises(ValueError, match="std"):
        InputSpec.from_model({"input": {"std": [0, 1, 1]}}, (1, 4, 4, 3))


def test_bad_images(images):
    reasons = {}
    for path in images["bad_files"]:
        with pytest.raises(ImageError) as error:
            preprocess(path, SPEC)
        reasons[path.rsplit("/", 1)[-1]] = str(error.value)
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["text.png"]
    assert "truncated" in reasons["truncated.jpg"] or "decode" in reasons["truncated.jpg"]
    assert "MP limit" in reasons["bomb.png"] and "400 MP" in reasons["bomb.png"]
    with pytest.raises(ImageError, match="no such file"):
        preprocess(images["bad"] + "/missing.jpg", SPEC)
    with pytest.raises(ImageError, match="directory"):
        preprocess(images["bad"], SPEC)


def test_pixel_limit_is_configurable():
    data = png_header_only(3000, 3000)  # 9 MP header, no real data
    with pytest.raises(ImageError, match="MP limit"):
        load_image(data, max_pixels=1_000_000)
    with pytest.raises(ImageError, match="decode"):  # allowed through, then the (missing) data fails to decode
        load_image(data, max_pixels=10_000_000)


def test_image_files_walks_folders(images):
    files, errors = image_files([images["good"], images["good"] + "/missing.png"])
    assert files == sorted(files, key=lambda p: (p.count("/"), p)) or len(files) == 6
    assert sorted(files) == images["good_files"] and len(errors) == 1


def test_to_rgb_one_channel():
    assert to_rgb(Image.new("RGB", (2, 2)), channels=1).mode == "L"
    assert preprocess(io.BytesIO(jpeg_bytes(np.zeros((4, 4, 3), np.uint8))), InputSpec(4, 4, 1, (0,), (1,))).shape \
        == (4, 4, 1)


def test_crop_fraction_and_interpolation_from_metadata():
    old = InputSpec.from_model({"input": {"resize": "center_crop"}}, (1, 8, 8, 3))
    assert (old.crop_fraction, old.interpolation) == (0.875, "bilinear")  # files written before the fields existed
    spec = InputSpec.from_model({"input": {"resize": "center_crop", "crop_fraction": 0.95,
                                           "interpolation": "bicubic"}}, (1, 8, 8, 3))
    assert (spec.crop_fraction, spec.interpolation) == (0.95, "bicubic")
    for bad in (0, 1.5, "0.9", True, -1, 1e400):
        with pytest.raises(ValueError, match="crop_fraction"):
            InputSpec.from_model({"input": {"crop_fraction": bad}}, (1, 8, 8, 3))
    for bad in ("lanczos2", 3, ["bicubic"]):
        with pytest.raises(ValueError, match="interpolation"):
            InputSpec.from_model({"input": {"interpolation": bad}}, (1, 8, 8, 3))


def test_center_crop_follows_the_crop_fraction():
    a = np.zeros((100, 100, 3), np.uint8)
    a[:, :10] = a[:, -10:] = 255  # white bands on the outer tenth of each side
    im = Image.fromarray(a)
    whole = np.asarray(fit(im, InputSpec(20, 20, resize="center_crop", crop_fraction=1.0)))
    assert whole[:, 0].mean() > 200 and whole[:, -1].mean() > 200  # crop 1.0 keeps the whole square
    inner = np.asarray(fit(im, InputSpec(20, 20, resize="center_crop", crop_fraction=0.6)))
    assert inner.max() == 0  # the central 60% (and the filter around it) misses the bands


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_center_crop_matches_the_two_step_timm_transform(interpolation):
    # timm/torchvision eval: resize the shorter side to size / crop_pct, then centre-crop size. One resize of the
    # crop box must give the same pixels up to rounding of the intermediate image.
    rng = np.random.default_rng(0)
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)).resize((400, 300),
                                                                                                    Image.BICUBIC))
    im, size, crop = Image.fromarray(smooth), 64, 0.95
    resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interpolation]
    short = int(size / crop)  # timm: scale_size = floor(size / crop_pct)
    resized = im.resize((round(short * 400 / 300), short), resample)
    left, top = (resized.size[0] - size) // 2, (resized.size[1] - size) // 2
    reference = np.asarray(resized.crop((left, top, left + size, top + size)), np.float32)
    ours = np.asarray(fit(im, InputSpec(size, size, resize="center_crop", crop_fraction=crop,
                                        interpolation=interpolation)), np.float32)
    assert np.abs(ours - reference).mean() < 4.0


def test_bicubic_differs_from_bilinear():
    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8))
    spec = {"resize": "center_crop", "crop_fraction": 0.9}
    bilinear = np.asarray(fit(im, InputSpec(37, 37, **spec)), np.int16)
    bicubic = np.asarray(fit(im, InputSpec(37, 37, interpolation="bicubic", **spec)), np.int16)
    assert np.abs(bicubic - bilinear).max() > 5
