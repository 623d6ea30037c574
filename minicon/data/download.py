"""Where data lives, and fetching an archive safely: verified download, safe extraction.

The download goes through pooch: it streams into a temporary file beside the
target, checks the pinned MD5, and only then moves the file into place, with
retries and a tqdm progress bar. Extraction writes only the members a dataset
expects, only as regular files, only where no file of that name exists yet,
so a crafted archive cannot write outside the data directory and nothing the
user already has is replaced or deleted.

References
----------
pooch, "Retrieving a single data file" and ``pooch.create``
(https://www.fatiando.org/pooch/latest/).
Python ``tarfile`` documentation, "Extraction filters" (why extracting
arbitrary members is unsafe: absolute paths, ``..``, links, devices).
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..files import file_digest, write_atomic

ENV_DATA_DIR = "MINICON_DATA_DIR"


@dataclass(frozen=True)
class Archive:
    """One downloadable archive: where it is and what it must hash to.

    Attributes
    ----------
    url : str
        Full URL of the archive.
    md5 : str
        Hex MD5 of the whole archive, as published by its authors.
    size : int
        Size of the archive in bytes (used in error messages only).
    """

    url: str
    md5: str
    size: int

    @property
    def filename(self) -> str:
        """The archive's file name, the last part of its URL."""
        return self.url.rsplit("/", 1)[-1]


def data_dir(root=None) -> Path:
    """The directory datasets are read from and downloaded into.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Used as is when given.

    Returns
    -------
    pathlib.Path
        ``root``; else ``$MINICON_DATA_DIR`` (a relative path is taken from
        the current directory, so ``MINICON_DATA_DIR=../shared/data`` works);
        else the platform's cache directory for ``minicon``
        (``~/.cache/minicon`` on Linux, via ``pooch.os_cache``). It is not
        created here.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_DATA_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("minicon"))


def md5sum(path, chunk_bytes: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in chunks of ``chunk_bytes`` bytes."""
    return file_digest(path, "md5", chunk_bytes)


def fetch_archive(archive: Archive, directory, *, retries: int = 3,
                  progressbar: bool = True, timeout: float = 60.0) -> Path:
    """Download ``archive`` into ``directory`` unless a verified copy is there.

    Parameters
    ----------
    archive : Archive
        URL and pinned MD5.
    directory : str or os.PathLike
        Created if missing. The archive is saved as ``archive.filename``.
    retries : int
        Extra attempts after a failed or corrupt transfer (pooch waits 1 s,
        2 s, ... between them).
    progressbar : bool
        Show a tqdm progress bar on stderr.
    timeout : float
        Seconds to wait for the server before an attempt fails.

    Returns
    -------
    pathlib.Path
        The verified archive.

    Raises
    ------
    ValueError
        If a file of that name already exists with another MD5 (it is left
        untouched: the message names it, its size and the expected size and
        MD5), or if every download attempt gave the wrong MD5.
    requests.exceptions.RequestException
        If every attempt failed to transfer (no connection, interrupted).
    """
    import pooch

    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    directory = Path(directory)
    target = directory / archive.filename
    if target.exists():
        found = md5sum(target)
        if found != archive.md5:
            raise ValueError(
                f"{target} exists but is not the expected archive: {target.stat().st_size:,} "
                f"bytes with MD5 {found}, expected {archive.size:,} bytes with MD5 "
                f"{archive.md5}. It was left as is; move or delete it to download again"
            )
        return target
    # pooch streams to a temporary file beside the target, checks the hash, then moves it
    fetcher = pooch.create(
        path=directory, base_url="", registry={archive.filename: f"md5:{archive.md5}"},
        urls={archive.filename: archive.url}, retry_if_failed=retries, allow_updates=False,
    )
    downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=timeout)
    return Path(fetcher.fetch(archive.filename, downloader=downloader))


def extract_members(archive_path, directory, members: dict) -> list:
    """Extract the expected regular-file members of a ``.tar.gz``; nothing else.

    Parameters
    ----------
    archive_path : str or os.PathLike
        The (already verified) archive.
    directory : str or os.PathLike
        Where the members go, keeping their relative paths.
    members : dict of str to int or None
        Expected member names (POSIX relative paths such as
        ``"cifar-10-batches-bin/test_batch.bin"``) and their sizes in bytes,
        ``None`` where the size is not fixed. Other members are ignored.

    Returns
    -------
    list of pathlib.Path
        The files written. A member whose target file already exists is
        skipped (the user's file is kept; the reader checks it).

    Raises
    ------
    ValueError
        If an expected member is missing, is not a regular file (a link,
        a device, a directory), or has the wrong size; the message names the
        archive and the member. Files written before the error stay valid.
    """
    archive_path, directory = Path(archive_path), Path(directory)
    # targets come from our own member names, never from the archive: no path traversal
    targets = {name: directory.joinpath(*name.split("/")) for name in members}
    written, seen = [], set()
    with tarfile.open(archive_path, "r:gz") as tar:
        for info in tar:
            if info.name not in members or info.name in seen:
                continue
            seen.add(info.name)
            if not info.isreg():
                raise ValueError(f"{archive_path}: member {info.name} is not a regular file")
            expected = members[info.name]
            if expected is not None and info.size != expected:
                raise ValueError(
                    f"{archive_path}: member {info.name} is {info.size:,} bytes, "
                    f"expected {expected:,}"
                )
            target = targets[info.name]
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            member = tar.extractfile(info)
            write_atomic(target, lambda f: shutil.copyfileobj(member, f, 1 << 20))
            written.append(target)
    missing = sorted(set(members) - seen)
    if missing:
        raise ValueError(f"{archive_path}: expected members missing: {', '.join(missing)}")
    return written
