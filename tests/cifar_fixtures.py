"""Tiny CIFAR files written in both official layouts, for the loader and download tests.

``shrink_layouts`` makes the loaders expect a few records per file instead of
10,000, so the fixtures stay a few kilobytes. The python-layout pickles are
written opcode by opcode the way Python 2's cPickle wrote the real files
(protocol 2, byte strings as ``str``, arrays through
``numpy.core.multiarray._reconstruct``), since Python 3 cannot produce that form.
"""

import dataclasses
import io
import struct
import tarfile

import numpy as np

from minicon.data import LAYOUTS

RECORDS = {"cifar10": {"train": 3, "test": 4}, "cifar100": {"train": 6, "test": 5}}
CLASS_NAMES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "coarse": [f"super{i}" for i in range(20)],
    "fine": [f"class{i}" for i in range(100)],
}


def shrink_layouts(monkeypatch):
    """Make every layout expect the small record counts of ``RECORDS``."""
    for name, layouts in LAYOUTS.items():
        for kind, layout in layouts.items():
            monkeypatch.setitem(layouts, kind, dataclasses.replace(layout, records=RECORDS[name]))


def random_split(name, split, seed=0):
    """(images uint8 (N, 3, 32, 32), labels int64 (N, label columns)) for a whole split."""
    files = len(LAYOUTS[name]["binary"].data_files[split])
    n = files * RECORDS[name][split]
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    classes = (10,) if name == "cifar10" else (20, 100)
    labels = np.stack([rng.integers(0, c, n) for c in classes], axis=1)
    return images, labels


def write_binary(root, name, seed=0):
    """Write both splits in the binary layout; returns {split: (images, labels)}."""
    layout = LAYOUTS[name]["binary"]
    folder = root / layout.folder
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for split in ("train", "test"):
        images, labels = data[split] = random_split(name, split, seed)
        per_file = RECORDS[name][split]
        for i, file in enumerate(layout.data_files[split]):
            part = slice(i * per_file, (i + 1) * per_file)
            records = np.concatenate([labels[part].astype(np.uint8), images[part].reshape(per_file, -1)], 1)
            (folder / file).write_bytes(records.tobytes())
    if name == "cifar10":
        (folder / "batches.meta.txt").write_text("\n".join(CLASS_NAMES["cifar10"]) + "\n\n")
    else:
        for kind in ("coarse", "fine"):
            (folder / f"{kind}_label_names.txt").write_text("\n".join(CLASS_NAMES[kind]) + "\n")
    return data


def write_python(root, name, seed=0):
    """Write both splits in the python layout (Python 2 style pickles); returns {split: data}."""
    layout = LAYOUTS[name]["python"]
    folder = root / layout.folder
    folder.mkdir(parents=True, exist_ok=True)
    keys = [b"labels"] if name == "cifar10" else [b"coarse_labels", b"fine_labels"]
    data = {}
    for split in ("train", "test"):
        images, labels = data[split] = random_split(name, split, seed)
        per_file = RECORDS[name][split]
        for i, file in enumerate(layout.data_files[split]):
            part = slice(i * per_file, (i + 1) * per_file)
            batch = {b"batch_label": f"{split} batch {i}".encode(),
                     b"data": images[part].reshape(per_file, -1),
                     b"filenames": [f"img{j}.png".encode() for j in range(per_file)]}
            batch.update({k: labels[part, c].tolist() for c, k in enumerate(keys)})
            (folder / file).write_bytes(py2_pickle(batch))
    if name == "cifar10":
        meta = {b"label_names": [n.encode() for n in CLASS_NAMES["cifar10"]], b"num_vis": 3072}
        (folder / "batches.meta").write_bytes(py2_pickle(meta))
    else:
        meta = {f"{k}_label_names".encode(): [n.encode() for n in CLASS_NAMES[k]] for k in ("coarse", "fine")}
        (folder / "meta").write_bytes(py2_pickle(meta))
    return data


def py2_pickle(obj) -> bytes:
    """Protocol-2 pickle of dicts, lists, bytes, ints and 2-D uint8 arrays, as Python 2 wrote them."""
    return b"\x80\x02" + _emit(obj) + b"."


def _emit(obj) -> bytes:
    if isinstance(obj, bytes):  # a Python 2 str: SHORT_BINSTRING / BINSTRING
        return (b"U" + bytes([len(obj)]) if len(obj) < 256 else b"T" + struct.pack("<i", len(obj))) + obj
    if isinstance(obj, int):
        return b"J" + struct.pack("<i", obj)
    if isinstance(obj, list):
        return b"](" + b"".join(_emit(o) for o in obj) + b"e"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_emit(k) + _emit(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, np.ndarray) and obj.dtype == np.uint8 and obj.ndim == 2:
        minus_one = b"J" + struct.pack("<i", -1)
        dtype = (b"cnumpy\ndtype\n" + _emit(b"u1") + b"K\x00K\x01\x87R"  # dtype("u1", 0, 1)
                 + b"(K\x03" + _emit(b"|") + b"NNN" + minus_one + minus_one + b"K\x00tb")  # __setstate__
        state = (b"(K\x01" + _emit(obj.shape[0]) + _emit(obj.shape[1]) + b"\x86" + dtype + b"\x89"
                 + _emit(obj.tobytes()) + b"tb")  # (version, shape, dtype, fortran=False, raw bytes)
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _emit(0) + b"\x85"
                + _emit(b"b") + b"\x87R" + state)
    raise TypeError(type(obj))


def tar_gz(members: dict) -> bytes:
    """A .tar.gz holding ``{name: bytes}`` as regular files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def archive_of(folder_root, layout) -> bytes:
    """The .tar.gz of an extracted layout under ``folder_root`` (plus a stray readme)."""
    members = {m: (folder_root / m).read_bytes() for m in layout.members()}
    members[f"{layout.folder}/readme.html"] = b"<html>not extracted</html>"
    return tar_gz(members)


def real_cifar10_dir():
    """The folder holding all the real CIFAR-10 binary files, or None.

    Looks in ``$MINICON_DATA_DIR``, then ``shared/data`` beside the repository
    (or beside an ancestor of it), then minicon's download cache.
    """
    import os
    from pathlib import Path

    from minicon.data import data_dir

    candidates = [Path(os.environ["MINICON_DATA_DIR"])] if os.environ.get("MINICON_DATA_DIR") else []
    candidates += [parent / "shared" / "data" for parent in Path(__file__).resolve().parents[1].parents]
    candidates.append(data_dir())
    needed = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin", "batches.meta.txt"]
    for candidate in candidates:  # all of it: a partial copy (as a GPU machine may carry) is not "here"
        if all((candidate / "cifar-10-batches-bin" / name).is_file() for name in needed):
            return candidate
    return None
