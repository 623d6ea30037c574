"""Shared fixtures: the backend every array test runs on, and hypothesis profiles.

Tests that compute take the ``xp`` fixture: it runs the same body once with
NumPy and once with CuPy, skipping the CuPy run with the reason where CuPy or
a GPU is missing. ``MINICON_TEST_BACKENDS=cupy`` (or ``numpy``) narrows it.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

import minicon
from minicon import backend

settings.register_profile(
    "ci", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_wanted = os.environ.get("MINICON_TEST_BACKENDS", "numpy,cupy").split(",")


@pytest.fixture(scope="session", params=[b for b in backend.BACKENDS if b in _wanted])
def xp(request):
    """The array module of the backend under test, set as minicon's backend."""
    if request.param == "cupy":
        ok, why = backend.cupy_available()
        if not ok:
            pytest.skip(f"CuPy backend unavailable: {why}")
    previous = backend.get_backend()
    module = minicon.set_backend(request.param)
    yield module
    minicon.set_backend(previous)


@pytest.fixture(autouse=True)
def _seeded():
    minicon.manual_seed(0)
