"""The run folder's files on disk: its lock, its JSON-lines logs, leftovers of killed writes.

A run folder (see :mod:`minicon.train.trainer`) is written by one process
at a time: :func:`lock_run_dir` takes an exclusive OS lock on ``RUN/.lock``
for the Trainer's life, and :func:`check_run_dir` refuses a folder the run
must not write to. Its logs are appended one line per record, so a crash
mid-write can leave a torn last line; :func:`read_jsonl` drops it and names
the file and line of any other damage, and :func:`truncate_logs` cuts the
logs back to a checkpoint's step on resume.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..files import TEMP_PREFIX, write_atomic
from .config import ConfigError, TrainConfig

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


def check_run_dir(run_dir, config: TrainConfig, resume: bool) -> None:
    """Refuse a run folder that ``config`` (``resume`` or not) must not write to; read-only.

    The data folder may differ (data moved between start and resume is the
    same run). A folder whose config.json has no checkpoint beside it holds
    nothing to resume, so a fresh start may replace it.

    Raises
    ------
    ConfigError
        One line naming the folder: run files without a config.json, a
        different run, this run without ``resume``, or nothing to resume.
    """
    path = Path(run_dir) / "config.json"
    present = run_files(run_dir)
    if not path.exists():
        if present:
            raise ConfigError(f"{run_dir} holds {', '.join(present)} but no config.json: restore "
                              "the run's config.json to resume it, or choose another --out")
        if resume:
            raise ConfigError(f"--resume: {run_dir} holds no run to resume")
        return
    previous = TrainConfig.from_run(path)
    differ = [name for name in previous.differences(config) if name != "data_dir"]
    if not resume and not any(name in present for name in CHECKPOINTS):
        return
    if differ:
        raise ConfigError(f"{run_dir} already holds a different run (differs in {', '.join(differ)}); "
                          "choose another --out")
    if not resume:
        raise ConfigError(f"{run_dir} already holds this run; pass --resume to continue it or choose another --out")
    if "last.npz" not in present:
        raise ConfigError(f"--resume: {run_dir} has no checkpoint (last.npz) yet: the run stopped "
                          "before the end of its first epoch; start it afresh without --resume")


def truncate_logs(run_dir, step: int) -> None:
    """Keep the log records up to ``step`` (the checkpoint's): a killed run logged steps it lost, maybe a torn line.

    Each log is rewritten atomically, so a crash here loses nothing either.

    Raises
    ------
    ValueError
        For a damaged line (see :func:`read_jsonl`) or a record without an
        integer ``step``; names the file.
    """
    for name in LOGS:
        path = Path(run_dir) / name
        if not path.exists():
            continue
        kept = []
        for number, record in enumerate(read_jsonl(path), start=1):
            if not isinstance(record.get("step"), int):
                raise ValueError(f"{path}: record {number} has no integer step")
            if record["step"] <= step:
                kept.append(json.dumps(record) + "\n")
        write_atomic(path, lambda f: f.write("".join(kept).encode()))
