"""Datasets and batches: CIFAR-10/100 loaders, verified downloads, a prefetching loader.

Images are returned on the host as uint8 NCHW NumPy arrays; the augmentation
pipeline (:mod:`minicon.augment`, starting with ``ToFloat``) moves each batch
to the current backend.

The data directory is the ``root`` argument, else ``$MINICON_DATA_DIR``,
else the platform cache (``~/.cache/minicon`` on Linux).
"""

from .cifar import LAYOUTS, download_cifar, load_cifar10, load_cifar100
from .download import Archive, data_dir, extract_members, fetch_archive
from .loader import DataLoader
from .readers import DataFileError
from .safe_pickle import RestrictedUnpickler, load_restricted

__all__ = [
    "load_cifar10", "load_cifar100", "download_cifar", "LAYOUTS", "DataLoader", "DataFileError",
    "data_dir", "Archive", "fetch_archive", "extract_members", "RestrictedUnpickler",
    "load_restricted",
]
