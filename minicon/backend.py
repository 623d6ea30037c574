"""The array backend: NumPy on the CPU or CuPy on an NVIDIA GPU.

minicon follows CuPy's CPU/GPU-agnostic pattern: ops never import ``numpy``
or ``cupy`` themselves. New arrays are made with the module returned by
:func:`get_xp` (the backend chosen at run time), and an op working on existing
arrays uses :func:`array_module` of those arrays, so the same code runs on
either library. This file is the only one in the engine that names them.

The backend is chosen by ``MINICON_BACKEND=numpy|cupy`` at import time (a
value that cannot be used warns and leaves NumPy) or by :func:`set_backend`
later, which raises instead. Arrays already made stay where they are; use
:func:`to_backend` (or ``Module.to``) to move them.

References
----------
CuPy User Guide, "Writing CPU/GPU agnostic code"
(https://docs.cupy.dev/en/stable/user_guide/basic.html).
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

import numpy

BACKENDS = ("numpy", "cupy")

_state = {"name": "numpy", "xp": numpy, "default_dtype": numpy.float32, "cupy_ran": False}
_host_rng = numpy.random.default_rng()


def _import_cupy() -> ModuleType:
    """Import CuPy and check that a GPU is visible.

    Raises
    ------
    RuntimeError
        If CuPy is not installed (says which wheel to install), if it is
        installed but no CUDA device can be used, or if the first kernels
        cannot run (the CUDA toolkit is missing; says how to install it).
    """
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(
            "the cupy backend needs CuPy, which is not installed. Install the wheel "
            "that matches your CUDA driver: `pip install -e '.[cuda12]'` "
            "(cupy-cuda12x[ctk]) or `pip install -e '.[cuda13]'` (cupy-cuda13x[ctk]); "
            "`nvidia-smi` shows the CUDA version"
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, or a driver that fails to load
        raise RuntimeError(
            f"the cupy backend needs a GPU: CuPy {cupy.__version__} is installed but no "
            f"GPU can be used ({exc}). Check `nvidia-smi` and that the cupy-cuda1Nx "
            "wheel matches the driver's CUDA version"
        ) from exc
    if count == 0:
        raise RuntimeError(
            f"the cupy backend needs a GPU: CuPy {cupy.__version__} is installed but no "
            "GPU is visible (CUDA reports 0 devices; check CUDA_VISIBLE_DEVICES)"
        )
    if not _state["cupy_ran"]:
        _run_probe_kernels(cupy)
        _state["cupy_ran"] = True
    return cupy


def _run_probe_kernels(cupy) -> None:
    """One elementwise kernel, one reduction and one matmul, copied back to the host.

    The device count needs only the driver; the first kernel needs NVRTC (CuPy
    compiles its kernels at run time) and the first matmul cuBLAS, both part
    of the CUDA toolkit. Running them here turns a failure deep inside the
    first training step into one message at selection, with the fix.
    """
    try:
        a = cupy.arange(4, dtype=cupy.float32).reshape(2, 2)
        got = ((a * 2 + 1).sum(), (a @ a)[1, 1])
        values = [float(v) for v in got]
    except Exception as exc:
        raise RuntimeError(
            f"the cupy backend sees a GPU but cannot run a kernel on it "
            f"({type(exc).__name__}: {exc}). CuPy needs the CUDA toolkit's NVRTC and cuBLAS; "
            "install them with the wheel's toolkit extra: `pip install -e '.[cuda12]'` or "
            "`pip install -e '.[cuda13]'` (cupy-cuda1Nx[ctk]), or install the CUDA toolkit "
            "that matches the wheel"
        ) from exc
    if values != [16.0, 11.0]:
        raise RuntimeError(f"the cupy backend ran its probe kernels but got {values}, "
                           "not [16.0, 11.0]: the GPU or its driver computes wrongly")


def set_backend(name: str) -> ModuleType:
    """Choose the array library for arrays made from now on.

    Parameters
    ----------
    name : {"numpy", "cupy"}

    Returns
    -------
    module
        The chosen module (``numpy`` or ``cupy``).

    Raises
    ------
    ValueError
        For an unknown name.
    RuntimeError
        For ``"cupy"`` when CuPy is missing, no GPU is visible, or a first
        elementwise kernel and matmul cannot run on it (no CUDA toolkit).
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    module = numpy if name == "numpy" else _import_cupy()
    _state["name"], _state["xp"] = name, module
    return module


def get_backend() -> str:
    """Name of the current backend, ``"numpy"`` or ``"cupy"``."""
    return _state["name"]


def get_xp() -> ModuleType:
    """The current backend's array module, used to make new arrays."""
    return _state["xp"]


