"""Where an index's images come from: a CIFAR split by name, or a folder of PNG/JPEG files.

Images come back as the data loaders give them: uint8, ``(N, 3, 32, 32)``,
RGB, on the host. Files are decoded with Pillow and resized to 32×32 (the
whole picture, aspect ratio not kept, bicubic), the size the encoders were
trained at.
"""

from __future__ import annotations

from pathlib import Path

import numpy

CIFAR_SOURCES = ("cifar10:train", "cifar10:test", "cifar100:train", "cifar100:test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SIDE = 32


def read_image(path) -> numpy.ndarray:
    """One image file as uint8 ``(3, 32, 32)``, RGB (grey and RGBA are converted; alpha dropped).

    Raises
    ------
    ValueError
        If the file cannot be opened or decoded as an image; the message
        names the file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image = image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BICUBIC)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:  # truncated or garbled files
        raise ValueError(f"{path}: cannot be decoded as an image ({exc})") from None
    return numpy.asarray(image, dtype=numpy.uint8).transpose(2, 0, 1).copy()


def folder_files(folder) -> list:
    """The PNG/JPEG files under ``folder`` (recursively), sorted by their path relative to it."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_source(source: str, data_dir=None):
    """The images named by ``source``, their labels, class names and one source string per row.

    Parameters
    ----------
    source : str
        ``"cifar10:test"``, ``"cifar10:train"``, ``"cifar100:test"`` or
        ``"cifar100:train"`` (fine labels), read from ``data_dir`` (else
        ``MINICON_DATA_DIR``, never downloaded); or a folder of PNG/JPEG
        files, searched recursively.
    data_dir : str, optional

    Returns
    -------
    images : numpy.ndarray, uint8, shape (N, 3, 32, 32)
    labels : numpy.ndarray, int64, shape (N,)
        The dataset's labels; -1 for files in a folder (no labels).
    class_names : list of str
        Empty for a folder.
    rows : list of str, length N
        ``"cifar10:test:17"`` (split and position) or the file's path
        relative to the folder.

    Raises
    ------
    ValueError
        For a source that is neither a CIFAR split nor an existing folder,
        a folder without images, or a file that cannot be decoded (named).
    """
    from ..data import load_cifar10, load_cifar100

    if source in CIFAR_SOURCES:
        name, split = source.split(":")
        if name == "cifar10":
            images, labels, names = load_cifar10(data_dir, split, download=False)
        else:
            images, labels, names = load_cifar100(data_dir, split, download=False)
        rows = [f"{source}:{i}" for i in range(len(images))]
        return images, labels.astype(numpy.int64), list(names), rows
    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(f"--images {source}: neither a folder nor one of {', '.join(CIFAR_SOURCES)}")
    files = folder_files(folder)
    if not files:
        raise ValueError(f"--images {source}: the folder holds no {'/'.join(IMAGE_SUFFIXES)} files")
    images = numpy.stack([read_image(folder / name) for name in files])
    return images, numpy.full(len(files), -1, numpy.int64), [], files


def images_of_rows(source: str, rows: list, data_dir=None) -> numpy.ndarray:
    """The pictures behind some rows of an index built from ``source`` (uint8 (len(rows), 3, 32, 32)).

    ``rows`` are the index's row strings (see :func:`load_source`); a CIFAR
    split is read once, files are read one by one.
    """
    if source in CIFAR_SOURCES:
        from ..data import load_cifar10, load_cifar100

        name, split = source.split(":")
        loader = load_cifar10 if name == "cifar10" else load_cifar100
        images = loader(data_dir, split, download=False)[0]
        return images[[int(r.rsplit(":", 1)[1]) for r in rows]]
    return numpy.stack([read_image(Path(source) / r) for r in rows])
