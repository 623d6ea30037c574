"""CIFAR-10 and CIFAR-100: the official archives, their layouts, and the loaders.

Both official layouts are read: the binary version (fixed-size records,
no code runs) and the python version (pickles, read with a restricted
unpickler). When both are on disk the binary one is used; when neither is,
the binary archive is downloaded (URL and MD5 as published on the CIFAR
page) and only its data files are extracted.

References
----------
A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
tech. report, University of Toronto, 2009. Archives, MD5 sums and layouts:
https://www.cs.toronto.edu/~kriz/cifar.html
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy

from .download import Archive, data_dir, extract_members, fetch_archive
from .readers import PIXELS, names_from_pickle, read_bin_records, read_names, read_pickle_batch

SPLITS = ("train", "test")
_URL = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class Layout:
    """Where one official version of a dataset puts its files.

    Attributes
    ----------
    archive : Archive
        The official archive (URL, MD5 and size from the CIFAR page).
    folder : str
        The directory the archive extracts to.
    data_files : dict of str to tuple of str
        For each split, its data files inside ``folder``.
    records : dict of str to int
        For each split, the records in EACH of its data files.
    meta_files : tuple of str
        The class-name files inside ``folder``.
    binary : bool
        True for the binary version, False for the python (pickle) version.
    classes : tuple of int
        Classes per label byte / label list: ``(10,)`` for CIFAR-10,
        ``(20, 100)`` (coarse, then fine) for CIFAR-100.
    """

    archive: Archive
    folder: str
    data_files: dict
    records: dict
    meta_files: tuple
    binary: bool
    classes: tuple

    def needed(self, split: str) -> list:
        """Relative paths of every file that loading ``split`` reads."""
        return [f"{self.folder}/{name}" for name in (*self.data_files[split], *self.meta_files)]

    def members(self) -> dict:
        """Archive members to extract, with their sizes where they are fixed."""
        sizes = {}
        for split, files in self.data_files.items():
            for name in files:
                fixed = self.records[split] * (len(self.classes) + PIXELS) if self.binary else None
                sizes[f"{self.folder}/{name}"] = fixed
        sizes.update({f"{self.folder}/{name}": None for name in self.meta_files})
        return sizes


_TRAIN10 = tuple(f"data_batch_{i}" for i in range(1, 6))
LAYOUTS = {
    "cifar10": {
        "binary": Layout(
            Archive(_URL + "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", 170_052_171),
            "cifar-10-batches-bin",
            {"train": tuple(f"{n}.bin" for n in _TRAIN10), "test": ("test_batch.bin",)},
            {"train": 10_000, "test": 10_000}, ("batches.meta.txt",), True, (10,)),
        "python": Layout(
            Archive(_URL + "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", 170_498_071),
            "cifar-10-batches-py", {"train": _TRAIN10, "test": ("test_batch",)},
            {"train": 10_000, "test": 10_000}, ("batches.meta",), False, (10,)),
    },
    "cifar100": {
        "binary": Layout(
            Archive(_URL + "cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8", 168_513_733),
            "cifar-100-binary", {"train": ("train.bin",), "test": ("test.bin",)},
            {"train": 50_000, "test": 10_000},
            ("coarse_label_names.txt", "fine_label_names.txt"), True, (20, 100)),
        "python": Layout(
            Archive(_URL + "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", 169_001_437),
            "cifar-100-python", {"train": ("train",), "test": ("test",)},
            {"train": 50_000, "test": 10_000}, ("meta",), False, (20, 100)),
    },
}
_LABEL_KEYS = {"cifar10": (b"labels",), "cifar100": (b"coarse_labels", b"fine_labels")}
_TITLES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def download_cifar(name: str, root=None, *, layout: str = "binary", progressbar: bool = True,
                   retries: int = 3) -> Path:
    """Download and extract one official CIFAR archive.

    Parameters
    ----------
    name : {"cifar10", "cifar100"}
    root : str or os.PathLike, optional
        Data directory; see :func:`minicon.data.data_dir`.
    layout : {"binary", "python"}
        Which official version to fetch.
    progressbar : bool
        Show a download progress bar.
    retries : int
        Extra attempts after a failed or corrupt transfer.

    Returns
    -------
    pathlib.Path
        The extracted folder, e.g. ``<root>/cifar-10-batches-bin``. The
        verified archive stays beside it; files already there are kept.

    Raises
    ------
    ValueError
        For an unknown ``name`` or ``layout``, a checksum mismatch, or an
        archive without the expected members.
    """
    spec = _layout(name, layout)
    directory = data_dir(root)
    archive = fetch_archive(spec.archive, directory, retries=retries, progressbar=progressbar)
    extract_members(archive, directory, spec.members())
    return directory / spec.folder


def load_cifar10(root=None, split: str = "train", download: bool = True):
    """Load CIFAR-10 (Krizhevsky, 2009): 50,000 train / 10,000 test, 10 classes.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Data directory; default ``$MINICON_DATA_DIR``, else the platform
        cache (see :func:`minicon.data.data_dir`).
    split : {"train", "test"}
    download : bool
        Download the binary archive when neither layout is found.

    Returns
    -------
    images : numpy.ndarray, uint8, shape (N, 3, 32, 32)
        NCHW, channels RGB, on the host.
    labels : numpy.ndarray, int64, shape (N,)
        Class indices 0-9.
    class_names : list of str
        ``class_names[label]`` is the name of a label.

    Raises
    ------
    FileNotFoundError
        If the data is not there and ``download`` is False.
    minicon.data.DataFileError
        If a file is truncated or corrupt (names the file, its size and the
        expected size).
    ValueError
        For an unknown ``split``.
    """
    layout, folder = _locate("cifar10", split, data_dir(root), download)
    images, labels = _read_split("cifar10", layout, folder, split)
    if layout.binary:
        names = read_names(folder / "batches.meta.txt", count=10)
    else:
        names = names_from_pickle(folder / "batches.meta", key=b"label_names", count=10)
    return images, labels[:, 0], names


def load_cifar100(root=None, split: str = "train", label_type: str = "fine", download: bool = True):
    """Load CIFAR-100 (Krizhevsky, 2009): 50,000 train / 10,000 test.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Data directory; see :func:`load_cifar10`.
    split : {"train", "test"}
    label_type : {"fine", "coarse"}
        The 100 classes or the 20 superclasses.
    download : bool
        Download the binary archive when neither layout is found.

    Returns
    -------
    images : numpy.ndarray, uint8, shape (N, 3, 32, 32)
    labels : numpy.ndarray, int64, shape (N,)
        Fine (0-99) or coarse (0-19) class indices.
    class_names : list of str

    Raises
    ------
    FileNotFoundError, minicon.data.DataFileError, ValueError
        As :func:`load_cifar10`; ValueError also for an unknown ``label_type``.
    """
    if label_type not in ("fine", "coarse"):
        raise ValueError(f"label_type must be 'fine' or 'coarse', got {label_type!r}")
    layout, folder = _locate("cifar100", split, data_dir(root), download)
    images, labels = _read_split("cifar100", layout, folder, split)
    column, count = (1, 100) if label_type == "fine" else (0, 20)
    if layout.binary:
        names = read_names(folder / f"{label_type}_label_names.txt", count=count)
    else:
        names = names_from_pickle(folder / "meta", key=f"{label_type}_label_names".encode(),
                                  count=count)
    return images, labels[:, column], names


def _layout(name: str, layout: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(LAYOUTS)}")
    if layout not in LAYOUTS[name]:
        raise ValueError(f"layout must be 'binary' or 'python', got {layout!r}")
    return LAYOUTS[name][layout]


def _locate(name: str, split: str, directory: Path, download: bool):
    """The layout to read ``split`` from (binary first), downloading if allowed."""
    if str(directory) in SPLITS and not directory.exists():  # load_cifar10("test"): root, not split
        raise ValueError(f"root {str(directory)!r} names a split, not a folder: pass split={str(directory)!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    missing = {}
    for kind in ("binary", "python"):
        layout = LAYOUTS[name][kind]
        missing[kind] = [p for p in layout.needed(split) if not (directory / p).is_file()]
        if not missing[kind]:
            return layout, directory / layout.folder
    if download:
        return LAYOUTS[name]["binary"], download_cifar(name, directory)
    listed = "; ".join(f"{kind}: {', '.join(paths)}" for kind, paths in missing.items())
    raise FileNotFoundError(
        f"{_TITLES[name]} {split} split not found in {directory} (missing {listed}). "
        f"Pass download=True, run `minicon download {name}`, or point MINICON_DATA_DIR "
        "at a directory that holds it"
    )


def _read_split(name: str, layout: Layout, folder: Path, split: str):
    """Images (N, 3, 32, 32) uint8 and labels (N, label columns) int64 of one split."""
    classes = layout.classes
    parts = []
    for file in layout.data_files[split]:
        if layout.binary:
            parts.append(read_bin_records(folder / file, label_bytes=len(classes),
                                          num_records=layout.records[split], num_classes=classes))
        else:
            parts.append(read_pickle_batch(folder / file, label_keys=_LABEL_KEYS[name],
                                           num_records=layout.records[split], num_classes=classes))
    return (numpy.concatenate([p[0] for p in parts]), numpy.concatenate([p[1] for p in parts]))
