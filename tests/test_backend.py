"""The backend switch, array helpers and seeding."""

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
