"""Checkpoints round-trip nested state, are written atomically and never unpickle."""

import os
import pickle

import numpy as np
import pytest

from minicon.train import load_checkpoint, save_checkpoint


def test_round_trip_of_nested_state(tmp_path, xp):
    state = {
        "model": {"encoder.0.weight": xp.arange(6, dtype=xp.float32).reshape(2, 3), "bn.running_var": xp.ones(3)},
        "optimizer": {"step": 7, "lr": 0.1, "momentum": [xp.zeros(2), xp.full(3, 2.0)]},
        "rng": {"bit_generator": "PCG64", "state": {"state": 2**100 + 3, "inc": 5}},
        "note": "hello",
    }
    path = tmp_path / "ckpt.npz"
    save_checkpoint(state, path)
    back = load_checkpoint(path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # permissions of an ordinary file
    assert back["optimizer"]["step"] == 7 and back["note"] == "hello"
    assert back["rng"]["state"]["state"] == 2**100 + 3
    w = back["model"]["encoder.0.weight"]
    assert isinstance(w, np.ndarray) and w.dtype == np.float32
    np.testing.assert_array_equal(w, np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(back["optimizer"]["momentum"][1], [2.0, 2.0, 2.0])


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.npz"
    save_checkpoint({"step": 1, "w": np.ones(2)}, path)
    with pytest.raises(TypeError):
        save_checkpoint({"step": 2, "bad": object()}, path)  # not JSON-serializable
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]  # no temp file left behind


def test_bad_keys_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="without '/'"):
        save_checkpoint({"a/b": 1}, tmp_path / "x.npz")


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint({"w": np.ones(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"ckpt.npz: not a readable minicon checkpoint \({len(data) // 2} bytes\)"):
        load_checkpoint(path)


def test_pickled_payload_is_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.npz"
    np.savez(path, __json__=np.frombuffer(b"{}", np.uint8), w=np.array([Payload()], dtype=object))
    with pytest.raises(ValueError, match="evil.npz"):
        load_checkpoint(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError, match="evil.npz"):
        load_checkpoint(path)
    assert not marker.exists()
