"""Checkpoints: nested state written atomically as one ``.npz``, with no pickle.

A checkpoint is a nested dict whose leaves are arrays (NumPy or CuPy) or
JSON values (numbers, strings, lists, dicts of those). Arrays go into the
``.npz`` under their path joined by ``/`` (``model/encoder.0.weight``);
everything else goes into one JSON document stored as bytes under
``__json__``. Loading uses ``allow_pickle=False``, so a crafted file can at
worst fail to load, never run code.

Writes are atomic (:func:`minicon.files.write_atomic`): the archive is written to a
temporary file in the same folder, flushed to disk, then renamed over the
target, so a crash, kill -9 or Ctrl-C mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy

from .. import backend
from ..files import write_atomic

_JSON_KEY = "__json__"
_ARRAY_MARK = "__array__"


def _split(state: dict, prefix: str, arrays: dict):
    """Move array leaves into ``arrays``; return the JSON-able rest."""
    if isinstance(state, dict):
        out = {}
        for key, value in state.items():
            if isinstance(key, int) and not isinstance(key, bool):
                key = str(key)  # as JSON does: optimizer state is keyed by parameter index
            if not isinstance(key, str) or "/" in key:
                raise ValueError(f"checkpoint keys must be strings without '/', got {key!r}")
            out[key] = _split(value, f"{prefix}{key}/", arrays)
        return out
    if hasattr(state, "shape") and hasattr(state, "dtype"):
        name = prefix[:-1]
        arrays[name] = backend.to_host(state)
        return {_ARRAY_MARK: name}
    if isinstance(state, (list, tuple)):
        return [_split(v, f"{prefix}{i}/", arrays) for i, v in enumerate(state)]
    return state


def _join(meta, arrays):
    if isinstance(meta, dict):
        if set(meta) == {_ARRAY_MARK}:
            return arrays[meta[_ARRAY_MARK]]
        return {k: _join(v, arrays) for k, v in meta.items()}
    if isinstance(meta, list):
        return [_join(v, arrays) for v in meta]
    return meta


def save_checkpoint(state: dict, path) -> None:
    """Write ``state`` to ``path`` atomically (temp file + fsync + rename).

    Parameters
    ----------
    state : dict
        Nested dict; leaves are arrays of either backend (saved on the host)
        or JSON values. Keys are strings without ``/``, or ints, which come
        back as strings (as with JSON).
    path : str or os.PathLike
        Target file; its folder must exist.

    Raises
    ------
    ValueError
        For a key that is not a string or contains ``/``.
    TypeError
        For a leaf that is neither an array nor JSON-serializable.
    """
    arrays: dict = {}
    meta = _split(state, "", arrays)
    document = numpy.frombuffer(json.dumps(meta).encode(), dtype=numpy.uint8)
    write_atomic(path, lambda f: numpy.savez(f, **arrays, **{_JSON_KEY: document}))


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; arrays come back as host NumPy.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable minicon checkpoint (truncated, not a
        zip archive, no ``__json__`` entry, or pickled objects inside); the
        message names the file and its size.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        with numpy.load(io.BytesIO(raw), allow_pickle=False) as archive:
            if _JSON_KEY not in archive.files:
                raise ValueError(f"no {_JSON_KEY} entry")
            arrays = {name: archive[name] for name in archive.files if name != _JSON_KEY}
            meta = json.loads(archive[_JSON_KEY].tobytes().decode())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable minicon checkpoint ({len(raw)} bytes): {exc}") from None
    return _join(meta, arrays)
