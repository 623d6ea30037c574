"""Readers for the two official CIFAR file formats, checking every file they read.

Binary version: each record is the label byte(s) followed by 3,072 pixel
bytes, three 32×32 planes (red, green, blue), each row-major. CIFAR-10 has
one label byte (3,073-byte records); CIFAR-100 has two, the coarse label
then the fine one (3,074 bytes). Python version: a pickled dict whose
``b"data"`` is a uint8 array of shape (N, 3072) in the same pixel order.

A file of the wrong size, with labels out of range, or that does not parse
raises :class:`DataFileError` naming the file, its size and what was expected.

References
----------
A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
tech. report, 2009; dataset page https://www.cs.toronto.edu/~kriz/cifar.html
("Binary version", "Python / Matlab versions").
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy

from .safe_pickle import load_restricted

PIXELS = 3 * 32 * 32


class DataFileError(ValueError):
    """A data file that is missing pieces, truncated or corrupt."""


def read_bin_records(path, *, label_bytes: int, num_records: int, num_classes: tuple):
    """Read a CIFAR binary file of fixed-size records.

    Parameters
    ----------
    path : str or os.PathLike
    label_bytes : int
        1 for CIFAR-10, 2 for CIFAR-100 (coarse, then fine).
    num_records : int
        How many records the file must hold (10,000 per CIFAR-10 batch).
    num_classes : tuple of int
        For each label byte, the number of classes (labels must be below it).

    Returns
    -------
    images : numpy.ndarray, uint8, shape (N, 3, 32, 32)
    labels : numpy.ndarray, int64, shape (N, label_bytes)

    Raises
    ------
    DataFileError
        If the size is not ``num_records × (label_bytes + 3072)`` bytes (the
        message says whether it is a whole number of records), or a label is
        out of range (names the first bad record).
    """
    path = Path(path)
    record = label_bytes + PIXELS
    size = path.stat().st_size
    if size != num_records * record:
        whole = (
            f"{size // record:,} whole records" if size % record == 0
            else f"not a whole number of {record:,}-byte records: truncated or corrupt"
        )
        raise DataFileError(
            f"{path}: {size:,} bytes, expected {num_records * record:,} "
            f"({num_records:,} records of {record:,} bytes); {whole}"
        )
    raw = numpy.fromfile(path, dtype=numpy.uint8).reshape(num_records, record)
    labels = raw[:, :label_bytes].astype(numpy.int64)
    _check_labels(path, size, labels, num_classes)
    return raw[:, label_bytes:].reshape(num_records, 3, 32, 32), labels


def read_pickle_batch(path, *, label_keys: tuple, num_records: int, num_classes: tuple):
    """Read one CIFAR python-version batch with the restricted unpickler.

    Parameters
    ----------
    path : str or os.PathLike
    label_keys : tuple of bytes
        Keys of the label lists: ``(b"labels",)`` for CIFAR-10,
        ``(b"coarse_labels", b"fine_labels")`` for CIFAR-100.
    num_records : int
        How many images the batch must hold.
    num_classes : tuple of int
        For each label key, the number of classes.

    Returns
    -------
    images : numpy.ndarray, uint8, shape (N, 3, 32, 32)
    labels : numpy.ndarray, int64, shape (N, len(label_keys))

    Raises
    ------
    DataFileError
        If the file does not unpickle (truncated, corrupt, or naming a global
        other than NumPy's array reconstruction), lacks a key, or holds data
        of the wrong shape, dtype or label range.
    """
    path = Path(path)
    size = path.stat().st_size
    expected = f"a dict with a uint8 (N, {PIXELS}) array under b'data', N = {num_records:,}"
    try:
        batch = load_restricted(path, max_array_bytes=num_records * PIXELS)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as exc:
        raise DataFileError(
            f"{path}: {size:,} bytes, does not unpickle as a CIFAR batch "
            f"({type(exc).__name__}: {exc}); expected {expected}"
        ) from exc
    if not isinstance(batch, dict) or any(k not in batch for k in (b"data", *label_keys)):
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataFileError(f"{path}: {size:,} bytes, holds {keys}; expected {expected} "
                            f"and label keys {list(label_keys)}")
    data = batch[b"data"]
    if not (isinstance(data, numpy.ndarray) and data.dtype == numpy.uint8
            and data.shape == (num_records, PIXELS)):
        found = (f"{data.dtype} {data.shape}" if isinstance(data, numpy.ndarray)
                 else type(data).__name__)
        raise DataFileError(f"{path}: {size:,} bytes, b'data' is {found}; expected {expected}")
    try:
        labels = numpy.stack([numpy.asarray(batch[k], dtype=numpy.int64) for k in label_keys], 1)
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{path}: {size:,} bytes, label lists do not parse: {exc}") from exc
    if labels.shape != (num_records, len(label_keys)):
        raise DataFileError(f"{path}: {size:,} bytes, {labels.shape[0]:,} labels for "
                            f"{num_records:,} images")
    _check_labels(path, size, labels, num_classes)
    return data.reshape(num_records, 3, 32, 32), labels


def read_names(path, *, count: int) -> list:
    """Class names from a text file, one per line (blank lines ignored).

    Raises
    ------
    DataFileError
        If the file is not UTF-8 text or does not hold exactly ``count`` names.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text (byte {exc.start:,} is {exc.object[exc.start]:#04x}); "
                            f"expected {count} class names, one per line") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != count:
        raise DataFileError(f"{path}: {len(names)} class names, expected {count}")
    return names


def names_from_pickle(path, *, key: bytes, count: int) -> list:
    """Class names stored under ``key`` in a pickled meta file (restricted unpickler).

    Raises
    ------
    DataFileError
        If the file does not unpickle, lacks ``key``, or holds another count.
    """
    path = Path(path)
    try:
        meta = load_restricted(path)
        names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in meta[key]]
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise DataFileError(
            f"{path}: {path.stat().st_size:,} bytes, no class names under {key!r} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if len(names) != count:
        raise DataFileError(f"{path}: {len(names)} class names under {key!r}, expected {count}")
    return names


def _check_labels(path: Path, size: int, labels, num_classes: tuple) -> None:
    for column, classes in enumerate(num_classes):
        bad = numpy.flatnonzero((labels[:, column] < 0) | (labels[:, column] >= classes))
        if bad.size:
            raise DataFileError(
                f"{path}: {size:,} bytes, record {bad[0]:,} has label {labels[bad[0], column]} "
                f"outside 0..{classes - 1}: the file is corrupt or not this dataset"
            )
