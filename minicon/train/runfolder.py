"""The run folder's files on disk: its lock, its JSON-lines logs, leftovers of killed writes.

A run folder (see :mod:`minicon.train.trainer`) is written by one process
at a time: :func:`lock_run_dir` takes an exclusive OS lock on ``RUN/.lock``
for the Trainer's life. Its logs are appended one line per record, so a
crash mid-write can leave a torn last line; :func:`read_jsonl` drops it
and names the file and line of any other damage.
"""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import TEMP_PREFIX
from .config import ConfigError

LOGS = ("steps.jsonl", "epochs.jsonl")
CHECKPOINTS = ("last.npz", "best.npz")


def read_jsonl(path, *, drop_torn_tail: bool = True) -> list:
    """The records of a JSON-lines log, one dict per line.

    Parameters
    ----------
    path : str or Path
        A ``steps.jsonl`` or ``epochs.jsonl``; a missing file has no records.
    drop_torn_tail : bool
        Drop a last line that neither parses nor ends in a newline: the
        write a crash (kill -9, full disk) cut short.

    Returns
    -------
    list of dict

    Raises
    ------
    ValueError
        For any other line that is not a JSON object (a torn last line too,
        when ``drop_torn_tail`` is False); one line naming the file and the
        line number.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(errors="replace")  # a torn UTF-8 sequence is a torn line, not a decode error
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"a {type(record).__name__}, not an object")
        except ValueError as exc:
            torn = number == len(lines)  # the text after the last newline
            if torn and drop_torn_tail:
                break
            what = "torn (cut short by a crash?)" if torn else "not a JSON object"
            raise ValueError(f"{path}, line {number}: {what}: {exc}") from None
        records.append(record)
    return records


def lock_run_dir(run_dir):
    """Hold an exclusive lock on ``run_dir/.lock``; returns the open file (close it to release).

    ``fcntl.flock`` locks belong to the open file, so the OS releases them
    when the process dies, even by kill -9: a stale lock cannot block a resume.

    Raises
    ------
    ConfigError
        If another process (or another Trainer of this one) holds the lock,
        or the platform has no ``fcntl`` (Windows); one line naming the folder.
    """
    try:
        import fcntl
    except ImportError:
        raise ConfigError(f"{run_dir}: locking a run folder needs fcntl.flock (Linux, macOS); "
                          "this platform has none") from None
    handle = open(Path(run_dir) / ".lock", "a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(f"{run_dir} is in use by another minicon train (it holds {run_dir}/.lock); "
                          "wait for it to finish or choose another --out") from None
    return handle


def remove_orphan_temps(run_dir) -> list:
    """Delete the temporary files a killed checkpoint or log write left in ``run_dir``; returns their names.

    Call it only while holding :func:`lock_run_dir`: a running writer's temp
    file would look the same.
    """
    orphans = sorted(p for p in Path(run_dir).glob(TEMP_PREFIX + "*") if p.is_file())
    for path in orphans:
        path.unlink()
    return [p.name for p in orphans]


def run_files(run_dir) -> list:
    """Names of the logs and checkpoints present in ``run_dir`` (what a run's config describes)."""
    return [name for name in LOGS + CHECKPOINTS if (Path(run_dir) / name).exists()]
