"""Files written so that a crash never leaves a torn one: the one atomic writer every module uses.

Checkpoints, run configs, logs, evaluation reports and extracted dataset
files all go through :func:`write_atomic`, so each is either the old file or
the new one after kill -9 or a full disk. :func:`file_digest` hashes a file
(downloads' MD5 check, an index's record of the checkpoint it came from).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

TEMP_PREFIX = ".tmp-"  # of write_atomic's temporary files, which a run folder deletes when next opened


def write_atomic(path, write) -> None:
    """Replace ``path`` by what ``write(binary_file)`` writes: temp file in the same folder, fsync, rename.

    A crash, kill -9 or full disk at any point leaves either the old file or
    the new one, never a torn one; on an exception the temp file is removed
    (a kill leaves it as ``.tmp-*``, which the next run of that folder deletes).

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its folder must exist.
    write : callable
        Called once with the open temp file (binary mode).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the file private, unlike other files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_writable(path):
    """Why ``write_atomic(path, ...)`` would fail, or None: ask before minutes of work, not after.

    Returns a short reason ("it is not a file", "its folder ... does not
    exist", the OS's message) for a path that is a folder, lies in a missing
    folder, or whose folder refuses a temporary file.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        return "it is not a file"
    if not path.parent.is_dir():
        return f"its folder {path.parent} does not exist"
    try:
        with tempfile.TemporaryFile(dir=path.parent, prefix=TEMP_PREFIX):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def file_digest(path, algorithm: str = "sha256", chunk_bytes: int = 1 << 20) -> str:
    """Hex digest of a file's bytes by ``hashlib``'s ``algorithm``, read ``chunk_bytes`` at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()
