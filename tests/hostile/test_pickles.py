"""CIFAR python batches from strangers: keras_resnet.core.safe_pickle runs no code from them (issue 10, item 1)."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

from keras_resnet.core import safe_pickle
from keras_resnet.core.errors import DataError

from . import files
from .conftest import run_python


def _load(data: bytes, **kwargs):
    return safe_pickle.load(io.BytesIO(data), **kwargs)


def test_the_official_python2_format_loads():
    data, pixels, labels = files.py2_cifar_batch(5)
    assert pickle.loads(data, encoding="bytes")[b"labels"] == labels  # the builder writes a real pickle
    batch = _load(data)
    np.testing.assert_array_equal(batch[b"data"], pixels)
    assert batch[b"data"].dtype == np.uint8 and batch[b"labels"] == labels
    assert batch[b"filenames"][0] == b"f0.png" and batch[b"batch_label"] == b"training batch 1 of 5"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_python3_pickles_of_every_protocol_load(protocol):
    batch = files.cifar_batch(6, fine=True)
    batch[b"big_endian"] = np.arange(6, dtype=">i4").reshape(2, 3)
    batch[b"fortran"] = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    batch[b"meta"] = {"names": ("a", "b"), "n": 2, "ok": True, "none": None, "x": 1.5}
    loaded = _load(pickle.dumps(batch, protocol=protocol))
    for key, value in batch.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded[key], value)
            assert loaded[key].dtype == value.dtype
        else:
            assert loaded[key] == value


def test_paths_and_shared_arrays(tmp_path):
    a = np.arange(4, dtype=np.uint8)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"x": [a, a], b"y": {"z": a}}))
    loaded = safe_pickle.load(path)
    assert loaded[b"x"][0] is loaded[b"x"][1] is loaded[b"y"]["z"]


class _Reduce:
    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("payload,named", [
    (_Reduce(os.system, "touch {marker}"), "posix.system"),
    (_Reduce(eval, "__import__('pathlib').Path({marker!r}).touch()"), ".eval"),  # __builtin__ in protocol 2
    (_Reduce(exec, "open({marker!r}, 'w')"), ".exec"),
    (_Reduce(getattr, "text", "upper"), ".getattr"),
    (_Reduce(np.load, "{marker}"), "numpy.load"),
    (_Reduce(np.frombuffer, b"\0" * 8), "numpy.frombuffer"),
    (np.float64(1.0), "numpy._core.multiarray.scalar"),
    (np.ma.masked_array([1, 2], mask=[0, 1]), "numpy.ma.core._mareconstruct"),
])
def test_anything_else_is_refused_before_it_runs(tmp_path, payload, named):
    marker = tmp_path / "CODE_RAN"
    if isinstance(payload, _Reduce):
        payload.args = tuple(a.format(marker=str(marker)) if isinstance(a, str) else a for a in payload.args)
    batch = {**files.cifar_batch(), b"batch_label": payload}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        with pytest.raises(safe_pickle.UnsafePickleError, match="refusing to load it") as error:
            _load(pickle.dumps(batch, protocol=protocol))
        assert named in str(error.value) and "\n" not in str(error.value)
        assert isinstance(error.value, DataError) and isinstance(error.value, pickle.UnpicklingError)
    assert not marker.exists()


def test_the_issue_payload_file(tmp_path):
    marker = tmp_path / "CODE_RAN"
    path = files.evil_cifar_batch(tmp_path / "data_batch_1", marker)
    with pytest.raises(safe_pickle.UnsafePickleError, match="system"):
        safe_pickle.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("value,match", [
    (np.array([1, "a"], dtype=object), "unknown numpy dtype|only number arrays"),
    (np.zeros(3, dtype=[("a", "u1"), ("b", "f4")]), "structured|only number arrays"),
    (np.array(["ab", "c"]), "only number arrays"),
    (np.zeros(2, dtype="V4"), "only number arrays"),
])
def test_arrays_of_anything_but_numbers_are_refused(value, match):
    for protocol in (2, 4, 5):
        with pytest.raises(safe_pickle.UnsafePickleError, match=match):
            _load(pickle.dumps({b"data": value}, protocol=protocol))


def test_declared_shapes_must_match_the_bytes_in_the_file():
    data, _, _ = files.py2_cifar_batch(2)
    shape = b"K\x02J\x00\x0c\x00\x00"  # (2, 3072)
    inflated = data.replace(shape, b"J\x00\x00\x00\x40J\x00\x0c\x00\x00", 1)  # (2**30, 3072)
    assert inflated != data
    result = run_python(f"""
        import io
        from keras_resnet.core import safe_pickle
        try:
            safe_pickle.load(io.BytesIO({inflated!r}))
            RESULT = {{"refused": None}}
        except safe_pickle.UnsafePickleError as error:
            RESULT = {{"refused": str(error)}}
    """)
    assert "declares (1073741824, 3072) uint8 but holds 6144 bytes" in result["refused"], result
    assert result["peak_mb"] < 300, result


def test_direct_ndarray_calls_are_refused():
    # what numpy.ndarray((huge,)) through REDUCE would be: a huge allocation the file does not pay for
    data = b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x40\x85\x85R."
    with pytest.raises(safe_pickle.UnsafePickleError, match="numpy.ndarray directly"):
        _load(data)


@pytest.mark.parametrize("data", [b"", b"not a pickle", pickle.dumps(files.cifar_batch())[:-40], b"\x80\x05(" * 50,
                                  b"\x80\x02" + b"]" * 200_000 + b"."])
def test_malformed_pickles_are_data_errors(data):
    try:
        _load(data)
    except safe_pickle.PickleDataError as error:
        assert "\n" not in str(error)


def test_size_cap():
    with pytest.raises(safe_pickle.PickleDataError, match="larger than"):
        _load(pickle.dumps(files.cifar_batch()), max_bytes=1000)


def test_the_data_loader_refuses_a_poisoned_cifar_folder(tmp_path):
    """keras_resnet.data.datasets reads CIFAR batches (and the meta file) through safe_pickle: nothing runs."""
    from training_helpers import write_cifar10

    from keras_resnet.data import datasets as data_lib

    folder = write_cifar10(tmp_path)
    marker = tmp_path / "CODE_RAN"
    files.evil_cifar_batch(folder / "data_batch_3", marker)
    data_lib._load_all.cache_clear()
    try:
        with pytest.raises(DataError, match="data_batch_3.*(system|refusing)"):
            data_lib.load("cifar10", "train", str(tmp_path))
        assert not marker.exists()
        write_cifar10(tmp_path / "meta")
        files.evil_cifar_batch(tmp_path / "meta" / "cifar-10-batches-py" / "batches.meta", marker)
        with pytest.raises(DataError, match="refusing .*batches.meta"):
            data_lib.load("cifar10", "train", str(tmp_path / "meta"))
        assert not marker.exists()
    finally:
        data_lib._load_all.cache_clear()


def test_the_download_path_reads_the_archive_through_safe_pickle(tmp_path, monkeypatch):
    """Not cached: keras.utils.get_file fetches and extracts the archive keras.datasets uses, and the batches are
    then read with safe_pickle (keras.datasets.cifar10.load_data() would unpickle them with plain pickle)."""
    import keras
    from training_helpers import write_cifar10

    from keras_resnet.data import datasets as data_lib

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    marker = tmp_path / "CODE_RAN"
    calls = []

    def fake_get_file(fname=None, origin=None, extract=False, cache_subdir="datasets", **kwargs):
        calls.append((fname, origin, extract, cache_subdir))
        extracted = tmp_path / "download" / fname
        if not extracted.exists():
            write_cifar10(extracted)
        return str(extracted)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: pytest.fail("keras.datasets unpickles"))
    data_lib._load_all.cache_clear()
    try:
        x, y = data_lib.load("cifar10", "test")
        assert x.shape == (20, 32, 32, 3) and len(y) == 20
        assert calls == [("cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", True,
                          "datasets")]
        files.evil_cifar_batch(tmp_path / "download" / "cifar-10-batches-py" / "cifar-10-batches-py" / "test_batch",
                               marker)
        data_lib._load_all.cache_clear()
        with pytest.raises(DataError, match="test_batch.*(system|refusing)"):
            data_lib.load("cifar10", "test")
        assert not marker.exists()

        def offline(**kwargs):
            raise OSError("no network")

        monkeypatch.setattr(keras.utils, "get_file", offline)
        data_lib._load_all.cache_clear()
        with pytest.raises(DataError, match="cifar100 is not on this machine and could not be downloaded"):
            data_lib.load("cifar100", "test")
    finally:
        data_lib._load_all.cache_clear()
