"""The backend switch, array helpers and seeding."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest

import minicon
from minicon import backend


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        minicon.set_backend("jax")
    assert minicon.get_backend() == "numpy"


def test_cupy_request_without_cupy_says_how_to_install():
    ok, _ = backend.cupy_available()
    if ok:
        pytest.skip("CuPy and a GPU are available here, so the error cannot be provoked")
    with pytest.raises(RuntimeError, match=r"cupy-cuda12x|no GPU"):
        minicon.set_backend("cupy")
    assert minicon.get_backend() == "numpy"


def _fake_cupy(monkeypatch, arange):
    """A stand-in ``cupy`` module with one visible GPU whose ``arange`` is ``arange``."""
    fake = types.ModuleType("cupy")
    fake.__version__ = "14.0-fake"
    fake.float32 = np.float32
    fake.arange = arange
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(backend._state, "cupy_ran", False)


def test_a_gpu_without_the_cuda_toolkit_fails_at_selection_with_the_fix(monkeypatch):
    def arange(*args, **kwargs):
        raise OSError("libnvrtc.so.12: cannot open shared object file")

    _fake_cupy(monkeypatch, arange)
    with pytest.raises(RuntimeError, match=r"cannot run a kernel .*libnvrtc.*\[ctk\]"):
        minicon.set_backend("cupy")
    assert minicon.get_backend() == "numpy"
    ok, why = backend.cupy_available()
    assert not ok and "cuda12" in why


def test_probe_kernels_run_once_and_check_their_values(monkeypatch):
    calls = []

    def arange(*args, **kwargs):
        calls.append(args)
        return np.arange(*args, **kwargs)

    _fake_cupy(monkeypatch, arange)
    try:
        assert minicon.set_backend("cupy") is sys.modules["cupy"]
        minicon.set_backend("cupy")
    finally:
        minicon.set_backend("numpy")
    assert calls == [(4,)]  # probed at the first selection only

    _fake_cupy(monkeypatch, lambda *a, **k: np.zeros(4, dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"got \[4.0, 0.0\], not \[16.0, 11.0\]"):
        minicon.set_backend("cupy")
    assert minicon.get_backend() == "numpy"


class _FakeCupyArray:
    """Looks like a cupy.ndarray to ``array_module`` without needing CuPy."""

    __module__ = "cupy._core.core"
    dtype = np.dtype("float32")
    shape = (2,)


def test_mixing_numpy_and_cupy_arrays_names_the_op():
    with pytest.raises(TypeError, match="matmul: inputs mix NumPy and CuPy"):
        backend.array_module(np.zeros(2), _FakeCupyArray(), op="matmul")


def test_default_dtypes_follow_pytorch():
    assert minicon.Tensor([1.0, 2.0]).dtype == np.float32
    assert minicon.Tensor(3.5).dtype == np.float32
    assert minicon.Tensor([1, 2]).dtype == np.int64
    assert minicon.Tensor([True]).dtype == np.bool_
    assert minicon.Tensor(np.zeros(2, np.float64)).dtype == np.float64


def test_set_default_dtype_float64_and_back():
    minicon.set_default_dtype("float64")
    try:
        assert minicon.Tensor([1.0]).dtype == np.float64
    finally:
        minicon.set_default_dtype("float32")
    with pytest.raises(ValueError, match="float32 or float64"):
        minicon.set_default_dtype("int32")


def test_manual_seed_makes_host_draws_repeat():
    minicon.manual_seed(123)
    first = backend.host_rng().standard_normal(5)
    minicon.manual_seed(123)
    np.testing.assert_array_equal(first, backend.host_rng().standard_normal(5))
    minicon.manual_seed(124)
    assert not np.array_equal(first, backend.host_rng().standard_normal(5))


def test_to_host_and_back(xp):
    a = xp.arange(6, dtype=xp.float32).reshape(2, 3)
    host = minicon.to_host(a)
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, np.arange(6).reshape(2, 3))
    again = minicon.to_backend(host)
    assert type(again) is type(a)


def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        backend.broadcast_shapes("add", (2, 3), (4,))


def test_environment_variable_chooses_backend(tmp_path):
    import subprocess
    import sys

    code = "import minicon; print(minicon.get_backend())"
    env = {"MINICON_BACKEND": "numpy", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"
    env["MINICON_BACKEND"] = "tpu"  # unusable: import still works, says why, and stays on NumPy
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert bad.stdout.strip() == "numpy"
    assert "MINICON_BACKEND=tpu cannot be used" in bad.stderr and "unknown backend 'tpu'" in bad.stderr
    ok, _ = backend.cupy_available()
    if not ok:
        env["MINICON_BACKEND"] = "cupy"
        out = subprocess.run([sys.executable, "-m", "minicon", "info"], env=env, capture_output=True,
                             text=True, check=True)
        assert "MINICON_BACKEND=cupy cannot be used" in out.stderr and "backend numpy" in out.stdout


def test_every_test_starts_on_numpy_even_after_one_that_switched(pytester):
    # the shared conftest, run on two tests: the first leaves the backend switched (as a
    # failing CuPy test would), the second must still start on NumPy, seeded
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(
        """
        import minicon
        from minicon import backend

        def test_switches_and_fails():
            backend._state["name"] = "cupy"
            assert False

        def test_starts_on_numpy():
            assert minicon.get_backend() == "numpy"
            assert backend._state["xp"].__name__ == "numpy"
            first = backend.host_rng().random()
            minicon.manual_seed(0)
            assert first == backend.host_rng().random()
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1, failed=1)