def cupy_available() -> tuple[bool, str]:
    """Whether the CuPy backend can be used here, and if not, why not."""
    try:
        _import_cupy()
    except RuntimeError as exc:
        return False, str(exc)
    return True, ""


def is_cupy_array(a) -> bool:
    """True for a ``cupy.ndarray`` (checked without importing CuPy)."""
    return type(a).__module__.startswith("cupy")


def array_module(*arrays, op: str = "op") -> ModuleType:
    """The module (``numpy`` or ``cupy``) that owns ``arrays``.

    Non-array arguments (Python scalars, None) are ignored.

    Raises
    ------
    TypeError
        If NumPy and CuPy arrays are mixed; the message names ``op``.
    """
    kinds = {is_cupy_array(a) for a in arrays if hasattr(a, "dtype") and hasattr(a, "shape")}
    if len(kinds) > 1:
        raise TypeError(
            f"{op}: inputs mix NumPy and CuPy arrays; move them to one backend first "
            "(minicon.to_backend or Module.to)"
        )
    if kinds == {True}:
        import cupy

        return cupy
    return numpy


def asarray(data, dtype=None):
    """``data`` as an array of the current backend.

    Lists and Python floats become the default dtype (float32), Python ints
    int64 and bools bool, as in PyTorch; arrays keep their dtype unless
    ``dtype`` is given. Arrays of the other backend are copied across.
    """
    xp = get_xp()
    if is_cupy_array(data) and xp is numpy:
        data = data.get()
    if dtype is None and not hasattr(data, "dtype"):
        probe = numpy.asarray(data)
        if probe.dtype.kind == "f":
            dtype = _state["default_dtype"]
        elif probe.dtype.kind in "iu":
            dtype = numpy.int64
    return xp.asarray(data, dtype=dtype)


def out_of_range(a, low: int, high: int):
    """``None`` if every entry of integer array ``a`` lies in ``[low, high)``, else its (min, max).

    A host array is checked on the host, so index data can be validated
    before it is uploaded. A CuPy array costs one reduction and one wait for
    the GPU (min and max are computed only for the error message).
    """
    if a.size == 0:
        return None
    if is_cupy_array(a) and not bool(((a < low) | (a >= high)).any()):
        return None
    lo, hi = int(a.min()), int(a.max())
    return None if low <= lo and hi < high else (lo, hi)


def to_host(a) -> numpy.ndarray:
    """A NumPy copy (or view, for NumPy input) of an array of either backend."""
    if is_cupy_array(a):
        return a.get()
    return numpy.asarray(a)


def to_backend(a, name: str | None = None):
    """Move an array to backend ``name`` (default: the current one)."""
    name = name or get_backend()
    if name == "numpy":
        return to_host(a)
    cupy = _import_cupy()
    return cupy.asarray(a)


def default_dtype():
    """The floating dtype for new tensors (float32 unless changed)."""
    return _state["default_dtype"]


def set_default_dtype(dtype) -> None:
    """Set the floating dtype for new tensors: float32 (default) or float64."""
    dtype = numpy.dtype(dtype)
    if dtype not in (numpy.float32, numpy.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {dtype}")
    _state["default_dtype"] = dtype.type


def broadcast_shapes(op: str, *shapes) -> tuple:
    """The broadcast shape of ``shapes``, NumPy's rules.

    Raises
    ------
    ValueError
        If they do not broadcast; the message names ``op`` and every shape.
    """
    try:
        return numpy.broadcast_shapes(*shapes)
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{op}: shapes {listed} cannot be broadcast together") from None


def manual_seed(seed: int) -> None:
    """Seed every random source minicon uses, for reproducible runs.

    Seeds the host generator (:func:`host_rng`: weight init, augmentation
    parameters, shuffling) and, when the CuPy backend is active, CuPy's
    device generator. Runs repeat exactly on one backend; NumPy and CuPy
    runs with the same seed agree wherever only the host generator is used.
    """
    global _host_rng
    _host_rng = numpy.random.default_rng(seed)
    if _state["name"] == "cupy":
        _state["xp"].random.seed(seed)


def host_rng() -> numpy.random.Generator:
    """The seeded NumPy generator for everything drawn on the host."""
    return _host_rng


def _from_environment() -> None:
    """Apply ``MINICON_BACKEND``; a value that cannot be used warns and keeps NumPy.

    Importing must not fail: ``minicon info`` and the GPU lesson exist to say
    whether CuPy can be used, and a stale variable would stop them first.
    """
    name = os.environ.get("MINICON_BACKEND", "numpy").strip().lower() or "numpy"
    try:
        set_backend(name)
    except (ValueError, RuntimeError) as exc:
        warnings.warn(f"MINICON_BACKEND={name} cannot be used, so minicon uses numpy: {exc}",
                      RuntimeWarning, stacklevel=2)


_from_environment()
