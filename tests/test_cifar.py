"""CIFAR loaders: both official layouts from tiny generated files, the restricted
unpickler, clear errors for truncated and corrupt files, the data directory, and
the real CIFAR-10 where it is available."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from minicon.data import DataFileError, data_dir, load_cifar10, load_cifar100, load_restricted
from minicon.data.readers import read_bin_records, read_pickle_batch

from .cifar_fixtures import CLASS_NAMES, py2_pickle, real_cifar10_dir, shrink_layouts, write_binary, write_python


@pytest.fixture
def small(monkeypatch):
    shrink_layouts(monkeypatch)


@pytest.mark.parametrize("writer", [write_binary, write_python])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_reads_both_layouts(small, tmp_path, writer, split):
    expected_images, expected_labels = writer(tmp_path, "cifar10")[split]
    images, labels, names = load_cifar10(tmp_path, split=split, download=False)
    assert images.dtype == np.uint8 and images.shape == (len(expected_images), 3, 32, 32)
    assert labels.dtype == np.int64 and labels.shape == (len(expected_images),)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels[:, 0])
    assert names == CLASS_NAMES["cifar10"]


@pytest.mark.parametrize("writer", [write_binary, write_python])
@pytest.mark.parametrize("label_type, column", [("fine", 1), ("coarse", 0)])
def test_cifar100_reads_both_layouts_and_label_types(small, tmp_path, writer, label_type, column):
    expected_images, expected_labels = writer(tmp_path, "cifar100")["train"]
    images, labels, names = load_cifar100(tmp_path, "train", label_type=label_type, download=False)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels[:, column])
    assert names == CLASS_NAMES[label_type] and labels.dtype == np.int64


def test_binary_layout_is_preferred_when_both_exist(small, tmp_path):
    from_binary = write_binary(tmp_path, "cifar10", seed=1)["test"]
    write_python(tmp_path, "cifar10", seed=2)
    images, _, _ = load_cifar10(tmp_path, "test", download=False)
    np.testing.assert_array_equal(images, from_binary[0])


def test_pixel_order_is_red_green_blue_planes_row_major(small, tmp_path):
    write_binary(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[1 + 1024 + 32 * 2 + 5] = 7  # record 0: green plane, row 2, column 5
    path.write_bytes(bytes(raw))
    images, _, _ = load_cifar10(tmp_path, "test", download=False)
    assert images[0, 1, 2, 5] == 7


def test_data_directory_resolution(small, tmp_path, monkeypatch):
    write_binary(tmp_path, "cifar10")
    monkeypatch.setenv("MINICON_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path and data_dir("/elsewhere") == Path("/elsewhere")
    assert len(load_cifar10(split="test", download=False)[0]) == 4  # found through the variable
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setenv("MINICON_DATA_DIR", tmp_path.name)  # relative, like ../shared/data
    assert len(load_cifar10(split="test", download=False)[0]) == 4
    monkeypatch.delenv("MINICON_DATA_DIR")
    assert data_dir().name == "minicon"  # the platform cache


def test_missing_data_without_download_names_what_was_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 test split not found .*cifar-10-batches-bin/"
                       r"test_batch\.bin.*cifar-10-batches-py/test_batch.*minicon download cifar10"):
        load_cifar10(tmp_path, "test", download=False)


def test_bad_arguments_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_cifar10(tmp_path, "val", download=False)
    with pytest.raises(ValueError, match="label_type must be 'fine' or 'coarse'"):
        load_cifar100(tmp_path, label_type="medium", download=False)


# ---------------------------------------------------------------- corrupt files


def test_truncated_binary_file_names_file_size_and_expected_size(small, tmp_path):
    write_binary(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    size = 3 * 3073 - 100
    with pytest.raises(DataFileError, match=rf"data_batch_3\.bin: {size:,} bytes, expected 9,219 "
                       r"\(3 records of 3,073 bytes\); not a whole number"):
        load_cifar10(tmp_path, "train", download=False)


def test_binary_file_with_too_few_whole_records(small, tmp_path):
    write_binary(tmp_path, "cifar100")
    path = tmp_path / "cifar-100-binary" / "test.bin"
    path.write_bytes(path.read_bytes()[:2 * 3074])
    with pytest.raises(DataFileError, match=r"test\.bin: 6,148 bytes, expected 15,370 .*; 2 whole records"):
        load_cifar100(tmp_path, "test", download=False)


def test_corrupt_label_byte_is_reported_with_its_record(small, tmp_path):
    write_binary(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[2 * 3073] = 200
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match=r"test_batch\.bin: 12,292 bytes, record 2 has label 200 outside 0\.\.9"):
        load_cifar10(tmp_path, "test", download=False)


def test_truncated_and_wrong_shape_pickles_fail_clearly(small, tmp_path):
    write_python(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataFileError, match=rf"test_batch: {len(whole) // 2:,} bytes, does not unpickle"):
        load_cifar10(tmp_path, "test", download=False)
    path.write_bytes(py2_pickle({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 2]}))
    with pytest.raises(DataFileError, match=r"b'data' is uint8 \(3, 3072\); expected .* N = 4"):
        load_cifar10(tmp_path, "test", download=False)


# ---------------------------------------------------------------- restricted unpickler


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_code_and_runs_nothing(small, tmp_path):
    write_python(tmp_path, "cifar10")
    marker = tmp_path / "payload_ran"
    payload = pickle.dumps({b"data": _RunsCode(marker), b"labels": []}, protocol=4)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(payload)
    with pytest.raises(DataFileError, match=r"refusing to load global (posix|nt|os)\.system"):
        load_cifar10(tmp_path, "test", download=False)
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
        load_restricted(path)
    assert not marker.exists()
    pickle.loads(payload)  # the same bytes through plain pickle do run: the test is live
    assert marker.exists()


@pytest.fixture
def numpy1_names(monkeypatch):
    """Make pickle name NumPy 1's modules (numpy.core.*), as files written before NumPy 2 do."""
    import warnings
    warnings.filterwarnings("ignore", r"numpy\.core.* is deprecated", DeprecationWarning)
    for function, module in ((np.empty(0).__reduce__()[0], "numpy.core.multiarray"),
                             (np.empty(0).__reduce_ex__(5)[0], "numpy.core.numeric")):
        monkeypatch.setattr(function, "__module__", module)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("old_numpy", [False, True])
