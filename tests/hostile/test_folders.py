"""Hostile folder datasets: corrupt and truncated images, FIFOs, broken links, huge images and image sizes."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from PIL import Image
from training_helpers import write_image_folder

from keras_resnet.core.errors import ConfigError, DataError
from keras_resnet.data import datasets as data
from keras_resnet.data import folders
from keras_resnet.spec.recipe import Recipe


@pytest.fixture(autouse=True)
def _fresh_cache():
    data._load_all.cache_clear()
    data._warned.clear()
    yield
    data._load_all.cache_clear()


def _poison(root):
    """Four bad entries in class ``cat`` of a 3×10 image folder: corrupt .jpg, truncated .png, FIFO, broken link."""
    cat = root / "cat"
    (cat / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG" * 10)
    good = (cat / "0.png").read_bytes()
    (cat / "truncated.png").write_bytes(good[: len(good) // 2])
    os.mkfifo(cat / "pipe.png")
    os.symlink(root / "nowhere.png", cat / "broken.jpg")
    (cat / "notes.txt").write_text("not an image: ignored, not counted")
    return {"corrupt.jpg", "truncated.png", "pipe.png", "broken.jpg"}


def _names(skipped):
    return {os.path.basename(entry.split(": ")[0]) for entry in skipped}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_bad_images_are_skipped_with_a_count_or_refused(tmp_path):
    root = write_image_folder(tmp_path / "set", per_class=10, size=24)
    bad = _poison(root)
    done = threading.Event()
    result = {}

    def load():  # in a thread: a FIFO that is opened would block forever
        try:
            with pytest.warns(data.DataWarning, match="skipped 4 unreadable images") as caught:
                result["info"] = data.info(f"folder:{root}")
                result["train"] = data.load(f"folder:{root}", "train")
                data.load(f"folder:{root}", "test")
            result["warnings"] = [w for w in caught if issubclass(w.category, data.DataWarning)]
        except BaseException as error:  # noqa: BLE001 - re-raised below in the test's thread
            result["error"] = error
        done.set()

    threading.Thread(target=load, daemon=True).start()
    assert done.wait(120), "loading the folder hung (a FIFO was opened?)"
    if "error" in result:
        raise result["error"]
    info = result["info"]
    assert _names(info.skipped) == bad and len(info.skipped) == 4
    assert len(result["warnings"]) == 1  # once, not once per split
    assert sum(info.sizes.values()) == 30 and info.labels == ["cat", "dog", "fox"]
    x, y = result["train"]
    assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3)

    with pytest.raises(DataError, match=r"4 unreadable images .*(corrupt|truncated|pipe|broken)"):
        data.load(f"folder:{root}", "train", bad_images="refuse")
    with pytest.raises(DataError, match="FIFO"):
        data.info(f"folder:{root}", bad_images="refuse")
    with pytest.raises(ConfigError, match="bad_images"):
        data.info(f"folder:{root}", bad_images="maybe")


def test_split_layout_with_bad_images_in_test(tmp_path):
    root = tmp_path / "layout"
    write_image_folder(root / "train", per_class=6, size=16)
    write_image_folder(root / "test", per_class=2, size=16)
    (root / "test" / "dog" / "bad.gif").write_bytes(b"GIF89a" + b"\x00" * 5)
    with pytest.warns(data.DataWarning):
        info = data.info(f"folder:{root}", image_size=16)
    assert _names(info.skipped) == {"bad.gif"} and info.sizes["test"] == 6
    with pytest.raises(DataError, match="bad.gif"):
        data.load(f"folder:{root}", "test", image_size=16, bad_images="refuse")


def test_a_huge_image_size_is_refused_before_decoding(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "set", per_class=2, size=8)
    monkeypatch.setattr(folders, "_decode", lambda *a: pytest.fail("decoded before the memory check"))
    with pytest.raises(DataError, match=r"6 images at --image-size 20000 need 6\.7 GiB"):
        data.load(f"folder:{root}", "train", image_size=20000)


def test_an_image_over_the_pixel_cap_is_skipped_unread(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "set", per_class=4, size=8)
    Image.new("RGB", (300, 200)).save(root / "dog" / "big.png")
    monkeypatch.setattr(folders, "MAX_IMAGE_PIXELS", 300 * 200 - 1)
    with pytest.warns(data.DataWarning):
        info = data.info(f"folder:{root}", image_size=8)
    assert [entry.split(": ", 1)[1] for entry in info.skipped] == ["300×200 pixels, more than 0 MP"]
    assert sum(info.sizes.values()) == 12


def test_recipe_option():
    assert Recipe().bad_images == "skip" and Recipe(bad_images="refuse").bad_images == "refuse"
    with pytest.raises(ConfigError, match="bad_images"):
        Recipe(bad_images="ignore")