def test_batches_pickled_by_todays_python_load_through_each_numpy_path(small, tmp_path, protocol, old_numpy,
                                                                      request):
    """Protocol 2 from Python 3 spells bytes as _codecs.encode; 5 rebuilds arrays with _frombuffer."""
    expected = write_python(tmp_path, "cifar10")["test"]
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch = {b"data": expected[0].reshape(len(expected[0]), -1), b"labels": expected[1].ravel().tolist()}
    if old_numpy:
        request.getfixturevalue("numpy1_names")
    data = pickle.dumps(batch, protocol=protocol)
    if old_numpy:
        assert b"numpy.core." in data and b"numpy._core" not in data
    assert (b"_codecs" in data) == (protocol == 2) and (b"_frombuffer" in data) == (protocol == 5)
    path.write_bytes(data)
    images, labels, _ = load_cifar10(tmp_path, "test", download=False)
    np.testing.assert_array_equal(images, expected[0])
    np.testing.assert_array_equal(labels, expected[1].ravel())


class _ObjectArray:
    def __reduce__(self):  # an object-dtype array: its items are unpickled objects
        return np.array([1, "two"], dtype=object).__reduce_ex__(4)


class _Encode:
    def __init__(self, encoding):
        self.encoding = encoding

    def __reduce__(self):
        import _codecs
        return _codecs.encode, ("x", self.encoding)


class _HugeArray:
    def __reduce__(self):  # 10**12 bytes declared where the reconstruction allocates them
        return np.empty(0).__reduce__()[0], (np.ndarray, (10**12,), b"b")


@pytest.mark.parametrize("payload, message", [
    (_ObjectArray(), r"refusing an array of dtype object"),
    (_Encode("utf-16"), r"refusing _codecs\.encode\(str, 'utf-16'\)"),
    (_HugeArray(), r"declares 1,000,000,000,000 bytes .*more than the 12,288 expected"),
])
def test_restricted_unpickler_refuses_objects_other_codecs_and_huge_arrays(small, tmp_path, payload, message):
    write_python(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": payload, b"labels": []}, protocol=4))
    with pytest.raises(DataFileError, match=message) as caught:
        load_cifar10(tmp_path, "test", download=False)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_readers_check_record_counts_directly(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(bytes(3073 * 2))
    images, labels = read_bin_records(path, label_bytes=1, num_records=2, num_classes=(10,))
    assert images.shape == (2, 3, 32, 32) and labels.shape == (2, 1)
    path.write_bytes(py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 9]}))
    with pytest.raises(DataFileError, match=r"record 1 has label 9 outside 0\.\.4"):
        read_pickle_batch(path, label_keys=(b"labels",), num_records=2, num_classes=(5,))


# ---------------------------------------------------------------- the real data


def test_real_cifar10_has_every_record_and_balanced_classes():
    root = real_cifar10_dir()
    if root is None:
        pytest.skip("real CIFAR-10 not found: set MINICON_DATA_DIR or place shared/data beside the repo")
    for split, n, per_class in (("train", 50_000, 5_000), ("test", 10_000, 1_000)):
        images, labels, names = load_cifar10(root, split, download=False)
        assert images.shape == (n, 3, 32, 32) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(labels, minlength=10), [per_class] * 10)
        assert names == CLASS_NAMES["cifar10"]
    mean = images.reshape(n, 3, -1).mean(axis=(0, 2)) / 255  # natural images, not noise or zeros
    np.testing.assert_allclose(mean, [0.49, 0.48, 0.45], atol=0.02)


def test_a_class_names_file_that_is_not_utf8_is_named(small, tmp_path):
    write_binary(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-bin" / "batches.meta.txt"
    path.write_bytes("airplane\n".encode() + b"\xff\xfe caf\xe9\n")
    with pytest.raises(DataFileError) as caught:
        load_cifar10(tmp_path, "test", download=False)
    assert str(caught.value) == (f"{path}: not UTF-8 text (byte 9 is 0xff); "
                                 "expected 10 class names, one per line")
